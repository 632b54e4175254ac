"""One backend shared by concurrent searches, whose model calls meet in one batch.

``SharedBackend`` owns a backend. Each search (one server request) talks to it through
its own ``SharedBackend.client()``, a ``Backend`` of its own. A ``next_logprobs`` call
that arrives while the backend is busy waits; when the backend is free, every call that
arrived meanwhile goes out together in **one** ``next_logprobs`` call of the real backend
(continuous batching). The transformers backend forwards contexts that extend
different cached prefixes in one batched pass, so concurrent searches share forward
passes.

Searches in flight call the model in turns: each does a little work of its own between
two calls, so calls that arrive strictly one at a time would alternate and never meet.
So a dispatch waits briefly for the searches that are in flight (clients used as
``with shared.client() as backend:``) and have no call waiting yet: until every one has
a call waiting, or for at most ``gather_share`` of a recent dispatch's duration. A lone
search (or clients never entered) never waits.

The searches stay plain sequential code, each in its own thread: this door is where
they meet. Each gets exactly the distributions it would get alone (a backend answers
each context independently), so a search's tree does not depend on its neighbours;
with a real model, batched arithmetic may differ in the last bits (see the backends'
"cached equals fresh" tolerances). The real backend sees one next-token call at a time
(an engine's continuations go to it directly: ``BackendClient.decode``); its
tokenizer methods go through a lock of their own, so detokenising never waits for a
forward pass.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rainlm.backends.base import (Backend, BackendCounters, TokenDistribution, model_name,
                                 stop_strings_of, top_k_key)
from rainlm.backends.decoding import DecodeRequest, Decoded, decodes_natively

__all__ = ["SharedBackend", "BackendClient"]

_SPLIT_COUNTERS = ("prefill_tokens", "decode_tokens", "cache_hits", "cache_misses",
                   "cached_tokens_reused")
"""Backend counters a dispatch's requests share in proportion to their contexts."""


@dataclass
class _Call:
    """One client's ``next_logprobs`` call, waiting for (or holding) its answer."""

    contexts: list[list[int]]
    top_k: int | None
    counters: BackendCounters
    result: list[TokenDistribution] | None = None
    error: BaseException | None = None
    done: bool = False

    def outcome(self) -> list[TokenDistribution]:
        if self.error is not None:
            raise self.error
        assert self.result is not None  # done without an error means answered
        return self.result


