"""One exception type for every mistake a user can fix, and one line to report it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from hydra.errors import CompactHydraException


class GenlabError(Exception):
    """A problem with the user's input (config, data, checkpoint) that they can fix.

    The message is one line that says what is wrong and what to change.
    """


class ConfigError(GenlabError):
    """A config value that cannot work (a typo, a wrong type, mismatched shapes)."""


class SweepJobError(CompactHydraException):
    """A sweep job's GenlabError, `<type>: <message>`: Hydra prints this kind as its one
    line, where it prints any other exception of a failed job with its traceback."""


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none): what a
    one-line `error:` can quote of another library's multi-line message."""
    return str(err).splitlines()[0] if str(err) else type(err).__name__


@contextmanager
def user_errors_reported(multirun: bool = False) -> Iterator[None]:
    """Turn a GenlabError into one `error:` line and exit status 2.

    In a multirun the error is raised on as a SweepJobError instead, so that Hydra records
    the job as failed, the other jobs of the sweep keep running, and the sweep summary
    (genlab.runs.sweep_summary) reports it with the job's overrides.
    """
    try:
        yield
    except GenlabError as err:
        if multirun:
            raise SweepJobError(f"{type(err).__name__}: {err}") from err
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
