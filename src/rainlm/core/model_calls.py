"""The search's single door to the backend: counts calls and batches (or not)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from rainlm.backends.base import Backend
from rainlm.backends.distribution import TokenDistribution
from rainlm.core.stats import SearchStats


class DeadlineReached(Exception):
    """The time budget ran out; raised before a model or judge call that would start
    after it, so a search pass stops within one call of its deadline."""


SECONDS_WINDOW = 32
"""Latest one-context calls that ``ModelCalls.seconds_per_token`` averages."""


class ModelCalls:
    """Asks the backend for next-token distributions on behalf of the search.

    ``batched=False`` sends one context per call: the same distributions (and so the
    same tree) as the batched mode, only slower — used to test that batching changes
    nothing.
    """

    def __init__(self, backend: Backend, stats: SearchStats, *, batched: bool = True,
                 stop: threading.Event | None = None):
        self.backend = backend
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
                   top_k: int | None = None) -> list[TokenDistribution]:
        """One distribution per context (each context is prompt + answer token ids)."""
        if not contexts:
            return []
        self.check_deadline()
        self.stats.model_contexts += len(contexts)
        if self.batched or len(contexts) == 1:
            self.stats.model_calls += 1
            started = time.perf_counter()
            dists = self.backend.next_logprobs([list(c) for c in contexts], top_k=top_k)
            if len(contexts) == 1:
                self.single_call_seconds.append(time.perf_counter() - started)
            return dists
        self.stats.model_calls += len(contexts)
        return [self.backend.next_logprobs([list(c)], top_k=top_k)[0] for c in contexts]
