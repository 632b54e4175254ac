"""Several searches advanced together, sharing forward passes: the one batching path.

Each search is a resumable state machine (``rainlm.backends.steps``): a generator that
yields the model call it needs next. A ``Scheduler`` holds the searches in flight and,
round after round, answers the calls all of them are waiting for **together**:

- next-token calls to the same model (with the same ``top_k``, unless the model returns
  whole distributions and ignores it) — the searches' own, and their self-evaluation's,
  which yields its calls too — go out as **one** ``next_logprobs`` call: the
  transformers backend runs contexts that extend different cached prefixes in one
  batched forward pass, an engine gets one request with every prompt. On an in-process
  model, whether a round's calls of several searches are merged or sent one search at
  a time may be measured and chosen (``core.merge_choice``: ``rain serve`` does; by
  default ``run_together`` always merges, so its batches do not depend on timing);
- continuations (imagined completions and greedy finishes on a backend that decodes
  natively, ``backends.decoding``) to the same model go out as one ``decode`` call;
- embedder calls to the same embedder go out as one ``embed`` call;
- calls to the same rule evaluator go out as one ``evaluate`` call.

On a backend that takes concurrent calls (an engine over HTTP:
``backends.base.takes_concurrent_calls``) the model calls go out on threads and the
searches do not wait for each other: a search whose call came back is resumed at once
and its next call goes out with those of every other search ready at that moment, while
slower calls (another search's continuation) are still on their way; the engine batches
the concurrent requests itself. An in-process model answers the calls one after another,
round by round.

Then every search is resumed with its own part of the answers and runs (plain Python:
selection, back-up, its seeded draws) to its next call. A search gets exactly the
results it would get alone, in the same order, so its tree is the tree it grows alone
(with a real model, batched arithmetic may differ in the last bits: see the backends'
"cached equals fresh" tolerances) — unless a time budget ends it: the searches share
the clock, and (on an in-process model) each round waits for the whole batch. Its seconds (``phase_seconds``,
the speed a greedy finish is reserved by) are likewise those of the shared rounds. A
call that fails, when several shared it, is retried alone for each of them, so an error
reaches only the search that caused it; a search that raises ends with its error and
the others go on.

Three drivers use it: ``run_together`` (``generate_many``: a fixed set of searches, run
to their ends on the caller's thread), ``run_alone`` (``generate`` and ``greedy``, so the
CLI and the benchmarks: one search) and ``core.shared_backend`` (``rain serve``: searches
join and leave between rounds, on one thread of their own).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, InvalidStateError, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, TypeVar

from rainlm.backends.base import Backend, BackendCounters, takes_concurrent_calls, top_k_key
from rainlm.backends.decoding import continuations_of
from rainlm.backends.steps import Continuations, ModelCall, NextDists, Steps
from rainlm.core.merge_choice import MergeChoice
from rainlm.core.model_calls import EmbedTexts, JudgeTexts
from rainlm.core.work_shares import share_work, snapshot

__all__ = ["BatchCounts", "Finished", "Scheduler", "answering_model", "run_alone", "run_together"]

T = TypeVar("T")

CONCURRENT_CALLS = 16
"""Most calls on their way at once to a backend that takes concurrent calls."""


@dataclass
class Finished:
    """How one search of a ``Scheduler`` ended."""

    value: Any = None
    """What the search returned (None when it failed)."""
    error: BaseException | None = None
    """What it raised (None when it returned)."""
    ended: bool = False
    """Whether it has ended (value or error are final)."""


@dataclass
class BatchCounts:
    """What the batching achieved (read after the rounds)."""

    rounds: int = 0
    """Rounds: each sends every call the searches in flight were waiting for (on an
    in-process model it also answers them; on an engine it resumes the searches whose
    calls came back)."""
    searches_per_model_call: list[int] = field(default_factory=list)
    """For each ``next_logprobs`` call made (one per model per round; per ``top_k`` too
    on a sparse backend; one per search where merging was measured slower), how many
    searches' calls it answered (its batch size)."""
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


