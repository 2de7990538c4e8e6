"""Resolvers and paths: W&B never prompts, run directories never collide, configs are found."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from genlab.config import resolvers
from genlab.config.overrides import sweep_jobs_to_check
from genlab.config.paths import config_dir
from genlab.runs.result import read_result, result_recorded


def test_wandb_is_offline_without_credentials(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(tmp_path / ".netrc"))
    assert resolvers.wandb_offline()


def test_wandb_is_online_with_an_api_key_or_a_netrc_login(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setattr(resolvers, "wandb_unreachable", lambda: None)  # W&B's server answers
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert not resolvers.wandb_offline()
    monkeypatch.delenv("WANDB_API_KEY")
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password " + "x" * 40 + "\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(netrc))
    assert not resolvers.wandb_offline()
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert resolvers.wandb_offline()


def test_run_id_is_fixed_in_a_process_and_differs_between_processes() -> None:
    assert resolvers.run_id() == resolvers.run_id()
    code = "from genlab.config.resolvers import run_id; print(run_id())"
    ids = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip()
        for _ in range(3)
    }
    assert len(ids) == 3 and all(len(i) == 6 for i in ids)


@pytest.mark.parametrize("name", ["train.yaml", "sample.yaml", "eval.yaml"])
def test_entry_point_configs_are_found(name: str) -> None:
    assert (config_dir() / name).is_file()


def test_sweep_jobs_to_check_try_every_swept_value_once() -> None:
    jobs = sweep_jobs_to_check(
        ["model=gan,vae", "seed=range(1,4)", "model.optimizer.lr=interval(1e-4,1e-3)", "x=1"]
    )
    assert jobs == [
        ["model=gan", "seed=1", "x=1"],
        ["model=vae", "seed=1", "x=1"],
        ["model=gan", "seed=2", "x=1"],
        ["model=gan", "seed=3", "x=1"],
    ]


@pytest.mark.parametrize(
    ("raised", "status", "error"),
    [
        (None, "completed", ""),
        (ValueError("bad\nsecond line"), "failed", "ValueError: bad"),
        (SystemExit(143), "interrupted", ""),
        (SystemExit(2), "failed", "exit code 2"),
    ],
)
def test_every_run_records_how_it_ended(
    tmp_path: Path, raised: BaseException | None, status: str, error: str
) -> None:
    cfg = OmegaConf.create({"paths": {"output_dir": str(tmp_path)}, "optimized_metric": "auto"})
    with contextlib.suppress(BaseException), result_recorded(cfg) as result:
        cfg.optimized_metric = "val/loss"  # training resolves `auto`
        result.value = 1.5
        if raised is not None:
            raise raised
    recorded = read_result(tmp_path)
    assert recorded["status"] == status and recorded["error"] == error
    assert recorded["metric"] == "val/loss" and recorded["value"] == 1.5
