"""TraceStore: round trips, one-transaction writes, threads, migrations, the review states."""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import replace

import pytest

from rainlm.errors import ConfigError, RainError
from rainlm.trace.records import ReviewDecision
from rainlm.trace.store import (ENV_VAR, MIGRATIONS, ReviewStateError, TraceNotFoundError,
                                TraceStore, apply_migrations, default_db_path)

from .helpers import json_normal, make_record

ALL = [name for name, _ in MIGRATIONS]


@pytest.fixture
def store(store_location):
    """A store of the test's own: an SQLite file, then a PostgreSQL database."""
    s = TraceStore(store_location)
    yield s
    s.close()


def _count(store, table="traces"):
    """Rows in ``table``, read through a second connection (what is really committed)."""
    with TraceStore(_location(store)) as other:
        return other._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def _location(store):
    """The store's location with its password (``store.path`` hides it)."""
    return getattr(store._db, "_url", store.path)


# ---------------------------------------------------------------------- round trip
def test_record_and_get_round_trip_real_search(store):
    rec = make_record("tr_a", kind="branching")
    assert rec.trace["tree"]["nodes"], "the search produced a tree"
    store.record(rec)
    back = store.get("tr_a")
    assert back == json_normal(rec)
    assert back.policy == rec.policy and back.review is None


def test_round_trip_with_review_and_greedy_record(store):
    decided = ReviewDecision("approved", "fine", "ana", "2026-01-02T00:00:00+00:00")
    rec = make_record("tr_r", review_state="approved", review=decided)
    greedy = make_record("tr_g", review_state="none", config=None, trace=None, policy=None,
                         seed=None, error="backend died")
    store.record(rec)
    store.record(greedy)
    assert store.get("tr_r") == json_normal(rec)
    assert store.get("tr_g") == json_normal(greedy)


def test_get_unknown_names_id_and_db(store):
    with pytest.raises(TraceNotFoundError) as info:
        store.get("tr_missing")
    assert "tr_missing" in str(info.value) and str(store.path) in str(info.value)


def test_duplicate_id_is_a_rain_error_and_keeps_the_first(store):
    store.record(make_record("tr_d", answer="first"))
    with pytest.raises(RainError, match="already stored"):
        store.record(make_record("tr_d", answer="second"))
    assert store.get("tr_d").answer == "first"


def test_default_db_path_env(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "x.db"))
    assert default_db_path() == tmp_path / "x.db"
    monkeypatch.delenv(ENV_VAR)
    assert default_db_path().parts[-4:] == (".local", "share", "rainlm", "audit.sqlite3")
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "deep" / "er" / "a.db"))
    with TraceStore() as s:
        assert s.path == tmp_path / "deep" / "er" / "a.db" and s.path.exists()


def test_wal_journal(tmp_path):
    store = TraceStore(tmp_path / "w.db")
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


# -------------------------------------------------------------------- atomicity
def test_unserialisable_field_leaves_nothing(store):
    bad = make_record("tr_bad", stats={"ok": 1, "oops": object()})
    with pytest.raises(RainError, match="'stats'"):
        store.record(bad)
    with pytest.raises(TraceNotFoundError):
        store.get("tr_bad")
    assert _count(store) == 0
    store.record(make_record("tr_bad"))  # the id is free: nothing half-written holds it
    assert store.get("tr_bad").id == "tr_bad"


def test_failure_after_the_trace_row_rolls_back(store):
    # the traces row is inserted, then the review row fails to bind: both must vanish
    broken = ReviewDecision("approved", None, None, decided_at=object())  # type: ignore[arg-type]
    with pytest.raises(RainError):
        store.record(make_record("tr_half", review_state="approved", review=broken))
    assert _count(store) == 0 and _count(store, "review_decisions") == 0
    assert store.list() == []


