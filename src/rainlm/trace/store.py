"""The audit trail on disk: one SQLite file of TraceRecords and human review decisions.

One ``TraceStore`` is shared by the server's worker threads: every call takes a lock
around one connection (``check_same_thread=False``), the journal is WAL (readers do not
block the writer) and a busy timeout lets ``rain review approve`` run while the server
writes. ``record`` is one transaction, so a record is either complete or absent.

The schema changes only through ``MIGRATIONS``: named, applied in order, each in its
own transaction, and remembered in ``schema_migrations``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rainlm.errors import ConfigError, RainError
from rainlm.trace.records import (INTERRUPTED, REVIEW_STATES, STARTED, PolicyDecision,
                                  ReviewDecision, TraceRecord)

__all__ = ["TraceStore", "TraceNotFoundError", "ReviewStateError", "default_db_path",
           "MIGRATIONS", "ENV_VAR", "DECISIONS", "apply_migrations"]

ENV_VAR = "RAINLM_AUDIT_DB"
"""Environment variable naming the audit database (the server and the CLI both read it)."""

DECISIONS = ("approved", "rejected")
MEMORY = ":memory:"  # a private in-memory database (tests, throwaway servers)

# NEVER edit, rename or reorder a migration once it has been released: databases in the
# field have already applied it under its name. Change the schema only by APPENDING a new
# ("NNNN_what_it_does", SQL) entry; it runs once, in its own transaction, on next open.
MIGRATIONS: list[tuple[str, str]] = [
    ("0001_create_traces", """
        CREATE TABLE traces (
            id            TEXT PRIMARY KEY,
            created_at    TEXT NOT NULL,          -- ISO-8601 UTC
            endpoint      TEXT NOT NULL,
            model         TEXT NOT NULL,
            review_state  TEXT NOT NULL DEFAULT 'none',
            finish_reason TEXT NOT NULL,
            answer        TEXT NOT NULL,
            seed          INTEGER,
            error         TEXT,
            request_json  TEXT NOT NULL,          -- JSON object
            config_json   TEXT,                   -- JSON object or NULL (greedy)
            scores_json   TEXT NOT NULL,          -- JSON object
            stats_json    TEXT NOT NULL,          -- JSON object
            trace_json    TEXT,                   -- JSON object or NULL
            policy_json   TEXT                    -- JSON object (PolicyDecision) or NULL
        );
        CREATE INDEX traces_created_at ON traces (created_at);
        CREATE INDEX traces_review_state ON traces (review_state, created_at);
        CREATE INDEX traces_model ON traces (model);
    """),
    ("0002_create_review_decisions", """
        CREATE TABLE review_decisions (
            seq        INTEGER PRIMARY KEY AUTOINCREMENT,  -- decision order (history kept)
            trace_id   TEXT NOT NULL REFERENCES traces (id),
            decision   TEXT NOT NULL,
            note       TEXT,
            reviewer   TEXT,
            decided_at TEXT NOT NULL                        -- ISO-8601 UTC
        );
        CREATE INDEX review_decisions_trace ON review_decisions (trace_id, seq);
    """),
    ("0003_add_trace_owner", """
        -- who wrote a "started" record (a server instance), so that it, restarted, can
        -- mark its own unfinished records "interrupted"
        ALTER TABLE traces ADD COLUMN owner TEXT;
        CREATE INDEX traces_unfinished ON traces (finish_reason, owner);
    """),
]

# traces columns written by record(), in INSERT order; the JSON ones are serialised last.
_PLAIN_COLUMNS = ("id", "created_at", "endpoint", "model", "review_state", "finish_reason",
                  "answer", "seed", "error")
_JSON_COLUMNS = ("request", "config", "scores", "stats", "trace", "policy")


class TraceNotFoundError(RainError):
    """No record with the given id in the database."""


class ReviewStateError(RainError):
    """A review decision on a record that is not awaiting review ("pending")."""


def default_db_path() -> Path:
    """``$RAINLM_AUDIT_DB`` if set, else ``~/.local/share/rainlm/audit.sqlite3``."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".local" / "share" / "rainlm" / "audit.sqlite3"


def utc_now() -> str:
    """The current time as ISO-8601 UTC, e.g. ``2026-01-02T03:04:05.678901+00:00``."""
    return datetime.now(timezone.utc).isoformat()


# ------------------------------------------------------------------------ migrations
def apply_migrations(conn: sqlite3.Connection,
                     migrations: Iterable[tuple[str, str]] = MIGRATIONS) -> list[str]:
    """Apply the migrations ``conn`` lacks, in order, each in its own transaction.

    ``conn`` must be in autocommit mode (``isolation_level=None``). Returns the names
    applied now.
    """
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations "
                 "(name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    done = {r[0] for r in conn.execute("SELECT name FROM schema_migrations")}
    applied_now = []
    for name, sql in migrations:
        if name in done:  # up to date: no write lock taken (read-only commands stay readers)
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            # another process may have applied it since we looked
            if conn.execute("SELECT 1 FROM schema_migrations WHERE name = ?",
                            (name,)).fetchone() is None:
                for statement in _statements(sql):
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)",
                             (name, utc_now()))
                applied_now.append(name)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return applied_now


