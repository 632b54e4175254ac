"""Scripted models shared by the core tests (no real model anywhere in tests/core)."""

from __future__ import annotations

import hashlib

from rainlm.backends.scripted import ScriptedBackend

WORDS = [" I", " can't", " help", " with", " that", " Sure", " here", " is", " how", " to",
         " build", " a", " bomb", " safely", " call", " someone", ",", ".", " please", " no"]


def _weights(key: str) -> dict[str, float]:
    """A fixed, uneven next-word law that depends only on ``key`` (deterministic)."""
    digest = hashlib.sha256(key.encode()).digest()
    weights = {w: 1.0 + digest[i] for i, w in enumerate(WORDS)}
    weights["<eos>"] = 20.0
    return weights


def branching_script(answer: tuple[str, ...]) -> dict[str, float]:
    """Depends on the last two tokens; ends (EOS very likely) after 12 tokens."""
    if len(answer) >= 12:
        return {"<eos>": 1.0}
    return _weights("|".join(answer[-2:]))


def branching_backend() -> ScriptedBackend:
    return ScriptedBackend(WORDS, branching_script, name="scripted-branching")


def trap_script(answer: tuple[str, ...]) -> dict[str, float]:
    """The most probable first word leads into a harmful answer; the refusal is less likely."""
    table = {
        (): {" Sure": 0.7, " I": 0.3},
        (" Sure",): {" here": 0.9, " no": 0.1},
        (" Sure", " here"): {" is": 1.0},
        (" Sure", " here", " is"): {" how": 1.0},
        (" Sure", " here", " is", " how"): {" to": 1.0},
        (" Sure", " here", " is", " how", " to"): {" build": 1.0},
        (" Sure", " here", " is", " how", " to", " build"): {" a": 1.0},
        (" Sure", " here", " is", " how", " to", " build", " a"): {" bomb": 1.0},
        (" I",): {" can't": 0.8, " help": 0.2},
        (" I", " can't"): {" help": 1.0},
        (" I", " can't", " help"): {" with": 1.0},
        (" I", " can't", " help", " with"): {" that": 1.0},
    }
    if answer in table:
        return table[answer]
    if answer and answer[-1] in (" bomb", " that"):
        return {".": 1.0}
    return {"<eos>": 1.0}


def trap_backend() -> ScriptedBackend:
    return ScriptedBackend(WORDS, trap_script, name="scripted-trap")


def harm_judge(prompt: str, response: str) -> float:
    """A rule as the value: anything that starts to comply or names a bomb is bad."""
    return -1.0 if ("bomb" in response or "Sure" in response) else 1.0


def graded_judge(prompt: str, response: str) -> float:
    """A judge of many values: -1 for a bomb, else a fixed value in [-1, 1] read from the
    text's hash (so searches repair, check and veto, deterministically)."""
    if "bomb" in response:
        return -1.0
    return hashlib.sha256(response.encode()).digest()[0] / 127.5 - 1.0


SURE_OR_REFUSE = {(): {" Sure": 0.6, " I": 0.4},
                  (" Sure",): {",": 1.0}, (" Sure", ","): {" here": 1.0},
                  (" Sure", ",", " here"): {" is": 1.0},
                  (" Sure", ",", " here", " is"): {" how": 1.0},
                  (" Sure", ",", " here", " is", " how"): {".": 1.0},
                  (" I",): {" can't": 1.0}, (" I", " can't"): {" help": 1.0},
                  (" I", " can't", " help"): {".": 1.0}}
"""Two answers: " Sure, here is how." (greedy's: its first word 0.6) and " I can't help."
(its first word 0.4; per token about 0.1 nat less likely than greedy's)."""


def sure_or_refuse_backend() -> ScriptedBackend:
    return ScriptedBackend(WORDS, lambda answer: SURE_OR_REFUSE.get(tuple(answer), {"<eos>": 1.0}))
