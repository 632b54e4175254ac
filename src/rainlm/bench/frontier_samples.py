"""Sample answers of a frontier report: what the numbers look like.

For the first prompts of each task (file order), one answer per method family: the
family's largest budget under the exact judge (p = 1, or no judge), with its verdicts
(kept or broke the rule, fluent or not), NLL and share of dictionary words. Answers are
model output: escaped before they go into Markdown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["SAMPLE_CHARS", "SAMPLE_PROMPTS", "md_escape", "render_samples", "sample_answers"]

SAMPLE_PROMPTS = 2
"""Prompts per task whose answers the report shows."""
SAMPLE_CHARS = 400
"""Characters of an answer shown (the rest cut, marked "…")."""


def sample_answers(records: Sequence[Mapping[str, Any]], *, prompts: int = SAMPLE_PROMPTS
                   ) -> list[dict[str, Any]]:
    """The first ``prompts`` prompts of each task (in file order) with one answer per
    method family: the family's largest budget under the exact judge (p = 1, or no
    judge). One dict per (task, prompt): ``task``, ``item_id``, ``prompt``, ``answers``
    (a list of records)."""
    ok = [r for r in records if not r.get("error")]
    out = []
    for task in sorted({r["task"] for r in ok}):
        recs = [r for r in ok if r["task"] == task and r.get("noise") in (None, 1.0)]
        firsts = list(dict.fromkeys(r["item_id"] for r in recs if r["method"] == "greedy"))
        for item_id in firsts[:prompts]:
            best: dict[str, Mapping[str, Any]] = {}
            for r in recs:
                if r["item_id"] != item_id:
                    continue
                have = best.get(r["family"])
                if have is None or (r.get("budget") or 0) > (have.get("budget") or 0):
                    best[r["family"]] = r
            answers = sorted(best.values(), key=lambda r: family_order(r["family"]))
            out.append({"task": task, "item_id": item_id, "prompt": answers[0]["prompt"],
                        "answers": answers})
    return out


def md_escape(text: str, limit: int = SAMPLE_CHARS) -> str:
    """``text`` safe inside a Markdown line: HTML's <, > and & escaped, Markdown's
    emphasis, code, link, table and heading marks backslash-escaped, line breaks shown
    as ⏎, cut at ``limit`` characters."""
    text = text if len(text) <= limit else text[:limit] + "…"
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = "".join("\\" + c if c in "\\`*_[]|#~" else c for c in text)
    lines = " ⏎ ".join(line.strip() for line in text.strip().splitlines())
    return lines.replace("⏎  ⏎", "⏎ ⏎")


def render_samples(samples: Sequence[Mapping[str, Any]]) -> list[str]:
    """Markdown lines of :func:`sample_answers`."""
    if not samples:
        return []
    out = ["## Sample answers", "",
           "The first prompts of each task, one answer per method family at its largest "
           "budget under the exact judge (p = 1): kept or broke the rule, fluent or not, "
           "NLL per token and the share of dictionary words.", ""]
    for s in samples:
        out += [f"### {s['task']} · {md_escape(s['item_id'])}", "",
                f"> {md_escape(s['prompt'])}", ""]
        for r in s["answers"]:
            verdict = "–" if r.get("failed") is None else ("broke the rule" if r["failed"]
                                                           else "kept")
            fluent = {None: "fluency –", True: "fluent", False: "not fluent"}[r.get("fluent")]
            out.append(f"- **{md_escape(r['method'])}** ({verdict}, {fluent}, NLL "
                       f"{_num(r.get('nll'))}, known words {_num(r.get('known_words'), '.0%')}): "
                       f"{md_escape(r.get('text') or '') or '*(empty)*'}")
        out.append("")
    return out


def family_order(family: str) -> tuple[int, str]:
    """Families in report order: greedy, sampled, best-of-N, best-until-N, ARGS, RAIN."""
    order = {"greedy": 0, "sampled": 1, "args": 4}
    if family.startswith("best-of-n"):
        return 2, family
    if family.startswith("best-until-n"):
        return 3, family
    return order.get(family, 5), family


def _num(value: float | None, fmt: str = ".2f") -> str:
    return "–" if value is None else format(value, fmt)
