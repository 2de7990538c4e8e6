"""genlab-train: compose a config with Hydra, build data, model, callbacks, loggers, fit.

genlab-train                                  # the quick start (DCGAN, embedded MNIST)
genlab-train model=vae trainer.max_epochs=3   # any key can be overridden
genlab-train -m model=gan,vae seed=1,2        # a sweep
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import WeightAveraging
from pytorch_lightning.utilities.exceptions import SIGTERMException

from genlab.callbacks import NanGuard, RNGStates, StoreRunConfig
from genlab.checkpoints import WEIGHTS_ONLY, AtomicCheckpointIO, read_checkpoint, resume_path
from genlab.compat import end_ddp_job, start_ddp_ranks_as_the_job
from genlab.config.checks import (
    check_batch_norm,
    check_optimized_metric,
    check_trainer_epochs,
    check_trainer_steps,
    metrics_on,
)
from genlab.config.instantiate import build, build_all
from genlab.config.overrides import checked_entry_point
from genlab.config.paths import config_dir
from genlab.config.resolvers import register_resolvers
from genlab.config.schema import register_schemas
from genlab.config.validation import check_config
from genlab.errors import ConfigError, user_errors_reported
from genlab.preflight import check_model_fits
from genlab.requeue import requeued_checkpoint, requeued_when_preempted
from genlab.resume import (
    carry_over_csv_log,
    check_training_left,
    remove_interrupted_writes,
    restore_run_config,
)
from genlab.runs.result import INTERRUPTED_EXIT_CODE, result_recorded
from genlab.runs.run_logging import continue_wandb_run, finish_wandb, log_hyperparameters
from genlab.utils.disk import disk_full_reported
from genlab.utils.precision import resolve_cpu_precision

log = logging.getLogger(__name__)


def resolve_optimized_metric(
    cfg: DictConfig, model: pl.LightningModule, metrics: pl.Callback | None
) -> str | None:
    """`auto`: the metrics group's FID when on, else the model's own validation loss."""
    if cfg.optimized_metric != "auto":
        return cfg.optimized_metric
    return metrics.monitor if metrics is not None else model.default_monitor


def weight_averaging_last(callbacks: list[pl.Callback]) -> list[pl.Callback]:
    """Put weight averaging (EMA) after every other callback.

    It swaps the averaged weights in at validation start and back at validation end;
    hooks run in list order, so the sample grids and FID, which run at validation end,
    must come before it to see the averaged weights.
    """
    averaging = [c for c in callbacks if isinstance(c, WeightAveraging)]
    return [c for c in callbacks if not isinstance(c, WeightAveraging)] + averaging


def train(cfg: DictConfig, warnings: list[str] | None = None) -> float | None:
    """Fit the configured model; return the best value of `optimized_metric` (for sweepers).

    What a completed run should not keep quiet about (steps skipped for non-finite losses)
    is logged and appended to `warnings` (result.yaml's).
    """
    check_config(cfg)
    check_trainer_steps(cfg)
    check_trainer_epochs(cfg)
    ckpt_path, progress = None, None
    run_dir, runs_dir = Path(cfg.paths.output_dir), Path(cfg.paths.log_dir) / cfg.task_name
    resume_from = cfg.ckpt_path or requeued_checkpoint(run_dir, runs_dir)
    if resume_from:
        ckpt_path = resume_path(resume_from, runs_dir, this_run=run_dir)
        checkpoint = read_checkpoint(ckpt_path)  # a bad file fails here, in one line
        if WEIGHTS_ONLY in checkpoint:  # built by genlab-ema: no training state
            raise ConfigError(
                f"{ckpt_path} holds {checkpoint[WEIGHTS_ONLY]} for sampling and evaluation, "
                "not a training state; resume from the run's checkpoints/last.ckpt"
            )
        restore_run_config(cfg, checkpoint)  # the checkpoint's config is the run's config
        continue_wandb_run(cfg, checkpoint)
        progress = {key: checkpoint[key] for key in ("loops", "global_step")}
        del checkpoint  # the Trainer reads the file itself; do not hold a copy while training
    resolve_cpu_precision(cfg)  # after the resume: the checkpoint's precision, or the override
    remove_interrupted_writes(cfg, ckpt_path)
    if cfg.seed is not None:
        pl.seed_everything(cfg.seed, workers=True)

    datamodule = build("data", cfg.data)
    model = build("model", cfg.model)
    check_model_fits(model, datamodule.image_shape)
    check_batch_norm(model, cfg.data.batch_size, synced=cfg.trainer.get("sync_batchnorm", False))
    if progress is not None:
        check_training_left(cfg, progress, model.optimizer_steps_for(cfg.trainer.max_steps))
    metrics = build("metrics", cfg.metrics) if metrics_on(cfg) else None
    if metrics is not None:
        metrics.check_fits(datamodule.image_shape)
    cfg.optimized_metric = resolve_optimized_metric(cfg, model, metrics)
    check_optimized_metric(cfg.optimized_metric, model, metrics)

    run_config = OmegaConf.to_container(cfg, resolve=True)
    callbacks = [*build_all("callbacks", cfg.callbacks), StoreRunConfig(run_config)]
    if metrics is not None:
        callbacks.append(metrics)
    callbacks = [*weight_averaging_last(callbacks), RNGStates()]  # RNGStates: see its class
    loggers = build_all("logger", cfg.logger)
    if ckpt_path is not None and run_dir.resolve() in ckpt_path.resolve().parents:  # in place
        carry_over_csv_log(loggers, progress)
    trainer: pl.Trainer = build(
        "trainer",
        cfg.trainer,
        callbacks=callbacks,
        logger=loggers,
        plugins=[AtomicCheckpointIO()],
        max_steps=model.optimizer_steps_for(cfg.trainer.max_steps),
    )
    log_hyperparameters(trainer, run_config, model)
    log.info("output directory: %s", cfg.paths.output_dir)

    exit_code = 1
    try:
        with disk_full_reported(run_dir):
            trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
        exit_code = 0
    except SIGTERMException:  # InterruptCheckpoint has saved the state and said where
        raise SystemExit(INTERRUPTED_EXIT_CODE) from None
    finally:
        finish_wandb(exit_code)
        end_ddp_job()
    guards = [callback for callback in trainer.callbacks if isinstance(callback, NanGuard)]
    for summary in filter(None, (guard.skip_summary(trainer) for guard in guards)):
        log.warning(summary)
        if warnings is not None:
            warnings.append(summary)
    log.info(closing_line(trainer, cfg.optimized_metric, run_dir))
    return best_value(trainer, cfg.optimized_metric)


def closing_line(trainer: pl.Trainer, metric: str | None, run_dir: Path) -> str:
    """The run's last console line: the metric it is judged by, best and last, and where
    its checkpoints are (the W&B summary before it lists metrics by name, FID last)."""
    checkpoints = run_dir / "checkpoints"
    last = trainer.callback_metrics.get(metric) if metric else None
    if last is None:
        return f"checkpoints: {checkpoints}"
    best = best_value(trainer, metric)
    return f"{metric}: best {best:.4g}, last {float(last):.4g}; checkpoints: {checkpoints}"


def best_value(trainer: pl.Trainer, metric: str | None) -> float | None:
    """The best checkpointed value of `metric`, else its last logged value."""
    checkpoint = trainer.checkpoint_callback  # the first Checkpoint: ModelCheckpoint, if on
    if metric and getattr(checkpoint, "monitor", None) == metric:
        score = checkpoint.best_model_score
        if score is not None:
            return float(score)
    value = trainer.callback_metrics.get(metric) if metric else None
    return None if value is None else float(value)


register_resolvers()
register_schemas()
start_ddp_ranks_as_the_job()


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Console entry point `genlab-train`."""
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    with (
        user_errors_reported(multirun=multirun),
        requeued_when_preempted(Path(cfg.paths.output_dir)),
        result_recorded(cfg) as result,
    ):
        result.value = train(cfg, warnings=result.warnings)
    return result.value


cli = checked_entry_point(main, config_name="train")

if __name__ == "__main__":
    cli()
