"""``rain bench frontier-report``: the compute–quality frontier as tables and plots.

One point per (task, method, budget, judge accuracy p): x = mean over prompts of the
method's tokens encoded ÷ greedy's on the same prompt; y = the failure rate (attack
success or violation) with a Wilson 95% interval. For every RAIN point the report also
gives best-of-N's failure rate at the same compute (interpolated on log-compute between
the two nearest N, or the measured N when one lies within ±10%), ARGS's, and the share
of prompts where greedy fails and RAIN returned greedy's answer word for word
("collapse onto greedy").
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rainlm.bench.metrics import bootstrap_mean, is_budget_limited, wilson_interval
from rainlm.bench.runner import read_records
from rainlm.errors import ConfigError

__all__ = ["FrontierPoint", "frontier_points", "matched", "render_frontier", "write_frontier_report"]

MATCH_TOLERANCE = 0.10
"""Two methods spend matched compute when their mean token ratios differ by at most 10%."""


@dataclass(frozen=True)
class FrontierPoint:
    """One method at one budget and judge accuracy on one task."""

    task: str
    family: str
    """"greedy", "sampled", "best-of-n", "args", "rain:VARIANT"."""
    method: str
    """The method label ("best-of-8", "rain:default@16", ...)."""
    budget: int | None
    noise: float | None
    n: int
    """Prompts."""
    failures: int
    rate: float
    lo: float
    hi: float
    compute: float
    """Mean over prompts of tokens encoded ÷ greedy's tokens encoded."""
    judged_texts: float
    """Mean texts sent to the judge per answer."""
    seconds_ratio: float
    """Mean seconds ÷ greedy's mean seconds."""
    budget_limited: int = 0
    """Answers that ended on a budget (finished greedily)."""
    collapse: float | None = None
    """Share of the prompts where greedy fails on which this answer equals greedy's."""
    items: tuple[str, ...] = ()
    """The prompts (item ids) the point is over."""


