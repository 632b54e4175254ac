"""Progress events of a running search, for live displays (the CLI's status line).

``generate(..., on_progress=callback)`` calls ``callback(ProgressEvent)`` after every
search pass and every commit. The callback must be cheap and must not raise; it sees a
snapshot, never the tree itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["ProgressEvent", "ProgressCallback", "emit_progress"]


@dataclass(frozen=True)
class ProgressEvent:
    """Where the search stands."""

    committed_text: str
    """The answer committed so far (text of every committed token set)."""
    searches: int
    """Search passes run so far in this generation."""
    steps: int
    """Token sets committed so far."""
    elapsed_s: float
    """Seconds since the search started."""


ProgressCallback = Callable[[ProgressEvent], None]


def emit_progress(ctx: Any, callback: ProgressCallback | None, start: float) -> None:
    """Call ``callback`` with the state of the search context ``ctx`` (no-op if None)."""
    if callback is None:
        return
    text = ctx.detokenize(ctx.answer_tokens(ctx.tree.root))
    callback(ProgressEvent(committed_text=text, searches=ctx.stats.searches,
                           steps=ctx.stats.steps, elapsed_s=time.perf_counter() - start))
