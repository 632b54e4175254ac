"""Model calls as values, so that code which needs the model can be a resumable state
machine: a generator that **yields** each call it needs and is resumed with its result
(``Steps[T]``: yields model calls, returns a T).

The search core (``rainlm.core``) and the model's self-evaluation
(``rainlm.judge.self_eval``) are written this way. Who answers the calls is not their
business:

- ``drive`` answers one generator's calls one at a time, in the order asked;
- ``rainlm.core.scheduler`` advances many searches at once and sends the next-token
  calls (and the continuations) of all of them to the backend as one batch per round
  (``run_together``; ``rain serve``'s shared backend, ``core.shared_backend``).

Either way a generator sees the same results in the same order, so what it computes
does not depend on who answered (nor on how the answerer batched).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from rainlm.backends.base import Backend
from rainlm.backends.decoding import DecodeRequest, decode

__all__ = ["Continuations", "ModelCall", "NextDists", "Steps", "drive"]


class ModelCall(Protocol):
    """One call a generator waits for."""

    def answer(self, backend: Backend) -> Any:
        """The call's result; ``backend``: the model of whoever drives the generator
        (the search's), for calls that name none of their own."""
        ...


T = TypeVar("T")
Steps = Generator[ModelCall, Any, T]
"""A resumable computation: yields model calls, is sent their results, returns a T."""


@dataclass(frozen=True)
class NextDists:
    """A model call: the next-token distribution after each context."""

    contexts: list[list[int]]
    """Token-id contexts (prompt + answer), one per distribution wanted."""
    top_k: int | None = None
    """Passed to ``Backend.next_logprobs`` (None: the backend's default)."""
    backend: Backend | None = None
    """The model to ask; None: the driver's (the search's own model). A judge on a
    model of its own names it."""

    def answer(self, backend: Backend) -> Any:
        return (self.backend or backend).next_logprobs(self.contexts, top_k=self.top_k)


@dataclass(frozen=True)
class Continuations:
    """A model call: continue each request's context by several tokens
    (``rainlm.backends.decoding``: the engine's own decoding, in one request)."""

    requests: list[DecodeRequest]
    """What to continue, one ``Decoded`` wanted per request."""

    def answer(self, backend: Backend) -> Any:
        return decode(backend, self.requests)


def drive(steps: Steps[T], backend: Backend) -> T:
    """Run ``steps`` to the end, answering each call it yields in turn (``backend``: for
    calls that name no model of their own); returns what it returns. A call that fails
    raises inside ``steps`` at the point that asked for it, so its ``try`` clauses run
    as they would around a plain call; anything else (KeyboardInterrupt) closes it, so
    its ``finally`` clauses run then too. A backend that runs steps itself (a shared
    backend's client, ``core.shared_backend``: ``run_steps``) is handed them whole: its
    scheduler answers the calls and closes them."""
    run_steps = getattr(backend, "run_steps", None)
    if run_steps is not None:
        return run_steps(steps)
    try:
        call = next(steps)
        while True:
            try:
                result = call.answer(backend)
            except Exception as exc:
                call = steps.throw(exc)
            else:
                call = steps.send(result)
    except StopIteration as done:
        return done.value
    finally:
        steps.close()
