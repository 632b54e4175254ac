"""Counts of requests the server refused before any work (4xx), by status code.

Refused requests are not audit records (a flood of bad requests must not fill the audit
database, and most carry nothing worth keeping); they are counted here, logged at INFO
with method, path and status, and shown in ``/health``'s ``refused`` field, so an
operator sees 401 (wrong keys), 413 (oversized bodies), 429 (a full queue) and 400s at a
glance without a proxy.
"""

from __future__ import annotations

import logging
import threading

__all__ = ["Refusals"]

log = logging.getLogger("rainlm.serve")


class Refusals:
    """Thread-safe counters of 4xx responses since the server started."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[int, int] = {}

    def note(self, method: str, path: str, status: int) -> None:
        """Count ``status`` if it is a 4xx, and log it."""
        if not 400 <= status < 500:
            return
        with self._lock:
            self._counts[status] = self._counts.get(status, 0) + 1
        log.info("rain serve: refused %s %r with %d", method, path, status)

    def snapshot(self) -> dict[str, int]:
        """``{"401": 2, "429": 1}``: every 4xx status seen so far, in status order."""
        with self._lock:
            return {str(k): v for k, v in sorted(self._counts.items())}
