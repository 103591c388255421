"""``digitnet export``: a model in a format other runtimes read (ONNX)."""

from __future__ import annotations

import argparse

from ..files.modelfile import load
from ..files.paths import check_output


def cmd_export(args: argparse.Namespace) -> int:
    from ..inspect.export import export

    check_output(args.out, inputs=[args.model], what="--out")
    model = load(args.model)
    export(args.out, model.network, model.info, format=args.format)
    print(f"wrote {args.out} ({args.format}, input 'pixels' (N, {model.network.sizes[0]}))")
    return 0