def test_numpy_numbers_are_stored_as_plain_json(store):
    import numpy as np

    rec = make_record("tr_np", stats={"value": np.float32(0.5), "ids": np.arange(3),
                                      "n": np.int64(7)})
    store.record(rec)
    assert store.get("tr_np").stats == {"value": 0.5, "ids": [0, 1, 2], "n": 7}


def test_bad_review_state_rejected(store):
    with pytest.raises(ConfigError, match="review_state"):
        store.record(make_record("tr_x", review_state="maybe"))


# ------------------------------------------------------------------------ listing
def test_list_newest_first_filter_and_paging(store):
    for i in range(6):
        state = "pending" if i % 2 else "none"
        store.record(make_record(f"tr_{i}", created_at=f"2026-01-01T00:00:0{i}+00:00",
                                 review_state=state))
    assert [r.id for r in store.list()] == [f"tr_{i}" for i in (5, 4, 3, 2, 1, 0)]
    assert [r.id for r in store.list(review_state="pending")] == ["tr_5", "tr_3", "tr_1"]
    assert [r.id for r in store.list(limit=2, offset=1)] == ["tr_4", "tr_3"]
    assert store.list(review_state="approved") == []


@pytest.mark.parametrize("kwargs, field", [({"review_state": "flagged"}, "review_state"),
                                           ({"limit": 0}, "limit"), ({"offset": -1}, "offset")])
def test_list_bad_arguments(store, kwargs, field):
    with pytest.raises(ConfigError) as info:
        store.list(**kwargs)
    assert info.value.field == field and field in str(info.value)


# ---------------------------------------------------------------- review states
def test_decide_pending_to_approved_then_locked(store):
    store.record(make_record("tr_p"))
    out = store.decide("tr_p", "approved", note="checked", reviewer="ana")
    assert out.review_state == "approved"
    assert out.review.decision == "approved" and out.review.note == "checked"
    assert out.review.reviewer == "ana" and out.review.decided_at.endswith("+00:00")
    assert store.get("tr_p") == out
    with pytest.raises(ReviewStateError, match="'approved', not 'pending'"):
        store.decide("tr_p", "approved")
    with pytest.raises(ReviewStateError):
        store.decide("tr_p", "rejected")
    assert [d.decision for d in store.reviews("tr_p")] == ["approved"]


def test_decide_rejected_and_errors(store):
    store.record(make_record("tr_n", review_state="none"))
    store.record(make_record("tr_q"))
    assert store.decide("tr_q", "rejected").review_state == "rejected"
    with pytest.raises(ReviewStateError, match="'none'"):
        store.decide("tr_n", "approved")
    with pytest.raises(TraceNotFoundError, match="tr_zz"):
        store.decide("tr_zz", "approved")
    with pytest.raises(ConfigError, match="decision"):
        store.decide("tr_n", "approve")
    assert store.get("tr_n").review_state == "none"


def test_review_history_is_kept(store):
    earlier = ReviewDecision("rejected", "first look", "bo", "2026-01-01T00:00:00+00:00")
    store.record(make_record("tr_h", review_state="pending", review=earlier))
    store.decide("tr_h", "approved", note="second look")
    history = store.reviews("tr_h")
    assert [(d.decision, d.note) for d in history] == [("rejected", "first look"),
                                                        ("approved", "second look")]
    assert store.get("tr_h").review == history[-1]


# ---------------------------------------------------------------------- threads
def test_threads_record_and_decide_at_once(store_location):
    store = TraceStore(store_location)
    base = make_record("tr_base")
    errors: list[BaseException] = []
    n_threads, per_thread = 6, 15
    barrier = threading.Barrier(n_threads)

    def work(t):
        try:
            barrier.wait()
            for i in range(per_thread):
                store.record(replace(base, id=f"tr_{t}_{i}"))
                if i % 2 == 0:
                    store.decide(f"tr_{t}_{i}", "approved" if t % 2 else "rejected")
                store.list(review_state="pending", limit=5)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    total = n_threads * per_thread
    assert len(store.list(limit=1000)) == total
    decided = n_threads * len(range(0, per_thread, 2))
    assert len(store.list(review_state="pending", limit=1000)) == total - decided
    # racing reviewers: exactly one decision wins per record
    store.record(replace(base, id="tr_race"))
    wins, losses = [], []

    def race(decision):
        try:
            store.decide("tr_race", decision)
            wins.append(decision)
        except ReviewStateError:
            losses.append(decision)

    racers = [threading.Thread(target=race, args=(d,)) for d in ["approved", "rejected"] * 4]
    for th in racers:
        th.start()
    for th in racers:
        th.join()
    assert len(wins) == 1 and len(losses) == 7
    assert len(store.reviews("tr_race")) == 1
    store.close()


