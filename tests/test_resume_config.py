"""Resume restores the run: the checkpoint's config is the config; the command line may
change only what is safe on resume, and anything else fails in one line."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf

from genlab.errors import ConfigError
from genlab.resume import restore_run_config, resumed_config
from genlab.train import train
from tests.helpers.runs import TINY_RUN_NO_METRICS, compose_config

STORED: dict[str, Any] = {
    "seed": 42,
    "ckpt_path": None,
    "model": {"_target_": "genlab.models.GANModule", "loss": "hinge", "optimizer": {"lr": 1e-3}},
    "data": {"batch_size": 32, "data_dir": "/old/data"},
    "trainer": {"max_epochs": 8, "precision": "32-true", "devices": 1},
    "callbacks": {"last_checkpoint": {"dirpath": "/old/run/checkpoints", "every_minutes": 5}},
    "logger": {"csv": {"save_dir": "/old/run"}},
    "paths": {"output_dir": "/old/run", "data_dir": "/old/data", "cache_dir": "/c"},
}


def current_config(**changes: Any) -> dict[str, Any]:
    """What the command line composed now: the defaults (a GAN with another loss, batch
    and learning rate), in a new run directory, plus `changes` at dotted keys."""
    current = copy.deepcopy(STORED)
    current["model"] = {"_target_": "genlab.models.GANModule", "loss": "nonsaturating",
                        "optimizer": {"lr": 2e-4}}  # fmt: skip
    current["data"] = {"batch_size": 64, "data_dir": "/new/data"}
    current["trainer"]["max_epochs"] = 25
    current["paths"] = {"output_dir": "/new/run", "data_dir": "/new/data", "cache_dir": "/c"}
    current["ckpt_path"] = "/old/run"
    current["callbacks"]["last_checkpoint"]["dirpath"] = "/new/run/checkpoints"
    current["logger"]["csv"]["save_dir"] = "/new/run"
    for key, value in changes.items():
        node = current
        *parents, last = key.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    return current


def test_the_checkpoints_config_wins_over_the_defaults() -> None:
    config = resumed_config(STORED, current_config(), requested={"ckpt_path"})
    assert config["model"] == STORED["model"]  # hinge, lr 1e-3: not today's defaults
    assert config["data"]["batch_size"] == 32
    assert config["trainer"]["max_epochs"] == 8
    # the run's own directory and data directory are this run's
    assert config["callbacks"]["last_checkpoint"]["dirpath"] == "/new/run/checkpoints"
    assert config["logger"]["csv"]["save_dir"] == "/new/run"
    assert config["data"]["data_dir"] == "/new/data"
    assert config["paths"]["output_dir"] == "/new/run" and config["ckpt_path"] == "/old/run"


def test_safe_overrides_apply_and_new_keys_take_their_defaults() -> None:
    current = current_config(**{"trainer.max_epochs": 12, "trainer.precision": "bf16-mixed"})
    current["checkpoint_every_minutes"] = 5  # a key genlab gained after the checkpoint
    current["callbacks"]["progress_bar"] = {"refresh_rate": 10}
    config = resumed_config(
        STORED, current, requested={"ckpt_path", "trainer.max_epochs", "trainer.precision"}
    )
    assert config["trainer"]["max_epochs"] == 12
    assert config["trainer"]["precision"] == "bf16-mixed"
    assert config["checkpoint_every_minutes"] == 5
    assert config["callbacks"]["progress_bar"] == {"refresh_rate": 10}
    assert config["model"]["loss"] == "hinge"  # not requested: the checkpoint's


@pytest.mark.parametrize(
    ("key", "value", "stored", "requested"),
    [
        ("model.loss", "nonsaturating", "hinge", "nonsaturating"),
        ("data.batch_size", 64, "32", "64"),
        ("seed", 7, "42", "7"),
        ("trainer.precision", "16-true", "32-true", "16-true"),  # the weights' own dtype
    ],
)
def test_a_change_that_is_not_safe_on_resume_fails_in_one_line(
    key: str, value: Any, stored: str, requested: str
) -> None:
    with pytest.raises(ConfigError) as info:
        resumed_config(STORED, current_config(**{key: value}), requested={"ckpt_path", key})
    message = str(info.value)
    assert "\n" not in message
    assert f"trained with {key}={stored}, the command line asks for {requested}" in message


def test_a_dropped_node_is_dropped_and_a_state_callback_cannot_change() -> None:
    current = current_config()
    del current["logger"]["csv"]  # logger=... without CSV: logging is safe to change
    config = resumed_config(STORED, current, requested={"logger.csv.save_dir"})
    assert config["logger"] == {}
    current = current_config()
    current["callbacks"]["ema"] = {"decay": 0.999}  # weight averaging: part of the state
    with pytest.raises(ConfigError, match=r"callbacks\.ema cannot change"):
        resumed_config(STORED, current, requested={"callbacks.ema", "callbacks.ema.decay"})


def test_post_hoc_ema_keeps_its_profiles_and_may_change_its_snapshot_interval() -> None:
    posthoc = {
        "dirpath": "/old/run/ema_snapshots",
        "sigma_rels": [0.05, 0.1],
        "snapshot_every": 100,
    }
    stored = copy.deepcopy(STORED)
    stored["callbacks"]["posthoc_ema"] = posthoc
    current = current_config()
    current["callbacks"]["posthoc_ema"] = {**posthoc, "snapshot_every": 50}
    config = resumed_config(stored, current, requested={"callbacks.posthoc_ema.snapshot_every"})
    assert config["callbacks"]["posthoc_ema"]["snapshot_every"] == 50
    current["callbacks"]["posthoc_ema"]["sigma_rels"] = [0.05, 0.2]
    with pytest.raises(ConfigError, match=r"callbacks\.posthoc_ema\.sigma_rels"):
        resumed_config(stored, current, requested={"callbacks.posthoc_ema.sigma_rels"})


TINY = TINY_RUN_NO_METRICS
TINY_VAE = [*TINY, "model=vae"]


def first_run(tmp_path: Path, *overrides: str) -> Path:
    """Train one tiny epoch into `tmp_path/first`; return its last.ckpt."""
    train(compose_config("train", list(overrides), tmp_path / "first"))
    return tmp_path / "first" / "checkpoints" / "last.ckpt"


def test_a_vae_checkpoint_resumes_as_a_vae_under_the_default_config(tmp_path: Path) -> None:
    last = first_run(tmp_path, *TINY_VAE)
    # The GAN is the default model; the checkpoint's config decides, so nothing fails.
    # Neither model=vae nor logger=csv is given again.
    resumed = [o for o in TINY if o != "logger=csv"] + ["trainer.max_epochs=2", f"ckpt_path={last}"]
    train(compose_config("train", resumed, tmp_path / "second"))
    ckpt = torch.load(tmp_path / "second" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["genlab_config"]["model"]["_target_"] == "genlab.models.VAEModule"
    assert ckpt["epoch"] == 1 and any(k.startswith("encoder.") for k in ckpt["state_dict"])
    assert ckpt["genlab_config"]["logger"].keys() == {"csv"}  # the run's loggers, not W&B


def test_another_model_against_a_checkpoint_fails_in_one_line_and_keeps_it(
    tmp_path: Path,
) -> None:
    last = first_run(tmp_path, *TINY)
    before = last.read_bytes()
    cfg = compose_config("train", [*TINY_VAE, "trainer.max_epochs=2", f"ckpt_path={last}"],
                         tmp_path / "second")  # fmt: skip
    with pytest.raises(ConfigError) as info:
        train(cfg)
    message = str(info.value)
    assert "\n" not in message
    assert (
        "model._target_ cannot change when a run resumes: the checkpoint was trained with "
        "model._target_=genlab.models.GANModule, the command line asks for "
        "genlab.models.VAEModule" in message
    )
    assert last.read_bytes() == before


def test_a_finished_run_resumed_with_nothing_left_to_train_fails(tmp_path: Path) -> None:
    last = first_run(tmp_path, *TINY_VAE)
    cfg = compose_config("train", [*TINY_VAE, f"ckpt_path={last}"], tmp_path / "second")
    with pytest.raises(ConfigError, match=r"already trained 1 epochs, trainer\.max_epochs=1"):
        train(cfg)


def test_max_epochs_zero_fails_before_training(tmp_path: Path) -> None:
    cfg = compose_config("train", [*TINY_VAE, "trainer.max_epochs=0"], tmp_path)
    with pytest.raises(ConfigError, match=r"trainer\.max_epochs=0 trains nothing"):
        train(cfg)
    assert not (tmp_path / "checkpoints").exists()


def test_an_override_equal_to_the_default_still_wins_over_the_checkpoint(tmp_path: Path) -> None:
    """A run trained for 1 epoch, resumed with `trainer.max_epochs=25` (today's default): the
    command line named the key, so the run goes on to 25 epochs instead of refusing."""
    stored = compose_config("train", [*TINY, "trainer.max_epochs=1"], tmp_path / "first")
    checkpoint = {"genlab_config": OmegaConf.to_container(stored, resolve=True)}
    default_epochs = compose_config("train", [], tmp_path / "d").trainer.max_epochs
    resumed = compose_config(
        "train", [*TINY, f"trainer.max_epochs={default_epochs}", "ckpt_path=x"], tmp_path / "two"
    )
    restore_run_config(resumed, checkpoint)
    assert resumed.trainer.max_epochs == default_epochs != 1
    unnamed = compose_config("train", [*TINY[:1], "ckpt_path=x"], tmp_path / "three")
    restore_run_config(unnamed, checkpoint)
    assert unnamed.trainer.max_epochs == 1  # not named: the checkpoint's value
