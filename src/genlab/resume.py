"""Resume restores the run: the checkpoint's stored config is the config.

A checkpoint carries the resolved config it was trained with (`genlab_config`). When a
run resumes, that config decides the model, data, loss, optimiser, seed and every other
key, whatever the defaults are today; the command line may change only what is safe to
change on resume (SAFE_ON_RESUME: epochs and steps, devices, logging, precision between
mixed and full, callbacks without state, paths, sampling options). A change to anything
else would train a different run on top of the checkpoint's state, so it fails in one
line naming the key, its stored value and the requested one. What the command line
requested is what it changed against the composed defaults, plus every key it named
explicitly (an override equal to today's default, `trainer.max_epochs=25`, still wins
over the checkpoint's 10), so a group choice (`model=vae`) and a single key
(`model.loss=hinge`) are judged alike.

The run's own directory, `paths`, and keys that genlab gained after the checkpoint was
written (top-level keys and callbacks) come from the current run. `.hydra/config.yaml`
is rewritten with the config that runs.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter

from genlab.compat import checkpoint_batches_that_stepped, checkpoint_epochs_trained
from genlab.config.checks import metrics_on
from genlab.config.paths import config_dir
from genlab.errors import ConfigError
from genlab.utils.files import remove_stale_temp_files, write_atomically

# Keys (and every key below them) that a command line may change when a run resumes.
SAFE_ON_RESUME = (
    "ckpt_path", "checkpoint_every_minutes", "task_name", "tags", "paths", "logger", "callbacks",
    "trainer.max_epochs", "trainer.max_steps", "trainer.accelerator", "trainer.devices",
    "trainer.num_nodes", "trainer.strategy", "trainer.sync_batchnorm",
    "trainer.use_distributed_sampler", "trainer.precision", "trainer.benchmark",
    "trainer.deterministic", "trainer.default_root_dir", "trainer.log_every_n_steps",
    "trainer.enable_model_summary", "trainer.enable_progress_bar", "trainer.num_sanity_val_steps",
    "trainer.check_val_every_n_epoch", "trainer.limit_val_batches", "trainer.profiler",
    "data.data_dir", "data.num_workers", "data.pin_memory",
    "metrics.every_n_epochs", "metrics.batch_size", "metrics.cache_dir", "metrics.allow_download",
    "model.sampling", "model.validation_sampling",  # how samples are drawn, not what is trained
)  # fmt: skip
# Callbacks whose state is part of the run's: weight averaging keeps the averaged weights (and
# post-hoc EMA its profiles; its snapshot interval may change).
STATEFUL_CALLBACKS = ("callbacks.ema", "callbacks.posthoc_ema.sigma_rels")
# Precisions that store the weights themselves in another dtype than 32-bit floats.
WEIGHT_PRECISIONS = ("16-true", "bf16-true", "64-true", "64")
# The run's own locations: always the current run's, never the checkpoint's.
RUN_PATHS = ("output_dir", "data_dir", "cache_dir")
ABSENT = "(absent)"


def under(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == prefix or key.startswith(f"{prefix}.") for prefix in prefixes)


def safe_on_resume(key: str, stored: Any, requested: Any) -> bool:
    """Whether the command line may change `key` from `stored` to `requested` on resume."""
    if key == "trainer.precision":
        return not {str(stored), str(requested)} & set(WEIGHT_PRECISIONS)
    return under(key, SAFE_ON_RESUME) and not under(key, STATEFUL_CALLBACKS)


def leaves(tree: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config as {"model.optimizer.lr": 0.0002, ...}; an empty dict or None is a leaf."""
    if not isinstance(tree, dict) or not tree:
        return {prefix: tree} if prefix else {}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(leaves(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def composed_defaults() -> DictConfig:
    """The config the entry point composes from no override at all."""
    name = HydraConfig.get().job.config_name if HydraConfig.initialized() else "train"
    if GlobalHydra.instance().is_initialized():  # inside the Hydra app
        return compose(config_name=name or "train", overrides=[])
    with initialize_config_dir(version_base="1.3", config_dir=str(config_dir())):
        return compose(config_name=name or "train", overrides=[])


def named_keys(cfg: DictConfig) -> set[str]:
    """Every key under what the command line named (`trainer.max_epochs=25`, `model=vae`,
    `model/net@model.generator=dcgan`), whether or not it equals the default. Groups whose
    keys live elsewhere (`experiment=...`) and Hydra's own keys name none."""
    if not HydraConfig.initialized():
        return set()
    given = leaves(OmegaConf.to_container(cfg, resolve=False))
    keys: set[str] = set()
    for override in OverridesParser.create().parse_overrides(
        list(HydraConfig.get().overrides.task)
    ):
        node = override.package or override.key_or_group.replace("/", ".")
        if override.is_delete() or under(node, ("hydra",)):
            continue  # a deletion differs from the defaults: requested_keys finds it
        keys |= {key for key in given if under(key, (node,))}
    return keys


def requested_keys(cfg: DictConfig) -> set[str]:
    """The keys the command line changed: where `cfg` differs from the composed defaults,
    compared before interpolation, so a key that follows another (`${seed}`) is not one,
    and every key it named explicitly."""
    given = leaves(OmegaConf.to_container(cfg, resolve=False))
    defaults = leaves(OmegaConf.to_container(composed_defaults(), resolve=False))
    keys = given.keys() | defaults.keys()
    changed = {key for key in keys if given.get(key, ABSENT) != defaults.get(key, ABSENT)}
    return changed | named_keys(cfg)


def moved(value: Any, old_paths: dict[str, str], new_paths: dict[str, str]) -> Any:
    """`value` with the checkpoint's run, data and cache directories replaced by this run's."""
    if isinstance(value, dict):
        return {key: moved(item, old_paths, new_paths) for key, item in value.items()}
    if isinstance(value, list):
        return [moved(item, old_paths, new_paths) for item in value]
    if not isinstance(value, str):
        return value
    for name in RUN_PATHS:
        old, new = old_paths.get(name), new_paths.get(name)
        if old and new and (value == old or value.startswith(f"{old}/")):
            return new + value[len(old) :]
    return value


def lookup(tree: Any, key: str) -> Any:
    """The node at dotted `key` of a nested dict, or ABSENT."""
    for part in key.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return ABSENT
        tree = tree[part]
    return tree


def set_key(tree: dict[str, Any], key: str, value: Any) -> None:
    *parents, last = key.split(".")
    for part in parents:
        if not isinstance(tree.get(part), dict):
            tree[part] = {}
        tree = tree[part]
    tree[last] = value


def drop_key(tree: dict[str, Any], key: str) -> None:
    """Remove `key`, and the parents that removing it leaves empty."""
    *parents, last = key.split(".")
    node = lookup(tree, ".".join(parents)) if parents else tree
    if isinstance(node, dict) and last in node:
        del node[last]
        if not node and parents:
            drop_key(tree, ".".join(parents))


def resumed_config(
    stored: dict[str, Any], current: dict[str, Any], requested: set[str]
) -> dict[str, Any]:
    """The config a resumed run trains with (see the module); raises ConfigError for a
    requested change that is not safe on resume."""
    config = moved(stored, stored.get("paths", {}), current["paths"])
    changes = sorted(key for key in requested if not under(key, ("paths",)))
    for key in changes:
        wanted, had = lookup(current, key), lookup(config, key)
        if wanted != had and not safe_on_resume(key, had, wanted):
            raise ConfigError(
                f"{key} cannot change when a run resumes: the checkpoint was trained with "
                f"{key}={had}, the command line asks for {wanted}; a resumed run keeps the "
                "checkpoint's config (model, data, loss, optimiser, seed): drop the override, "
                "or start a new run without ckpt_path"
            )
    for key in sorted(changes, key=lambda key: lookup(current, key) is not ABSENT):
        wanted = lookup(current, key)  # drops first, then sets
        if wanted is ABSENT:
            drop_key(config, key)
        else:
            set_key(config, key, wanted)
    config["paths"], config["ckpt_path"] = current["paths"], current["ckpt_path"]
    for key, value in current.items():  # keys added to genlab since the checkpoint was written
        config.setdefault(key, value)
    if isinstance(config.get("callbacks"), dict):
        for name, node in (current.get("callbacks") or {}).items():
            config["callbacks"].setdefault(name, node)
    return config


def restore_run_config(cfg: DictConfig, checkpoint: dict[str, Any]) -> None:
    """Make `cfg` (in place) the config the resumed run trains with, and record it."""
    requested = requested_keys(cfg)
    current = OmegaConf.to_container(cfg, resolve=True)
    config = resumed_config(checkpoint["genlab_config"], current, requested)
    with open_dict(cfg):
        for key in list(cfg.keys()):
            if key not in config:
                del cfg[key]
        for key, value in config.items():
            cfg[key] = value
    record_config(cfg)


def record_config(cfg: DictConfig) -> None:
    """Rewrite the `.hydra/config.yaml` that Hydra wrote from the command line with `cfg`."""
    if not HydraConfig.initialized():
        return
    hydra_cfg = HydraConfig.get()
    run_dir = OmegaConf.select(hydra_cfg, "runtime.output_dir", default=None)
    if run_dir is None or hydra_cfg.output_subdir is None:  # DDP's other ranks write none
        return
    path = Path(run_dir) / hydra_cfg.output_subdir / "config.yaml"
    if path.is_file():
        text = OmegaConf.to_yaml(cfg)
        write_atomically(path, lambda tmp: tmp.write_text(text))


def check_training_left(
    cfg: DictConfig, checkpoint: dict[str, Any], max_optimizer_steps: int
) -> None:
    """A checkpoint that already reached `max_epochs` (or `max_steps`) would resume into a
    run that trains nothing and reports it completed: say so instead."""
    epochs_done = checkpoint_epochs_trained(checkpoint)
    max_epochs = cfg.trainer.get("max_epochs")
    if isinstance(max_epochs, int) and max_epochs >= 0 and epochs_done >= max_epochs:
        raise ConfigError(
            f"the checkpoint has already trained {epochs_done} epochs, trainer.max_epochs="
            f"{max_epochs}: nothing is left to train; pass a larger trainer.max_epochs to go on"
        )
    if max_optimizer_steps >= 0 and checkpoint["global_step"] >= max_optimizer_steps:
        raise ConfigError(
            f"the checkpoint has already reached trainer.max_steps={cfg.trainer.max_steps}: "
            "nothing is left to train; pass a larger trainer.max_steps to go on"
        )


def remove_interrupted_writes(cfg: DictConfig, ckpt_path: Path | None) -> None:
    """At a run's start, remove the temporary files that writes killed half-way left: in
    the checkpoint directory it resumes from, its own, and the feature cache."""
    directories = {Path(cfg.paths.output_dir) / "checkpoints", Path(cfg.paths.cache_dir)}
    if ckpt_path is not None:
        directories.add(Path(ckpt_path).parent)
    if metrics_on(cfg):
        directories.add(Path(cfg.metrics.cache_dir))
    for directory in directories:
        remove_stale_temp_files(directory)


def carry_over_csv_log(loggers: list[Any], progress: dict[str, Any]) -> None:
    """Keep the rows a run logged before its checkpoint when it resumes in its own directory.

    Lightning's CSV logger deletes an existing `metrics.csv` when it starts; the rows up to
    the checkpoint's step are read first and logged again, those after it (training that
    the resumed run does again) are dropped.
    """
    resumed_at = checkpoint_batches_that_stepped(progress)
    for logger in loggers:
        if not isinstance(logger, CSVLogger):
            continue
        path = Path(logger.log_dir) / ExperimentWriter.NAME_METRICS_FILE
        if not path.is_file():
            continue
        with path.open(newline="") as file:
            rows = list(csv.DictReader(file))
        for row in rows:
            step = int(row.pop("step"))
            if step < resumed_at:
                values = {key: float(value) for key, value in row.items() if value != ""}
                logger.experiment.log_metrics(values, step)
