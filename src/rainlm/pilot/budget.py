"""Finding the time budget that keeps a request's 95th-percentile latency under the limit.

RAIN's time budget bounds the whole answer (the search, then a greedy finish the budget
also cuts), but a request also waits for the pass in flight and the fail-safe's
judgement. So the pilot measures: it answers the tuning prompts with RAIN at a budget
of 80% of the limit, takes the 95th percentile of their latencies, and while that is
over the limit scales the budget by limit ÷ measured p95 (less 5%) and tries again, up
to ``plan.tune_tries`` budgets. Best-of-N gets the same budget (it stops drawing when
another round would not fit). The sample's own latencies are reported afterwards: the
tuning is a guide, the report is the measurement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rainlm.bench.datasets import Item
from rainlm.pilot.log import PilotLog
from rainlm.pilot.plan import PilotPlan
from rainlm.pilot.summary import quantile_interval

__all__ = ["FIRST_SHARE", "find_budget", "p95"]

FIRST_SHARE = 0.8
"""The first budget tried, as a share of the latency limit."""
SHRINK_MARGIN = 0.95
"""Each next budget: the last × (limit ÷ its p95) × this."""


def p95(values: Sequence[float]) -> float:
    """The 95th percentile (linear interpolation, numpy's default), as the report
    computes it; NaN without values."""
    return quantile_interval(values, 95).value


def find_budget(answer: Callable[[Item, str, float | None], dict[str, Any]],
                items: Sequence[Item], plan: PilotPlan, log: PilotLog,
                on_answer: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """The ``budget`` record: ``{"time_budget_s", "met", "tries": [{"time_budget_s",
    "p95_s", "n"}], "tuned_on": [item ids]}``, found (or read back from ``log``)."""
    done = log.find("budget")
    if done is not None:
        return done
    budget = round(plan.p95_s * FIRST_SHARE, 3)
    tries: list[dict[str, Any]] = []
    for attempt in range(plan.tune_tries):
        latencies = []
        for item in items:
            rec = log.find("tune", attempt=attempt, item_id=item.id)
            if rec is None:
                rec = answer(item, "rain", budget)
                rec.update(kind="tune", attempt=attempt, item_id=item.id)
                log.append(rec)
                if on_answer is not None:
                    on_answer(rec)
            if not rec.get("error"):
                latencies.append(rec["latency_s"])
        measured = p95(latencies)
        tries.append({"time_budget_s": budget, "p95_s": round(measured, 3), "n": len(latencies)})
        if latencies and measured <= plan.p95_s:
            return log.append({"kind": "budget", "time_budget_s": budget, "met": True,
                               "tries": tries, "tuned_on": [i.id for i in items]})
        if not latencies:
            break
        budget = round(budget * plan.p95_s / measured * SHRINK_MARGIN, 3)
    best = min(tries, key=lambda t: t["p95_s"] if t["n"] else float("inf"))
    return log.append({"kind": "budget", "time_budget_s": best["time_budget_s"], "met": False,
                       "tries": tries, "tuned_on": [i.id for i in items]})
