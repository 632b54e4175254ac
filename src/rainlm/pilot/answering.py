"""One pilot answer: a prompt answered by one method under the policy, as a record.

- ``greedy``: plain decoding (the model as it is served today).
- ``best-of-n``: answers sampled in rounds and judged by the policy, stopping at the
  first one it accepts or when the time budget is spent
  (:func:`rainlm.bench.best_of_until.best_of_until`).
- ``rain``: the search with the policy as its judge and the time budget found for the
  latency limit; an answer the budget cut short is finished greedily and says so.

Each answer is then put through the fail-safe as ``rain serve`` would
(:func:`rainlm.policy.judging.check_final_answer`: the policy's value of the final
answer against its threshold) and scored for fluency (the model's NLL per token).
``latency_s`` is what a client would wait: the answer and the fail-safe's judgement.
Every method starts from an emptied prefix cache, so its tokens and seconds are its own.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rainlm.bench.best_of_until import best_of_until
from rainlm.bench.datasets import Item
from rainlm.bench.methods import MethodOutcome, MethodSettings, measured, run_method
from rainlm.bench.runner import item_seed
from rainlm.fluency import answer_nll
from rainlm.messages import normalize_messages
from rainlm.pilot.plan import PilotPlan
from rainlm.policy.judging import check_final_answer
from rainlm.request import GenerationParams

__all__ = ["BEST_OF_TOP_K", "Answerer"]

BEST_OF_TOP_K = 50
"""Best-of-N samples from the 50 most probable tokens (an engine's top-logprobs cap when
that is lower, e.g. llama.cpp's server: 20)."""


@dataclass
class Answerer:
    """Answers prompts for one pilot (backend, policy and encoder loaded once)."""

    backend: Any
    policy: Any
    """A :class:`rainlm.policy.Policy`."""
    plan: PilotPlan
    encoder: Any = None
    """RAIN's loaded sentence encoder (None: ``plan.embedder`` by name)."""

    def __post_init__(self) -> None:
        self.evaluator = self.policy.evaluator(self.backend, config=self.settings(None).config)

    def settings(self, time_budget_s: float | None) -> MethodSettings:
        from rainlm.config import RainConfig

        config = RainConfig.preset(self.plan.preset, time_budget_s=time_budget_s,
                                   budget_fallback="greedy")
        params = GenerationParams(config=config, max_new_tokens=self.plan.max_new_tokens,
                                  embedder=self.plan.embedder)
        cap = getattr(getattr(self.backend, "capabilities", None), "max_top_logprobs", None)
        settings = MethodSettings(params=params, temperature=self.plan.best_of_temperature,
                                  top_k=BEST_OF_TOP_K if cap is None else min(BEST_OF_TOP_K, cap))
        return settings if self.encoder is None else settings.with_encoder(self.encoder)

    def answer(self, item: Item, method: str, time_budget_s: float | None) -> dict[str, Any]:
        """The record of ``method``'s answer to ``item`` (an ``error`` field instead when
        it failed: one failing answer must not end a pilot)."""
        seed = item_seed(self.plan.seed, item.id)
        base = {"kind": "answer", "item_id": item.id, "prompt": item.prompt, "method": method,
                "seed": seed, "time_budget_s": time_budget_s}
        try:
            out = self._outcome(item, method, time_budget_s, seed)
            return {**base, **self._judged(item, method, out)}
        except Exception as exc:  # recorded; the pilot goes on
            return {**base, "error": f"{type(exc).__name__}: {exc}"}

    def _outcome(self, item: Item, method: str, time_budget_s: float | None,
                 seed: int) -> MethodOutcome:
        settings = self.settings(time_budget_s)
        if method == "greedy":
            return run_method("vanilla", self.backend, item.prompt, settings, seed=seed)
        if method == "rain":
            return run_method("rain", self.backend, item.prompt, settings, seed=seed,
                              evaluator=self.evaluator)
        messages = normalize_messages(item.prompt)
        accept = settings.config.answers.accept_value
        return measured(self.backend, settings, lambda: best_of_until(
            self.backend, messages, settings, seed=seed, evaluator=self.evaluator,
            accept=1.0 if accept is None else accept, round_size=self.plan.round_size,
            time_budget_s=time_budget_s))

    def _judged(self, item: Item, method: str, out: MethodOutcome) -> dict[str, Any]:
        """The fail-safe's verdict, the rules' and the fluency of ``out``."""
        messages = normalize_messages(item.prompt)
        start = time.perf_counter()
        check, _, _ = check_final_answer(self.backend, messages, out.text, self.policy)
        fail_safe_s = time.perf_counter() - start
        safe = self.policy.fail_safe
        value = check.value
        kept = check.kept if self.policy.rules else value >= safe.threshold
        fluency = answer_nll(self.backend, self.backend.render_prompt(messages),
                             self.backend.tokenize(out.text))
        details = dict(out.details)
        budget_limited = bool(details.get("budget_exhausted")) and method != "greedy"
        return {"text": out.text, "seconds": out.seconds, "fail_safe_s": round(fail_safe_s, 4),
                "latency_s": round(out.seconds + fail_safe_s, 4),
                "tokens_encoded": out.tokens_encoded, "answer_tokens": out.answer_tokens,
                "judged_texts": out.judged_texts, "finish_reason": out.finish_reason,
                "judge_value": value, "kept": kept, "broken": list(check.broken),
                "fail_safe_acts": value < safe.threshold, "nll": fluency.nll,
                "nll_approximate": fluency.approximate, "budget_limited": budget_limited,
                "unsearched": method == "rain" and int(details.get("greedy_tail_tokens", 0)) > 0,
                "details": _small(details), "error": None}


def _small(details: Mapping[str, Any]) -> dict[str, Any]:
    """The method's details without long lists (scores beyond 16 are dropped)."""
    out = {}
    for k, v in details.items():
        out[k] = v[:16] if isinstance(v, list) else v
    return out
