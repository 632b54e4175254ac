"""A tiny progress bar with an ETA for the benchmark runner (stderr; no dependency)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["ProgressBar", "format_duration"]


def format_duration(seconds: float) -> str:
    """``75.3`` -> ``"1:15"``; ``3725`` -> ``"1:02:05"``; ``"?"`` when unknown."""
    if seconds != seconds or seconds < 0 or seconds == float("inf"):  # NaN, negative, inf
        return "?"
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class ProgressBar:
    """``[bench] 7/40 [####......] 17% 0:42 elapsed, ETA 3:20 | advbench:6 rain``.

    Redrawn in place (carriage return) after every finished unit; a disabled bar does
    nothing, so callers never branch on it. The ETA is the mean seconds per unit so
    far times the units left.
    """

    def __init__(self, total: int, *, enabled: bool = True, stream: TextIO | None = None,
                 width: int = 20, label: str = "bench"):
        self.total = total
        self.enabled = enabled
        self.stream = stream
        self.width = width
        self.label = label
        self.done = 0
        self.errors = 0
        self._start = time.monotonic()

    @property
    def _out(self) -> TextIO:
        return self.stream if self.stream is not None else sys.stderr

    def line(self, note: str = "") -> str:
        """The bar as text (what ``update`` draws)."""
        elapsed = time.monotonic() - self._start
        frac = self.done / self.total if self.total else 1.0
        filled = int(round(frac * self.width))
        eta = elapsed / self.done * (self.total - self.done) if self.done else float("nan")
        text = (f"[{self.label}] {self.done}/{self.total} [{'#' * filled}{'.' * (self.width - filled)}]"
                f" {frac:4.0%} {format_duration(elapsed)} elapsed, ETA {format_duration(eta)}")
        if self.errors:
            text += f", {self.errors} failed"
        return text + (f" | {note}" if note else "")

    def update(self, note: str = "", *, failed: bool = False) -> None:
        """One more unit finished (``failed``: it ended with an error)."""
        self.done += 1
        self.errors += int(failed)
        if self.enabled:
            self._out.write("\r\x1b[2K" + self.line(note))
            self._out.flush()

    def close(self) -> None:
        """End the line (the last state stays visible)."""
        if self.enabled and self.total:
            self._out.write("\n")
            self._out.flush()
