"""genlab-eval's FID against NFE (`nfe_sweep`): every point of an iterative checkpoint's sweep
scored on one sample count, a GAN as one NFE = 1 point, and a bad sweep refused in one line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from genlab.errors import ConfigError
from genlab.eval import evaluate
from tests.helpers.checkpoints import write_checkpoint
from tests.helpers.runs import compose_config
from tests.helpers.sample_files import digits, write_npz

TINY_FLOW = ["model=flow", "model.net.width=8"]


def eval_config(tmp_path: Path, *overrides: str):
    reference = write_npz(tmp_path / "ref.npz", digits("test", 40)[0])
    return compose_config(
        "eval",
        [f"reference={reference}", "metrics.n_samples=12", "memorization.enabled=false",
         f"paths.cache_dir={tmp_path / 'cache'}", *overrides],
        tmp_path / "eval",
    )  # fmt: skip


def test_fid_against_nfe_has_every_point_and_a_gan_at_nfe_one(tmp_path: Path) -> None:
    flow = write_checkpoint(tmp_path / "flow", TINY_FLOW)
    gan = write_checkpoint(tmp_path / "gan", ["model=gan"])
    cfg = eval_config(
        tmp_path, f"samples=[{flow},{gan}]", "names=[flow,gan]",
        "nfe_sweep.steps=[1,3]", "nfe_sweep.solvers=[euler,heun,dpmpp_2m]",
    )  # fmt: skip
    written = evaluate(cfg)
    rows = written["nfe_sweep"]
    points = [(r["source"], r["solver"], r["steps"], r["nfe"]) for r in rows]
    # Heun on the flow's own grid: an Euler step from t = 0 and one to t = 1, 2 between
    assert points == [
        ("flow", "euler", 1, 1), ("flow", "euler", 3, 3),
        ("flow", "heun", 1, 1), ("flow", "heun", 3, 4),
        ("flow", "dpmpp_2m", 1, 1), ("flow", "dpmpp_2m", 3, 3),
        ("gan", "one pass", None, 1),
    ]  # fmt: skip
    assert all(r["fid"] > 0 and r["images_per_second"] > 0 for r in rows)
    # one step of each sampler is the same Euler step from the same noise: the same FID
    one_step = {r["fid"] for r in rows if r["steps"] == 1}
    assert len(one_step) == 1
    assert len({r["fid"] for r in rows if r["source"] == "flow"}) > 1
    stem = Path(str(cfg.table))
    with open(stem.with_name(stem.name + "_nfe.csv")) as f:
        assert len(list(csv.DictReader(f))) == len(rows)
    assert "| flow | heun | 3 | 4 |" in stem.with_name(stem.name + "_nfe.md").read_text()
    assert Image.open(stem.with_name(stem.name + "_nfe.png")).size[0] > 400
    assert json.loads(Path(cfg.out_file).read_text())["nfe_sweep"] == rows


@pytest.mark.parametrize(
    ("sweep", "message"),
    [
        (["nfe_sweep.steps=[0,2]"], r"^nfe_sweep of .*sampling\.steps must be a positive integer"),
        (["nfe_sweep.steps=[2]", "nfe_sweep.solvers=[rk4]"], r"sampling\.solver='rk4' is not"),
        (["nfe_sweep.steps=4"], r"^nfe_sweep\.steps must be a list of step counts, got"),
    ],
)
def test_a_bad_sweep_is_one_line_before_any_sampling(tmp_path: Path, sweep, message) -> None:
    flow = write_checkpoint(tmp_path / "flow", TINY_FLOW)
    cfg = eval_config(tmp_path, f"ckpt_path={flow}", *sweep)
    with pytest.raises(ConfigError, match=message) as err:
        evaluate(cfg)
    assert "\n" not in str(err.value)
