"""The models a server offers, by id: the one it serves first, then the ones trained
while it runs (``digitnet.server.jobs``), and those in the folder of ``serve --models DIR``.

Every endpoint that takes ``"model": id`` finds it with ``Models.lookup(id)``; no id
(None) is the served model.  A model trained here is saved atomically as
``DIR/ID.safetensors`` when there is a folder, and nowhere otherwise.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Collection
from pathlib import Path

from ..files.modelfile import Model, ModelFileError, expected_bytes, load, save
from ..files.paths import OutputError, check_output, regular_files

#: The id of the model the server was started with.
SERVED = "served"
#: Most models held in memory, the served one included; past that the oldest trained
#: one is let go (its file, in a models folder, stays).
MAX_MODELS = 32
#: What an id may look like: it is also a file name in the models folder.
ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class UnknownModel(LookupError):
    """No model has the id asked for."""

    def __str__(self) -> str:
        return str(self.args[0])


def check_folder(folder: str | Path) -> Path:
    """``folder`` if models can be saved in it, else OutputError saying why (checked
    before the server starts, so that nothing fails only when a training ends)."""
    folder = Path(folder)
    if not folder.exists():
        raise OutputError(f"--models {folder}: no such folder (create it first)")
    if not folder.is_dir():
        raise OutputError(f"--models {folder}: not a folder")
    check_output(folder / "trained-1.safetensors", what="--models")  # may we write in it?
    return folder


def about(model: Model) -> dict:
    """What the page is told of any model: its shape, functions and test accuracy."""
    net = model.network
    return {
        "sizes": list(net.sizes),
        "activation": net.activation_name,
        "output": net.output_name,
        "test_accuracy": model.test_accuracy,
    }


def summary(model_id: str, model: Model) -> dict:
    """What ``GET /api/models`` says of one model: its id and ``about`` it, and for a
    model made by ``/api/step`` its ``step`` record (source model, label, lr, loss)."""
    out = {"id": model_id, **about(model)}
    if "step" in model.info:
        out["step"] = model.info["step"]
    return out


class Models:
    """The models by id, the served one first.  ``folder``: where trained models are
    saved (and read from at the start), or None to keep them in memory only.

    A model still training can be ``put`` under its id (``listed=False``) so that
    predictions can use its newest weights before it is listed."""

    def __init__(self, served: Model, folder: str | Path | None = None) -> None:
        self.folder = None if folder is None else Path(folder)
        self._models: OrderedDict[str, Model] = OrderedDict({SERVED: served})
        self._unlisted: set[str] = set()
        self.skipped: list[str] = []  # files in the folder that could not be loaded
        if self.folder is not None:
            self._read_folder()

    def _read_folder(self) -> None:
        """Load the newest ``MAX_MODELS - 1`` model files of the folder that load, oldest
        first; symbolic links and files that do not load are skipped with a reason."""
        check_folder(self.folder)
        files, self.skipped = regular_files(self.folder, "*.safetensors")  # newest first
        loaded: dict[str, Model] = {}
        for path in files:
            if len(loaded) == MAX_MODELS - 1:
                break
            if not ID.fullmatch(path.stem) or path.stem == SERVED:
                self.skipped.append(f"{path}: the name cannot be a model id")
                continue
            try:
                loaded[path.stem] = load(path)
            except (ModelFileError, ValueError) as e:
                self.skipped.append(str(e))
        self._models.update(reversed(loaded.items()))

    def lookup(self, model_id: str | None) -> Model:
        """The model with this id (None: the served one), or UnknownModel saying which
        ids there are."""
        if model_id is None:
            return self._models[SERVED]
        try:
            return self._models[model_id]
        except (KeyError, TypeError):
            known = ", ".join(self.ids())
            raise UnknownModel(f"no model {model_id!r}; the models are: {known}") from None

    def ids(self) -> list[str]:
        """The listed ids, the served model first, then oldest to newest."""
        return [i for i in self._models if i not in self._unlisted]

    def summaries(self) -> list[dict]:
        return [summary(i, self._models[i]) for i in self.ids()]

    def new_id(self, taken: Collection[str] = (), prefix: str = "trained", start: int = 1) -> str:
        """An id not yet used, in memory, in the folder or in ``taken``: trained-1,
        trained-2, ... (``prefix``-``start``, ... when given)."""
        n = start
        while (model_id := f"{prefix}-{n}") in self._models or model_id in taken or (
            self.folder is not None and (self.folder / f"{model_id}.safetensors").exists()
        ):
            n += 1
        return model_id

    def put(self, model_id: str, model: Model, *, listed: bool = True) -> None:
        """Hold ``model`` under ``model_id`` (replacing what was there), letting the
        oldest trained model go when more than ``MAX_MODELS`` are held."""
        self._models[model_id] = model
        (self._unlisted.discard if listed else self._unlisted.add)(model_id)
        while len(self._models) > MAX_MODELS:
            oldest = next(i for i in self._models if i not in (SERVED, model_id))
            self.drop(oldest)

    def drop(self, model_id: str) -> None:
        """Forget a model (never the served one); its file, if any, stays."""
        if model_id != SERVED:
            self._models.pop(model_id, None)
            self._unlisted.discard(model_id)

    def save(self, model_id: str) -> Path | None:
        """Write a held model to ``folder/ID.safetensors`` atomically (None without a
        folder); OutputError when it cannot be written."""
        if self.folder is None:
            return None
        model = self._models[model_id]
        path = self.folder / f"{model_id}.safetensors"
        check_output(path, size=expected_bytes(model.network.sizes, model.info), what="--models")
        save(path, model.network, model.info)
        return path
