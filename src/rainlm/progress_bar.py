"""A tiny progress bar with an ETA for long runs: benchmarks, calibration, training (stderr; no dependency)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
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

    Redrawn in place (carriage return) after every finished unit and, once
    ``start_ticking`` is called, every second in between, so the clock keeps moving
    during a long answer; a disabled bar does nothing, so callers never branch on it.
    The ETA is the mean seconds per unit so far times the units left.
    """

    def __init__(self, total: int, *, enabled: bool = True, stream: TextIO | None = None,
                 width: int = 20, label: str = "bench",
                 clock: Callable[[], float] = time.monotonic):
        self.total = total
        self.enabled = enabled
        self.stream = stream
        self.width = width
        self.label = label
        self.done = 0
        self.errors = 0
        self.clock = clock
        self._start = clock()
        self._note = ""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    @property
    def _out(self) -> TextIO:
        return self.stream if self.stream is not None else sys.stderr

    def line(self, note: str = "") -> str:
        """The bar as text (what ``update`` draws)."""
        elapsed = self.clock() - self._start
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
        self._note = note
        self.redraw()

    def estimate(self, prompts_done: int, prompts_left: int, since: float | None = None) -> str:
        """``"the first prompt took 1:35; the 19 left: about 30:05 more"``: the time per
        prompt so far times the prompts left (prompts differ: a rough guide, printed
        once the first prompt is done so a run that will take hours says so early).
        ``since``: the clock value the prompts started at (default: the bar's start)."""
        elapsed = self.clock() - (self._start if since is None else since)
        per_prompt = elapsed / prompts_done if prompts_done else float("nan")
        first = "the first prompt" if prompts_done == 1 else f"the first {prompts_done} prompts"
        return (f"{first} took {format_duration(elapsed)}; the {prompts_left} left: about "
                f"{format_duration(per_prompt * prompts_left)} more")

    def announce(self, message: str) -> None:
        """Print ``[label] message`` on its own line (the bar is redrawn below it once
        it has a total: a run announced before it knows its work shows no "0/0")."""
        if self.enabled:
            with self._lock:
                self._out.write(f"\r\x1b[2K[{self.label}] {message}\n")
                self._out.flush()
            if self.total:
                self.redraw()

    def working(self, note: str) -> None:
        """Say what the current unit is while it runs."""
        self._note = note
        self.redraw()

    def redraw(self) -> None:
        """Draw the bar again (the elapsed time moves on)."""
        if self.enabled:
            with self._lock:
                self._out.write("\r\x1b[2K" + self.line(self._note))
                self._out.flush()

    def start_ticking(self, interval_s: float = 1.0) -> None:
        """Redraw every ``interval_s`` seconds until ``close`` (a daemon thread)."""
        if not self.enabled or self._ticker is not None:
            return

        def tick() -> None:
            while not self._stop.wait(interval_s):
                self.redraw()

        self._ticker = threading.Thread(target=tick, name="bench-progress", daemon=True)
        self._ticker.start()

    def close(self) -> None:
        """Stop ticking and end the line (the last state stays visible)."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        if self.enabled and self.total:
            with self._lock:
                self._out.write("\n")
                self._out.flush()
