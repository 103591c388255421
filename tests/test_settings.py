"""The settings spec and the training service: a setting declared once shows up in the
command line, the page's API and the model-file schema; one function trains,
evaluates and records a run for every caller."""

from dataclasses import dataclass, fields

import numpy as np
import pytest

from digitnet import service
from digitnet.cli.parser import build_parser, parse
from digitnet.config import TrainConfig
from digitnet.files.data import Dataset
from digitnet.files.metadata import CONFIG, MetadataError, config_schema
from digitnet.files.modelfile import load
from digitnet.server.jobs import RequestError, choices, defaults, limits, request_settings
from digitnet.settings import SETTINGS, Page, check_settings, setting, spec_of


@dataclass(frozen=True)
class Warmup:
    """A setting that does not exist yet, declared as TrainConfig's are."""

    warmup: int = setting(
        0, "epochs of linear learning-rate warm-up", low=0, high=1000, page=Page(10, "warmup")
    )

    def __post_init__(self) -> None:
        check_settings(self)


SPEC = {**SETTINGS, **spec_of(Warmup)}


def test_a_new_setting_is_a_flag_with_its_help_and_range(capsys):
    args = parse(["train", "--warmup", "3"], SPEC)
    assert args.warmup == 3 and args.given == {"warmup"}
    assert parse(["train"], SPEC).warmup == 0
    help_text = build_parser(SPEC).commands["train"].format_help()
    assert "--warmup WARMUP" in help_text
    assert "epochs of linear learning-rate warm-up (default: 0)" in help_text
    with pytest.raises(SystemExit) as exit_:
        parse(["train", "--warmup", "1001"], SPEC)
    assert exit_.value.code == 2
    assert "argument --warmup: at most 1,000, got 1001" in capsys.readouterr().err
    assert "warmup" not in vars(parse(["train"]))  # the real spec is untouched


def test_a_new_setting_is_asked_for_and_refused_by_name_in_the_api():
    assert request_settings({"warmup": 10, "epochs": 2}, SPEC) == {"warmup": 10, "epochs": 2}
    for bad in (11, -1, 2.0, True, "3"):
        with pytest.raises(RequestError) as caught:
            request_settings({"warmup": bad}, SPEC)
        assert caught.value.field == "warmup"
        assert str(caught.value).startswith("warmup: expected a whole number 0-10, got ")
    assert limits(SPEC)["warmup"] == 10 and defaults(SPEC)["warmup"] == 0
    with pytest.raises(RequestError, match="^warmup: not a training setting"):
        request_settings({"warmup": 1})  # not in the real spec


def test_a_new_setting_is_in_the_schema_and_the_library_checks():
    schema = config_schema(SPEC)
    assert schema({"warmup": 1000, "lr": 0.1}, "config") == {"warmup": 1000, "lr": 0.1}
    with pytest.raises(MetadataError, match="^config.warmup: expected a whole number 0-1000"):
        schema({"warmup": 1001}, "config")
    assert CONFIG({"warmup": -5}, "config") == {"warmup": -5}  # unknown keys are kept
    with pytest.raises(ValueError, match="^warmup must be a whole number, zero or more"):
        Warmup(-1)
    with pytest.raises(ValueError, match="^warmup must be at most 1,000, got 5000"):
        Warmup(5000)


def test_every_setting_has_one_declaration_and_the_page_its_named_bounds():
    assert list(SETTINGS) == [f.name for f in fields(TrainConfig)]
    assert all(s.help and s.default == getattr(TrainConfig(), s.name) for s in SETTINGS.values())
    assert limits() == {
        "hidden_layers": 4, "hidden_width": 256, "batch_size": 1024, "epochs": 100, "augment": 4,
    }  # fmt: skip
    assert SETTINGS["epochs"].high == 10_000  # the library's bound, beside the page's
    assert choices()["loss"] == ["quadratic", "cross-entropy"]
    args = parse(["train"])
    assert TrainConfig(**{name: getattr(args, name) for name in SETTINGS}) == TrainConfig()
    assert args.given == set()
    assert parse(["train", "--epochs", "40", "--no-normalize"]).given == {"epochs", "normalize"}


def test_a_name_added_to_a_registry_is_a_choice_everywhere(monkeypatch):
    from digitnet.learn.activations import ACTIVATIONS

    monkeypatch.setitem(ACTIVATIONS, "relu6", ACTIVATIONS["relu"])
    assert parse(["train", "--activation", "relu6"]).activation == "relu6"
    assert "relu6" in choices()["activation"]
    assert request_settings({"activation": "relu6"}) == {"activation": "relu6"}
    assert CONFIG({"activation": "relu6"}, "config") == {"activation": "relu6"}
    assert TrainConfig(activation="relu6").activation == "relu6"


def small_data(mnist, n: int = 600) -> Dataset:
    return Dataset(mnist.train_images[:n], mnist.train_labels[:n],
                   mnist.test_images[:200], mnist.test_labels[:200])  # fmt: skip


def test_the_service_trains_evaluates_records_and_saves_once(mnist, tmp_path):
    config = TrainConfig(sizes=(784, 8, 10), epochs=2, validation=100, kernel="numpy")
    run = service.train(config, small_data(mnist))
    assert run.kept and run.loop == "numpy" and len(run.history.epochs) == 2
    assert run.info["config"] == config.to_dict() and run.info["kernel"] == "numpy"
    assert run.info["test_accuracy"] == run.evaluation.accuracy and run.evaluation.n == 200
    assert list(tmp_path.iterdir()) == []  # training writes nothing
    service.save(tmp_path / "m.safetensors", run)
    again = load(tmp_path / "m.safetensors")
    assert np.array_equal(again.network.params, run.net.params)
    assert again.info["history"] == run.history.to_dict()


def test_an_interrupted_run_is_kept_only_when_asked(mnist, tmp_path):
    config = TrainConfig(sizes=(784, 8, 10), epochs=3, validation=100, kernel="numpy")
    epochs = []

    def stop_in_epoch_two(done: int, total: int) -> None:
        if len(epochs) == 1:
            raise KeyboardInterrupt

    kept = service.train(config, small_data(mnist), on_epoch=epochs.append,
                         on_batch=stop_in_epoch_two)  # fmt: skip
    assert kept.kept and kept.history.stopped == "interrupted" and kept.history.best_epoch == 1
    epochs.clear()
    dropped = service.train(config, small_data(mnist), on_epoch=epochs.append,
                            on_batch=stop_in_epoch_two, keep_interrupted=False)  # fmt: skip
    assert not dropped.kept and dropped.evaluation is None
    with pytest.raises(ValueError, match="no model to save"):
        service.save(tmp_path / "m.safetensors", dropped)
    assert list(tmp_path.iterdir()) == []