class SharedBackend:
    """A backend shared by threads; see the module docstring."""

    def __init__(self, backend: Backend, *, gather_share: float = 0.5):
        self.backend = backend
        """The real backend (only this object calls its ``next_logprobs``)."""
        self.gather_share = gather_share
        """Longest wait for the calls of searches in flight, as a share of the mean
        duration of the latest dispatches (0: never wait)."""
        self._in_flight = 0  # entered clients (searches running)
        self._dispatch_s: deque[float] = deque(maxlen=16)  # latest dispatches' seconds
        self._cond = threading.Condition()
        self._pending: list[_Call] = []
        self._busy = False  # a dispatch is running (its leader holds no lock meanwhile)
        self._tokenizer_lock = threading.Lock()
        self.dispatches = 0
        """Dispatches so far (each is one ``next_logprobs`` call of the real backend per
        distinct ``top_k`` among its calls)."""
        self.dispatched_calls = 0
        """Clients' calls answered by those dispatches."""
        self.dispatched_contexts = 0
        """Contexts in those calls."""
        self.largest_dispatch = 0
        """Most clients' calls answered by one dispatch."""

    def client(self) -> BackendClient:
        """A ``Backend`` for one search, with counters of its own."""
        return BackendClient(self)

    def batch_stats(self) -> dict[str, int]:
        """The counts since the start: dispatches, clients' calls and contexts they
        answered, and the most calls in one dispatch (differences of two readings give a
        period's mean batch size)."""
        with self._cond:
            return {"dispatches": self.dispatches, "calls": self.dispatched_calls,
                    "contexts": self.dispatched_contexts, "max_calls": self.largest_dispatch}

    def wait_for_pending(self, count: int, timeout: float | None = None) -> bool:
        """Block until at least ``count`` calls wait for the backend (tests synchronise
        on it); False when ``timeout`` seconds passed first."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._pending) >= count, timeout)

    # ------------------------------------------------------------------ the door
    def submit(self, contexts: Sequence[Sequence[int]], top_k: int | None,
               counters: BackendCounters) -> list[TokenDistribution]:
        """Answer one client's call: wait while a dispatch runs; then either the call was
        answered by it, or this thread runs the next dispatch with everything waiting."""
        call = _Call([list(c) for c in contexts], top_k, counters)
        with self._cond:
            self._pending.append(call)
            self._cond.notify_all()
            while self._busy and not call.done:
                self._cond.wait()
            if call.done:
                return call.outcome()
            self._busy = True
            self._gather()
            batch, self._pending = self._pending, []
        started = time.perf_counter()
        try:
            self._dispatch(batch)
        finally:
            self._dispatch_s.append(time.perf_counter() - started)
            with self._cond:
                self._busy = False
                self._cond.notify_all()
        return call.outcome()

    def _gather(self) -> None:
        """(Holding the lock, as the next dispatch's leader.) Wait until every search in
        flight has a call waiting, or ``gather_share`` of the mean recent dispatch time
        has passed."""
        if self._in_flight <= 1 or not self._dispatch_s:
            return
        wait_s = self.gather_share * sum(self._dispatch_s) / len(self._dispatch_s)
        deadline = time.perf_counter() + wait_s
        while len(self._pending) < self._in_flight:
            left = deadline - time.perf_counter()
            if left <= 0:
                return
            self._cond.wait(left)

    def enter(self) -> None:
        """A search begins (``BackendClient.__enter__``): dispatches may wait for it."""
        with self._cond:
            self._in_flight += 1

    def leave(self) -> None:
        """A search ended: dispatches no longer wait for it."""
        with self._cond:
            self._in_flight -= 1
            self._cond.notify_all()

    def _dispatch(self, batch: list[_Call]) -> None:
        """Answer every call of ``batch``: one backend call per distinct ``top_k`` (one in
        all on a dense backend, which ignores it)."""
        try:
            by_top_k: dict[int | None, list[_Call]] = {}
            for call in batch:
                by_top_k.setdefault(top_k_key(self.backend, call.top_k), []).append(call)
            for top_k, calls in by_top_k.items():
                self._answer(calls, top_k)
            with self._cond:
                self.dispatches += 1
                self.dispatched_calls += len(batch)
                self.dispatched_contexts += sum(len(c.contexts) for c in batch)
                self.largest_dispatch = max(self.largest_dispatch, len(batch))
        finally:
            for call in batch:
                if not call.done:  # interrupted (KeyboardInterrupt...): never leave a waiter
                    call.error = call.error or RuntimeError("the shared backend call was interrupted")
                    call.done = True

    def _answer(self, calls: list[_Call], top_k: int | None) -> None:
        """One backend call for ``calls``; when it fails (or answers a wrong number of
        contexts) and several calls shared it, each is retried alone, so an error reaches
        only the call that caused it."""
        contexts = [ctx for call in calls for ctx in call.contexts]
        before = _snapshot(self.backend)
        try:
            dists = self.backend.next_logprobs(contexts, top_k=top_k)
            if len(calls) > 1 and len(dists) != len(contexts):  # slicing would mix requests
                raise ValueError(f"{len(dists)} distributions for {len(contexts)} contexts")
        except Exception as exc:
            if len(calls) == 1:
                calls[0].error, calls[0].done = exc, True
                return
            for call in calls:
                self._answer([call], top_k)
            return
        _share_counters(calls, before, _snapshot(self.backend), getattr(self.backend, "counters", None))
        at = 0
        for call in calls:
            call.result = dists[at:at + len(call.contexts)]
            at += len(call.contexts)
            call.done = True

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


def _snapshot(backend: object) -> dict[str, int]:
    counters = getattr(backend, "counters", None)
    out = {k: int(getattr(counters, k, 0)) for k in (*_SPLIT_COUNTERS, "forward_calls")}
    out["batches"] = len(getattr(counters, "batch_sizes", ()))
    return out


def _share_counters(calls: list[_Call], before: dict[str, int], after: dict[str, int],
                    counters: BackendCounters | None) -> None:
    """Give each call's client its part of the backend's work in this backend call:
    tokens and cache counts in proportion to its contexts (largest remainders, so the
    parts add up to the call's whole); the forward passes (and their batch sizes) to
    every call it answered, so a request's ``forward_calls`` counts the passes it shared.
    (Work of a combined call that failed, before each call was retried alone, is given
    to no one.)"""
    total = sum(len(c.contexts) for c in calls)
    if total == 0:
        return
    passes = after["forward_calls"] - before["forward_calls"]
    sizes = list(counters.batch_sizes[before["batches"]:]) if counters is not None else []
    for name in _SPLIT_COUNTERS:
        work = after[name] - before[name]
        exact = [work * len(c.contexts) / total for c in calls]
        parts = [int(x) for x in exact]
        by_remainder = sorted(range(len(calls)), key=lambda i: parts[i] - exact[i])
        for i in by_remainder[:work - sum(parts)]:
            parts[i] += 1
        for call, part in zip(calls, parts):
            setattr(call.counters, name, getattr(call.counters, name) + part)
    for call in calls:
        call.counters.forward_calls += passes
        call.counters.batch_sizes.extend(sizes)


class BackendClient:
    """One search's view of a ``SharedBackend``: the real backend's attributes, its own
    counters, and ``next_logprobs`` through the shared door (``decode``, on a backend that
    decodes natively, goes straight to the engine, which batches concurrent requests
    itself). Use it as a context manager
    around the search (``with shared.client() as backend:``) so that dispatches wait for
    its calls. It has no ``clear_cache``: one request must not empty the cache the
    others use."""

    def __init__(self, shared: SharedBackend):
        backend = shared.backend
        self.shared = shared
        self.name = model_name(backend)
        self.capabilities = backend.capabilities
        self.eos_token_ids = backend.eos_token_ids
        self.bos_ids = backend.bos_ids
        self.default_stop_strings = stop_strings_of(backend)
        self.decodes_natively = decodes_natively(backend)
        self.counters = BackendCounters()
        """This search's share of the backend's work (``_share_counters``)."""

    def __enter__(self) -> BackendClient:
        self.shared.enter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shared.leave()

    def tokenize(self, text: str) -> list[int]:
        return self.shared.tokenize(text)

    def detokenize(self, token_ids: Sequence[int]) -> str:
        return self.shared.detokenize(token_ids)

    def render_prompt(self, messages: Sequence[Mapping[str, str]]) -> list[int]:
        return self.shared.render_prompt(messages)

    def next_logprobs(self, contexts: Sequence[Sequence[int]], *,
                      top_k: int | None = None) -> list[TokenDistribution]:
        return self.shared.submit(contexts, top_k, self.counters)

    def decode(self, requests: Sequence[DecodeRequest]) -> list[Decoded]:
        """The engine's own continuation (only where ``decodes_natively``), counted as one
        forward call and its tokens as decode tokens of this search. It does not pass the
        door: the engine batches concurrent requests itself (the shared counters a
        dispatch divides may then include a concurrent continuation's work)."""
        out = self.shared.backend.decode(list(requests))  # type: ignore[attr-defined]
        self.counters.forward_calls += 1
        self.counters.decode_tokens += sum(len(d.tokens) for d in out)
        return out