def test_two_stores_on_one_file(store_location):
    """The server and `rain review approve` each open the store: both see each other."""
    a, b = TraceStore(store_location), TraceStore(store_location)
    a.record(make_record("tr_1"))
    assert b.decide("tr_1", "approved").review_state == "approved"
    assert a.get("tr_1").review_state == "approved"
    a.close()
    b.close()


# ------------------------------------------------------------------- migrations
def test_fresh_db_applies_all_migrations_once(tmp_path):
    path = tmp_path / "m.db"
    with TraceStore(path) as s:
        assert s.migrations_applied() == ALL
        s.record(make_record("tr_1"))
    with TraceStore(path) as s:  # reopening is idempotent
        assert s.migrations_applied() == ALL
        assert s.get("tr_1").id == "tr_1"
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0] == len(ALL)
    conn.close()


def test_upgrade_from_first_migration_keeps_records(tmp_path):
    path = tmp_path / "old.db"
    old_rec = make_record("tr_old", review_state="pending")
    conn = sqlite3.connect(path, isolation_level=None)
    assert apply_migrations(conn, MIGRATIONS[:1]) == ["0001_create_traces"]
    # a row as a rainlm with only migration 0001 wrote it
    columns = [r[1] for r in conn.execute("PRAGMA table_info(traces)")]  # 0001's columns
    with TraceStore(":memory:") as mem:
        mem.record(old_rec)
        row = mem._db.execute(f"SELECT {', '.join(columns)} FROM traces").fetchone()
    conn.execute(f"INSERT INTO traces ({', '.join(columns)}) VALUES "
                 f"({', '.join('?' * len(columns))})", row)
    assert not conn.execute("SELECT name FROM sqlite_master WHERE name='review_decisions'"
                            ).fetchall()
    conn.close()

    with TraceStore(path) as s:
        assert s.migrations_applied() == ALL
        assert s.get("tr_old") == json_normal(old_rec)
        assert s.decide("tr_old", "rejected", note="old one").review.note == "old one"
    with TraceStore(path) as s:
        assert s.get("tr_old").review_state == "rejected"


def test_failed_migration_rolls_back_and_is_retried(tmp_path):
    path = tmp_path / "f.db"
    conn = sqlite3.connect(path, isolation_level=None)
    broken = [*MIGRATIONS, ("9999_broken", "CREATE TABLE half (x INTEGER);\nSELECT nope FROM nowhere;")]
    with pytest.raises(sqlite3.OperationalError):
        apply_migrations(conn, broken)
    names = [r[0] for r in conn.execute("SELECT name FROM schema_migrations ORDER BY name")]
    assert names == ALL  # the earlier ones stuck, the broken one left no trace
    assert not conn.execute("SELECT name FROM sqlite_master WHERE name='half'").fetchall()
    conn.close()


def test_migrations_are_append_only_names():
    names = [n for n, _ in MIGRATIONS]
    assert names == sorted(names) and len(set(names)) == len(names)
    assert names[:2] == ["0001_create_traces", "0002_create_review_decisions"]


def test_not_a_database(tmp_path):
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(RainError, match="junk.db"):
        TraceStore(path)


