"""``digitnet export``: a model in a format other runtimes read (ONNX)."""

from __future__ import annotations

import argparse

from ..files import check_output
from ..modelfile import load


def cmd_export(args: argparse.Namespace) -> int:
    from ..export import export

    check_output(args.out, inputs=[args.model], what="--out")
    model = load(args.model)
    export(args.out, model.network, model.info, format=args.format)
    print(f"wrote {args.out} ({args.format}, input 'pixels' (N, {model.network.sizes[0]}))")
    return 0
