"""The pilot's report as ONE self-contained HTML page (``rain pilot`` writes it).

:func:`render_pilot_page` turns the report dict (schema ``rainlm.pilot/1``) into a page
in the report's language (``report["lang"]``: ``en`` or ``ja``; UI strings from
:mod:`rainlm.pilot.i18n`). From the top:

- ``#partial``: a banner when ``finished`` is false (run the command again to resume);
- ``#verdict``: the recommendation, big and coloured (``verdict-go`` green,
  ``verdict-distill`` amber, ``verdict-nogo`` red), its headline, reasons and next steps
  (written by the report in its language: shown as given);
- ``#intro`` (how to read the page), ``#tested`` (policy and rules, prompts, model,
  machine, latency limit, the time budget found), ``#results`` (one column per method:
  every number with its 95% interval and n; ``#differences`` when the report has
  ``differences``, the paired kept-and-fluent differences), ``#judge`` (judge reliability);
- ``#charts``: two inline SVG strip plots (:mod:`rainlm.pilot.svg`): seconds per answer
  with the p95 limit, and NLL per token with the fluency threshold, kept vs broken;
- ``#samples``: ``table#sample-table``, one column per method, the sample prompts' answers
  side by side with badges (kept/broken and the rules broken, fluent, seconds,
  budget-limited, unsearched, error);
- ``#glossary`` and a footer.

No JavaScript and no template engine: every string from the report is cleaned (NUL
and other control characters become U+FFFD) and ``html.escape``-d, and user text is
bidi-isolated (``<bdi>``, ``dir="auto"``). A ``Content-Security-Policy`` meta tag
forbids anything but inline styles and ``data:`` images. Missing or odd values (an
empty method list, intervals with n=0 or NaN, no judge reliability, answers without an
NLL) show as "–" instead of failing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rainlm.pilot.i18n import lang_of, text
from rainlm.pilot.svg import Row, Style, clean, esc, strip_plot

__all__ = ["CSP", "DASH", "format_interval", "render_pilot_page", "write_pilot_page"]

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
"""The page's Content-Security-Policy (a meta tag): inline styles and data: images only."""
DASH = "–"
"""Shown for a value that is missing, None or not a finite number."""

_VERDICTS = {"go": ("verdict-go", "verdict_go", "meaning_go"),
             "go-with-distillation": ("verdict-distill", "verdict_go_with_distillation",
                                      "meaning_go_with_distillation"),
             "no-go": ("verdict-nogo", "verdict_no_go", "meaning_no_go")}
_JUDGES = {"rules": "judge_rules", "rules+model": "judge_rules_model", "model": "judge_model"}
_METHOD_COLOURS = ("#0072B2", "#CC79A7", "#E69F00", "#56B4E9", "#555555", "#009E73")
_SAMPLE_FALLBACK = 5  # item ids shown when the report lists no samples

