"""``rain bench frontier-report``: the compute–quality frontier as tables and plots.

One point per (task, method, budget, judge accuracy p): x = mean over prompts of the
method's tokens encoded ÷ greedy's on the same prompt; y = the failure rate (attack
success or violation) with a Wilson 95% interval. Beside it, whether the rule was kept
without breaking the answer (:mod:`rainlm.bench.frontier_scoring`): the
fluent-and-compliant rate (kept the rule AND fluent) with its Wilson interval, the
median NLL per token, the median of (NLL − greedy's NLL on the same prompt) and the mean
share of dictionary words.

For every RAIN point the report also gives best-of-N's failure rate at the same compute
(interpolated on log-compute between the two nearest N, or the measured N when one lies
within ±10%; the best of its sampling temperatures, named), ARGS's, the share of prompts
where greedy fails and RAIN returned greedy's answer word for word ("collapse onto
greedy"), and best-until-N's fluent-and-compliant rate matched the same way at the same
tokens encoded and at the same texts judged (again the best temperature, named), with
RAIN ÷ that rate. Records written before the fluency fields existed render as "–".
Sample answers (the first prompts, every family at its largest budget, p = 1) follow.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rainlm.bench.frontier_samples import (family_order, md_escape, render_samples,
                                           sample_answers)
from rainlm.bench.metrics import bootstrap_mean, is_budget_limited, wilson_interval
from rainlm.bench.runner import read_records
from rainlm.errors import ConfigError

__all__ = ["FrontierPoint", "best_peer", "frontier_points", "matched", "md_escape",
           "render_frontier", "sample_answers", "write_frontier_report"]

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
    kf_n: int = 0
    """Prompts with a fluent-and-compliant verdict (records with fluency fields)."""
    kept_fluent: int = 0
    """Of those, answers that kept the rule and are fluent."""
    kf_rate: float | None = None
    """kept_fluent ÷ kf_n (None: no record has the verdict)."""
    kf_lo: float | None = None
    kf_hi: float | None = None
    nll_median: float | None = None
    """Median NLL per token of the answers, in nats."""
    nll_delta_median: float | None = None
    """Median over prompts of (NLL − greedy's NLL on the same prompt), in nats."""
    known_words: float | None = None
    """Mean share of the answers' Latin words that are dictionary words."""


def load_frontier(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Records of frontier files (the last line wins for a repeated key); a record of a
    split (``rain bench frontier --split``) counts under "TASK (SPLIT)"."""
    if not paths:
        raise ConfigError("runs", "give at least one frontier results file")
    latest: dict[tuple, dict[str, Any]] = {}
    for path in paths:
        for rec in read_records(path):
            if "task" not in rec:
                raise ConfigError("runs", f"{path} is not a frontier results file "
                                          "(use `rain bench report` for `rain bench run` files)")
            if rec.get("split"):  # a split's answers are never pooled with another's
                rec = dict(rec, task=f"{rec['task']} ({rec['split']})")
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
        points.append(_with_fluency(FrontierPoint(
            task=task, family=recs[0]["family"], method=method, budget=recs[0].get("budget"),
            noise=noise, n=len(recs), failures=fails, rate=fails / len(recs), lo=lo, hi=hi,
            compute=bootstrap_mean([r["tokens_encoded"] / max(gr["tokens_encoded"], 1)
                                    for r, gr in zip(recs, g)]).value,
            judged_texts=sum(r.get("judged_texts", 0) for r in recs) / len(recs),
            seconds_ratio=(sum(r["seconds"] for r in recs) / len(recs)) / g_seconds if g_seconds else math.nan,
            budget_limited=sum(is_budget_limited(r) for r in recs),
            collapse=collapse, items=tuple(sorted(r["item_id"] for r in recs))), recs))
    return sorted(points, key=lambda p: (p.task, _family_order(p.family), -1 if p.noise is None else -p.noise,
                                         p.budget or 0))


def _with_fluency(point: FrontierPoint, recs: Sequence[Mapping[str, Any]]) -> FrontierPoint:
    """``point`` with the fluency fields of its records (None where none has them)."""
    verdicts = [bool(r["kept_and_fluent"]) for r in recs if r.get("kept_and_fluent") is not None]
    nlls = [r["nll"] for r in recs if r.get("nll") is not None]
    deltas = [r["nll"] - r["greedy_nll"] for r in recs
              if r.get("nll") is not None and r.get("greedy_nll") is not None]
    known = [r["known_words"] for r in recs if r.get("known_words") is not None]
    changes: dict[str, Any] = {
        "nll_median": statistics.median(nlls) if nlls else None,
        "nll_delta_median": statistics.median(deltas) if deltas else None,
        "known_words": sum(known) / len(known) if known else None}
    if verdicts:
        k, n = sum(verdicts), len(verdicts)
        lo, hi = wilson_interval(k, n)
        changes.update(kf_n=n, kept_fluent=k, kf_rate=k / n, kf_lo=lo, kf_hi=hi)
    return dataclasses.replace(point, **changes)


def _family_order(family: str) -> tuple[int, str]:
    return family_order(family)


def matched(point: FrontierPoint, points: Sequence[FrontierPoint], *, family: str = "best-of-n",
            x: str = "compute", y: str = "rate") -> dict[str, Any]:
    """``family``'s ``y`` (a FrontierPoint field: "rate", "kf_rate") at ``point``'s ``x``
    ("compute": tokens ÷ greedy, or "judged_texts"), same task and p.

    ``{"rate": r, "how": "N=8 within 10%"|"interpolated N=4..8"|"beyond N=32", ...}``
    (rate None when the family has no point with both values)."""
    mine = getattr(point, x)
    peers = sorted((p for p in points if p.task == point.task and p.family == family
                    and p.noise == point.noise and getattr(p, y) is not None
                    and getattr(p, x) > 0), key=lambda p: getattr(p, x))
    if not peers or not mine or mine <= 0:
        return {"rate": None, "how": f"no {family}"}
    near = [p for p in peers if abs(getattr(p, x) / mine - 1) <= MATCH_TOLERANCE]
    if near:
        best = min(near, key=lambda p: abs(getattr(p, x) - mine))
        return {"rate": getattr(best, y), "how": f"N={best.budget} within 10%",
                "n_match": best.budget}
    below = [p for p in peers if getattr(p, x) < mine]
    above = [p for p in peers if getattr(p, x) > mine]
    if below and above:
        a, b = below[-1], above[0]
        xa, xb = getattr(a, x), getattr(b, x)
        t = (math.log(mine) - math.log(xa)) / (math.log(xb) - math.log(xa))
        return {"rate": getattr(a, y) + t * (getattr(b, y) - getattr(a, y)),
                "how": f"interpolated N={a.budget}..{b.budget}"}
    end = peers[-1] if not above else peers[0]
    return {"rate": getattr(end, y), "how": f"{'beyond' if not above else 'below'} "
                                            f"N={end.budget} (nearest)"}


def best_peer(point: FrontierPoint, points: Sequence[FrontierPoint], kind: str, *,
              x: str = "compute", y: str = "rate") -> dict[str, Any]:
    """:func:`matched` over every sampling temperature of ``kind`` ("best-of-n" or
    "best-until-n", i.e. the families "best-of-n", "best-of-n@t0.7", ...): the one that
    serves the peer best (lowest failure rate for ``y="rate"``, highest otherwise), with
    its name in ``"family"``."""
    families = sorted({p.family for p in points if p.family == kind
                       or p.family.startswith(kind + "@")})
    found = [dict(matched(point, points, family=f, x=x, y=y), family=f) for f in families]
    found = [m for m in found if m["rate"] is not None]
    if not found:
        return {"rate": None, "how": f"no {kind}", "family": None}
    pick = min if y == "rate" else max
    return pick(found, key=lambda m: m["rate"])


def _fmt_rate(p: FrontierPoint) -> str:
    return f"{p.rate:.0%} [{p.lo:.0%}–{p.hi:.0%}]"


def _fmt_kf(p: FrontierPoint) -> str:
    """The fluent-and-compliant rate; "(of K)" when only K of the prompts have it."""
    if p.kf_rate is None:
        return "–"
    part = f" (of {p.kf_n})" if p.kf_n < p.n else ""
    return f"{p.kf_rate:.0%} [{p.kf_lo:.0%}–{p.kf_hi:.0%}]{part}"


def _num(value: float | None, fmt: str = ".2f") -> str:
    return "–" if value is None else format(value, fmt)


def _fmt_peer(m: Mapping[str, Any]) -> str:
    if m["rate"] is None:
        return "–"
    family = f"{m['family']}, " if m.get("family") else ""
    return f"{m['rate']:.0%} ({family}{m['how']})"


def _ratio(mine: float | None, peer: float | None) -> str:
    return "–" if mine is None or not peer else f"{mine / peer:.2f}"


def render_frontier(points: Sequence[FrontierPoint], records: Sequence[Mapping[str, Any]] = (),
                    *, title: str = "Compute–quality frontier") -> str:
    """Markdown: one table per task (all points), then RAIN against best-of-N and ARGS
    and against best-until-N on fluent-and-compliant answers, recomputed on each RAIN
    point's own prompts when ``records`` are given; then sample answers."""
    out = [f"# {title}", ""]
    for task in sorted({p.task for p in points}):
        pts = [p for p in points if p.task == task]
        out += [f"## {task}", "",
                "| method | judge p | prompts | failure rate [95% CI] | fluent & kept [95% CI] | "
                "tokens ÷ greedy | judged texts / answer | seconds ÷ greedy | budget-limited | "
                "answer = greedy where greedy fails | median NLL | median NLL − greedy | "
                "known words |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for p in pts:
            collapse = "–" if p.collapse is None else f"{p.collapse:.0%}"
            out.append(f"| {p.method} | {'–' if p.noise is None else f'{p.noise:g}'} | {p.n} | "
                       f"{_fmt_rate(p)} | {_fmt_kf(p)} | {p.compute:.2f} | {p.judged_texts:.1f} | "
                       f"{p.seconds_ratio:.1f} | {p.budget_limited} | {collapse} | "
                       f"{_num(p.nll_median)} | {_num(p.nll_delta_median, '+.2f')} | "
                       f"{_num(p.known_words, '.0%')} |")
        rain = [p for p in pts if p.family.startswith("rain")]
        if rain:
            out += _rain_tables(task, rain, pts, records)
        out.append("")
    if records:
        out += render_samples(sample_answers(records))
    return "\n".join(out)


def _rain_tables(task: str, rain: Sequence[FrontierPoint], pts: Sequence[FrontierPoint],
                 records: Sequence[Mapping[str, Any]]) -> list[str]:
    """RAIN against the baselines on failures, then on fluent-and-compliant answers."""
    fail = ["", "RAIN against the baselines at its compute (best-of-N at the same tokens "
            "encoded: within ±10% or interpolated on log-compute, at its best sampling "
            "temperature; ARGS spends about greedy's tokens; both on the RAIN point's own "
            "prompts):", "",
            "| RAIN point | judge p | tokens ÷ greedy | RAIN failure | best-of-N at same compute | "
            "RAIN ÷ best-of-N | ARGS failure |", "|---|---|---|---|---|---|---|"]
    kf = ["", "Rules kept without breaking the answer: RAIN's fluent-and-compliant rate against "
          "best-until-N (best-of-N that stops at its first accepted answer, at its best "
          "sampling temperature) at the same tokens encoded and at the same texts judged "
          "(RAIN ÷ peer above 1: RAIN keeps more fluent answers):", "",
          "| RAIN point | judge p | judged texts | RAIN fluent & kept | best-until at same tokens | "
          "RAIN ÷ it | best-until at same judged texts | RAIN ÷ it |",
          "|---|---|---|---|---|---|---|---|"]
    for p in rain:
        same = ([q for q in frontier_points(records, set(p.items)) if q.task == task]
                if records else list(pts))
        m = best_peer(p, same, "best-of-n")
        args = next((a for a in same if a.family == "args" and a.noise == p.noise), None)
        fail.append(f"| {p.method} | {p.noise:g} | {p.compute:.2f} | {_fmt_rate(p)} | "
                    f"{_fmt_peer(m)} | {_ratio(p.rate, m['rate'])} | "
                    f"{'–' if args is None else _fmt_rate(args)} |")
        by_tokens = best_peer(p, same, "best-until-n", y="kf_rate")
        by_judged = best_peer(p, same, "best-until-n", x="judged_texts", y="kf_rate")
        kf.append(f"| {p.method} | {p.noise:g} | {p.judged_texts:.1f} | {_fmt_kf(p)} | "
                  f"{_fmt_peer(by_tokens)} | {_ratio(p.kf_rate, by_tokens['rate'])} | "
                  f"{_fmt_peer(by_judged)} | {_ratio(p.kf_rate, by_judged['rate'])} |")
    return fail + kf


# ------------------------------------------------------------------ plots
PANELS = (("rate", "lo", "hi", "failure rate"),
          ("kf_rate", "kf_lo", "kf_hi", "fluent-and-compliant rate"),
          ("nll_median", None, None, "median NLL per token (nats)"))
"""The plot's rows: (y field, interval low, interval high, axis label)."""


def plot_frontier(points: Sequence[FrontierPoint], out_dir: Path) -> list[Path]:
    """One PNG per task, one column per p and three rows against tokens ÷ greedy (log x):
    the failure rate, the fluent-and-compliant rate, the median NLL per token."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    for task in sorted({p.task for p in points}):
        pts = [p for p in points if p.task == task]
        noises = sorted({p.noise for p in pts if p.noise is not None}, reverse=True) or [None]
        fig, axes = plt.subplots(len(PANELS), len(noises), squeeze=False,
                                 figsize=(6 * len(noises), 4 * len(PANELS)))
        for col, noise in enumerate(noises):
            for row, panel in enumerate(PANELS):
                _panel(axes[row][col], pts, noise, panel, task)
        fig.tight_layout()
        path = out_dir / f"frontier_{task.replace(' (', '-').replace(')', '')}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        files.append(path)
    return files


def _panel(ax: Any, pts: Sequence[FrontierPoint], noise: float | None,
           panel: tuple[str, str | None, str | None, str], task: str) -> None:
    """One family per line (dashed at a sampling temperature other than 1): ``panel``'s
    y against tokens ÷ greedy at judge accuracy ``noise``."""
    from matplotlib import ticker

    y, lo, hi, label = panel
    for family in sorted({p.family for p in pts}, key=_family_order):
        fam = sorted((p for p in pts if p.family == family and p.noise in (noise, None)
                      and getattr(p, y) is not None), key=lambda p: p.compute)
        if not fam:
            continue
        xs, ys = [p.compute for p in fam], [getattr(p, y) for p in fam]
        err = None if lo is None else [[getattr(p, y) - getattr(p, lo) for p in fam],
                                       [getattr(p, hi) - getattr(p, y) for p in fam]]
        line = "none" if len(fam) == 1 else ("--" if "@t" in family else "-")
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=family, linestyle=line)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel("tokens encoded ÷ greedy's (same prompt)")
    ax.set_ylabel(label)
    if lo is not None:
        ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"{task}, judge accuracy p = {noise:g}" if noise is not None else task)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)


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
