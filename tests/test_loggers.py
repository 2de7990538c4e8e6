"""logger=tensorboard gets what W&B and CSV get; logger=many composes all three loggers."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from genlab.train import train
from tests.helpers.runs import TINY_RUN, MakeConfig, compose_config


@pytest.fixture(scope="module")
def tensorboard_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny GAN run with logger=tensorboard, shared by the tests that read its files."""
    run_dir = tmp_path_factory.mktemp("tensorboard_run")
    train(compose_config("train", [*TINY_RUN, "logger=tensorboard"], run_dir))
    return run_dir


def read_events(run_dir: Path) -> EventAccumulator:
    """TensorBoard's own reader over the run's event files, keeping every event."""
    events = EventAccumulator(
        str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "images": 0}
    )
    events.Reload()
    return events


def test_tensorboard_gets_every_csv_scalar_and_the_sample_grid(tensorboard_run: Path) -> None:
    events = read_events(tensorboard_run)
    scalars = set(events.Tags()["scalars"])
    csv_columns = set(
        (tensorboard_run / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    )
    assert {"train/d_loss", "train/g_loss", "val/fid_lenet"} <= scalars
    assert csv_columns - {"step"} <= scalars  # the same scalars as the CSV logger
    assert "hp_metric" not in scalars  # default_hp_metric: false, no placeholder curve
    assert [e.step for e in events.Scalars("train/d_loss")] == [0, 1, 2]  # batches, as in CSV
    (grid,) = events.Images("samples/fixed_noise")
    assert grid.width > 28 and grid.height > 28  # a 16-image grid of 28x28 digits


def test_tensorboard_keeps_the_config_beside_the_run(tensorboard_run: Path) -> None:
    saved = yaml.safe_load((tensorboard_run / "tensorboard" / "hparams.yaml").read_text())
    assert saved["model"]["latent_dim"] == 100
    assert saved["params/total"] > 0


def test_tensorboard_hparams_tab_shows_the_flattened_config(tensorboard_run: Path) -> None:
    """The record TensorBoard's HPARAMS tab reads: the config, flat, and the optimized metric."""
    events = read_events(tensorboard_run)
    records = {
        tag: HParamsPluginData.FromString(content)
        for tag, content in events.PluginTagToContent("hparams").items()
    }
    hparams = records["_hparams_/session_start_info"].session_start_info.hparams
    assert hparams["model/latent_dim"].number_value == 100
    assert hparams["model/optimizer/lr"].number_value == pytest.approx(2e-4)
    assert hparams["params/total"].number_value > 0
    assert hparams["ckpt_path"].string_value == "None"  # None and lists become text
    metrics = records["_hparams_/experiment"].experiment.metric_infos
    assert [m.name.tag for m in metrics] == ["val/fid_lenet"]


@pytest.mark.parametrize(
    ("option", "loggers"),
    [("tensorboard", {"csv", "tensorboard"}), ("many", {"csv", "tensorboard", "wandb"})],
)
def test_logger_options_compose(make_config: MakeConfig, option: str, loggers: set[str]) -> None:
    cfg = make_config(overrides=[f"logger={option}"])
    resolved = OmegaConf.to_container(cfg.logger, resolve=True)
    assert set(resolved) == loggers
    assert resolved["tensorboard"] == {
        "_target_": "pytorch_lightning.loggers.TensorBoardLogger",
        "save_dir": cfg.paths.output_dir,
        "name": "tensorboard",
        "version": "",
        "default_hp_metric": False,
    }
    assert resolved["csv"]["_target_"] == "pytorch_lightning.loggers.CSVLogger"
    if "wandb" in loggers:
        assert resolved["wandb"]["_target_"] == "genlab.compat.QuietWandbLogger"
        assert resolved["wandb"]["save_dir"] == cfg.paths.output_dir
