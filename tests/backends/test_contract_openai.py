"""The shared backend contract on a real OpenAI-compatible engine (llama-cpp-python server)."""

from __future__ import annotations

import pytest

from tests.backends.contract import BackendContract


class TestOpenAICompatible(BackendContract):
    engine_controls_cache = True  # the server decides what it re-encodes

    @pytest.fixture(scope="class")
    @classmethod
    def contract_backend(cls, engine_url):
        from rainlm.backends.openai_compat import OpenAICompatibleBackend

        with OpenAICompatibleBackend(engine_url) as backend:
            yield backend
