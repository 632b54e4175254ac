"""Shared fixtures: the embedded model is loaded once per test session."""

from __future__ import annotations

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