def answering_model(model: Any) -> Any:
    """The backend that really answers ``model``'s calls: a view of a shared backend (a
    ``rain serve`` request's client) names it as ``stands_for``, so that calls made
    through different views of one model are answered together."""
    return getattr(model, "stands_for", None) or model


@dataclass
class _Search:
    steps: Steps[Any]
    finished: Finished
    counters: BackendCounters | None
    """Receives the search's share of the backend's work (None: not kept)."""


class Scheduler:
    """Searches in flight, advanced together one round at a time (module docstring).
    Not thread-safe: one thread adds searches and runs the rounds."""

    def __init__(self, backend: Backend, *, counts: BatchCounts | None = None,
                 merge: MergeChoice | None = None,
                 clock: Callable[[], float] = time.perf_counter,
                 lock: threading.Lock | None = None):
        self.backend = answering_model(backend)
        """Answers the calls that name no model of their own."""
        self.counts = counts if counts is not None else BatchCounts()
        self.merge = merge
        """Chooses between merged and one-search-at-a-time next-token calls to an
        in-process model (None: always merged)."""
        self.clock = clock
        self._new: list[_Search] = []
        self._waiting: dict[int, tuple[_Search, ModelCall]] = {}
        self._ids = 0
        self.lock = lock if lock is not None else threading.Lock()
        """Guards the counts (concurrent calls count from their own threads; a scheduler
        that takes over another's counts takes its lock too)."""
        self._pool: ThreadPoolExecutor | None = None  # concurrent calls' threads
        self._answering: dict[int, _Search] = {}  # calls taken, their searches not resumed yet
        self._flying: dict[Future, list[tuple[int, _Search, ModelCall]]] = {}
        self._wakeup: Future = Future()  # set by ``wake``: a round's wait ends
        self._last_done: dict[str, int] | None = None  # the backend's counts at the last
        # concurrent call's end: each such call's work is what was counted since

    def add(self, steps: Steps[Any], counters: BackendCounters | None = None) -> Finished:
        """Start ``steps`` in the next round; its ``Finished`` is filled when it ends."""
        search = _Search(steps, Finished(), counters)
        self._new.append(search)
        return search.finished

    @property
    def busy(self) -> bool:
        """Whether a search is in flight (or waits to start)."""
        return bool(self._new or self._waiting or self._flying)

    @property
    def in_flight(self) -> int:
        """Searches started or waiting to start, not ended."""
        return (len(self._new) + len(self._waiting)
                + sum(len(job) for job in self._flying.values()))

    def run_round(self) -> list[Finished]:
        """Start the searches added since the last round, send every call waiting, and
        resume each search whose call was answered to its next call. A call to a backend
        that takes concurrent calls goes out on a thread of its own and does not hold
        the round: the round resumes the searches whose calls have come back (waiting
        for the first, or for ``wake``, when nothing else was answered). Returns the
        searches that ended."""
        ended: list[Finished] = []
        new, self._new = self._new, []
        for search in new:
            self._resume(search, ended)
        answered = bool(ended)
        if self._waiting:
            calls, self._waiting = self._waiting, {}
            self._answering.update((i, search) for i, (search, _) in calls.items())
            self.counts.rounds += 1
            for kind, job, split in self._jobs(calls):
                if self._concurrent(job[0][2]):
                    if self._last_done is None:
                        self._last_done = snapshot(self.backend)
                    self._flying[self._executor().submit(self._answer_group, job, True)] = job
                else:
                    self._answer_inline(kind, job, split, ended)
                    answered = True
        if self._flying:
            if answered:
                done = [f for f in self._flying if f.done()]
            else:
                done = list(wait([*self._flying, self._wakeup],
                                 return_when=FIRST_COMPLETED).done)
            if self._wakeup.done():
                self._wakeup = Future()
            for future in done:
                if future in self._flying:
                    answers = future.result()
                    self._deliver(self._flying.pop(future), answers, ended)
        return ended

    def wake(self) -> None:
        """End a round's wait for calls on their way now (another thread has searches to
        add: ``core.shared_backend``)."""
        try:
            self._wakeup.set_result(None)
        except InvalidStateError:  # woken already
            pass

    def close(self, error: BaseException | None = None) -> list[Finished]:
        """End every search in flight now (their ``finally`` clauses run); those not
        ended get ``error`` (default: a RuntimeError saying they were interrupted).
        Calls on their way are not waited for: their answers are dropped (their threads
        still end with their calls; the interpreter joins them at exit)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        left = self._new + [s for s, _ in self._waiting.values()] + list(self._answering.values())
        self._new, self._waiting, self._answering, self._flying = [], {}, {}, {}
        for search in left:
            search.steps.close()
            search.finished.error = error or RuntimeError("the search was interrupted")
            search.finished.ended = True
        return [s.finished for s in left]

    # ------------------------------------------------------------------ internals
    def _resume(self, search: _Search, ended: list[Finished], result: Any = None,
                error: BaseException | None = None) -> None:
        try:  # (sending None to a new generator starts it)
            call = search.steps.throw(error) if error is not None else search.steps.send(result)
        except StopIteration as done:
            search.finished.value = done.value
        except Exception as exc:  # this search failed; the others go on
            search.finished.error = exc
        else:
            self._ids += 1
            self._waiting[self._ids] = (search, call)
            return
        search.finished.ended = True
        ended.append(search.finished)

    def _deliver(self, job: list[tuple[int, _Search, ModelCall]],
                 answers: dict[int, tuple[Any, BaseException | None]],
                 ended: list[Finished]) -> None:
        """Resume each search of ``job`` with its answer."""
        for i, search, _ in job:
            result, error = answers[i]
            del self._answering[i]
            self._resume(search, ended, result, error)

    def _answer_inline(self, kind: Hashable, job: list[tuple[int, _Search, ModelCall]],
                       split: bool, ended: list[Finished]) -> None:
        """Answer ``job`` on this thread (one search at a time when ``split``), measure
        it for the merge choice, and resume its searches."""
        answers: dict[int, tuple[Any, BaseException | None]] = {}
        for part in ([member] for member in job) if split else [job]:
            started = self.clock()
            got = self._answer_group(part)
            answers.update(got)
            failed = any(error is not None for _, error in got.values())
            if self.merge is not None and isinstance(part[0][2], NextDists) and not failed:
                seconds = self.clock() - started
                contexts = sum(len(call.contexts) for _, _, call in part)
                if len(part) == 1:
                    self.merge.note_single(kind, contexts=contexts, seconds=seconds)
                else:
                    self.merge.note_merged(kind, calls=len(part), contexts=contexts,
                                           seconds=seconds)
        self._deliver(job, answers, ended)

    def _jobs(self, calls: dict[int, tuple[_Search, ModelCall]]
              ) -> list[tuple[Hashable, list[tuple[int, _Search, ModelCall]], bool]]:
        """The backend calls that answer one round's ``calls`` (keyed by call): calls
        of one kind to one answerer in one call (kind, members, False), unless they are
        next-token calls to an in-process model that the merge choice sends one search
        at a time (True)."""
        groups: dict[Hashable, list[int]] = {}
        for i, (_, call) in calls.items():
            groups.setdefault(self._group_key(call), []).append(i)
        jobs = []
        for kind, members in groups.items():
            group = [(i, *calls[i]) for i in members]
            split = (self.merge is not None and len(group) > 1
                     and isinstance(group[0][2], NextDists)
                     and not self._concurrent(group[0][2])
                     and not self.merge.merge_next(kind))
            jobs.append((kind, group, split))
        return jobs

    def _concurrent(self, call: ModelCall) -> bool:
        """Whether ``call`` may go out at the same time as the other calls."""
        if isinstance(call, NextDists):
            return takes_concurrent_calls(answering_model(call.backend or self.backend))
        return isinstance(call, Continuations) and takes_concurrent_calls(self.backend)

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(CONCURRENT_CALLS, thread_name_prefix="rain-call")
        return self._pool

    def _group_key(self, call: ModelCall) -> Hashable:
        """Calls with equal keys are answered by one call of one answerer."""
        if isinstance(call, NextDists):
            model = answering_model(call.backend or self.backend)
            return (NextDists, id(model), top_k_key(model, call.top_k))
        if isinstance(call, Continuations):
            return (Continuations,)
        if isinstance(call, JudgeTexts):
            return (JudgeTexts, id(call.evaluator))
        if isinstance(call, EmbedTexts):
            return (EmbedTexts, id(call.embedder))
        return (type(call), id(call))  # a kind this module does not know: answered alone

    def _answer_group(self, group: list[tuple[int, _Search, ModelCall]],
                      concurrent: bool = False) -> dict[int, tuple[Any, BaseException | None]]:
        """One call for the whole group; when it fails (or returns a wrong number of
        results) and several shared it, each is answered alone, so an error reaches only
        the call that caused it. Each search that keeps counters gets its part of the
        work the backend counted for the call (``concurrent``: the call may overlap
        others, so its work is what was counted since the last concurrent call ended —
        the HTTP backend counts a request's work when its answer arrives; the whole is
        counted once, its split between calls that end together is approximate)."""
        calls = [call for _, _, call in group]
        merged, sizes = merge_calls(calls)
        model = (answering_model(merged.backend or self.backend)
                 if isinstance(merged, NextDists) else self.backend)
        before = snapshot(model)
        try:
            if isinstance(merged, NextDists):
                results = model.next_logprobs(merged.contexts, top_k=merged.top_k)
            else:
                results = merged.answer(self.backend)
            if sizes is not None and len(group) > 1 and len(results) != sum(sizes):
                raise ValueError(f"{len(results)} results for {sum(sizes)} asked")  # (retried)
        except Exception as exc:
            if len(group) == 1:
                return {group[0][0]: (None, exc)}
            out: dict[int, tuple[Any, BaseException | None]] = {}
            for member in group:  # alone, a wrong count is the search's to notice
                out.update(self._answer_group([member], concurrent))
            return out
        with self.lock:
            if isinstance(merged, NextDists):
                self.counts.searches_per_model_call.append(len(group))
                self.counts.contexts += len(merged.contexts)
            if isinstance(merged, (NextDists, Continuations)) and model is self.backend:
                after = snapshot(model)
                if concurrent and self._last_done is not None:
                    before, self._last_done = self._last_done, after
                share_work([(s.counters, n) for (_, s, _), n in zip(group, sizes or [1])],
                           model, before, after)
        if sizes is None:
            return {group[0][0]: (results, None)}
        out, at = {}, 0
        for (i, _, _), size in zip(group, sizes):
            out[i] = (results[at:at + size], None)
            at += size
        return out


def merge_calls(calls: list[ModelCall]) -> tuple[ModelCall, list[int] | None]:
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


def run_together(searches: Sequence[Steps[Any]], backend: Backend, *,
                 counts: BatchCounts | None = None,
                 merge: MergeChoice | None = None) -> list[Finished]:
    """Run ``searches`` to their ends together on this thread (module docstring);
    ``backend`` answers the calls that name no model of their own. Returns one
    ``Finished`` per search, in order; ``counts`` (optional) receives the batch sizes;
    ``merge`` (optional) measures and chooses merged or one-search-at-a-time calls
    (None: always merged)."""
    scheduler = Scheduler(backend, counts=counts, merge=merge)
    ended = [scheduler.add(steps) for steps in searches]
    try:
        while scheduler.busy:
            scheduler.run_round()
    finally:  # (interrupted: every search's ``finally`` clauses run now)
        scheduler.close()
        for steps in searches:
            steps.close()
    return ended


def run_alone(steps: Steps[T], backend: Backend) -> T:
    """Run one search to its end through the scheduler and return what it returns (raise
    what it raises): on a shared backend's client (``rain serve``), in its shared
    scheduler; else in a scheduler of its own on this thread."""
    run_steps = getattr(backend, "run_steps", None)
    if run_steps is not None:
        return run_steps(steps)
    [finished] = run_together([steps], backend)
    if finished.error is not None:
        raise finished.error
    return finished.value
