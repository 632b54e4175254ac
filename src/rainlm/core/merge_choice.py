"""Whether a round's next-token calls of several searches go out as one backend call.

The scheduler (``core.scheduler``) answers the calls its searches wait for round after
round. Sending the next-token calls of several searches as **one** backend call is what
makes concurrency pay (one forward pass for many contexts, one HTTP request for many
prompts), but it is not free everywhere: a batched pass over ragged contexts pads them,
and on a small CPU a batch can cost more per context than the same contexts one search
at a time. ``MergeChoice`` measures both ways, seconds per context, and chooses the
cheaper, so that running searches together is never slower than running them one at a
time:

- until each way has ``MIN_SAMPLES`` measurements, calls are merged (the way that is
  cheaper on every backend measured so far); a call of a single search (a round with one
  search waiting) is a measurement of the one-at-a-time way;
- then the calls are sent one search at a time only when merging measured ``SLOWER``
  times the seconds per context or more, and both ways take at least ``FAST_S`` per
  context (below it the model's time is not what a user waits for);
- every ``PROBE_EVERY``-th group of several searches goes the other way, so both
  measurements stay current as the load changes.

Either way every search gets the same results in the same order (``core.scheduler``), so
the choice changes the speed, never an answer.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MergeChoice", "SecondsPerContext"]

MIN_SAMPLES = 4
"""Measurements of each way before the choice follows them."""
SLOWER = 1.25
"""Merging is given up when it costs this many times the seconds per context or more."""
FAST_S = 0.001
"""Seconds per context below which the choice does not matter (a scripted model)."""
PROBE_EVERY = 32
"""Every this-many-th group of several searches goes the way not chosen."""
SMOOTHING = 0.2
"""Weight of the newest measurement in the running mean."""


@dataclass
class SecondsPerContext:
    """A running mean of one way's seconds per context."""

    samples: int = 0
    mean: float = 0.0

    def add(self, contexts: int, seconds: float) -> None:
        if contexts <= 0:
            return
        value = seconds / contexts
        self.mean = value if self.samples == 0 else (
            (1 - SMOOTHING) * self.mean + SMOOTHING * value)
        self.samples += 1


@dataclass
class MergeChoice:
    """Chooses, per group of several searches' next-token calls, merged or one search at
    a time (see the module docstring)."""

    merged: SecondsPerContext
    alone: SecondsPerContext
    groups: int = 0
    """Groups of several searches seen (the probe counter)."""
    split_groups: int = 0
    """Groups sent one search at a time."""

    def __init__(self) -> None:
        self.merged, self.alone = SecondsPerContext(), SecondsPerContext()
        self.groups = self.split_groups = 0

    def prefers_merging(self) -> bool:
        """The way the measurements favour now (no probe)."""
        merged, alone = self.merged, self.alone
        if merged.samples < MIN_SAMPLES or alone.samples < MIN_SAMPLES:
            return True
        if max(merged.mean, alone.mean) < FAST_S:
            return True
        return merged.mean < SLOWER * alone.mean

    def merge_next(self) -> bool:
        """Whether the next group of several searches goes out as one call."""
        self.groups += 1
        merge = self.prefers_merging()
        if self.groups % PROBE_EVERY == 0:
            merge = not merge
        if not merge:
            self.split_groups += 1
        return merge

    def note(self, *, searches: int, contexts: int, seconds: float) -> None:
        """One backend call answered ``searches`` searches' calls: ``contexts`` contexts
        in ``seconds``."""
        (self.merged if searches > 1 else self.alone).add(contexts, seconds)

    def summary(self) -> dict[str, object]:
        """What was measured and chosen (for ``/health`` and benchmarks)."""
        return {"merge": self.prefers_merging(), "groups": self.groups,
                "split_groups": self.split_groups,
                "merged_ms_per_context": round(1000 * self.merged.mean, 3),
                "alone_ms_per_context": round(1000 * self.alone.mean, 3),
                "merged_samples": self.merged.samples, "alone_samples": self.alone.samples}
