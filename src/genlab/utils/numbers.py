"""What counts as a number in a config value or a stored JSON field."""

from __future__ import annotations

from typing import Any


def is_number(value: Any) -> bool:
    """An int or float, not a bool (a config's or a JSON file's `true` is no count or score)."""
    return isinstance(value, int | float) and not isinstance(value, bool)