_CSS = """
:root{color-scheme:light}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:#fff;color:#1d1d1f;font:16px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"Hiragino Kaku Gothic ProN","Hiragino Sans","Yu Gothic UI","Yu Gothic",YuGothic,Meiryo,"Noto Sans CJK JP","Noto Sans JP","Source Han Sans JP",sans-serif}
html:lang(ja) body{font-family:"Hiragino Kaku Gothic ProN","Hiragino Sans","Yu Gothic UI","Yu Gothic",YuGothic,Meiryo,"Noto Sans CJK JP","Noto Sans JP","Source Han Sans JP",system-ui,sans-serif;line-height:1.75}
main{max-width:74rem;margin:0 auto;padding:1.5rem 1rem 3rem}
h1{font-size:1.65rem;margin:.1em 0 .2em;line-height:1.25}
h2{font-size:1.3rem;margin:2.2rem 0 .7rem;padding-bottom:.25rem;border-bottom:2px solid #e3e4e8}
h3{font-size:1.05rem;margin:1.1rem 0 .35rem}
p{margin:.4rem 0}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.9em;background:#f2f3f5;padding:0 .3em;border-radius:4px}
.sub{color:#555;margin:0}
.u{white-space:pre-wrap;overflow-wrap:anywhere;word-break:normal;unicode-bidi:isolate}
bdi{overflow-wrap:anywhere}
.banner{border:2px solid #b26a00;background:#fff4e0;color:#5c3a00;border-radius:10px;padding:.8rem 1rem;margin:1rem 0;font-size:1.1rem}
.banner strong{display:block;font-size:1.2rem}
.verdict{border:4px solid #6b6b6b;background:#f2f2f2;border-radius:14px;padding:1rem 1.4rem 1.2rem;margin:1.2rem 0}
.verdict h2{border:0;margin:0;padding:0;font-size:.95rem;text-transform:uppercase;letter-spacing:.06em;color:#444}
.verdict-label{font-size:2.6rem;font-weight:800;line-height:1.15;margin:.15rem 0 .35rem}
.verdict-go{border-color:#1e7d34;background:#e9f6ed}.verdict-go .verdict-label{color:#17652a}
.verdict-distill{border-color:#c77800;background:#fff4df}.verdict-distill .verdict-label{color:#8a5200}
.verdict-nogo{border-color:#b3261e;background:#fdeceb}.verdict-nogo .verdict-label{color:#a11d16}
.headline{font-size:1.3rem;font-weight:650;margin:.2rem 0 .5rem}
.meaning{color:#333}
.verdict ul,.verdict ol{margin:.2rem 0 .2rem 1.3rem;padding:0}
.verdict li{margin:.2rem 0}
dl.facts{display:grid;grid-template-columns:minmax(9rem,max-content) minmax(0,1fr);gap:.45rem 1.2rem;margin:.5rem 0}
dl.facts dt{font-weight:650;color:#3a3a3c}
dl.facts dd{margin:0;min-width:0}
ul.rules{margin:0;padding-left:1.2rem}
blockquote{margin:.3rem 0;padding:.3rem .8rem;border-left:4px solid #d0d2d8;background:#f7f8fa}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;width:100%}
th,td{border:1px solid #d9dbe0;padding:.45rem .6rem;text-align:left;vertical-align:top}
thead th{background:#f2f3f6}
th .desc,td .desc{display:block;font-weight:400;color:#5f6368;font-size:.82rem}
td.num{font-variant-numeric:tabular-nums;white-space:nowrap}
#method-table{min-width:46rem}
#method-table th[scope=row]{width:24%;min-width:12rem}
.over{color:#a11d16;font-weight:700}
p.desc{color:#5f6368;font-size:.88rem}
.tries{width:auto;margin-top:.4rem;font-size:.92rem}
.tries caption{caption-side:top;text-align:left;color:#5f6368;font-size:.85rem;padding-bottom:.2rem}
.badge{display:inline-block;padding:.05rem .5rem;border-radius:999px;font-size:.8rem;line-height:1.5;margin:0 .25rem .3rem 0;background:#eceef1;color:#333;white-space:normal;overflow-wrap:anywhere}
.b-ok,.b-kept,.b-fluent{background:#e2f3e7;color:#17622b}
.b-bad,.b-broken{background:#fde3e0;color:#9c2219}
.b-notfluent{background:#fff0d2;color:#734800}
.b-limited{background:#ffe08a;color:#4d3800;font-weight:700}
.b-unsearched{background:#e7e1f6;color:#3d2b73;font-weight:600}
.b-error{background:#a11d16;color:#fff;font-weight:700}
.judge-verdict{font-weight:600}
figure{margin:1.2rem 0}
svg.chart{display:block;width:100%;max-width:58rem;height:auto}
figcaption{color:#444;font-size:.9rem;margin-top:.3rem}
table.samples{table-layout:fixed;min-width:40rem}
.samples th.prompt{background:#f7f8fa;font-weight:400}
.samples th.prompt .item{font-weight:700;display:block}
.answer{margin-top:.2rem}
.empty,.none{color:#666;font-style:italic}
.broken-rules{margin:.1rem 0 .3rem;padding-left:1.1rem;font-size:.85rem;color:#7a1b14}
.error-text{color:#7a1b14;font-size:.9rem}
#glossary{margin-top:2.2rem;padding-top:.4rem;border-top:2px solid #e3e4e8}
details.glossary summary{cursor:pointer;font-weight:700;font-size:1.3rem}
details.glossary dl.facts{margin-top:.6rem}
footer{margin-top:2.5rem;color:#666;font-size:.85rem}
@media (max-width:40rem){dl.facts{grid-template-columns:minmax(0,1fr)}dl.facts dd{margin-bottom:.4rem}.verdict-label{font-size:2rem}main{padding:1rem .7rem 2rem}}
@media print{.verdict,.banner{break-inside:avoid}tbody.item{break-inside:avoid}figure{break-inside:avoid}}
"""


