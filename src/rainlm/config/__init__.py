"""The search's settings: ``RainConfig`` (grouped by concern, ``groups.py``) and the named
presets (``presets.toml``)."""

from rainlm.config.groups import (GROUPS, SETTING_GROUP, Answers, BudgetFallback, Budgets,
                                  Candidates, CheckScope, CommitRule, DepthOrigin, Judging, Orders,
                                  Scoring, SearchMode, Selection, Similarity, SimulateUntil,
                                  Simulation, UnvisitedValue, Widening)
from rainlm.config.presets import default_search
from rainlm.config.rain_config import PRESETS, RainConfig, check_field_names, setting_types

__all__ = [
    "RainConfig", "PRESETS", "default_search", "GROUPS", "SETTING_GROUP", "check_field_names",
    "setting_types", "Selection", "Candidates", "Simulation", "Similarity", "Widening",
    "Judging", "Budgets", "Answers", "SimulateUntil", "SearchMode", "DepthOrigin",
    "BudgetFallback", "UnvisitedValue", "CommitRule", "Scoring", "Orders", "CheckScope",
]
