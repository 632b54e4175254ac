"""One backend shared by concurrent requests, whose searches run in one scheduler.

``rain serve`` answers each request on a thread of its own, but the request's model
work does not run there. ``SharedBackend`` owns the backend and a ``Scheduler``
(``core.scheduler``, the one every search runs in) on one thread of its own; each
request talks to it through its own ``SharedBackend.client()``, a ``Backend`` whose
``run_steps`` hands a whole search (any ``Steps``: a RAIN search, a greedy answer, the
fail-safe's self-evaluation; ``backends.steps.drive`` hands them over) to the scheduler
and waits for its end. So the searches of all requests in flight advance together, and
their next-token calls, continuations, embeddings and rule judgements go to the backend
as whole batches (on an in-process model merged, or one search at a time where that
measured faster: ``core.merge_choice``). A search joins at the next round and leaves
when it ends; one that arrives while the scheduler waits for an engine's answers joins
at once (``Scheduler.wake``).

A client's plain ``next_logprobs``/``decode`` (code that is not written as steps) goes to
the scheduler as a search of one call; made on the scheduler's own thread (a rule judge
that asks the model from inside a round) it goes straight to the backend (on an
in-process model nothing else calls it meanwhile; its work is counted in no request's
share, or, on an engine, in the next concurrent call's). A fault of the scheduler itself
ends the searches in flight with an error, and the next ones start in a fresh scheduler.

Each request gets exactly the results it would get alone, so its tree does not depend
on its neighbours (with a real model, batched arithmetic may differ in the last bits:
see the backends' "cached equals fresh" tolerances). Each client keeps its own share of
the backend's work (``core.work_shares``). The tokenizer methods go through a lock of
their own, so detokenising never waits for a round.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from rainlm.backends.base import (Backend, BackendCounters, TokenDistribution, model_name,
                                 stop_strings_of)
from rainlm.backends.decoding import DecodeRequest, Decoded, decodes_natively
from rainlm.backends.steps import Continuations, ModelCall, NextDists, Steps, drive
from rainlm.core.merge_choice import MergeChoice
from rainlm.core.scheduler import BatchCounts, Finished, Scheduler

__all__ = ["SharedBackend", "BackendClient"]

log = logging.getLogger("rainlm.serve")
T = TypeVar("T")


@dataclass
class _Arrival:
    """A search handed to the scheduler's thread, and the event its caller waits on."""

    steps: Steps[Any]
    counters: BackendCounters
    done: threading.Event = field(default_factory=threading.Event)
    finished: Finished | None = None


