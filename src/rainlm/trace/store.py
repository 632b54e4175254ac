"""The audit trail: TraceRecords and human review decisions, in an SQLite file (the
default, one process) or a PostgreSQL database (several replicas and reviewers).

``TraceStore(location)`` opens either (``location.py`` says which a value names); the
same records, migrations and review rules hold on both. One ``TraceStore`` is shared by
the server's worker threads: every call takes a lock around one connection. ``record``
is one transaction, so a record is either complete or absent; a request's record is
written "started" before its search and completed in place, so a killed process leaves
a visible unfinished record, never a missing one (``mark_unfinished``).

The review queue: ``decide`` locks the record's row, so a decision is recorded once
however many reviewers and replicas race; ``claim_next`` hands each reviewer the oldest
pending record nobody holds and holds it for them for a while, so two reviewers never
work on the same one; ``review_counts`` is read from the database, the same from every
replica.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rainlm.errors import ConfigError, RainError
from rainlm.trace.location import ENV_VAR, default_db_path, default_location, is_postgres_url
from rainlm.trace.records import (INTERRUPTED, REVIEW_STATES, STARTED, PolicyDecision,
                                  ReviewDecision, TraceRecord)
from rainlm.trace.sqlite_db import MIGRATIONS, SqliteDatabase, apply_migrations
from rainlm.trace.timestamps import utc_after, utc_now

__all__ = ["TraceStore", "TraceNotFoundError", "ReviewStateError", "default_db_path",
           "MIGRATIONS", "ENV_VAR", "DECISIONS", "apply_migrations", "utc_now",
           "DEFAULT_HOLD_S"]

DECISIONS = ("approved", "rejected")
DEFAULT_HOLD_S = 600.0
"""How long a record ``claim_next`` hands to a reviewer stays theirs (10 minutes)."""

# traces columns written by record(), in INSERT order; the JSON ones are serialised last.
_PLAIN_COLUMNS = ("id", "created_at", "endpoint", "model", "review_state", "finish_reason",
                  "answer", "seed", "error")
_JSON_COLUMNS = ("request", "config", "scores", "stats", "trace", "policy")


class TraceNotFoundError(RainError):
    """No record with the given id in the database."""


class ReviewStateError(RainError):
    """A review decision on a record that is not awaiting review ("pending"), or that
    another reviewer holds."""


# --------------------------------------------------------------------- serialisation
def _plain(obj: Any) -> Any:
    """json.dumps fallback: numpy scalars and arrays become numbers and lists."""
    if hasattr(obj, "tolist") and callable(obj.tolist):  # numpy arrays and scalars
        return obj.tolist()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _to_json(rec_id: str, name: str, value: Any) -> str | None:
    if value is None:
        return None
    try:
        return json.dumps(value, ensure_ascii=False, default=_plain)
    except (TypeError, ValueError) as exc:
        raise RainError(f"trace record {rec_id!r}: field {name!r} cannot be stored as JSON "
                        f"({exc}); pass plain dicts, lists, strings and numbers") from exc


def storable(value: Any, *, escape_nul: bool = False) -> Any:
    """``value`` with every string made valid UTF-8: a lone surrogate (which SQLite cannot
    store) is written out as its escape, ``\\ud800``, so nothing is dropped; with
    ``escape_nul`` (PostgreSQL text) a NUL character is written ``\\x00`` likewise."""
    if isinstance(value, str):
        if escape_nul and "\x00" in value:
            value = value.replace("\x00", "\\x00")
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {storable(k, escape_nul=escape_nul): storable(v, escape_nul=escape_nul)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [storable(v, escape_nul=escape_nul) for v in value]
    return value


def _from_json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _open_database(location: str | os.PathLike[str]) -> Any:
    if is_postgres_url(location):
        from rainlm.trace.postgres_db import PostgresDatabase

        return PostgresDatabase(str(location))
    return SqliteDatabase(location)


class TraceStore:
    """TraceRecords in an SQLite file or a PostgreSQL database; safe to share between
    threads.

    ``location``: a file path, ``":memory:"``, or a ``postgresql://`` URL (None:
    ``$RAINLM_AUDIT_DB``, else ``~/.local/share/rainlm/audit.sqlite3``). ``path`` names it
    in messages (a URL without its password).
    """

    def __init__(self, location: str | os.PathLike[str] | None = None):
        self._db = _open_database(default_location() if location is None else location)
        self.path: Path | str = self._db.path
        self._lock = threading.RLock()

    @property
    def dialect(self) -> str:
        """"sqlite" or "postgresql"."""
        return self._db.dialect

    # ------------------------------------------------------------------ writing
    def record(self, rec: TraceRecord, *, owner: str | None = None) -> None:
        """Store ``rec`` in one transaction: afterwards it is complete or absent.

        A record of a request still running has ``finish_reason`` "started"
        (``STARTED``, written by ``owner``); storing the same id again completes it
        (also one marked "interrupted" meanwhile). Raises RainError when the id is already
        stored complete, or a field is not JSON-ready.
        """
        if rec.review_state not in REVIEW_STATES:
            raise ConfigError("review_state", f"must be one of {', '.join(REVIEW_STATES)}, "
                                              f"got {rec.review_state!r}")
        with self._transaction(f"store trace {rec.id!r}"):
            plain = [self._storable(getattr(rec, c)) for c in _PLAIN_COLUMNS]
            # serialised inside the transaction: a failure here rolls everything back
            blobs = [_to_json(rec.id, c, storable(getattr(rec, c))) for c in _JSON_COLUMNS[:-1]]
            blobs.append(_to_json(rec.id, "policy",
                                  storable(asdict(rec.policy)) if rec.policy is not None else None))
            columns = [*_PLAIN_COLUMNS, *(f"{c}_json" for c in _JSON_COLUMNS), "owner"]
            updates = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
            done = self._db.execute(
                f"INSERT INTO traces ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' * len(columns))}) "
                f"ON CONFLICT (id) DO UPDATE SET {updates} "
                f"WHERE traces.finish_reason IN (?, ?)",
                [*plain, *blobs, self._storable(owner), STARTED, INTERRUPTED])
            if done.rowcount == 0:
                raise RainError(f"trace {rec.id!r} is already stored in {self.path}; "
                                f"trace ids must be unique")
            if rec.review is not None:
                self._insert_decision(rec.id, rec.review)

    def mark_unfinished(self, owner: str) -> int:
        """Mark the records ``owner`` started and never completed (the process was killed
        or crashed) "interrupted"; returns how many. A restarted server calls it first."""
        with self._transaction("mark unfinished traces"):
            done = self._db.execute(
                "UPDATE traces SET finish_reason = ?, error = ? "
                "WHERE finish_reason = ? AND owner = ?",
                (INTERRUPTED, "interrupted: the server stopped (killed or crashed) before "
                              "this request finished; no answer was recorded", STARTED,
                 self._storable(owner)))
            return done.rowcount

    def unfinished(self) -> list[tuple[str | None, int, str]]:
        """Who holds "started" records (requests whose server has not finished them):
        ``(owner, count, oldest created_at)`` per owner, the oldest first. A live server's
        running requests are here too; a dead replica's stay until it restarts under the
        same owner, or an operator marks them (``mark_unfinished``)."""
        with self._reading("list the unfinished records"):
            rows = self._db.execute(
                "SELECT owner, COUNT(*), MIN(created_at) FROM traces WHERE finish_reason = ? "
                "GROUP BY owner ORDER BY MIN(created_at)", (STARTED,)).fetchall()
        return [(owner, int(n), oldest) for owner, n, oldest in rows]

    def decide(self, trace_id: str, decision: str, *, note: str | None = None,
               reviewer: str | None = None) -> TraceRecord:
        """Approve or reject a flagged ("pending") answer; returns the updated record.

        The decision is appended to the record's review history, once: the record's row
        is locked while it is checked and changed. Raises TraceNotFoundError for an
        unknown id, ReviewStateError when the record is not pending (never flagged, or
        already decided) or another reviewer holds it (``claim_next``).
        """
        if decision not in DECISIONS:
            raise ConfigError("decision", f"must be 'approved' or 'rejected', got {decision!r}")
        trace_id, reviewer = self._storable(trace_id), self._storable(reviewer)
        with self._lock:
            with self._transaction(f"record the review of trace {trace_id!r}"):
                row = self._db.execute(
                    "SELECT review_state, held_by, held_until FROM traces WHERE id = ?"
                    + self._db.for_update, (trace_id,)).fetchone()
                if row is None:
                    raise self._not_found(trace_id)
                state, held_by, held_until = row
                if state != "pending":
                    raise ReviewStateError(
                        f"trace {trace_id!r} is {state!r}, not 'pending': only flagged "
                        f"answers awaiting review can be approved or rejected")
                if held_by is not None and held_until > utc_now() and held_by != reviewer:
                    raise ReviewStateError(
                        f"trace {trace_id!r} is held by reviewer {held_by!r} until "
                        f"{held_until} (`rain review next` hands out another one); decide it "
                        f"as {held_by!r} or after that time")
                self._insert_decision(trace_id, ReviewDecision(
                    decision=decision, note=note, reviewer=reviewer,  # type: ignore[arg-type]
                    decided_at=utc_now()))
                self._db.execute("UPDATE traces SET review_state = ?, held_by = NULL, "
                                 "held_until = NULL WHERE id = ?", (decision, trace_id))
            return self.get(trace_id)

    def claim_next(self, reviewer: str, *, hold_s: float = DEFAULT_HOLD_S) -> TraceRecord | None:
        """The oldest pending record that no other reviewer holds, now held by
        ``reviewer`` for ``hold_s`` seconds (their own held record first); None when the
        queue is empty. Two reviewers, on any replicas, never get the same record."""
        if not isinstance(reviewer, str) or not reviewer.strip():
            raise ConfigError("reviewer", "must name the reviewer (a non-empty string)")
        if isinstance(hold_s, bool) or not isinstance(hold_s, (int, float)) or not (
                0 < hold_s <= 86_400):
            raise ConfigError("hold_s", f"must be seconds in (0, 86400], got {hold_s!r}")
        reviewer = self._storable(reviewer)
        with self._lock:
            with self._transaction("take the next record to review"):
                row = self._db.execute(
                    "SELECT id FROM traces WHERE review_state = 'pending' AND "
                    "(held_by IS NULL OR held_until <= ? OR held_by = ?) "
                    "ORDER BY CASE WHEN held_by = ? THEN 0 ELSE 1 END, created_at, id "
                    "LIMIT 1" + self._db.for_update_skip_locked,
                    (utc_now(), reviewer, reviewer)).fetchone()
                if row is None:
                    return None
                self._db.execute("UPDATE traces SET held_by = ?, held_until = ? WHERE id = ?",
                                 (reviewer, utc_after(hold_s), row[0]))
            return self.get(row[0])

    def holds(self, trace_ids: list[str]) -> dict[str, tuple[str, str]]:
        """Which of ``trace_ids`` a reviewer holds now: id -> (reviewer, until)."""
        if not trace_ids:
            return {}
        with self._reading("read the review holds"):
            rows = self._db.execute(
                f"SELECT id, held_by, held_until FROM traces WHERE id IN "
                f"({', '.join('?' * len(trace_ids))}) AND held_by IS NOT NULL "
                f"AND held_until > ?", [*self._storable(trace_ids), utc_now()]).fetchall()
        return {r[0]: (r[1], r[2]) for r in rows}

    # ------------------------------------------------------------------ reading
    def get(self, trace_id: str) -> TraceRecord:
        """The record with id ``trace_id``; raises TraceNotFoundError."""
        with self._reading(f"read trace {trace_id!r}"):
            row = self._db.execute(f"SELECT {self._select} FROM traces WHERE id = ?",
                                   (self._storable(trace_id),)).fetchone()
            if row is None:
                raise self._not_found(trace_id)
            return self._record_of(row)

    def resolve(self, id_or_prefix: str) -> str:
        """The full id of the record whose id is ``id_or_prefix`` or starts with it (as
        ``git`` resolves short hashes); TraceNotFoundError when none or several match."""
        with self._reading("look up a trace id"):
            if self._exists(id_or_prefix):
                return id_or_prefix
            pattern = id_or_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            rows = self._db.execute("SELECT id FROM traces WHERE id LIKE ? ESCAPE '\\' "
                                    "ORDER BY created_at DESC LIMIT 6",
                                    (self._storable(pattern) + "%",)).fetchall()
        if len(rows) == 1:
            return rows[0][0]
        if not rows:
            raise self._not_found(id_or_prefix)
        shown = ", ".join(r[0] for r in rows[:5])
        raise TraceNotFoundError(f"{id_or_prefix!r} is the start of several trace ids ({shown}"
                                 f"{', ...' if len(rows) > 5 else ''}); give more of the id")

    def list(self, *, review_state: str | None = None, limit: int = 50,
             offset: int = 0) -> list[TraceRecord]:
        """Records, newest first; only those in ``review_state`` when given."""
        if review_state is not None and review_state not in REVIEW_STATES:
            raise ConfigError("review_state", f"must be one of {', '.join(REVIEW_STATES)}, "
                                              f"got {review_state!r}")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigError("limit", f"must be a positive integer, got {limit!r}")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ConfigError("offset", f"must be an integer >= 0, got {offset!r}")
        where, args = ("WHERE review_state = ?", [review_state]) if review_state else ("", [])
        with self._reading("list traces"):
            rows = self._db.execute(
                f"SELECT {self._select} FROM traces {where} "
                f"ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
                [*args, limit, offset]).fetchall()
            return [self._record_of(row) for row in rows]

    def iter_records(self, *, page: int = 500) -> Iterator[TraceRecord]:
        """Every record, oldest first, read ``page`` at a time by position (created_at,
        id): records that replicas write meanwhile never shift a page, so none is read
        twice or skipped (as ``list``'s offsets would)."""
        last: tuple[str, str] | None = None
        while True:
            where, args = ("WHERE created_at > ? OR (created_at = ? AND id > ?)",
                           [last[0], last[0], last[1]]) if last else ("", [])
            with self._reading("read the records"):
                rows = self._db.execute(
                    f"SELECT {self._select} FROM traces {where} ORDER BY created_at, id "
                    f"LIMIT ?", [*args, page]).fetchall()
                records = [self._record_of(row) for row in rows]
            yield from records
            if len(records) < page:
                return
            last = (records[-1].created_at, records[-1].id)

    def review_counts(self) -> dict[str, int]:
        """How many records are in each review state, and how many pending ones a
        reviewer holds now ("held"); read from the database, so every replica agrees."""
        with self._reading("count the review queue"):
            rows = self._db.execute("SELECT review_state, COUNT(*) FROM traces "
                                    "GROUP BY review_state").fetchall()
            held = self._db.execute("SELECT COUNT(*) FROM traces WHERE review_state = "
                                    "'pending' AND held_by IS NOT NULL AND held_until > ?",
                                    (utc_now(),)).fetchone()[0]
        counts = {state: 0 for state in REVIEW_STATES}
        counts.update({state: int(n) for state, n in rows})
        counts["held"] = int(held)
        return counts

    def reviews(self, trace_id: str) -> list[ReviewDecision]:
        """Every review decision on ``trace_id``, oldest first (the history)."""
        with self._reading(f"read the reviews of trace {trace_id!r}"):
            if not self._exists(trace_id):
                raise self._not_found(trace_id)
            rows = self._db.execute(
                "SELECT decision, note, reviewer, decided_at FROM review_decisions "
                "WHERE trace_id = ? ORDER BY seq", (self._storable(trace_id),)).fetchall()
        return [ReviewDecision(*row) for row in rows]

    def migrations_applied(self) -> list[str]:
        """Names of the migrations this database has applied, in order."""
        with self._reading("read the applied migrations"):
            return self._db.migrations_applied()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "TraceStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TraceStore({str(self.path)!r})"

    # ------------------------------------------------------------------ internals
    _select = ", ".join([*_PLAIN_COLUMNS, *(f"{c}_json" for c in _JSON_COLUMNS)])

    def _storable(self, value: Any) -> Any:
        return storable(value, escape_nul=self._db.escapes_nul)

    def _record_of(self, row: tuple[Any, ...]) -> TraceRecord:
        plain = dict(zip(_PLAIN_COLUMNS, row[:len(_PLAIN_COLUMNS)]))
        blobs = {c: _from_json(t) for c, t in zip(_JSON_COLUMNS, row[len(_PLAIN_COLUMNS):])}
        policy = blobs.pop("policy")
        last = self._db.execute(
            "SELECT decision, note, reviewer, decided_at FROM review_decisions "
            "WHERE trace_id = ? ORDER BY seq DESC LIMIT 1", (plain["id"],)).fetchone()
        return TraceRecord(
            **plain, request=blobs["request"], config=blobs["config"],
            scores=blobs["scores"], stats=blobs["stats"], trace=blobs["trace"],
            policy=PolicyDecision(**policy) if policy is not None else None,
            review=ReviewDecision(*last) if last is not None else None)

    def _insert_decision(self, trace_id: str, review: ReviewDecision) -> None:
        self._db.execute(
            "INSERT INTO review_decisions (trace_id, decision, note, reviewer, decided_at) "
            "VALUES (?, ?, ?, ?, ?)",
            self._storable([trace_id, review.decision, review.note, review.reviewer,
                            review.decided_at]))

    def _exists(self, trace_id: str) -> bool:
        return self._db.execute("SELECT 1 FROM traces WHERE id = ?",
                                (self._storable(trace_id),)).fetchone() is not None

    def _not_found(self, trace_id: str) -> TraceNotFoundError:
        return TraceNotFoundError(
            f"no trace with id {trace_id!r} in the audit database {self.path}; "
            f"`rain trace list --store {self.path}` lists the stored ids")

    def _transaction(self, what: str) -> "_Transaction":
        return _Transaction(self._db, self._lock, what, write=True)

    def _reading(self, what: str) -> "_Transaction":
        return _Transaction(self._db, self._lock, what, write=False)


class _Transaction:
    """The store's lock, and a transaction: ``BEGIN`` ... ``COMMIT`` (``ROLLBACK`` on any
    exception) for a write; a read is one snapshot on PostgreSQL and plain autocommit
    reads on SQLite. Database errors become RainErrors naming the store (never a URL's
    password); others pass through unchanged. A dropped connection is opened again
    first."""

    def __init__(self, db: Any, lock: threading.RLock, what: str, *, write: bool):
        self.db, self.lock, self.what, self.write = db, lock, what, write

    def __enter__(self) -> None:
        self.lock.acquire()
        try:
            self.db.reconnect_if_broken()
            self.db.begin(write=self.write)
        except self.db.errors as exc:
            self.lock.release()
            raise self._error(exc) from None
        except BaseException:
            self.lock.release()
            raise

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        try:
            if exc_type is None:
                try:
                    self.db.commit()
                    return False
                except self.db.errors as commit_exc:
                    exc = commit_exc
            try:
                self.db.rollback()
            except self.db.errors:
                pass  # the connection is gone: the server rolls back by itself
            if isinstance(exc, self.db.errors):
                raise self._error(exc) from None
            return False
        finally:
            self.lock.release()

    def _error(self, exc: BaseException) -> RainError:
        return RainError(f"cannot {self.what} in the audit database {self.db.where}: "
                         f"{self.db.redact(str(exc)).strip()}")

