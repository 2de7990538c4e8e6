"""Hydra multirun sweeps as a user runs them: basic, joblib, Optuna and submitit launchers."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from genlab.utils.paths import config_dir
from genlab.utils.resolvers import sweep_name
from tests.helpers.cli import summary, sweep
from tests.helpers.runs import compose_config

pytestmark = pytest.mark.slow  # every launcher runs real sweeps as subprocesses


def test_basic_sweep_one_dir_per_job_one_wandb_group_each_run_finished(tmp_path: Path) -> None:
    sweep_dir, _ = sweep(tmp_path, "model=gan,vae")
    rows = summary(sweep_dir)
    assert [(r["job"], r["status"]) for r in rows] == [("0", "completed"), ("1", "completed")]
    assert all(math.isfinite(float(r["value"])) for r in rows)
    groups, names = set(), set()
    for job in ("0", "1"):
        job_dir = sweep_dir / job
        assert (job_dir / "checkpoints" / "last.ckpt").is_file()
        wandb_cfg = yaml.safe_load((job_dir / "csv" / "hparams.yaml").read_text())["logger"]
        groups.add(wandb_cfg["wandb"]["group"])
        names.add(wandb_cfg["wandb"]["name"])
        # W&B's own log of the offline run: it ended with exit code 0 (wandb.finish ran)
        assert "got exitcode: 0" in (job_dir / "wandb" / "debug.log").read_text()
    assert groups == {f"train/{sweep_dir.parent.name}/{sweep_dir.name}"}
    assert {n.split(":")[0] for n in names} == {"0", "1"}
    assert any("model=vae" in n for n in names)
    best = yaml.safe_load((sweep_dir / "best.yaml").read_text())
    assert best["value"] == min(float(r["value"]) for r in rows)


def test_a_failed_job_keeps_the_others_and_the_sweep_names_it(tmp_path: Path) -> None:
    sweep_dir, proc = sweep(tmp_path, "model=vae", "model.latent_dim=8,0", "logger=csv",
                            check=False)  # fmt: skip
    assert proc.returncode != 0
    ok, failed = summary(sweep_dir)
    assert ok["status"] == "completed" and (sweep_dir / "0" / "checkpoints" / "last.ckpt").is_file()
    assert failed["status"] == "failed" and "latent_dim" in failed["error"]
    console = " ".join((proc.stdout + proc.stderr).split())
    assert re.search(r"sweep job 1 \(.*model.latent_dim=0.*\) failed", console)
    assert yaml.safe_load((sweep_dir / "best.yaml").read_text())["job"] == 0


def test_joblib_runs_jobs_in_parallel_processes_under_one_sweep_dir(tmp_path: Path) -> None:
    sweep_dir, _ = sweep(tmp_path, "model=gan,vae", "logger=csv", "hydra/launcher=joblib",
                         "hydra.launcher.n_jobs=2")  # fmt: skip
    assert [r["status"] for r in summary(sweep_dir)] == ["completed", "completed"]
    assert (sweep_dir / "0" / "checkpoints" / "last.ckpt").is_file()
    assert (sweep_dir / "1" / "checkpoints" / "last.ckpt").is_file()
    assert (sweep_dir / "best.yaml").is_file()


def test_optuna_search_writes_best_parameters(tmp_path: Path) -> None:
    sweep_dir, _ = sweep(tmp_path, "hparams_search=gan_optuna", "hydra.sweeper.n_trials=2",
                         "hydra.sweeper.sampler.n_startup_trials=2", "logger=csv")  # fmt: skip
    rows = summary(sweep_dir)
    assert len(rows) == 2 and all(r["status"] == "completed" for r in rows)
    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    # data.batch_size is fixed on the command line (TINY_RUN), which takes it out of the search
    assert set(results["best_params"]) == {"model.optimizer.lr", "model.loss", "model.n_critic"}
    assert results["best_value"] == pytest.approx(min(float(r["value"]) for r in rows))
    logged = (sweep_dir / "0" / "csv" / "metrics.csv").read_text()
    assert "val/fid_lenet" in logged  # the value each trial returned is the FID it logged


def test_vae_optuna_minimises_the_validation_loss(tmp_path: Path) -> None:
    cfg = compose_config("train", ["hparams_search=vae_optuna"], tmp_path)
    assert cfg.optimized_metric == "val/loss"
    assert cfg.model._target_ == "genlab.models.VAEModule"


def test_submitit_local_runs_a_one_job_sweep(tmp_path: Path) -> None:
    sweep_dir, _ = sweep(tmp_path, "model=vae", "logger=csv", "hydra/launcher=submitit_local",
                         "hydra.launcher.timeout_min=10")  # fmt: skip
    assert [r["status"] for r in summary(sweep_dir)] == ["completed"]
    assert (sweep_dir / "0" / "checkpoints" / "last.ckpt").is_file()
    assert any((sweep_dir / ".submitit").iterdir())  # submitit's own job folder


def test_slurm_launcher_takes_its_size_from_the_trainer() -> None:
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(config_dir())):
        cfg = compose("train", ["trainer=multinode", "trainer.num_nodes=3", "trainer.devices=8",
                                "hydra/launcher=slurm_ddp"], return_hydra_config=True)  # fmt: skip
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["_target_"].endswith("SlurmLauncher")
    assert (launcher["nodes"], launcher["tasks_per_node"], launcher["gpus_per_node"]) == (3, 8, 8)


def test_wandb_group_and_name_are_null_outside_a_sweep(tmp_path: Path) -> None:
    cfg = compose_config("train", [], tmp_path)
    assert cfg.logger.wandb.group is None and cfg.logger.wandb.name is None
    assert sweep_name("group") is None
