"""Several searches advanced together, sharing forward passes.

Each search is a resumable state machine (``rainlm.backends.steps``): a generator that
yields the model call it needs next. ``run_together`` starts every search, then, round
after round, answers the calls all of them are waiting for **together**:

- next-token calls to the same model (with the same ``top_k``, unless the model returns
  whole distributions and ignores it) — the searches' own, and their self-evaluation's,
  which yields its calls too — go out as **one**
  ``next_logprobs`` call: the transformers backend runs contexts that extend different
  cached prefixes in one batched forward pass;
- continuations (imagined completions and greedy finishes on a backend that decodes
  natively, ``backends.decoding``) to the same model go out as one ``decode`` call;
- embedder calls to the same embedder go out as one ``embed`` call;
- calls to the same rule evaluator go out as one ``evaluate`` call.

Then every search is resumed with its own part of the answers and runs (plain Python:
selection, back-up, its seeded draws) to its next call. A search gets exactly the
results it would get alone, in the same order, so its tree is the tree it grows alone
(with a real model, batched arithmetic may differ in the last bits: see the backends'
"cached equals fresh" tolerances) — unless a time budget ends it: the searches share
the clock, and each round waits for the whole batch. Its seconds (``phase_seconds``,
the speed a greedy finish is reserved by) are likewise those of the shared rounds. A call that fails, when several shared it, is
retried alone for each of them, so an error reaches only the search that caused it;
a search that raises ends with its error and the others go on.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rainlm.backends.base import Backend, top_k_key
from rainlm.backends.decoding import continuations_of
from rainlm.backends.steps import Continuations, ModelCall, NextDists, Steps
from rainlm.core.model_calls import EmbedTexts, JudgeTexts

__all__ = ["BatchCounts", "Finished", "run_together"]


@dataclass
class Finished:
    """How one search of ``run_together`` ended."""

    value: Any = None
    """What the search returned (None when it failed)."""
    error: BaseException | None = None
    """What it raised (None when it returned)."""


@dataclass
class BatchCounts:
    """What the batching achieved (read after ``run_together``)."""

    rounds: int = 0
    """Rounds: each answers every call the searches in flight were waiting for."""
    searches_per_model_call: list[int] = field(default_factory=list)
    """For each ``next_logprobs`` call made (one per model per round; per ``top_k`` too
    on a sparse backend), how many searches' calls it answered (its batch size)."""
    contexts: int = 0
    """Contexts in those calls."""

    @property
    def model_calls(self) -> int:
        """``next_logprobs`` calls made."""
        return len(self.searches_per_model_call)

    @property
    def mean_batch(self) -> float:
        """Mean searches per model call (1.0: no sharing)."""
        sizes = self.searches_per_model_call
        return sum(sizes) / len(sizes) if sizes else 0.0


def run_together(searches: Sequence[Steps[Any]], backend: Backend, *,
                 counts: BatchCounts | None = None) -> list[Finished]:
    """Run ``searches`` to their ends together (see the module docstring); ``backend``
    answers the calls that name no model of their own. Returns one ``Finished`` per
    search, in order; ``counts`` (optional) receives the batch sizes."""
    counts = counts if counts is not None else BatchCounts()
    ended = [Finished() for _ in searches]
    waiting: dict[int, ModelCall] = {}

    def resume(i: int, result: Any = None, error: BaseException | None = None) -> None:
        steps = searches[i]  # (sending None to a new generator starts it)
        try:
            if error is not None:
                waiting[i] = steps.throw(error)
            else:
                waiting[i] = steps.send(result)
        except StopIteration as done:
            ended[i].value = done.value
        except Exception as exc:  # this search failed; the others go on
            ended[i].error = exc

    try:
        for i in range(len(searches)):
            resume(i)
        while waiting:
            calls, waiting = waiting, {}
            counts.rounds += 1
            for i, (result, error) in answer_together(calls, backend, counts).items():
                resume(i, result, error)
    finally:  # (interrupted: every search's ``finally`` clauses run now)
        for steps in searches:
            steps.close()
    return ended


def answer_together(calls: dict[int, ModelCall], backend: Backend,
                    counts: BatchCounts) -> dict[int, tuple[Any, BaseException | None]]:
    """Answer every call of one round (keyed by search), calls of one kind to one
    answerer in one call: (result, None) or (None, the error) per search."""
    groups: dict[Hashable, list[int]] = {}
    for i, call in calls.items():
        groups.setdefault(group_key(call, backend), []).append(i)
    out: dict[int, tuple[Any, BaseException | None]] = {}
    for members in groups.values():
        out.update(answer_group([(i, calls[i]) for i in members], backend, counts))
    return out


def group_key(call: ModelCall, backend: Backend) -> Hashable:
    """Calls with equal keys are answered by one call of one answerer."""
    if isinstance(call, NextDists):
        model = call.backend or backend
        return (NextDists, id(model), top_k_key(model, call.top_k))
    if isinstance(call, Continuations):
        return (Continuations, id(backend))
    if isinstance(call, JudgeTexts):
        return (JudgeTexts, id(call.evaluator))
    if isinstance(call, EmbedTexts):
        return (EmbedTexts, id(call.embedder))
    return (type(call), id(call))  # a kind this module does not know: answered alone


def answer_group(group: list[tuple[int, ModelCall]], backend: Backend,
                 counts: BatchCounts) -> dict[int, tuple[Any, BaseException | None]]:
    """One call for the whole group; when it fails (or returns a wrong number of
    results) and several shared it, each is answered alone, so an error reaches only
    the call that caused it."""
    calls = [call for _, call in group]
    merged, sizes = merge(calls)
    try:
        results = merged.answer(backend)
        if sizes is not None and len(group) > 1 and len(results) != sum(sizes):
            raise ValueError(f"{len(results)} results for {sum(sizes)} asked")  # (retried)
    except Exception as exc:
        if len(group) == 1:
            return {group[0][0]: (None, exc)}
        out: dict[int, tuple[Any, BaseException | None]] = {}
        for member in group:  # alone, a wrong count is the search's to notice
            out.update(answer_group([member], backend, counts))
        return out
    if isinstance(merged, NextDists):
        counts.searches_per_model_call.append(len(group))
        counts.contexts += len(merged.contexts)
    if sizes is None:
        return {group[0][0]: (results, None)}
    out, at = {}, 0
    for (i, _), size in zip(group, sizes):
        out[i] = (results[at:at + size], None)
        at += size
    return out


def merge(calls: list[ModelCall]) -> tuple[ModelCall, list[int] | None]:
    """One call asking for everything ``calls`` (of one group) ask, and how many results
    each gets back (None: a call answered alone, its result whole)."""
    first = calls[0]
    if isinstance(first, NextDists):
        parts = [c.contexts for c in calls]
        merged: ModelCall = NextDists([x for p in parts for x in p], first.top_k, first.backend)
    elif isinstance(first, Continuations):
        merged = Continuations([x for c in calls for x in c.requests])
        return merged, [continuations_of(c.requests) for c in calls]
    elif isinstance(first, JudgeTexts):
        parts = [c.requests for c in calls]
        merged = JudgeTexts(first.evaluator, [x for p in parts for x in p])
    elif isinstance(first, EmbedTexts):
        parts = [c.texts for c in calls]
        merged = EmbedTexts(first.embedder, [x for p in parts for x in p])
    else:
        return first, None
    return merged, [len(p) for p in parts]
