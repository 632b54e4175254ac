"""The pilot's recommendation, with its reasons, in English or Japanese.

The rule, in order (every threshold is stated here and on the page):

1. **no-go** when greedy already keeps the policy on every prompt of the sample: there
   is nothing for a search to fix.
2. **no-go** when RAIN's kept-and-fluent rate is not above greedy's with 95% confidence
   (the paired interval of the difference includes 0 or lies below it): on this sample
   the search adds nothing a user would keep.
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
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["COST_LIMIT", "recommend"]

COST_LIMIT = 10.0
"""Model tokens per request, ÷ greedy's, above which serving RAIN live is called costly."""
BUDGET_LIMITED_SHARE = 0.25
"""RAIN's budget ending a quarter of its searches or more is worth a reason of its own."""

TEXT = {
    "en": {
        "headline.go": "Go: RAIN keeps your policy better than plain decoding, within your latency limit.",
        "headline.go-with-distillation": "Go with distillation: RAIN keeps your policy better, but is too slow or costly to serve live; train the model on its answers.",
        "headline.no-go": "No-go: on this sample RAIN does not give answers worth its cost.",
        "nothing": "Plain decoding already keeps your policy on all {n} prompts: there is nothing for a search to fix.",
        "not_better": "RAIN's answers kept the policy and read fluently on {rain} of the prompts against greedy's {greedy} (difference {diff}, 95% interval {lo} to {hi}, n={n}): not a clear gain.",
        "worse_fluency": "RAIN kept the policy more often ({rain_kept} against {greedy_kept}) but more of its answers read as broken text (fluent: {rain_fluent} against {greedy_fluent}).",
        "better": "RAIN's answers kept the policy and read fluently on {rain} of the prompts against greedy's {greedy} (difference {diff}, 95% interval {lo} to {hi}, n={n}).",
        "bon_as_good": "Best-of-N did at least as well ({bon} kept and fluent, difference {diff}) at {bon_cost}× greedy's model tokens (RAIN: {rain_cost}×).",
        "bon_worse": "Best-of-N at the same time budget: {bon} kept and fluent (RAIN − best-of-N {diff}, 95% interval {lo} to {hi}).",
        "latency_over": "RAIN's p95 latency was {p95} s against your limit of {limit} s.",
        "latency_ok": "RAIN's p95 latency was {p95} s, within your limit of {limit} s (time budget {budget} s per answer).",
        "budget_not_met": "No time budget tried kept RAIN's p95 under {limit} s on the tuning prompts (best: {best} s).",
        "costly": "RAIN spent {cost}× greedy's model tokens per request (more than {limit}×).",
        "review": "The fail-safe ({action}, threshold {threshold}) would act on {per_1000} of every 1,000 RAIN answers (95% interval {lo} to {hi}).",
        "judge_chance": "The model's own judge agreed with your exact rules on {agreement} of {n} answers (95% interval {lo} to {hi}): it cannot be trusted to judge this policy; keep the rules as the judge.",
        "judge_ok": "The model's own judge agreed with your exact rules on {agreement} of {n} answers (95% interval {lo} to {hi}).",
        "bon_better": "Best-of-N with your policy as the judge did better here: {bon} of its answers kept the policy and read fluently.",
        "budget_ran_out": "Within the time budget of {budget} s RAIN managed a median of {passes} search passes per answer on this machine; on {limited} of {n} prompts the budget ran out before the policy accepted an answer, and those answers were finished greedily, without search. A higher latency limit or faster hardware gives the search more room.",
        "small_sample": "With {n} prompts the intervals are wide: a larger sample (--sample 100) would narrow them.",
        "step.go": "Serve it: rain serve --policy-file {policy} --default-time-budget {budget} --store audit.sqlite3",
        "step.distill": "Collect RAIN's answers on more of your traffic (rain serve --policy-file {policy} --store audit.sqlite3), then rain distill export audit.sqlite3 --out data/ and rain distill train data/ --out distilled/ (measured on a 135M model: violations 38% → 4% on held-out prompts at greedy's speed, benchmarks/RESULTS.md).",
        "step.no-go.bigger": "Try a larger model, or a larger sample to see a smaller gain.",
        "step.no-go.bon": "If you need the policy kept now, best-of-N with the policy as the judge does as well here.",
        "step.no-go.nothing": "Keep serving plain decoding; re-run the pilot when the policy or the traffic changes.",
    },
    "ja": {
        "headline.go": "導入を推奨: RAIN は通常の生成よりもポリシーをよく守り、遅延の上限内に収まります。",
        "headline.go-with-distillation": "蒸留を前提に導入を推奨: RAIN はポリシーをよく守りますが、そのままでは遅すぎるかコストが高すぎます。RAIN の回答でモデルを学習させてください。",
        "headline.no-go": "導入は見送り: このサンプルでは、RAIN はコストに見合う回答を出していません。",
        "nothing": "通常の生成がすでに {n} 件すべてのプロンプトでポリシーを守っています。探索で改善すべき点がありません。",
        "not_better": "ポリシーを守りかつ自然な文章だった回答は RAIN が {rain}、通常の生成が {greedy} でした(差 {diff}、95% 区間 {lo}〜{hi}、n={n})。明確な改善ではありません。",
        "worse_fluency": "RAIN はポリシーをより多く守りましたが({rain_kept} 対 {greedy_kept})、崩れた文章の回答が増えました(自然な文章: {rain_fluent} 対 {greedy_fluent})。",
        "better": "ポリシーを守りかつ自然な文章だった回答は RAIN が {rain}、通常の生成が {greedy} でした(差 {diff}、95% 区間 {lo}〜{hi}、n={n})。",
        "bon_as_good": "Best-of-N も同等以上でした(守りかつ自然 {bon}、差 {diff})。モデルトークンは通常の生成の {bon_cost} 倍(RAIN は {rain_cost} 倍)です。",
        "bon_worse": "同じ時間予算の Best-of-N: 守りかつ自然 {bon}(RAIN − Best-of-N {diff}、95% 区間 {lo}〜{hi})。",
        "latency_over": "RAIN の p95 遅延は {p95} 秒で、上限 {limit} 秒を超えました。",
        "latency_ok": "RAIN の p95 遅延は {p95} 秒で、上限 {limit} 秒以内でした(1 回答あたりの時間予算 {budget} 秒)。",
        "budget_not_met": "調整用プロンプトでは、どの時間予算でも RAIN の p95 を {limit} 秒以下にできませんでした(最良 {best} 秒)。",
        "costly": "RAIN は 1 リクエストあたり通常の生成の {cost} 倍のモデルトークンを使いました({limit} 倍超)。",
        "review": "フェイルセーフ({action}、しきい値 {threshold})は RAIN の回答 1,000 件あたり {per_1000} 件に作動します(95% 区間 {lo}〜{hi})。",
        "judge_chance": "モデル自身の判定は、ポリシーの厳密なルールと {n} 件中 {agreement} で一致しました(95% 区間 {lo}〜{hi})。このポリシーの判定には使えません。ルールを判定に使ってください。",
        "judge_ok": "モデル自身の判定は、ポリシーの厳密なルールと {n} 件中 {agreement} で一致しました(95% 区間 {lo}〜{hi})。",
        "bon_better": "ここでは、ポリシーを判定に使う Best-of-N の方が良い結果でした(守りかつ自然 {bon})。",
        "budget_ran_out": "時間予算 {budget} 秒の中で、このマシンでの RAIN の探索は 1 回答あたり中央値 {passes} 回でした。{n} 件中 {limited} 件では、ポリシーに合格する回答が見つかる前に予算が尽き、残りは探索なしの通常の生成で書かれました。遅延の上限を上げるか、より速いハードウェアを使うと探索の余地が増えます。",
        "small_sample": "プロンプトが {n} 件のため区間が広くなっています。サンプルを増やすと(--sample 100)狭くなります。",
        "step.go": "運用する: rain serve --policy-file {policy} --default-time-budget {budget} --store audit.sqlite3",
        "step.distill": "より多くの実トラフィックで RAIN の回答を集め(rain serve --policy-file {policy} --store audit.sqlite3)、rain distill export audit.sqlite3 --out data/ と rain distill train data/ --out distilled/ を実行します(135M モデルでの実測: 評価用プロンプトで違反 38% → 4%、速度は通常の生成と同等。benchmarks/RESULTS.md)。",
        "step.no-go.bigger": "より大きなモデルを試すか、小さな改善を見るためにサンプルを増やしてください。",
        "step.no-go.bon": "今すぐポリシーを守らせる必要があれば、ポリシーを判定に使う Best-of-N がここでは同等の結果です。",
        "step.no-go.nothing": "通常の生成のまま運用し、ポリシーやトラフィックが変わったら再度パイロットを実行してください。",
    },
}


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


