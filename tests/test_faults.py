"""Faults during a run: a full disk, a kill during a write, a run directory that is taken,
a run that skips most of its steps. Each ends in one line, and no work is lost."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from genlab.callbacks import NonFiniteLossError
from genlab.models import VAEModule
from genlab.train import train
from genlab.utils.files import remove_stale_temp_files, write_atomically
from genlab.utils.paths import config_dir
from genlab.utils.run_dir_check import ExistingRunCheck
from genlab.utils.run_result import read_result
from tests.helpers.cli import BIN, run
from tests.helpers.nan import nan_on_training_calls, poison_gan_discriminator_loss
from tests.helpers.runs import TINY_RUN_NO_METRICS, compose_config

HELPERS = Path(__file__).parent / "helpers"
TINY = TINY_RUN_NO_METRICS


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


@pytest.mark.slow
def test_a_full_disk_mid_run_ends_in_one_line_and_keeps_the_last_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The second write of last.ckpt (at the end of epoch 1) meets a full disk.
    paths = [str(HELPERS / "disk_full"), *filter(None, [os.environ.get("PYTHONPATH")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))
    monkeypatch.setenv("GENLAB_TEST_DISK_FULL_AT_WRITE", "2")
    run_dir = tmp_path / "run"
    proc = run(
        [str(BIN / "genlab-train"), *TINY, "model=vae", "trainer.max_epochs=3",
         f"hydra.run.dir={run_dir}", f"paths.cache_dir={tmp_path / 'cache'}"],
        cwd=tmp_path, check=False,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    last = run_dir / "checkpoints" / "last.ckpt"
    assert proc.returncode == 2, output
    assert "Traceback" not in output
    assert error_lines(proc.stderr) == [
        f"error: no space left on device while writing {last}; {last} is kept: free disk "
        f"space, then resume with ckpt_path={run_dir}"
    ]
    result = read_result(run_dir)
    assert result["status"] == "failed" and "no space left on device" in result["error"]
    kept = torch.load(last, weights_only=True)
    assert kept["epoch"] == 0 and kept["global_step"] == 3  # the first epoch's, whole
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))


def dead_pid() -> int:
    """The id of a process that has exited."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(proc.stdout)


def test_stale_temp_files_of_dead_writers_go_and_live_writes_stay(tmp_path: Path) -> None:
    host = os.uname().nodename
    stale = tmp_path / "checkpoints" / f".last.ckpt.{host}~{dead_pid()}.x1.tmp"
    live = tmp_path / "real_features" / f".mnist.pt.{host}~{os.getpid()}.x2.tmp"
    foreign_old = tmp_path / ".best.ckpt.othernode~12.x3.tmp"
    foreign_new = tmp_path / ".best.ckpt.othernode~13.x4.tmp"
    for path in (stale, live, foreign_old, foreign_new):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a file")
    two_hours_ago = time.time() - 7200
    os.utime(foreign_old, (two_hours_ago, two_hours_ago))
    assert sorted(remove_stale_temp_files(tmp_path)) == sorted([stale, foreign_old])
    assert live.exists() and foreign_new.exists()