def test_lone_surrogates_are_stored_escaped_never_dropped(store_location):
    """A lone surrogate cannot be UTF-8; the record is written with its escape instead."""
    bad = "x\ud800y"
    with TraceStore(store_location) as store:
        store.record(make_record("tr_sur", answer=bad))
        got = store.get("tr_sur")
        assert got.answer == "x\\ud800y"
        store.record(replace(make_record("tr_sur2"), request={"model": bad, "user": [bad]},
                             error=bad))
        again = store.get("tr_sur2")
        assert again.request == {"model": "x\\ud800y", "user": ["x\\ud800y"]}
        assert again.error == "x\\ud800y"
        decided = store.decide("tr_sur", "approved", note=bad)
        assert decided.review.note == "x\\ud800y"


def test_a_new_audit_database_is_private(tmp_path):
    import stat

    from rainlm.trace.store import TraceStore

    path = tmp_path / "private.sqlite3"
    with TraceStore(path) as store:
        store.record(make_record("tr_p"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# ---------------------------------------------------------- records before answers
def test_a_started_record_is_completed_in_place(store_location):
    with TraceStore(store_location) as s:
        s.record(make_record("tr_s", finish_reason="started", answer=""), owner="me")
        assert s.get("tr_s").finish_reason == "started"
        s.record(make_record("tr_s", answer="Done."))  # the answer ended: completed
        assert s.get("tr_s").answer == "Done." and s.get("tr_s").finish_reason != "started"
        with pytest.raises(RainError, match="already stored"):  # complete: never overwritten
            s.record(make_record("tr_s", answer="Again."))
        assert s.get("tr_s").answer == "Done."


def test_a_restart_marks_only_its_own_unfinished_records(store_location):
    path = store_location
    with TraceStore(path) as s:
        s.record(make_record("tr_mine", finish_reason="started", answer=""), owner="me")
        s.record(make_record("tr_other", finish_reason="started", answer=""), owner="other")
        s.record(make_record("tr_done"), owner="me")
    with TraceStore(path) as s:  # the process died; "me" starts again
        assert s.mark_unfinished("me") == 1
        mine = s.get("tr_mine")
        assert mine.finish_reason == "interrupted" and "killed or crashed" in mine.error
        assert s.get("tr_other").finish_reason == "started"
        assert s.get("tr_done").finish_reason == make_record("tr_done").finish_reason
        assert s.mark_unfinished("me") == 0
        s.record(make_record("tr_mine", answer="Late."))  # a late completion still lands
        assert s.get("tr_mine").answer == "Late."


# --------------------------------------------------------------- PostgreSQL schema
def _pg_connect(url):
    import psycopg

    return psycopg.connect(url, autocommit=True)


def test_both_stores_share_the_migration_names():
    from rainlm.trace.postgres_db import POSTGRES_MIGRATIONS

    assert [n for n, _ in POSTGRES_MIGRATIONS] == ALL


@pytest.mark.parametrize("applied", range(len(MIGRATIONS)))
def test_postgres_upgrade_from_every_earlier_schema(postgres_url, applied):
    """A database at any earlier schema version (0001 only, 0001-0002, ...) holding a
    record is brought up to date by opening it, and its record reads back whole."""
    from rainlm.trace.postgres_db import POSTGRES_MIGRATIONS, apply_postgres_migrations

    old_rec = make_record("tr_old", review_state="pending")
    with TraceStore(":memory:") as mem:  # the row as the first schema's columns hold it
        mem.record(old_rec)
        columns = [r[1] for r in mem._db.execute("PRAGMA table_info(traces)")][:15]
        row = mem._db.execute(f"SELECT {', '.join(columns)} FROM traces").fetchone()
    conn = _pg_connect(postgres_url)
    names = apply_postgres_migrations(conn, POSTGRES_MIGRATIONS[:applied + 1])
    assert names == ALL[:applied + 1]
    conn.execute(f"INSERT INTO traces ({', '.join(columns)}) VALUES "
                 f"({', '.join(['%s'] * len(columns))})", row)
    conn.close()
    with TraceStore(postgres_url) as s:
        assert s.migrations_applied() == ALL
        assert s.get("tr_old") == json_normal(old_rec)
        assert s.decide("tr_old", "rejected", note="old one").review.note == "old one"


def test_postgres_failed_migration_rolls_back(postgres_url):
    from rainlm.trace.postgres_db import POSTGRES_MIGRATIONS, apply_postgres_migrations

    conn = _pg_connect(postgres_url)
    broken = [*POSTGRES_MIGRATIONS,
              ("9999_broken", "CREATE TABLE half (x INTEGER); SELECT nope FROM nowhere;")]
    import psycopg

    with pytest.raises(psycopg.Error):
        apply_postgres_migrations(conn, broken)
    names = [r[0] for r in conn.execute("SELECT name FROM schema_migrations ORDER BY name")]
    assert names == ALL
    assert conn.execute("SELECT to_regclass('half')").fetchone()[0] is None
    # the advisory lock was given back: another opener is not blocked
    assert conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                        ).fetchone()[0] == 0
    conn.close()


def test_replicas_opening_a_fresh_database_together_migrate_once(postgres_url):
    stores, errors = [], []
    barrier = threading.Barrier(4)

    def open_store():
        try:
            barrier.wait()
            stores.append(TraceStore(postgres_url))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == [] and len(stores) == 4
    conn = _pg_connect(postgres_url)
    assert conn.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0] == len(ALL)
    conn.close()
    for s in stores:
        s.close()