def recommend(methods: Sequence[Mapping[str, Any]], differences: Mapping[str, Mapping[str, Any]],
              budget: Mapping[str, Any], reliability: Mapping[str, Any], *, p95_limit: float,
              policy: Any, lang: str = "en") -> dict[str, Any]:
    """``{"verdict", "headline", "reasons", "next_steps", "codes"}`` in ``lang``."""
    words = TEXT[lang]
    m = {row["method"]: row for row in methods}
    greedy, bon, rain = m["greedy"], m["best-of-n"], m["rain"]
    reasons: list[tuple[str, dict[str, Any]]] = []
    vs_greedy = differences["rain_minus_greedy"]
    vs_bon = differences["rain_minus_best-of-n"]
    kf = {k: _pct(row["kept_and_fluent_rate"]["value"]) for k, row in m.items()}
    rain_p95 = rain["latency_p95_s"]["value"]
    rain_cost = rain["token_ratio"]["value"]
    compare = {"rain": kf["rain"], "greedy": kf["greedy"], "diff": _signed(vs_greedy["value"]),
               "lo": _signed(vs_greedy["lo"]), "hi": _signed(vs_greedy["hi"]), "n": vs_greedy["n"]}
    if greedy["n"] and greedy["violation_rate"]["value"] == 0:
        verdict = "no-go"
        reasons.append(("nothing", {"n": greedy["n"]}))
        steps = [("step.no-go.nothing", {})]
    elif not (vs_greedy["n"] and vs_greedy["lo"] > 0):
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
                  {"policy": policy.source, "budget": _num(budget.get("time_budget_s"))})]
    if not budget.get("met", True):
        best = min((t["p95_s"] for t in budget.get("tries", []) if t.get("n")), default=None)
        reasons.append(("budget_not_met", {"limit": _num(p95_limit), "best": _num(best)}))
    if rain["n"] and rain["budget_limited"] >= BUDGET_LIMITED_SHARE * rain["n"]:
        reasons.append(("budget_ran_out", {
            "budget": _num(budget.get("time_budget_s")), "limited": rain["budget_limited"],
            "n": rain["n"], "passes": _num(rain.get("search_passes_median"), 0)}))
    review = rain["review_per_1000"]
    safe = policy.fail_safe
    reasons.append(("review", {"action": safe.action, "threshold": f"{safe.threshold:g}",
                               "per_1000": _num(review["value"], 0), "lo": _num(review["lo"], 0),
                               "hi": _num(review["hi"], 0)}))
    if reliability.get("comparable"):
        agreement = reliability["agreement"]
        code = "judge_chance" if agreement["lo"] <= 0.5 else "judge_ok"
        reasons.append((code, {"agreement": _pct(agreement["value"]), "n": agreement["n"],
                               "lo": _pct(agreement["lo"]), "hi": _pct(agreement["hi"])}))
    if vs_greedy["n"] < 100:
        reasons.append(("small_sample", {"n": vs_greedy["n"]}))
    return {"verdict": verdict, "headline": words[f"headline.{verdict}"],
            "reasons": [words[code].format(**params) for code, params in reasons],
            "next_steps": [words[code].format(**params) for code, params in steps],
            "codes": [code for code, _ in reasons]}
