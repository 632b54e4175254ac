"""Print a `rain pilot` report's numbers as the Markdown table benchmarks/RESULTS.md holds.

    .venv/bin/python benchmarks/pilot_table.py benchmarks/results/pilot-en/report.json
    .venv/bin/python benchmarks/pilot_table.py REPORT.json --margin 2.0   # fluency sensitivity

``--margin`` recomputes kept-and-fluent from the same answers with another fluency margin
(nats over greedy's median NLL): a sensitivity check, not the pilot's setting.
"""

from __future__ import annotations

import argparse
import json
import math


def fmt(iv: dict | None, kind: str = "rate") -> str:
    if not iv or iv.get("value") is None:
        return "–"
    v, n = iv["value"], iv["n"]
    lo, hi = ("?" if x is None else x for x in (iv["lo"], iv["hi"]))
    if "?" in (lo, hi):
        return f"{v:.1f} s [{lo if lo == '?' else f'{lo:.1f}'}–{hi if hi == '?' else f'{hi:.1f}'}]"
    if kind == "rate":
        return f"{v:.0%} [{lo:.0%}–{hi:.0%}]"
    if kind == "s":
        return f"{v:.1f} s [{lo:.1f}–{hi:.1f}]"
    if kind == "x":
        return f"{v:.2f}× [{lo:.2f}–{hi:.2f}]"
    return f"{v:.0f} [{lo:.0f}–{hi:.0f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report")
    ap.add_argument("--margin", type=float, default=None)
    args = ap.parse_args()
    r = json.load(open(args.report, encoding="utf-8"))
    fl = r["fluency"]
    print(f"prompts {r['prompts']['sample']} from {r['prompts']['source']}, p95 limit "
          f"{r['p95_limit_s']:g} s, budget {r['budget']['rain']['time_budget_s']:g} s "
          f"(met: {r['budget']['rain']['met']}), fluent ≤ {fl['fluent_below']:.2f} nats "
          f"(greedy median {fl['greedy_median_nll']:.2f} + {fl['margin_nats']:g}); "
          f"took {r['timing']['seconds'] / 60:.1f} min; verdict {r['recommendation']['verdict']}")
    print()
    print("| method | violations | fluent | kept and fluent | median NLL | p50 latency | "
          "p95 latency | model tokens ÷ greedy | judged texts | fail-safe per 1,000 | "
          "budget-limited | finished greedily |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for m in r["methods"]:
        print(f"| {m['method']} | {fmt(m['violation_rate'])} | {fmt(m['fluent_rate'])} | "
              f"{fmt(m['kept_and_fluent_rate'])} | {m['nll_median']:.2f} | "
              f"{fmt(m['latency_p50_s'], 's')} | {fmt(m['latency_p95_s'], 's')} | "
              f"{fmt(m['token_ratio'], 'x')} | {m['judged_texts']['value']:.1f} | "
              f"{fmt(m['review_per_1000'], 'n')} | {m['budget_limited']} | {m['unsearched']} |")
    if args.margin is not None:
        limit = fl["greedy_median_nll"] + args.margin
        print(f"\nWith a fluency margin of {args.margin:g} nats (fluent ≤ {limit:.2f}):")
        for method in [m["method"] for m in r["methods"]]:
            ans = [a for a in r["answers"] if a["method"] == method and not a.get("error")]
            ok = sum(a["kept"] and a["nll"] is not None and a["nll"] <= limit for a in ans)
            fluent = sum(a["nll"] is not None and a["nll"] <= limit for a in ans)
            print(f"- {method}: fluent {fluent}/{len(ans)}, kept and fluent {ok}/{len(ans)}")
    j = r["judge_reliability"]
    if j.get("agreement"):
        print(f"\nModel's own judge vs the rules: agreement {fmt(j['agreement'])} over "
              f"{j['agreement']['n']} answers; says fine when a rule is broken "
              f"{fmt(j['model_says_ok_when_rules_break'])}; says bad when the rules hold "
              f"{fmt(j['model_says_bad_when_rules_hold'])}")
    d = r["differences"]
    print("\nPaired kept-and-fluent differences: " + "; ".join(
        f"{k}: {v['value']:+.0%} [{v['lo']:+.0%}, {v['hi']:+.0%}]" for k, v in d.items()
        if v.get("value") is not None and not math.isnan(v["value"])))


if __name__ == "__main__":
    main()
