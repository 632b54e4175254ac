"""Candidate preference pairs from answers: RAIN against greedy, and reviewers' decisions.

- **rain-vs-greedy**: every RAIN answer against the greedy answer of its group (same
  source, model and prompt; same judge where values come from that judge). The margin
  is RAIN's value minus greedy's on the judges' [-1, 1] scale: for a frontier file's exact
  rule it is 2 when RAIN keeps the rule and greedy breaks it, 0 for the same verdict and
  -2 the other way round.
- **review**: on one prompt (any source, any model), every answer a reviewer approved
  against every answer a reviewer rejected; margin 2 (``FULL_MARGIN``), judge "review".
- **review-refusal**: an answer the server's policy replaced by its refusal message,
  where a reviewer approved the record: the refusal (what the reviewer approved) against
  the model's answer; margin 2, judge "review". (Today's server queues only flagged
  answers for review, so such records come from databases written otherwise.)

A candidate that cannot be compared is still returned, with the reason in ``problem``,
so that the export's summary can count it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from rainlm.distill.answers import FULL_MARGIN, Answer, Message

__all__ = ["Pair", "build_pairs", "REVIEW_JUDGE"]

REVIEW_JUDGE = "review"
"""The judge name of pairs a reviewer decided (``--judge review`` keeps only those)."""


@dataclass(frozen=True)
class Pair:
    """A candidate preference pair: ``chosen`` preferred to ``rejected`` after ``prompt``."""

    kind: str
    """"rain-vs-greedy", "review" or "review-refusal"."""
    prompt: tuple[Message, ...]
    """The prompt as chat messages."""
    chat: bool
    """The source held a chat (written as chat messages in every format)."""
    chosen: str
    """The preferred answer."""
    rejected: str
    """The other answer ("" when there is none: see ``problem``)."""
    margin: float | None
    """How much the evaluator prefers ``chosen``, on the [-1, 1] scale's differences
    (up to 2); None when it cannot say."""
    judge: str | None
    """The judge of the pair: the RAIN answer's judge, or "review"."""
    answers: tuple[Answer, ...]
    """The answers it was built from, chosen's first."""
    problem: str | None = None
    """Why it cannot be a pair ("error", "no greedy answer", "no opposite review",
    "unjudged"); None when it can."""

    @property
    def source(self) -> str:
        """Where the chosen answer came from."""
        return self.answers[0].source

    @property
    def rejected_source(self) -> str:
        """Where the rejected answer came from ("" for a pair with a problem)."""
        return self.answers[-1].source if self.problem is None else ""


def build_pairs(answers: Sequence[Answer]) -> list[Pair]:
    """Every candidate pair of ``answers``: RAIN against greedy in the order RAIN's answers
    were read, then reviewers' pairs."""
    return [*_rain_vs_greedy(answers), *_reviewed(answers)]


def _rain_vs_greedy(answers: Sequence[Answer]) -> list[Pair]:
    greedy: dict[tuple[str, ...], Answer] = {}
    for a in answers:
        # the last greedy answer of a group, a successful one over a failed one
        if a.kind == "greedy" and (a.error is None or a.group not in greedy
                                   or greedy[a.group].error is not None):
            greedy[a.group] = a
    out = []
    for a in answers:
        if a.kind != "rain":
            continue
        g = greedy.get(a.group)
        if a.error:
            out.append(_pair("rain-vs-greedy", a, g, a.text, g.text if g else "", None, a.judge,
                             "error"))
            continue
        if g is None:
            out.append(_pair("rain-vs-greedy", a, None, a.text, "", None, a.judge,
                             "no greedy answer"))
            continue
        problem = ("error" if g.error else
                   "unjudged" if a.value is None or g.value is None else None)
        margin = None if problem else a.value - g.value  # type: ignore[operator]
        out.append(_pair("rain-vs-greedy", a, g, a.text, g.text, margin, a.judge, problem))
    return out


def _reviewed(answers: Sequence[Answer]) -> list[Pair]:
    by_prompt: dict[str, dict[str, list[Answer]]] = defaultdict(lambda: defaultdict(list))
    out = []
    for a in answers:
        if a.review is None or a.error:
            continue
        if a.review == "approved" and a.replaced_by is not None:
            out.append(_pair("review-refusal", a, a, a.replaced_by, a.text, FULL_MARGIN,
                             REVIEW_JUDGE, None))
            continue
        by_prompt[a.prompt_key][a.review].append(a)
    for decided in by_prompt.values():
        approved, rejected = decided["approved"], decided["rejected"]
        for a in approved:
            for r in rejected:
                out.append(_pair("review", a, r, a.text, r.text, FULL_MARGIN, REVIEW_JUDGE,
                                 None))
        if not (approved and rejected):
            for a in approved + rejected:
                out.append(_pair("review", a, None, a.text, "", None, REVIEW_JUDGE,
                                 "no opposite review"))
    return out


def _pair(kind: str, chosen: Answer, other: Answer | None, chosen_text: str,
          rejected_text: str, margin: float | None, judge: str | None,
          problem: str | None) -> Pair:
    answers = (chosen,) if other is None or other is chosen else (chosen, other)
    return Pair(kind=kind, prompt=chosen.prompt, chat=chosen.chat or bool(other and other.chat),
                chosen=chosen_text, rejected=rejected_text, margin=margin, judge=judge,
                answers=answers, problem=problem)
