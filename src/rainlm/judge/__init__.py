"""Evaluators: turn (conversation, partial answer) into a value in [-1, 1] (RAIN_SPEC §4)."""

from rainlm.judge.base import EvalRequest, Evaluator, as_evaluator
from rainlm.judge.rubric import Rubric, list_rubrics, load_rubric
from rainlm.judge.self_eval import SelfEvaluator

__all__ = ["EvalRequest", "Evaluator", "Rubric", "SelfEvaluator", "as_evaluator",
           "list_rubrics", "load_rubric"]
