"""The pilot's recommendation, with its reasons, in English or Japanese (the words are
in :mod:`rainlm.pilot.i18n`, keys ``rec_*``).

The rule, in order (every threshold is stated here and on the page):

1. **no-go** when greedy already keeps the policy on every prompt of the sample: there
   is nothing for a search to fix.
2. **no-go** when RAIN's kept-and-fluent rate is not above greedy's with 95% confidence
   (an exact one-sided sign test on the prompts where only one of them succeeded, p <
   :data:`ALPHA`): on this sample the search adds nothing a user would keep.
3. **no-go** when best-of-N (which stops at its first accepted answer, within the same
   time budget) is at least as good as RAIN (a difference of 0 or less).
4. **go with distillation** when RAIN helps but its measured p95 latency is over the
   limit, or it spends more than :data:`COST_LIMIT` times greedy's model tokens: train
   the model on RAIN's answers (``rain distill``) and serve it at greedy's cost.
5. **go** otherwise.

Every verdict also states the fail-safe's review load, whether the model's own verdicts
agree with the exact rules (could it judge this policy without them?), and, when RAIN's
budget ran out on a quarter of the prompts or more, how many search passes the limit
allowed. When RAIN is no better than greedy but best-of-N is better than both, it says so.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from rainlm.pilot.i18n import text

__all__ = ["COST_LIMIT", "recommend"]

COST_LIMIT = 10.0
"""Model tokens per request, ÷ greedy's, above which serving RAIN live is called costly."""
SERVE_MAX_TIME_BUDGET = 120.0
"""``rain serve``'s default ``--max-time-budget``."""
ALPHA = 0.05
"""RAIN counts as better than greedy when the one-sided sign test's p is below this."""
TRUSTED_JUDGE = 0.8
"""The balanced accuracy (against the exact rules) a model judge needs to be called usable."""
BUDGET_LIMITED_SHARE = 0.25
"""RAIN's budget ending a quarter of its searches or more is worth a reason of its own."""



def _pct(x: float | None) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.0%}"


def _signed(x: float | None) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:+.0%}"


def _v(row: Mapping[str, Any], key: str) -> float:
    """A summary's value (NaN when there is none, so comparisons with it are False)."""
    value = row[key]["value"]
    return math.nan if value is None else float(value)


def _num(x: float | None, digits: int = 1) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def serve_command(policy_source: str, time_budget_s: float | None, max_new_tokens: int) -> str:
    """The ``rain serve`` command line that serves what the pilot measured: the policy,
    the time budget found (and a higher ceiling when it is over serve's default one) and
    the answer length."""
    parts = ["rain", "serve", "--policy-file", shlex.quote(policy_source)]
    if time_budget_s is not None:
        parts += ["--default-time-budget", f"{time_budget_s:g}"]
        if time_budget_s > SERVE_MAX_TIME_BUDGET:
            parts += ["--max-time-budget", f"{time_budget_s:g}"]
    parts += ["--default-max-new-tokens", str(max_new_tokens), "--store", "audit.sqlite3"]
    return " ".join(parts)


