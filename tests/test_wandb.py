"""What a run sends to W&B, read back from the offline run with W&B's own reader.

`wandb leet inspect` parses the run's `.wandb` transaction log, the file that
`wandb sync` uploads unchanged: what it shows is what the dashboard will show.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from genlab.train import train
from tests.helpers.runs import TINY_RUN, MakeConfig

pytestmark = pytest.mark.slow  # offline W&B runs read back with the wandb CLI

WANDB = str(Path(sys.executable).parent / "wandb")
RUN = [*TINY_RUN, "trainer.max_epochs=2", "tags=[test]"]


def inspect(run_dir: Path, *flags: str) -> str:
    (offline_run,) = run_dir.glob("wandb/offline-run-*")
    proc = subprocess.run([WANDB, "leet", "inspect", *flags, str(offline_run)],
                          capture_output=True, text=True, check=True, timeout=120)  # fmt: skip
    return proc.stdout


def summary(run_dir: Path) -> dict[str, Any]:
    return json.loads(inspect(run_dir, "--summary", "--json"))


def history_keys(run_dir: Path) -> set[str]:
    records = [json.loads(line) for line in inspect(run_dir, "--json").splitlines()]
    return {key for r in records if r["type"] == "history" for key in r["history"]["item"]}


@pytest.mark.parametrize(
    ("model", "scalars", "panels"),
    [
        ("gan", {"train/d_loss", "train/g_loss", "train/d_real", "train/d_fake", "val/d_loss"},
         {"samples/fixed_noise", "samples/interpolation"}),
        ("vae", {"train/loss", "train/recon", "train/kl", "val/elbo", "val/loss"},
         {"samples/fixed_noise", "samples/interpolation", "samples/reconstructions"}),
    ],
)  # fmt: skip
def test_an_offline_run_holds_config_curves_images_and_best_fid(
    make_config: MakeConfig, model: str, scalars: set[str], panels: set[str]
) -> None:
    cfg = make_config(overrides=[*RUN, f"model={model}"])
    train(cfg)
    run_dir = Path(cfg.paths.output_dir)
    run = summary(run_dir)
    assert run["state"] == "finished" and run["exit_code"] == 0
    assert run["tags"] == ["test"]
    assert run["config"]["model"]["_target_"].endswith(f"{model.upper()}Module")
    assert run["config"]["data"]["batch_size"] == 16
    assert run["config"]["params/total"] > 0
    assert scalars | {"val/fid_lenet", "val/kid_lenet", "val/is_lenet"} <= history_keys(run_dir)
    assert set(run["summary"]["val/fid_lenet"]) == {"min"}  # the best FID, not the last
    (offline_run,) = run_dir.glob("wandb/offline-run-*")
    for panel in panels:
        image = run["summary"][panel]
        assert image["_type"] == "images/separated" and image["captions"] == ["epoch 1"]
        assert (offline_run / "files" / image["filenames"][0]).is_file()
