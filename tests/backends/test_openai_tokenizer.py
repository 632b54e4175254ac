"""``--tokenizer`` (``tokenizer=``) against a REAL llama-cpp-python server that serves the
embedded GGUF under a name that is not a local folder (``--model_alias smollm2``, as
vLLM's ``--served-model-name`` does): no mocks.

The server lists only the alias on ``GET /v1/models`` (and ignores a request's
``model``), so rainlm cannot find the tokenizer from the served name: it needs
``--tokenizer``, the embedded model's converted Hugging Face folder.
"""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner

from rainlm.backends.loading import load_backend
from rainlm.cli.main import cli
from rainlm.errors import ConfigError, ModelNotFoundError
from tests.backends.engine import ENGINE_INSTALL, EngineServer, llama_server_importable
from tests.needs import require, require_embedded_model, require_installed, require_module

SERVED = "smollm2"
"""The served model's name: not a folder (nor the GGUF's path) anywhere."""
QUESTION = "What is the capital of France?"
FAST = ["--embedder", "none", "--max-new-tokens", "3", "--max-searches-per-step", "2",
        "--no-log"]


@pytest.fixture(scope="module")
def served_url():
    """A private server whose only model id is ``SERVED`` (an external
    ``$RAINLM_ENGINE_URL`` serves the GGUF's path, which rainlm finds by itself)."""
    require(llama_server_importable(), "llama_cpp.server (the llama.cpp engine)",
            ENGINE_INSTALL, part="engine")
    require_embedded_model()
    with EngineServer(extra_args=("--model_alias", SERVED)) as server:
        yield server.base_url


@pytest.fixture(scope="module")
def tokenizer_folder():
    """The embedded model's Hugging Face folder (tokenizer.json, chat template)."""
    require_installed("torch", "transformers")
    require_embedded_model()
    from rainlm.backends.embedded import ensure_embedded_folder

    return ensure_embedded_folder()


def rain(*args: str):
    return CliRunner().invoke(cli, list(args))


def engine_args(url: str) -> list[str]:
    return ["--backend", "openai", "--base-url", url, "--model", SERVED]


# ------------------------------------------------------------------ the command line
@pytest.mark.model
def test_generate_answers_a_served_name_with_its_tokenizer(served_url, tokenizer_folder):
    res = rain("generate", *engine_args(served_url), "--tokenizer", str(tokenizer_folder),
               *FAST, QUESTION)
    assert res.exit_code == 0, res.output
    assert res.stdout.strip(), res.output  # the answer


def test_without_tokenizer_the_error_asks_for_it(served_url):
    res = rain("generate", *engine_args(served_url), *FAST, QUESTION)
    assert res.exit_code == 2, res.output
    text = " ".join(res.stderr.split())
    assert f"the engine serves {SERVED!r}" in text and "--tokenizer FOLDER" in text


def test_a_folder_without_tokenizer_files_is_named(served_url, tmp_path):
    res = rain("generate", *engine_args(served_url), "--tokenizer", str(tmp_path), *FAST,
               QUESTION)
    assert res.exit_code == 2 and "holds no tokenizer files" in res.stderr
    assert repr(str(tmp_path)) in " ".join(res.stderr.split())
    from rainlm.backends.openai_compat import OpenAICompatibleBackend

    with pytest.raises(ModelNotFoundError, match="holds no tokenizer files"):
        OpenAICompatibleBackend(served_url, SERVED, tokenizer=tmp_path)  # the library's check


@pytest.mark.model
def test_rain_serve_answers_through_the_engine_with_its_tokenizer(served_url, tokenizer_folder):
    """``rain serve``'s settings carry the tokenizer to the backend its engine loads."""
    require_module("fastapi")
    from fastapi.testclient import TestClient

    from rainlm.serve.app import create_app
    from rainlm.serve.settings import ServerSettings

    settings = ServerSettings(model=f"openai:{served_url}#{SERVED}", db_path=":memory:",
                              tokenizer=str(tokenizer_folder), embedder="none")
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        engine, deadline = client.app.state.engine, time.monotonic() + 120
        while engine.state == "loading" and time.monotonic() < deadline:
            time.sleep(0.1)  # the worker thread loads the backend
        health = client.get("/health")
        assert health.status_code == 200, health.json()
        resp = client.post("/v1/chat/completions", json={
            "model": "rain", "messages": [{"role": "user", "content": QUESTION}],
            "max_tokens": 3, "rain": {"max_searches": 2}})
        assert resp.status_code == 200, resp.text
        assert isinstance(resp.json()["choices"][0]["message"]["content"], str)


# ------------------------------------------------------------------ load_backend
@pytest.mark.parametrize("model", [None, "embedded", "some/folder", "llamacpp:x.gguf"])
def test_load_backend_refuses_a_tokenizer_for_a_model_that_reads_its_own(model, tmp_path):
    with pytest.raises(ConfigError) as info:
        load_backend(model, tokenizer=tmp_path)  # refused before anything loads
    assert info.value.field == "tokenizer" and "OpenAI-compatible engine" in str(info.value)
