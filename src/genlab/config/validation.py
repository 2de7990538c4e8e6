"""Check a composed config against the schema (genlab.config.schema) before anything runs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from genlab.config.instantiate import check_target, locate
from genlab.config.schema import PathsConfig, TrainConfig, target_schema
from genlab.errors import ConfigError, first_line


def resolved(cfg: DictConfig) -> dict[str, Any]:
    """The config as plain data with every interpolation resolved, as instantiate sees it."""
    try:
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "the config"
        raise ConfigError(f"{key}: {first_line(err)}") from None


def target_nodes(node: Any, key: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (key, node) below `node` whose node has a `_target_`, outermost first."""
    if isinstance(node, dict):
        if "_target_" in node:
            yield key, node
        for name, child in node.items():
            yield from target_nodes(child, f"{key}.{name}" if key else str(name))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from target_nodes(child, f"{key}[{index}]")


def check_target_node(key: str, node: dict[str, Any]) -> None:
    """Reject a key that the node's target does not take, or a value of the wrong type."""
    schema = target_schema(locate(node["_target_"]))
    given = {name: value for name, value in node.items() if not str(name).startswith("_")}
    owners = {name: schema.owner(name) for name in given}
    unknown = [name for name, owner in owners.items() if owner is None]
    if unknown and not schema.open_ended:
        raise ConfigError(
            f"{key}.{unknown[0]} is not a parameter of {node['_target_']}; "
            f"its parameters are {', '.join(schema.parameters)}"
        )
    for name, plain in schema.plain_unions.items():
        value = given.get(name)
        if value is not None and (isinstance(value, bool) is not (bool in plain)
                                  or not isinstance(value, plain)):  # fmt: skip
            kinds = " or ".join(kind.__name__ for kind in dict.fromkeys(plain))
            raise ConfigError(f"{key}.{name}: {value!r} is not a {kinds}")
    for parameters in schema.schemas:
        values = {name: given[name] for name, owner in owners.items() if owner is parameters}
        try:
            OmegaConf.merge(parameters, values)
        except OmegaConfBaseException as err:
            name = getattr(err, "full_key", None) or "?"
            raise ConfigError(f"{key}.{name}: {first_line(err)}") from None


def check_top_level(plain: dict[str, Any]) -> None:
    """The top level against TrainConfig and `paths` against PathsConfig. Hydra checks the
    top level while composing too, but lets keys added with `+` past the schema."""
    groups = (("", "top-level", TrainConfig, plain),
              ("paths.", "paths", PathsConfig, plain.get("paths") or {}))  # fmt: skip
    for prefix, where, schema, values in groups:
        try:
            OmegaConf.merge(OmegaConf.structured(schema), values)
        except OmegaConfBaseException as err:
            key = getattr(err, "full_key", None) or "?"
            known = [field.name for field in fields(schema)]
            if key in values and key not in known:
                raise ConfigError(
                    f"{prefix}{key} is not a {where} config key; the keys are {', '.join(known)}"
                ) from None
            raise ConfigError(f"{prefix}{key}: {first_line(err)}") from None


def check_config(cfg: DictConfig) -> None:
    """Fail in one line, naming the key, on an unknown key, a wrong type, a missing value or
    an interpolation that does not resolve, at the top level (TrainConfig) and in every
    `_target_` node. Targets are checked against the allow-list before their modules are
    imported."""
    plain = resolved(cfg)
    check_top_level(plain)
    for group, node in plain.items():
        nodes = list(target_nodes(node, group))
        for key, target_node in nodes:  # every target of the group allowed before any import
            check_target(f"{key}._target_", target_node["_target_"])
        for key, target_node in nodes:
            check_target_node(key, target_node)
