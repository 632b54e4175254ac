"""A rough estimate of a benchmark run's duration, printed before its first answer.

A short greedy probe (:func:`probe_greedy`: ``PROBE_TOKENS`` new tokens on the run's
first prompt, through the run's own backend and settings) times the model; a cost
model per method scales it to the answers left to write:

    seconds ≈ Σ over answers (greedy answers × greedy_s + model-judged texts × judge_s)

- ``greedy_s``: one greedy answer of the run's length, the probe's seconds per answer
  token (its prompt's prefill spread over its few tokens) × max_new_tokens. This counts
  the prefill a little too often (an overestimate of about 1.5× on a CPU); a rate per
  token *encoded* (prompt + answer) would instead price the prompt's tokens at the
  decode rate, while a prefill token costs a small share of a decode step, and
  underestimate 2–3×.
- ``judge_s``: one text judged by the model itself (``rain bench run --judge self``),
  ``JUDGE_GREEDY_TOKENS`` greedy tokens. Rules and synthetic judges cost nothing.
- greedy answers per method: *seconds ÷ greedy* measured by ``rain bench frontier``
  (``benchmarks/RESULTS.md``, banned words at 48 tokens and refusal at 24, the mean of
  the two tasks and of both judge accuracies; samples are drawn in one batch, so
  best-of-N's seconds grow much slower than its tokens):

  ==================  =============================  ===================================
  method              seconds ÷ greedy               model-judged texts per answer
  ==================  =============================  ===================================
  greedy, sampled     1.0                            0 (+1: ``bench run`` judges it)
  best-of-N           1.55 (N=2), 1.85 (4), 2.1 (8), N
                      2.8 (16), 4.3 (32); between:
                      linear in log2 N; above 32:
                      +0.1 per extra sample
  ARGS                1.0 (top-10, w=1.5)            10 per answer token (+1)
  RAIN, B passes      4.7 (B=8), 6.5 (16), 8.3 (32): 1.5 × B (+1)
                      4.7 + 1.8 × log2(B / 8),
                      at least 1.5
  RAIN, no total      50 (``search_cost.py``: 71×    8 per answer token (+1)
  budget (paper)      with the self-evaluation       (search_cost: 673 passes over five
                      judge, of which judging 21×)   16-token answers)
  ==================  =============================  ===================================

  In the frontier best-of-N's answers are drawn once and judged under every judge
  accuracy, so they are counted once per prompt (at each sampling temperature);
  best-until-N draws one answer per round under each accuracy and stops at the first
  accepted one, in one run per prompt, temperature and accuracy up to the largest N (the
  smaller N's answers come from it): that run is priced as ``(1 − (1 − a)^N) / a``
  greedy answers, the others as nothing; the expected number
  drawn when each answer is accepted with probability a = ``UNTIL_ACCEPT_GUESS`` (a
  guess, not a measurement); the fluency scoring after each answer is not priced.
  ``bench run`` computes greedy and sampled answers once per prompt too. With ``--match-compute`` best-of-n costs what
  RAIN costs. A RAIN time budget caps an answer at that budget (it bounds the search and
  the greedy finish together: ``docs/search.md``) plus the run's one judgement of it.

Prompts, answer lengths and machines differ (the table comes from one 2-CPU machine and
the 135M model; answers that end before their length limit cost less, and the no-you
task drops the prompts whose greedy answer keeps its rule): the estimate is a rough
guide, and the runners print a better one once the first prompt is answered.
Everything here is computed on call; importing the module does no work.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rainlm.backends.base import model_name
from rainlm.bench.methods import MethodSettings, parse_method, run_method

if TYPE_CHECKING:
    from rainlm.bench.datasets import Item
    from rainlm.bench.frontier import FrontierPlan
    from rainlm.bench.runner import Judge

__all__ = ["Cost", "Probe", "PROBE_TOKENS", "bench_costs", "bench_estimate", "best_of_seconds",
           "describe", "format_rough", "frontier_costs", "frontier_estimate", "method_cost",
           "pending_bench", "pending_frontier", "probe_greedy", "rain_judged", "rain_seconds",
           "run_seconds"]

PROBE_TOKENS = 8
"""New tokens of the probe answer (fewer when the run's answers are shorter)."""
BEST_OF_SECONDS: tuple[tuple[int, float], ...] = (
    (1, 1.0), (2, 1.55), (4, 1.85), (8, 2.1), (16, 2.8), (32, 4.3))
"""best-of-N's seconds ÷ greedy at the measured N (frontier tables)."""
BEST_OF_SECONDS_PER_SAMPLE = 0.1
"""best-of-N above the last measured N: seconds ÷ greedy added per extra sample (the
slope from 16 to 32 samples: 1.5 for 16 more)."""
RAIN_SECONDS_AT_8 = 4.7
"""RAIN with a total budget of 8 passes: seconds ÷ greedy (frontier tables)."""
RAIN_SECONDS_PER_DOUBLING = 1.8
"""RAIN: seconds ÷ greedy added each time the budget doubles (6.5 at 16, 8.3 at 32)."""
RAIN_MIN_SECONDS = 1.5
"""RAIN with a tiny budget: at least greedy's answer plus a pass."""
RAIN_UNBOUNDED_SECONDS = 50.0
"""RAIN with no total budget (the paper's search): seconds ÷ greedy without judging."""
RAIN_JUDGED_PER_PASS = 1.2
"""RAIN with a total budget and the model as the judge: texts judged per pass
(``answer_checks_cost.py``, the default search with the self-evaluation: 337 in 293
passes; repairs and answer checks judge partial texts too)."""
RAIN_UNBOUNDED_JUDGED_PER_TOKEN = 8.0
"""RAIN with no total budget: texts judged per answer token."""
ARGS_JUDGED_PER_TOKEN = 10.0
"""ARGS-greedy: texts judged per answer token (its top-10 candidates at each step)."""
UNTIL_ACCEPT_GUESS = 0.25
"""best-until-N: the chance an answer is accepted, assumed to price the answers it draws."""
JUDGE_GREEDY_TOKENS = 3.0
"""One text judged by the model, in greedy tokens: the judge's few-shot prompt stays in
the prefix cache (``search_cost.py``: 0.16 s per pass at 64 ms per greedy token;
``backend_cache.py``: 175 ms for both orders at 54 ms per decode step)."""


@dataclass(frozen=True)
class Probe:
    """One short greedy answer, timed."""

    seconds: float
    """Wall-clock seconds of the probe answer (prompt prefill included)."""
    answer_tokens: int
    """Tokens it produced (fewer than asked when the answer ended early)."""

    @property
    def seconds_per_token(self) -> float:
        """Seconds per answer token, the prefill spread over them."""
        return self.seconds / max(1, self.answer_tokens)


@dataclass(frozen=True)
class Cost:
    """What one answer costs, in units the probe prices."""

    greedy_answers: float
    """Seconds ÷ a greedy answer of the run's length (0 when computed once already)."""
    judged_texts: float = 0.0
    """Texts sent to a judge that is the model itself (rules cost nothing)."""
    time_cap_s: float | None = None
    """RAIN's wall-clock budget per answer, in seconds (None: none)."""


# ------------------------------------------------------------------ the cost model
def best_of_seconds(n: int) -> float:
    """best-of-N's seconds ÷ greedy: the measured points, linear in log2 N between them."""
    points = BEST_OF_SECONDS
    if n <= points[0][0]:
        return points[0][1]
    for (n0, s0), (n1, s1) in zip(points, points[1:]):
        if n <= n1:
            return s0 + (s1 - s0) * math.log2(n / n0) / math.log2(n1 / n0)
    last_n, last_s = points[-1]
    return last_s + BEST_OF_SECONDS_PER_SAMPLE * (n - last_n)


def rain_seconds(budget: int | None) -> float:
    """RAIN's seconds ÷ greedy with a total budget of ``budget`` passes (None: none)."""
    if budget is None:
        return RAIN_UNBOUNDED_SECONDS
    return max(RAIN_MIN_SECONDS,
               RAIN_SECONDS_AT_8 + RAIN_SECONDS_PER_DOUBLING * math.log2(budget / 8))


def rain_judged(budget: int | None, max_new_tokens: int) -> float:
    """Texts RAIN judges per answer with a total budget of ``budget`` passes (None: none)."""
    if budget is None:
        return RAIN_UNBOUNDED_JUDGED_PER_TOKEN * max_new_tokens
    return RAIN_JUDGED_PER_PASS * budget


def method_cost(kind: str, *, max_new_tokens: int, n: int | None = None,
                budget: int | None = None, model_judge: bool = False) -> Cost:
    """One answer of method ``kind`` (:func:`~rainlm.bench.methods.parse_method`'s
    names): ``n`` is best-of-N's N, ``budget`` RAIN's total passes (None: no total
    budget); ``model_judge``: the judge is the model, its texts cost time. The texts are
    those the method judges itself (``bench run`` judges every other answer once more)."""
    if kind in ("vanilla", "vanilla-sampled"):
        seconds, judged = 1.0, 0.0
    elif kind == "best-of-n":
        seconds, judged = best_of_seconds(n or 1), float(n or 1)
    elif kind == "args":
        seconds, judged = 1.0, ARGS_JUDGED_PER_TOKEN * max_new_tokens
    elif kind == "rain":
        seconds, judged = rain_seconds(budget), rain_judged(budget, max_new_tokens)
    else:
        raise ValueError(f"unknown method kind {kind!r}")
    return Cost(seconds, judged if model_judge else 0.0)


def run_seconds(costs: Iterable[Cost], *, greedy_s: float, judge_s: float = 0.0) -> float:
    """Seconds of every answer: a greedy answer takes ``greedy_s``, a judged text
    ``judge_s``; an answer with a time cap takes at most the cap (search and greedy finish
    together) plus about one judged text (the run's judgement of the answer after it;
    keep_best's comparison past the budget may add one, a rule judge costs none)."""
    total = 0.0
    for cost in costs:
        seconds = cost.greedy_answers * greedy_s + cost.judged_texts * judge_s
        if cost.time_cap_s is not None:
            seconds = min(seconds, cost.time_cap_s + judge_s)
        total += seconds
    return total


def frontier_costs(pending: Sequence[tuple[Item, str, float | None]]) -> list[Cost]:
    """One cost per frontier record left (label as in ``method_labels``); best-of-N's
    answers are drawn once per prompt and judged under every accuracy, and the judges
    are rules."""
    from rainlm.bench.peers import parse_peer

    out, drawn = [], set()
    largest = {}  # the one best-until run per (prompt, temperature, accuracy): its largest N
    for item, label, noise in pending:
        peer = parse_peer(label)
        if peer is not None and peer[0] == "best-until":
            key = (item.id, peer[2], noise)
            largest[key] = max(largest.get(key, 0), peer[1])
    for item, label, noise in pending:
        peer = parse_peer(label)
        if peer is not None and peer[0] == "best-until":
            key, a = (item.id, peer[2], noise), UNTIL_ACCEPT_GUESS
            priced = largest.pop(key, None) == peer[1]
            out.append(Cost((1 - (1 - a) ** peer[1]) / a if priced else 0.0))
        elif peer is not None:
            out.append(Cost(0.0) if (item.id, label) in drawn else
                       method_cost("best-of-n", max_new_tokens=1, n=peer[1]))
            drawn.add((item.id, label))
        elif label.startswith("rain:"):
            out.append(method_cost("rain", max_new_tokens=1, budget=int(label.rsplit("@", 1)[1])))
        else:
            kind = {"greedy": "vanilla", "sampled": "vanilla-sampled"}.get(label, label)
            out.append(method_cost(kind, max_new_tokens=1))
    return out


def bench_costs(todo: Sequence[tuple[Item, str, Judge]], settings: MethodSettings) -> list[Cost]:
    """One cost per ``rain bench run`` line left: greedy and sampled answers are computed
    once per prompt, every answer without its own judge value is judged once more."""
    out, computed = [], set()
    cfg = settings.config
    budget = cfg.budgets.max_total_searches
    cap = cfg.budgets.time_budget_s
    for item, method, judge in todo:
        kind, n = parse_method(method)
        model_judge = not judge.synthetic
        if kind == "best-of-n" and settings.match_compute and n is None:
            cost = method_cost("rain", max_new_tokens=settings.max_new_tokens, budget=budget,
                               model_judge=model_judge)
        else:
            cost = method_cost(kind, max_new_tokens=settings.max_new_tokens,
                               n=n or settings.best_of_n, budget=budget, model_judge=model_judge)
        if kind in ("vanilla", "vanilla-sampled") and (item.id, method) in computed:
            cost = dataclasses.replace(cost, greedy_answers=0.0)
        computed.add((item.id, method))
        if kind != "best-of-n":
            cost = dataclasses.replace(cost, judged_texts=cost.judged_texts + float(model_judge))
        if kind == "rain":
            cost = dataclasses.replace(cost, time_cap_s=cap)
        out.append(cost)
    return out


# ------------------------------------------------------------------ what is left
def _done(path: str | Path, model: str, key: Callable[[Mapping[str, Any]], tuple],
          retry_errors: bool) -> set[tuple]:
    """``key`` of the file's lines by ``model`` that a run will not redo (failed ones only
    without ``retry_errors``)."""
    from rainlm.bench.runner import read_records

    return {key(r) for r in read_records(Path(path).expanduser())
            if r.get("model") == model and not (retry_errors and r.get("error"))}


def _frontier_key(rec: Mapping[str, Any]) -> tuple[str, str, str]:
    from rainlm.bench.frontier import answer_key

    return answer_key(rec["item_id"], rec["method"], rec.get("noise"))


def pending_frontier(path: str | Path, items: Sequence[Item], plan: FrontierPlan,
                     model: str) -> list[tuple[Item, str, float | None]]:
    """(prompt, method label, judge accuracy) of every frontier record not yet in
    ``path`` (failed records are redone)."""
    from rainlm.bench.frontier import answer_key, method_labels

    done = _done(path, model, _frontier_key, retry_errors=True)
    return [(item, label, p) for item in items for label, p in method_labels(plan)
            if answer_key(item.id, label, p) not in done]


def pending_bench(path: str | Path, items: Sequence[Item], methods: Sequence[str],
                  judges: Sequence[Judge], model: str, *,
                  retry_errors: bool = False) -> list[tuple[Item, str, Judge]]:
    """(prompt, method, judge) of every ``rain bench run`` line not yet in ``path``
    (failed lines are redone only with ``retry_errors``)."""
    from rainlm.bench.runner import record_key

    done = _done(path, model, record_key, retry_errors)
    return [(item, m, j) for item in items for m in methods for j in judges
            if (item.id, m, j.name) not in done]


# ------------------------------------------------------------------ probe and message
def probe_greedy(backend: Any, prompt: str, settings: MethodSettings,
                 tokens: int = PROBE_TOKENS) -> Probe:
    """Time one greedy answer of at most ``tokens`` new tokens to ``prompt`` (the run's
    system prompt and stop strings, from a cold prefix cache like every answer)."""
    short = settings.with_params(max_new_tokens=min(tokens, settings.max_new_tokens))
    out = run_method("vanilla", backend, prompt, short, seed=0)
    return Probe(seconds=out.seconds, answer_tokens=out.answer_tokens)


def format_rough(seconds: float) -> str:
    """``42.4`` -> ``"~42 s"``; ``840`` -> ``"~14 min"``; ``9000`` -> ``"~2.5 h"``."""
    if seconds < 59.5:
        return f"~{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"~{round(seconds / 60)} min"
    return f"~{seconds / 3600:.1f} h"


def describe(seconds: float, answers: int, prompts: int, probe: Probe) -> str:
    """The pre-run line: ``"estimate before the run (rough, from a probe of 8 tokens):
    ~14 min for 120 answers; a better one follows the first prompt"`` (the last part only
    when more than one prompt is left: the runners print that one only then)."""
    tokens = probe.answer_tokens
    text = (f"estimate before the run (rough, from a probe of {tokens} "
            f"token{'s' if tokens != 1 else ''}): {format_rough(seconds)} for {answers} "
            f"answer{'s' if answers != 1 else ''}")
    return text + ("; a better one follows the first prompt" if prompts > 1 else "")


def frontier_estimate(backend: Any, items: Sequence[Item], plan: FrontierPlan,
                      path: str | Path) -> str | None:
    """Probe and price what ``rain bench frontier`` has left to write to ``path``; None
    (and no probe) when nothing is left."""
    pending = pending_frontier(path, items, plan, model_name(backend))
    if not pending:
        return None
    settings = plan.method_settings()
    probe = probe_greedy(backend, pending[0][0].prompt, settings)
    seconds = run_seconds(frontier_costs(pending),
                          greedy_s=probe.seconds_per_token * settings.max_new_tokens)
    return describe(seconds, len(pending), len({item.id for item, _, _ in pending}), probe)


def bench_estimate(backend: Any, items: Sequence[Item], methods: Sequence[str],
                   judges: Sequence[Judge], settings: MethodSettings, path: str | Path, *,
                   retry_errors: bool = False) -> str | None:
    """Probe and price what ``rain bench run`` has left to write to ``path``; None (and
    no probe) when nothing is left."""
    todo = pending_bench(path, items, methods, judges, model_name(backend),
                         retry_errors=retry_errors)
    if not todo:
        return None
    probe = probe_greedy(backend, todo[0][0].prompt, settings)
    seconds = run_seconds(bench_costs(todo, settings),
                          greedy_s=probe.seconds_per_token * settings.max_new_tokens,
                          judge_s=probe.seconds_per_token * JUDGE_GREEDY_TOKENS)
    return describe(seconds, len(todo), len({item.id for item, _, _ in todo}), probe)
