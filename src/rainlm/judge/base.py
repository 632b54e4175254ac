"""The evaluator interface. The search never knows where a value comes from."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from rainlm.backends.steps import Steps
from rainlm.errors import EvaluatorError
from rainlm.messages import last_user_text


@dataclass(frozen=True)
class EvalRequest:
    """One thing to judge: the conversation so far and the assistant's (partial) answer."""

    messages: tuple[Mapping[str, str], ...]
    """The conversation before the answer (system/user/assistant turns)."""
    response: str
    """The assistant's answer so far, including the imagined completion."""

    @property
    def prompt_text(self) -> str:
        """The last user message: what a judge calls 'the prompt'."""
        return last_user_text(self.messages)

    @property
    def key(self) -> tuple[str, str]:
        """Cache key: results are cached by the judged text (RAIN_SPEC §4)."""
        return (repr([(m["role"], m["content"]) for m in self.messages]), self.response)


@runtime_checkable
class Evaluator(Protocol):
    """Scores partial answers. Values are in [-1, 1]; higher is better."""

    name: str

    def evaluate(self, requests: Sequence[EvalRequest]) -> list[float]:
        """One value in [-1, 1] per request, same order (batched where possible)."""
        ...


@runtime_checkable
class StepwiseEvaluator(Protocol):
    """An evaluator that can also judge as steps (``rainlm.backends.steps``): it yields
    the model calls a judgement needs instead of making them, so whoever drives the
    search answers them (a scheduler running several searches batches them together).
    The model's self-evaluation is one; a rule needs no model and is not."""

    name: str

    def evaluate(self, requests: Sequence[EvalRequest]) -> list[float]:
        """As ``Evaluator.evaluate``."""
        ...

    def evaluate_steps(self, requests: Sequence[EvalRequest]) -> Steps[list[float]]:
        """The same values as ``evaluate``, as steps."""
        ...


class CallableEvaluator:
    """Wraps a plain function ``(prompt_text, response_text) -> float in [-1, 1]``.

    This is how users write rules ("never name a competitor") as the value.
    """

    def __init__(self, fn: Callable[[str, str], float], name: str | None = None):
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "callable")

    def evaluate(self, requests: Sequence[EvalRequest]) -> list[float]:
        return [check_value(self.fn(r.prompt_text, r.response), self.name) for r in requests]


def final_value(judge: Any, request: EvalRequest, value: float | None = None) -> float:
    """``judge``'s value of ``request``'s response as a finished answer: its value
    (``value`` when already known, else ``judge.evaluate``), lowered to the final value
    of the judge's rules where it has some (their ``final_value``, also inside a
    ``MinOfJudges``): a policy's required phrase still missing is −1 there, as for the
    fail-safe, not the 0 a partial answer gets. What the bench records as an answer's
    ``judge_value``."""
    if value is None:
        ev = as_evaluator(judge)
        value = check_value(ev.evaluate([request])[0], ev.name)
    return min(float(value), _rules_final_value(judge, request.response))


def _rules_final_value(judge: Any, text: str) -> float:
    """The lowest ``final_value`` of ``text`` among ``judge`` and its members
    (``judges``); +1 when none has one. A rule's final value is never above its value,
    so the judge's value of a finished answer is the lower of the two."""
    final = getattr(judge, "final_value", None)
    if callable(final):
        return float(final(text))
    return min((_rules_final_value(j, text) for j in getattr(judge, "judges", ())),
               default=1.0)


def check_value(value: object, source: str) -> float:
    """Validate an evaluator's output: a finite number in [-1, 1]."""
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise EvaluatorError(
            f"evaluator {source!r} returned {value!r}; it must return a float in [-1, 1]"
        ) from None
    if not math.isfinite(v) or v < -1.0 - 1e-9 or v > 1.0 + 1e-9:
        raise EvaluatorError(
            f"evaluator {source!r} returned {v}; values must lie in [-1, 1] "
            "(clip or rescale your score)"
        )
    return max(-1.0, min(1.0, v))


def as_evaluator(obj: object, *, check_arity: bool = False) -> Evaluator:
    """Accept an Evaluator or a plain callable ``(prompt, response) -> float``.

    ``check_arity``: raise at once (EvaluatorError) when the callable's signature cannot
    take two positional arguments, instead of failing inside the first judgement."""
    if hasattr(obj, "evaluate") and callable(getattr(obj, "evaluate")):
        return obj  # type: ignore[return-value]
    if callable(obj):
        if check_arity:
            _check_two_arguments(obj)
        return CallableEvaluator(obj)  # type: ignore[arg-type]
    raise EvaluatorError(
        f"evaluator must have an evaluate(requests) method or be a callable "
        f"(prompt_text, response_text) -> float; got {type(obj).__name__}"
    )


def _check_two_arguments(fn: Callable[..., object]) -> None:
    import inspect

    try:
        inspect.signature(fn).bind("prompt", "response")
    except TypeError:
        raise EvaluatorError(
            f"evaluator {getattr(fn, '__name__', fn)!r} must take (prompt_text, response_text) "
            f"and return a float in [-1, 1]; its signature is {inspect.signature(fn)}") from None
    except ValueError:  # no signature to read (some builtins): checked on first use
        return
