"""Validation helpers of the typed configuration (no TensorFlow): one error type, messages that name the field."""

from __future__ import annotations

import math


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field and the fix."""


def check_choice(path: str, value, allowed) -> None:
    if value not in allowed:
        raise ConfigError(f"config: '{path}' is {value!r}; allowed values: {', '.join(map(str, allowed))}")


def check_positive(path: str, value, allow_zero: bool = False) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"config: '{path}' must be a finite number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"config: '{path}' must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def get_path(obj, path: str):
    """The field at dotted `path` of a (nested) config object."""
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj
