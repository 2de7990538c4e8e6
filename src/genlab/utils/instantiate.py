"""Hydra `instantiate` with errors a user can act on."""

from __future__ import annotations

from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from genlab.utils.errors import ConfigError, GenlabError


def build(key: str, node: DictConfig, **kwargs: Any) -> Any:
    """Instantiate the config at `key`; any failure becomes one line naming `key`.

    Hydra wraps a constructor's exception in InstantiationException; a GenlabError
    raised by genlab's own constructors is passed through unchanged.
    """
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, GenlabError):
            raise cause from None
        reason = str(cause or err).splitlines()[0]
        raise ConfigError(f"cannot build `{key}`: {reason}") from None


def build_all(key: str, group: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a dict-shaped group (callbacks, logger); `null` disables one."""
    if not group:
        return []
    return [
        build(f"{key}.{name}", node, _convert_="partial")
        for name, node in group.items()
        if node is not None and "_target_" in node
    ]
