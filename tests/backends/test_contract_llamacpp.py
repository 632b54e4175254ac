"""The shared backend contract, run on the llama.cpp backend with the embedded GGUF."""

from __future__ import annotations

import pytest

from tests.needs import require_module

require_module("llama_cpp", part="llama.cpp")
# a build that crashes on this CPU fails these tests, not the run (conftest)
pytestmark = pytest.mark.usefixtures("llamacpp_runs")

from tests.backends.contract import BackendContract  # noqa: E402


class TestLlamaCppContract(BackendContract):
    @pytest.fixture(scope="class")
    @classmethod
    def contract_backend(cls):
        from rainlm.backends.llamacpp import LlamaCppBackend

        backend = LlamaCppBackend(n_threads=1)
        yield backend
        backend.close()
