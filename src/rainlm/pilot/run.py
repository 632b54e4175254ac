"""Running a pilot: find the budget, answer the sample three ways, ask the model's judge,
and write the report (``report.json`` and the self-contained ``report.html``).

Every step appends to ``OUT/pilot.jsonl`` as it finishes (:mod:`rainlm.pilot.log`), so an
interrupted pilot resumes where it stopped; the report is rewritten at the end (and,
with ``partial=True`` pages, whenever the caller asks for one).
"""

from __future__ import annotations

import json
import math
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rainlm.backends.base import model_name
from rainlm.bench.datasets import HHPair
from rainlm.pilot.answering import Answerer
from rainlm.pilot.budget import find_budget
from rainlm.pilot.i18n import text
from rainlm.pilot.log import PilotLog
from rainlm.pilot.plan import METHODS, PilotPlan
from rainlm.pilot.prompts import PilotPrompts
from rainlm.pilot.recommend import recommend
from rainlm.pilot.reliability import judge_answers, judge_pairs, reliability
from rainlm.pilot.summary import is_fluent, summarize_methods

__all__ = ["PilotRun", "build_report", "run_pilot", "units_done", "write_report"]

SAMPLES_SHOWN = 6
"""Prompts whose answers the page shows side by side."""


@dataclass
class PilotRun:
    """Everything a pilot needs, loaded."""

    backend: Any
    policy: Any
    prompts: PilotPrompts
    plan: PilotPlan
    out: Path
    source: str
    """Where the prompts came from (a file path or a built-in set's name)."""
    lang: str = "en"
    pairs: Sequence[HHPair] = ()
    encoder: Any = None

    def fingerprint(self) -> str:
        """What the records in OUT must have been made with: the plan, the policy's full
        definition (not where its file is), the model, the sample and the pairs."""
        return self.plan.fingerprint(self.policy.fingerprint(), model_name(self.backend),
                                     [i.id for i in self.prompts.sample],
                                     [i.prompt for i in self.prompts.sample],
                                     [[p.context, p.chosen, p.rejected] for p in self.pairs])

    def units(self) -> int:
        """Progress units: tuning answers (first try), sample answers, judged answers,
        pairs."""
        judged = min(self.plan.judge_sample, len(METHODS) * len(self.prompts.sample))
        return (len(self.prompts.tune) + len(METHODS) * len(self.prompts.sample) + judged
                + (1 if self.pairs else 0))


