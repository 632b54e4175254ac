"""The search's door to the model: the calls a search asks for (it is a resumable state
machine, ``rainlm.backends.steps``) and the counting and deadline rules around them.

Every function of the core that needs the model, the judge or the embedder is a
generator that yields the call it needs (a ``NextDists``, ``JudgeTexts`` or
``EmbedTexts``) and is resumed with its result. ``drive`` answers them one at a time
(``rainlm.generate``); ``core.scheduler.run_together`` advances many searches together.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rainlm.backends.base import Backend
from rainlm.backends.distribution import TokenDistribution
from rainlm.backends.steps import NextDists, Steps, drive
from rainlm.core.stats import SearchStats
from rainlm.judge.base import EvalRequest, Evaluator, StepwiseEvaluator
from rainlm.similarity.base import Embedder

__all__ = ["DeadlineReached", "EmbedTexts", "JudgeTexts", "ModelCalls", "NextDists", "Steps",
           "drive", "evaluation_steps"]


class DeadlineReached(Exception):
    """The time budget ran out; raised before a model or judge call that would start
    after it, so a search pass stops within one call of its deadline."""


@dataclass(frozen=True)
class JudgeTexts:
    """An evaluator call: one value in [-1, 1] per request."""

    evaluator: Evaluator
    """Who judges (the search's evaluator)."""
    requests: list[EvalRequest]
    """What to judge (distinct texts)."""

    def answer(self, backend: Backend) -> list[float]:
        return self.evaluator.evaluate(self.requests)


@dataclass(frozen=True)
class EmbedTexts:
    """An embedder call: one vector per text."""

    embedder: Embedder
    """Who embeds (the search's embedder)."""
    texts: list[str]
    """What to embed (distinct texts)."""

    def answer(self, backend: Backend) -> Any:
        return self.embedder.embed(self.texts)


def evaluation_steps(evaluator: Evaluator, requests: list[EvalRequest]) -> Steps[list[float]]:
    """The evaluator's values for ``requests``: the model calls of its own judgement when
    it can yield them (a ``StepwiseEvaluator``: the model's self-evaluation), else one
    ``JudgeTexts`` call."""
    if isinstance(evaluator, StepwiseEvaluator):
        return (yield from evaluator.evaluate_steps(requests))
    return (yield JudgeTexts(evaluator, requests))


SECONDS_WINDOW = 32
"""Latest one-context calls that ``ModelCalls.seconds_per_token`` averages."""


class ModelCalls:
    """Asks for next-token distributions on behalf of the search (counts them, and
    refuses to start one past the deadline).

    ``batched=False`` sends one context per call: the same distributions (and so the
    same tree) as the batched mode, only slower — used to test that batching changes
    nothing.
    """

    def __init__(self, stats: SearchStats, *, batched: bool = True,
                 stop: threading.Event | None = None):
        self.stats = stats
        self.batched = batched
        self.deadline: float | None = None
        """``time.perf_counter()`` value after which no call starts (DeadlineReached)."""
        self.stop = stop
        """Once set (a server shutting down), no call starts (DeadlineReached)."""
        self.reserve: Callable[[], float] | None = None
        """Seconds before ``deadline`` from which no call starts (the time a greedy finish
        needs, ``core.decode.set_search_deadline``); None: none."""
        self.single_call_seconds: deque[float] = deque(maxlen=SECONDS_WINDOW)
        """Wall seconds of the latest calls for one context (a decoding step, as a greedy
        finish makes them): what ``seconds_per_token`` averages."""

    @property
    def stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def seconds_per_token(self) -> float:
        """Mean wall seconds of the latest one-context calls (0.0 before the first): the
        expected cost of one more greedy token. The first call of an answer also encodes
        the prompt, which makes the estimate err on the long side."""
        calls = self.single_call_seconds
        return sum(calls) / len(calls) if calls else 0.0

    def check_deadline(self) -> None:
        """DeadlineReached when the deadline has passed or the search was told to stop."""
        if self.stopped:
            raise DeadlineReached()
        if self.deadline is not None:
            reserve = self.reserve() if self.reserve is not None else 0.0
            if time.perf_counter() >= self.deadline - reserve:
                raise DeadlineReached()

    def next_dists(self, contexts: Sequence[Sequence[int]], *,
                   top_k: int | None = None) -> Steps[list[TokenDistribution]]:
        """One distribution per context (each context is prompt + answer token ids):
        one ``NextDists`` call (one per context when not batched)."""
        if not contexts:
            return []
        self.check_deadline()
        self.stats.model_contexts += len(contexts)
        if self.batched or len(contexts) == 1:
            self.stats.model_calls += 1
            started = time.perf_counter()
            dists = yield NextDists([list(c) for c in contexts], top_k)
            if len(contexts) == 1:
                self.single_call_seconds.append(time.perf_counter() - started)
            return dists
        self.stats.model_calls += len(contexts)
        out = []
        for c in contexts:
            out.extend((yield NextDists([list(c)], top_k)))
        return out