# ---------------------------------------------------------------- small helpers
def _fin(x: Any) -> float | None:
    """``x`` as a finite float, else None (bools, strings, None, NaN, inf)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _map(x: Any) -> Mapping[str, Any]:
    return x if isinstance(x, Mapping) else {}


def _list(x: Any) -> list[Any]:
    if isinstance(x, (list, tuple)):
        return list(x)
    return [] if x is None or isinstance(x, Mapping) else [x]


def _strip0(s: str) -> str:
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def _pct(x: float) -> str:
    """Percent, whole except within 1 of 0 or 100 (then one decimal): 13, 3, 0.6, 99.4,
    0, 100."""
    v = x * 100
    if v not in (0.0, 100.0) and (abs(v) < 1 or 99 < v < 100):
        return _strip0(f"{v:.1f}")
    return _strip0(f"{v:.0f}")


def _secs(x: float) -> str:
    a = abs(x)
    return f"{x:.0f}" if a >= 100 else f"{x:.1f}" if a >= 10 else f"{x:.2f}"


def _plain(x: float) -> str:
    a = abs(x)
    return _strip0(f"{x:.0f}" if a >= 100 else f"{x:.1f}" if a >= 10 else f"{x:.2f}")


def _per1000(x: float) -> str:
    return f"{x:.0f}" if abs(x) >= 10 else _strip0(f"{x:.1f}")


_BARE = {"rate": _pct, "seconds": _secs, "ratio": lambda x: f"{x:.2f}", "plain": _plain,
         "per1000": _per1000}


def _int(x: Any) -> str:
    v = _fin(x)
    if v is None:
        return DASH
    return str(int(v)) if v == int(v) else _plain(v)


def format_interval(iv: Any, kind: str = "rate", lang: str = "en") -> str:
    """Plain text of an interval ``{"value", "lo", "hi", "n"}``: ``kind`` ``rate``
    (fractions shown as percent: "12% [5–27%], n=30"), ``seconds`` ("1.20 s [1.10–1.40 s],
    n=30"), ``ratio`` ("×1.35 [1.20–1.50], n=30"), ``per1000`` ("33 [5.9–167], n=30") or
    ``plain`` ("21.3 [18–24.9], n=30"). A missing or non-finite value is "–" ("–, n=0")."""
    iv = _map(iv)
    bare = _BARE.get(kind, _plain)
    value, lo, hi = _fin(iv.get("value")), _fin(iv.get("lo")), _fin(iv.get("hi"))
    n = iv.get("n")
    n_text = f", n={int(n)}" if _fin(n) is not None else ""
    if value is None:
        return DASH + n_text
    out = _unit(kind, bare(value), lang)
    if lo is not None or hi is not None:  # a side without a bound (too few answers) is "?"
        hi_text = "?" if hi is None else (
            _unit(kind, bare(hi), lang) if kind in ("rate", "seconds") else bare(hi))
        out += f" [{'?' if lo is None else bare(lo)}–{hi_text}]"
    return out + n_text


def _unit(kind: str, number: str, lang: str) -> str:
    key = {"rate": "unit_percent", "seconds": "unit_seconds", "ratio": "unit_times"}.get(kind)
    return text(lang, key, x=number) if key else number


def _value(x: Any) -> float | None:
    """An interval's value, or a bare number."""
    return _fin(x.get("value")) if isinstance(x, Mapping) else _fin(x)


def _sentinel(name: str) -> str:
    return f"\ue000{name}\ue001"


class _Page:
    """One rendering: the report, its language and the pieces of the page."""

    def __init__(self, report: Mapping[str, Any]):
        self.r = _map(report)
        self.lang = lang_of(self.r.get("lang"))
        self.methods = [m for m in _list(self.r.get("methods")) if isinstance(m, Mapping)]
        self.answers = [a for a in _list(self.r.get("answers")) if isinstance(a, Mapping)]
        self.policy = _map(self.r.get("policy"))
        self.fluency = _map(self.r.get("fluency"))
        self.limit = _fin(self.r.get("p95_limit_s"))
        # columns: the report's methods in order, then any method only the answers name
        self.columns: list[tuple[str, str]] = []
        seen: set[str] = set()
        for m in self.methods:
            key = clean(m.get("method"))
            if key not in seen:
                seen.add(key)
                self.columns.append((key, clean(m.get("label") or m.get("method") or DASH)))
        for a in self.answers:
            key = clean(a.get("method"))
            if key not in seen:
                seen.add(key)
                self.columns.append((key, key or DASH))
        self.by_key = {clean(m.get("method")): m for m in self.methods}

    # ---- text
    def t(self, key: str, **params: Any) -> str:
        """The message, filled and escaped (plain text: also fit for attributes)."""
        return esc(text(self.lang, key, **params))

    def h(self, key: str, **params: Any) -> str:
        """The message as HTML: each parameter escaped and bidi-isolated (``<bdi>``)."""
        filled = esc(text(self.lang, key, **{k: _sentinel(k) for k in params}))
        for k, v in params.items():
            filled = filled.replace(_sentinel(k), f"<bdi>{esc(v)}</bdi>")
        return filled

    def iv(self, x: Any, kind: str = "rate") -> str:
        return format_interval(x, kind, self.lang)

    def secs(self, x: Any) -> str:
        v = _fin(x)
        return DASH if v is None else _unit("seconds", _secs(v), self.lang)

    def num(self, x: Any) -> str:
        v = _fin(x)
        return DASH if v is None else _plain(v)

    def s(self, x: Any) -> str:
        """A report string for a placeholder ("–" when missing)."""
        return DASH if x is None or x == "" else clean(x)

    def duration(self, x: Any) -> str:
        v = _fin(x)
        if v is None or v < 0:
            return DASH
        total = int(round(v))
        if total < 60:
            return text(self.lang, "dur_s", s=total)
        if total < 3600:
            return text(self.lang, "dur_ms", m=total // 60, s=total % 60)
        return text(self.lang, "dur_hm", h=total // 3600, m=total % 3600 // 60)

    def label(self, key: str) -> str:
        return next((label for k, label in self.columns if k == key), key)

    # ---- sections
    def head(self) -> str:
        title = self.t("page_title", policy=self.s(self.policy.get("name")))
        return ("<!DOCTYPE html>\n"
                f'<html lang="{self.lang}">\n<head>\n<meta charset="utf-8">\n'
                f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">\n'
                '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
                '<meta name="referrer" content="no-referrer">\n'
                '<meta name="color-scheme" content="light">\n'
                f"<title>{title}</title>\n<style>{_CSS}</style>\n</head>\n")

    def header(self) -> str:
        subtitle = self.h("subtitle", model=self.s(self.r.get("model")),
                          policy=self.s(self.policy.get("name")),
                          created=self.s(self.r.get("created")))
        out = [f'<header><h1>{self.t("heading")}</h1><p class="sub">{subtitle}</p></header>']
        if not self.r.get("finished", True):
            out.append(f'<div id="partial" class="banner" role="status">'
                       f'<strong>{self.t("partial_banner")}</strong>'
                       f'{self.t("partial_detail")}</div>')
        return "".join(out)

    def verdict(self) -> str:
        rec = _map(self.r.get("recommendation"))
        verdict = rec.get("verdict")
        css, label_key, meaning_key = _VERDICTS.get(verdict if isinstance(verdict, str) else "",
                                                    ("verdict-unknown", "", "meaning_unknown"))
        label = self.t(label_key) if label_key else self.h("verdict_unknown",
                                                           verdict=self.s(verdict))

        def items(values: Any, tag: str) -> str:
            lis = "".join(f'<li class="u" dir="auto">{esc(v)}</li>' for v in _list(values)
                          if clean(v).strip())
            return f"<{tag}>{lis}</{tag}>" if lis else f'<p class="none">{self.t("none_given")}</p>'

        headline = rec.get("headline")
        return (f'<section id="verdict" class="verdict {css}" aria-labelledby="verdict-label">'
                f'<h2>{self.t("verdict_heading")}</h2>'
                f'<p id="verdict-label" class="verdict-label">{label}</p>'
                + (f'<p id="headline" class="headline u" dir="auto">{esc(headline)}</p>'
                   if headline else "")
                + f'<p class="meaning">{self.t(meaning_key)}</p>'
                f'<h3>{self.t("reasons_heading")}</h3>{items(rec.get("reasons"), "ul")}'
                f'<h3>{self.t("next_steps_heading")}</h3>{items(rec.get("next_steps"), "ol")}'
                "</section>")

    def intro(self) -> str:
        return (f'<section id="intro"><h2>{self.t("intro_heading")}</h2>'
                f'<p>{self.t("intro_methods")}</p><p>{self.t("intro_intervals")}</p></section>')

    def tested(self) -> str:
        p, prompts = self.policy, _map(self.r.get("prompts"))
        facts: list[tuple[str, str]] = []
        policy = (self.h("policy_text", name=self.s(p.get("name")), source=self.s(p.get("source")))
                  if p.get("source") else f"<bdi>{esc(self.s(p.get('name')))}</bdi>")
        facts.append((self.t("k_policy"), policy))
        judge = p.get("judge")
        facts.append((self.t("k_judge"), self.t(_JUDGES[judge]) if judge in _JUDGES
                      else self.h("judge_other", judge=self.s(judge))))
        rules = [r for r in _list(p.get("rules")) if isinstance(r, Mapping)]
        listed = "".join(f'<li><code>{esc(self.s(r.get("key")))}</code> '
                         f'<span class="u" dir="auto">{esc(r.get("description"))}</span></li>'
                         for r in rules)
        facts.append((self.t("k_rules"), f'<ul class="rules">{listed}</ul>' if rules
                      else f'<span class="none">{self.t("no_rules")}</span>'))
        fail_safe = _map(p.get("fail_safe"))
        if fail_safe:
            facts.append((self.t("k_fail_safe"), self.h(
                "fail_safe_text", action=self.s(fail_safe.get("action")),
                threshold=self.num(fail_safe.get("threshold")))))
            if fail_safe.get("refusal_message"):
                facts.append((self.t("k_refusal"), f'<blockquote class="u" dir="auto">'
                              f'{esc(fail_safe.get("refusal_message"))}</blockquote>'))
        facts.append((self.t("k_prompts"), self.h(
            "prompts_text", sample=_int(prompts.get("sample")),
            available=_int(prompts.get("available")), source=self.s(prompts.get("source")),
            seed=_int(prompts.get("seed")), max_new_tokens=_int(prompts.get("max_new_tokens")))))
        facts.append((self.t("k_model"), self.h("model_text", model=self.s(self.r.get("model")),
                                                backend=self.s(self.r.get("backend")))))
        facts.append((self.t("k_machine"), f"<bdi>{esc(self.s(self.r.get('machine')))}</bdi>"))
        facts.append((self.t("k_p95_limit"), self.h("p95_limit_text",
                                                    limit=self.secs(self.limit))))
        facts.append((self.t("k_budget"), self.budget()))
        fl = self.fluency
        facts.append((self.t("k_fluency"), self.h(
            "fluency_text", measure=self.s(fl.get("measure")),
            threshold=self.num(fl.get("fluent_below")),
            median=self.num(fl.get("greedy_median_nll")), margin=self.num(fl.get("margin_nats")))))
        run = self.h("run_text", created=self.s(self.r.get("created")),
                     duration=self.duration(_map(self.r.get("timing")).get("seconds")))
        if not self.r.get("finished", True):
            run += f' <span class="badge b-bad">{self.t("run_unfinished")}</span>'
        facts.append((self.t("k_run"), run))
        body = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
        return (f'<section id="tested"><h2>{self.t("tested_heading")}</h2>'
                f'<dl class="facts">{body}</dl></section>')

    def budget(self) -> str:
        b = _map(self.r.get("budget"))
        lines = []
        for key, method in (("rain", "rain"), ("best_of_n", "best-of-n")):
            part = _map(b.get(key))
            if not part:
                continue
            met = part.get("met")
            badge = ("" if met is None else
                     f' <span class="badge {"b-ok" if met else "b-bad"}">'
                     f'{self.t("budget_met" if met else "budget_not_met")}</span>')
            line = self.h("budget_text", method=self.label(method),
                          budget=self.secs(part.get("time_budget_s")))
            lines.append(f"<div>{line}{badge}</div>")
        tries = [t for t in _list(_map(b.get("rain")).get("tries")) if isinstance(t, Mapping)]
        if tries:
            rows = "".join(
                f'<tr><td class="num">{esc(self.secs(t.get("time_budget_s")))}</td>'
                f'<td class="num{" over" if self._over(t.get("p95_s")) else ""}">'
                f'{esc(self.secs(t.get("p95_s")))}</td>'
                f'<td class="num">{esc(_int(t.get("n")))}</td></tr>' for t in tries)
            lines.append(f'<table class="tries"><caption class="desc">{self.t("tries_caption")}'
                         f'</caption><thead><tr><th scope="col">{self.t("th_try_budget")}</th>'
                         f'<th scope="col">{self.t("th_try_p95")}</th><th scope="col">'
                         f'{self.t("th_try_n")}</th></tr></thead><tbody>{rows}</tbody></table>')
        return "".join(lines) or DASH

    def _over(self, seconds: Any) -> bool:
        v = _value(seconds)
        return v is not None and self.limit is not None and v > self.limit

    def results(self) -> str:
        head = f'<section id="results"><h2>{self.t("results_heading")}</h2>'
        if not self.methods:
            return head + f'<p class="none">{self.t("no_methods")}</p></section>'
        threshold = self.num(self.fluency.get("fluent_below"))
        action = next((clean(m.get("action")) for m in self.methods if m.get("action")), DASH)
        rows: list[tuple[str, str, str, Any]] = [
            ("m_violation", self.t("d_violation"), "violation_rate", "rate"),
            ("m_fluent", self.t("d_fluent", threshold=threshold), "fluent_rate", "rate"),
            ("m_kept_fluent", self.t("d_kept_fluent"), "kept_and_fluent_rate", "rate"),
            ("m_nll", self.t("d_nll"), "nll_median", "bare"),
            ("m_p50", self.t("d_p50"), "latency_p50_s", "seconds"),
            ("m_p95", self.t("d_p95", limit=self.secs(self.limit)), "latency_p95_s", "seconds"),
            ("m_tokens", self.t("d_tokens"), "token_ratio", "ratio"),
            ("m_judged", self.t("d_judged"), "judged_texts", "plain"),
        ]
        if any(m.get("judge_tokens_ratio") is not None for m in self.methods):
            rows.append(("m_judge_tokens", self.t("d_judge_tokens"), "judge_tokens_ratio", "ratio"))
        rows.append(("m_review", self.t("d_review", action=action), "review_per_1000", "per1000"))
        rows.append(("m_budget_limited", self.t("d_budget_limited"), "budget_limited", "count"))
        if any("unsearched" in m for m in self.methods):
            rows.append(("m_unsearched", self.t("d_unsearched"), "unsearched", "count"))
        rows.append(("m_errors", self.t("d_errors"), "errors", "count"))

        cols = "".join(
            f'<th scope="col"><bdi>{esc(self.s(m.get("label") or m.get("method")))}</bdi>'
            f'<span class="desc"><bdi>{esc(self.s(m.get("method")))}</bdi> · '
            f'n={esc(_int(m.get("n")))}</span></th>' for m in self.methods)
        body = []
        for key, desc, field, kind in rows:
            cells = []
            for m in self.methods:
                value = m.get(field)
                css = "num"
                if kind == "bare":
                    shown = self.num(value)
                elif kind == "count":
                    shown = (DASH if _fin(value) is None else
                             text(self.lang, "count_of", count=_int(value), n=_int(m.get("n"))))
                else:
                    shown = self.iv(value, kind)
                extra = ""
                if field == "latency_p95_s" and self._over(value):
                    css += " over"
                    extra = f' <span class="over">({self.t("over_limit")})</span>'
                cells.append(f'<td class="{css}">{esc(shown)}{extra}</td>')
            body.append(f'<tr data-measure="{esc(field)}"><th scope="row">{self.t(key)}'
                        f'<span class="desc">{desc}</span></th>{"".join(cells)}</tr>')
        return (head + '<div class="scroll"><table id="method-table"><thead><tr>'
                f'<th scope="col">{self.t("th_measure")}</th>{cols}</tr></thead>'
                f'<tbody>{"".join(body)}</tbody></table></div>{self.differences()}</section>')

    def differences(self) -> str:
        """``report["differences"]`` (optional): ``{"A_minus_B": interval}`` of the
        kept-and-fluent rate, paired over prompts, in percentage points."""
        diffs = _map(self.r.get("differences"))
        rows = []
        for name, iv in diffs.items():
            a, sep, b = clean(name).partition("_minus_")
            if not sep or not isinstance(iv, Mapping):
                continue
            rows.append(f"<dt>{self.h('diff_row', a=self.label(a), b=self.label(b))}</dt>"
                        f"<dd>{esc(self.points(iv))}</dd>")
        if not rows:
            return ""
        return (f'<div id="differences"><h3>{self.t("diff_heading")}</h3>'
                f'<dl class="facts">{"".join(rows)}</dl>'
                f'<p class="desc">{self.t("diff_desc")}</p></div>')

    def points(self, iv: Mapping[str, Any]) -> str:
        """A difference of rates in signed percentage points: "+13 points [−3 to +23]"."""
        value, lo, hi, n = (_fin(iv.get(k)) for k in ("value", "lo", "hi", "n"))
        if value is None:
            return DASH + ("" if n is None else f", n={int(n)}")

        def signed(x: float | None) -> str:
            if x is None:
                return DASH
            shown = _strip0(f"{abs(x) * 100:.1f}" if abs(x) < 0.1 else f"{abs(x) * 100:.0f}")
            return shown if shown == "0" else ("+" if x > 0 else "−") + shown

        return text(self.lang, "diff_value", value=signed(value), lo=signed(lo),
                    hi=signed(hi), n=DASH if n is None else int(n))

    def judge(self) -> str:
        head = f'<section id="judge"><h2>{self.t("judge_heading")}</h2>'
        jr = self.r.get("judge_reliability")
        if not isinstance(jr, Mapping):
            return head + f'<p class="none">{self.t("judge_not_measured")}</p></section>'
        intro = self.h("judge_intro", rubric=self.s(jr.get("rubric")),
                       answers=_int(jr.get("answers")))
        out = [head, f"<p>{intro}</p>"]
        facts = [(self.t("j_agreement"), self.iv(jr.get("agreement"))),
                 (self.t("j_ok_when_break"), self.iv(jr.get("model_says_ok_when_rules_break"))),
                 (self.t("j_bad_when_hold"), self.iv(jr.get("model_says_bad_when_rules_hold")))]
        out.append('<dl class="facts">'
                   + "".join(f"<dt>{k}</dt><dd>{esc(v)}</dd>" for k, v in facts) + "</dl>")
        if jr.get("verdict"):
            out.append(f'<p class="judge-verdict u" dir="auto">{esc(jr.get("verdict"))}</p>')
        pairs = jr.get("pairs")
        if isinstance(pairs, Mapping):
            accuracy = _map(pairs.get("accuracy"))
            if _fin(accuracy.get("n")) is None and _fin(pairs.get("pairs")) is not None:
                accuracy = {**accuracy, "n": pairs.get("pairs")}
            out.append(f'<dl class="facts"><dt>{self.t("j_pairs")}</dt><dd>'
                       f'{esc(self.iv(accuracy))}</dd></dl>')
            if pairs.get("verdict"):
                out.append(f'<p class="judge-verdict u" dir="auto">{esc(pairs.get("verdict"))}</p>')
        out.append("</section>")
        return "".join(out)

    # ---- charts
    def _answers_of(self, key: str) -> list[Mapping[str, Any]]:
        return [a for a in self.answers if clean(a.get("method")) == key]

    def charts(self) -> str:
        return (f'<section id="charts"><h2>{self.t("charts_heading")}</h2>'
                f"{self.latency_chart()}{self.fluency_chart()}</section>")

    def latency_chart(self) -> str:
        lang = self.lang
        styles = {"answer": Style(text(lang, "legend_answer"), "#0072B2"),
                  "limited": Style(text(lang, "legend_budget_limited"), "#C77800", "ring"),
                  "error": Style(text(lang, "legend_error"), "#B3261E", "cross")}
        rows, described = [], []
        for key, label in self.columns:
            points = []
            for a in self._answers_of(key):
                x = _fin(a.get("latency_s"))
                x = _fin(a.get("seconds")) if x is None else x
                kind = ("error" if a.get("error") else
                        "limited" if a.get("budget_limited") else "answer")
                if x is not None:
                    points.append((x, kind))
            m = _map(self.by_key.get(key))
            rows.append(Row(label, points, _value(m.get("latency_p95_s"))))
            described.append(text(lang, "chart_latency_row", method=label, n=len(points),
                                  p50=self.secs(_value(m.get("latency_p50_s"))),
                                  p95=self.secs(_value(m.get("latency_p95_s")))))
        limit = self.secs(self.limit)
        desc = text(lang, "chart_latency_desc", limit=limit,
                    rows=text(lang, "row_sep").join(described) or DASH)
        title = text(lang, "chart_latency_title")
        svg = strip_plot(chart_id="chart-latency", title=title, desc=desc,
                         x_label=text(lang, "chart_latency_x"), y_label=text(lang, "axis_method"),
                         rows=rows, styles=styles, empty=text(lang, "chart_no_answers"),
                         line=self.limit, line_label=text(lang, "legend_p95_limit", limit=limit),
                         mark_label=text(lang, "legend_p95_measured"))
        return (f'<figure id="figure-latency">{svg}<figcaption class="u">{esc(desc)}'
                "</figcaption></figure>")

    def fluency_chart(self) -> str:
        lang = self.lang
        styles = {"kept": Style(text(lang, "legend_kept"), "#009E73"),
                  "broken": Style(text(lang, "legend_broken"), "#D55E00", "cross")}
        threshold = _fin(self.fluency.get("fluent_below"))
        rows, described, missing = [], [], 0
        for key, label in self.columns:
            points, kept, fluent, n = [], 0, 0, 0
            for a in self._answers_of(key):
                if a.get("error"):
                    continue
                n += 1
                kept += bool(a.get("kept"))
                fluent += bool(a.get("fluent"))
                x = _fin(a.get("nll"))
                if x is None:
                    missing += 1
                else:
                    points.append((x, "kept" if a.get("kept") else "broken"))
            m = _map(self.by_key.get(key))
            rows.append(Row(label, points, _fin(m.get("nll_median"))))
            described.append(text(lang, "chart_fluency_row", method=label, kept=kept,
                                  fluent=fluent, n=n))
        shown = self.num(threshold)
        desc = text(lang, "chart_fluency_desc", threshold=shown, missing=missing,
                    rows=text(lang, "row_sep").join(described) or DASH)
        title = text(lang, "chart_fluency_title")
        svg = strip_plot(chart_id="chart-fluency", title=title, desc=desc,
                         x_label=text(lang, "chart_fluency_x"), y_label=text(lang, "axis_method"),
                         rows=rows, styles=styles, empty=text(lang, "chart_no_answers"),
                         line=threshold, line_colour="#7a4d00", shade_right_of_line=True,
                         line_label=text(lang, "legend_fluent_below", threshold=shown),
                         mark_label=text(lang, "legend_nll_median"))
        return (f'<figure id="figure-fluency">{svg}<figcaption class="u">{esc(desc)}'
                "</figcaption></figure>")

    # ---- samples
    def samples(self) -> str:
        head = (f'<section id="samples"><h2>{self.t("samples_heading")}</h2>'
                f'<p>{self.t("samples_intro")}</p>')
        ids = [clean(i) for i in _list(self.r.get("samples")) if i is not None]
        if "samples" not in self.r:
            ids = list(dict.fromkeys(clean(a.get("item_id")) for a in self.answers))
            ids = ids[:_SAMPLE_FALLBACK]
        if not ids or not self.columns:
            return head + f'<p class="none">{self.t("no_samples")}</p></section>'
        index: dict[tuple[str, str], Mapping[str, Any]] = {}
        prompts: dict[str, Any] = {}
        for a in self.answers:
            item, method = clean(a.get("item_id")), clean(a.get("method"))
            index.setdefault((item, method), a)
            prompts.setdefault(item, a.get("prompt"))
        cols = "".join(f'<th scope="col"><bdi>{esc(label)}</bdi></th>' for _, label in self.columns)
        bodies = []
        for item in dict.fromkeys(ids):
            prompt = prompts.get(item)
            cells = "".join(self.answer_cell(index.get((item, key))) for key, _ in self.columns)
            bodies.append(
                f'<tbody class="item"><tr><th class="prompt" colspan="{len(self.columns)}" '
                f'scope="colgroup"><span class="item">{self.h("prompt_label", item=item)}</span>'
                f'<div class="u" dir="auto">{esc(prompt) if prompt is not None else DASH}</div>'
                f"</th></tr><tr>{cells}</tr></tbody>")
        return (head + '<div class="scroll"><table id="sample-table" class="samples">'
                f'<thead><tr>{cols}</tr></thead>{"".join(bodies)}</table></div></section>')

    def answer_cell(self, a: Mapping[str, Any] | None) -> str:
        if a is None:
            return f'<td class="answer-cell"><p class="none">{self.t("no_answer")}</p></td>'
        badges, after = [], ""
        broken = [clean(b) for b in _list(a.get("broken"))]
        if a.get("error"):  # a failed answer: nothing was judged
            badges.append(f'<span class="badge b-error">{self.t("b_error")}</span>')
            after = f'<div class="error-text u" dir="auto">{esc(a.get("error"))}</div>'
        elif a.get("kept") and not broken:
            badges.append(f'<span class="badge b-kept">{self.t("b_kept")}</span>')
        elif broken or a.get("kept") is False:
            rules = text(self.lang, "list_sep").join(broken) or DASH
            badges.append(f'<span class="badge b-broken">{self.h("b_broken", rules=rules)}</span>')
        nll = _fin(a.get("nll"))
        nll_text = (self.t("b_nll", nll=_plain(nll)) if nll is not None
                    else self.t("b_nll_unknown"))
        if a.get("error"):
            pass
        elif a.get("fluent") is not None:
            css, key = (("b-fluent", "b_fluent") if a.get("fluent")
                        else ("b-notfluent", "b_not_fluent"))
            badges.append(f'<span class="badge {css}">{self.t(key)} · {nll_text}</span>')
        else:
            badges.append(f'<span class="badge">{nll_text}</span>')
        seconds = _fin(a.get("latency_s"))
        seconds = _fin(a.get("seconds")) if seconds is None else seconds
        if seconds is not None:
            over = " over" if self.limit is not None and seconds > self.limit else ""
            badges.append(f'<span class="badge{over}">{esc(self.secs(seconds))}</span>')
        if a.get("budget_limited"):
            badges.append(f'<span class="badge b-limited">{self.t("b_budget_limited")}</span>')
        if a.get("unsearched"):
            badges.append(f'<span class="badge b-unsearched">{self.t("b_unsearched")}</span>')
        listed = "".join(f'<li class="u" dir="auto">{esc(b)}</li>' for b in broken)
        rules = f'<ul class="broken-rules">{listed}</ul>' if listed else ""
        answer = a.get("text")
        if answer is not None and clean(answer).strip():
            body = f'<div class="answer u" dir="auto">{esc(answer)}</div>'
        else:  # a failed answer has no text: its error says why
            body = "" if a.get("error") else (
                f'<div class="answer empty">{self.t("empty_answer")}</div>')
        return (f'<td class="answer-cell"><div class="badges">{"".join(badges)}</div>'
                f"{rules}{after}{body}</td>")

    def glossary(self) -> str:
        terms = ("greedy", "bon", "rain", "violation", "fluent", "p95", "interval",
                 "budget_limited", "unsearched", "review", "distillation")
        body = "".join(f'<dt>{self.t("term_" + k)}</dt><dd>{self.t("def_" + k)}</dd>'
                       for k in terms)
        return (f'<section id="glossary"><details class="glossary" open><summary>'
                f'{self.t("glossary_heading")}</summary><dl class="facts">{body}</dl>'
                "</details></section>")

    def footer(self) -> str:
        return f'<footer>{self.h("footer", schema=self.s(self.r.get("schema")))}</footer>'

    def render(self) -> str:
        body = "".join((self.header(), self.verdict(), self.intro(), self.tested(),
                        self.results(), self.judge(), self.charts(), self.samples(),
                        self.glossary(), self.footer()))
        return f"{self.head()}<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"


def render_pilot_page(report: Mapping[str, Any]) -> str:
    """The pilot report ``report`` (schema ``rainlm.pilot/1``) as one self-contained HTML
    page, in ``report["lang"]`` (``en`` or ``ja``; anything else: English)."""
    return _Page(report).render()


def write_pilot_page(report: Mapping[str, Any], path: str | Path) -> Path:
    """Render ``report`` and write it to ``path`` (UTF-8); returns the path."""
    path = Path(path)
    path.write_text(render_pilot_page(report), encoding="utf-8")
    return path
