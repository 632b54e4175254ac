"""Preference pairs for distillation: read the sources, build the candidate pairs, keep
those the filters let through, and count why the others were dropped.

Each candidate is dropped for the first of these reasons that applies (``DROP_REASONS``):

- ``error``: the RAIN or greedy answer failed;
- ``judge``: its judge is not one of ``judges`` (when given);
- ``no greedy answer``: no greedy answer to the same prompt in the same source (counted
  per RAIN answer);
- ``no opposite review``: a reviewed answer with no opposite decision on the same prompt
  (counted per reviewed answer; it may still be paired against greedy);
- ``unjudged``: an answer has no value (no judge verdict or score);
- ``rejected in review``: a reviewer rejected the RAIN answer;
- ``budget-limited``: a search budget ran out on an answer (cut off or finished
  greedily), unless ``include_budget_limited``;
- ``empty answer``: the chosen or the rejected answer is empty (training refuses it);
- ``control-token text``: the prompt or an answer holds a chat format's control-token
  string (``<|im_end|>``, ``<start_of_turn>``, ``[INST]``...; ``CONTROL_TEXT``):
  training tools would read it as a control token, so a user could plant a forged
  turn (a system message) in the training data;
- ``identical answers``: chosen and rejected are the same text;
- ``not preferred``: margin <= 0 (the evaluator does not prefer RAIN's answer);
- ``below min margin``: 0 < margin < ``min_margin``;
- ``duplicate prompt``: another pair for the same prompt was kept (one per prompt unless
  ``all_per_prompt``; the pair kept is the one with the largest margin, reviewers'
  decisions first among equals, then the first read);
- ``duplicate pair``: with ``all_per_prompt``, the same prompt, chosen and rejected
  were already kept (the same answers in two files).

Answers of methods that are never paired (best-of-n, sampling, ARGS) are counted apart,
per method, as ``ignored``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rainlm.backends.chat_template import CONTROL_TEXT
from rainlm.distill.answers import FULL_MARGIN, Answer
from rainlm.distill.pairs import Pair, build_pairs
from rainlm.distill.sources import SourceSummary, read_sources
from rainlm.errors import ConfigError

__all__ = ["DROP_REASONS", "ExportOptions", "ExportResult", "export_pairs", "judge_matches",
           "select_pairs"]

DROP_REASONS = ("error", "judge", "no greedy answer", "no opposite review", "unjudged",
                "rejected in review", "budget-limited", "empty answer", "control-token text",
                "identical answers", "not preferred", "below min margin", "duplicate prompt",
                "duplicate pair")
"""Why a candidate pair was dropped, in the order the checks run."""

KIND_ORDER = {"review": 0, "review-refusal": 1, "rain-vs-greedy": 2}
"""Among pairs of equal margin for one prompt, reviewers' decisions are kept first."""


@dataclass(frozen=True)
class ExportOptions:
    """The filters of an export."""

    min_margin: float = 0.1
    """Keep a pair only when the evaluator prefers the chosen answer by at least this
    much (and by more than 0), in [0, 2]. Exact rules and reviewers' decisions have
    margin 2; self-evaluation and synthetic judges' margins are differences of values."""
    judges: tuple[str, ...] = ()
    """Keep only pairs judged by one of these (empty: every judge). A name without "@"
    matches every accuracy of that judge ("banned-words" matches "banned-words@0.8")."""
    include_budget_limited: bool = False
    """Keep pairs whose answers a search budget ended (excluded by default)."""
    all_per_prompt: bool = False
    """Keep every pair of a prompt, not only the best one."""

    def __post_init__(self) -> None:
        if (isinstance(self.min_margin, bool) or not isinstance(self.min_margin, (int, float))
                or not 0.0 <= self.min_margin <= FULL_MARGIN):
            raise ConfigError("min_margin", f"must be a number in [0, {FULL_MARGIN:g}], got "
                                            f"{self.min_margin!r}")
        if any(not isinstance(j, str) or not j.strip() for j in self.judges):
            raise ConfigError("judges", f"must be non-empty names, got {self.judges!r}")


