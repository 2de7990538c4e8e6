"""`make bench ARGS=--quick` runs and writes its JSON (benchmarks are never timed assertions)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_quick_bench_writes_its_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    if shutil.which("make"):
        command = ["make", "-s", "bench", f"ARGS=--quick --out {out}"]
    else:
        command = [sys.executable, "scripts/bench.py", "--quick", "--out", str(out)]
    env = {**os.environ, "WANDB_MODE": "offline"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "training throughput" in done.stdout

    result = json.loads(out.read_text())
    assert {"environment", "settings", "training", "evaluation", "memory"} <= result.keys()
    assert {"date", "versions", "device", "cpu"} <= result["environment"].keys()
    rows = {(row["model"], row["precision"]) for row in result["training"]}
    assert {("gan", "32-true"), ("vae", "32-true"), ("gan", "bf16-mixed")} <= rows
    for row in result["training"]:
        for key in ("framework_img_s", "plain_img_s", "ratio"):
            assert math.isfinite(row[key]) and row[key] > 0, (row, key)
        assert len(row["framework_window_s"]) == len(row["plain_window_s"]) == 3
    evaluation = result["evaluation"]
    for key in ("generate_gan_img_s", "generate_vae_img_s", "features_s", "frechet_s",
                "fid_eval_s", "real_features_s", "real_features_cached_s"):  # fmt: skip
        assert evaluation[key] > 0, key
    assert result["memory"]["peak_rss_mb"] > 0


@pytest.mark.parametrize("argv", [["--window", "0"], ["--models", "gan", "--windows", "0"]])
def test_bad_arguments_are_refused(argv: list[str]) -> None:
    from genlab.bench.cli import parse_args

    with pytest.raises(SystemExit):
        parse_args(argv)


def test_the_plain_loop_refuses_options_it_does_not_reproduce() -> None:
    from genlab.bench.training import options_the_plain_loop_lacks
    from tests.helpers.tiny import tiny_gan, tiny_vae

    assert options_the_plain_loop_lacks(tiny_gan()) == []
    lacking = options_the_plain_loop_lacks(tiny_gan(r1_gamma=1.0, augment=["cutout"]))
    assert lacking == ["model.r1_gamma", "model.augment"]
    assert options_the_plain_loop_lacks(tiny_vae(objective="iwae")) == ["model.objective"]