def test_a_writer_killed_mid_write_leaves_a_temp_file_that_the_next_start_removes(
    tmp_path: Path,
) -> None:
    target = tmp_path / "checkpoints" / "last.ckpt"
    target.parent.mkdir()
    target.write_bytes(b"the previous checkpoint")
    code = (
        "import sys, time; from pathlib import Path; from genlab.utils.files import "
        "write_atomically; write_atomically(Path(sys.argv[1]), "
        "lambda tmp: (tmp.write_bytes(b'half'), time.sleep(60)))"
    )
    writer = subprocess.Popen([sys.executable, "-c", code, str(target)])
    deadline = time.monotonic() + 60
    while not list(target.parent.glob(".last.ckpt.*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert remove_stale_temp_files(tmp_path) == []  # its writer is alive: left alone
    writer.kill()
    writer.wait()
    (leftover,) = target.parent.glob(".last.ckpt.*.tmp")
    assert remove_stale_temp_files(tmp_path) == [leftover]
    assert target.read_bytes() == b"the previous checkpoint"
    write_atomically(target, lambda tmp: tmp.write_bytes(b"new"))  # and writes go on
    assert [p.name for p in target.parent.iterdir()] == ["last.ckpt"]


def test_a_run_that_skips_most_steps_fails_and_one_that_skips_a_few_warns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    overrides = [*TINY, "trainer.max_epochs=2", "callbacks.nan_guard.action=skip"]
    # every VAE step has a NaN loss: nothing trains
    terms = nan_on_training_calls(VAEModule.negative_elbo_terms, bad_calls=set(range(1, 100)))
    with monkeypatch.context() as patch:
        patch.setattr(VAEModule, "negative_elbo_terms", terms)
        with pytest.raises(NonFiniteLossError) as info:
            train(compose_config("train", [*overrides, "model=vae"], tmp_path / "vae"))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(
        "skipped 3 of 3 optimizer steps (100%) with a non-finite loss, more than "
        "callbacks.nan_guard.max_skip_fraction=0.5: the run is not training; "
        "no checkpoint was saved before it"
    )
    # two of the GAN's 12 optimizer steps: the run completes and says so
    poison_gan_discriminator_loss(monkeypatch, bad_calls={2, 3})
    warnings: list[str] = []
    train(compose_config("train", overrides, tmp_path / "gan"), warnings=warnings)
    assert warnings == ["skipped 2 of 12 optimizer steps (16.7%) with a non-finite loss"]


@pytest.mark.slow
def test_a_run_directory_is_refused_to_a_new_run_and_continued_in_place(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    command = [str(BIN / "genlab-train"), *TINY, "model=vae", f"hydra.run.dir={run_dir}",
               f"paths.cache_dir={tmp_path / 'cache'}"]  # fmt: skip
    run(command, cwd=tmp_path)
    files = ["checkpoints/last.ckpt", ".hydra/config.yaml", "result.yaml", "csv/metrics.csv"]
    before = {name: (run_dir / name).read_bytes() for name in files}

    proc = run([*command, "model.beta=2"], cwd=tmp_path, check=False)  # a new run, same dir
    assert proc.returncode == 2
    assert error_lines(proc.stderr) == [
        f"error: hydra.run.dir={run_dir} already holds a run, whose config.yaml, result.yaml, "
        "metrics.csv and checkpoints a new run would overwrite; choose another directory, or "
        f"continue that run with ckpt_path={run_dir}"
    ]
    # genlab-sample (and genlab-eval) never continue a run: their config would replace its own
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    proc = run([str(BIN / "genlab-sample"), f"ckpt_path={ckpt}", f"hydra.run.dir={run_dir}"],
               cwd=tmp_path, check=False)  # fmt: skip
    assert proc.returncode == 2
    (line,) = error_lines(proc.stderr)
    assert line.endswith("a new run would overwrite; choose another directory")
    assert {name: (run_dir / name).read_bytes() for name in files} == before

    run([*command, f"ckpt_path={run_dir}", "trainer.max_epochs=2"], cwd=tmp_path)  # in place
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1
    rows = (run_dir / "csv" / "metrics.csv").read_text().splitlines()
    step = rows[0].split(",").index("step")
    steps = {int(float(row.split(",")[step])) for row in rows[1:]}
    assert steps == {0, 1, 2, 3, 4, 5}  # the first epoch's rows are kept, the second's added
    assert "max_epochs: 2" in (run_dir / ".hydra" / "config.yaml").read_text()


def test_a_sweep_directory_that_holds_a_sweep_is_refused(tmp_path: Path) -> None:
    (tmp_path / "0" / ".hydra").mkdir(parents=True)
    (tmp_path / "0" / ".hydra" / "config.yaml").write_text("seed: 1\n")
    with initialize_config_dir(version_base="1.3", config_dir=str(config_dir())):
        config = compose("train", [f"hydra.sweep.dir={tmp_path}"], return_hydra_config=True)
    with pytest.raises(SystemExit) as exit_:
        ExistingRunCheck().on_multirun_start(config)
    assert exit_.value.code == 2
