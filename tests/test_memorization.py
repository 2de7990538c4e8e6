"""The memorization criteria of the evaluation harness, on points placed on both sides of
every threshold: the near-copy ratio d1 < d2 / 3 (Yoon et al. 2023), the identical-image
RMS, and authenticity's radius (Alaa et al. 2022). The end-to-end check (training digits
fed back as samples are copies, held-out digits are not) is in test_eval_sources.py."""

from __future__ import annotations

import math

import pytest
import torch

from genlab.config.compose import compose_config
from genlab.evaluation.image_files import ImageSet
from genlab.evaluation.memorization import (
    IDENTICAL_RMS,
    NEAR_COPY_RATIO,
    Memorization,
    Neighbours,
    near_copies,
    nearest_training,
)
from genlab.evaluation.references import RealImages, TrainingData

SHAPE = (1, 4, 4)  # 16 pixel values: the RMS distance is the l2 distance / 4


def neighbours(nearest: list[float], second: list[float]) -> Neighbours:
    return Neighbours(
        torch.tensor(nearest, dtype=torch.float64),
        torch.tensor(second, dtype=torch.float64),
        torch.zeros(len(nearest), dtype=torch.long),
    )


def test_the_criteria_are_the_papers() -> None:
    assert NEAR_COPY_RATIO == 1 / 3
    assert IDENTICAL_RMS < 2 / 255 / 10  # far below one uint8 step


def test_a_near_copy_is_nearer_than_a_third_of_the_second_nearest() -> None:
    # d2 = 3: below d1 = 1 a copy, at or above it not
    flags = near_copies(neighbours([0.99, 1.0, 1.01, 0.5, 2.9], [3.0, 3.0, 3.0, 3.0, 3.0]))
    assert flags.tolist() == [True, False, False, True, False]


def test_a_sample_identical_to_a_duplicated_training_image_is_a_copy() -> None:
    # a training image held twice puts both neighbours at ~0, so the ratio alone misses it
    flags = near_copies(neighbours([0.9e-4, 1e-4, 1.1e-4, 0.0], [2e-4, 2e-4, 2e-4, 0.0]))
    assert flags.tolist() == [True, False, False, True]


def test_nearest_training_finds_the_two_nearest_rows_and_the_nearest_index() -> None:
    train = torch.tensor([[0.0, 0.0], [3.0, 4.0], [1.0, 0.0], [10.0, 0.0]], dtype=torch.float64)
    found = nearest_training(torch.tensor([[0.0, 0.1], [9.0, 0.0]], dtype=torch.float64), train)
    assert found.index.tolist() == [0, 3]
    assert found.nearest.tolist() == pytest.approx([0.1, 1.0])
    assert found.second.tolist() == pytest.approx([math.hypot(1.0, 0.1), math.hypot(6.0, 4.0)])


def greys(*values: float) -> torch.Tensor:
    """One flat image of SHAPE per value."""
    return torch.stack([torch.full(SHAPE, value) for value in values])


def training_data(pixels: torch.Tensor, features: torch.Tensor) -> TrainingData:
    return TrainingData("train", RealImages(ImageSet(pixels), features), heldout=None)


def test_pixel_distances_are_rms_per_value() -> None:
    """The thresholds are on the RMS over pixel values, not on the l2 norm of the image."""
    train = greys(-0.6, 0.0, 0.6)
    features = torch.arange(3.0).unsqueeze(1)
    memorization = Memorization(training_data(train, features))
    # every pixel off by 0.5e-4 from the middle image: RMS 0.5e-4 (identical), l2 2e-4;
    # off by 0.14 and 0.16: RMS d1 = 0.14 < 0.46 / 3 (a copy) and 0.16 > 0.44 / 3 (not)
    samples = greys(0.5e-4, 0.14, 0.16, -0.3)
    stats, by_pixels = memorization.statistics(samples, torch.zeros(4, 1))
    assert by_pixels is not None
    assert by_pixels.nearest.tolist() == pytest.approx([0.5e-4, 0.14, 0.16, 0.3])
    assert by_pixels.second.tolist() == pytest.approx([0.6 - 0.5e-4, 0.46, 0.44, 0.3])
    assert by_pixels.index.tolist()[:3] == [1, 1, 1]
    assert stats["copied_fraction"] == 0.5  # the first two
    assert stats["nn_pixel_distance_median"] == pytest.approx(0.14)  # torch's lower median


def test_authenticity_counts_samples_outside_their_nearest_training_points_radius() -> None:
    # training features 0, 1, 10, 14: each one's nearest other training point is at 1, 1, 4, 4
    features = torch.tensor([[0.0], [1.0], [10.0], [14.0]])
    memorization = Memorization(training_data(torch.zeros(4, *SHAPE), features))
    queries = torch.tensor([[-0.99], [-1.01], [17.9], [18.1], [0.5], [5.5], [-1.0], [18.0]])
    stats, _ = memorization.statistics(torch.zeros(8, *SHAPE), queries)
    # authentic: -1.01 (1.01 > 1 from 0), 18.1 (4.1 > 4 from 14), 5.5 (4.5 > 1 from 1);
    # not: -0.99, 17.9, 0.5 inside the radius, and -1.0, 18.0 on it
    assert stats["authenticity"] == pytest.approx(3 / 8)
    assert stats["nn_feature_distance_median"] == pytest.approx(1.01)  # the lower median


def test_samples_of_another_shape_get_feature_statistics_only() -> None:
    memorization = Memorization(training_data(torch.zeros(4, *SHAPE), torch.randn(4, 2)))
    stats, by_pixels = memorization.statistics(torch.zeros(3, 1, 8, 8), torch.randn(3, 2))
    assert by_pixels is None
    assert stats["copied_fraction"] is None and stats["nn_pixel_distance_median"] is None
    assert stats["authenticity"] is not None


def test_the_report_sets_the_samples_beside_the_held_out_baseline() -> None:
    train = greys(-0.6, 0.0, 0.6)
    heldout = RealImages(ImageSet(train + 0.3), torch.tensor([[0.2], [1.2], [2.2]]))
    training = TrainingData(
        "mnist", RealImages(ImageSet(train), torch.arange(3.0)[:, None]), heldout
    )
    report, _ = Memorization(training).report(ImageSet(train.clone()), torch.arange(3.0)[:, None])
    assert report["copied_fraction"] == 1.0 and report["authenticity"] == 0.0
    assert report["copied_fraction_heldout"] == pytest.approx(0.0)  # 0.3 vs 0.3 or 0.9
    assert report["nn_pixel_distance_median_heldout"] == pytest.approx(0.3)
    assert report["memorization_train_images"] == 3
    assert report["memorization_heldout_images"] == 3
    assert report["memorization_reference"] == "mnist"


def test_a_given_ratio_replaces_the_papers() -> None:
    train = greys(-0.6, 0.0, 0.6)
    memorization = Memorization(training_data(train, torch.arange(3.0)[:, None]), ratio=0.5)
    stats, _ = memorization.statistics(torch.full((1, *SHAPE), 0.16), torch.zeros(1, 1))
    assert stats["copied_fraction"] == 1.0  # 0.16 < 0.44 / 2, though not < 0.44 / 3


def test_genlab_eval_uses_the_papers_ratio_by_default() -> None:
    cfg = compose_config("eval", ["ckpt_path=unused.ckpt"])
    assert cfg.memorization.ratio == pytest.approx(NEAR_COPY_RATIO, abs=1e-4)
