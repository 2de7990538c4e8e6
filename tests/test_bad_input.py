"""Bad input ends in one clear line (or a warning where the run can go on), and no work is
lost: each case here once ended in a traceback, a hang or a silent surprise."""

from __future__ import annotations

import csv
import logging
import math
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import wandb
import yaml
from omegaconf import OmegaConf

from genlab.config import resolvers
from genlab.config.instantiate import build
from genlab.config.overrides import check_overrides
from genlab.errors import ConfigError
from genlab.eval import evaluate
from genlab.runs.run_logging import finish_wandb
from genlab.sample import sample
from genlab.train import train
from genlab.utils.precision import resolve_cpu_precision
from tests.helpers.runs import TINY_RUN, MakeConfig

BIN = Path(sys.executable).parent


# --- the command line --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (["model.optimizer.lr=[1,"], r"^cannot parse the override 'model.optimizer.lr=\[1,' "),
        (["trainer.max_epochs=1", "paths.data_dir=/tmp/my (data)"], r"quote a value that holds"),
        (["hydra.run.dir=/tmp/my", "dir"], r"^'dir' is not an override .* holds a space: quote"),
        (["paths.data_dir=/tmp/a,b"], r"a comma makes a sweep; quote the value"),
    ],
)
def test_an_override_hydra_cannot_parse_is_one_line(args: list[str], pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern) as err:
        check_overrides("train", args)
    assert "\n" not in str(err.value)


def test_a_sweep_over_comma_separated_values_is_still_allowed() -> None:
    check_overrides("train", ["-m", "seed=1,2", "paths.data_dir=/tmp/a b"])


# --- genlab-train ------------------------------------------------------------------------


def test_batch_size_one_with_batch_norm_fails_before_training(make_config: MakeConfig) -> None:
    cfg = make_config(overrides=[*TINY_RUN, "logger=csv", "data.batch_size=1"])
    with pytest.raises(
        ConfigError, match=r"^data.batch_size=1 cannot train generator\.\S+ \(Batch"
    ):
        train(cfg)
    assert not (Path(cfg.paths.output_dir) / "checkpoints").exists()


def test_an_optimized_metric_nothing_logs_fails_before_training(make_config: MakeConfig) -> None:
    cfg = make_config(overrides=[*TINY_RUN, "logger=csv", "optimized_metric=val/nothing"])
    with pytest.raises(ConfigError, match=r"^optimized_metric=val/nothing is not logged .*val/fid"):
        train(cfg)
    assert not (Path(cfg.paths.output_dir) / "checkpoints").exists()


