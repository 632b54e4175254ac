"""Evaluators: turn (conversation, partial answer) into a value in [-1, 1] (RAIN_SPEC §4)."""

from rainlm.judge.base import EvalRequest, Evaluator, as_evaluator

__all__ = ["EvalRequest", "Evaluator", "as_evaluator"]
