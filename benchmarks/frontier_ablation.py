"""The ablation table of the default search (issue 11): RAIN variants side by side on the
prompts they all answered, from ``rain bench frontier`` results files.

Each row: a variant at one budget and judge accuracy, its failure rate (Wilson 95%), mean
tokens encoded ÷ greedy's on the same prompts, and how many answers a budget limited.
Records of the same (prompt, method, judge accuracy) in several files count once (the
first file wins), so the main run and ablation runs can be given together.

    python benchmarks/frontier_ablation.py benchmarks/results/frontier/banned-words.jsonl \\
        benchmarks/results/frontier/ablation/banned-words.jsonl --budget 16 --noise 1

A file given as ``PATH=TAG`` has its RAIN labels tagged, ``rain:default@16`` becoming
``rain:default[TAG]@16``: the default of an earlier stop, kept in its own file, then
stands beside today's under its own name.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from rainlm.bench.metrics import is_budget_limited, wilson_interval
from rainlm.bench.runner import read_records


def load(runs: list[str]) -> dict[tuple[str, str, float | None], dict]:
    """(item, method, noise) -> record; the first file that has it wins. ``PATH=TAG``
    tags that file's RAIN labels (see the module's docstring)."""
    out: dict[tuple[str, str, float | None], dict] = {}
    for run in runs:
        path, _, tag = run.partition("=")
        for rec in read_records(Path(path)):
            method = tagged(rec["method"], tag)
            out.setdefault((rec["item_id"], method, rec.get("noise")), {**rec, "method": method})
    return out


def tagged(method: str, tag: str) -> str:
    """``rain:VARIANT@B`` → ``rain:VARIANT[TAG]@B``; other labels, or no tag: unchanged."""
    if not tag or not method.startswith("rain:") or "@" not in method:
        return method
    name, _, budget = method.rpartition("@")
    return f"{name}[{tag}]@{budget}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="PATH[=TAG]",
                        help="frontier results files (JSONL); =TAG tags its RAIN labels")
    parser.add_argument("--budget", type=int, default=16, help="RAIN budget to compare")
    parser.add_argument("--noise", type=float, default=1.0, help="judge accuracy p to compare")
    parser.add_argument("--min-prompts", type=int, default=4,
                        help="leave out variants with fewer prompts than this")
    args = parser.parse_args()
    recs = load(args.runs)
    greedy = {item: r for (item, method, _), r in recs.items() if method == "greedy"}
    by_variant: dict[str, dict[str, dict]] = defaultdict(dict)
    for (item, method, noise), r in recs.items():
        if method.startswith("rain:") and method.endswith(f"@{args.budget}") and noise == args.noise:
            by_variant[method][item] = r
    by_variant = {m: v for m, v in by_variant.items() if len(v) >= args.min_prompts}
    common = set.intersection(*(set(v) for v in by_variant.values())) & set(greedy)
    print(f"prompts answered by every variant: {len(common)} ({', '.join(sorted(common))})\n")
    print("| search | failure rate [95% CI] | tokens ÷ greedy | budget-limited |")
    print("|---|---|---|---|")
    rows = []
    for method, items in by_variant.items():
        chosen = [items[i] for i in sorted(common)]
        fails = sum(bool(r["failed"]) for r in chosen)
        lo, hi = wilson_interval(fails, len(chosen))
        cost = sum(r["tokens_encoded"] / greedy[r["item_id"]]["tokens_encoded"]
                   for r in chosen) / len(chosen)
        limited = sum(is_budget_limited(r) for r in chosen)
        rows.append((fails / len(chosen), cost, method, lo, hi, limited, len(chosen)))
    for rate, cost, method, lo, hi, limited, n in sorted(rows):
        print(f"| {method} | {rate:.0%} [{lo:.0%}–{hi:.0%}] | {cost:.2f} | {limited} of {n} |")


if __name__ == "__main__":
    main()
