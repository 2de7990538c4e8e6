"""genlab-eval's work: score every source against one reference, write metrics.json and the
comparison table.

The steps, each in its own module: open the sources (sources.py) and the reference
(references.py), score each source over `repeats` seeds (scoring.py), measure copying
(memorization.py) and what a classifier learns from the samples (classifier_scores.py),
and put the sources side by side (comparison.py).
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, open_dict
from rich.console import Console
from rich.table import Table

from genlab.checkpoints import run_datamodule
from genlab.config.checks import EVAL_KEYS, check_numbers, sampling_overrides
from genlab.config.instantiate import build
from genlab.errors import ConfigError
from genlab.evaluation.classifier_scores import FIELDS as CLASSIFIER_FIELDS
from genlab.evaluation.classifier_scores import classifier_scores
from genlab.evaluation.comparison import print_comparison, write_comparison
from genlab.evaluation.image_files import IMAGES_KEY, first_image_shape
from genlab.evaluation.memorization import Memorization, write_closest_pairs
from genlab.evaluation.nfe_sweep import largest_nfe, run_sweep, write_sweep
from genlab.evaluation.references import (
    HELD_OUT_SPLIT,
    FeatureContext,
    Reference,
    TrainingData,
    dataset_images,
    dataset_reference,
    file_images,
    file_reference,
    statistics_reference,
)
from genlab.evaluation.scoring import SampleScorer, over_seeds
from genlab.evaluation.sources import (
    CheckpointSource,
    Source,
    read_file_source,
    source_kind,
    source_names,
    source_paths,
)
from genlab.evaluation.statistics import is_statistics_file
from genlab.metrics.extractors import FeatureExtractor, build_extractor
from genlab.metrics.suite import MetricSuite, NonFiniteSamplesError
from genlab.models.capabilities import HasLikelihood
from genlab.runs.output_paths import writable_file
from genlab.utils.devices import checked_device
from genlab.utils.files import write_atomically

log = logging.getLogger(__name__)


def timed(fn: Any) -> tuple[Any, float]:
    """(fn(), seconds it took), waiting for queued GPU work so that the time is real."""
    start = time.perf_counter()
    result = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


def feature_extractor(metrics: DictConfig, device: torch.device) -> FeatureExtractor:
    """The extractor of the `metrics` group, on `device`."""
    options = {"allow_download": metrics.allow_download} if metrics.extractor == "inception" else {}
    return build_extractor(metrics.extractor, **options).to(device)


def reference_datamodule(cfg: DictConfig, checkpoints: list[CheckpointSource]) -> Any | None:
    """The dataset of the comparison: `data=` when chosen, else the first checkpoint's."""
    if cfg.get("data") is not None:
        return build("data", cfg.data)
    if checkpoints:
        return run_datamodule(checkpoints[0].run_cfg, cfg.data_dir)
    return None


def folder_shape(extractor: FeatureExtractor, known: tuple | None, folder: Path, key: str) -> tuple:
    """The (C, H, W) a folder's images are decoded at: the extractor's fixed input, else the
    reference's image shape, else the folder's first image's."""
    return extractor.input_shape or known or first_image_shape(folder, key)


def open_reference(cfg: DictConfig, datamodule: Any | None, context: FeatureContext) -> Reference:
    """The `reference` file or folder, else the dataset split `metrics.real_split`."""
    if cfg.reference is None:
        if datamodule is None:
            raise ConfigError(
                "samples need a reference to compare with: reference=<folder | .npz | .npy | "
                "statistics .npz> or data=<dataset> (conf/data/)"
            )
        return dataset_reference(datamodule, cfg.metrics.real_split, context)
    path = Path(str(cfg.reference))
    kind = source_kind(path, "reference")
    if kind == "checkpoint":
        raise ConfigError(f"reference={path} is a checkpoint; give it as a source (samples=...)")
    if kind == "array" and cfg.reference_key is None and is_statistics_file(path):
        return statistics_reference(path, context.extractor, cfg.accept_unnamed_stats)
    shape = None
    if kind == "folder":
        shape = folder_shape(context.extractor, None, path, "reference")
    images_key = cfg.reference_key or IMAGES_KEY
    return file_reference(path, kind, shape, images_key, cfg.labels_key, context)


