"""OmegaConf resolvers used by genlab's configs.

- `${genlab_run_id:}`  a short random id, fixed for the process, appended to run
  directories so that two runs started in the same second never share one.
- `${genlab_wandb_offline:}`  true unless W&B credentials exist and W&B's server
  answers, so W&B never prompts for a login and never blocks a run without network
  (with credentials but no connection, wandb would retry for about 100 s and then end
  the run with a CommError; genlab logs offline instead, with a warning).
- `${genlab_sweep:group}`, `${genlab_sweep:job}`  in a multirun, the sweep's name
  (its directory) and the job's name (number and overrides), so W&B shows one
  group per sweep and one readable run per job; null in a single run.
"""

from __future__ import annotations

import logging
import netrc
import os
import secrets
import socket
import threading
from functools import cache
from pathlib import Path
from urllib.parse import urlparse

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf

log = logging.getLogger("genlab")

WANDB_PROBE_SECONDS = 5.0  # how long the connection to W&B's server may take to open


@cache
def run_id() -> str:
    """Six hex digits, drawn once per process."""
    return secrets.token_hex(3)


def wandb_credentials() -> bool:
    """Whether a W&B API key is in the environment or in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc().authenticators(host or "api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wandb_server() -> tuple[str, int]:
    """The host and port W&B's client connects to: the HTTPS proxy if set, else its server."""
    url = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    if not url:
        url = os.environ.get("WANDB_BASE_URL")
    if not url:
        import wandb

        url = wandb.Settings().base_url
    parsed = urlparse(url if "://" in url else f"http://{url}")
    return parsed.hostname or "", parsed.port or (443 if parsed.scheme == "https" else 80)


@cache
def wandb_unreachable() -> str | None:
    """Why W&B's server cannot be reached (asked, and warned about, once per process), or
    None when it answers.

    A TCP connection within WANDB_PROBE_SECONDS; the name lookup runs in a thread, as a
    socket timeout does not bound it.
    """
    host, port = wandb_server()
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=WANDB_PROBE_SECONDS).close()
            outcome.append(None)
        except OSError as err:
            outcome.append(err.strerror or str(err) or type(err).__name__)

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(WANDB_PROBE_SECONDS)
    if outcome and outcome[0] is None:
        return None
    problem = (
        f"{host}:{port}: {outcome[0]}"
        if outcome
        else f"{host}:{port} did not answer within {WANDB_PROBE_SECONDS:.0f} s"
    )
    log.warning(
        "W&B credentials found but W&B cannot be reached (%s): this run logs to W&B offline, "
        "into wandb/ in its run directory; `wandb sync <that folder>` uploads it later",
        problem,
    )
    return problem


def wandb_offline() -> bool:
    """Whether W&B must run offline: no credentials, or no connection to its server."""
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode in {"offline", "dryrun", "disabled"} or not wandb_credentials():
        return True
    return wandb_unreachable() is not None


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
