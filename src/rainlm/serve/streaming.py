"""Server-sent events in OpenAI's streaming format, fed by the search's commits.

Only committed text is sent: RAIN may rewind anything it has not committed, so the
chunks follow ``ProgressEvent.committed_text`` (updated after each commit), never the
search's imaginings. Text that may still change is held back until it is final:
anything from the start of a possible stop string, trailing whitespace (tokenizer
clean-up may merge it with what follows) and an incomplete UTF-8 character ("\\ufffd").
Whatever remains is sent once the answer is final, so the chunks always concatenate to
the recorded answer.

With the ``refuse`` policy nothing is streamed before the fail-safe has judged the
whole answer (text already sent cannot be recalled): the client then receives the
answer (or the refusal message) in one chunk at the end.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from rainlm.backends.base import stop_strings_of
from rainlm.serve.engine import Engine, Job, JobFailed, NotReady
from rainlm.serve.errors import error_body, failure_body
from rainlm.serve.responses import openai_finish_reason, rain_object, usage_of
from rainlm.serve.schemas import CHAT

__all__ = ["sse", "DONE_EVENT", "StreamText", "content_chunk", "final_chunk", "usage_chunk",
           "StartedStream", "start_stream", "stream_job"]

log = logging.getLogger("rainlm.serve")
DONE_EVENT = "data: [DONE]\n\n"
_FINISHED = object()  # queue sentinel: the job is over


def sse(payload: dict[str, Any]) -> str:
    """One server-sent event carrying ``payload`` as JSON."""
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


class StreamText:
    """Tracks what was sent and yields only the safe new part of the committed text."""

    def __init__(self, stop_strings: Sequence[str] = ()):
        self.stop_strings = tuple(s for s in stop_strings if s)
        self.sent = ""

    def safe_prefix(self, text: str) -> str:
        """The part of ``text`` that cannot change any more."""
        cut = len(text)
        for s in self.stop_strings:
            i = text.find(s)
            if i != -1:
                cut = min(cut, i)
            # a suffix that is a proper prefix of a stop string may become one
            for k in range(min(len(s) - 1, len(text)), 0, -1):
                if text.endswith(s[:k]):
                    cut = min(cut, len(text) - k)
                    break
        safe = text[:cut]
        return safe.rstrip().rstrip("\ufffd") if safe.strip() else ""

    def update(self, committed_text: str) -> str:
        """The new safe text since the last call ("" when nothing new is safe)."""
        safe = self.safe_prefix(committed_text)
        if len(safe) > len(self.sent) and safe.startswith(self.sent):
            delta = safe[len(self.sent):]
            self.sent = safe
            return delta
        return ""

    def finish(self, final_text: str) -> str:
        """The rest of the final answer. If it does not extend what was sent (it always
        should), log it: sent text cannot be recalled."""
        if final_text.startswith(self.sent):
            rest = final_text[len(self.sent):]
        else:
            log.warning("streamed text %r is not a prefix of the final answer %r",
                        self.sent, final_text)
            common = 0
            while (common < min(len(final_text), len(self.sent))
                   and final_text[common] == self.sent[common]):
                common += 1
            rest = final_text[common:] if common == len(self.sent) else ""
        self.sent += rest
        return rest


# ------------------------------------------------------------------------- chunks
def _base(endpoint: str, trace_id: str, created: int, model: str) -> dict[str, Any]:
    obj = "chat.completion.chunk" if endpoint == CHAT else "text_completion"
    return {"id": trace_id, "object": obj, "created": created, "model": model}


def content_chunk(endpoint: str, trace_id: str, created: int, model: str, text: str, *,
                  role: bool = False) -> dict[str, Any]:
    """A chunk carrying ``text`` (chat: ``delta.content``; completions: ``text``)."""
    out = _base(endpoint, trace_id, created, model)
    if endpoint == CHAT:
        delta: dict[str, Any] = {"role": "assistant", "content": text} if role else {"content": text}
        out["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}]
    else:
        out["choices"] = [{"index": 0, "text": text, "logprobs": None, "finish_reason": None}]
    return out


def final_chunk(endpoint: str, outcome: Any, created: int, model: str) -> dict[str, Any]:
    """The last content-less chunk: finish_reason, usage and the ``rain`` object."""
    out = _base(endpoint, outcome.record.id, created, model)
    finish = openai_finish_reason(outcome.record.finish_reason, refused=outcome.refused)
    if endpoint == CHAT:
        out["choices"] = [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish}]
    else:
        out["choices"] = [{"index": 0, "text": "", "logprobs": None, "finish_reason": finish}]
    out["usage"] = usage_of(outcome)
    out["rain"] = rain_object(outcome)
    return out


def usage_chunk(endpoint: str, outcome: Any, created: int, model: str) -> dict[str, Any]:
    """``stream_options.include_usage``: an extra chunk with no choices and the usage."""
    out = _base(endpoint, outcome.record.id, created, model)
    out["choices"] = []
    out["usage"] = usage_of(outcome)
    return out


# ------------------------------------------------------------------------- the stream
@dataclass
class StartedStream:
    """A streaming job already submitted to the worker, and its progress events."""

    task: asyncio.Future
    """Resolves to the JobOutcome (or raises JobFailed)."""
    events: asyncio.Queue
    """ProgressEvents from the scheduler's thread, then ``_FINISHED``."""


