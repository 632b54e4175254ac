"""The frontier's sampling peers: best-of-N and best-until-N, their labels, and
best-until-N itself.

A label names the family, N and the sampling temperature when it is not 1:
``best-of-8``, ``best-of-8@t0.7``, ``best-until-8``, ``best-until-8@t0.7`` (the labels of
files written before temperatures existed are the t = 1 ones, so they resume).
"""

from __future__ import annotations

import re
from typing import Any

from rainlm.bench.best_of_until import best_of_until
from rainlm.bench.methods import MethodOutcome, MethodSettings, measured
from rainlm.messages import normalize_messages

__all__ = ["UNTIL_ACCEPT", "UNTIL_ROUND", "best_until", "label_suffix", "parse_peer",
           "peer_label"]

UNTIL_ACCEPT = 1.0
"""best-until-N stops at the first answer the judge values at least this (the rule: kept)."""
UNTIL_ROUND = 1
"""best-until-N draws one answer per round, so it stops exactly at the first accepted one."""
_PEER = re.compile(r"(best-of|best-until)-([1-9][0-9]*)(?:@t([0-9.]+))?")


def peer_label(kind: str, n: int, temperature: float = 1.0) -> str:
    """``("best-of", 8, 1.0)`` -> "best-of-8"; ``("best-until", 8, 0.7)`` ->
    "best-until-8@t0.7" (a temperature of 1 is left out: older files' labels)."""
    return f"{kind}-{n}{label_suffix(temperature)}"


def label_suffix(temperature: float) -> str:
    """The label's temperature suffix: "" at 1, "@t0.7" otherwise."""
    return "" if float(temperature) == 1.0 else f"@t{float(temperature):g}"


def parse_peer(method: str) -> tuple[str, int, float] | None:
    """(kind, N, temperature) of a best-of / best-until label; None for other methods."""
    m = _PEER.fullmatch(method)
    if m is None:
        return None
    return m.group(1), int(m.group(2)), float(m.group(3)) if m.group(3) else 1.0


def best_until(backend: Any, prompt: str, n: int, settings: MethodSettings, seed: int,
               judge: Any) -> MethodOutcome:
    """best-until-N: sampled one by one (seeded as best-of-N), stopping at the first
    answer ``judge`` accepts; ``judged_texts`` is the number drawn."""
    messages = normalize_messages(prompt, system=settings.system)
    return measured(backend, settings, lambda: best_of_until(
        backend, messages, settings, seed=seed, evaluator=judge, accept=UNTIL_ACCEPT,
        round_size=UNTIL_ROUND, time_budget_s=None, max_n=n))
