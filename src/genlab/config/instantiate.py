"""Hydra `instantiate` with errors a user can act on, and only for classes genlab trusts.

A config decides which classes are built (`_target_`), and configs come from files:
a checkpoint carries its run's config, which `genlab-sample`, `genlab-eval` and a
resumed run build again. A `_target_` naming `os.system`, `builtins.exec` or
`torch.load` would run whatever the file says. So every `_target_` in a node, nested
and `_partial_` ones included, is checked before anything is imported or built: it
must name a class of genlab itself, or a class of the kinds genlab's config groups use
(torch.optim optimisers and learning-rate schedulers, Lightning's Trainer, callbacks
and loggers). `GENLAB_TRUSTED_MODULES` (comma-separated module names) adds the
classes of a user's own modules.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Iterator
from typing import Any

import pytorch_lightning as pl
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig
from pytorch_lightning.loggers import Logger
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from genlab.compat import config_child
from genlab.errors import ConfigError, GenlabError, first_line

TRUSTED_MODULES_ENV = "GENLAB_TRUSTED_MODULES"

# Libraries whose modules a `_target_` may name (importing them runs only their own code).
LIBRARY_PACKAGES = ("torch.optim", "pytorch_lightning")
# Library classes genlab's config groups build: (module the class is defined in, base class).
LIBRARY_CLASSES: tuple[tuple[str, type], ...] = (
    ("torch.optim", Optimizer),
    ("torch.optim", LRScheduler),
    ("pytorch_lightning.callbacks", pl.Callback),
    ("pytorch_lightning.loggers", Logger),
    ("pytorch_lightning.trainer", pl.Trainer),
)
ALLOWED_KINDS = (
    "genlab's own classes, torch.optim optimisers and lr_schedulers, "
    "and Lightning's Trainer, callbacks and loggers"
)


def trusted_modules() -> tuple[str, ...]:
    """genlab, plus the modules a user trusts through GENLAB_TRUSTED_MODULES."""
    extra = os.environ.get(TRUSTED_MODULES_ENV, "")
    return ("genlab", *(name.strip() for name in extra.split(",") if name.strip()))


def within(module: str, package: str) -> bool:
    """Whether `module` is `package` or one of its submodules."""
    return module == package or module.startswith(package + ".")


def targets(node: Any, key: str) -> Iterator[tuple[str, Any]]:
    """Every (`<key>._target_`, target) in `node` and below it, lists included; an
    interpolated target is resolved, as `instantiate` would resolve it."""
    if isinstance(node, DictConfig):
        for name in node:
            child_key = f"{key}.{name}"
            if name == "_target_":
                try:
                    yield child_key, node[name]
                except Exception as err:  # an interpolation that does not resolve
                    raise ConfigError(f"{child_key} cannot be resolved: {err}") from None
            else:
                yield from targets(config_child(node, name), child_key)
    elif isinstance(node, ListConfig):
        for index in range(len(node)):
            yield from targets(config_child(node, index), f"{key}[{index}]")


def locate(path: str) -> Any:
    """The object a dotted path names: the longest importable module, then attributes."""
    parts = path.split(".")
    for end in range(len(parts), 0, -1):
        module_name = ".".join(parts[:end])
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name is not None and not within(module_name, err.name):
                raise  # the module exists but itself imports a missing one
            continue
        for attribute in parts[end:]:
            obj = getattr(obj, attribute)
        return obj
    raise ModuleNotFoundError(f"no module named {parts[0]!r}")


def check_target(key: str, target: Any) -> None:
    """Raise ConfigError unless `target` names an allowed class.

    The name is checked before its module is imported (importing runs a module's code);
    the class found is checked again, since `genlab.checkpoints.torch.load` is a name
    inside genlab that reaches torch.load.
    """
    refused = (
        f"{key}={target} is not allowed: genlab builds only {ALLOWED_KINDS}; "
        f"to trust your own module, set {TRUSTED_MODULES_ENV}=<module>"
    )
    if not isinstance(target, str):
        raise ConfigError(refused)
    own = trusted_modules()
    if not any(within(target, package) for package in own + LIBRARY_PACKAGES):
        raise ConfigError(refused)
    try:
        cls = locate(target)
    except (ImportError, AttributeError) as err:
        reason = first_line(err)
        raise ConfigError(f"{key}={target} cannot be found: {reason}") from None
    if not inspect.isclass(cls):
        raise ConfigError(refused)
    module = cls.__module__
    if any(within(module, package) for package in own):
        return
    if any(within(module, package) and issubclass(cls, base) for package, base in LIBRARY_CLASSES):
        return
    raise ConfigError(refused)


def check_targets(key: str, node: Any) -> None:
    """Raise ConfigError unless every `_target_` in `node` is allowed (see the module)."""
    for target_key, target in targets(node, key):
        check_target(target_key, target)


def build(key: str, node: DictConfig, **kwargs: Any) -> Any:
    """Instantiate the config at `key`; any failure becomes one line naming `key`.

    Every `_target_` in the node is checked first (check_targets). Hydra wraps a
    constructor's exception in InstantiationException; a GenlabError raised by genlab's
    own constructors is passed through unchanged.
    """
    check_targets(key, node)
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
