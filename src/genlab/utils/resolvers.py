"""OmegaConf resolvers used by genlab's configs.

- `${genlab_run_id:}`  a short random id, fixed for the process, appended to run
  directories so that two runs started in the same second never share one.
- `${genlab_wandb_offline:}`  true unless W&B credentials exist, so W&B never
  prompts for a login and never blocks a run without network.
- `${genlab_sweep:group}`, `${genlab_sweep:job}`  in a multirun, the sweep's name
  (its directory) and the job's name (number and overrides), so W&B shows one
  group per sweep and one readable run per job; null in a single run.
"""

from __future__ import annotations

import netrc
import os
import secrets
from functools import cache
from pathlib import Path
from urllib.parse import urlparse

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf


@cache
def run_id() -> str:
    """Six hex digits, drawn once per process."""
    return secrets.token_hex(3)


def wandb_offline() -> bool:
    """Whether W&B must run offline: no API key in the environment or in ~/.netrc."""
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode in {"offline", "dryrun", "disabled"}:
        return True
    if os.environ.get("WANDB_API_KEY"):
        return False
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc().authenticators(host or "api.wandb.ai") is None
    except (FileNotFoundError, netrc.NetrcParseError):
        return True


def sweep_name(field: str) -> str | None:
    """`group`: `<task>/<date>/<time>_<id>` of the sweep; `job`: `<num>: <overrides>`.

    None outside a multirun job (a single run, or a config composed without launching).
    """
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    hydra_cfg = HydraConfig.get()
    job_num = OmegaConf.select(hydra_cfg, "job.num", default=None)
    if job_num is None:
        return None
    if field == "group":
        sweep_dir = Path(hydra_cfg.sweep.dir)
        return f"{hydra_cfg.job.name}/{sweep_dir.parent.name}/{sweep_dir.name}"
    if field == "job":
        overrides = hydra_cfg.job.override_dirname
        return f"{job_num}: {overrides}" if overrides else str(job_num)
    raise ValueError(f"genlab_sweep takes `group` or `job`, not {field!r}")


def register_resolvers() -> None:
    """Register the resolvers once; safe to call again.

    `genlab_run_id` is cached in the config (`use_cache`), and Hydra copies that cache
    into every job's config, so jobs that a launcher runs in other processes (joblib,
    submitit) still resolve the sweep directory to the same id.
    """
    if not OmegaConf.has_resolver("genlab_run_id"):
        OmegaConf.register_new_resolver("genlab_run_id", run_id, use_cache=True)
    if not OmegaConf.has_resolver("genlab_wandb_offline"):
        OmegaConf.register_new_resolver("genlab_wandb_offline", wandb_offline)
    if not OmegaConf.has_resolver("genlab_sweep"):
        OmegaConf.register_new_resolver("genlab_sweep", sweep_name)
