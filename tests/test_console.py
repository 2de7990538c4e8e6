"""What a researcher sees: the console filter, the monitored FID on the bar and in the closing
line, progress of long phases, and evaluation budgets that fit the images present."""

from __future__ import annotations

import io
import logging
import logging.config
import math
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from pytorch_lightning.callbacks import ModelCheckpoint
from rich.console import Console

from genlab.callbacks.progress_bar import monitored
from genlab.config.checks import metrics_on
from genlab.config.paths import config_dir
from genlab.eval import evaluate
from genlab.evaluation.harness import sample_count
from genlab.evaluation.sources import CheckpointSource
from genlab.metrics.extractors import LeNetExtractor
from genlab.metrics.real_features import extract
from genlab.metrics.suite import MetricSuite
from genlab.resume import remove_interrupted_writes
from genlab.runs.console import ConsoleFilter, route_library_output_to_logging
from genlab.train import closing_line
from genlab.utils import progress as progress_module
from tests.helpers.runs import compose_config
from tests.helpers.sample_files import digits, write_npz, write_png_folder
from tests.helpers.tiny import tiny_gan


def record(message: str, name: str = "some.library", level: int = logging.INFO):
    return logging.LogRecord(name, level, __file__, 1, message, None, None)


def test_the_console_filter_drops_tips_deprecations_and_repeats_only() -> None:
    console = ConsoleFilter()
    assert not console.filter(record("💡 Tip: For seamless cloud logging, try installing X"))
    assert not console.filter(record("x.py:21: `isinstance(a, B)` is deprecated, use C"))
    assert not console.filter(record("`weights_only` was not set, defaulting to `False`."))
    assert console.filter(record("GPU available: True, used: False"))
    assert not console.filter(record("GPU available: True, used: False"))  # a repeat
    assert console.filter(record("GPU available: True, used: False", level=logging.WARNING))
    assert console.filter(record("GPU available: True, used: False", name="other"))


def test_the_log_file_keeps_what_the_console_drops(tmp_path: Path) -> None:
    config = yaml.safe_load((config_dir() / "hydra" / "job_logging" / "rich.yaml").read_text())
    config["handlers"]["file"]["filename"] = str(tmp_path / "train.log")
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logging.config.dictConfig(config)
        console, file = (next(h for h in root.handlers if type(h).__name__ == kind)
                         for kind in ("RichHandler", "FileHandler"))  # fmt: skip
        tip = record("💡 Tip: try a cloud service")
        assert not console.filter(tip) and file.filter(tip)
        logging.getLogger("some.library").info("💡 Tip: try a cloud service")
        file.flush()
        assert "💡 Tip: try a cloud service" in (tmp_path / "train.log").read_text()
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
            handler.close()
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])


def test_lightning_messages_and_python_warnings_reach_the_run_handlers(caplog) -> None:
    lightning = logging.getLogger("pytorch_lightning")
    lightning.addHandler(logging.StreamHandler())  # as Lightning does on import
    lightning.propagate = False
    try:
        route_library_output_to_logging()
        assert lightning.handlers == [] and lightning.propagate
        with caplog.at_level(logging.WARNING):
            warnings.warn("a library's warning", UserWarning, stacklevel=1)
        assert any(r.name == "py.warnings" and "a library's warning" in r.getMessage()
                   for r in caplog.records)  # fmt: skip
    finally:
        logging.captureWarnings(False)


def trainer_with(metrics: dict[str, float], best: float | None, monitor: str | None = "val/fid"):
    checkpoint = ModelCheckpoint(monitor=monitor, mode="min")
    checkpoint.best_model_score = None if best is None else torch.tensor(best)
    return SimpleNamespace(
        checkpoint_callbacks=[checkpoint],
        checkpoint_callback=checkpoint,
        callback_metrics={k: torch.tensor(v) for k, v in metrics.items()},
    )


def test_the_bar_shows_the_monitored_metric_and_its_best_so_far() -> None:
    assert monitored(trainer_with({"val/fid": 90.0}, best=80.0)) == {
        "val/fid": 90.0, "best val/fid": 80.0,
    }  # fmt: skip
    assert monitored(trainer_with({"val/fid": 70.0}, best=80.0))["best val/fid"] == 70.0
    diverged = monitored(trainer_with({"val/fid": math.nan}, best=80.0))
    assert math.isnan(diverged["val/fid"]) and diverged["best val/fid"] == 80.0
    assert monitored(trainer_with({"train/loss": 1.0}, best=None)) == {}  # not yet measured
    assert monitored(trainer_with({"val/fid": 1.0}, best=None, monitor=None)) == {}


def test_the_closing_line_names_the_metric_best_and_last(tmp_path: Path) -> None:
    trainer = trainer_with({"val/fid": 91.25}, best=86.5)
    line = closing_line(trainer, "val/fid", tmp_path)
    assert line == f"val/fid: best 86.5, last 91.25; checkpoints: {tmp_path / 'checkpoints'}"
    assert closing_line(trainer, None, tmp_path) == f"checkpoints: {tmp_path / 'checkpoints'}"


