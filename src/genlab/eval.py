"""genlab-eval: measure a trained checkpoint and write metrics.json.

genlab-eval ckpt_path=<run>/checkpoints/best.ckpt
genlab-eval ckpt_path=... metrics=fid_inception metrics.n_samples=10000
genlab-eval ckpt_path=<VAE run>/checkpoints/best.ckpt sampler=gmm   # + fid_gmm, ...
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from genlab.checkpoints import load_model, run_datamodule
from genlab.config.checks import EVAL_KEYS, check_numbers
from genlab.config.overrides import checked_entry_point
from genlab.config.paths import config_dir
from genlab.config.resolvers import register_resolvers
from genlab.errors import user_errors_reported
from genlab.metrics.extractors import build_extractor
from genlab.metrics.likelihood import likelihood_report
from genlab.metrics.precision_recall import precision_recall
from genlab.metrics.real_features import real_features
from genlab.metrics.suite import MetricSuite, NonFiniteSamplesError
from genlab.models import VAEModule
from genlab.models.base import GenerativeModule
from genlab.models.latent_gmm import check_sampler, fit_latent_gmm
from genlab.runs.output_paths import writable_file
from genlab.runs.result import result_recorded
from genlab.utils.devices import checked_device

log = logging.getLogger(__name__)


def timed(fn: Any) -> tuple[Any, float]:
    """(fn(), seconds it took), waiting for queued GPU work so that the time is real."""
    start = time.perf_counter()
    result = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


def generated_scores(
    model: GenerativeModule, suite: MetricSuite, real: torch.Tensor, cfg: DictConfig
) -> tuple[dict[str, Any], dict[str, float]]:
    """FID/KID/IS and precision/recall of `metrics.n_samples` generated images (null IS when
    `metrics.compute_is=false`), and the seconds that generation, features and metrics took.
    """
    m = cfg.metrics
    generator = torch.Generator().manual_seed(cfg.seed)
    images, gen_seconds = timed(lambda: model.generate(m.n_samples, generator, m.batch_size))
    try:
        fake, feature_seconds = timed(
            lambda: torch.cat([suite.update(chunk).cpu() for chunk in images.split(m.batch_size)])
        )
    except NonFiniteSamplesError as err:
        raise NonFiniteSamplesError(
            f"{err} (sampler={cfg.sampler}); FID, KID and IS are undefined for them: "
            "evaluate an earlier checkpoint of the run"
        ) from None
    scores, metric_seconds = timed(suite.compute)
    suite.reset()
    precision, recall = precision_recall(real, fake, k=cfg.pr_neighbours, seed=cfg.seed)
    scores = {"is_mean": None, "is_std": None, **scores, "precision": precision, "recall": recall}
    seconds = {"generation": gen_seconds, "features": feature_seconds, "metrics": metric_seconds}
    return scores, seconds


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Every metric of `cfg.ckpt_path`; also written to `cfg.out_file`.

    `sampler=gmm` (VAEs) adds the sample metrics of latents drawn from a Gaussian mixture
    fitted to the training latents, beside the prior's, as `<metric>_gmm`.
    """
    check_numbers(cfg, EVAL_KEYS)
    device = checked_device(cfg.device)
    out = writable_file("out_file", Path(cfg.out_file))
    torch.manual_seed(cfg.seed)  # the ELBO's and the IW bound's posterior samples
    model, run_cfg = load_model(cfg.ckpt_path)
    check_sampler(cfg.sampler, model)
    model.to(device)
    datamodule = run_datamodule(run_cfg, cfg.data_dir)
    datamodule.setup("test")

    m = cfg.metrics
    extractor = build_extractor(
        m.extractor, **({"allow_download": m.allow_download} if m.extractor == "inception" else {})
    )
    extractor.to(device)
    real = real_features(datamodule, m.real_split, extractor, m.cache_dir, m.batch_size, device)
    suite = MetricSuite(extractor, real, n_fake=m.n_samples, kid_subset_size=m.kid_subset_size,
                        compute_is=m.compute_is, seed=cfg.seed).to(device)  # fmt: skip
    scores, seconds = generated_scores(model, suite, real, cfg)

    results: dict[str, Any] = {
        "checkpoint": str(Path(cfg.ckpt_path).resolve()),
        "model": type(model).__name__,
        "dataset": datamodule.name,
        "real_split": m.real_split,
        "n_real": len(real),
        "n_samples": m.n_samples,
        "extractor": extractor.name,
        "weights_sha256": extractor.weights_sha256,
        "sampler": cfg.sampler,
        **scores,
        "pr_samples": min(len(real), m.n_samples),  # each set cut to this size for precision/recall
        "sampling_images_per_second": m.n_samples / seconds["generation"],
        "seconds": seconds,
    }
    if cfg.sampler == "gmm":
        model.latent_sampler, fit_seconds = timed(
            lambda: fit_latent_gmm(model, datamodule, cfg.gmm_components, cfg.seed)
        )
        gmm_scores, gmm_seconds = generated_scores(model, suite, real, cfg)
        results |= {f"{key}_gmm": value for key, value in gmm_scores.items()}
        results["gmm_components"] = cfg.gmm_components
        results["seconds"] |= {"gmm_fit": fit_seconds, "gmm_generation": gmm_seconds["generation"]}
    if isinstance(model, VAEModule):
        results |= likelihood_report(model, datamodule.test_dataloader(), cfg.iw_samples, device)

    out.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results, out)
    return results


def print_table(results: dict[str, Any], out: Path) -> None:
    """The scalar results as a rich table."""
    table = Table(title=f"genlab-eval -> {out}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in results.items():
        if isinstance(value, float):
            table.add_row(key, f"{value:.4f}")
        elif isinstance(value, int):
            table.add_row(key, str(value))
        elif value is None:
            table.add_row(key, "null")
    Console().print(table)


register_resolvers()


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="eval")
def main(cfg: DictConfig) -> None:
    """Console entry point `genlab-eval`."""
    with user_errors_reported(), result_recorded(cfg):
        evaluate(cfg)


cli = checked_entry_point(main, config_name="eval")

if __name__ == "__main__":
    cli()
