"""The workers: up to ``max_concurrent`` searches at once, in arrival order, each audited.

Each admitted request runs on a worker thread of its own (an executor of
``max_concurrent`` threads); the others wait in arrival order (at most ``queue_size``;
more get 429). The searches share the model through ``SharedBackend``: a worker hands
its request's searches to one scheduler (``core/shared_backend.py``, the one
``generate_many`` uses), which advances every request's search in the same rounds and
sends their model calls to the backend as whole batches, so concurrent requests share
forward passes. The event loop only admits requests and awaits their futures.

Every admitted request ends in exactly one ``TraceRecord`` written by the worker: the
answer, its scores and search trace on success; ``error`` set when it failed. A client
that disconnects while its request waits is skipped (recorded as such); a search
already running finishes (it is bounded by its time budget) and is recorded, so a
disconnect never wedges the worker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import socket
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from rainlm.backends.base import model_name, set_cache_budget
from rainlm.core.shared_backend import SharedBackend
from rainlm.jsonable import json_ready
from rainlm.request import Answer, FinalJudge, answer, score_answer
from rainlm.serve.errors import is_request_error
from rainlm.serve.policy import apply_policy
from rainlm.serve.schemas import ParsedRequest
from rainlm.serve.settings import ServerSettings
from rainlm.similarity.base import SerialEmbedder
from rainlm.trace.from_result import new_trace_id, record_from_result
from rainlm.trace.records import STARTED, TraceRecord

__all__ = ["Engine", "Job", "JobOutcome", "JobFailed", "QueueFull", "NotReady", "new_trace_id"]

log = logging.getLogger("rainlm.serve")
LOADING, READY, FAILED, STOPPING = "loading", "ready", "failed", "stopping"


class QueueFull(Exception):
    """The queue is full; retry after ``retry_after_s`` seconds."""

    def __init__(self, retry_after_s: int):
        super().__init__(f"queue full; retry after {retry_after_s} s")
        self.retry_after_s = retry_after_s


class NotReady(Exception):
    """The model is loading, failed to load, or the server is stopping."""

    def __init__(self, state: str, detail: str = ""):
        super().__init__(detail or state)
        self.state = state
        self.detail = detail


@dataclass
class Job:
    """One admitted request on its way through the worker."""

    trace_id: str
    request: ParsedRequest
    created_at: str
    """ISO-8601 UTC time the request arrived."""
    created: int
    """Unix time the request arrived (the response's ``created``)."""
    arrived: float
    """``time.perf_counter()`` when the request arrived."""
    on_progress: Callable[[Any], None] | None = None
    """Called with every ProgressEvent (streaming), on the shared scheduler's thread: it
    must not block."""
    cancelled: threading.Event = field(default_factory=threading.Event)
    """Set when the client went away: a job that has not started is skipped."""
    generation_budget_s: float | None = None
    """Seconds the generation ran under: the request's ``time_budget_s`` less the time
    kept for the fail-safe's judgement (``generation_budget``; None: no time budget).
    The record keeps the request's budget."""

    @property
    def score_reserve_s(self) -> float:
        """Seconds of the time budget kept for the fail-safe's judgement."""
        asked = self.request.params.config.budgets.time_budget_s
        if asked is None or self.generation_budget_s is None:
            return 0.0
        return round(asked - self.generation_budget_s, 4)


@dataclass(frozen=True)
class JobOutcome:
    """A finished request: what to send and what was recorded."""

    record: TraceRecord
    text: str
    """What the client receives (the refusal message when refused)."""
    prompt_tokens: int
    completion_tokens: int

    @property
    def refused(self) -> bool:
        return self.record.policy is not None and self.record.policy.action == "refused"


class JobFailed(Exception):
    """The search (or scoring, or the audit write) failed after the request was admitted."""

    def __init__(self, record: TraceRecord | None, cause: BaseException):
        super().__init__(str(cause))
        self.record = record
        self.cause = cause


SCORE_RATE_WINDOW = 16
"""Recent fail-safe judgements ``expected_judgement_seconds`` learns from."""
LENGTH_RATIO = 1.5
"""Two judgements give a slope only when one judged this many times the other's tokens."""


def expected_judgement_seconds(recent: Sequence[tuple[int, float]], tokens: int) -> float:
    """Expected seconds of the fail-safe's judgement of ``tokens`` judged tokens (prompt +
    answer), from ``recent`` judgements as (judged tokens, seconds). A judgement has a
    fixed cost (the judge's own prompt, both option orders) and a part that grows with
    the text, so this fits a line a + b × tokens robustly (Theil–Sen: b the median slope
    between judgements whose lengths differ by at least ``LENGTH_RATIO``, a the median of
    seconds − b × tokens; both ≥ 0) and adds the median distance from the line. A robust
    fit, because the first judgement after start-up encodes the judge's prompt cold and
    takes several times longer. Pricing per token alone made a long prompt's judgement
    look ~10× dearer than it was (``benchmarks/RESULTS.md``, "Time budgets bound a
    request"); it remains the cautious answer while no two lengths differ enough. 0 when
    nothing was measured."""
    recent = list(recent)
    if not recent:
        return 0.0
    slopes = [(s2 - s1) / (t2 - t1) for i, (t1, s1) in enumerate(recent)
              for t2, s2 in recent[i + 1:] if max(t1, t2) >= LENGTH_RATIO * max(1, min(t1, t2))]
    if not slopes:
        return sum(s for _, s in recent) / max(1, sum(t for t, _ in recent)) * tokens
    slope = max(0.0, statistics.median(slopes))
    fixed = max(0.0, statistics.median(s - slope * t for t, s in recent))
    spread = statistics.median(abs(s - (fixed + slope * t)) for t, s in recent)
    return fixed + slope * tokens + spread


def generation_budget(time_budget_s: float | None, judgement_s: float) -> float | None:
    """The part of a request's time budget its generation may use: the budget less the
    expected time of the fail-safe's judgement of the answer
    (:func:`expected_judgement_seconds`), so that the judgement also ends within the
    budget — but never less than half the budget. None (no budget) stays None; before
    any judgement is measured (``judgement_s`` 0) the whole budget is the generation's."""
    if time_budget_s is None or judgement_s <= 0:
        return time_budget_s
    return max(time_budget_s / 2, time_budget_s - judgement_s)


class Engine:
    """Owns the backend, the worker threads, the admission counter and the store."""

    def __init__(self, settings: ServerSettings, store: Any):
        self.settings = settings
        self.store = store
        self.backend: Any = None
        self.shared: SharedBackend | None = None  # the scheduler every search runs in
        self.embedder: Any = None
        self.state = LOADING
        self.load_error: str | None = None
        self._executor = ThreadPoolExecutor(max_workers=settings.max_concurrent,
                                            thread_name_prefix="rain-worker")
        self._lock = threading.RLock()  # re-entrant: the signal handler runs on the loop's thread
        self._admitted = 0  # waiting + running
        self._running = 0  # searches running now
        self._recent_s: deque[float] = deque(maxlen=16)  # service times of recent jobs, s
        # recent fail-safe judgements: (judged prompt + answer tokens, seconds)
        self._judgements: deque[tuple[int, float]] = deque(maxlen=SCORE_RATE_WINDOW)
        self._queued: dict[str, tuple[Job, Future]] = {}  # submitted, not started yet
        self._stop_searches = threading.Event()  # set: running searches end at their next call
        self._idle = threading.Event()  # set while no job runs
        self._idle.set()
        self.owner = f"rain serve@{socket.gethostname()}:{settings.port}"
        """Who writes this server's "started" records (``TraceStore.mark_unfinished``):
        host and port, so a second server on the same machine and database does not
        take the first one's running requests for its own unfinished ones."""

    # ------------------------------------------------------------------ lifecycle
    def start(self, services: Any, backend: Any = None,
              on_ready: Callable[[], None] | None = None) -> Future:
        """Mark the records an earlier run of this server left unfinished, then load the
        backend (unless given) and the embedder on the worker thread."""
        marked = self.store.mark_unfinished(self.owner)
        if marked:
            log.warning("rain serve: %d request(s) an earlier run of this server did not "
                        "finish are marked \"interrupted\" in the audit trail", marked)
        return self._executor.submit(self._load, services, backend, on_ready)

    def abandon(self, job: Job, opened: asyncio.Future) -> None:
        """The client left while its record was being opened: free its place and record
        why it never ran (nothing to do when the record could not be opened: that freed
        the place already)."""
        if opened.cancelled() or opened.exception() is not None:
            return
        self._release()
        try:
            self.store.record(self._error_record(
                job, ConnectionAbortedError("the client disconnected before its search "
                                            "started"), None, time.perf_counter()),
                owner=self.owner)
        except Exception:
            log.exception("rain serve: could not record the abandoned request %s", job.trace_id)

    def open_record(self, job: Job) -> None:
        """Write the request's "started" record: before its search starts and before any
        byte of its answer leaves the server, so a trace id a client holds always names
        a record, even if this process is killed (a restart marks it "interrupted").
        On a failing store the admitted place is freed and the error raised."""
        try:
            self.store.record(self._base_record(job, finish_reason=STARTED, stats={}),
                              owner=self.owner)
        except Exception:
            self._release()
            raise

    def _load(self, services: Any, backend: Any, on_ready: Callable[[], None] | None) -> None:
        try:
            if backend is None:
                backend = services.open_backend(self.settings.model, self.settings.device,
                                                tokenizer=self.settings.tokenizer)
            if self.settings.cache_mb is not None and not set_cache_budget(
                    backend, self.settings.cache_mb):
                log.warning("rain serve: --cache-mb ignored: %s has no prefix-cache budget",
                            model_name(backend))
            embedder = services.load_embedder(self.settings.embedder, self.settings.device)
            # an encoder object is shared by the searches (one call at a time)
            self.embedder = SerialEmbedder(embedder) if hasattr(embedder, "embed") else embedder
            self.shared = SharedBackend(backend)
            self.backend = backend
        except Exception as exc:  # reported on /health and as 503s; the process stays up
            log.exception("rain serve: loading the model failed")
            self.load_error = f"{type(exc).__name__}: {exc}"
            self.state = FAILED
            return
        if self.state == LOADING:
            self.state = READY
            if on_ready is not None:
                on_ready()

    def begin_shutdown(self, timeout_s: float) -> None:
        """First step of a graceful stop (the first SIGTERM/SIGINT): refuse new work,
        record every queued request as rejected (its client gets 503), and let the
        running searches go on for at most ``timeout_s`` seconds before they are stopped
        at their next model call (their answers so far are then recorded, finish reason
        "stopped"). Returns at once."""
        if self.state == STOPPING:
            return
        self.state = STOPPING
        with self._lock:
            queued = list(self._queued.values())
        rejected = 0
        for job, future in queued:
            if future.cancel():  # not started yet (a started one goes on, see below)
                self._reject(job)
                rejected += 1
        timer = threading.Timer(timeout_s, self._stop_searches.set)
        timer.daemon = True
        timer.start()
        log.warning("rain serve: shutting down: %d queued request(s) rejected; running "
                    "searches may go on for %.0f s", rejected, timeout_s)

    def stop(self, timeout_s: float = 0.0) -> None:
        """Stop now (the second signal, or the end of the server): as begin_shutdown, then
        stop the running searches at their next model call and wait until their records
        are written, so nothing is lost when the store closes afterwards."""
        self.begin_shutdown(timeout_s)
        if not self._idle.wait(timeout_s):
            self.stop_searches_now()
        self._executor.shutdown(wait=True, cancel_futures=True)
        if self.shared is not None:
            self.shared.close()

    def stop_searches_now(self) -> None:
        """Stop the running searches at their next model call (they are still recorded)."""
        self._stop_searches.set()

    def _reject(self, job: Job) -> None:
        """Record a queued request dropped by a shutdown (its search never started)."""
        try:
            self.store.record(self._error_record(
                job, ConnectionAbortedError("rejected: the server shut down before this "
                                            "request's search started"), None,
                time.perf_counter(), finish_reason="rejected"), owner=self.owner)
        except Exception:  # the store is failing: say so, the rest still shuts down
            log.exception("rain serve: could not record the rejected request %s", job.trace_id)

    @property
    def model_name(self) -> str:
        if self.settings.model_name:
            return self.settings.model_name
        if self.backend is not None:
            return model_name(self.backend)
        return self.settings.model or "SmolLM2-135M-Instruct"

    def health(self) -> dict[str, Any]:
        with self._lock:
            # queued: handed to the workers, not started (a request admitted a moment
            # ago but not handed over yet is not counted: a shutdown could not see it)
            depth = len(self._queued)
            running = self._running
        status = {READY: "ok"}.get(self.state, self.state)
        out = {"status": status, "model": self.model_name, "queue_depth": depth,
               "queue_size": self.settings.queue_size, "busy": running > 0,
               "running": running, "max_concurrent": self.settings.max_concurrent}
        if self.shared is not None:
            out["batching"] = self.shared.batch_stats()
        if self.load_error:
            out["error"] = self.load_error
        return out

    # ------------------------------------------------------------------ admission
    def check_ready(self) -> None:
        if self.state != READY:
            detail = self.load_error or ""
            raise NotReady(self.state, detail)

    def admit(self) -> None:
        """Take a place in the queue, or raise QueueFull."""
        self.check_ready()
        with self._lock:
            if self._admitted >= self.settings.queue_size + self.settings.max_concurrent:
                raise QueueFull(self._retry_after())
            self._admitted += 1

    def _turn_away(self, job: Job) -> NotReady:
        """Free an admitted job's place, record it as rejected; the error to raise."""
        self._release()
        self._reject(job)
        return NotReady(STOPPING)

    def _forget(self, job: Job) -> None:
        with self._lock:
            self._queued.pop(job.trace_id, None)

    def _release(self, _future: Any = None) -> None:
        with self._lock:
            self._admitted -= 1

    def _retry_after(self) -> int:
        """Seconds until a place is likely free: mean recent job time × jobs ahead ÷ the
        searches that run at once."""
        if not self._recent_s:
            return self.settings.retry_after_s
        mean = sum(self._recent_s) / len(self._recent_s)
        ahead = max(1, self._admitted - self.settings.queue_size - self.settings.max_concurrent + 1)
        return max(1, min(600, math.ceil(mean * ahead / self.settings.max_concurrent)))

    async def run(self, job: Job) -> JobOutcome:
        """Run an admitted job on the worker; raises JobFailed. Cancelling the caller
        does not cancel a running job (it is still recorded)."""
        with self._lock:
            stopping = self.state == STOPPING
        if stopping:  # a shutdown began between admit and here: recorded as rejected
            raise self._turn_away(job)
        with self._lock:  # the worker takes the lock too: it cannot start before this
            try:
                future = self._executor.submit(self._run_job, job)
            except RuntimeError:  # executor shut down between admit and submit
                raise self._turn_away(job) from None
            self._queued[job.trace_id] = (job, future)
        future.add_done_callback(lambda f: self._forget(job))
        future.add_done_callback(self._release)
        try:
            return await asyncio.shield(asyncio.wrap_future(future))
        except asyncio.CancelledError:
            job.cancelled.set()
            if future.cancelled():  # dropped from the queue by stop(): never started
                raise NotReady(STOPPING) from None
            raise

    # ------------------------------------------------------------------ the work
    def _run_job(self, job: Job) -> JobOutcome:
        started = time.perf_counter()
        with self._lock:
            self._running += 1
            self._queued.pop(job.trace_id, None)
            self._idle.clear()
        done = None
        try:
            if job.cancelled.is_set():
                raise ConnectionAbortedError("the client disconnected before its search started")
            backend = self.shared.client()  # this request's view of the shared scheduler
            done = self._answer(job, backend)
            done = self._judge(done, backend)  # (a failure keeps the answer's stats)
            outcome = self._finish(job, done, started, backend)
            self.store.record(outcome.record, owner=self.owner)
            return outcome
        except Exception as exc:
            record = self._error_record(job, exc, done, started)
            try:
                self.store.record(record, owner=self.owner)
            except Exception:  # the store itself is failing: log, answer 500 anyway
                log.exception("rain serve: could not write the audit record %s", job.trace_id)
                record = None
            if not isinstance(exc, ConnectionAbortedError):
                log.error("rain serve: request %s failed: %s", job.trace_id, exc,
                          exc_info=not is_request_error(exc))
            raise JobFailed(record, exc) from exc
        finally:
            with self._lock:
                self._running -= 1
                self._recent_s.append(time.perf_counter() - started)
                if self._running == 0:
                    self._idle.set()

    def _answer(self, job: Job, backend: Any) -> Answer:
        """The request's answer, not judged yet (``_judge``), under the time budget left
        after the expected judgement."""
        from rainlm.api import prompt_token_ids

        req = job.request
        params = req.params
        budget = params.config.budgets.time_budget_s
        if budget is not None and self._judgements:
            tokens = len(prompt_token_ids(backend, req.prompt, req.messages,
                                          params.continuation)) + params.max_new_tokens
            budget = generation_budget(budget, expected_judgement_seconds(self._judgements,
                                                                          tokens))
        job.generation_budget_s = None if budget is None else round(budget, 4)
        if budget != params.config.budgets.time_budget_s:
            params = params.replace(config=params.config.replace(time_budget_s=budget))
        if self.settings.policy_file is not None:  # the policy judges every search
            params = params.replace(policy=self.settings.policy_file)
        return answer(backend, req.prompt, params, embedder=self.embedder, score=False,
                      stop=self._stop_searches, on_progress=job.on_progress)

    def _judge(self, done: Answer, backend: Any) -> Answer:
        """The answer with the fail-safe's judgement: the policy file's value
        (``rainlm.policy.judging``) or the server's preset's rubric and orders, whatever
        the request chose for its search; its time is remembered for the next requests'
        budgets."""
        judge = FinalJudge.of(self.settings.preset)
        if self.settings.policy_file is not None:
            from rainlm.policy.judging import judge_answer

            done = judge_answer(backend, done, self.settings.policy_file,
                                judge_orders=judge.judge_orders)
        else:
            done = score_answer(backend, done, judge)
        result = done.result
        self._judgements.append((len(result.prompt_token_ids) + len(result.token_ids),
                                 done.score_s))
        return done

    def _finish(self, job: Job, done: Answer, started: float, backend: Any) -> JobOutcome:
        req = job.request
        result = done.result
        policy = apply_policy(req.policy, req.threshold, done.score, result.text,
                              self.settings.refusal_message)
        stats = dict(result.stats)
        stats.update(queue_s=round(started - job.arrived, 4), score_s=round(done.score_s, 4),
                     score_reserve_s=job.score_reserve_s,
                     generation_budget_s=job.generation_budget_s,
                     total_s=round(time.perf_counter() - job.arrived, 4))
        record = record_from_result(
            _as_requested(result, req), trace_id=job.trace_id, created_at=job.created_at,
            endpoint=req.endpoint, request=req.body, detokenize=backend.detokenize,
            answer=policy.text, model=self.model_name, scores=done.scores(),
            stats=stats, policy=policy.decision, review_state=policy.review_state)
        return JobOutcome(record=record, text=policy.text,
                          prompt_tokens=len(result.prompt_token_ids),
                          completion_tokens=len(result.token_ids))

    def _error_record(self, job: Job, exc: BaseException, done: Answer | None,
                      started: float, finish_reason: str = "error") -> TraceRecord:
        stats = dict(done.result.stats) if done is not None else {}
        stats.update(queue_s=round(started - job.arrived, 4),
                     total_s=round(time.perf_counter() - job.arrived, 4))
        return self._base_record(job, finish_reason=finish_reason, stats=stats,
                                 error=f"{type(exc).__name__}: {exc}")

    def _base_record(self, job: Job, *, finish_reason: str, stats: dict[str, Any],
                     error: str | None = None) -> TraceRecord:
        """A record of the request with no answer (started, failed or rejected)."""
        req = job.request
        params = req.params
        return TraceRecord(
            id=job.trace_id, created_at=job.created_at, endpoint=req.endpoint,
            request=req.body, model=self.model_name,
            config=json_ready(params.config.to_dict()) if params.method == "rain" else None,
            seed=params.seed if params.method == "rain" else None, answer="",
            finish_reason=finish_reason, stats=json_ready(stats), error=error)


def _as_requested(result: Any, req: ParsedRequest) -> Any:
    """``result`` with the request's own config: a RAIN search may have run under a
    smaller time budget (the judgement's reserve, ``stats.generation_budget_s``), but
    the audit record shows what the request asked for."""
    if result.config is None or result.config == req.params.config:
        return result
    return dataclasses.replace(result, config=req.params.config)
