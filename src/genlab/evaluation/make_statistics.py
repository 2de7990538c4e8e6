"""genlab-stats' work: the feature moments of any source, written as a statistics file.

The source is a dataset split (`data=... split=...`), a folder, an `.npz`/`.npy` array, or
a checkpoint (`metrics.n_samples` generated images); the file holds `mu` and `sigma` in
pytorch-fid's layout plus the extractor's name and weights checksum (see statistics.py).
"""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig
from rich.console import Console

from genlab.config.checks import check_numbers
from genlab.config.instantiate import build
from genlab.errors import ConfigError
from genlab.evaluation.harness import feature_extractor
from genlab.evaluation.image_files import first_image_shape
from genlab.evaluation.references import FeatureContext, dataset_images, read_images
from genlab.evaluation.sources import CheckpointSource, source_kind
from genlab.evaluation.statistics import write_statistics
from genlab.metrics.moments import moments_of
from genlab.metrics.real_features import extract
from genlab.runs.output_paths import writable_file
from genlab.utils.devices import checked_device

STATS_KEYS: dict[str, tuple[type, int]] = {
    "seed": (int, 0),
    "metrics.n_samples": (int, 2),
    "metrics.batch_size": (int, 1),
}


def source_features(cfg: DictConfig, context: FeatureContext) -> tuple[torch.Tensor, tuple, str]:
    """(features, image shape, description) of the configured source."""
    m = cfg.metrics
    if cfg.source is None:
        if cfg.get("data") is None:
            raise ConfigError(
                "genlab-stats needs a source: source=<folder | .npz | .npy | .ckpt> or "
                "data=<dataset> split=<train | val | test>"
            )
        datamodule = build("data", cfg.data)
        real = dataset_images(datamodule, cfg.split, context)
        return real.features, real.images.image_shape, f"{datamodule.name} {cfg.split}"
    path = Path(str(cfg.source))
    kind = source_kind(path, "source")
    extractor = context.extractor
    if kind == "checkpoint":
        source = CheckpointSource.load(str(path), path, "prior", m.batch_size, context.device)
        images = source.draw(m.n_samples, cfg.seed)
        extractor.check_input(images.image_shape, f"source={path}")
        features = extract(extractor, images.images, m.batch_size, context.device)
        return features, images.image_shape, f"{path} ({m.n_samples} samples, seed {cfg.seed})"
    shape = (
        (extractor.input_shape or first_image_shape(path, "source")) if kind == "folder" else None
    )
    images = read_images(path, kind, shape, "source", cfg.samples_key, None)
    extractor.check_input(images.image_shape, f"source={path}")
    features = context.features(path.name or "images", kind, images.images)
    return features, images.image_shape, str(path)


def make_statistics(cfg: DictConfig) -> Path:
    """Write the statistics file `cfg.out_file`; return its path."""
    check_numbers(cfg, STATS_KEYS)
    device = checked_device(cfg.device)
    out = writable_file("out_file", Path(cfg.out_file))
    extractor = feature_extractor(cfg.metrics, device)
    context = FeatureContext(extractor, cfg.metrics.cache_dir, cfg.metrics.batch_size, device)
    features, shape, description = source_features(cfg, context)
    moments = moments_of(features)
    write_statistics(out, moments, extractor, shape, description)
    Console().print(
        f"genlab-stats -> {out}: mu and sigma of {moments.n} {extractor.name} feature vectors "
        f"({features.shape[1]}-d) of {description}"
    )
    return out
