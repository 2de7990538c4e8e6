"""`make gpu-check`: one line without a GPU; a dry run of every row on the CPU; row isolation."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from benchmarks.gpu_check import DRY_RUN, SECTIONS, Check, Skipped, plan, run_checks
from benchmarks.gpu_check_cli import NO_GPU

from genlab.metrics.extractors import INCEPTION_WEIGHTS, inception_weights_path

ROOT = Path(__file__).resolve().parents[1]


def gpu_check(args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`make gpu-check ARGS=...` (the script itself where make is missing)."""
    if shutil.which("make"):
        command = ["make", "-s", "gpu-check", f"ARGS={args}"]
    else:
        command = [sys.executable, "-m", "benchmarks.gpu_check_cli", *args.split()]
    env = {**os.environ, "WANDB_MODE": "offline", **(env or {})}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)


@pytest.mark.slow  # a subprocess through make, which mutmut's copy of the tree does not have
def test_without_a_gpu_it_says_so_in_one_line_and_exits_0(tmp_path: Path) -> None:
    out = tmp_path / "check.json"
    done = gpu_check(f"--out {out}", env={"CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == NO_GPU
    assert not out.exists()


@pytest.mark.slow
def test_dry_run_measures_every_row_on_the_cpu(tmp_path: Path) -> None:
    out = tmp_path / "check.json"
    done = gpu_check(f"--dry-run --out {out}", env={"CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "GPU check" in done.stdout

    result = json.loads(out.read_text())
    assert result["dry_run"] is True and result["gpu"] is None
    planned = [(c.section, c.name) for c in plan(DRY_RUN, tmp_path, True, list(SECTIONS))]
    rows = {(row["section"], row["check"]): row for row in result["rows"]}
    assert list(rows) == planned  # every row, in order
    assert {section for section, _ in planned} == set(SECTIONS)
    inception = rows[("fid", "500 samples, inception")]
    for key, row in rows.items():
        if row is inception and not inception_weights_path().is_file():
            assert row["status"] == "skipped" and INCEPTION_WEIGHTS in row["note"]
            continue
        assert row["status"] == "ok", (key, row.get("error"))
        assert row["seconds"] > 0
    for (section, _), row in rows.items():
        if section in ("throughput", "compile"):
            assert math.isfinite(row["ratio"]) and row["ratio"] > 0
            assert row["framework_img_s"] > 0 and row["plain_img_s"] > 0
        if section == "fixed cost":  # with the share of the real step measured before it
            assert math.isfinite(row["genlab_ms"]) and math.isfinite(row["lightning_ms"])
            assert row["share_of_step"] == pytest.approx(row["genlab_ms"] / row["real_step_ms"])
    ddp = rows[("ddp", "gan, 2 CPU ranks over gloo")]
    assert ddp["ranks"] == 2 and ddp["fid_equal"] is True
    assert ddp["fid_ddp"] == pytest.approx(ddp["fid_single_device"], rel=1e-3)
    fid = rows[("fid", "500 samples, lenet")]
    assert fid["generate_s"] > 0 and fid["features_s"] > 0 and fid["frechet_s"] > 0


def test_a_row_that_fails_is_recorded_and_the_next_rows_run() -> None:
    def raises() -> dict:
        raise RuntimeError("out of memory\nthe rest of a long message")

    def missing_file() -> dict:
        raise Skipped("place weights.pth in /somewhere")

    checks = [
        Check("throughput", "fails", raises, 10.0),
        Check("fid", "cannot run here", missing_file, 10.0),
        Check("ddp", "works", lambda: {"result": "fine"}, 10.0),
    ]
    rows = run_checks(checks, budget_s=60.0)
    assert [row["status"] for row in rows] == ["error", "skipped", "ok"]
    assert rows[0]["error"] == "RuntimeError: out of memory"
    assert rows[1]["note"] == "place weights.pth in /somewhere"
    assert rows[2]["result"] == "fine"


def test_a_row_past_its_share_is_stopped() -> None:
    def sleeps() -> dict:
        time.sleep(30)
        return {}

    started = time.monotonic()
    rows = run_checks([Check("compile", "slow", sleeps, 0.5)], budget_s=60.0)
    assert time.monotonic() - started < 10
    assert rows[0]["status"] == "error" and "ran past its share" in rows[0]["error"]


def test_rows_after_the_budget_is_spent_are_recorded_as_skipped() -> None:
    now = [0.0]  # a clock that each row moves on by 6 s

    def takes_six_seconds() -> dict:
        now[0] += 6.0
        return {}

    checks = [Check("fid", f"row {i}", takes_six_seconds, 100.0) for i in range(3)]
    rows = run_checks(checks, budget_s=10.0, clock=lambda: now[0])
    assert [row["status"] for row in rows] == ["ok", "ok", "skipped"]  # 4 s left, then -2
    assert rows[2]["note"] == "budget of 10 s spent"
