"""The live progress line on stderr: committed text, searches, steps, elapsed seconds.

Shown only when stderr is a terminal or when forced with ``--progress``; it never
writes to stdout, so ``--json`` output stays one clean object. Once ``start_ticking``
is called the line is redrawn every ``tick_interval_s`` between search events too, so
its clock keeps moving during a long search pass. ``InlineStatus`` is the same display
drawn after the cursor on the line the answer is being written to (``rain chat``).
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from rainlm.core.progress import ProgressEvent

__all__ = ["InlineStatus", "ProgressLine", "progress_enabled", "format_clock", "format_event"]

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


def format_clock(event: ProgressEvent) -> str:
    """The short status shown after a streamed answer: ``  [12.3s · 45 searches · 3 steps]``."""
    return f"  [{event.elapsed_s:.1f}s · {event.searches} searches · {event.steps} steps]"


class ProgressLine:
    """A callback for ``generate(on_progress=...)`` that redraws one status line.

    Disabled instances do nothing, so callers never branch on whether to show it.
    Drawing is serialised by ``lock`` (the ticking thread draws too); hold it around
    writes of your own to the same terminal. ``clock`` is injectable for tests.
    """

    def __init__(self, enabled: bool, stream: TextIO | None = None, *, label: str = "rain",
                 min_interval_s: float = 0.1, tick_interval_s: float = 0.5,
                 clock: Callable[[], float] = time.monotonic):
        self.enabled = enabled
        self.stream = stream
        self.label = label
        self.min_interval_s = min_interval_s
        self.tick_interval_s = tick_interval_s
        self.clock = clock
        self.lock = threading.RLock()
        self._last = float("-inf")
        self._steps = -1
        self._dirty = False
        self._event: ProgressEvent | None = None
        self._event_at = 0.0
        self._ticking_since = 0.0
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    @property
    def _out(self) -> TextIO:
        return self.stream if self.stream is not None else sys.stderr

    def _width(self) -> int:
        return max(shutil.get_terminal_size((100, 24)).columns - 1, 20)

    def _text(self, event: ProgressEvent) -> str:
        """What is drawn for ``event``."""
        return format_event(event, self.label)

    def _draw(self, line: str) -> None:
        line = line[: self._width()]
        out = self._out
        out.write("\r\x1b[2K" + line)
        out.flush()
        self._dirty = True

    def __call__(self, event: ProgressEvent) -> None:
        if not self.enabled:
            return
        with self.lock:
            now = self.clock()
            self._event, self._event_at = event, now  # the ticks count on from here
            if now - self._last < self.min_interval_s and event.steps == self._steps:
                return  # throttled, but a commit is always shown
            self._last, self._steps = now, event.steps
            self._draw(self._text(event))

    def current(self) -> ProgressEvent:
        """The latest event with its clock moved on to now (before any event of this
        turn: nothing searched yet, the seconds since ``start_ticking``)."""
        now = self.clock()
        if self._event is None:
            return ProgressEvent(committed_text="", searches=0, steps=0,
                                 elapsed_s=max(now - self._ticking_since, 0.0))
        return dataclasses.replace(self._event,
                                   elapsed_s=self._event.elapsed_s + max(now - self._event_at, 0.0))

    def tick(self) -> None:
        """Redraw with the clock moved on (what the ticking thread calls)."""
        if self.enabled:
            with self.lock:
                self._draw(self._text(self.current()))

    def start_ticking(self) -> None:
        """Redraw every ``tick_interval_s`` seconds until ``stop_ticking`` (a daemon
        thread), so the clock moves while a search pass runs; starts a new turn's clock."""
        if not self.enabled or self._ticker is not None:
            return
        with self.lock:
            self._event, self._ticking_since = None, self.clock()
        self._stop.clear()

        def run() -> None:
            while not self._stop.wait(self.tick_interval_s):
                self.tick()

        self._ticker = threading.Thread(target=run, name="rain-progress-clock", daemon=True)
        self._ticker.start()

    def stop_ticking(self) -> None:
        """Stop the ticking thread (no tick is drawn after this returns)."""
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            self._stop.set()
            ticker.join()

    def status(self, message: str) -> None:
        """Show a short status (e.g. "loading model…") in place of the progress line."""
        if self.enabled:
            with self.lock:
                self._draw(f"[{self.label}] {message}")

    def clear(self) -> None:
        """Erase the line (call before anything else is printed)."""
        with self.lock:
            if self.enabled and self._dirty:
                self._out.write(self._erase())
                self._out.flush()
                self._dirty = False
            self._last = float("-inf")

    def _erase(self) -> str:
        """The control sequence that erases what ``_draw`` drew."""
        return "\r\x1b[2K"

    def done(self, message: str) -> None:
        """Replace the progress line with a final summary line."""
        if self.enabled:
            with self.lock:
                self.clear()
                self._out.write(f"[{self.label}] {message}\n")
                self._out.flush()


MIN_ROOM = 12
"""Columns an inline status needs left on the cursor's line to be drawn at all."""


class InlineStatus(ProgressLine):
    """The progress display drawn after the cursor, on the line an answer is being
    written to, without moving the cursor: ``rain> I can't help  [3.2s · 40 searches · 2 steps]``.

    It saves the cursor (``ESC 7``), writes the status dim with line wrapping off (so it
    can never wrap or scroll the screen), and restores the cursor (``ESC 8``); ``clear``
    erases from the cursor to the end of the line (``ESC [K``), so the answer's next
    words overwrite nothing of their own. The writer of the answer keeps ``room`` (the
    columns left on the cursor's line) up to date; with less than ``MIN_ROOM`` left
    (e.g. the answer just filled the line) nothing is drawn.
    """

    def __init__(self, enabled: bool, stream: TextIO | None = None, **kwargs: object):
        super().__init__(enabled, stream, **kwargs)  # type: ignore[arg-type]
        self.room = 0

    def _text(self, event: ProgressEvent) -> str:
        return format_clock(event)

    def _draw(self, line: str) -> None:
        if self.room < MIN_ROOM:
            return
        erase = self._erase() if self._dirty else ""
        out = self._out
        out.write(f"{erase}\x1b7\x1b[?7l\x1b[2m{line[: self.room - 1]}\x1b[0m\x1b[?7h\x1b8")
        out.flush()
        self._dirty = True

    def _erase(self) -> str:
        return "\x1b[K"
