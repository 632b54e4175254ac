"""Can the model judge this policy itself? Its own verdicts against the exact rules.

The model's judge is asked (the policy's rubric, or one derived from its rules; both
option orders, continuous scoring) about the pilot's answers; a value above 0 is "the
answer follows the policy". Where the policy has exact rules, the rules say whether it
really does, so the agreement is measured on the company's own prompts and answers.
With labelled pairs (``--pairs``: a prompt, a better and a worse answer) the judge's
pairwise accuracy is measured too, as ``rain calibrate`` does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rainlm.bench.datasets import DatasetError, HHPair, iter_jsonl
from rainlm.bench.metrics import rate
from rainlm.judge.base import EvalRequest
from rainlm.messages import normalize_messages
from rainlm.pilot.log import PilotLog

__all__ = ["judge_answers", "judge_pairs", "load_pairs", "reliability"]

ORDER = ("greedy", "rain", "best-of-n")
"""Which answers the judge sees first when ``judge_sample`` is smaller than all of them."""


def _evaluator(backend: Any, policy: Any) -> Any:
    from rainlm.judge.self_eval import SelfEvaluator

    return SelfEvaluator(backend, policy.model_rubric(), scoring="continuous", orders="both")


def judge_answers(backend: Any, policy: Any, answers: Sequence[dict[str, Any]], limit: int,
                  log: PilotLog, on_judged: Callable[[], None] | None = None) -> list[dict[str, Any]]:
    """``judge`` records for the first ``limit`` answers (by :data:`ORDER`, then sample
    order), judged by the model's own judge; those already in ``log`` are reused."""
    todo = sorted((a for a in answers if not a.get("error")),
                  key=lambda a: ORDER.index(a["method"]) if a["method"] in ORDER else len(ORDER))
    out, evaluator = [], None
    for ans in todo[:limit]:
        rec = log.find("judge", item_id=ans["item_id"], method=ans["method"])
        if rec is None:
            evaluator = evaluator or _evaluator(backend, policy)
            messages = tuple(normalize_messages(ans["prompt"]))
            value = float(evaluator.evaluate([EvalRequest(messages, ans["text"])])[0])
            rec = log.append({"kind": "judge", "item_id": ans["item_id"], "method": ans["method"],
                              "value": value, "kept": ans["kept"]})
            if on_judged is not None:
                on_judged()
        out.append(rec)
    return out


def reliability(judged: Sequence[dict[str, Any]], has_rules: bool) -> dict[str, Any]:
    """Agreement of the model's verdicts with the rules', with Wilson intervals, and the
    balanced accuracy (the mean of its hit rates on broken and on kept answers: a judge
    that calls everything fine agrees often where most answers keep the rules, and
    scores 0.5 here)."""
    if not has_rules:
        return {"answers": len(judged), "agreement": None, "comparable": False}
    says_ok = [r["value"] > 0 for r in judged]
    kept = [bool(r["kept"]) for r in judged]
    fooled = rate(a for a, b in zip(says_ok, kept) if not b)
    harsh = rate(not a for a, b in zip(says_ok, kept) if b)
    return {
        "answers": len(judged), "comparable": True,
        "agreement": rate(a == b for a, b in zip(says_ok, kept)).to_dict(),
        "model_says_ok_when_rules_break": fooled.to_dict(),
        "model_says_bad_when_rules_hold": harsh.to_dict(),
        "balanced_accuracy": 1.0 - (fooled.value + harsh.value) / 2,  # NaN without both kinds
        "rules_broken": sum(not k for k in kept),
    }


def load_pairs(path: str | Path) -> list[HHPair]:
    """Labelled pairs from a JSONL file: ``{"prompt", "chosen", "rejected"}`` per line
    (the better and the worse answer under the company's policy)."""
    path = Path(path).expanduser()
    pairs = []
    for line, row in iter_jsonl(path):
        for key in ("prompt", "chosen", "rejected"):
            if not isinstance(row.get(key), str) or not row[key].strip():
                raise DatasetError(path, "must be a non-empty string", line=line, field=key)
        if row["chosen"].strip() == row["rejected"].strip():
            raise DatasetError(path, "chosen and rejected are the same answer", line=line,
                               field="rejected")
        pairs.append(HHPair(({"role": "user", "content": row["prompt"]},), row["chosen"],
                            row["rejected"], line))
    if not pairs:
        raise DatasetError(path, "holds no pairs")
    return pairs


def judge_pairs(backend: Any, policy: Any, pairs: Sequence[HHPair], log: PilotLog) -> dict[str, Any]:
    """The judge's pairwise accuracy on ``pairs`` (the better answer valued strictly
    higher; ties are counted apart and as wrong), read back from ``log`` when it was
    measured already."""
    done = log.find("pairs")
    if done is not None:
        return done
    evaluator = _evaluator(backend, policy)
    wins = []
    for pair in pairs:
        good, bad = evaluator.evaluate([EvalRequest(pair.context, pair.chosen),
                                        EvalRequest(pair.context, pair.rejected)])
        wins.append(1.0 if good > bad else 0.5 if good == bad else 0.0)
    correct = sum(w == 1.0 for w in wins)
    ties = sum(w == 0.5 for w in wins)
    return log.append({"kind": "pairs", "pairs": len(pairs), "correct": correct, "ties": ties,
                       "accuracy": rate(w == 1.0 for w in wins).to_dict()})
