"""The console scripts as a user runs them: subprocesses, from another working directory."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from tests.helpers.cli import BIN, run
from tests.helpers.runs import TINY_RUN

pytestmark = pytest.mark.slow  # the console scripts as subprocesses


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few iterations of the quick-start GAN through `genlab-train`, launched outside the repo."""
    cwd = tmp_path_factory.mktemp("elsewhere")
    run_dir = cwd / "run"
    run(
        [str(BIN / "genlab-train"), "experiment=quickstart", *TINY_RUN,
         f"hydra.run.dir={run_dir}", f"paths.cache_dir={cwd / 'cache'}"],
        cwd=cwd,
    )  # fmt: skip
    return run_dir


def test_train_leaves_config_checkpoints_samples_csv_and_wandb(quickstart_run: Path) -> None:
    assert (quickstart_run / ".hydra" / "config.yaml").is_file()
    assert (quickstart_run / ".hydra" / "overrides.yaml").is_file()
    assert (quickstart_run / "checkpoints" / "last.ckpt").is_file()
    assert (quickstart_run / "checkpoints" / "best.ckpt").is_file()
    grid = Image.open(quickstart_run / "samples" / "epoch_0000.png")
    assert grid.size[0] > 28 * 4  # a grid, not one image
    header = (quickstart_run / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    for key in ("train/g_loss", "train/d_loss", "train/d_real", "train/d_fake", "val/d_loss"):
        assert key in header
    offline_runs = list((quickstart_run / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(offline_runs) == 1


def test_checkpoint_carries_the_run_config(quickstart_run: Path) -> None:
    ckpt = torch.load(quickstart_run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["genlab_config"]["model"]["_target_"] == "genlab.models.GANModule"
    assert ckpt["genlab_config"]["data"]["batch_size"] == 16


def test_sample_writes_a_grid_and_an_image_folder(quickstart_run: Path, tmp_path: Path) -> None:
    ckpt = quickstart_run / "checkpoints" / "last.ckpt"
    grid_dir = tmp_path / "grid"
    run([str(BIN / "genlab-sample"), f"ckpt_path={ckpt}", "n=16", f"hydra.run.dir={grid_dir}"],
        cwd=tmp_path)  # fmt: skip
    assert Image.open(grid_dir / "samples.png").size == (2 + 8 * 30, 2 + 2 * 30)
    out = tmp_path / "folder"
    run([str(BIN / "genlab-sample"), f"ckpt_path={ckpt}", "n=20", f"out_dir={out}",
         f"hydra.run.dir={tmp_path / 'r'}"], cwd=tmp_path)  # fmt: skip
    files = sorted((out / "samples").glob("*.png"))
    assert len(files) == 20
    assert Image.open(files[0]).size == (28, 28)


def test_sample_rejects_a_truncated_checkpoint_in_one_line(
    quickstart_run: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes((quickstart_run / "checkpoints" / "last.ckpt").read_bytes()[:1000])
    proc = run([str(BIN / "genlab-sample"), f"ckpt_path={broken}", f"hydra.run.dir={tmp_path}"],
               cwd=tmp_path, check=False)  # fmt: skip
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cannot be read" in errors[0] and str(broken) in errors[0]


def test_unknown_top_level_key_fails_before_training(tmp_path: Path) -> None:
    proc = run([str(BIN / "genlab-train"), "+trainr.max_epochs=1", f"hydra.run.dir={tmp_path}"],
               cwd=tmp_path, check=False)  # fmt: skip
    assert proc.returncode == 2
    assert "error: trainr is not a top-level config key; the keys are task_name," in proc.stderr
    assert not (tmp_path / "checkpoints").exists()


def test_train_resumes_from_a_run_directory(quickstart_run: Path, tmp_path: Path) -> None:
    resumed = tmp_path / "resumed"
    run([str(BIN / "genlab-train"), "experiment=quickstart", *TINY_RUN, "trainer.max_epochs=2",
         "logger=csv", f"ckpt_path={quickstart_run}", f"hydra.run.dir={resumed}",
         f"paths.cache_dir={tmp_path / 'cache'}"], cwd=tmp_path)  # fmt: skip
    checkpoint = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["epoch"] == 1  # epoch 0 came from the first run, epoch 1 ran here


def test_train_rejects_a_truncated_checkpoint_before_training(
    quickstart_run: Path, tmp_path: Path
) -> None:
    good = quickstart_run / "checkpoints" / "last.ckpt"
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(good.read_bytes()[:1000])
    run_dir = tmp_path / "r"
    proc = run([str(BIN / "genlab-train"), f"ckpt_path={broken}", f"hydra.run.dir={run_dir}"],
               cwd=tmp_path, check=False)  # fmt: skip
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cannot be read" in errors[0] and str(broken) in errors[0]
    assert not (run_dir / "checkpoints").exists()
    assert torch.load(good, weights_only=True)["genlab_config"]  # the good one still loads


def test_an_unwritable_output_directory_fails_before_training(tmp_path: Path) -> None:
    in_the_way = tmp_path / "a_file"
    in_the_way.write_text("not a directory")
    proc = run([str(BIN / "genlab-train"), f"hydra.run.dir={in_the_way / 'run'}"],
               cwd=tmp_path, check=False)  # fmt: skip
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cannot write to the output directory" in errors[0]
    assert "Seed set" not in proc.stdout + proc.stderr  # nothing was built


def test_a_disk_without_room_for_checkpoints_fails_before_training(tmp_path: Path) -> None:
    """A disk is full relative to what a run needs: ask for more than any disk has."""
    proc = run([str(BIN / "genlab-train"), f"hydra.run.dir={tmp_path / 'run'}",
                "hydra.callbacks.output_dir_check.min_free_mb=1e12"],
               cwd=tmp_path, check=False)  # fmt: skip
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "MB free on the disk of the output directory" in errors[0]
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["genlab-train", "model=gann"],
         "error: model=gann is not an option of the config group `model`; choose one of "
         "diffusion, edm, flow, gan, vae"),
        (["genlab-train", "trainer.max_epoch=3"],
         "error: trainer.max_epoch is not a config key; keys of trainer: _target_, accelerator,"),
        (["genlab-train", "-m", "seed=1,2", "model=gan,vea"], "error: model=vea is not an option"),
        (["genlab-train", "trainer.max_epochs=ten"],
         "error: trainer.max_epochs: Value 'ten' of type 'str' could not be converted to Integer"),
        (["genlab-train", "seed=ten"],
         "error: seed: Value 'ten' of type 'str' could not be converted to Integer"),
        (["genlab-eval"], "error: ckpt_path must be given"),
        (["genlab-sample", "n=4", "ckpt_path=missing.ckpt"],
         "error: checkpoint missing.ckpt does not exist"),
    ],
)  # fmt: skip
def test_a_typo_on_the_command_line_fails_in_one_line(
    tmp_path: Path, args: list[str], message: str
) -> None:
    """Run directories at their defaults (below the working directory), as users run."""
    proc = run([str(BIN / args[0]), *args[1:]], cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]  # one line, nothing else
    assert proc.stderr.startswith(message)
    assert not list(tmp_path.glob("**/*.ckpt"))
