"""Errors of the data layer; each message is one line that says what to change."""

from __future__ import annotations

from genlab.errors import GenlabError


class DataError(GenlabError):
    """The data cannot serve the run as configured (unreadable files, wrong image sizes)."""


class DataConfigError(DataError, ValueError):
    """A `data.*` value that cannot work with this dataset (batch size, split fraction)."""


class DatasetNotFoundError(DataError, FileNotFoundError):
    """The dataset's files are not where the config says, and downloading is off."""
