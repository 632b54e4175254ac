"""A backend call's work, shared among the searches it answered.

When one backend call answers several searches' calls (``core.scheduler``), each search
that keeps counters of its own (a server request: ``core.shared_backend``) gets its part
of what the backend counted during the call: tokens and cache counts in proportion to
its contexts (largest remainders, so the parts add up to the call's whole), and the
forward passes (with their batch sizes) whole, so a request's ``forward_calls`` counts
the passes it shared.
"""

from __future__ import annotations

from collections.abc import Sequence

from rainlm.backends.base import BackendCounters

__all__ = ["snapshot", "share_work"]

SPLIT_COUNTERS = ("prefill_tokens", "decode_tokens", "cache_hits", "cache_misses",
                  "cached_tokens_reused")
"""Backend counters a call's searches share in proportion to their contexts."""


def snapshot(backend: object) -> dict[str, int]:
    """The backend's counters now (zeros for a backend without counters)."""
    counters = getattr(backend, "counters", None)
    out = {k: int(getattr(counters, k, 0)) for k in (*SPLIT_COUNTERS, "forward_calls")}
    out["batches"] = len(getattr(counters, "batch_sizes", ()))
    return out


def share_work(shares: Sequence[tuple[BackendCounters | None, int]], backend: object,
               before: dict[str, int], after: dict[str, int] | None = None) -> None:
    """Give each ``(counters, contexts)`` of ``shares`` its part of the work ``backend``
    counted from ``before`` to ``after`` (``snapshot``s; ``after`` None: now); a part
    whose counters are None is counted in the whole but given to no one."""
    if not any(c is not None for c, _ in shares):
        return
    after = after if after is not None else snapshot(backend)
    total = sum(n for _, n in shares)
    if total == 0:
        return
    counters = getattr(backend, "counters", None)
    sizes = (list(counters.batch_sizes[before["batches"]:after["batches"]])
             if counters is not None else [])
    for name in SPLIT_COUNTERS:
        work = after[name] - before[name]
        exact = [work * n / total for _, n in shares]
        parts = [int(x) for x in exact]
        by_remainder = sorted(range(len(shares)), key=lambda i: parts[i] - exact[i])
        for i in by_remainder[:work - sum(parts)]:
            parts[i] += 1
        for (own, _), part in zip(shares, parts):
            if own is not None:
                setattr(own, name, getattr(own, name) + part)
    passes = after["forward_calls"] - before["forward_calls"]
    for own, _ in shares:
        if own is not None:
            own.forward_calls += passes
            own.batch_sizes.extend(sizes)