def run_pilot(run: PilotRun, *, on_unit: Callable[[str], None] | None = None,
              on_phase: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Do whatever of the pilot is not in ``OUT/pilot.jsonl`` yet, then write and return
    the report. ``on_unit`` is called with a note after each unit of work (progress),
    ``on_phase`` with the phase's name when one starts."""
    started = time.perf_counter()
    log = PilotLog(run.out, run.fingerprint(), {"plan": run.plan.to_dict(), "source": run.source,
                                                "policy": run.policy.to_dict()})
    answerer = Answerer(run.backend, run.policy, run.plan, run.encoder)
    tick = on_unit or (lambda note: None)
    phase = on_phase or (lambda name: None)

    try:
        return _run(run, log, answerer, tick, phase, started)
    finally:  # this session's time, kept even when it is interrupted (not when killed)
        log.append({"kind": "session", "seconds": round(time.perf_counter() - started, 1)})


def _run(run: PilotRun, log: PilotLog, answerer: Answerer, tick: Callable[[str], None],
         phase: Callable[[str], None], started: float) -> dict[str, Any]:
    phase("budget")
    budget = find_budget(answerer.answer, run.prompts.tune, run.plan, log,
                         on_answer=lambda r: tick(f"tuning {r['item_id']} "
                                                  f"budget {r['time_budget_s']:g} s"))
    phase("answers")
    answers = []
    for item in run.prompts.sample:
        for method in METHODS:
            rec = log.find("answer", item_id=item.id, method=method)
            if rec is None:
                limit = None if method == "greedy" else budget["time_budget_s"]
                rec = log.append(answerer.answer(item, method, limit))
                tick(f"{item.id} {method}")
            answers.append(rec)
    phase("judge")
    judged = judge_answers(run.backend, run.policy, answers, run.plan.judge_sample, log,
                           on_judged=lambda: tick("the model's own judge"))
    pairs = judge_pairs(run.backend, run.policy, run.pairs, log) if run.pairs else None
    report = build_report(run, answers, budget, judged, pairs, finished=True,
                          seconds=time.perf_counter() - started + _earlier_seconds(log))
    log.append({"kind": "finished"})
    write_report(report, run.out)
    return report


def units_done(out: Path) -> int:
    """Progress units already in ``OUT/pilot.jsonl`` (a resumed pilot's bar starts
    without them); 0 when there is no readable file."""
    from rainlm.errors import ConfigError
    from rainlm.pilot.log import FILE_NAME, read_log

    try:
        records = read_log(Path(out) / FILE_NAME)
    except ConfigError:
        return 0
    return sum(r.get("kind") in ("tune", "answer", "judge", "pairs") for r in records)


def _earlier_seconds(log: PilotLog) -> float:
    """Seconds of earlier sessions of a resumed pilot (0 for a fresh one; a session that
    was killed left no record of its time)."""
    return sum(float(r.get("seconds", 0)) for r in log.of_kind("session"))


def build_report(run: PilotRun, answers: Sequence[Mapping[str, Any]], budget: Mapping[str, Any],
                 judged: Sequence[Mapping[str, Any]], pairs: Mapping[str, Any] | None, *,
                 finished: bool, seconds: float) -> dict[str, Any]:
    """The report (``rainlm.pilot/1``): what the page shows and the JSON file holds."""
    safe = run.policy.fail_safe
    methods, fluency, differences = summarize_methods(answers, run.plan, safe.action)
    for row in methods:
        row["label"] = text(run.lang, "label_" + row["method"].replace("-", "_"))
    trust = reliability(judged, run.policy.rule_judge() is not None)
    trust["rubric"] = run.policy.model_rubric().name
    trust["pairs"] = None if pairs is None else {"accuracy": pairs["accuracy"],
                                                 "pairs": pairs["pairs"], "ties": pairs["ties"]}
    advice = recommend(methods, differences, budget, trust, p95_limit=run.plan.p95_s,
                       policy=run.policy, max_new_tokens=run.plan.max_new_tokens,
                       lang=run.lang)
    trust["verdict"] = next((r for r, c in zip(advice["reasons"], advice["codes"])
                             if c.startswith("judge_")), "")
    limit = fluency["fluent_below"]
    return {
        "schema": "rainlm.pilot/1", "lang": run.lang, "finished": finished,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": model_name(run.backend), "backend": type(run.backend).__name__,
        "machine": _machine(),
        "policy": {**run.policy.to_dict(), "judge": run.policy.use, "rules": _rules(run.policy)},
        "prompts": {"source": run.source, "sample": len(run.prompts.sample),
                    "available": run.prompts.available, "seed": run.plan.seed,
                    "max_new_tokens": run.plan.max_new_tokens,
                    "tuned_on": list(budget.get("tuned_on", [])),
                    "tuned_outside_sample": run.prompts.tuned_outside},
        "p95_limit_s": run.plan.p95_s,
        "plan": run.plan.to_dict(),
        "fluency": {"measure": text(run.lang, "fluency_measure"), **fluency},
        "budget": {"rain": {"time_budget_s": budget["time_budget_s"], "tries": budget["tries"],
                            "met": budget["met"]},
                   "best_of_n": {"time_budget_s": budget["time_budget_s"],
                                 "round_size": run.plan.round_size,
                                 "met": _p95_met(methods, "best-of-n", run.plan.p95_s)}},
        "judge_reliability": trust,
        "methods": methods,
        "differences": differences,
        "recommendation": advice,
        "answers": [_answer_view(a, limit) for a in answers],
        "samples": [i.id for i in run.prompts.sample[:SAMPLES_SHOWN]],
        "timing": {"seconds": round(seconds, 1)},
    }


def _rules(policy: Any) -> list[dict[str, str]]:
    return [{"key": getattr(r, "key", getattr(r, "name", "rule")),
             "description": getattr(r, "description", str(r))} for r in policy.rules]


def _p95_met(methods: Sequence[Mapping[str, Any]], method: str, limit: float) -> bool:
    row = next(r for r in methods if r["method"] == method)
    value = row["latency_p95_s"]["value"]
    return value is not None and math.isfinite(value) and value <= limit


def _answer_view(a: Mapping[str, Any], fluent_below: float) -> dict[str, Any]:
    """One answer as the page and the JSON show it."""
    nll = a.get("nll")
    return {"item_id": a["item_id"], "prompt": a["prompt"], "method": a["method"],
            "text": a.get("text", ""), "seconds": a.get("latency_s"), "nll": nll,
            "kept": bool(a.get("kept")), "broken": list(a.get("broken") or []),
            "fluent": is_fluent(a, fluent_below),
            "budget_limited": bool(a.get("budget_limited")),
            "unsearched": bool(a.get("unsearched")), "error": a.get("error"),
            "judge_value": a.get("judge_value"), "tokens_encoded": a.get("tokens_encoded"),
            "fail_safe_acts": a.get("fail_safe_acts")}


def _machine() -> str:
    import os

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh
                        if line.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPU cores"


def write_report(report: Mapping[str, Any], out: Path) -> tuple[Path, Path]:
    """``report.json`` and ``report.html`` in ``out``."""
    from rainlm.pilot.page import render_pilot_page

    out.mkdir(parents=True, exist_ok=True)
    data = out / "report.json"
    page = out / "report.html"
    clean = _finite(report)
    data.write_text(json.dumps(clean, ensure_ascii=False, indent=1, allow_nan=False,
                               default=str) + "\n", encoding="utf-8")
    page.write_text(render_pilot_page(clean), encoding="utf-8")
    return data, page


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by None (strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
