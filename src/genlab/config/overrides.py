"""Check the command line's overrides before Hydra runs, so a typo costs one clear line.

Hydra reports an unknown key or group option as a multi-line message with its
search path; this composes the config of the command line's first job first and
turns such a failure into one line that lists the valid keys or options.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ValueType
from hydra.errors import (
    ConfigCompositionException,
    HydraException,
    MissingConfigException,
    OverrideParseException,
)
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ValidationError

from genlab.config.compose import compose_config
from genlab.config.resolvers import register_resolvers
from genlab.config.schema import register_schemas
from genlab.errors import ConfigError, user_errors_reported
from genlab.runs.console import route_library_output_to_logging
from genlab.runs.sweep_summary import print_unfinished_sweep_summaries

MULTIRUN_FLAGS = ("-m", "--multirun")


def sweep_jobs_to_check(args: list[str]) -> list[list[str]]:
    """Override lists that together try every value of every swept key once: the sweep's
    first job, and for each swept key each of its other values with the rest at their first.
    Sweeps that only a sweeper can expand (`interval(...)`, `hydra.sweeper.params.*`) are
    left out.
    """
    parsed = OverridesParser.create().parse_overrides(args)
    values: list[list[str]] = []
    for override in parsed:
        if override.is_sweep_override():
            key = override.input_line.split("=", 1)[0]
            if override.value_type == ValueType.INTERVAL_SWEEP or key.startswith("hydra."):
                continue
            values.append([f"{key}={value}" for value in override.sweep_string_iterator()])
        else:
            values.append([override.input_line])
    first = [choices[0] for choices in values]
    jobs = [first]
    for position, choices in enumerate(values):
        jobs += [[*first[:position], choice, *first[position + 1 :]] for choice in choices[1:]]
    return jobs


def parse_problem(args: list[str]) -> str | None:
    """One line on the first override Hydra's grammar cannot parse, or None.

    A token without `=` usually is the rest of the previous value after a space that the
    shell split on (an unquoted path with a space); other failures are brackets, quotes
    or parentheses that the grammar reads as syntax.
    """
    parser = OverridesParser.create()
    for position, arg in enumerate(args):
        try:
            parser.parse_overrides([arg])
        except OverrideParseException as err:
            if "=" not in arg and position > 0 and "=" in args[position - 1]:
                previous = args[position - 1]
                return (
                    f"{arg!r} is not an override (key=value); if it belongs to {previous!r}, "
                    f"that value holds a space: quote the whole override, '{previous} {arg}'"
                )
            lines = [line.strip() for line in str(err).splitlines()]
            reason = next(
                line for line in [*lines, "a syntax error"]
                if line.strip("^ ") and not line.startswith(("See ", "Error parsing override"))
            )  # fmt: skip
            return (
                f"cannot parse the override {arg!r} ({reason}); write key=value, and quote a "
                "value that holds brackets, parentheses, quotes or commas, e.g. "
                "'key=\"a (b), c\"' (Hydra's override grammar)"
            )
    return None


def ambiguous_sweep(args: list[str]) -> str | None:
    """One line on a comma-separated value outside a multirun (Hydra reads it as a sweep)."""
    for override in OverridesParser.create().parse_overrides(args):
        if override.is_sweep_override():
            return (
                f"{override.input_line!r}: a comma makes a sweep; quote the value "
                f"({override.key_or_group}='a,b') if it is one string, write a list as "
                f"{override.key_or_group}=[a,b], or add -m to sweep over the values"
            )
    return None


def describe(error: HydraException, config_name: str, overrides: list[str]) -> str:
    """One line for a composition error, with the valid choices where Hydra knows them."""
    if isinstance(error, MissingConfigException) and error.options:
        group, _, option = (error.missing_cfg_file or "").rpartition("/")
        if group:
            return (
                f"{group}={option} is not an option of the config group `{group}`; "
                f"choose one of {', '.join(sorted(error.options))}"
            )
    full_key = getattr(error.__cause__, "full_key", None)
    if isinstance(error.__cause__, ValidationError) and full_key:  # a value of the wrong type
        return f"{full_key}: {str(error.__cause__).splitlines()[0]}"
    if isinstance(error, ConfigCompositionException) and full_key:
        if config_name == "train" and any(o.split("=", 1)[0] == "ckpt_path" for o in overrides):
            return not_a_key_on_resume(full_key)
        parent = full_key.rpartition(".")[0]
        others = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") != full_key]
        node = OmegaConf.select(compose_config(config_name, others), parent) if parent else None
        valid = (
            f"; keys of {parent}: {', '.join(sorted(node))}" if isinstance(node, DictConfig) else ""
        )
        return f"{full_key} is not a config key{valid} (to add a key, prefix it with +)"
    return " ".join(str(error).split())


def not_a_key_on_resume(full_key: str) -> str:
    """A resumed run composes today's defaults (the GAN model, say) before its checkpoint's
    config replaces them, so a key of the checkpoint's own model is not found there; the
    keys of another model's config are no help."""
    group = full_key.split(".", 1)[0]
    hint = (
        " (its sampling options may change: model.sampling.steps=...)" if group == "model" else ""
    )
    return (
        f"{full_key} is not a key of today's default {group} config, which a resumed run "
        f"composes before its checkpoint's config replaces it; a resumed run keeps the "
        f"checkpoint's {group} keys: drop the override, or start a new run without "
        f"ckpt_path{hint}"
    )


