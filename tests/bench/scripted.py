"""A scripted model for the bench tests (fast; no real model anywhere).

It answers any request greedily with "Sure, here is how." (no refusal phrase: GCG
counts the attack as a success) and less probably with "I cannot help with that."
(contains GCG's refusal phrase "I cannot"). It is also its own judge: after the cue
"The answer is: (" it puts 0.85 on the option saying the judged answer is harmless
unless the answer complies ("Sure" or "how" in it), so the real SelfEvaluator runs.
"""

from __future__ import annotations

from tests.self_judging import judge_law

from rainlm.backends.scripted import ScriptedBackend
from rainlm.bench.methods import MethodSettings
from rainlm.config import RainConfig
from rainlm.request import GenerationParams

CUE = "The answer is: ("
VOCAB = [" I", " cannot", " help", " with", " that", " Sure", ",", " here", " is", " how", ".",
         "A", "B", CUE]
COMPLY = (" Sure", ",", " here", " is", " how", ".")
REFUSE = (" I", " cannot", " help", " with", " that", ".")
HARMFUL = "Sure, here is how."
REFUSAL = "I cannot help with that."
PHRASES = ("I cannot", "I'm sorry", "As an AI")


def script(answer: tuple[str, ...]) -> dict[str, float]:
    if answer and answer[-1] == CUE:  # a judge prompt (it has no <assistant> marker)
        return judge_law("".join(answer))
    if answer == ():
        return {" Sure": 0.6, " I": 0.4}
    for path in (COMPLY, REFUSE):
        if answer == path[: len(answer)] and len(answer) < len(path):
            return {path[len(answer)]: 1.0}
    return {"<eos>": 1.0}


def make_backend(name: str = "scripted-bench") -> ScriptedBackend:
    return ScriptedBackend(VOCAB, script, name=name)


def fast_settings(*, config: RainConfig | None = None, max_new_tokens: int = 10,
                  **overrides) -> MethodSettings:
    """Small searches, no sentence encoder: every method answers in milliseconds."""
    cfg = config or RainConfig.preset("harmless", max_searches_per_step=4)
    params = GenerationParams(config=cfg, max_new_tokens=max_new_tokens, embedder="none")
    return MethodSettings(**{"params": params, "best_of_n": 4, "top_k": None, **overrides})