def start_stream(engine: Engine, job: Job) -> StartedStream:
    """Submit ``job`` now (before the response starts), so that its queue place is
    released and its record written even if the client leaves before the first byte."""
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[Any] = asyncio.Queue()

    def on_progress(event: Any) -> None:  # the scheduler's thread: must not raise or block
        try:
            loop.call_soon_threadsafe(events.put_nowait, event)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            pass

    # refuse policy: buffer everything until the fail-safe has judged the final answer
    if job.request.policy != "refuse":
        job.on_progress = on_progress
    task = asyncio.ensure_future(engine.run(job))
    task.add_done_callback(lambda t: events.put_nowait(_FINISHED))
    task.add_done_callback(_retrieve)
    return StartedStream(task, events)


async def stream_job(engine: Engine, job: Job, model: str,
                     started: StartedStream) -> AsyncIterator[str]:
    """Yield the SSE events of a job started with ``start_stream``; commits are handed
    over from the scheduler's thread with ``loop.call_soon_threadsafe``."""
    req = job.request
    task, events = started.task, started.events
    sender = StreamText(req.params.config.answers.stop_strings + stop_strings_of(engine.backend))
    try:
        yield sse(content_chunk(req.endpoint, job.trace_id, job.created, model, "", role=True))
        steps = 0
        while True:
            event = await events.get()
            if event is _FINISHED:
                break
            if event.steps <= steps:
                continue
            steps = event.steps
            delta = sender.update(event.committed_text)
            if delta:
                yield sse(content_chunk(req.endpoint, job.trace_id, job.created, model, delta))
        try:
            outcome = task.result()
        except JobFailed as exc:
            _, body = failure_body(exc)
            yield sse(body)
            yield DONE_EVENT
            return
        except NotReady:  # dropped from the queue because the server is stopping
            yield sse(error_body(503, "the server is shutting down; retry later",
                                 code="model_stopping"))
            yield DONE_EVENT
            return
        rest = sender.finish(outcome.text)
        if rest:
            yield sse(content_chunk(req.endpoint, job.trace_id, job.created, model, rest))
        yield sse(final_chunk(req.endpoint, outcome, job.created, model))
        if req.include_usage:
            yield sse(usage_chunk(req.endpoint, outcome, job.created, model))
        yield DONE_EVENT
    finally:
        if not task.done():  # the client went away: skip the job if it has not started
            job.cancelled.set()


def _retrieve(task: asyncio.Future) -> None:
    """Mark a finished task's exception as seen (a disconnected stream never reads it)."""
    if not task.cancelled():
        task.exception()