def test_nul_characters_are_kept_escaped(store_location):
    """PostgreSQL text cannot hold NUL: it is written as its escape there, kept in SQLite;
    JSON fields keep it exactly on both."""
    with TraceStore(store_location) as s:
        s.record(make_record("tr_nul", answer="a\x00b", request={"prompt": "p\x00q"}))
        got = s.get("tr_nul")
        assert got.answer == ("a\\x00b" if s.dialect == "postgresql" else "a\x00b")
        assert got.request == {"prompt": "p\x00q"}


@pytest.mark.parametrize("password", ["se%zzcret", "se%00cret", "a%40b"])
def test_a_password_libpq_cannot_read_is_not_shown_either(postgres_server, password):
    url = postgres_server.dsn().replace(postgres_server.password, password)
    with pytest.raises(RainError) as info:
        TraceStore(url)
    text = str(info.value)
    assert password not in text and password.replace("%40", "@") not in text
    assert "se" + "cret" not in text and "***" in text


def test_nul_in_ids_and_names_is_a_clean_not_found(store):
    store.record(make_record("tr_n"))
    with pytest.raises(TraceNotFoundError):
        store.get("tr_\x00")
    with pytest.raises(TraceNotFoundError):
        store.decide("tr_\x00", "approved")
    assert store.claim_next("a\x00b").id == "tr_n"
    assert store.decide("tr_n", "approved", reviewer="a\x00b").review_state == "approved"


def test_iter_records_reads_every_record_once_while_records_arrive(store):
    for i in range(7):
        store.record(make_record(f"tr_{i}", created_at=f"2026-01-01T00:00:0{i}+00:00"))
    seen = []
    for n, rec in enumerate(store.iter_records(page=2)):
        seen.append(rec.id)
        if n == 1:  # a replica writes a newer record mid-read: read once, at the end
            store.record(make_record("tr_new", created_at="2026-01-02T00:00:00+00:00"))
    assert seen == [f"tr_{i}" for i in range(7)] + ["tr_new"]


def test_the_url_password_never_shows(postgres_server, postgres_url):
    secret = postgres_server.password
    with TraceStore(postgres_url) as s:
        assert secret not in str(s.path) and secret not in repr(s) and "***" in str(s.path)
        with pytest.raises(TraceNotFoundError) as info:
            s.get("tr_none")
        assert secret not in str(info.value)
    wrong = postgres_url.replace(secret, "not-the-password")
    with pytest.raises(RainError) as info:
        TraceStore(wrong)
    assert "not-the-password" not in str(info.value) and "password" in str(info.value)
    assert "cannot open the audit store" in str(info.value)


