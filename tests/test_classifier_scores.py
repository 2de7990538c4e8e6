"""Classification Accuracy Score (Ravuri & Vinyals 2019) and the augmentation question: a
"generator" that returns labelled real training digits must teach a classifier as well as the
real digits do; one whose labels are shuffled must teach it nothing."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch

from genlab.errors import ConfigError
from genlab.eval import evaluate
from genlab.evaluation.classifier_scores import classifier_scores
from genlab.evaluation.image_files import ImageSet
from genlab.evaluation.references import RealImages, TrainingData
from tests.helpers.runs import compose_config
from tests.helpers.sample_files import digits, write_npz

CHANCE = 0.1  # ten digit classes


@pytest.mark.slow
def test_cas_of_real_digits_equals_the_real_classifier_and_shuffled_labels_score_chance(
    tmp_path: Path,
) -> None:
    """Through genlab-eval with two sources: 1,500 real training digits with their labels
    (each classifier trains on 600 of them), and the same digits with the labels shuffled.
    Every classifier trains for 80 steps of 64 images and is tested on the 500 test digits."""
    images, labels = digits("train", 1500)
    shuffled = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(1))]
    copies = write_npz(tmp_path / "copies.npz", images, labels)
    wrong = write_npz(tmp_path / "shuffled.npz", images, shuffled)
    cfg = compose_config(
        "eval",
        [f"samples=[{copies},{wrong}]", "names=[copies,shuffled]", "data=mnist_embedded",
         "metrics.n_samples=300", "memorization.enabled=false", "classifier_scores.enabled=true",
         "classifier_scores.n=600", "classifier_scores.augment_real=200",
         "classifier_scores.augment_generated=600", "classifier_scores.steps=80",
         f"paths.cache_dir={tmp_path / 'cache'}"],
        tmp_path / "eval",
    )  # fmt: skip
    real_like, noise = evaluate(cfg)["sources"]

    for result in (real_like, noise):  # the sizes are stated beside the scores
        assert result["cas_n"] == 600 and result["classifier_test_images"] == 500
        assert result["augment_real"] == 200 and result["augment_generated"] == 600
        assert result["classifier_steps"] == 80
    assert real_like["cas_real_accuracy"] > 0.75  # the baseline learns digits
    assert real_like["cas_accuracy"] == pytest.approx(real_like["cas_real_accuracy"], abs=0.06)
    assert noise["cas_accuracy"] < CHANCE + 0.1
    # the same real classifiers in both rows: the baseline does not depend on the source
    assert noise["cas_real_accuracy"] == real_like["cas_real_accuracy"]
    assert noise["real_only_accuracy"] == real_like["real_only_accuracy"]
    # 600 more correctly labelled digits help a classifier of 200; 600 mislabelled ones hurt
    assert real_like["augmented_accuracy"] > real_like["real_only_accuracy"] + 0.02
    assert noise["augmented_accuracy"] < real_like["real_only_accuracy"] - 0.05
    table = (tmp_path / "eval" / "comparison.md").read_text()
    assert "| CAS | real-trained acc. | real+gen acc. | real-only acc. |" in table


@functools.cache
def held_out_digits() -> tuple[torch.Tensor, torch.Tensor]:
    return digits("test", 40)


def labelled(n: int) -> ImageSet:
    images, labels = held_out_digits()
    return ImageSet(images[:n], labels[:n])


def real(n: int) -> RealImages:
    return RealImages(labelled(n), torch.zeros(n, 2))


@pytest.mark.parametrize(
    ("training", "shape", "draw_labels", "message"),
    [
        (None, (1, 28, 28), True, "classifier_scores need real training and test images"),
        ("unlabelled", (1, 28, 28), True, "classifier_scores need labelled real images, but"),
        ("digits", (3, 32, 32), True, "train the LeNet architecture, which reads (1, 28, 28)"),
        ("digits", (1, 28, 28), False, "need samples labelled with the data's 10 classes"),
    ],
)
def test_scores_that_cannot_run_say_why_in_one_line(
    training: str | None, shape: tuple, draw_labels: bool, message: str
) -> None:
    data = {
        None: None,
        "digits": TrainingData("digits", real(40), real(20)),
        "unlabelled": TrainingData(
            "plain", RealImages(ImageSet(labelled(40).images), torch.zeros(40, 2)), real(20)
        ),
    }[training]

    def draw(n: int, seed: int) -> ImageSet:
        images = labelled(n)
        return images if draw_labels else ImageSet(images.images, images.labels + 10)

    with pytest.raises(ConfigError) as err:
        classifier_scores(draw, data, shape, 20, 20, 20, 1, 0)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_an_unconditional_source_leaves_the_scores_empty(tmp_path: Path) -> None:
    """Samples without labels (an .npz without arr_1) cannot be scored: null, not an error,
    so that they still sit in a comparison table beside conditional models."""
    samples = write_npz(tmp_path / "plain.npz", digits("train", 30)[0])
    cfg = compose_config(
        "eval",
        [f"samples={samples}", "data=mnist_embedded", "metrics.n_samples=30",
         "memorization.enabled=false", "classifier_scores.enabled=true",
         f"paths.cache_dir={tmp_path / 'cache'}"],
        tmp_path / "eval",
    )  # fmt: skip
    result = evaluate(cfg)
    assert result["cas_accuracy"] is None and result["augmented_accuracy"] is None
    assert np.isfinite(result["fid"])
