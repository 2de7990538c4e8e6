"""What a classifier learns from labelled samples (class-conditional sources).

- Classification Accuracy Score (Ravuri & Vinyals, "Classification Accuracy Score for
  Conditional Generative Models", NeurIPS 2019): a classifier trained only on `n`
  generated images, each labelled with the class it was generated for, and tested on the
  real test split (`cas_accuracy`); beside it, the same classifier trained on `n` real
  training images (`cas_real_accuracy`). CAS sees what FID misses: samples that look
  right but do not carry their class, or that cover only part of each class.
- Data augmentation, the question the seed article asks of generative models: does a
  classifier trained on `augment_real` real images plus `augment_generated` generated ones
  (`augmented_accuracy`) beat the same classifier trained on the real images alone
  (`real_only_accuracy`)? Both are tested on the real test split.

The classifier is the LeNet architecture of genlab's FID extractor, trained from scratch
with its recipe (`genlab.metrics.lenet.fit_lenet`, 28x28 grayscale images). Every
classifier gets about `steps` optimizer steps whatever the size of its training set, so
that more images does not also mean longer training.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from genlab.errors import ConfigError
from genlab.evaluation.image_files import ImageSet, signed_unit
from genlab.evaluation.references import TrainingData
from genlab.metrics.lenet import LeNet, accuracy, fit_lenet

LENET_INPUT = (1, 28, 28)
BATCH_SIZE = 64
FIELDS = (
    "cas_accuracy", "cas_real_accuracy", "cas_n", "augmented_accuracy", "real_only_accuracy",
    "augment_real", "augment_generated", "classifier_steps", "classifier_test_images",
)  # fmt: skip


def epochs_for(steps: int, n: int) -> int:
    """Epochs over `n` images that make about `steps` steps of BATCH_SIZE."""
    return max(1, round(steps / math.ceil(n / BATCH_SIZE)))


def trained_accuracy(
    train: ImageSet, test: ImageSet, num_classes: int, steps: int, seed: int
) -> float:
    """Test accuracy of a LeNet trained on `train` for about `steps` steps."""
    model: LeNet = fit_lenet(
        signed_unit(train.images), train.labels, epochs_for(steps, len(train)), seed,
        BATCH_SIZE, num_classes,
    )  # fmt: skip
    return accuracy(model, signed_unit(test.images), test.labels)


def real_subset(images: ImageSet, n: int, seed: int) -> ImageSet:
    """`n` of the real images, drawn with `seed`."""
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    return images.subset(order[:n])


def joined(a: ImageSet, b: ImageSet) -> ImageSet:
    """Two labelled image sets as one, in [-1, 1]."""
    return ImageSet(
        torch.cat([signed_unit(a.images), signed_unit(b.images)]),
        torch.cat([a.labels, b.labels]),
    )


def check_applicable(training: TrainingData | None, image_shape: tuple[int, ...]) -> Tensor:
    """The real training labels, or one ConfigError line saying why the scores cannot run."""
    if training is None or training.heldout is None:
        raise ConfigError(
            "classifier_scores need real training and test images: compare with a dataset "
            "(data=... or a checkpoint's), or give memorization.train_images and a labelled "
            "reference; or set classifier_scores.enabled=false"
        )
    labels = training.train.images.labels
    if labels is None or training.heldout.images.labels is None:
        raise ConfigError(
            f"classifier_scores need labelled real images, but {training.name} has no labels; "
            "set classifier_scores.enabled=false"
        )
    if tuple(image_shape) != LENET_INPUT:
        raise ConfigError(
            f"classifier_scores train the LeNet architecture, which reads {LENET_INPUT} images, "
            f"but the samples are {tuple(image_shape)}; set classifier_scores.enabled=false"
        )
    return labels


def classifier_scores(
    draw: Any,
    training: TrainingData | None,
    image_shape: tuple[int, ...],
    n: int,
    augment_real: int,
    augment_generated: int,
    steps: int,
    seed: int,
) -> dict[str, Any]:
    """CAS and the augmentation comparison; `draw(n, seed)` gives labelled samples."""
    train_labels = check_applicable(training, image_shape)
    num_classes = int(train_labels.max()) + 1
    real_train, test = training.train.images, training.heldout.images
    n = min(n, len(real_train))
    augment_real = min(augment_real, len(real_train))
    generated = draw(n, seed)
    extra = draw(augment_generated, seed + 1)
    for sample in (generated, extra):
        if sample.labels is None or int(sample.labels.max()) >= num_classes:
            raise ConfigError(
                f"classifier_scores need samples labelled with the data's {num_classes} classes"
            )
    small = real_subset(real_train, augment_real, seed)
    return {
        "cas_accuracy": trained_accuracy(generated, test, num_classes, steps, seed),
        "cas_real_accuracy": trained_accuracy(
            real_subset(real_train, n, seed), test, num_classes, steps, seed
        ),
        "cas_n": n,
        "augmented_accuracy": trained_accuracy(
            joined(small, extra), test, num_classes, steps, seed
        ),
        "real_only_accuracy": trained_accuracy(small, test, num_classes, steps, seed),
        "augment_real": augment_real,
        "augment_generated": augment_generated,
        "classifier_steps": steps,
        "classifier_test_images": len(test),
    }
