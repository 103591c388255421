"""The models a server offers, by id: the one it serves first, then the ones trained
while it runs (``digitnet.server.jobs``), and those in the folder of ``serve --models DIR``.

Every endpoint that takes ``"model": id`` finds it with ``Models.lookup(id)``; no id
(None) is the served model.  A model trained here is saved atomically as
``DIR/ID.safetensors`` when there is a folder, and nowhere otherwise.

Ids are never handed out twice: trained-1, trained-2, ... count on from the highest
number in memory or in the folder, and with a folder each id is claimed by creating
its file (empty until the model is saved) with ``O_EXCL``, so two servers sharing one
folder never write the same name.  An empty file is a claim, never a model: a run
that failed leaves its claim, and its id is not given again.
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from collections.abc import Collection
from pathlib import Path

from ..files.modelfile import Model, ModelFileError, expected_bytes, load, save
from ..files.paths import OutputError, check_output, regular_files
from ..settings import short

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
        self.owners: dict[str, str] = {}  # model id -> the client that trained it
        self.names: dict[str, str] = {}  # model id -> the name its trainer gave it
        self._counted: dict[str, int] = {}  # prefix -> the highest number handed out
        if self.folder is not None:
            self._read_folder()

    def _read_folder(self) -> None:
        """Load the newest ``MAX_MODELS - 1`` model files of the folder that load, oldest
        first; symbolic links and files that do not load are skipped with a reason."""
        check_folder(self.folder)
        files, self.skipped = regular_files(self.folder, "*.safetensors")  # newest first
        files = [p for p in files if p.stat().st_size > 0]  # empty: an id claimed, no model
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
            raise UnknownModel(f"no model {short(model_id)}; the models are: {known}") from None

    def ids(self) -> list[str]:
        """The listed ids, the served model first, then oldest to newest."""
        return [i for i in self._models if i not in self._unlisted]

    def summaries(self, client: str | None = None) -> list[dict]:
        """``summary`` of every listed model with its ``name`` and whether ``client``
        trained it (``mine``): the served model first, then the client's own, then the
        others, each oldest to newest."""
        out = [
            {**summary(i, self._models[i]), "name": self.names.get(i, i),
             "mine": client is not None and self.owners.get(i) == client}
            for i in self.ids()
        ]  # fmt: skip
        return out[:1] + sorted(out[1:], key=lambda m: not m["mine"])

    def new_id(
        self, taken: Collection[str] = (), prefix: str = "trained", start: int = 1,
        *, claim: bool = False,
    ) -> str:
        """An id never handed out before by this server, nor held in memory, in the
        folder or in ``taken``: ``prefix``-N with N above every number seen, at least
        ``start``.  ``claim``: also claim it in the folder at once (``claim``), for a
        model that will be saved there."""
        n = max(start, self._counted.get(prefix, 0) + 1, self._highest(prefix, taken) + 1)
        while True:
            model_id = f"{prefix}-{n}"
            free = model_id not in self._models and model_id not in taken
            if free and (not claim or self.claim(model_id)):
                self._counted[prefix] = n
                return model_id
            n += 1

    def _highest(self, prefix: str, taken: Collection[str]) -> int:
        """The highest N of the ids ``prefix``-N in memory, in ``taken`` and in the folder."""
        names = [*self._models, *taken]
        if self.folder is not None:
            names += [p.stem for p in self.folder.glob(f"{prefix}-*.safetensors")]
        pattern = re.compile(re.escape(prefix) + r"-([0-9]{1,18})")
        return max((int(m[1]) for i in names if (m := pattern.fullmatch(i))), default=0)

    def claim(self, model_id: str) -> bool:
        """Create the empty file ``folder/ID.safetensors`` if no file has that name
        (atomically: ``O_EXCL``); whether the id is now ours.  Always True without a
        folder."""
        if self.folder is None:
            return True
        try:
            path = self.folder / f"{model_id}.safetensors"
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            return False
        return True

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
            self.owners.pop(model_id, None)
            self.names.pop(model_id, None)

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
