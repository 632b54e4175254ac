"""``Services``: how the commands and the server build models (backend and embedder).

The CLI and ``rain serve`` take one, so tests can inject a scripted backend; the
defaults load the real model and sentence encoder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Services"]


def _quiet_transformers() -> None:
    """The CLI draws its own progress line: no per-load "Loading weights" bars."""
    import importlib.util

    if importlib.util.find_spec("transformers") is not None:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


def _default_load_backend(model: str | None, device: str) -> Any:
    from rainlm.backends.loading import load_backend

    _quiet_transformers()
    return load_backend(model, device=device)


def _default_load_embedder(name: str, device: str) -> Any:
    """An Embedder, or the string "none" (which generate() reads as: no embedder)."""
    if name == "none":
        return "none"
    from rainlm.similarity.loading import load_embedder

    return load_embedder(name, device=device)


@dataclass(frozen=True)
class Services:
    """What the commands build models with; tests pass their own as click's ``obj``
    (``CliRunner().invoke(cli, args, obj=Services(load_backend=...))``)."""

    load_backend: Callable[[str | None, str], Any] = field(default=_default_load_backend)
    """``(model, device) -> Backend``; model None means the embedded model."""
    load_embedder: Callable[[str, str], Any] = field(default=_default_load_embedder)
    """``(name, device) -> Embedder | "none"``."""