def load_frontier(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Records of frontier files (the last line wins for a repeated key)."""
    if not paths:
        raise ConfigError("runs", "give at least one frontier results file")
    latest: dict[tuple, dict[str, Any]] = {}
    for path in paths:
        for rec in read_records(path):
            if "task" not in rec:
                raise ConfigError("runs", f"{path} is not a frontier results file "
                                          "(use `rain bench report` for `rain bench run` files)")
            latest[(rec["task"], rec["item_id"], rec["method"], rec.get("noise"), rec.get("model"))] = rec
    return list(latest.values())


def frontier_points(records: Sequence[Mapping[str, Any]],
                    items: set[str] | None = None) -> list[FrontierPoint]:
    """Every (task, method, p) point over the prompts it answered (only ``items`` when
    given), failed answers left out."""
    ok = [r for r in records if not r.get("error") and (items is None or r["item_id"] in items)]
    greedy = {(r["task"], r["item_id"]): r for r in ok if r["method"] == "greedy"}
    groups: dict[tuple, list[Mapping[str, Any]]] = defaultdict(list)
    for r in ok:
        if (r["task"], r["item_id"]) in greedy and "failed" in r:
            groups[(r["task"], r["method"], r.get("noise"))].append(r)
    points = []
    for (task, method, noise), recs in groups.items():
        g = [greedy[(task, r["item_id"])] for r in recs]
        fails = sum(bool(r["failed"]) for r in recs)
        lo, hi = wilson_interval(fails, len(recs))
        gfail = [(r, gr) for r, gr in zip(recs, g) if gr["failed"]]
        collapse = (sum(r["text"] == gr["text"] for r, gr in gfail) / len(gfail)
                    if gfail and method != "greedy" else None)
        g_seconds = sum(x["seconds"] for x in g) / len(g)
        points.append(FrontierPoint(
            task=task, family=recs[0]["family"], method=method, budget=recs[0].get("budget"),
            noise=noise, n=len(recs), failures=fails, rate=fails / len(recs), lo=lo, hi=hi,
            compute=bootstrap_mean([r["tokens_encoded"] / max(gr["tokens_encoded"], 1)
                                    for r, gr in zip(recs, g)]).value,
            judged_texts=sum(r.get("judged_texts", 0) for r in recs) / len(recs),
            seconds_ratio=(sum(r["seconds"] for r in recs) / len(recs)) / g_seconds if g_seconds else math.nan,
            budget_limited=sum(is_budget_limited(r) for r in recs),
            collapse=collapse, items=tuple(sorted(r["item_id"] for r in recs))))
    return sorted(points, key=lambda p: (p.task, _family_order(p.family), -1 if p.noise is None else -p.noise,
                                         p.budget or 0))


def _family_order(family: str) -> tuple[int, str]:
    order = {"greedy": 0, "sampled": 1, "best-of-n": 2, "args": 3}
    return order.get(family, 4), family


def matched(point: FrontierPoint, points: Sequence[FrontierPoint]) -> dict[str, Any]:
    """Best-of-N's failure rate at ``point``'s compute, same task and p.

    ``{"rate": r, "how": "N=8 within 10%"|"interpolated N=4..8"|"beyond N=32", ...}``
    (None when there is no best-of-N point)."""
    bon = sorted((p for p in points if p.task == point.task and p.family == "best-of-n"
                  and p.noise == point.noise), key=lambda p: p.compute)
    if not bon:
        return {"rate": None, "how": "no best-of-N"}
    near = [p for p in bon if abs(p.compute / point.compute - 1) <= MATCH_TOLERANCE]
    if near:
        best = min(near, key=lambda p: abs(p.compute - point.compute))
        return {"rate": best.rate, "how": f"N={best.budget} within 10%", "n_match": best.budget}
    below = [p for p in bon if p.compute < point.compute]
    above = [p for p in bon if p.compute > point.compute]
    if below and above:
        a, b = below[-1], above[0]
        t = (math.log(point.compute) - math.log(a.compute)) / (math.log(b.compute) - math.log(a.compute))
        return {"rate": a.rate + t * (b.rate - a.rate), "how": f"interpolated N={a.budget}..{b.budget}"}
    end = bon[-1] if not above else bon[0]
    return {"rate": end.rate, "how": f"{'beyond' if not above else 'below'} N={end.budget} (nearest)"}


def _fmt_rate(p: FrontierPoint) -> str:
    return f"{p.rate:.0%} [{p.lo:.0%}–{p.hi:.0%}]"


def render_frontier(points: Sequence[FrontierPoint], records: Sequence[Mapping[str, Any]] = (),
                    *, title: str = "Compute–quality frontier") -> str:
    """Markdown: one table per task (all points), then RAIN against best-of-N and ARGS,
    recomputed on each RAIN point's own prompts when ``records`` are given."""
    out = [f"# {title}", ""]
    for task in sorted({p.task for p in points}):
        pts = [p for p in points if p.task == task]
        out += [f"## {task}", "",
                "| method | judge p | prompts | failure rate [95% CI] | tokens ÷ greedy | "
                "judged texts / answer | seconds ÷ greedy | budget-limited | answer = greedy where greedy fails |",
                "|---|---|---|---|---|---|---|---|---|"]
        for p in pts:
            collapse = "–" if p.collapse is None else f"{p.collapse:.0%}"
            out.append(f"| {p.method} | {'–' if p.noise is None else f'{p.noise:g}'} | {p.n} | "
                       f"{_fmt_rate(p)} | {p.compute:.2f} | {p.judged_texts:.1f} | "
                       f"{p.seconds_ratio:.1f} | {p.budget_limited} | {collapse} |")
        rain = [p for p in pts if p.family.startswith("rain")]
        if rain:
            out += ["", "RAIN against the baselines at its compute (best-of-N at the same tokens "
                    "encoded: within ±10% or interpolated on log-compute; ARGS spends about "
                    "greedy's tokens; both on the RAIN point's own prompts):", "",
                    "| RAIN point | judge p | tokens ÷ greedy | RAIN failure | best-of-N at same compute | "
                    "RAIN ÷ best-of-N | ARGS failure |", "|---|---|---|---|---|---|---|"]
            for p in rain:
                same = ([q for q in frontier_points(records, set(p.items)) if q.task == task]
                        if records else pts)
                m = matched(p, same)
                args = next((a for a in same if a.family == "args" and a.noise == p.noise), None)
                ratio = "–" if not m["rate"] else f"{p.rate / m['rate']:.2f}"
                bon = "–" if m["rate"] is None else f"{m['rate']:.0%} ({m['how']})"
                out.append(f"| {p.method} | {p.noise:g} | {p.compute:.2f} | {_fmt_rate(p)} | {bon} | "
                           f"{ratio} | {'–' if args is None else _fmt_rate(args)} |")
        out.append("")
    return "\n".join(out)


def plot_frontier(points: Sequence[FrontierPoint], out_dir: Path) -> list[Path]:
    """One PNG per task: failure rate against tokens ÷ greedy (log x), one panel per p."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    for task in sorted({p.task for p in points}):
        pts = [p for p in points if p.task == task]
        noises = sorted({p.noise for p in pts if p.noise is not None}, reverse=True) or [None]
        fig, axes = plt.subplots(1, len(noises), figsize=(6 * len(noises), 4.5), squeeze=False)
        for ax, noise in zip(axes[0], noises):
            for family in sorted({p.family for p in pts}, key=_family_order):
                fam = sorted((p for p in pts if p.family == family and p.noise in (noise, None)),
                             key=lambda p: p.compute)
                if not fam:
                    continue
                x = [p.compute for p in fam]
                y = [p.rate for p in fam]
                err = [[p.rate - p.lo for p in fam], [p.hi - p.rate for p in fam]]
                ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=family,
                            linestyle="-" if len(fam) > 1 else "none")
            ax.set_xscale("log")
            ax.set_xlabel("tokens encoded ÷ greedy's (same prompt)")
            ax.set_ylabel("failure rate")
            ax.set_ylim(-0.02, 1.02)
            ax.set_title(f"{task}, judge accuracy p = {noise:g}" if noise is not None else task)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8)
        fig.tight_layout()
        path = out_dir / f"frontier_{task}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        files.append(path)
    return files


def write_frontier_report(paths: Sequence[str | Path], out_dir: str | Path, *,
                          plots: bool = True) -> tuple[Path, list[Path], list[str]]:
    """report.md, points.json and (with matplotlib) one PNG per task in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = load_frontier(paths)
    points = frontier_points(records)
    md = out / "report.md"
    md.write_text(render_frontier(points, records) + "\n", encoding="utf-8")
    (out / "points.json").write_text(json.dumps([p.__dict__ for p in points], indent=1) + "\n")
    files, notes = [], []
    if plots:
        try:
            files = plot_frontier(points, out)
        except ImportError:
            notes.append("matplotlib is not installed: no plots (pip install 'rainlm[bench]')")
    return md, files, notes