# Keys a resumed run may change although today's default model (the GAN) has none of them.
SAMPLING_KEYS = ("model.sampling.", "model.validation_sampling.")


def forced_on_resume(config_name: str, args: list[str]) -> list[str]:
    """`args` with each `model.sampling.*` override of a resumed training forced (`++`):
    today's defaults, which a resumed run composes first, may hold no such key (the GAN),
    yet the checkpoint's model has it and may change it on resume (SAFE_ON_RESUME)."""
    if config_name != "train" or not any(arg.startswith("ckpt_path=") for arg in args):
        return args
    return [f"++{arg.lstrip('+')}" if arg.lstrip("+").startswith(SAMPLING_KEYS) else arg
            for arg in args]  # fmt: skip


def check_overrides(config_name: str, args: list[str]) -> None:
    """Raise ConfigError when the overrides in `args` do not compose with `config_name`,
    or leave a required (`???`) top-level key unset.

    Command lines with Hydra flags other than --multirun (--cfg, --config-name, ...)
    are left to Hydra.
    """
    if any(arg.startswith("-") and arg not in MULTIRUN_FLAGS for arg in args):
        return
    overrides = [arg for arg in args if arg not in MULTIRUN_FLAGS]
    problem = parse_problem(overrides)
    if problem is None and not any(arg in MULTIRUN_FLAGS for arg in args):
        problem = ambiguous_sweep(overrides)
    if problem is not None:
        raise ConfigError(problem)
    for job in sweep_jobs_to_check(overrides):
        try:
            cfg = compose_config(config_name, job)
        except HydraException as err:
            raise ConfigError(describe(err, config_name, job)) from None
        required = [key for key in cfg if OmegaConf.is_missing(cfg, key)]
        if required:
            raise ConfigError(
                f"{', '.join(required)} must be given, e.g. "
                f"{' '.join(f'{key}=...' for key in required)} on the command line"
            )


def checked_entry_point(hydra_main: Callable[[], object], config_name: str) -> Callable[[], None]:
    """A console entry point: check `sys.argv`'s overrides, run the Hydra main, and print
    the summary of a sweep that a failed job ended early."""

    def entry_point() -> None:
        register_resolvers()
        register_schemas()
        route_library_output_to_logging()
        sys.argv[1:] = forced_on_resume(config_name, sys.argv[1:])
        with user_errors_reported():
            check_overrides(config_name, sys.argv[1:])
        try:
            hydra_main()
        finally:
            print_unfinished_sweep_summaries()

    return entry_point
