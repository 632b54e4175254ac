"""The fail-safe's judgement of a final answer under a policy (``rain serve
--policy-file``): the value the threshold is compared with.

- use = "rules": the rules' value of the whole answer (no model call);
- use = "rules+model": the lower of that and the model's own judgement of the answer
  with the policy's rubric (continuous, both option orders unless told otherwise);
- use = "model": the model's own judgement alone.

Judged as a final answer: a required phrase still missing counts −1 here (a partial
answer lacking it is worth 0 to the search).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from rainlm.policy.model import Policy, PolicyCheck
from rainlm.request import Answer, FinalJudge

__all__ = ["check_final_answer", "judge_answer"]


def judge_answer(backend: Any, done: Answer, policy: Policy, *,
                 judge_orders: str = "both") -> Answer:
    """``done`` with its score (``Answer.score``: the policy's value, in [-1, 1]), its
    policy check (with the model's value when the model was asked) and, when the model
    judged, the paper's vote and the rubric used (``Answer.judge``)."""
    result = done.result
    start = time.perf_counter()
    check, vote, judge = check_final_answer(backend, result.messages, result.text, policy,
                                            judge_orders=judge_orders, check=done.policy_check)
    return dataclasses.replace(done, score=check.value, paper_vote=vote, judge=judge,
                               policy_check=check, score_s=time.perf_counter() - start)


def check_final_answer(backend: Any, messages: Any, text: str, policy: Policy, *,
                       judge_orders: str = "both", check: PolicyCheck | None = None,
                       ) -> tuple[PolicyCheck, float | None, FinalJudge | None]:
    """(the policy check of the final answer ``text`` to ``messages``, whose ``value``
    the fail-safe compares with its threshold; the paper's vote and the rubric used when
    the model judged, else None). ``check``: the rules' check already made."""
    from rainlm.judge.self_eval import score_final_answers

    check = check or policy.check(text)
    vote, judge = None, None
    if policy.use != "rules":
        rubric = policy.model_rubric()
        value, vote = score_final_answers(backend, rubric, judge_orders,  # type: ignore[arg-type]
                                          messages, [text])[0]
        check = dataclasses.replace(check, model_value=value)
        label = rubric.name if rubric.source.startswith("builtin:") else rubric.source
        judge = FinalJudge(label, judge_orders)
    return check, vote, judge