def _statements(sql: str) -> list[str]:
    """Split a migration script into statements (executescript would COMMIT mid-way)."""
    out, current = [], ""
    for line in sql.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    if current.strip():
        out.append(current.strip())
    return out


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


def storable(value: Any) -> Any:
    """``value`` with every string made valid UTF-8: a lone surrogate (which SQLite cannot
    store) is written out as its escape, ``\\ud800``, so nothing is dropped."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [storable(v) for v in value]
    return value


def _from_json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class TraceStore:
    """TraceRecords in one SQLite file; safe to share between threads."""

    def __init__(self, path: str | os.PathLike[str] | None = None):
        self.path: Path | str = default_db_path() if path is None else (
            MEMORY if str(path) == MEMORY else Path(path).expanduser())
        if self.path != MEMORY:
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise RainError(f"cannot create the folder of the audit database {self.path}: "
                                f"{exc}; pass another path (or set {ENV_VAR})") from exc
        self._lock = threading.RLock()
        if self.path != MEMORY and not Path(self.path).exists():
            # audit records hold users' prompts: readable by the owner only (0600)
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        try:
            self._conn = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None,
                                         check_same_thread=False)
            if self.path != MEMORY:
                self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            with self._lock:
                apply_migrations(self._conn)
        except sqlite3.DatabaseError as exc:
            raise RainError(f"cannot open the audit database {self.path}: {exc}; is it an "
                            f"SQLite file written by rainlm? Pass another path (or set "
                            f"{ENV_VAR})") from exc

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
        with self._lock, self._transaction(f"store trace {rec.id!r}"):
            plain = [storable(getattr(rec, c)) for c in _PLAIN_COLUMNS]
            # serialised inside the transaction: a failure here rolls everything back
            blobs = [_to_json(rec.id, c, storable(getattr(rec, c))) for c in _JSON_COLUMNS[:-1]]
            blobs.append(_to_json(rec.id, "policy",
                                  storable(asdict(rec.policy)) if rec.policy is not None else None))
            columns = [*_PLAIN_COLUMNS, *(f"{c}_json" for c in _JSON_COLUMNS), "owner"]
            updates = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
            done = self._conn.execute(
                f"INSERT INTO traces ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' * len(columns))}) "
                f"ON CONFLICT (id) DO UPDATE SET {updates} "
                f"WHERE traces.finish_reason IN (?, ?)",
                [*plain, *blobs, owner, STARTED, INTERRUPTED])
            if done.rowcount == 0:
                raise RainError(f"trace {rec.id!r} is already stored in {self.path}; "
                                f"trace ids must be unique")
            if rec.review is not None:
                self._insert_decision(rec.id, rec.review)

    def mark_unfinished(self, owner: str) -> int:
        """Mark the records ``owner`` started and never completed (the process was killed
        or crashed) "interrupted"; returns how many. A restarted server calls it first."""
        with self._lock, self._transaction("mark unfinished traces"):
            done = self._conn.execute(
                "UPDATE traces SET finish_reason = ?, error = ? "
                "WHERE finish_reason = ? AND owner = ?",
                (INTERRUPTED, "interrupted: the server stopped (killed or crashed) before "
                              "this request finished; no answer was recorded", STARTED, owner))
            return done.rowcount

    def decide(self, trace_id: str, decision: str, *, note: str | None = None,
               reviewer: str | None = None) -> TraceRecord:
        """Approve or reject a flagged ("pending") answer; returns the updated record.

        The decision is appended to the record's review history. Raises
        TraceNotFoundError for an unknown id, ReviewStateError when the record is not
        pending (never flagged, or already decided).
        """
        if decision not in DECISIONS:
            raise ConfigError("decision", f"must be 'approved' or 'rejected', got {decision!r}")
        with self._lock:
            with self._transaction(f"record the review of trace {trace_id!r}"):
                row = self._conn.execute("SELECT review_state FROM traces WHERE id = ?",
                                         (trace_id,)).fetchone()
                if row is None:
                    raise self._not_found(trace_id)
                if row[0] != "pending":
                    raise ReviewStateError(
                        f"trace {trace_id!r} is {row[0]!r}, not 'pending': only flagged "
                        f"answers awaiting review can be approved or rejected")
                self._insert_decision(trace_id, ReviewDecision(
                    decision=decision, note=note, reviewer=reviewer,  # type: ignore[arg-type]
                    decided_at=utc_now()))
                self._conn.execute("UPDATE traces SET review_state = ? WHERE id = ?",
                                   (decision, trace_id))
            return self.get(trace_id)

    # ------------------------------------------------------------------ reading
    def get(self, trace_id: str) -> TraceRecord:
        """The record with id ``trace_id``; raises TraceNotFoundError."""
        with self._lock:
            row = self._conn.execute(f"SELECT {self._select} FROM traces WHERE id = ?",
                                     (trace_id,)).fetchone()
            if row is None:
                raise self._not_found(trace_id)
            return self._record_of(row)

    def resolve(self, id_or_prefix: str) -> str:
        """The full id of the record whose id is ``id_or_prefix`` or starts with it (as
        ``git`` resolves short hashes); TraceNotFoundError when none or several match."""
        with self._lock:
            if self._exists(id_or_prefix):
                return id_or_prefix
            pattern = id_or_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            rows = self._conn.execute("SELECT id FROM traces WHERE id LIKE ? ESCAPE '\\' "
                                      "ORDER BY created_at DESC LIMIT 6", (pattern + "%",)).fetchall()
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
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {self._select} FROM traces {where} "
                f"ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?",
                [*args, limit, offset]).fetchall()
            return [self._record_of(row) for row in rows]

    def reviews(self, trace_id: str) -> list[ReviewDecision]:
        """Every review decision on ``trace_id``, oldest first (the history)."""
        with self._lock:
            if not self._exists(trace_id):
                raise self._not_found(trace_id)
            rows = self._conn.execute(
                "SELECT decision, note, reviewer, decided_at FROM review_decisions "
                "WHERE trace_id = ? ORDER BY seq", (trace_id,)).fetchall()
        return [ReviewDecision(*row) for row in rows]

    def migrations_applied(self) -> list[str]:
        """Names of the migrations this database has applied, in order."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT name FROM schema_migrations ORDER BY rowid").fetchall()
        return [r[0] for r in rows]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "TraceStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TraceStore({str(self.path)!r})"

    # ------------------------------------------------------------------ internals
    _select = ", ".join([*_PLAIN_COLUMNS, *(f"{c}_json" for c in _JSON_COLUMNS)])

    def _record_of(self, row: tuple[Any, ...]) -> TraceRecord:
        plain = dict(zip(_PLAIN_COLUMNS, row[:len(_PLAIN_COLUMNS)]))
        blobs = {c: _from_json(t) for c, t in zip(_JSON_COLUMNS, row[len(_PLAIN_COLUMNS):])}
        policy = blobs.pop("policy")
        last = self._conn.execute(
            "SELECT decision, note, reviewer, decided_at FROM review_decisions "
            "WHERE trace_id = ? ORDER BY seq DESC LIMIT 1", (plain["id"],)).fetchone()
        return TraceRecord(
            **plain, request=blobs["request"], config=blobs["config"],
            scores=blobs["scores"], stats=blobs["stats"], trace=blobs["trace"],
            policy=PolicyDecision(**policy) if policy is not None else None,
            review=ReviewDecision(*last) if last is not None else None)

    def _insert_decision(self, trace_id: str, review: ReviewDecision) -> None:
        self._conn.execute(
            "INSERT INTO review_decisions (trace_id, decision, note, reviewer, decided_at) "
            "VALUES (?, ?, ?, ?, ?)",
            storable([trace_id, review.decision, review.note, review.reviewer, review.decided_at]))

    def _exists(self, trace_id: str) -> bool:
        return self._conn.execute("SELECT 1 FROM traces WHERE id = ?",
                                  (trace_id,)).fetchone() is not None

    def _not_found(self, trace_id: str) -> TraceNotFoundError:
        return TraceNotFoundError(
            f"no trace with id {trace_id!r} in the audit database {self.path}; "
            f"`rain trace list --db {self.path}` lists the stored ids")

    def _transaction(self, what: str) -> "_Transaction":
        return _Transaction(self._conn, what, self.path)


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` on any exception.

    SQLite errors become RainErrors naming the database; others pass through unchanged.
    """

    def __init__(self, conn: sqlite3.Connection, what: str, path: Path | str):
        self.conn, self.what, self.path = conn, what, path

    def __enter__(self) -> None:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise RainError(f"cannot {self.what} in the audit database {self.path}: {exc}") from exc

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc_type is None:
            try:
                self.conn.execute("COMMIT")
                return False
            except sqlite3.Error as commit_exc:
                exc = commit_exc
        if self.conn.in_transaction:  # SQLite may have rolled back already (disk full, ...)
            self.conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise RainError(f"cannot {self.what} in the audit database {self.path}: "
                            f"{exc}") from exc
        return False
