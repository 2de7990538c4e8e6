"""Building a model's optimisers and schedulers from the config's partials."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable

from torch import nn
from torch.optim import Optimizer

from genlab.utils.errors import ConfigError

OptimizerFactory = Callable[..., Optimizer]
SchedulerFactory = Callable[[Optimizer], object]


def build_optimizer(
    factory: OptimizerFactory, params: Iterable[nn.Parameter], **overrides: float | None
) -> Optimizer:
    """An optimiser from the config's partial, e.g. with a per-network learning rate
    (`overrides` set to None are left to the config).

    On CUDA an optimiser that has a fused kernel (Adam, AdamW, SGD, ...) gets
    `fused=True` unless the config sets `fused` or `foreach`: one kernel launch per step,
    not several per parameter.
    """
    params = list(params)
    kwargs = {k: v for k, v in overrides.items() if v is not None}
    configured = getattr(factory, "keywords", {})
    lr = kwargs.get("lr", configured.get("lr"))
    if lr is not None and lr <= 0:
        raise ConfigError(f"learning rate must be > 0, got {lr}; fix model.optimizer.lr")
    on_cuda = bool(params) and all(p.is_cuda for p in params)
    chosen = {"fused", "foreach"} & configured.keys()  # the config picked its kernels
    if on_cuda and not chosen and accepts_fused(factory):
        kwargs["fused"] = True
    return factory(params, **kwargs)


def with_schedulers(
    scheduler_factory: SchedulerFactory | None, optimizers: list[Optimizer]
) -> list[Optimizer] | tuple[list, list]:
    """What `configure_optimizers` returns: the optimisers, with one scheduler each if the
    config has a scheduler."""
    if scheduler_factory is None:
        return optimizers
    return optimizers, [scheduler_factory(opt) for opt in optimizers]


def accepts_fused(factory: OptimizerFactory) -> bool:
    """Whether the optimiser class behind a (partial) factory takes a `fused` argument."""
    cls = getattr(factory, "func", factory)
    try:
        return "fused" in inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False
