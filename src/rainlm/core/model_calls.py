"""The search's door to the model: the calls a search asks for (it is a resumable state
machine, ``rainlm.backends.steps``) and the counting and deadline rules around them.

Every function of the core that needs the model, the judge or the embedder is a
generator that yields the call it needs (a ``NextDists``, ``JudgeTexts`` or
``EmbedTexts``) and is resumed with its result. ``drive`` answers them one at a time
(``rainlm.generate``); ``core.scheduler.run_together`` advances many searches together.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rainlm.backends.base import Backend
from rainlm.backends.distribution import TokenDistribution
from rainlm.backends.decoding import DecodeRequest, Decoded, continuations_of
from rainlm.backends.steps import Continuations, NextDists, Steps, drive
from rainlm.core.stats import SearchStats
from rainlm.judge.base import EvalRequest, Evaluator, StepwiseEvaluator
from rainlm.similarity.base import Embedder

__all__ = ["Continuations", "DeadlineReached", "EmbedTexts", "JudgeTexts", "ModelCalls",
           "NextDists", "Steps", "drive", "evaluation_steps"]


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


DECODE_WINDOW = 16
"""Latest decode steps whose median ``ModelCalls.seconds_per_token`` is."""
MIN_DECODE_STEPS = 4
"""Decode steps measured before ``seconds_per_token`` says anything (0.0 until then)."""


class ModelCalls:
    """Asks for next-token distributions on behalf of the search (counts them, and
    refuses to start one past the deadline).

    ``batched=False`` sends one context per call: the same distributions (and so the
    same tree) as the batched mode, only slower — used to test that batching changes
    nothing.

    ``engine_decodes=True`` (the backend decodes natively: ``backends.decoding``):
    imagined completions and greedy finishes are asked for as ``Continuations``, many
    tokens per call, instead of one ``NextDists`` per token.
    """

    def __init__(self, stats: SearchStats, *, batched: bool = True,
                 stop: threading.Event | None = None, engine_decodes: bool = False):
        self.stats = stats
        self.batched = batched
        self.engine_decodes = engine_decodes
        self.deadline: float | None = None
        """``time.perf_counter()`` value after which no call starts (DeadlineReached)."""
        self.stop = stop
        """Once set (a server shutting down), no call starts (DeadlineReached)."""
        self.reserve: Callable[[], float] | None = None
        """Seconds before ``deadline`` from which no call starts (the time a greedy finish
        needs, ``core.decode.set_search_deadline``); None: none."""
        self.decode_step_seconds: deque[float] = deque(maxlen=DECODE_WINDOW)
        """Wall seconds of the latest decode steps: calls for one context that extends
        the previous one-context call's by one token (as a greedy finish makes them;
        simulations make them too). What ``seconds_per_token`` is the median of."""
        self._last_single: list[int] | None = None  # the previous one-context call's context
        self.judgement_seconds: deque[float] = deque(maxlen=DECODE_WINDOW)
        """Wall seconds of the latest judge calls (one text, as a finish's comparison with
        the best judged answer makes them, or a batch: an upper bound on one): what
        ``seconds_per_judgement`` is the median of."""

    @property
    def stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def seconds_per_token(self) -> float:
        """The expected cost of one more greedy token: the median wall seconds of the
        latest decode steps; 0.0 until ``MIN_DECODE_STEPS`` have been measured.

        Decode steps only: the first call of an answer also encodes the prompt, and a
        call for a new branch re-encodes part of it, so their seconds say nothing about
        a greedy finish. The median, over a window that moves with the search: a few
        slow calls (first use, a burst of load from another process) neither reserve
        the whole budget for the finish nor hide a lasting slow-down."""
        steps = self.decode_step_seconds
        if len(steps) < MIN_DECODE_STEPS:
            return 0.0
        return float(statistics.median(steps))

    def speed_settled(self) -> bool:
        """Whether ``seconds_per_token`` rests on a whole window of decode steps."""
        return len(self.decode_step_seconds) >= DECODE_WINDOW

    def seconds_per_judgement(self) -> float:
        """The expected cost of judging one more text: the median wall seconds of the
        latest judge calls (0.0 before the first)."""
        times = self.judgement_seconds
        return float(statistics.median(times)) if times else 0.0

    def note_single_call(self, context: list[int], seconds: float) -> None:
        """Record a one-context call's time when it was a decode step."""
        last = self._last_single
        if last is not None and len(context) == len(last) + 1 and context[:-1] == last:
            self.decode_step_seconds.append(seconds)
        self._last_single = context

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
            asked = [list(c) for c in contexts]
            dists = yield NextDists(asked, top_k)
            if len(asked) == 1:
                self.note_single_call(asked[0], time.perf_counter() - started)
            return dists
        self.stats.model_calls += len(contexts)
        out = []
        for c in contexts:
            out.extend((yield NextDists([list(c)], top_k)))
        return out

    def continuations(self, requests: Sequence[DecodeRequest]) -> Steps[list[Decoded]]:
        """One ``Decoded`` per continuation asked (``continuations_of``): one
        ``Continuations`` call. A call for one continuation records its wall seconds per
        token returned as one decode step (what ``seconds_per_token``, and so a greedy
        finish's reserve and ``affordable_tokens``, are measured by)."""
        if not requests:
            return []
        self.check_deadline()
        self.stats.model_calls += 1
        self.stats.model_contexts += continuations_of(requests)
        started = time.perf_counter()
        out = yield Continuations(list(requests))
        if len(requests) == 1 and requests[0].samples == 1 and out and out[0].tokens:
            self.decode_step_seconds.append((time.perf_counter() - started) / len(out[0].tokens))
        self._last_single = None
        return out

    def affordable_tokens(self, wanted: int) -> int:
        """How many of ``wanted`` greedy tokens one continuation may ask for: all of them
        without a deadline, else those the time left buys at ``seconds_per_token`` (8
        until the speed is measured), at least one."""
        if self.deadline is None:
            return wanted
        per_token = self.seconds_per_token()
        if per_token <= 0:
            return max(1, min(wanted, 8))
        reserve = self.reserve() if self.reserve is not None else 0.0
        left = self.deadline - reserve - time.perf_counter()
        return max(1, min(wanted, int(left / per_token)))
