"""Fluency fields of a frontier record: is the answer still an answer?

A method can keep a rule by breaking the answer (issue 27). Every frontier answer,
greedy's included, is scored after its method is done (outside its seconds and tokens
encoded) on two scales:

- ``nll``: the model's mean negative log-likelihood per token of the answer's own token
  ids given the prompt (:func:`rainlm.fluency.answer_nll`; ``nll_approximate``
  when a sparse backend had to bound a token);
- ``known_words``: the share of its Latin words in an English dictionary
  (:mod:`rainlm.bench.known_words`): a measure that does not come from the model.

``fluent``: ``nll`` at most greedy's NLL on the same prompt plus the plan's margin
(``greedy_nll + fluency_margin``, in nats; greedy is fluent by definition when it has an
NLL; an empty answer is not fluent; None when greedy's NLL is unknown) and, on a task
that asks for an answer in words (``Task.in_words``: lowercase, capitals) where greedy
answers in words, an answer in words too (``known_words.MIN_ANSWER_WORDS`` Latin words:
a string of digits keeps a case rule and is likely, but is no answer; records before
this rule: ``benchmarks/fluent_rules_words.py`` recounts them). A terse refusal ("No.")
stays fluent on the other tasks. ``words`` is the answer's count of Latin words.
``kept_and_fluent``: the rule kept (``not failed``) and fluent (None without a rule
verdict or a fluency verdict). A scoring that fails (a backend error) leaves the answer
standing: its fluency fields are None and ``fluency_error`` says why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rainlm.bench.known_words import MIN_ANSWER_WORDS, known_word_share, latin_words
from rainlm.fluency import Fluency, answer_nll

__all__ = ["AnswerScorer", "kept_and_fluent"]


class AnswerScorer:
    """Scores the answers to one prompt (each distinct answer once)."""

    def __init__(self, backend: Any, prompt_ids: Sequence[int], margin: float, *,
                 in_words: bool = False):
        self.backend = backend
        self.in_words = in_words  # the task asks for an answer in words
        self.prompt_ids = list(prompt_ids)
        self.margin = float(margin)
        self.greedy_nll: float | None = None
        self.greedy_words: int | None = None  # Latin words of greedy's answer
        self._seen: dict[tuple[int, ...], Fluency] = {}

    def fluency(self, ids: Sequence[int] | None, text: str) -> Fluency:
        """The NLL of ``ids`` (None: ``text`` tokenized again), cached by ids."""
        key = tuple(int(t) for t in (self.backend.tokenize(text) if ids is None else ids))
        if key not in self._seen:
            self._seen[key] = answer_nll(self.backend, self.prompt_ids, key)
        return self._seen[key]

    def set_greedy(self, greedy: Mapping[str, Any]) -> None:
        """Greedy's NLL, the reference: from its record, or scored from its text when the
        record predates the fluency fields."""
        nll = greedy.get("nll")
        if nll is None and greedy.get("text") is not None and "nll" not in greedy:
            try:
                nll = self.fluency(None, greedy["text"]).nll
            except Exception:  # no reference: the answers get no fluency verdict
                nll = None
        self.greedy_nll = nll
        if greedy.get("text") is not None:
            self.greedy_words = len(latin_words(greedy["text"]))

    def fields(self, ids: Sequence[int] | None, text: str, *,
               greedy: bool = False) -> dict[str, Any]:
        """``nll``, ``nll_approximate``, ``greedy_nll``, ``fluency_margin``,
        ``known_words``, ``words`` and ``fluent`` of one answer (``greedy``: the reference
        itself)."""
        words = len(latin_words(text))
        try:
            fl = self.fluency(ids, text)
        except Exception as exc:  # the answer stands; its fluency is unknown
            return {"nll": None, "nll_approximate": None, "greedy_nll": _round(self.greedy_nll),
                    "fluency_margin": self.margin, "known_words": known_word_share(text),
                    "words": words, "fluent": None,
                    "fluency_error": f"{type(exc).__name__}: {exc}"}
        if greedy:
            self.greedy_nll, self.greedy_words = fl.nll, words
        in_words = (not self.in_words or (self.greedy_words or 0) < MIN_ANSWER_WORDS
                    or words >= MIN_ANSWER_WORDS)
        if self.greedy_nll is None:
            fluent = None
        elif fl.nll is None:
            fluent = False  # an empty answer is no answer
        else:
            fluent = greedy or (fl.nll <= self.greedy_nll + self.margin and in_words)
        return {"nll": _round(fl.nll), "nll_approximate": fl.approximate,
                "greedy_nll": _round(self.greedy_nll),
                "fluency_margin": self.margin, "known_words": known_word_share(text),
                "words": words, "fluent": fluent}


def _round(nll: float | None) -> float | None:
    return None if nll is None else round(nll, 6)


def kept_and_fluent(failed: bool | None, fluent: bool | None) -> bool | None:
    """The rule kept and the answer fluent (None when either verdict is missing)."""
    if failed is None or fluent is None:
        return None
    return not failed and fluent
