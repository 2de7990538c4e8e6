"""GenerativeMetrics: FID/KID/IS of generated images, logged during training."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import WandbLogger

from genlab.errors import ConfigError
from genlab.metrics.extractors import build_extractor
from genlab.metrics.real_features import real_features
from genlab.metrics.suite import MetricSuite, NonFiniteSamplesError
from genlab.utils.progress import progress

log = logging.getLogger("genlab")


class GenerativeMetrics(pl.Callback):
    """Every `every_n_epochs` validations, generates `n_samples` images (split across DDP
    ranks) and logs `val/fid`, `val/kid`, `val/kid_std`, `val/is` for Inception, or the
    same names suffixed with the extractor (`val/fid_lenet`, ...), and `val/n_samples`.

    Real features of `real_split` are computed once (through the on-disk cache) at the
    start of fitting. The first validation of a fit is always measured, so that the
    checkpoint monitor has a value from the start; later ones every `every_n_epochs`
    epochs (skipped epochs keep the last value for ranking checkpoints, and log nothing).
    Generation uses `pl_module.generate` (with `callbacks=ema`, the averaged weights are in
    place while validation runs).

    Beside each FID it logs `val/train_seconds`: the fit's wall seconds so far (summed over
    the starts of a resumed run) less the time spent measuring these metrics, so that FID can
    be read against training time (time-to-FID) whatever the cost of measuring it.
    """

    def __init__(
        self,
        extractor: str = "lenet",
        n_samples: int = 5000,
        every_n_epochs: int = 1,
        batch_size: int = 500,
        real_split: str = "val",
        cache_dir: str = ".cache/genlab",
        kid_subset_size: int = 1000,
        compute_is: bool = True,
        seed: int = 0,
        allow_download: bool = False,
    ) -> None:
        super().__init__()
        if n_samples < 2:
            raise ConfigError(f"metrics.n_samples must be >= 2 for FID, got {n_samples}")
        if every_n_epochs < 1 or batch_size < 1:
            raise ConfigError("metrics.every_n_epochs and metrics.batch_size must be >= 1")
        self.extractor_name = extractor
        self.extractor_kwargs = (
            {"allow_download": allow_download} if extractor == "inception" else {}
        )
        build_extractor(extractor, **self.extractor_kwargs)  # fail at start-up, not after an epoch
        self.n_samples = n_samples
        self.every_n_epochs = every_n_epochs
        self.batch_size = batch_size
        self.real_split = real_split
        self.cache_dir = cache_dir
        self.kid_subset_size = kid_subset_size
        self.compute_is = compute_is
        self.seed = seed
        self.suite: MetricSuite | None = None
        self.seconds_before_this_start = 0.0  # training seconds of a resumed run's earlier starts
        self.started = time.monotonic()
        self.measuring_seconds = 0.0  # spent in this callback since `started`

    def name(self, metric: str) -> str:
        """`val/fid` for Inception (the standard), `val/fid_<extractor>` otherwise."""
        return (
            f"val/{metric}"
            if self.extractor_name == "inception"
            else f"val/{metric}_{self.extractor_name}"
        )

    @property
    def monitor(self) -> str:
        """The FID key, which `optimized_metric=auto` ranks checkpoints by."""
        return self.name("fid")

    def logged_metrics(self) -> frozenset[str]:
        """The names `on_validation_epoch_end` logs."""
        names = {
            self.name("fid"), self.name("kid"), self.name("kid_std"), "val/n_samples",
            "val/train_seconds",
        }  # fmt: skip
        if self.compute_is:
            names.add(self.name("is"))
        return frozenset(names)

    def check_fits(self, image_shape: tuple[int, int, int]) -> None:
        """Fail at start-up when the extractor cannot read the data's images."""
        if self.extractor_name == "lenet" and tuple(image_shape) != (1, 28, 28):
            raise ConfigError(
                f"metrics=fid_lenet reads 28x28 grayscale digits, but the data is "
                f"{tuple(image_shape)}; use metrics=fid_inception or metrics=none"
            )

    def train_seconds(self) -> float:
        """Wall seconds of training so far, the time spent measuring left out."""
        elapsed = time.monotonic() - self.started - self.measuring_seconds
        return self.seconds_before_this_start + elapsed

    def state_dict(self) -> dict[str, Any]:
        return {"train_seconds": self.train_seconds()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.seconds_before_this_start = float(state_dict.get("train_seconds", 0.0))

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.started, self.measuring_seconds = time.monotonic(), 0.0
        extractor = build_extractor(self.extractor_name, **self.extractor_kwargs)
        extractor.to(pl_module.device)
        real = real_features(
            trainer.datamodule, self.real_split, extractor, self.cache_dir,
            self.batch_size, pl_module.device,
        )  # fmt: skip
        self.suite = MetricSuite(
            extractor,
            real,
            kid_subset_size=self.kid_subset_size,
            compute_is=self.compute_is,
            rank=trainer.global_rank,
            world_size=trainer.world_size,
            seed=self.seed,
        ).to(pl_module.device)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):  # the run summary keeps each metric's best value
                for metric, best in (("fid", "min"), ("kid", "min"), ("is", "max")):
                    logger.experiment.define_metric(self.name(metric), summary=best)

    def due(self, trainer: pl.Trainer) -> bool:
        """Whether this validation is measured (the same answer on every DDP rank)."""
        if trainer.sanity_checking:
            return False
        first = self.monitor not in trainer.callback_metrics
        return first or (trainer.current_epoch + 1) % self.every_n_epochs == 0

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.due(trainer):
            return
        assert self.suite is not None, "on_fit_start builds the metric suite"
        measuring_since, train_seconds = time.monotonic(), self.train_seconds()
        per_rank = math.ceil(self.n_samples / trainer.world_size)
        generator = torch.Generator().manual_seed(
            self.seed + 7919 * trainer.current_epoch + trainer.global_rank
        )
        problem = None
        with progress(f"{self.monitor}: sampling", total=per_rank) as advance:
            for start in range(0, per_rank, self.batch_size):
                n = min(self.batch_size, per_rank - start)
                try:
                    self.suite.update(
                        pl_module.generate(n, generator=generator, **pl_module.validation_sampling)
                    )
                except NonFiniteSamplesError as err:
                    problem = str(err)
                    break
                advance(n)
        # Every rank takes the same branch: compute() syncs, and a rank left out would hang.
        if trainer.strategy.reduce_boolean_decision(problem is not None, all=False):
            self.suite.reset()
            results = dict.fromkeys(("fid", "kid_mean", "kid_std", "is_mean"), math.nan)
            if trainer.is_global_zero:
                log.warning(
                    "%s at epoch %d: %s and the other sample metrics are logged as NaN (the "
                    "model has diverged; a NaN ranks below every finite value for best.ckpt)",
                    problem or "another rank's generated images hold NaN or infinite values",
                    trainer.current_epoch, self.monitor,
                )  # fmt: skip
        else:
            results = self.suite.compute()  # every rank calls it: torchmetrics syncs them
            self.suite.reset()
        logged = {
            self.name("fid"): results["fid"],
            self.name("kid"): results["kid_mean"],
            self.name("kid_std"): results["kid_std"],
            "val/n_samples": float(per_rank * trainer.world_size),
            "val/train_seconds": train_seconds,
        }
        if self.compute_is:
            logged[self.name("is")] = results["is_mean"]
        pl_module.log_dict(logged, sync_dist=False)
        self.measuring_seconds += time.monotonic() - measuring_since
