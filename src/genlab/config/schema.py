"""The typed schema of genlab's configs, so that a typo or a wrong type fails in one line
with the key's full path before anything is built.

Two parts, one source of truth each:

- The top level of `train.yaml` is a Hydra structured config (`TrainConfig`, stored in
  Hydra's ConfigStore as `train_schema` and listed first in train.yaml's defaults): Hydra
  rejects an unknown top-level key or a wrong type while composing. Its fields hold only
  types; the values and their comments stay in the YAML files.
- Every node with a `_target_` (the data, the model and its nets, the trainer, each
  logger and callback, the metrics, the optimizer) is typed by the signature of what it
  builds, through hydra-zen's `builds(..., populate_full_signature=True)`: a key that is
  not a parameter, or a value that does not fit the parameter's annotation, is rejected
  by OmegaConf. No list of keys is kept by hand.
"""

from __future__ import annotations

import inspect
import types
import typing
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra_zen import builds
from omegaconf import MISSING, DictConfig, OmegaConf


@dataclass
class PathsConfig:
    """conf/paths/: where genlab reads and writes (values and comments in the YAML)."""

    root_dir: str = MISSING
    data_dir: str = MISSING
    log_dir: str = MISSING
    cache_dir: str = MISSING
    output_dir: str = MISSING


@dataclass
class TrainConfig:
    """The top level of conf/train.yaml. The groups' own keys are typed by their targets."""

    task_name: str = MISSING
    tags: list[str] = MISSING
    seed: int | None = MISSING
    optimized_metric: str | None = MISSING  # auto, a logged metric name, or null (none)
    ckpt_path: str | None = MISSING
    checkpoint_every_minutes: float = MISSING
    data: Any = MISSING
    model: Any = MISSING
    trainer: Any = MISSING
    logger: Any = None  # name -> logger node (null: no logger)
    callbacks: Any = None  # name -> callback node (null: switched off)
    metrics: Any = None  # null with metrics=none
    # Typed as PathsConfig by check_config: a field of a dataclass type would refuse the
    # plain dict that a resumed run's config (the checkpoint's) assigns to it.
    paths: Any = MISSING


def register_schemas() -> None:
    """Put the schemas into Hydra's ConfigStore (before composing a config)."""
    ConfigStore.instance().store(name="train_schema", node=TrainConfig)


@dataclass(frozen=True)
class TargetSchema:
    """What a `_target_` accepts: typed parameter schemas (the class's own first, then the
    base classes its `**kwargs` reach) and whether it takes further keys unchecked."""

    schemas: tuple[DictConfig, ...]
    open_ended: bool
    # Parameters annotated with a union of plain types and others (torch's `lr: float |
    # Tensor`): OmegaConf cannot type them, so they are checked against the plain types.
    plain_unions: dict[str, tuple[type, ...]] = field(default_factory=dict)

    def owner(self, name: str) -> DictConfig | None:
        """The schema that declares parameter `name` (`in` would miss a required one)."""
        return next((s for s in self.schemas if name in s.keys()), None)  # noqa: SIM118

    @property
    def parameters(self) -> list[str]:
        names = {key for schema in self.schemas for key in schema.keys()}  # noqa: SIM118
        return sorted(name for name in names if not name.startswith("_"))


def typed_parameters(target: Any) -> DictConfig:
    """The parameters of one callable as a typed OmegaConf schema (and hydra-zen's
    `_target_`, which the checks skip as they skip every `_`-key)."""
    return OmegaConf.structured(builds(target, populate_full_signature=True))


PLAIN_TYPES = (bool, int, float, str)


def plain_unions(function: Any) -> dict[str, tuple[type, ...]]:
    """{parameter: its plain types} for each parameter of `function` annotated with a union
    of plain types and types no config value can have (a config holds no Tensor)."""
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # an annotation that does not evaluate here: leave the key untyped
        return {}
    unions = {}
    for name, hint in hints.items():
        if typing.get_origin(hint) not in (typing.Union, types.UnionType):
            continue
        members = [m for m in typing.get_args(hint) if m is not type(None)]
        plain = tuple(m for m in members if m in PLAIN_TYPES)
        if plain and len(plain) < len(members):
            unions[name] = (*plain, int) if float in plain else plain
    return unions


def takes_any_keyword(function: Any) -> bool:
    parameters = inspect.signature(function).parameters.values()
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


@cache
def target_schema(target: Any) -> TargetSchema:
    """The schema of `target`. A genlab class whose `**kwargs` go to its base class is
    checked against the base's parameters too; another library's `**kwargs` (e.g. W&B's
    logger, which passes them to `wandb.init`) lead where no signature says what they
    take, so keys beyond its parameters pass unchecked."""
    if not inspect.isclass(target):
        schema = (typed_parameters(target),)
        return TargetSchema(schema, takes_any_keyword(target), plain_unions(target))
    schemas, unions = [], {}
    for klass in target.__mro__:
        if klass is object:
            break
        if "__init__" not in vars(klass):
            continue
        schemas.append(typed_parameters(klass))
        unions = plain_unions(klass.__init__) | unions
        if not takes_any_keyword(klass.__init__):
            return TargetSchema(tuple(schemas), open_ended=False, plain_unions=unions)
        if not klass.__module__.startswith("genlab."):
            break
    return TargetSchema(tuple(schemas), open_ended=True, plain_unions=unions)
