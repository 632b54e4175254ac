"""Checks of one setting each, raising a ConfigError that names it and its allowed range
(vLLM ``SamplingParams`` style: ``"top_p must be in (0, 1], got 2."``)."""

from __future__ import annotations

import math
from typing import Any

from rainlm.errors import ConfigError


def check(cond: bool, name: str, message: str, value: Any) -> None:
    if not cond:
        raise ConfigError(name, f"{message}, got {value!r}")


def check_int(group: Any, name: str, lo: int, optional: bool = False) -> None:
    value = getattr(group, name)
    if optional and value is None:
        return
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= lo
    check(ok, name, f"must be an integer >= {lo}" + (" or None" if optional else ""), value)


def check_float(group: Any, name: str, lo: float, hi: float, *, lo_open: bool = False,
                optional: bool = False) -> None:
    value = getattr(group, name)
    if optional and value is None:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > lo if lo_open else value >= lo) and value <= hi
    bracket = "(" if lo_open else "["
    check(ok, name, f"must be a number in {bracket}{lo}, {hi}]" + (" or None" if optional else ""),
          value)


def check_choice(group: Any, name: str, choices: tuple[str, ...]) -> None:
    value = getattr(group, name)
    check(value in choices, name, f"must be one of {choices}", value)


def check_flag(group: Any, name: str) -> None:
    value = getattr(group, name)
    check(isinstance(value, bool), name, "must be true or false", value)


def check_strings(group: Any, name: str) -> None:
    """A tuple of non-empty strings."""
    value = getattr(group, name)
    check(isinstance(value, tuple) and all(isinstance(s, str) and s for s in value),
          name, "must be a tuple of non-empty strings", value)
