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


def _default_load_backend(model: str | None, device: str, **backend_kw: Any) -> Any:
    from rainlm.backends.loading import load_backend

    _quiet_transformers()
    return load_backend(model, device=device, **backend_kw)


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

    load_backend: Callable[..., Any] = field(default=_default_load_backend)
    """``(model, device, **backend_kw) -> Backend``; model None means the embedded model;
    ``backend_kw`` (``tokenizer=``) only holds what a command was given (see
    ``open_backend``)."""
    load_embedder: Callable[[str, str], Any] = field(default=_default_load_embedder)
    """``(name, device) -> Embedder | "none"``."""

    def open_backend(self, model: str | None, device: str, *,
                     tokenizer: str | None = None) -> Any:
        """The backend every command and ``rain serve`` load: ``load_backend`` with the
        backend options that are set (``tokenizer``: a local tokenizer folder, for an
        OpenAI-compatible engine), so a loader taking only ``(model, device)`` (a
        test's) still works when none is."""
        backend_kw = {} if tokenizer is None else {"tokenizer": tokenizer}
        return self.load_backend(model, device, **backend_kw)
