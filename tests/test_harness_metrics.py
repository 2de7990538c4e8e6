"""The metrics genlab-eval adds to FID/KID/IS, each against values worked out by hand:
density and coverage, intra-class FID, and `repeats` (mean and standard deviation over seeds)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from genlab.eval import evaluate
from genlab.evaluation.conditional import intra_class_fid
from genlab.evaluation.scoring import over_seeds
from genlab.metrics.density_coverage import density_coverage
from tests.helpers.runs import compose_config
from tests.helpers.sample_files import digits, write_npz


def test_density_and_coverage_on_points_counted_by_hand() -> None:
    """1-d points, k=1. Real 0, 1, 2, 3, 10: radii 1, 1, 1, 1, 7 (10's nearest other real
    point is 3). Fakes 0.5, 2.0, 2.9, 9.5, 30 fall into 2, 3, 2, 1, 0 real balls:
    density = 8 / (1 * 5) = 1.6. Real points with a fake inside their ball: 0, 1, 2, 3, 10:
    coverage 5/5; with 31 in place of 9.5, 10's ball is empty: 4/5."""
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0], [10.0]])
    fake = torch.tensor([[0.5], [2.0], [2.9], [9.5], [30.0]])
    assert density_coverage(real, fake, k=1) == pytest.approx((1.6, 1.0))
    fake[3] = 31.0  # 0.5, 2.0, 2.9 hit 2 + 3 + 2 balls
    assert density_coverage(real, fake, k=1) == pytest.approx((7 / 5, 4 / 5))


def test_intra_class_fid_is_the_fid_of_each_class() -> None:
    """Class 0's samples are its real features (FID 0); class 1's are shifted by 2 in each
    of 3 dimensions, the same covariance: FID = |shift|^2 = 3 * 4 = 12. Class 2 has one
    sample, no covariance: left out. Mean (0 + 12) / 2 = 6."""
    generator = torch.Generator().manual_seed(0)
    real = torch.randn(60, 3, generator=generator, dtype=torch.float64)
    labels = torch.arange(60) % 3
    fake = real.clone()
    fake[labels == 1] += 2.0
    keep = (labels != 2) | (torch.arange(60) == 2)  # one sample of class 2
    mean, per_class = intra_class_fid(real, labels, fake[keep], labels[keep])
    assert per_class.keys() == {0, 1}
    assert per_class[0] == pytest.approx(0.0, abs=1e-6)
    assert per_class[1] == pytest.approx(12.0, rel=1e-6)
    assert mean == pytest.approx(6.0, rel=1e-6)


def test_over_seeds_reports_mean_and_sample_standard_deviation() -> None:
    """fid 1, 2, 6: mean 3, std sqrt(((1-3)^2 + (2-3)^2 + (6-3)^2) / 2) = sqrt(7)."""
    runs = [{"fid": 1.0, "recall": 0.5, "kid_mean": None}, {"fid": 2.0, "recall": 0.5,
            "kid_mean": None}, {"fid": 6.0, "recall": 0.5, "kid_mean": None}]  # fmt: skip
    combined = over_seeds(runs, [4, 5, 6])
    assert combined["fid"] == 3.0 and combined["fid_seeds_std"] == pytest.approx(math.sqrt(7))
    assert combined["recall_seeds_std"] == 0.0
    assert "kid_mean_seeds_std" not in combined  # a metric that does not apply stays null
    assert combined["per_seed"] == {"seed": [4, 5, 6], "fid": [1.0, 2.0, 6.0],
                                    "recall": [0.5, 0.5, 0.5]}  # fmt: skip
    assert combined["repeats"] == 3


def test_repeats_score_the_seeds_seed_to_seed_plus_n(tmp_path: Path) -> None:
    """repeats=3 from seed=0 draws three subsets of 100 of 300 digits; each seed's FID is
    what repeats=1 gives with that seed."""
    samples = write_npz(tmp_path / "s.npz", digits("train", 300)[0])
    reference = write_npz(tmp_path / "ref.npz", digits("test", 200)[0])

    def run(name: str, *overrides: str) -> dict:
        cfg = compose_config(
            "eval",
            [f"samples={samples}", f"reference={reference}", "metrics.n_samples=100",
             f"paths.cache_dir={tmp_path / 'cache'}", *overrides],
            tmp_path / name,
        )  # fmt: skip
        return evaluate(cfg)

    repeated = run("three", "repeats=3")
    single = run("one", "seed=2")
    fids = repeated["per_seed"]["fid"]
    assert repeated["per_seed"]["seed"] == [0, 1, 2] and len(set(fids)) == 3
    assert fids[2] == pytest.approx(single["fid"], rel=1e-9)
    assert repeated["fid"] == pytest.approx(sum(fids) / 3, rel=1e-9)
    assert repeated["fid_seeds_std"] == pytest.approx(torch.tensor(fids).std().item(), rel=1e-6)
    assert repeated["repeats"] == 3
