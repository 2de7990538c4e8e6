"""Evaluation cost: generating N images, and an FID evaluation split into its parts."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import torch

from benchmarks.training import BENCH_OVERRIDES, synchronize
from genlab.config.compose import compose_config
from genlab.config.instantiate import build
from genlab.metrics.extractors import build_extractor
from genlab.metrics.real_features import real_features
from genlab.metrics.suite import MetricSuite

T = TypeVar("T")


def timed(fn: Callable[[], T], device: torch.device) -> tuple[T, float]:
    """`fn()` and the seconds it took, with queued GPU work included."""
    synchronize(device)
    start = time.perf_counter()
    value = fn()
    synchronize(device)
    return value, time.perf_counter() - start


def bench_evaluation(
    n_samples: int, batch_size: int, extractor: str, run_dir: Path, extra_overrides: list[str]
) -> dict[str, Any]:
    """Images/s of `generate` for each model, then FID/KID/IS of the GAN's `n_samples` images.

    The networks are untrained: the time does not depend on the weights. The timed
    steps are those of GenerativeMetrics: real features through the on-disk cache (a
    miss, then a hit), `MetricSuite.update` over the samples (feature extraction and
    the metrics' states), the Frechet distance, then KID and IS.
    """
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    result: dict[str, Any] = {"n_samples": n_samples, "batch_size": batch_size}
    samples = {}
    for name in ("gan", "vae"):
        cfg = compose_config(
            "train", [*BENCH_OVERRIDES, f"model={name}", *extra_overrides], run_dir
        )
        model = build("model", cfg.model).to(device)
        generate = partial(
            model.generate,
            n_samples,
            generator=torch.Generator().manual_seed(0),
            batch_size=batch_size,
        )
        samples[name], seconds = timed(generate, device)
        result[f"generate_{name}_img_s"] = n_samples / seconds
    datamodule = build("data", cfg.data)
    datamodule.setup()  # decoding the dataset is not part of the features' time
    net = build_extractor(extractor).to(device)
    cache = run_dir / "cache"

    def reference() -> torch.Tensor:
        return real_features(datamodule, "val", net, cache, batch_size, device)

    real, result["real_features_s"] = timed(reference, device)
    _, result["real_features_cached_s"] = timed(reference, device)
    suite = MetricSuite(net, real, seed=0).to(device)

    def extract_all() -> None:
        for chunk in samples["gan"].split(batch_size):
            suite.update(chunk)

    _, result["features_s"] = timed(extract_all, device)
    _, result["frechet_s"] = timed(suite.fid.compute, device)
    _, result["kid_is_s"] = timed(suite.compute, device)  # FID again (cached by torchmetrics)
    result |= {
        "extractor": extractor,
        "n_real": len(real),
        "fid_eval_s": result["features_s"] + result["frechet_s"],
    }
    return result
