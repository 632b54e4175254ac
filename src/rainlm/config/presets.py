"""The named presets as data: ``presets.toml``, grouped by concern, read the first time a
preset is asked for (nothing is read at import)."""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Mapping
from importlib import resources
from typing import Any

from rainlm.config.groups import GROUPS, SETTING_GROUP
from rainlm.errors import ConfigError

PRESETS_FILE = "presets.toml"


def flat_settings(tables: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The settings of grouped TOML tables (``{"budgets": {"max_searches": 8}}``) by
    their flat names; ConfigError for a group or setting that does not exist or sits in
    another group."""
    flat: dict[str, Any] = {}
    for group, values in tables.items():
        if group not in GROUPS or not isinstance(values, Mapping):
            raise ConfigError(where, f"{group!r} is not a group of settings; "
                                     f"groups: {list(GROUPS)}")
        for name, value in values.items():
            if SETTING_GROUP.get(name) != group:
                home = SETTING_GROUP.get(name)
                hint = f"it belongs to [{home}]" if home else "no such setting"
                raise ConfigError(f"{where}.{group}.{name}", hint)
            flat[name] = tuple(value) if isinstance(value, list) else value
    return flat


@functools.cache
def _read() -> dict[str, Any]:
    """The presets file's tables, parsed once (read, never changed: ``preset_settings``
    pops from its own copy of a table)."""
    text = (resources.files("rainlm.config") / PRESETS_FILE).read_text(encoding="utf-8")
    return tomllib.loads(text)


def default_search() -> dict[str, Any]:
    """What the default search changes from the paper's, by flat setting name."""
    return flat_settings(_read()["default_search"], "default_search")


def preset_names() -> list[str]:
    return list(_read()["presets"])


def preset_settings(name: str) -> dict[str, Any]:
    """The settings of the preset ``name`` by flat name (what it changes from the paper's)."""
    table = dict(_read()["presets"][name])
    start = default_search() if table.pop("default_search", False) else {}
    for setting in table.pop("paper_values", ()):
        if setting not in start:
            raise ConfigError(f"presets.{name}.paper_values", f"{setting!r} is not a setting "
                              f"of [default_search]: nothing to put back")
        start.pop(setting)
    return {**start, **flat_settings(table, f"presets.{name}")}