class SharedBackend:
    """A backend shared by threads through one scheduler; see the module docstring."""

    def __init__(self, backend: Backend, *, merge: MergeChoice | None = None):
        self.backend = backend
        """The real backend (only the scheduler's thread calls its model methods)."""
        self.counts = BatchCounts()
        """What the rounds achieved since the start."""
        self.merge = merge if merge is not None else MergeChoice()
        self._scheduler = Scheduler(backend, counts=self.counts, merge=self.merge)
        self._cond = threading.Condition()
        self._arrivals: list[_Arrival] = []
        self._waiters: dict[int, _Arrival] = {}  # id(Finished) -> its arrival
        self._thread: threading.Thread | None = None
        self._closing = False
        self._in_flight = 0  # searches handed over and not ended
        self._tokenizer_lock = threading.Lock()
        self.largest_round = 0
        """Most searches in flight at once (handed to the scheduler, not ended)."""

    def client(self) -> BackendClient:
        """A ``Backend`` for one request, with counters of its own."""
        return BackendClient(self)

    def batch_stats(self) -> dict[str, Any]:
        """The counts since the start: ``dispatches`` (next-token backend calls), the
        searches' ``calls`` they answered and their ``contexts``, the most searches'
        calls one of them answered (``max_calls``), ``rounds``, the most searches in
        flight at once, and what the merge choice measured (differences of two readings
        give a period's mean batch size)."""
        with self._cond, self._scheduler.lock:
            counts = self.counts
            sizes = counts.searches_per_model_call
            return {"dispatches": counts.model_calls, "calls": sum(sizes),
                    "contexts": counts.contexts, "max_calls": max(sizes, default=0),
                    "rounds": counts.rounds, "max_searches": self.largest_round,
                    "merge": self.merge.summary()}

    def wait_for_searches(self, count: int, timeout: float | None = None) -> bool:
        """Block until at least ``count`` searches are in flight (handed over and not
        ended; tests synchronise on it); False when ``timeout`` seconds passed first."""
        with self._cond:
            return self._cond.wait_for(lambda: self._in_flight >= count, timeout)

    # ------------------------------------------------------------------ the scheduler
    def run(self, steps: Steps[T], counters: BackendCounters) -> T:
        """Run ``steps`` in the shared scheduler and return what it returns (raise what
        it raises); ``counters`` receive its share of the backend's work."""
        if threading.current_thread() is self._thread:  # asked from inside a round
            return drive(steps, self.backend)
        arrival = _Arrival(steps, counters)
        with self._cond:
            self._arrivals.append(arrival)
            self._in_flight += 1
            self._start_thread()
            self._cond.notify_all()
            self._scheduler.wake()  # a round waiting for an engine's answers takes it now
        arrival.done.wait()
        finished = arrival.finished
        assert finished is not None and finished.ended
        if finished.error is not None:
            raise finished.error
        return finished.value

    def close(self) -> None:
        """Let the scheduler's thread end once no search is in flight."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()

    def _start_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="rain-scheduler",
                                            daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._arrivals and not self._scheduler.busy and not self._closing:
                    self._cond.wait()
                if self._closing and not self._arrivals and not self._scheduler.busy:
                    self._thread = None
                    return
                arrivals, self._arrivals = self._arrivals, []
                for arrival in arrivals:
                    arrival.finished = self._scheduler.add(arrival.steps, arrival.counters)
                    self._waiters[id(arrival.finished)] = arrival
                self.largest_round = max(self.largest_round, self._scheduler.in_flight)
            try:
                ended = self._scheduler.run_round()
            except BaseException as exc:  # a fault of the scheduler itself: no waiter hangs
                log.exception("rain serve: the shared scheduler failed; the searches in "
                              "flight end with its error, new ones start afresh")
                self._fail_in_flight(exc)
                continue
            self._wake(ended)

    def _fail_in_flight(self, exc: BaseException) -> None:
        """End every search handed to the scheduler with ``exc``'s story and start a
        fresh scheduler for the next ones."""
        failed = self._scheduler
        with self._cond:
            self._scheduler = Scheduler(self.backend, counts=self.counts, merge=self.merge,
                                        lock=failed.lock)
        error = RuntimeError(f"the shared scheduler failed: {type(exc).__name__}: {exc}")
        try:
            failed.close(error)
        except BaseException:  # (its searches' ``finally`` clauses): the waiters still wake
            log.exception("rain serve: closing the failed searches failed")
        with self._cond:
            for arrival in self._waiters.values():
                finished = arrival.finished
                if finished is not None and not finished.ended:
                    finished.error, finished.ended = error, True
                self._in_flight -= 1
                arrival.done.set()
            self._waiters = {}

    def _wake(self, ended: list[Finished]) -> None:
        with self._cond:
            for finished in ended:
                arrival = self._waiters.pop(id(finished), None)
                if arrival is not None:
                    self._in_flight -= 1
                    arrival.done.set()

    # ------------------------------------------------------------------ tokenizer
    def tokenize(self, text: str) -> list[int]:
        with self._tokenizer_lock:
            return self.backend.tokenize(text)

    def detokenize(self, token_ids: Sequence[int]) -> str:
        with self._tokenizer_lock:
            return self.backend.detokenize(token_ids)

    def render_prompt(self, messages: Sequence[Mapping[str, str]]) -> list[int]:
        with self._tokenizer_lock:
            return self.backend.render_prompt(messages)


def _one_call(call: ModelCall) -> Steps[Any]:
    return (yield call)


class BackendClient:
    """One request's view of a ``SharedBackend``: the real backend's attributes, its own
    counters, and every model call through the shared scheduler. It has no
    ``clear_cache``: one request must not empty the cache the others use."""

    def __init__(self, shared: SharedBackend):
        backend = shared.backend
        self.shared = shared
        self.stands_for = backend
        """The backend that answers this client's calls (``core.scheduler``: calls of
        different clients are answered together)."""
        self.name = model_name(backend)
        self.capabilities = backend.capabilities
        self.eos_token_ids = backend.eos_token_ids
        self.bos_ids = backend.bos_ids
        self.default_stop_strings = stop_strings_of(backend)
        self.decodes_natively = decodes_natively(backend)
        self.counters = BackendCounters()
        """This request's share of the backend's work (``core.work_shares``)."""

    def run_steps(self, steps: Steps[T]) -> T:
        """Run ``steps`` in the shared scheduler (``backends.steps.drive`` calls it)."""
        return self.shared.run(steps, self.counters)

    def tokenize(self, text: str) -> list[int]:
        return self.shared.tokenize(text)

    def detokenize(self, token_ids: Sequence[int]) -> str:
        return self.shared.detokenize(token_ids)

    def render_prompt(self, messages: Sequence[Mapping[str, str]]) -> list[int]:
        return self.shared.render_prompt(messages)

    def next_logprobs(self, contexts: Sequence[Sequence[int]], *,
                      top_k: int | None = None) -> list[TokenDistribution]:
        return self.run_steps(_one_call(NextDists([list(c) for c in contexts], top_k)))

    def decode(self, requests: Sequence[DecodeRequest]) -> list[Decoded]:
        """The engine's own continuation (only where ``decodes_natively``), through the
        shared scheduler like every other call."""
        return self.run_steps(_one_call(Continuations(list(requests))))
