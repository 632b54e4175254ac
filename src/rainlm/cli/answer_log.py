"""Every answer of ``rain generate`` and ``rain chat`` goes to the audit database, as the
server's do (like ``llm logs``); ``--no-log`` opts out. ``rain trace`` reads them back."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import click

from rainlm.cli.trace import db_option

__all__ = ["AnswerLog", "log_options"]


def log_options(func: Any) -> Any:
    """``--log/--no-log`` and ``--store PATH|URL`` (also ``--db``)."""
    func = db_option(func, dest="log_db")
    return click.option("--log/--no-log", "log", default=True, show_default=True,
                        help="Store each answer, its search tree and scores in the audit "
                             "database (read them with `rain trace list`).")(func)


class AnswerLog:
    """Writes answers to the audit database; a failure to write warns, never aborts."""

    def __init__(self, enabled: bool, db: str | Path | None, endpoint: str):
        self.enabled = enabled
        self.db = db
        self.endpoint = endpoint
        self._store: Any = None

    def record(self, result: Any, *, request: dict[str, Any], detokenize: Any,
               scores: dict[str, Any] | None = None) -> str | None:
        """Store one answer; returns its trace id (None when off or the write failed)."""
        if not self.enabled:
            return None
        from rainlm.errors import RainError
        from rainlm.trace.from_result import new_trace_id, record_from_result
        from rainlm.trace.store import TraceStore, utc_now

        try:
            if self._store is None:
                self._store = TraceStore(self.db)
            rec = record_from_result(result, trace_id=new_trace_id(), created_at=utc_now(),
                                     endpoint=self.endpoint, request=request,
                                     detokenize=detokenize, scores=scores or {})
            self._store.record(rec)
            return rec.id
        except (RainError, OSError) as exc:
            warnings.warn(f"the answer was not logged: {exc} (--no-log turns logging off)",
                          RuntimeWarning, stacklevel=2)
            return None

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