def source_specs(cfg: DictConfig) -> list[tuple[str, Path, str, str]]:
    """(name, path, kind, config key) of every source of `ckpt_path` and `samples`."""
    paths = source_paths(cfg.ckpt_path, cfg.samples)
    names = source_names(paths, cfg.names)
    keys = ["ckpt_path"] * (cfg.ckpt_path is not None) + ["samples"] * len(paths)
    return [
        (name, Path(raw), source_kind(Path(raw), key), key)
        for name, raw, key in zip(names, paths, keys, strict=False)
    ]


def open_file_sources(
    cfg: DictConfig,
    specs: list[tuple[str, Path, str, str]],
    reference: Reference,
    extractor: FeatureExtractor,
) -> dict[int, Source]:
    """The folder and array sources of `specs`, by position; folders at the reference's shape."""
    sources: dict[int, Source] = {}
    for index, (name, path, kind, key) in enumerate(specs):
        if kind != "checkpoint":
            shape = (
                folder_shape(extractor, reference.image_shape, path, key)
                if kind == "folder"
                else None
            )
            sources[index] = read_file_source(
                name, path, kind, shape, cfg.samples_key, cfg.labels_key, key
            )
    return sources


def training_data(
    cfg: DictConfig, datamodule: Any | None, reference: Reference, context: FeatureContext
) -> TrainingData | None:
    """The training images and held-out real images of memorization and the classifier
    scores: `memorization.train_images` (held out: the reference's images), else the
    dataset's train and test splits; None when neither is known."""
    train_path = cfg.memorization.train_images
    if train_path is not None:
        path = Path(str(train_path))
        kind = source_kind(path, "memorization.train_images")
        if kind == "checkpoint":
            raise ConfigError(f"memorization.train_images={path} must be a folder or an array")
        shape = (
            folder_shape(
                context.extractor, reference.image_shape, path, "memorization.train_images"
            )
            if kind == "folder"
            else None
        )
        train = file_images(path, kind, shape, "memorization.train_images", cfg.samples_key,
                            cfg.labels_key, context)  # fmt: skip
        return TrainingData(str(path), train, reference.images)
    if datamodule is None:
        return None
    return TrainingData(
        f"{datamodule.name} train",
        dataset_images(datamodule, "train", context),
        dataset_images(datamodule, HELD_OUT_SPLIT, context),
    )


