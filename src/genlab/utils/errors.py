"""One exception type for every mistake a user can fix, and one line to report it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


class GenlabError(Exception):
    """A problem with the user's input (config, data, checkpoint) that they can fix.

    The message is one line that says what is wrong and what to change.
    """


class ConfigError(GenlabError):
    """A config value that cannot work (a typo, a wrong type, mismatched shapes)."""


@contextmanager
def user_errors_reported(multirun: bool = False) -> Iterator[None]:
    """Turn a GenlabError into one `error:` line and exit status 2.

    In a multirun the error is re-raised instead, so that Hydra records the job as
    failed, the other jobs of the sweep keep running, and the sweep summary
    (genlab.utils.sweep_summary) reports it with the job's overrides.
    """
    try:
        yield
    except GenlabError as err:
        if multirun:
            raise
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