@dataclass
class ExportResult:
    """The pairs kept, and what happened to the rest."""

    pairs: list[Pair]
    """The pairs kept, in candidate order (``build_pairs``)."""
    candidates: int
    """Candidate pairs considered (kept + dropped)."""
    dropped: dict[str, int]
    """Candidates dropped per reason (reasons of ``DROP_REASONS`` that occurred, in order)."""
    ignored: dict[str, int]
    """Answers of methods that are never paired, per method."""
    judges: dict[str, int]
    """Candidates per judge name (what ``--judge`` can select)."""
    answers: int = 0
    """Answers read."""
    sources: list[SourceSummary] = field(default_factory=list)
    """What each source held."""

    def summary(self, options: ExportOptions | None = None) -> dict[str, Any]:
        """The counts (and the filters, when given) as a JSON-ready dict."""
        out: dict[str, Any] = {
            "sources": [{"path": str(s.path), "kind": s.kind, "answers": s.answers,
                         "skipped": dict(s.skipped)} for s in self.sources],
            "answers": self.answers, "candidates": self.candidates, "kept": len(self.pairs),
            "kept_by_kind": dict(Counter(p.kind for p in self.pairs)),
            "dropped": dict(self.dropped), "ignored": dict(self.ignored)}
        if options is not None:
            out["options"] = asdict(options)
        return out


def judge_matches(spec: str, name: str | None) -> bool:
    """``name`` is ``spec``, or ``spec`` has no "@" and is ``name`` without its "@P"."""
    if name is None:
        return False
    return name == spec or ("@" not in spec and name.split("@", 1)[0] == spec)


def export_pairs(sources: Iterable[str | Path], options: ExportOptions | None = None
                 ) -> ExportResult:
    """Read ``sources`` (bench results files and audit databases) and select the pairs."""
    answers, summaries = read_sources(sources)
    result = select_pairs(answers, options or ExportOptions())
    result.sources = summaries
    return result


def select_pairs(answers: Sequence[Answer], options: ExportOptions) -> ExportResult:
    """The candidate pairs of ``answers`` that pass ``options``' filters."""
    candidates = build_pairs(answers)
    dropped: Counter[str] = Counter()
    passing: list[tuple[int, Pair]] = []
    for i, pair in enumerate(candidates):
        reason = _drop_reason(pair, options)
        if reason is None:
            passing.append((i, pair))
        else:
            dropped[reason] += 1
    kept: list[tuple[int, Pair]] = []
    seen: set[object] = set()
    for i, pair in sorted(passing, key=lambda ip: (-(ip[1].margin or 0.0),
                                                  KIND_ORDER.get(ip[1].kind, 9), ip[0])):
        key: object = (pair.answers[0].prompt_key if not options.all_per_prompt else
                       (pair.answers[0].prompt_key, pair.chosen, pair.rejected))
        if key in seen:
            dropped["duplicate pair" if options.all_per_prompt else "duplicate prompt"] += 1
            continue
        seen.add(key)
        kept.append((i, pair))
    kept.sort(key=lambda ip: ip[0])
    ignored = Counter(a.method for a in answers if a.kind == "other")
    return ExportResult(
        pairs=[p for _, p in kept], candidates=len(candidates),
        dropped={r: dropped[r] for r in DROP_REASONS if dropped[r]},
        ignored=dict(sorted(ignored.items())),
        judges=dict(sorted(Counter(str(p.judge) for p in candidates).items())),
        answers=len(answers))


def holds_control_text(pair: Pair) -> bool:
    """Whether the pair's prompt or answers hold a control-token string."""
    texts = [pair.chosen, pair.rejected, *(str(m.get("content", "")) for m in pair.prompt)]
    return any(CONTROL_TEXT.search(t) for t in texts)


def _drop_reason(pair: Pair, options: ExportOptions) -> str | None:
    """The first reason ``pair`` is dropped, or None when it is kept (so far)."""
    if pair.problem == "error":
        return "error"
    if options.judges and not any(judge_matches(j, pair.judge) for j in options.judges):
        return "judge"
    if pair.problem is not None:
        return pair.problem
    if pair.kind == "rain-vs-greedy" and pair.answers[0].review == "rejected":
        return "rejected in review"
    if not options.include_budget_limited and any(a.budget_limited for a in pair.answers):
        return "budget-limited"
    if not pair.chosen.strip() or not pair.rejected.strip():
        return "empty answer"  # (training refuses an empty side)
    if holds_control_text(pair):
        return "control-token text"
    if pair.chosen.strip() == pair.rejected.strip():
        return "identical answers"
    margin = pair.margin if pair.margin is not None else 0.0
    if margin <= 0:
        return "not preferred"
    if margin < options.min_margin - 1e-9:  # 0.3 - 0.2 is a margin of 0.1
        return "below min margin"
    return None