def test_a_dropped_connection_is_opened_again(postgres_server, postgres_url):
    with TraceStore(postgres_url) as s:
        s.record(make_record("tr_1"))
        admin = _pg_connect(postgres_server.dsn())
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE application_name = 'rainlm' AND pid <> pg_backend_pid()")
        admin.close()
        assert s.get("tr_1").id == "tr_1"  # found broken at BEGIN, before anything ran: reconnected
        admin = _pg_connect(postgres_server.dsn())
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE application_name = 'rainlm' AND pid <> pg_backend_pid()")
        admin.close()
        s.record(make_record("tr_2"))  # a write after a drop lands too (the answer is kept)
        assert _count(s) == 2


# ------------------------------------------------------------------ review queue
def test_claim_next_hands_out_each_pending_record_once(store):
    for i in range(3):
        store.record(make_record(f"tr_{i}", created_at=f"2026-01-01T00:00:0{i}+00:00"))
    store.record(make_record("tr_none", review_state="none"))
    a = store.claim_next("ana")
    assert a.id == "tr_0" and store.claim_next("ana").id == "tr_0"  # her own one again
    b = store.claim_next("bo")
    assert b.id == "tr_1"
    assert store.holds(["tr_0", "tr_1", "tr_2"]).keys() == {"tr_0", "tr_1"}
    assert store.review_counts() == {"none": 1, "pending": 3, "approved": 0, "rejected": 0,
                                     "held": 2}
    with pytest.raises(ReviewStateError, match="held by reviewer 'ana'"):
        store.decide("tr_0", "approved", reviewer="bo")
    with pytest.raises(ReviewStateError, match="held by"):
        store.decide("tr_0", "approved")  # nobody named: not ana
    assert store.decide("tr_0", "approved", reviewer="ana").review_state == "approved"
    assert store.claim_next("ana").id == "tr_2"
    assert store.claim_next("cy") is None
    with pytest.raises(ConfigError, match="reviewer"):
        store.claim_next(" ")
    with pytest.raises(ConfigError, match="hold_s"):
        store.claim_next("ana", hold_s=0)


def test_an_expired_hold_is_handed_to_the_next_reviewer(store, monkeypatch):
    from rainlm.trace import store as store_module
    from rainlm.trace.timestamps import utc_after

    store.record(make_record("tr_x"))
    assert store.claim_next("ana", hold_s=60).id == "tr_x"
    assert store.claim_next("bo") is None
    monkeypatch.setattr(store_module, "utc_now", lambda: utc_after(61))  # a minute on
    assert store.claim_next("bo").id == "tr_x"
    assert store.decide("tr_x", "rejected", reviewer="bo").review.reviewer == "bo"


def test_two_reviewers_on_two_replicas_decide_100_items_exactly_once(store_location):
    """Two reviewers, each through a store of their own (two replicas), take items from
    the queue until it is empty: every item is decided once, by one of them."""
    with TraceStore(store_location) as setup:
        base = make_record("tr_base")
        for i in range(100):
            setup.record(replace(base, id=f"tr_{i:03d}",
                                 created_at=f"2026-01-01T00:00:{i % 60:02d}+00:00"))
    decided: dict[str, list[str]] = {"ana": [], "bo": []}
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def review(name):
        try:
            with TraceStore(store_location) as replica:
                barrier.wait()
                while (rec := replica.claim_next(name)) is not None:
                    replica.decide(rec.id, "approved" if len(rec.id) % 2 else "rejected",
                                   reviewer=name)
                    decided[name].append(rec.id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=review, args=(n,)) for n in decided]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    both = decided["ana"] + decided["bo"]
    assert sorted(both) == [f"tr_{i:03d}" for i in range(100)]  # each once, none lost
    with TraceStore(store_location) as check:
        assert check.review_counts()["pending"] == 0
        assert _count(check, "review_decisions") == 100
