"""RainConfig: every setting of the search, grouped by concern (``groups.py``).

Built from flat settings, the names the command line, the server's ``rain`` object, the
presets and the trace use (``RainConfig(max_total_searches=16)``); read by group
(``config.budgets.max_total_searches``), so each part of the search takes only the
concern it needs. Frozen and validated once when built; errors name the setting.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from rainlm.config.groups import (GROUPS, SETTING_GROUP, Answers, Budgets, Candidates, Judging,
                                  Selection, Similarity, Simulation, Widening)
from rainlm.config.presets import preset_names, preset_settings
from rainlm.errors import ConfigError


@dataclass(frozen=True, init=False)
class RainConfig:
    """Search settings of RAIN. The defaults are the paper's (its HH run,
    ``RainConfig.preset("paper")``); the presets "harmless", "adversarial" and
    "truthful" start from the default search (``presets.toml``).

    ``RainConfig(**settings)`` takes flat setting names; each group is a frozen
    dataclass whose fields document the settings (``rainlm.config.groups``)."""

    selection: Selection
    candidates: Candidates
    simulation: Simulation
    similarity: Similarity
    widening: Widening
    judging: Judging
    budgets: Budgets
    answers: Answers
    preset_name: str = field(default="custom", compare=False)
    """Name of the preset this config came from (for logs; not a search setting)."""

    def __init__(self, *, preset_name: str = "custom", **settings: Any) -> None:
        check_field_names(settings)
        for group, cls in GROUPS.items():
            mine = {k: v for k, v in settings.items() if SETTING_GROUP[k] == group}
            object.__setattr__(self, group, cls(**mine))
        object.__setattr__(self, "preset_name", preset_name)

    # ------------------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "RainConfig":
        """A named preset (``presets.toml``), optionally with some settings overridden."""
        if name not in PRESETS:
            raise ConfigError("preset", f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return PRESETS[name].replace(**overrides) if overrides else PRESETS[name]

    def replace(self, **changes: Any) -> "RainConfig":
        """A copy with some settings (or ``preset_name``) changed, validated again.
        (``dataclasses.replace`` does not apply: the fields are the groups.)"""
        name = changes.pop("preset_name", self.preset_name)
        check_field_names(changes)
        return RainConfig(preset_name=name, **{**self.settings(), **changes})

    def settings(self) -> dict[str, Any]:
        """Every setting by its flat name (what ``RainConfig(**settings)`` takes)."""
        flat: dict[str, Any] = {}
        for group in GROUPS:
            flat.update(dataclasses.asdict(getattr(self, group)))
        return flat

    def to_dict(self, *, grouped: bool = False) -> dict[str, Any]:
        """Every setting by its flat name (the trace's and the server's form), with
        ``preset_name``; ``grouped``: one dict per group instead."""
        if grouped:
            return {**{group: dataclasses.asdict(getattr(self, group)) for group in GROUPS},
                    "preset_name": self.preset_name}
        return {**self.settings(), "preset_name": self.preset_name}


def check_field_names(names: Any) -> None:
    """ConfigError for a name that is not a setting, with the closest one."""
    for key in names:
        if key not in SETTING_GROUP:
            close = difflib.get_close_matches(key, list(SETTING_GROUP), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(key, f"is not a RainConfig field; {hint}known fields: "
                                   f"{sorted(SETTING_GROUP)}")


def setting_types() -> dict[str, Any]:
    """Every setting's flat name -> its type annotation (for schemas)."""
    out: dict[str, Any] = {}
    for cls in GROUPS.values():
        out.update(typing.get_type_hints(cls))
    return out


@functools.cache
def _preset(name: str) -> RainConfig:
    return RainConfig(preset_name=name, **preset_settings(name))


class _Presets(Mapping[str, RainConfig]):
    """Preset name -> RainConfig, read from ``presets.toml`` when first asked for."""

    def __getitem__(self, name: str) -> RainConfig:
        if name not in preset_names():
            raise KeyError(name)
        return _preset(name)

    def __iter__(self) -> Iterator[str]:
        return iter(preset_names())

    def __len__(self) -> int:
        return len(preset_names())


PRESETS: Mapping[str, RainConfig] = _Presets()
"""Named configs. "paper" is the published HH search and never changes; the others are
the default search (``default_search()``) with the rubric and stop rules of their use
("truthful" judges one option order, so every value is ±1: it accepts no answer on one
vote)."""
