"""genlab-ema: build the EMA of any length from a run's post-hoc EMA snapshots (EDM2, Karras
et al. 2024, sec. 3 and appendix C; `callbacks=posthoc_ema` writes the snapshots).

genlab-ema run_dir=<run> sigma_rels=[0.02,0.05,0.1,0.15]
genlab-ema run_dir=<run> decays=[0.999] step=1000
genlab-ema run_dir=<run> sigma_rels=[0.02,0.05,0.1] score=true 'eval_args=["seed=1"]'
Then: genlab-eval samples=[<run>/checkpoints/posthoc_ema-0.05.ckpt,...] (same latents: FID
against the EMA length), genlab-sample or genlab-export ckpt_path=<that file>.

Each checkpoint is the run's `last.ckpt` with its weights replaced by the rebuilt average
(and without the optimiser and callback state: it is for sampling, not for resuming).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig

from genlab.callbacks.posthoc_ema import SNAPSHOT_DIR, snapshot_step
from genlab.checkpoints import read_checkpoint, save_into_file, weights_only_checkpoint
from genlab.config.overrides import checked_entry_point
from genlab.config.paths import config_dir
from genlab.config.resolvers import register_resolvers
from genlab.errors import ConfigError, GenlabError, user_errors_reported
from genlab.posthoc_ema import (
    MAX_SIGMA_REL,
    is_sigma_rel,
    profile_error,
    reconstruct,
    sigma_rel_of_decay,
    solve_weights,
    std_to_exp,
)
from genlab.posthoc_ema_sweep import reference_points, rows_of, scored, write_sweep
from genlab.runs.output_paths import writable_directory
from genlab.runs.result import result_recorded
from genlab.utils.files import write_atomically

log = logging.getLogger(__name__)


def posthoc_checkpoint_name(sigma_rel: float) -> str:
    """The file genlab-ema writes the average of length `sigma_rel` to, in `out_dir`."""
    return f"posthoc_ema-{sigma_rel:.4g}.ckpt"


def snapshot_files(run_dir: Path, step: int | None) -> list[Path]:
    """The run's snapshot files up to `step` (null: all), in step order; a run without
    snapshots, or a step after the last, is one line."""
    directory = run_dir / SNAPSHOT_DIR
    files = sorted(directory.glob("*.pt"))
    if not files:
        raise GenlabError(
            f"{directory} holds no post-hoc EMA snapshots; train with callbacks=posthoc_ema"
        )
    last = snapshot_step(files[-1])
    if step is not None and not 1 <= step <= last:
        raise ConfigError(f"step must lie in 1..{last} (the last snapshot's), got {step}")
    return [f for f in files if snapshot_step(f) <= (step or last)]


def read_snapshot(path: Path) -> dict[str, Any]:
    """A snapshot file, or one line naming it when it cannot be read."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for damaged files
        raise GenlabError(f"snapshot {path} cannot be read (truncated?): {err}") from None


def requested_sigma_rels(cfg: DictConfig, steps: int) -> list[float]:
    """`sigma_rels` and the sigma_rel of each classic `decays` at `steps` iterations."""
    wanted = [float(s) for s in cfg.sigma_rels]
    for decay in cfg.decays:
        if not 0 < decay < 1:
            raise ConfigError(f"decays must lie in (0, 1), got {decay}")
        wanted.append(sigma_rel_of_decay(float(decay), steps))
    for sigma_rel in wanted:
        if not is_sigma_rel(sigma_rel):
            raise ConfigError(
                f"a sigma_rel must lie in (0, {MAX_SIGMA_REL:.3f}), got {sigma_rel:.4g}"
                " (a classic decay this short at this run length has no power profile)"
            )
    if not wanted:
        raise ConfigError("give sigma_rels=[...] or decays=[...]: nothing to build")
    return wanted


def build_posthoc_ema(cfg: DictConfig) -> list[Path]:
    """Write one checkpoint per requested EMA length; return their paths."""
    run_dir = Path(cfg.run_dir)
    last_path = run_dir / "checkpoints" / "last.ckpt"
    last = read_checkpoint(last_path)
    snapshots = [read_snapshot(path) for path in snapshot_files(run_dir, cfg.step)]
    step = snapshots[-1]["step"]
    out_dir = writable_directory("out_dir", Path(cfg.out_dir))
    steps, gammas = [s["step"] for s in snapshots], [s["gamma"] for s in snapshots]
    built = {}  # path -> what genlab-ema built there
    for sigma_rel in requested_sigma_rels(cfg, step):
        gamma = std_to_exp(sigma_rel)
        coefficients = solve_weights(steps, gammas, step, gamma)
        error = profile_error(steps, gammas, step, gamma, coefficients)
        weights = reconstruct([s["state_dict"] for s in snapshots], coefficients)
        checkpoint = weights_only_checkpoint(
            last, weights, f"post-hoc EMA weights (sigma_rel {sigma_rel:.4g})"
        )
        checkpoint["posthoc_ema"] = {"sigma_rel": sigma_rel, "step": step, "profile_error": error}
        path = out_dir / posthoc_checkpoint_name(sigma_rel)
        write_atomically(path, lambda tmp, c=checkpoint: save_into_file(c, tmp))
        log.info("sigma_rel %.4g at iteration %d (profile off by %.1f%%): %s",
                 sigma_rel, step, 100 * error, path)  # fmt: skip
        built[path] = checkpoint["posthoc_ema"]
    if cfg.score:
        score_lengths(cfg, (last_path, last), out_dir, built)
    return list(built)


def score_lengths(
    cfg: DictConfig,
    last: tuple[Path, dict[str, Any]],
    out_dir: Path,
    built: dict[Path, dict[str, Any]],
) -> None:
    """FID of the run's last weights and of every rebuilt length, one table and picture."""
    points = reference_points(*last, out_dir)
    rows = [{"weights": label, "sigma_rel": None, "profile_error": None} for label, _ in points]
    for path, posthoc in built.items():
        points.append((f"posthoc {posthoc['sigma_rel']:.4g}", path))
        rows.append({"weights": points[-1][0], "sigma_rel": posthoc["sigma_rel"],
                     "profile_error": posthoc["profile_error"]})  # fmt: skip
    rows = rows_of(rows, scored(points, Path(cfg.paths.output_dir), list(cfg.eval_args)))
    files = write_sweep(rows, Path(cfg.paths.output_dir))
    log.info("FID against the EMA length: %s", ", ".join(str(f) for f in files))


register_resolvers()


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="ema")
def main(cfg: DictConfig) -> None:
    """Console entry point `genlab-ema`."""
    with user_errors_reported(), result_recorded(cfg):
        build_posthoc_ema(cfg)


cli = checked_entry_point(main, config_name="ema")

if __name__ == "__main__":
    cli()
