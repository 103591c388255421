"""``digitnet serve``: the draw-a-digit page, after training the default model first
when it does not exist; ``--class`` serves it to a class (``server.classroom``)."""

from __future__ import annotations

import argparse
import sys

from ..config import TrainConfig
from ..files.modelfile import load
from .base import DEFAULT_MODEL, UsageError
from .train import train_and_save


def cmd_serve(args: argparse.Namespace) -> int:
    from ..server import bind, is_loopback

    args.host = args.host or ("0.0.0.0" if args.classroom else "127.0.0.1")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0-65535, got {args.port}")
    missing = not args.model.exists()
    if missing and args.model != DEFAULT_MODEL:
        raise UsageError(
            f"no model at {args.model}; train one with `digitnet train --out {args.model}`, "
            f"or run `digitnet serve` alone to train and serve {DEFAULT_MODEL}"
        )
    if args.models is not None:
        from ..server.models import check_folder

        check_folder(args.models)
    try:  # listen first: a port in use is an error before the training, not after
        sock = bind(args.host, args.port)
    except OSError as e:
        raise UsageError(f"cannot listen on {args.host}:{args.port} ({e.strerror})") from None
    with sock:
        if missing:
            print(f"no model at {args.model}: training one with the defaults first", flush=True)
            # an interrupted first training saves nothing: a later serve would otherwise
            # pick up a half-trained model without a word
            code = train_and_save(
                TrainConfig(), args.model, None, quiet=False, keep_interrupted=False
            )
            if code:
                return code
        _serve(args, sock, is_loopback(args.host))
    return 0


def _serve(args: argparse.Namespace, sock, loopback: bool) -> None:
    """Load the model, say where the page is, and serve it on ``sock`` until Ctrl-C."""
    from ..server import create_app, serve

    model = load(args.model)
    history = model.info.get("history") or {}
    if history.get("stopped") == "interrupted":
        epochs = len(history.get("epochs") or [])
        planned = (model.info.get("config") or {}).get("epochs", "?")
        print(
            f"note: {args.model} is from a run interrupted after {epochs} of {planned} epochs",
            file=sys.stderr,
        )
    host, port = sock.getsockname()[:2]
    room, hosts = _classroom(args, host, port, loopback)
    app = create_app(model, hosts=hosts, models_dir=args.models, classroom=room)
    for problem in app.state.models.skipped:
        print(f"warning: not offered: {problem}", file=sys.stderr)
    shown = f"[{host}]" if ":" in host else host
    url = room.urls[0] if room is not None and room.urls else f"http://{shown}:{port}/"
    if room is not None and room.on:
        _announce(room, url, args.model)
        return serve(app, sock)
    if not loopback:
        print(
            f"WARNING: listening on {args.host}, not loopback: other machines on your "
            "network can reach this page and its API.",
            file=sys.stderr,
        )
    print(f"serving {args.model} at {url}  (Ctrl-C stops)", flush=True)
    serve(app, sock)


def _classroom(args: argparse.Namespace, host: str, port: int, loopback: bool):
    """(the ``Classroom``, or None on loopback without ``--class``; the Host names to
    answer, or None for all).  On the network its ``urls`` are addresses others can
    type (never 0.0.0.0); a class answers only the machine's own names and addresses."""
    from ..server import loopback_names
    from ..server.classroom import Classroom, class_hosts, class_urls, lan_addresses

    if loopback:
        return (Classroom(on=True) if args.classroom else None), loopback_names(args.host)
    addresses = lan_addresses() if host in ("0.0.0.0", "::") else [host]
    room = Classroom(on=args.classroom, urls=class_urls(port, addresses))
    return room, class_hosts(addresses) if args.classroom else None


def _announce(room, url: str, model) -> None:
    """Say where students open the page (``url`` first, with a QR code of it) and the
    teacher's link."""
    from ..server.classroom import qr_text

    print(f"serving {model} to a class at {url}  (Ctrl-C stops)", flush=True)
    if not room.urls:
        print("listening on loopback: only this machine can open the page", file=sys.stderr)
    if room.urls[1:]:
        print("or at: " + "  ".join(room.urls[1:]))
    print(qr_text(url), end="")
    print(f"Teacher (keep this link to yourself): {url}teacher?key={room.key}", flush=True)
