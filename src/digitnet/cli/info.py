"""``digitnet info``: a model's architecture and training record, as text or JSON."""

from __future__ import annotations

import argparse
import json

from ..files.modelfile import load


def cmd_info(args: argparse.Namespace) -> int:
    model = load(args.model)  # every field checked against metadata.MODEL
    info, net = model.info, model.network
    if args.json:
        print(json.dumps({**info, "n_parameters": net.n_parameters}, allow_nan=False))
        return 0
    print(f"{args.model}")
    print(
        f"  architecture  {'-'.join(map(str, net.sizes))}: {net.activation_name} hidden "
        f"layers, {net.output_name} output"
    )
    print(f"  parameters    {net.n_parameters:,}")
    config = info.get("config") or {}
    if config:
        print(
            f"  trained with  {config.get('loss')} cost, {config.get('optimizer')} "
            f"lr {config.get('lr')} ({config.get('schedule')}), batch "
            f"{config.get('batch_size')}, weight decay {config.get('weight_decay')}, "
            f"seed {config.get('seed')}"
        )
    if info.get("test_accuracy") is not None:
        print(f"  test accuracy {info['test_accuracy']:.2%}")
    history = info.get("history") or {}
    epochs = history.get("epochs") or []
    if epochs:
        seconds = info.get("train_seconds")
        print(
            f"  training      {len(epochs)} epochs ({history.get('stopped')}), kept epoch "
            f"{history.get('best_epoch')}, {'?' if seconds is None else seconds}s"
        )
        print("  epoch   loss    train     val")
        for e in epochs:
            val = "     -" if e.get("val_accuracy") is None else f"{e['val_accuracy']:7.2%}"
            print(f"  {e['epoch']:>5} {e['loss']:.4f} {e['accuracy']:7.2%} {val}")
    return 0
