"""`rain distill export` on a PostgreSQL audit store (a postgresql:// URL): the same pairs
as from an SQLite file with the same records, the URL's password in no output, file or
error, and a database without rainlm's tables refused and left alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from click.testing import CliRunner

from rainlm.cli.main import cli
from rainlm.distill.answers import SourceError
from rainlm.distill.export import export_pairs
from rainlm.trace.location import describe

from .helpers import MIXED_DECISIONS, audit_db, mixed_records


def invoke(*args: Any) -> Any:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def secrets(server: Any) -> list[str]:
    """The server's password as given and as written in a URL."""
    return [server.password, quote(server.password, safe="")]


def assert_no_password(text: str, server: Any) -> None:
    for secret in secrets(server):
        assert secret not in text


def tables(url: str) -> list[str]:
    """The tables of the database at ``url`` (any schema but the system's)."""
    import psycopg

    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')")]


def pair_view(pair: Any) -> tuple[Any, ...]:
    """A pair without where it was stored (the trace ids stay)."""
    ids = tuple(a.source.rsplit(", trace ", 1)[1] for a in pair.answers)
    return (pair.kind, pair.prompt, pair.chat, pair.chosen, pair.rejected, pair.margin,
            pair.judge, ids)


@pytest.fixture
def stores(postgres_url: str, tmp_path: Path) -> tuple[str, Path]:
    """The same records and decisions in a PostgreSQL store and in an SQLite file."""
    audit_db(postgres_url, mixed_records(), MIXED_DECISIONS)
    sqlite = audit_db(tmp_path / "audit.sqlite3", mixed_records(), MIXED_DECISIONS)
    return postgres_url, Path(sqlite)


def test_postgres_and_sqlite_give_the_same_pairs(stores):
    url, sqlite = stores
    from_pg, from_file = export_pairs([url]), export_pairs([sqlite])
    assert [pair_view(p) for p in from_pg.pairs] == [pair_view(p) for p in from_file.pairs]
    assert {p.kind for p in from_pg.pairs} == {"review", "review-refusal", "rain-vs-greedy"}
    assert from_pg.dropped == from_file.dropped and from_pg.candidates == from_file.candidates
    (pg,), (file,) = from_pg.sources, from_file.sources
    assert (pg.kind, pg.answers, pg.skipped) == (file.kind, file.answers, file.skipped)
    assert pg.path == describe(url) and "***" in pg.path
    assert all(a.source.startswith(describe(url) + ", trace ")
               for p in from_pg.pairs for a in p.answers)


def test_a_url_named_twice_is_read_once(stores):
    url, sqlite = stores
    result = export_pairs([url, sqlite, url])
    assert [s.path for s in result.sources] == [describe(url), sqlite]
    assert result.answers == 2 * result.sources[0].answers


def test_the_password_is_in_no_output_and_no_file(stores, postgres_server, tmp_path):
    url, _ = stores
    out = tmp_path / "data"
    result = invoke("distill", "export", url, url, "--out", out, "--format", "dpo,sft")
    assert result.exit_code == 0, result.output
    assert f"from 1 source: {describe(url)} (9 answers, 1 skipped: no prompt)" in result.stdout
    assert_no_password(result.stdout + result.stderr, postgres_server)
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {p.name for p in files} == {"dpo.jsonl", "sft.jsonl", "export.json"}
    for path in files:
        assert_no_password(path.read_text(encoding="utf-8"), postgres_server)
    info = json.loads((out / "export.json").read_text())
    assert info["sources"][0]["path"] == describe(url)
    rows = [json.loads(x) for x in (out / "dpo.jsonl").read_text().splitlines()]
    assert all(r["source"].startswith(describe(url)) for r in rows)


def test_a_database_without_traces_is_refused_and_left_alone(postgres_url, postgres_server,
                                                             tmp_path):
    with pytest.raises(SourceError, match="not a rainlm audit store") as err:
        export_pairs([postgres_url])
    assert str(err.value).startswith(describe(postgres_url) + ": ")
    assert_no_password(str(err.value), postgres_server)
    assert tables(postgres_url) == []
    result = invoke("distill", "export", postgres_url, "--out", tmp_path / "never")
    assert result.exit_code == 2 and "not a rainlm audit store" in result.stderr
    assert_no_password(result.output + result.stderr, postgres_server)
    assert tables(postgres_url) == [] and not (tmp_path / "never").exists()


def test_unreachable_stores_name_no_password(postgres_server):
    bad_password = postgres_server.dsn().replace(quote(postgres_server.password, safe=""),
                                                 "Wr0ng-s3cret")
    for url, secret in ((bad_password, "Wr0ng-s3cret"),
                        (postgres_server.dsn("no_such_db"), postgres_server.password)):
        with pytest.raises(SourceError, match="cannot read the audit store") as err:
            export_pairs([url])
        assert secret not in str(err.value) and quote(secret, safe="") not in str(err.value)
        assert describe(url) in str(err.value)
