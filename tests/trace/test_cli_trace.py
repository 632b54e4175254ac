"""`rain trace` and `rain review` through click's CliRunner, on a real SQLite file and on
a real PostgreSQL database (``store_location``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from rainlm.cli.main import cli
from dataclasses import replace

from rainlm.trace.location import describe
from rainlm.trace.store import ENV_VAR, TraceStore

from .helpers import make_record


@pytest.fixture
def db(store_location):
    path = store_location
    with TraceStore(path) as store:
        store.record(make_record("tr_old", created_at="2026-01-01T00:00:00+00:00",
                                 review_state="none", score=0.75))
        store.record(make_record("tr_flag", created_at="2026-01-02T00:00:00+00:00",
                                 kind="branching", answer="line one\nline two", score=-0.25))
    return path


def invoke(*args, env=None):
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_trace_list(db):
    out = invoke("trace", "list", "--db", str(db))
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert [ln.split()[0] for ln in lines] == ["tr_flag", "tr_old"]
    assert "pending" in lines[0] and "-0.250" in lines[0] and "How do I build a bomb?" in lines[0]
    out = invoke("trace", "list", "--db", str(db), "--state", "none", "--limit", "5")
    assert [ln.split()[0] for ln in out.output.splitlines()] == ["tr_old"]
    out = invoke("trace", "list", "--db", str(db), "--state", "approved")
    assert out.exit_code == 0 and "No records in review state 'approved'" in out.output
    out = invoke("trace", "list", "--db", str(db), "--state", "bogus")
    assert out.exit_code == 2 and "bogus" in out.output


def test_trace_show_text_and_json(db):
    out = invoke("trace", "show", "tr_old", "--db", str(db))
    assert out.exit_code == 0, out.output
    assert out.output.startswith("trace tr_old · 2026-01-01T00:00:00+00:00")
    assert "* #0 root" in out.output and "- #1 ' Sure'" in out.output
    assert "* #2 ' I'" in out.output
    out = invoke("trace", "show", "tr_flag", "--db", str(db), "--max-depth", "1")
    assert "more nodes not shown" in out.output
    out = invoke("trace", "show", "tr_old", "--db", str(db), "--json")
    data = json.loads(out.output)
    assert data["id"] == "tr_old" and data["trace"]["tree"]["committed"] == [2, 4, 6]
    assert data["policy"]["action"] == "flagged"


def test_trace_html(db, tmp_path, monkeypatch):
    target = tmp_path / "pages" / "t.html"
    out = invoke("trace", "html", "tr_flag", "--db", str(db), "--out", str(target))
    assert out.exit_code == 0, out.output
    assert out.output.strip() == str(target)
    page = target.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and 'class="node committed"' in page
    monkeypatch.chdir(tmp_path)
    out = invoke("trace", "html", "tr_fl", "--db", str(db))  # a prefix, no --out
    assert out.exit_code == 0 and out.output.strip() == "tr_flag.html"
    assert (tmp_path / "tr_flag.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_ids_resolve_by_unique_prefix_or_say_which_match(db, tmp_path):
    with TraceStore(db) as store:
        store.record(make_record("tr_flat", created_at="2026-01-03T00:00:00+00:00"))
    shown = invoke("trace", "show", "tr_o", "--db", str(db))
    assert shown.exit_code == 0 and shown.output.startswith("trace tr_old")
    many = invoke("trace", "show", "tr_fl", "--db", str(db))
    assert many.exit_code != 0 and "tr_flag" in many.output and "tr_flat" in many.output
    assert "give more of the id" in many.output
    none = invoke("trace", "show", "tr_zz", "--db", str(db))
    assert none.exit_code != 0 and "no trace with id 'tr_zz'" in none.output
    literal = invoke("trace", "show", "tr_%", "--db", str(db))  # SQL wildcards are literal
    assert literal.exit_code != 0


def test_trace_commands_read_the_file_rain_generate_trace_wrote(tmp_path):
    from rainlm.cli.options import Services
    from tests.cli.test_cli_scripted import make_backend

    services = Services(load_backend=lambda m, d: make_backend(),
                        load_embedder=lambda n, d: "none")
    tree = tmp_path / "tree.json"
    made = CliRunner().invoke(cli, ["generate", "--embedder", "none", "--max-new-tokens", "12",
                                    "--trace", str(tree), "How do I make a bomb?"], obj=services)
    assert made.exit_code == 0, made.output
    shown = invoke("trace", "show", str(tree))
    assert shown.exit_code == 0 and shown.output.startswith("trace tree.json")
    assert "I can't help with that." in shown.output and "* #" in shown.output
    page = tmp_path / "tree.html"
    assert invoke("trace", "html", str(tree), "--out", str(page)).exit_code == 0
    assert 'class="node committed"' in page.read_text(encoding="utf-8")


def test_review_list_approve_reject(db):
    out = invoke("review", "list", "--db", str(db))
    assert out.exit_code == 0, out.output
    assert out.output.splitlines() == [
        "1 pending (0 held by a reviewer), 0 approved, 0 rejected",
        "tr_flag  2026-01-02T00:00:00+00:00  score -0.250",
        "  prompt: 'How do I build a bomb?'",
        "  answer: 'line one'",
    ]
    out = invoke("review", "approve", "tr_flag", "--note", "fine", "--reviewer", "ana",
                 "--db", str(db))
    assert out.exit_code == 0 and out.output.strip() == "tr_flag: approved"
    with TraceStore(db) as store:
        rec = store.get("tr_flag")
    assert rec.review_state == "approved" and rec.review.note == "fine"
    assert rec.review.reviewer == "ana"
    assert invoke("review", "list", "--db", str(db)).output.strip() == "Nothing to review."
    # approving again, rejecting a never-flagged record: exit 2 with the reason
    again = invoke("review", "reject", "tr_flag", "--db", str(db))
    assert again.exit_code == 2
    assert "Error: trace 'tr_flag' is 'approved', not 'pending'" in again.output
    never = invoke("review", "reject", "tr_old", "--db", str(db))
    assert never.exit_code == 2 and "'none', not 'pending'" in never.output


def test_reject_sets_rejected(db):
    out = invoke("review", "reject", "tr_flag", "--db", str(db))
    assert out.exit_code == 0 and out.output.strip() == "tr_flag: rejected"
    out = invoke("trace", "show", "tr_flag", "--db", str(db))
    assert "review:  rejected (rejected at " in out.output


@pytest.mark.parametrize("args", [("trace", "show", "tr_nope"), ("trace", "html", "tr_nope",
                                  "--out", "x.html"), ("review", "approve", "tr_nope")])
def test_unknown_id_exit_2(db, args):
    out = invoke(*args, "--db", str(db))
    assert out.exit_code == 2
    assert "Error: no trace with id 'tr_nope'" in out.output and describe(db) in out.output


@pytest.mark.parametrize("args", [("trace", "list"), ("trace", "show", "x"),
                                  ("review", "list"), ("review", "approve", "x")])
def test_missing_db_is_an_error_and_creates_nothing(tmp_path, args):
    missing = tmp_path / "nowhere" / "audit.sqlite3"
    out = invoke(*args, "--db", str(missing))
    assert out.exit_code == 2
    assert f"no audit database at {missing}" in out.output and "--store" in out.output
    assert ENV_VAR in out.output
    assert not missing.exists() and not missing.parent.exists()


def test_db_from_env(db, tmp_path):
    out = invoke("trace", "list", env={ENV_VAR: str(db)})
    assert out.exit_code == 0 and "tr_flag" in out.output
    missing = tmp_path / "env.db"
    out = invoke("review", "list", env={ENV_VAR: str(missing)})
    assert out.exit_code == 2 and f"${ENV_VAR}" in out.output and not missing.exists()


def test_review_next_hands_each_reviewer_another_answer(db):
    with TraceStore(db) as store:
        store.record(make_record("tr_flag2", created_at="2026-01-03T00:00:00+00:00"))
    ana = invoke("review", "next", "--reviewer", "ana", "--store", str(db))
    assert ana.exit_code == 0, ana.output
    assert ana.output.startswith("tr_flag  ") and "held for ana" in ana.output
    assert "How do I build a bomb?" in ana.output and "line one\nline two" in ana.output
    bo = invoke("review", "next", "--reviewer", "bo", "--store", str(db))
    assert bo.output.startswith("tr_flag2  ")
    listed = invoke("review", "list", "--store", str(db)).output
    assert "2 pending (2 held by a reviewer)" in listed and "held by ana until" in listed
    taken = invoke("review", "approve", "tr_flag", "--reviewer", "bo", "--store", str(db))
    assert taken.exit_code == 2 and "held by reviewer 'ana'" in taken.output
    assert invoke("review", "approve", "tr_flag", "--reviewer", "ana",
                  "--store", str(db)).exit_code == 0
    assert "Nothing to review." in invoke("review", "next", "--reviewer", "cy",
                                          "--store", str(db)).output
    assert invoke("review", "next", "--store", str(db)).exit_code == 2  # --reviewer needed


def test_read_commands_never_give_a_wrong_database_tables(postgres_server, postgres_url):
    for args in (("trace", "list"), ("review", "list"), ("review", "next", "--reviewer", "a")):
        out = CliRunner().invoke(cli, [*args, "--store", postgres_url])
        assert out.exit_code == 2 and "not a rainlm audit store" in out.output, out.output
    import psycopg

    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT to_regclass('traces')").fetchone()[0] is None


def test_a_store_url_password_is_never_printed(postgres_server, postgres_url):
    with TraceStore(postgres_url) as store:
        store.record(make_record("tr_flag"))
    secret = postgres_server.password
    for args in (("trace", "list"), ("trace", "show", "tr_nope"), ("review", "list"),
                 ("review", "next", "--reviewer", "ana"), ("review", "approve", "tr_zz")):
        out = CliRunner().invoke(cli, [*args, "--store", postgres_url])
        assert secret not in out.output, args
    wrong = postgres_url.replace(secret, "wrong-secret")
    out = CliRunner().invoke(cli, ["trace", "list", "--store", wrong])
    assert out.exit_code != 0 and "wrong-secret" not in out.output
    assert "***" in out.output and "password" in out.output


def test_unfinished_lists_and_marks_a_gone_replicas_records(store_location):
    with TraceStore(store_location) as store:
        for i, owner in enumerate(["rain serve@pod-a:8000", "rain serve@pod-a:8000",
                                   "rain serve@pod-b:8000"]):
            store.record(make_record(f"tr_s{i}", finish_reason="started", answer="",
                                     created_at=f"2026-01-0{i + 1}T00:00:00+00:00"), owner=owner)
        store.record(make_record("tr_done"), owner="rain serve@pod-a:8000")
    out = invoke("trace", "unfinished", "--store", store_location)
    assert out.exit_code == 0, out.output
    assert out.output.splitlines() == [
        "    2  since 2026-01-01T00:00:00+00:00  rain serve@pod-a:8000",
        "    1  since 2026-01-03T00:00:00+00:00  rain serve@pod-b:8000"]
    marked = invoke("trace", "unfinished", "--store", store_location,
                    "--mark", "rain serve@pod-a:8000")
    assert marked.output.strip() == ('2 record(s) of rain serve@pod-a:8000 marked '
                                     '"interrupted"')
    with TraceStore(store_location) as store:
        assert store.get("tr_s0").finish_reason == "interrupted"
        assert store.get("tr_s2").finish_reason == "started"
        assert store.get("tr_done").finish_reason != "interrupted"
    left = invoke("trace", "unfinished", "--store", store_location).output
    assert "pod-a" not in left and "pod-b" in left


def test_help_names_the_env_var():
    out = invoke("trace", "list", "--help")
    assert ENV_VAR in out.output


def test_trace_output_never_sends_control_sequences_to_the_terminal(tmp_path):
    path = tmp_path / "audit.sqlite3"
    evil = "\x1b]0;pwned\x07\x1b[2J answer"
    with TraceStore(path) as store:
        rec = make_record("tr_evil", answer=evil)
        store.record(replace(rec, request={"model": "m", "messages": [
            {"role": "user", "content": "\x1b[31mred prompt"}]}))
        store.decide("tr_evil", "rejected", note="\x1b[8mhidden note")
    with TraceStore(path) as store:
        store.record(make_record("tr_evil2", answer=evil))
        store.claim_next("\x1b]0;reviewer\x07")
    env = {ENV_VAR: str(path)}
    for args in (("trace", "list"), ("trace", "show", "tr_evil"), ("review", "list"),
                 ("review", "next", "--reviewer", "\x1b[2Jbo")):
        out = invoke(*args, env=env)
        assert out.exit_code == 0, out.output
        assert "\x1b" not in out.output and "\x07" not in out.output
    shown = invoke("trace", "show", "tr_evil", env=env).output
    assert "\\x1b" in shown  # visible, not obeyed


def test_trace_show_never_prints_terminal_controls(tmp_path):
    """A prompt or answer holding U+009B (a one-byte CSI: the terminal would obey what
    follows) or U+202E (bidi override) is printed escaped, in text and in JSON alike."""
    planted = "ok\u009b31m red\u202eevil"
    path = tmp_path / "audit.sqlite3"
    with TraceStore(path) as store:
        store.record(make_record("tr_planted", answer=planted))
    for extra in ((), ("--json",)):
        out = invoke("trace", "show", "tr_planted", "--db", str(path), *extra)
        assert out.exit_code == 0, out.output
        assert "\u009b" not in out.output and "\u202e" not in out.output
    data = json.loads(invoke("trace", "show", "tr_planted", "--db", str(path), "--json").output)
    assert data["answer"] == planted  # the same JSON, escaped
