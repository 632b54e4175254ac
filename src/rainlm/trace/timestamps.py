"""Times as the audit trail stores them: ISO-8601 UTC text, which sorts as it reads."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

__all__ = ["utc_now", "utc_after"]


def utc_now() -> str:
    """The current time as ISO-8601 UTC, e.g. ``2026-01-02T03:04:05.678901+00:00``
    (always with microseconds: such times compare as text as they compare as times)."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def utc_after(seconds: float) -> str:
    """The time ``seconds`` from now, as ``utc_now`` writes it."""
    return (datetime.now(timezone.utc) + timedelta(seconds=seconds)).isoformat(
        timespec="microseconds")
