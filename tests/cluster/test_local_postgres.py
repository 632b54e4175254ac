"""``LocalPostgres``: a real PostgreSQL server started in a folder of its own.

Needs PostgreSQL's binaries and psycopg (part ``"postgres"``: skipped without them,
a failure under ``RAINLM_REQUIRE_POSTGRES=1`` or ``RAINLM_REQUIRE_ALL=1``). One server
(``durable=False``: no fsync) serves most tests; the ones about the life cycle start
their own.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from rainlm.cluster import postgres
from rainlm.cluster.postgres import LocalPostgres
from rainlm.errors import ConfigError, RainError
from tests.needs import require_module, require_postgres

psycopg = require_module("psycopg", part="postgres")
require_postgres()


@pytest.fixture(scope="module")
def pg() -> Iterator[LocalPostgres]:
    with LocalPostgres(durable=False) as server:
        yield server


def test_a_created_database_answers_through_its_dsn(pg):
    dsn = pg.create_database("answers")
    assert dsn == f"postgresql://rainlm:{pg.password}@127.0.0.1:{pg.port}/answers"
    assert dsn == pg.dsn("answers")
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert conn.execute("SELECT current_database(), current_setting('fsync')"
                            ).fetchone() == ("answers", "off")
    with pytest.raises(RainError, match="'answers' failed .*already exists"):
        pg.create_database("answers")
    pg.drop_database("answers")
    pg.drop_database("answers")  # IF EXISTS
    with pytest.raises(psycopg.OperationalError, match="does not exist"):
        psycopg.connect(dsn, connect_timeout=10).close()


def test_the_password_is_required_over_tcp(pg):
    wrong = f"postgresql://rainlm:not-{pg.password}@127.0.0.1:{pg.port}/postgres"
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong, connect_timeout=10).close()
    without = f"postgresql://rainlm@127.0.0.1:{pg.port}/postgres"
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(without, connect_timeout=10, password="").close()


def test_names_are_checked_before_anything_runs(pg):
    for bad in ("Audit", "1st", "drop table x", "a" * 64, ""):
        with pytest.raises(ConfigError, match=r"must match \[a-z_\]"):
            pg.create_database(bad)
    with pytest.raises(ConfigError, match="user"):
        LocalPostgres(user="Robert'); --")
    with pytest.raises(ConfigError, match="port"):
        LocalPostgres(port=70000)


def test_a_taken_port_fails_with_the_server_log_and_leaves_the_other_alone(pg):
    with pytest.raises(RainError) as failed:
        LocalPostgres(durable=False, port=pg.port).start()
    message = str(failed.value)
    assert f"did not start on port {pg.port} (it is taken" in message
    assert "Last lines of" in message and "Address already in use" in message
    with psycopg.connect(pg.dsn(), connect_timeout=10) as conn:  # still the same server
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_stop_twice_is_fine_and_removes_the_temporary_folder():
    server = LocalPostgres(durable=False).start()
    folder, port = server.folder, server.port
    assert folder.name.startswith("rainlm-pg-") and (folder / "data" / "PG_VERSION").exists()
    server.stop()
    server.stop()
    assert not folder.exists()
    assert not server.running and "stopped" in repr(server)
    with pytest.raises(RainError, match="not running: call start"):
        server.dsn()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(f"postgresql://rainlm:x@127.0.0.1:{port}/postgres",
                        connect_timeout=10).close()


@pytest.fixture()
def own_folder() -> Iterator[Path]:
    """A folder under /tmp (under root the server's user must reach it: pytest's
    tmp_path is closed to other users)."""
    folder = Path(tempfile.mkdtemp(prefix="rainlm-test-pg-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_a_given_folder_is_kept_and_started_again_with_its_data(own_folder):
    with LocalPostgres(own_folder, durable=False) as first:
        password = first.password
        with psycopg.connect(first.create_database("kept"), connect_timeout=10) as conn:
            conn.execute("CREATE TABLE t (x int)")
            conn.execute("INSERT INTO t VALUES (7)")
    assert (own_folder / "data" / "PG_VERSION").exists()
    with LocalPostgres(own_folder, durable=False) as again:
        assert again.password == password
        with psycopg.connect(again.dsn("kept"), connect_timeout=10) as conn:
            assert conn.execute("SELECT x FROM t").fetchone() == (7,)
        with pytest.raises(RainError, match="already running in"):
            LocalPostgres(own_folder).start()  # and it did not stop this one:
        with psycopg.connect(again.dsn("kept"), connect_timeout=10) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    assert own_folder.exists()


def test_without_postgresql_the_error_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(postgres, "SEARCH_DIRS", str(tmp_path / "*" / "bin"))
    with pytest.raises(RainError, match=r"apt-get install postgresql\) or point --store"):
        LocalPostgres().start()
