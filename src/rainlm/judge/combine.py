"""Several judges as one: the lowest of their values (a policy's rules with the model's
own judgement, ``use = "rules+model"``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rainlm.backends.steps import Steps
from rainlm.errors import ConfigError
from rainlm.judge.base import EvalRequest, as_evaluator, check_value

__all__ = ["MinOfJudges"]


class MinOfJudges:
    """``MinOfJudges(judges, name)``: each request's value is the lowest of the judges'
    values, so an answer is only as good as its worst verdict. A StepwiseEvaluator:
    the model calls of members that judge as steps (the self-evaluation) are yielded,
    the others (rules) are evaluated directly."""

    def __init__(self, judges: Sequence[Any], name: str | None = None):
        if len(judges) < 1:
            raise ConfigError("judges", "must hold at least one judge")
        self.judges = tuple(as_evaluator(j) for j in judges)
        self.name = name or "min(" + ",".join(j.name for j in self.judges) + ")"

    def evaluate(self, requests: Sequence[EvalRequest]) -> list[float]:
        """The lowest value per request (each judge asked once for all requests)."""
        columns = [j.evaluate(requests) for j in self.judges]
        return self._lowest(columns, len(requests))

    def evaluate_steps(self, requests: Sequence[EvalRequest]) -> Steps[list[float]]:
        """``evaluate`` as steps (``StepwiseEvaluator``)."""
        columns = []
        for j in self.judges:
            if callable(getattr(j, "evaluate_steps", None)):
                columns.append((yield from j.evaluate_steps(requests)))
            else:
                columns.append(j.evaluate(requests))
        return self._lowest(columns, len(requests))

    def _lowest(self, columns: list[list[float]], n: int) -> list[float]:
        return [min(check_value(col[i], j.name) for col, j in zip(columns, self.judges))
                for i in range(n)]