def slug(name: str) -> str:
    """A file-name-safe form of a source's name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "source"


class Harness:
    """Scores sources against one reference; one instance per genlab-eval run."""

    def __init__(
        self, cfg: DictConfig, scorer: SampleScorer, training: TrainingData | None, out_dir: Path
    ) -> None:
        self.cfg = cfg
        self.scorer = scorer
        self.training = training
        self.out_dir = out_dir
        memo = cfg.memorization
        self.memorization = (
            Memorization(training, memo.ratio) if memo.enabled and training is not None else None
        )

    def seeds(self) -> list[int]:
        return [self.cfg.seed + r for r in range(self.cfg.repeats)]

    def sample_metrics(self, source: Source) -> tuple[dict[str, Any], Any, Any, dict]:
        """The sample metrics over every seed; the first seed's samples, their features and
        the seconds each stage took."""
        runs, first = [], None
        for seed in self.seeds():
            samples = source.draw(self.cfg.metrics.n_samples, seed)
            if len(samples) < self.cfg.metrics.n_samples and seed == self.cfg.seed:
                log.warning(
                    "%s holds %d images, fewer than metrics.n_samples=%d: scored on all %d",
                    source.name, len(samples), self.cfg.metrics.n_samples, len(samples),
                )  # fmt: skip
            try:
                scores, extracted, seconds = self.scorer.score(samples, seed)
            except NonFiniteSamplesError as err:
                raise NonFiniteSamplesError(
                    f"{err} (latents={self.cfg.latents}); FID, KID and IS are undefined for "
                    "them: evaluate an earlier checkpoint of the run"
                ) from None
            runs.append(scores)
            if first is None:
                generation = getattr(source, "last_generation_seconds", None)
                first = (samples, extracted, {"generation": generation, **seconds})
        return over_seeds(runs, self.seeds()), *first

    def score(self, source: Source, reference: Reference) -> dict[str, Any]:
        """Every metric of one source."""
        scores, samples, extracted, seconds = self.sample_metrics(source)
        extractor = self.scorer.suite.extractor
        results: dict[str, Any] = {
            **source.describe(),
            **reference.describe(),
            "n_samples": len(samples),
            "extractor": extractor.name,
            "weights_sha256": extractor.weights_sha256,
            **scores,
            "dc_neighbours": self.cfg.dc_neighbours,
            "pr_neighbours": self.cfg.pr_neighbours,
            "repeats": self.cfg.repeats,
        }
        if isinstance(source, CheckpointSource):
            results["sampling_images_per_second"] = len(samples) / seconds["generation"]
        results["seconds"] = {k: v for k, v in seconds.items() if v is not None}
        results |= self.memorization_report(source, samples, extracted.features)
        results |= self.classifier_report(source, samples.image_shape)
        return results

    def memorization_report(self, source: Source, samples: Any, features: Any) -> dict[str, Any]:
        if self.memorization is None:
            return {"copied_fraction": None, "authenticity": None}
        report, neighbours = self.memorization.report(samples, features)
        if neighbours is not None and self.cfg.memorization.pairs > 0:
            path = self.out_dir / f"memorization_{slug(source.name)}.png"
            write_closest_pairs(samples, self.training.train, neighbours, path,
                                self.cfg.memorization.pairs)  # fmt: skip
            report["memorization_pairs_png"] = str(path)
        return report

    def classifier_report(self, source: Source, image_shape: tuple) -> dict[str, Any]:
        options = self.cfg.classifier_scores
        if not options.enabled or source.num_classes is None:
            return dict.fromkeys(CLASSIFIER_FIELDS)
        with torch.random.fork_rng(devices=[]):  # the classifiers leave the global RNG alone
            return classifier_scores(
                source.draw, self.training, image_shape, options.n, options.augment_real,
                options.augment_generated, options.steps, self.cfg.seed,
            )  # fmt: skip

    def checkpoint_extras(self, source: CheckpointSource, datamodule: Any) -> dict[str, Any]:
        """What only a checkpoint has: latents=gmm's metrics, and likelihood bounds where the
        model has them."""
        extras: dict[str, Any] = {}
        if self.cfg.latents == "gmm":
            _, fit_seconds = timed(
                lambda: source.use_fitted_mixture(
                    datamodule, self.cfg.gmm_components, self.cfg.seed
                )
            )
            scores, _, _, seconds = self.sample_metrics(source)
            extras |= {f"{key}_gmm": value for key, value in scores.items()}
            extras["gmm_components"] = self.cfg.gmm_components
            extras["seconds"] = {"gmm_fit": fit_seconds, "gmm_generation": seconds["generation"]}
        if isinstance(source.model, HasLikelihood):
            datamodule.setup("test")
            extras |= source.model.log_likelihood(
                datamodule.test_dataloader(), self.cfg.iw_samples, self.scorer.device
            )
        return extras


def sample_count(
    cfg: DictConfig, checkpoints: list[CheckpointSource], swept: dict[str, int] | None = None
) -> int:
    """`metrics.n_samples`, lowered where an iterative checkpoint would pass its network more
    than `max_network_passes` times in all (at the largest NFE of its sweep, `swept`); one
    count for every source and sweep point, as FIDs at different counts do not compare."""
    wanted, budget = cfg.metrics.n_samples, cfg.max_network_passes
    passes = {
        c.name: max(c.model.function_evaluations(**c.sampling) or 1, (swept or {}).get(c.name, 1))
        for c in checkpoints
    }
    if budget is None or not passes or wanted * max(passes.values()) <= budget:
        return wanted
    name, nfe = max(passes.items(), key=lambda item: item[1])
    count = max(2, budget // nfe)
    log.warning(
        "metrics.n_samples=%d lowered to %d: %s samples at %d network passes each would exceed "
        "max_network_passes=%d; pass max_network_passes=null (or a larger budget) for all %d",
        wanted, count, name, nfe, budget, wanted,
    )  # fmt: skip
    return count


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Every metric of every source against one reference; written to `cfg.out_file` (one
    source: its results; several: {"sources": [...]}) and to the comparison table.

    `nfe_sweep.steps` adds FID against NFE (`genlab.evaluation.nfe_sweep`): its rows under
    "nfe_sweep" and its table and picture beside the comparison table.

    `latents=gmm` (VAEs) adds the sample metrics of latents drawn from a Gaussian mixture
    fitted to the training latents, beside the prior's, as `<metric>_gmm`.
    """
    check_numbers(cfg, EVAL_KEYS)
    device = checked_device(cfg.device)
    out = writable_file("out_file", Path(cfg.out_file))
    torch.manual_seed(cfg.seed)  # the ELBO's and the IW bound's posterior samples
    specs = source_specs(cfg)
    m = cfg.metrics
    extractor = feature_extractor(m, device)
    checkpoints = {
        index: CheckpointSource.load(
            name, path, cfg.latents, m.batch_size, device, sampling_overrides(cfg.sampling)
        )
        for index, (name, path, kind, _) in enumerate(specs)
        if kind == "checkpoint"
    }
    sweeping = cfg.nfe_sweep.steps is not None
    swept = largest_nfe(list(checkpoints.values()), cfg.nfe_sweep) if sweeping else {}
    with open_dict(cfg):
        cfg.metrics.n_samples = sample_count(cfg, list(checkpoints.values()), swept)
    datamodule = reference_datamodule(cfg, list(checkpoints.values()))
    context = FeatureContext(extractor, m.cache_dir, m.batch_size, device)
    reference = open_reference(cfg, datamodule, context)
    by_index = checkpoints | open_file_sources(cfg, specs, reference, extractor)
    sources = [by_index[index] for index in range(len(specs))]
    for source, (_, path, _, key) in zip(sources, specs, strict=True):
        extractor.check_input(source.image_shape, f"{key}={path}")
    training = training_data(cfg, datamodule, reference, context)
    suite = MetricSuite(extractor, reference.real,
                        kid_subset_size=m.kid_subset_size, compute_is=m.compute_is,
                        seed=cfg.seed).to(device)  # fmt: skip
    scorer = SampleScorer(suite, reference, m.batch_size, cfg.pr_neighbours, cfg.dc_neighbours,
                          device)  # fmt: skip
    harness = Harness(cfg, scorer, training, out.parent)
    results = []
    for source in sources:
        result = harness.score(source, reference)
        if isinstance(source, CheckpointSource):
            own_data = (
                datamodule
                if cfg.get("data") is None and source is next(iter(checkpoints.values()))
                else run_datamodule(source.run_cfg, cfg.data_dir)
            )  # the first checkpoint's data is the reference dataset already read
            extras = harness.checkpoint_extras(source, own_data)
            result["seconds"] |= extras.pop("seconds", {})
            result |= extras
        results.append(result)

    written = results[0] if len(results) == 1 else {"sources": results}
    if sweeping:
        written["nfe_sweep"] = run_sweep(harness, sources, results)
        files = write_sweep(written["nfe_sweep"], Path(str(cfg.table)))
        log.info("FID against NFE: %s", ", ".join(str(f) for f in files))
    text = json.dumps(written, indent=2) + "\n"
    write_atomically(out, lambda tmp: tmp.write_text(text))
    table_md, table_csv = write_comparison(results, Path(str(cfg.table)))
    if len(results) == 1:
        print_table(results[0], out)
    else:
        print_comparison(results, f"genlab-eval -> {out}, {table_md.name}, {table_csv.name}")
    return written


def print_table(results: dict[str, Any], out: Path) -> None:
    """The scalar results as a rich table (the metrics that do not apply, null in the file,
    are left out)."""
    table = Table(title=f"genlab-eval -> {out}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in results.items():
        if isinstance(value, float):
            table.add_row(key, f"{value:.4f}")
        elif isinstance(value, int) and not isinstance(value, bool):
            table.add_row(key, str(value))
    Console().print(table)
