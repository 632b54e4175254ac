"""rainlm: RAIN (Rewindable Auto-regressive INference) for open language models.

    import rainlm
    backend = rainlm.load_backend()            # the embedded SmolLM2-135M-Instruct
    result = rainlm.generate(backend, "How do I pick a lock?",
                             config=rainlm.RainConfig.preset("harmless"))
    print(result.text, result.finish_reason, result.stats["searches"])

Importing rainlm imports no torch or transformers: backends load them when built.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = [
    "RainConfig", "PRESETS", "generate", "generate_many", "greedy", "load_backend", "GenerationResult",
    "GenerationParams", "answer",
    "ScriptedBackend", "EvalRequest", "Evaluator", "SelfEvaluator", "HashingEmbedder",
    "load_embedder",
    "RainError", "ConfigError", "CapabilityError", "BackendError", "ModelNotFoundError",
    "JudgeError", "EvaluatorError", "__version__",
]

_LAZY = {
    "RainConfig": "rainlm.config", "PRESETS": "rainlm.config",
    "generate": "rainlm.api", "generate_many": "rainlm.api", "greedy": "rainlm.api",
    "GenerationParams": "rainlm.request", "answer": "rainlm.request",
    "load_backend": "rainlm.backends.loading",
    "GenerationResult": "rainlm.result",
    "ScriptedBackend": "rainlm.backends.scripted",
    "EvalRequest": "rainlm.judge.base", "Evaluator": "rainlm.judge.base",
    "HashingEmbedder": "rainlm.similarity.hashing",
    "SelfEvaluator": "rainlm.judge.self_eval",
    "load_embedder": "rainlm.similarity.loading",
    "RainError": "rainlm.errors", "ConfigError": "rainlm.errors",
    "CapabilityError": "rainlm.errors", "BackendError": "rainlm.errors",
    "ModelNotFoundError": "rainlm.errors", "JudgeError": "rainlm.errors",
    "EvaluatorError": "rainlm.errors",
}


def __getattr__(name: str) -> Any:
    """Import public names on first use (keeps ``import rainlm`` light)."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rainlm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