def recommend(methods: Sequence[Mapping[str, Any]], differences: Mapping[str, Mapping[str, Any]],
              budget: Mapping[str, Any], reliability: Mapping[str, Any], *, p95_limit: float,
              policy: Any, max_new_tokens: int, lang: str = "en") -> dict[str, Any]:
    """``{"verdict", "headline", "reasons", "next_steps", "codes"}`` in ``lang``."""
    m = {row["method"]: row for row in methods}
    greedy, bon, rain = m["greedy"], m["best-of-n"], m["rain"]
    reasons: list[tuple[str, dict[str, Any]]] = []
    vs_greedy = differences["rain_minus_greedy"]
    vs_bon = differences["rain_minus_best-of-n"]
    kf = {k: _pct(row["kept_and_fluent_rate"]["value"]) for k, row in m.items()}
    rain_p95 = rain["latency_p95_s"]["value"]
    rain_cost = rain["token_ratio"]["value"]
    compare = {"rain": kf["rain"], "greedy": kf["greedy"], "diff": _signed(vs_greedy["value"]),
               "lo": _signed(vs_greedy["lo"]), "hi": _signed(vs_greedy["hi"]), "n": vs_greedy["n"],
               "wins": vs_greedy.get("wins", 0), "losses": vs_greedy.get("losses", 0),
               "p": f"{vs_greedy.get('p', 1.0):.3f}"}
    if greedy["n"] and greedy["violation_rate"]["value"] == 0:
        verdict = "no-go"
        reasons.append(("nothing", {"n": greedy["n"]}))
        steps = [("step.no-go.nothing", {})]
    elif not (vs_greedy["n"] and vs_greedy["p"] < ALPHA):
        verdict = "no-go"
        reasons.append(("not_better", compare))
        if _v(rain, "violation_rate") < _v(greedy, "violation_rate") \
                and _v(rain, "fluent_rate") < _v(greedy, "fluent_rate"):
            reasons.append(("worse_fluency", {
                "rain_kept": _pct(1 - rain["violation_rate"]["value"]),
                "greedy_kept": _pct(1 - greedy["violation_rate"]["value"]),
                "rain_fluent": _pct(rain["fluent_rate"]["value"]),
                "greedy_fluent": _pct(greedy["fluent_rate"]["value"])}))
        if _v(bon, "kept_and_fluent_rate") > max(_v(rain, "kept_and_fluent_rate"),
                                                 _v(greedy, "kept_and_fluent_rate")):
            reasons.append(("bon_better", {"bon": kf["best-of-n"]}))
            steps = [("step.no-go.bon", {}), ("step.no-go.bigger", {})]
        else:
            steps = [("step.no-go.bigger", {})]
    elif vs_bon["n"] and vs_bon["value"] <= 0:
        verdict = "no-go"
        reasons += [("better", compare),
                    ("bon_as_good", {"bon": kf["best-of-n"], "diff": _signed(vs_bon["value"]),
                                     "bon_cost": _num(bon["token_ratio"]["value"]),
                                     "rain_cost": _num(rain_cost)})]
        steps = [("step.no-go.bon", {})]
    else:
        reasons += [("better", compare),
                    ("bon_worse", {"bon": kf["best-of-n"], "diff": _signed(vs_bon["value"]),
                                   "lo": _signed(vs_bon["lo"]), "hi": _signed(vs_bon["hi"])})]
        slow = not (rain_p95 is not None and rain_p95 <= p95_limit)
        costly = rain_cost is not None and math.isfinite(rain_cost) and rain_cost > COST_LIMIT
        if slow:
            reasons.append(("latency_over", {"p95": _num(rain_p95), "limit": _num(p95_limit)}))
        else:
            reasons.append(("latency_ok", {"p95": _num(rain_p95), "limit": _num(p95_limit),
                                           "budget": _num(budget.get("time_budget_s"))}))
        if costly:
            reasons.append(("costly", {"cost": _num(rain_cost), "limit": _num(COST_LIMIT, 0)}))
        verdict = "go-with-distillation" if slow or costly else "go"
        steps = [("step.distill" if slow or costly else "step.go",
                  {"command": serve_command(policy.source, budget.get("time_budget_s"),
                                            max_new_tokens)})]
    if not budget.get("met", True):
        best = min((t["p95_s"] for t in budget.get("tries", []) if t.get("n")), default=None)
        reasons.append(("budget_not_met", {"limit": _num(p95_limit), "best": _num(best)}))
    if rain["n"] and rain["budget_limited"] >= BUDGET_LIMITED_SHARE * rain["n"]:
        reasons.append(("budget_ran_out", {
            "budget": _num(budget.get("time_budget_s")), "limited": rain["budget_limited"],
            "unsearched": rain["unsearched"], "n": rain["n"],
            "passes": _num(rain.get("search_passes_median"), 0)}))
    review = rain["review_per_1000"]
    safe = policy.fail_safe
    reasons.append(("review", {"action": safe.action, "threshold": f"{safe.threshold:g}",
                               "per_1000": _num(review["value"], 0), "lo": _num(review["lo"], 0),
                               "hi": _num(review["hi"], 0)}))
    if reliability.get("comparable"):
        agreement = reliability["agreement"]
        balanced = reliability.get("balanced_accuracy", math.nan)
        code = "judge_ok" if balanced >= TRUSTED_JUDGE else "judge_chance"
        reasons.append((code, {"agreement": _pct(agreement["value"]), "n": agreement["n"],
                               "lo": _pct(agreement["lo"]), "hi": _pct(agreement["hi"]),
                               "balanced": _pct(balanced),
                               "fooled": _pct(reliability["model_says_ok_when_rules_break"]["value"]),
                               "harsh": _pct(reliability["model_says_bad_when_rules_hold"]["value"])}))
    if vs_greedy["n"] < 100:
        reasons.append(("small_sample", {"n": vs_greedy["n"]}))
    return {"verdict": verdict, "headline": _say(lang, f"headline.{verdict}"),
            "reasons": [_say(lang, code, **params) for code, params in reasons],
            "next_steps": [_say(lang, code, **params) for code, params in steps],
            "codes": [code for code, _ in reasons]}


def _say(lang: str, code: str, **params: Any) -> str:
    """A reason's or step's words (``rainlm.pilot.i18n``, key ``rec_`` + the code)."""
    return text(lang, "rec_" + code.replace(".", "_").replace("-", "_"), **params)
