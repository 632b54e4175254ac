"""Whether a round's next-token calls of several searches go out as one backend call.

The scheduler (``core.scheduler``) answers the calls its searches wait for round after
round. Sending the next-token calls of several searches as **one** backend call is what
makes concurrency pay (one forward pass for many contexts), but it is not free
everywhere: a batched pass over ragged contexts pads them, and on a small CPU a batch
can cost more than the same calls one search at a time. ``MergeChoice`` measures both
and chooses, so that running searches together is not slower than one at a time:

- each kind of group (next-token calls to one model with one ``top_k``) has
  measurements of its own;
- a call of one search (a round where it is the only one, or a group sent one search
  at a time) is a measurement of the one-at-a-time way: seconds against contexts,
  fitted by a line (a fixed cost per call plus a cost per context);
- a merged group is measured against what the same calls would have cost one at a time
  by that line; once each way has ``MIN_SAMPLES`` measurements, groups are sent one
  search at a time only when the recent merged groups took ``SLOWER`` times that or
  more, and more than ``FAST_S`` per context (below it the model's time is not what a
  user waits for: a scripted model);
- every ``probe_every``-th group goes the way not chosen, so both ways stay measured as
  the load changes.

Either way every search gets the same results in the same order (``core.scheduler``), so
the choice changes the speed, never an answer (with a real model: up to the last bits
of batched arithmetic). It serves an in-process model; an engine over HTTP batches
concurrent requests itself and always gets the merged request.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field

__all__ = ["MergeChoice"]

MIN_SAMPLES = 4
"""Measurements of each way before the choice follows them."""
SLOWER = 1.25
"""Merging is given up when it costs this many times one search at a time or more."""
FAST_S = 0.001
"""Seconds per context below which the choice does not matter (a scripted model)."""
PROBE_EVERY = 16
"""By default, every this-many-th group goes the way not chosen."""


@dataclass
class _Kind:
    """The measurements of one kind of group."""

    single: deque = field(default_factory=lambda: deque(maxlen=64))
    """Calls of one search: (contexts, seconds)."""
    merged: deque = field(default_factory=lambda: deque(maxlen=16))
    """Merged groups: (calls, contexts, seconds)."""
    groups: int = 0
    split_groups: int = 0

    def line(self) -> tuple[float, float]:
        """One search's call: seconds ≈ fixed + per_context × contexts (least squares
        over the recent calls, both terms ≥ 0; with one size of call, all fixed)."""
        n = [c for c, _ in self.single]
        t = [s for _, s in self.single]
        mean_n, mean_t = sum(n) / len(n), sum(t) / len(t)
        var = sum((x - mean_n) ** 2 for x in n)
        per = max(0.0, sum((x - mean_n) * (y - mean_t) for x, y in zip(n, t)) / var) if var else 0.0
        return max(0.0, mean_t - per * mean_n), per

    def merged_over_alone(self) -> float | None:
        """The recent merged groups' seconds ÷ what their calls cost one at a time by
        ``line`` (None: not measured enough, or too fast to matter)."""
        if len(self.single) < MIN_SAMPLES or len(self.merged) < MIN_SAMPLES:
            return None
        fixed, per = self.line()
        alone = sum(calls * fixed + per * contexts for calls, contexts, _ in self.merged)
        merged = sum(seconds for _, _, seconds in self.merged)
        contexts = sum(contexts for _, contexts, _ in self.merged)
        if max(alone, merged) < FAST_S * contexts or alone <= 0:
            return None
        return merged / alone

    def prefers_merging(self) -> bool:
        ratio = self.merged_over_alone()
        return ratio is None or ratio < SLOWER


class MergeChoice:
    """Chooses, per group of several searches' next-token calls, merged or one search at
    a time (see the module docstring). Thread-safe."""

    def __init__(self, probe_every: int = PROBE_EVERY):
        self.probe_every = probe_every
        self._kinds: dict[Hashable, _Kind] = {}
        self._lock = threading.Lock()

    def merge_next(self, kind: Hashable) -> bool:
        """Whether the next group of several searches of ``kind`` goes out as one call."""
        with self._lock:
            k = self._kinds.setdefault(kind, _Kind())
            k.groups += 1
            merge = k.prefers_merging()
            if k.groups % self.probe_every == 0:
                merge = not merge
            if not merge:
                k.split_groups += 1
            return merge

    def note_single(self, kind: Hashable, *, contexts: int, seconds: float) -> None:
        """One search's call of ``kind``: ``contexts`` contexts in ``seconds``."""
        with self._lock:
            self._kinds.setdefault(kind, _Kind()).single.append((contexts, seconds))

    def note_merged(self, kind: Hashable, *, calls: int, contexts: int, seconds: float) -> None:
        """``calls`` searches' calls of ``kind`` merged into one: ``contexts`` contexts in
        ``seconds``."""
        with self._lock:
            self._kinds.setdefault(kind, _Kind()).merged.append((calls, contexts, seconds))

    def prefers_merging(self, kind: Hashable) -> bool:
        """The way the measurements of ``kind`` favour now (no probe)."""
        with self._lock:
            return self._kinds.get(kind, _Kind()).prefers_merging()

    def summary(self) -> dict[str, object]:
        """What was measured and chosen, summed over the kinds (for ``/health`` and the
        benchmarks): groups, groups sent one search at a time, the kinds merged now."""
        with self._lock:
            kinds = list(self._kinds.values())
            ratios = [k.merged_over_alone() for k in kinds]
            return {"groups": sum(k.groups for k in kinds),
                    "split_groups": sum(k.split_groups for k in kinds),
                    "kinds": len(kinds),
                    "kinds_merged": sum(k.prefers_merging() for k in kinds),
                    "merged_over_alone": [None if r is None else round(r, 3) for r in ratios]}
