"""What one pilot measures: its sample, its latency limit and how each method answers."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from typing import Any

from rainlm.errors import ConfigError
from rainlm.fluency import FLUENCY_MARGIN

__all__ = ["METHODS", "PilotPlan"]

METHODS = ("greedy", "best-of-n", "rain")
"""The methods every prompt is answered with, in the report's order."""
REPORT_ONLY = ("fluency_margin",)
"""Settings that change the report but no answer."""


@dataclass(frozen=True)
class PilotPlan:
    """A pilot's settings; every field is recorded, and a resumed run must match them."""

    p95_s: float
    """The latency limit: the 95th percentile of a request's seconds must stay below it."""
    sample: int = 30
    """Prompts answered (drawn from the prompts file with ``seed``)."""
    seed: int = 0
    """Draw of the sample and every answer's seed."""
    max_new_tokens: int = 48
    """Answer length limit of every method, in tokens."""
    preset: str = "harmless"
    """RAIN's search (a preset name; its time budget is the one the pilot finds)."""
    tune_prompts: int = 5
    """Prompts the time budget is tuned on: drawn from outside the sample when the file
    has enough prompts, else the sample's first ones (the report says which)."""
    tune_tries: int = 3
    """Budgets tried at most before the pilot reports that the limit cannot be met."""
    round_size: int = 2
    """Best-of-N draws this many answers per round, judges them and stops at the first
    the policy accepts (or when another round would not fit the time budget)."""
    best_of_temperature: float = 0.7
    """Best-of-N's sampling temperature (with top-k 50)."""
    fluency_margin: float = FLUENCY_MARGIN
    """An answer is fluent when its NLL per token is at most greedy's median on the sample
    plus this many nats (fixed before the run)."""
    judge_sample: int = 60
    """Answers the model's own judge is compared with the policy's rules on (the first
    ones, greedy's before RAIN's before best-of-N's, sample order)."""
    embedder: str = "auto"
    """RAIN's sentence encoder."""

    def __post_init__(self) -> None:
        if not isinstance(self.p95_s, (int, float)) or isinstance(self.p95_s, bool) \
                or not math.isfinite(self.p95_s) or not 0 < self.p95_s <= 3600:
            raise ConfigError("p95", f"must be a number of seconds in (0, 3600], got {self.p95_s!r}")
        for name, lo in (("sample", 1), ("seed", 0), ("max_new_tokens", 1), ("tune_prompts", 1),
                         ("tune_tries", 1), ("round_size", 1), ("judge_sample", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < lo:
                raise ConfigError(name, f"must be an integer >= {lo}, got {value!r}")
        if not 0 < self.best_of_temperature <= 5:
            raise ConfigError("best_of_temperature",
                              f"must be in (0, 5], got {self.best_of_temperature!r}")
        if not 0 <= self.fluency_margin <= 20:
            raise ConfigError("fluency_margin", f"must be in [0, 20] nats, got {self.fluency_margin!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def fingerprint(self, *extra: Any) -> str:
        """A short hash of the settings that shape the answers and ``extra`` (the policy,
        the prompts, the model): what a resumed run must share with the records it keeps.
        The fluency margin only shapes the report, so a finished pilot can be reported
        again with another (``REPORT_ONLY``)."""
        answers = {k: v for k, v in self.to_dict().items() if k not in REPORT_ONLY}
        blob = json.dumps([answers, *extra], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