@pytest.mark.parametrize("experiment", ["flow_mnist", "ddpm_mnist"])
def test_metrics_none_switches_off_an_experiment_that_sets_metric_keys(
    experiment: str, tmp_path: Path
) -> None:
    cfg = compose_config("train", [f"experiment={experiment}", "metrics=none"], tmp_path)
    assert cfg.metrics  # the experiment's n_samples and every_n_epochs remain ...
    assert not metrics_on(cfg)  # ... with no callback to set
    remove_interrupted_writes(cfg, None)  # read metrics.cache_dir before: a traceback
    assert metrics_on(compose_config("train", [f"experiment={experiment}"], tmp_path / "on"))


def test_generate_reports_each_batch_it_made() -> None:
    made: list[int] = []
    images = tiny_gan().generate(7, batch_size=3, on_batch=made.append)
    assert made == [3, 3, 1] and len(images) == 7


class Identity(torch.nn.Module):
    name, weights_sha256, num_features = "identity", "none", 4

    def forward(self, x: torch.Tensor):
        return x, x.new_zeros(len(x), 2)


@pytest.mark.parametrize("n_fake", [500, 20])
def test_kid_subsets_are_sized_from_the_images_present(n_fake: int) -> None:
    real = torch.randn(600, 4)
    suite = MetricSuite(Identity(), real, kid_subset_size=1000, compute_is=False)
    suite.update(torch.randn(n_fake, 4).clamp(-1, 1))
    assert math.isfinite(suite.compute()["kid_mean"])
    assert suite.kid.subset_size == n_fake  # capped by the fakes, then by the 600 reals


def checkpoint(name: str, nfe: int | None):
    model = SimpleNamespace(function_evaluations=lambda **sampling: nfe)
    return SimpleNamespace(name=name, model=model, sampling={})


def test_the_sample_count_fits_the_network_pass_budget(caplog) -> None:
    cfg = SimpleNamespace(metrics=SimpleNamespace(n_samples=5000), max_network_passes=25000)
    assert sample_count(cfg, [checkpoint("gan", 1)]) == 5000  # one pass each: within budget
    with caplog.at_level(logging.WARNING):
        assert sample_count(cfg, [checkpoint("gan", 1), checkpoint("flow", 50)]) == 500
    assert "metrics.n_samples=5000 lowered to 500: flow samples at 50 network passes" in caplog.text
    assert sample_count(cfg, []) == 5000  # files only: nothing to generate
    assert sample_count(cfg, [checkpoint("dopri5", None)]) == 5000  # adaptive: not known
    cfg.max_network_passes = None
    assert sample_count(cfg, [checkpoint("flow", 50)]) == 5000


@pytest.mark.parametrize(
    ("n_samples", "n_reference"), [(20, None), (500, 600)], ids=["20-images", "500-vs-600"]
)
def test_eval_scores_fewer_images_than_n_samples_with_a_warning(
    n_samples: int, n_reference: int | None, tmp_path: Path, caplog
) -> None:
    images, labels = digits("val", n_samples)
    samples = write_npz(tmp_path / "samples.npz", images, labels)
    overrides = [f"samples={samples}", "memorization.enabled=false"]
    if n_reference is None:
        overrides.append("data=mnist_embedded")
    else:
        reference = write_png_folder(tmp_path / "reference", digits("test", n_reference)[0])
        overrides.append(f"reference={reference}")
    cfg = compose_config("eval", overrides, tmp_path / "e")
    with caplog.at_level(logging.WARNING):
        results = evaluate(cfg)
    assert results["n_samples"] == n_samples and math.isfinite(results["kid_mean"])
    assert f"holds {n_samples} images, fewer than metrics.n_samples=5000" in caplog.text


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """What a terminal would show of the progress bars."""
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100)
    monkeypatch.setattr(progress_module, "get_console", lambda: console)
    return screen


def test_feature_extraction_and_checkpoint_sampling_show_progress(terminal: io.StringIO) -> None:
    extract(LeNetExtractor(), torch.zeros(6, 1, 28, 28), batch_size=4, device=torch.device("cpu"))
    assert "lenet features" in terminal.getvalue() and "6/6" in terminal.getvalue()
    source = CheckpointSource("tiny", Path("tiny.ckpt"), tiny_gan(), run_cfg=None, batch_size=2)
    assert len(source.draw(5, seed=0).images) == 5
    assert "tiny: sampling" in terminal.getvalue() and "5/5" in terminal.getvalue()


def test_no_bar_is_drawn_away_from_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    log_file = io.StringIO()
    monkeypatch.setattr(progress_module, "get_console", lambda: Console(file=log_file))
    with progress_module.progress("phase", total=2) as advance:
        advance(2)
    assert log_file.getvalue() == ""
