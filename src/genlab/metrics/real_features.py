"""Features of real images (a datamodule's split, or any image set), through the on-disk cache."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import Tensor

from genlab.metrics.extractors import FeatureExtractor
from genlab.metrics.stats_cache import cache_key, cached_features
from genlab.utils.progress import progress


def images_sha256(images: Tensor) -> str:
    """Checksum of the real images' values (well under a second for 60,000 digits)."""
    array = images.detach().cpu().contiguous().numpy()
    return hashlib.sha256(array).hexdigest()


@torch.no_grad()
def extract(
    extractor: FeatureExtractor, images: Tensor, batch_size: int, device: torch.device
) -> Tensor:
    """Features of `images` in batches, on `device`, returned on the CPU in float32."""
    parts = []
    with progress(f"{extractor.name} features", total=len(images)) as advance:
        for chunk in images.split(batch_size):
            parts.append(extractor(chunk.to(device))[0].float().cpu())
            advance(len(chunk))
    return torch.cat(parts)


def cached_image_features(
    name: str,
    split: str,
    images: Tensor,
    extractor: FeatureExtractor,
    cache_dir: str | Path,
    batch_size: int = 500,
    device: torch.device | None = None,
) -> Tensor:
    """Features of `images` (named `name`/`split` in the cache), computed once per cache key.

    The key holds a checksum of the images, so a name never stands for other images.
    """
    key = cache_key(
        name, split, len(images), images_sha256(images), extractor.name, extractor.weights_sha256
    )
    device = device or torch.device("cpu")
    return cached_features(cache_dir, key, lambda: extract(extractor, images, batch_size, device))


def real_features(
    datamodule: object,
    split: str,
    extractor: FeatureExtractor,
    cache_dir: str | Path,
    batch_size: int = 500,
    device: torch.device | None = None,
) -> Tensor:
    """Features of every image of `split`, computed once per cache key."""
    images = datamodule.real_images(split)
    return cached_image_features(
        datamodule.name, split, images, extractor, cache_dir, batch_size, device
    )
