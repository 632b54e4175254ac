"""Fixtures for backend tests that need a real OpenAI-compatible engine."""

from __future__ import annotations

import os

import pytest

from tests.backends.engine import ENGINE_INSTALL, EngineServer, llama_server_importable
from tests.needs import require, require_embedded_model


@pytest.fixture(scope="session")
def llamacpp_runs():
    """Fail (with the reason and the fix) when llama.cpp cannot decode on this CPU.

    One decode runs in a child process first (``rainlm.backends.llamacpp_build``): a
    build whose kernels crash here (the native build's AMX kernel on a virtualised
    Intel AMX CPU) then fails the llama.cpp tests with a message instead of killing the
    whole test run with a segmentation fault. The in-process llama.cpp test modules use
    it (``pytestmark``).
    """
    from rainlm.backends.llamacpp_build import probe_decode

    require_embedded_model()  # the probe decodes the embedded GGUF
    probe = probe_decode()
    if not probe.ok:
        pytest.fail(f"llama.cpp cannot run here: {probe.message}", pytrace=False)


@pytest.fixture(scope="session")
def engine_url():
    """Base URL (``http://127.0.0.1:PORT/v1``) of a real llama-cpp-python server.

    ``$RAINLM_ENGINE_URL`` when set (CI's server, started by ``scripts/engine_server``);
    else a private server on the embedded GGUF, stopped at the end of the session.
    Skipped when ``llama_cpp.server`` cannot be imported, unless ``RAINLM_REQUIRE_ALL=1``
    or ``RAINLM_REQUIRE_ENGINE=1`` (then the tests fail, saying why: ``tests/needs.py``).
    """
    url = os.environ.get("RAINLM_ENGINE_URL")
    if url:
        yield url.rstrip("/")
        return
    require(llama_server_importable(), "llama_cpp.server (the llama.cpp engine)",
            ENGINE_INSTALL, part="engine")
    require_embedded_model()  # the private server serves the embedded GGUF
    with EngineServer() as server:
        yield server.base_url
