"""OmegaConf resolvers used by genlab's configs.

- `${genlab_run_id:}`  a short random id, fixed for the process, appended to run
  directories so that two runs started in the same second never share one.
- `${genlab_wandb_offline:}`  true unless W&B credentials exist, so W&B never
  prompts for a login and never blocks a run without network.
"""

from __future__ import annotations

import netrc
import os
import secrets
from functools import cache
from urllib.parse import urlparse

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


def register_resolvers() -> None:
    """Register the resolvers once; safe to call again."""
    for name, fn in {"genlab_run_id": run_id, "genlab_wandb_offline": wandb_offline}.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
