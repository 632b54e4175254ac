"""The live progress line on stderr: committed text, searches, steps, elapsed seconds.

Shown only when stderr is a terminal or when forced with ``--progress``; it never
writes to stdout, so ``--json`` output stays one clean object.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import TextIO

from rainlm.core.progress import ProgressEvent

__all__ = ["ProgressLine", "progress_enabled", "format_event"]

TAIL_CHARS = 60


def progress_enabled(forced: bool | None, stream: TextIO | None = None) -> bool:
    """``--progress`` / ``--no-progress`` win; otherwise only when ``stream`` is a TTY."""
    if forced is not None:
        return forced
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # closed stream
        return False


def format_event(event: ProgressEvent, label: str = "rain", tail_chars: int = TAIL_CHARS) -> str:
    """One line: ``[rain] 12.3s  searches 45  steps 3  | …last committed text``."""
    text = " ".join(event.committed_text.split())  # one line, no runs of spaces
    if len(text) > tail_chars:
        text = "…" + text[-(tail_chars - 1):]
    return (f"[{label}] {event.elapsed_s:5.1f}s  searches {event.searches:4d}  "
            f"steps {event.steps:3d}  | {text}")


class ProgressLine:
    """A callback for ``generate(on_progress=...)`` that redraws one status line.

    Disabled instances do nothing, so callers never branch on whether to show it.
    """

    def __init__(self, enabled: bool, stream: TextIO | None = None, *, label: str = "rain",
                 min_interval_s: float = 0.1):
        self.enabled = enabled
        self.stream = stream
        self.label = label
        self.min_interval_s = min_interval_s
        self._last = 0.0
        self._steps = -1
        self._dirty = False

    @property
    def _out(self) -> TextIO:
        return self.stream if self.stream is not None else sys.stderr

    def _width(self) -> int:
        return max(shutil.get_terminal_size((100, 24)).columns - 1, 20)

    def _draw(self, line: str) -> None:
        line = line[: self._width()]
        out = self._out
        out.write("\r\x1b[2K" + line)
        out.flush()
        self._dirty = True

    def __call__(self, event: ProgressEvent) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < self.min_interval_s and event.steps == self._steps:
            return  # throttled, but a commit is always shown
        self._last, self._steps = now, event.steps
        self._draw(format_event(event, self.label))

    def status(self, message: str) -> None:
        """Show a short status (e.g. "loading model…") in place of the progress line."""
        if self.enabled:
            self._draw(f"[{self.label}] {message}")

    def clear(self) -> None:
        """Erase the line (call before anything else is printed)."""
        if self.enabled and self._dirty:
            self._out.write("\r\x1b[2K")
            self._out.flush()
            self._dirty = False
        self._last = 0.0

    def done(self, message: str) -> None:
        """Replace the progress line with a final summary line."""
        if self.enabled:
            self.clear()
            self._out.write(f"[{self.label}] {message}\n")
            self._out.flush()
