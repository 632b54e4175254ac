"""Fixtures for backend tests that need a real OpenAI-compatible engine."""

from __future__ import annotations

import os

import pytest

from tests.backends.engine import EngineServer, llama_server_importable


@pytest.fixture(scope="session")
def engine_url():
    """Base URL (``http://127.0.0.1:PORT/v1``) of a real llama-cpp-python server.

    ``$RAINLM_ENGINE_URL`` when set (CI's server, started by ``scripts/engine_server``);
    else a private server on the embedded GGUF, stopped at the end of the session.
    Skipped when ``llama_cpp.server`` cannot be imported, unless
    ``RAINLM_REQUIRE_ENGINE=1`` (then the tests fail, saying why).
    """
    url = os.environ.get("RAINLM_ENGINE_URL")
    if url:
        yield url.rstrip("/")
        return
    if not llama_server_importable():
        msg = ("llama_cpp.server is not importable: install llama-cpp-python with its "
               "server extras (see /work/shared/PLATFORM_NOTES.md) or set RAINLM_ENGINE_URL")
        if os.environ.get("RAINLM_REQUIRE_ENGINE") == "1":
            pytest.fail(msg + " (RAINLM_REQUIRE_ENGINE=1)")
        pytest.skip(msg)
    with EngineServer() as server:
        yield server.base_url
