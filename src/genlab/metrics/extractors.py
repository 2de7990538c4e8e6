"""Feature extractors for FID/KID/IS: one forward pass gives (features, class logits).

- `inception`: torch-fidelity's InceptionV3 (the FID of papers), 2048-d pool features
  and 1008 unbiased logits. Images are resized as TensorFlow/torch-fidelity do
  (`antialias=False`: torchmetrics >= 1.8 defaults to an antialiased resize that
  gives different numbers).
- `lenet`: genlab's digit classifier (genlab.metrics.lenet), 64-d features and 10
  logits, for 28x28 grayscale data with no network.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import Tensor, nn

from genlab.errors import ConfigError, GenlabError, first_line
from genlab.metrics.lenet import WEIGHTS_FILE, load_lenet, weights_sha256

INCEPTION_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's file name
# SHA-256 of that file (95,628,359 bytes). By torch hub's naming convention the name ends
# in its first 8 hex digits; torch hub checks only those, and only when it downloads.
INCEPTION_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"


class FeatureExtractor(nn.Module):
    """Maps images in [-1, 1] to (features, logits); never trains."""

    name: str
    num_features: int
    weights_sha256: str
    #: (C, H, W) the network takes, or None when it resizes any image itself
    input_shape: tuple[int, int, int] | None = None
    #: channel counts it reads
    input_channels: tuple[int, ...] = (1, 3)
    #: classes its logits name when they are the classes of genlab's data (LeNet: the ten
    #: digits), so that a conditional model's samples can be classified; None otherwise
    data_classes: int | None = None

    def train(self, mode: bool = True) -> FeatureExtractor:
        return super().train(False)

    def check_input(self, shape: tuple[int, ...], what: str) -> None:
        """Raise one ConfigError line unless images of (C, H, W) `shape` fit the network."""
        shape = tuple(shape)
        fits = (
            shape == self.input_shape
            if self.input_shape is not None
            else len(shape) == 3 and shape[0] in self.input_channels
        )
        if not fits:
            wanted = (
                f"{self.input_shape} (C, H, W)"
                if self.input_shape is not None
                else f"{' or '.join(map(str, self.input_channels))} channels"
            )
            hint = "; use metrics=fid_inception for other images" if self.name == "lenet" else ""
            raise ConfigError(
                f"{what} holds images of shape {shape} (C, H, W), but the {self.name} extractor "
                f"reads {wanted}{hint}"
            )


class LeNetExtractor(FeatureExtractor):
    """genlab's digit classifier; takes (N, 1, 28, 28) images."""

    name = "lenet"
    input_shape = (1, 28, 28)
    input_channels = (1,)
    data_classes = 10

    def __init__(self, weights: Path = WEIGHTS_FILE) -> None:
        super().__init__()
        self.net = load_lenet(weights)
        self.num_features = self.net.num_features
        self.weights_sha256 = weights_sha256(self.net.state_dict())

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        if images.shape[1:] != (1, 28, 28):
            raise ConfigError(
                f"metrics=fid_lenet needs 28x28 grayscale images, got {tuple(images.shape[1:])}; "
                "use metrics=fid_inception for other data"
            )
        return self.net(images)


def inception_weights_path() -> Path:
    """Where torch hub keeps downloaded checkpoints, and so where the Inception file goes."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(2**20):
            digest.update(chunk)
    return digest.hexdigest()


def verified_inception_weights(allow_download: bool) -> Path:
    """The Inception weights file, downloaded if allowed, and only if its SHA-256 is known.

    torch-fidelity loads the file with `torch.load(weights_only=False)`, which runs any
    code pickled into it; a file with another hash is never handed to it.
    """
    path = inception_weights_path()
    missing = (
        f"InceptionV3 weights not found: place {INCEPTION_WEIGHTS} in {path.parent} "
        "(or set metrics.allow_download=true with network access), "
        "or use metrics=fid_lenet for 28x28 digits"
    )
    if not path.is_file():
        if not allow_download:
            raise GenlabError(missing)
        from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(
                URL_INCEPTION_V3, str(path), hash_prefix=INCEPTION_SHA256[:8], progress=False
            )
        except (OSError, RuntimeError) as err:  # no network, or torch hub's hash check
            reason = first_line(err)
            raise GenlabError(f"{missing}; the download failed: {reason}") from None
    digest = file_sha256(path)
    if digest != INCEPTION_SHA256:
        raise GenlabError(
            f"{path} is not torch-fidelity's InceptionV3 weights file: its SHA-256 is {digest}, "
            f"expected {INCEPTION_SHA256}; it was not loaded (loading it could run code stored "
            f"in it); replace it with the original {INCEPTION_WEIGHTS}"
        )
    return path


class InceptionExtractor(FeatureExtractor):
    """torch-fidelity's InceptionV3 (the FID of papers), with its TF-compatible resize."""

    name = "inception"

    def __init__(self, allow_download: bool = False) -> None:
        super().__init__()
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        self.net = FeatureExtractorInceptionV3(
            "inception-v3-compat",
            ["2048", "logits_unbiased"],
            feature_extractor_weights_path=str(verified_inception_weights(allow_download)),
        )
        self.num_features = 2048
        self.weights_sha256 = weights_sha256(self.net.state_dict())

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        pixels = ((images.float() + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8)
        if pixels.shape[1] == 1:
            pixels = pixels.expand(-1, 3, -1, -1)
        features, logits = self.net(pixels)  # both requested features, from one pass
        return features, logits


EXTRACTORS = {"lenet": LeNetExtractor, "inception": InceptionExtractor}


def build_extractor(name: str, **kwargs: object) -> FeatureExtractor:
    """Look up an extractor by its config name."""
    if name not in EXTRACTORS:
        raise ConfigError(
            f"metrics.extractor={name!r} is unknown; choose one of {', '.join(EXTRACTORS)}"
        )
    return EXTRACTORS[name](**kwargs)
