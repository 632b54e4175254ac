"""Shared fixtures: the embedded model is loaded once per test session."""

from __future__ import annotations

import os

import pytest

from tests.needs import require_embedded_model, require_module


@pytest.fixture(scope="session")
def embedded_backend():
    """The real embedded SmolLM2-135M-Instruct (offline), on one torch thread.

    One thread: on a busy 2-core machine two OpenMP threads wait on each other
    (measured: a test file took 142 s with 2 threads, 15 s with one).
    """
    torch = require_module("torch")
    require_module("transformers")
    require_embedded_model()
    from rainlm.backends.embedded import load_embedded_backend

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield load_embedded_backend()
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _private_audit_db(tmp_path, monkeypatch):
    """`rain generate` and `rain chat` log answers to the audit database: in tests, to a
    file of the test's own, never the user's."""
    monkeypatch.setenv("RAINLM_AUDIT_DB", str(tmp_path / "cli-audit.sqlite3"))


# ------------------------------------------------------------------ the audit store
@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL server for the session (not durable: fsync off), started
    by the tests on 127.0.0.1 (``rainlm.cluster.postgres.LocalPostgres``)."""
    from tests.needs import require_postgres

    require_module("psycopg", part="postgres")
    require_postgres()
    from rainlm.cluster.postgres import LocalPostgres

    server = LocalPostgres(durable=False).start()
    try:
        yield server
    finally:
        server.stop()


_databases = iter(range(1, 1_000_000))


@pytest.fixture
def postgres_url(postgres_server):
    """A postgresql:// URL (password included) of a fresh, empty database."""
    import os

    name = f"t{os.getpid()}_{next(_databases)}"
    url = postgres_server.create_database(name)
    yield url
    postgres_server.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_location(request, tmp_path):
    """Where a test's audit store lives, once per kind: an SQLite file of its own, then a
    fresh PostgreSQL database. Tests that take it run on both stores."""
    if request.param == "sqlite":
        return str(tmp_path / "audit-store" / "audit.sqlite3")
    return request.getfixturevalue("postgres_url")


# ------------------------------------------------------------------ vLLM
VLLM_INSTALL = ("start one with scripts/vllm_server start (it creates vLLM's own "
                "environment the first time) and export RAINLM_VLLM_URL=<the URL it prints>")


@pytest.fixture(scope="session")
def vllm_url():
    """Base URL of a real vLLM server on the embedded model (``$RAINLM_VLLM_URL``: CI starts
    it with ``scripts/vllm_server``). Skipped without one, unless ``RAINLM_REQUIRE_ALL=1``
    or ``RAINLM_REQUIRE_VLLM=1`` (then the tests fail, saying why: ``tests/needs.py``)."""
    from tests.needs import require

    url = os.environ.get("RAINLM_VLLM_URL", "").rstrip("/")
    require(url, "a vLLM server ($RAINLM_VLLM_URL)", VLLM_INSTALL, part="vllm")
    return url