@pytest.mark.parametrize(
    "overrides",
    [
        ["model=gan", "model.gradient_penalty=10", "model.r1_gamma=10"],
        ["model=vae"],
        ["model=vae", "model.objective=iwae", "model.iw_samples=2"],
    ],
)
def test_the_declared_metric_names_are_what_a_run_logs(
    make_config: MakeConfig, tmp_path: Path, overrides: list[str]
) -> None:
    """What check_optimized_metric accepts is what the model and the metrics really log."""
    cfg = make_config(overrides=[*TINY_RUN, "logger=csv", *overrides])
    train(cfg)
    header = (tmp_path / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    logged = {name for name in header if name.startswith(("train/", "val/"))}
    declared = set(build("model", cfg.model).logged_metrics())
    if cfg.get("metrics"):
        declared |= build("metrics", cfg.metrics).logged_metrics()
    assert logged == declared


def test_16_mixed_on_a_cpu_warns_and_records_what_runs(
    make_config: MakeConfig, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = make_config(overrides=[*TINY_RUN, "logger=csv", "trainer.precision=16-mixed"])
    with caplog.at_level(logging.WARNING, logger="genlab"):
        train(cfg)
    assert "trainer.precision=16-mixed runs as bf16-mixed on the CPU" in caplog.text
    stored = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert stored["genlab_config"]["trainer"]["precision"] == "bf16-mixed"


def test_16_mixed_is_kept_where_a_gpu_runs_it(
    make_config: MakeConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    cfg = make_config(overrides=["trainer.precision=16-mixed", "trainer.accelerator=auto"])
    resolve_cpu_precision(cfg)
    assert cfg.trainer.precision == "16-mixed"


def test_a_vae_diverging_with_the_nan_guard_off_ends_cleanly(
    make_config: MakeConfig, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No guard: the run goes on with NaN losses, and the NaN samples are caught before FID."""
    overrides = ["model=vae", "model.optimizer.lr=1e6", "callbacks.nan_guard=null"]
    cfg = make_config(overrides=[*TINY_RUN, "logger=csv", *overrides])
    with caplog.at_level(logging.WARNING, logger="genlab"):
        train(cfg)
    assert "generated images hold NaN or infinite values at epoch 0" in caplog.text
    rows = list(csv.DictReader((tmp_path / "csv" / "metrics.csv").open()))
    assert any(math.isnan(float(row["train/loss"])) for row in rows if row.get("train/loss"))


# --- genlab-sample and genlab-eval -------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Untrained GAN and VAE checkpoints, as `load_model` reads them."""
    from tests.helpers.runs import compose_config

    made = {}
    for name in ("gan", "vae"):
        folder = tmp_path_factory.mktemp(name)
        cfg = compose_config("train", [f"model={name}", "logger=csv"], folder)
        model = build("model", cfg.model)
        made[name] = folder / "last.ckpt"
        run_config = OmegaConf.to_container(cfg, resolve=True)
        torch.save({"genlab_config": run_config, "state_dict": model.state_dict()}, made[name])
    return made


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        (["n=abc"], r"^n must be an integer, got 'abc'$"),
        (["n=0"], r"^n must be >= 1, got 0$"),
        (["device=cuda"], r"^device=cuda but this machine has no usable CUDA GPU; use device=cpu$"),
        (["device=gpu0"], r"^device=gpu0 is not a device"),
    ],
)
def test_sample_rejects_bad_input_in_one_line(
    make_config: MakeConfig,
    checkpoints: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    overrides: list[str],
    pattern: str,
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = make_config("sample", [f"ckpt_path={checkpoints['gan']}", *overrides])
    with pytest.raises(ConfigError, match=pattern):
        sample(cfg)


def test_sample_rejects_an_out_dir_that_is_a_file(
    make_config: MakeConfig, checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    in_the_way = tmp_path / "a_file"
    in_the_way.write_text("keep me")
    cfg = make_config("sample", [f"ckpt_path={checkpoints['gan']}", f"out_dir={in_the_way}"])
    with pytest.raises(ConfigError, match=r"^out_dir=.*a_file is a file, not a directory"):
        sample(cfg)
    assert in_the_way.read_text() == "keep me"


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        (["metrics.n_samples=abc"], r"^metrics.n_samples must be an integer, got 'abc'$"),
        (["iw_samples=0"], r"^iw_samples must be >= 1, got 0$"),
        (["device=cuda"], r"^device=cuda but this machine has no usable CUDA GPU"),
        (["device=cuda:1"], r"^device=cuda:1 but this machine has no usable CUDA GPU"),
    ],
)
def test_eval_rejects_bad_input_in_one_line(
    make_config: MakeConfig,
    checkpoints: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    overrides: list[str],
    pattern: str,
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = make_config("eval", [f"ckpt_path={checkpoints['vae']}", "metrics.n_samples=100",
                               *overrides])  # fmt: skip
    with pytest.raises(ConfigError, match=pattern):
        evaluate(cfg)
    assert not Path(cfg.out_file).exists()


def test_eval_rejects_an_out_file_that_is_a_directory(
    make_config: MakeConfig, checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    cfg = make_config("eval", [f"ckpt_path={checkpoints['vae']}", f"out_file={tmp_path}"])
    with pytest.raises(ConfigError, match=r"^out_file=.* is a directory; name a file"):
        evaluate(cfg)


def test_a_cuda_index_beyond_the_gpus_present_is_named(
    make_config: MakeConfig, checkpoints: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    cfg = make_config("sample", [f"ckpt_path={checkpoints['gan']}", "device=cuda:2"])
    with pytest.raises(ConfigError, match=r"has 2 CUDA GPU\(s\): use device=cuda:0 ... cuda:1"):
        sample(cfg)


# --- Weights & Biases --------------------------------------------------------------------


@pytest.fixture
def closed_port() -> int:
    """A local port nothing listens on (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.delenv("https_proxy", raising=False)
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    resolvers.wandb_unreachable.cache_clear()
    yield
    resolvers.wandb_unreachable.cache_clear()


@pytest.mark.usefixtures("credentials")
def test_wandb_credentials_without_a_connection_log_offline_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{closed_port}")
    with caplog.at_level(logging.WARNING, logger="genlab"):
        assert resolvers.wandb_offline()
        assert resolvers.wandb_offline()  # asked once per process: one warning
    warnings = [r for r in caplog.records if "W&B cannot be reached" in r.getMessage()]
    assert len(warnings) == 1 and f"127.0.0.1:{closed_port}" in warnings[0].getMessage()


@pytest.mark.usefixtures("credentials")
def test_wandb_credentials_with_a_connection_stay_online(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{server.getsockname()[1]}")
        assert not resolvers.wandb_offline()


def test_a_deleted_wandb_folder_gets_no_sync_advice(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.delenv("WANDB_SILENT", raising=False)  # W&B's closing lines are the point here

    def finished_run(delete: bool) -> str:
        run = wandb.init(project="genlab-test", dir=tmp_path, mode="offline")
        run.log({"x": 1.0})
        if delete:
            import shutil

            shutil.rmtree(tmp_path / "wandb")
        capfd.readouterr()
        finish_wandb(0)
        return capfd.readouterr().err

    assert "wandb sync" in finished_run(delete=False)  # the advice, for a folder that exists
    with caplog.at_level(logging.WARNING, logger="genlab"):
        closing = finished_run(delete=True)
    assert "wandb sync" not in closing
    assert "was deleted during the run: its W&B record is lost" in caplog.text


# --- the console scripts: the one line itself, result.yaml, the sweep table ---------------


def run_cli(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", **env}
    environment.pop("WANDB_SERVICE", None)
    return subprocess.run(
        args, cwd=cwd, env=environment, capture_output=True, text=True, timeout=600,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.mark.slow
def test_sample_and_eval_record_a_bad_input_in_result_yaml(
    checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    for script, bad in (("genlab-sample", "n=abc"), ("genlab-eval", "metrics.n_samples=abc")):
        run_dir = tmp_path / script
        proc = run_cli([str(BIN / script), f"ckpt_path={checkpoints['gan']}", bad,
                        f"hydra.run.dir={run_dir}"], cwd=tmp_path)  # fmt: skip
        assert proc.returncode == 2
        assert proc.stderr.strip().splitlines() == [f"error: {bad.split('=')[0]} must be an "
                                                    "integer, got 'abc'"]  # fmt: skip
        result = yaml.safe_load((run_dir / "result.yaml").read_text())
        assert result["status"] == "failed" and "must be an integer" in result["error"]


@pytest.mark.slow
def test_an_unquoted_path_with_a_space_is_one_line(tmp_path: Path) -> None:
    proc = run_cli([str(BIN / "genlab-train"), f"hydra.run.dir={tmp_path}/my", "run"], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: 'run' is not an override (key=value); if it belongs to "
        f"'hydra.run.dir={tmp_path}/my', that value holds a space: quote the whole override, "
        f"'hydra.run.dir={tmp_path}/my run'"
    ]


@pytest.mark.slow
def test_a_sweep_with_a_failed_job_still_prints_its_summary(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = run_cli(
        [str(BIN / "genlab-train"), "-m", *TINY_RUN, "data.batch_size=16,100000", "logger=csv",
         f"hydra.sweep.dir={sweep}", f"paths.cache_dir={tmp_path / 'cache'}"],
        tmp_path, COLUMNS="200",
    )  # fmt: skip
    assert proc.returncode == 1
    assert "sweep summary" in proc.stderr and "Traceback" not in proc.stderr
    table = proc.stderr[proc.stderr.index("sweep summary") :]
    assert "completed" in table and "DataConfigError: data.batch_size=100000 is larger" in table
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert [row["status"] for row in rows] == ["completed", "failed"]


@pytest.mark.slow
def test_wandb_credentials_without_network_train_offline(tmp_path: Path, closed_port: int) -> None:
    run_dir = tmp_path / "run"
    env = {"WANDB_API_KEY": "x" * 40, "WANDB_BASE_URL": f"http://127.0.0.1:{closed_port}"}
    args = [str(BIN / "genlab-train"), *TINY_RUN, f"hydra.run.dir={run_dir}",
            f"paths.cache_dir={tmp_path / 'cache'}"]  # fmt: skip
    environment = {**os.environ, "WANDB_SILENT": "true", **env}
    for name in ("WANDB_MODE", "WANDB_SERVICE", "HTTPS_PROXY", "https_proxy"):
        environment.pop(name, None)
    proc = subprocess.run(args, cwd=tmp_path, env=environment, capture_output=True, text=True,
                          timeout=600, stdin=subprocess.DEVNULL)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "W&B cannot be reached" in proc.stdout + proc.stderr
    assert len(list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))) == 1
    assert yaml.safe_load((run_dir / "result.yaml").read_text())["status"] == "completed"
