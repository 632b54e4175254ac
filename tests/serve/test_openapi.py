"""The published request contract (``GET /openapi.json``) and schemathesis against it.

The app is the real one (worker thread, SQLite store) on the scripted model, driven
over ASGI; schemathesis generates requests from the schema the server publishes and
every response must be below 500. The examples per operation are bounded (and
derandomized) so the run is repeatable and takes about a minute on 2 cores.
"""

from __future__ import annotations

import pytest

from tests.needs import require_module

require_module("fastapi")
schemathesis = require_module("schemathesis")

from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

from rainlm.serve.openapi import openapi_schema  # noqa: E402
from rainlm.serve.schemas import RAIN_CONFIG_FIELDS  # noqa: E402
from rainlm.serve.settings import ServerSettings  # noqa: E402
from rainlm.trace.store import TraceStore  # noqa: E402
from tests.bench.scripted import make_backend  # noqa: E402
from tests.serve.test_app_scripted import LOCAL, NO_EMBEDDER, create_ready_app, wait_ready  # noqa: E402

# Small limits keep every generated request short on the scripted model (a search is
# bounded by these; the defaults allow minutes-long searches).
SETTINGS = ServerSettings(embedder="none", max_candidates=6, max_searches_limit=6,
                          max_token_set_length=4, max_new_tokens_limit=12, default_max_new_tokens=8,
                          max_time_budget_s=2.0, default_time_budget_s=2.0,
                          allow_request_policy=True, allow_request_judge=True)
SCHEMA = schemathesis.openapi.from_dict(openapi_schema(SETTINGS))
EXAMPLES = 25  # per operation: 8 operations, ~200 requests


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    store = TraceStore(tmp_path_factory.mktemp("openapi") / "audit.sqlite3")
    app = create_ready_app(SETTINGS, backend=make_backend(), store=store, services=NO_EMBEDDER)
    with TestClient(app, base_url=LOCAL) as c:
        wait_ready(c)
        yield c


def test_openapi_json_is_the_contract_the_parser_enforces(client):
    got = client.get("/openapi.json")
    assert got.status_code == 200
    doc = got.json()
    assert doc == openapi_schema(SETTINGS, model_name="rain")
    assert doc["openapi"].startswith("3.")
    paths = doc["paths"]
    for path in ("/v1/chat/completions", "/v1/completions", "/v1/models", "/health",
                 "/v1/rain/traces/{trace_id}", "/v1/rain/traces/{trace_id}/html",
                 "/v1/rain/reviews/{trace_id}", "/review"):
        assert path in paths, path
    for path in ("/v1/rain/traces/{trace_id}/html", "/review"):  # the HTML pages
        responses = paths[path]["get"]["responses"]
        assert list(responses["200"]["content"]) == ["text/html"]
        assert set(responses["401"]["content"]) == {"application/json", "text/html"}
    schemas = doc["components"]["schemas"]
    chat = schemas["ChatCompletionRequest"]
    assert chat["required"] == ["messages"] and chat["additionalProperties"] is False
    assert schemas["CompletionRequest"]["required"] == ["prompt"]
    assert set(RAIN_CONFIG_FIELDS) <= set(schemas["RainSettings"]["properties"])
    assert schemas["RainSettings"]["properties"]["unvisited_value"]["enum"] == [
        "zero", "parent", "neutral"]
    assert chat["properties"]["max_tokens"]["maximum"] == SETTINGS.max_new_tokens_limit
    # a body the schema allows is answered; a field it does not list is a 400 naming it
    ok = client.post("/v1/chat/completions", json={
        "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4,
        "rain": {"max_searches": 2, "accept_value": 1.0}})
    assert ok.status_code == 200, ok.text
    bad = client.post("/v1/chat/completions", json={
        "messages": [{"role": "user", "content": "Hi"}], "temperatur": 1})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "temperatur"


def test_a_chunked_body_over_the_limit_is_refused_while_it_is_read(client):
    limit = SETTINGS.max_body_bytes

    def chunks():  # no Content-Length: the server must count as it reads
        for _ in range(limit // 65536 + 4):
            yield b" " * 65536

    got = client.post("/v1/chat/completions", content=chunks(),
                      headers={"Content-Type": "application/json"})
    assert got.status_code == 413, got.text
    error = got.json()["error"]
    assert error["code"] == "request_too_large"
    assert error["message"] == f"request body is larger than this server's limit of {limit} bytes"


@SCHEMA.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_generated_request_gets_a_server_error(case, client):
    kwargs = case.as_transport_kwargs(base_url=LOCAL)
    kwargs.pop("allow_redirects", None)
    if not kwargs.get("cookies"):
        kwargs.pop("cookies", None)
    if isinstance(kwargs.get("data"), (bytes, str)):
        kwargs["content"] = kwargs.pop("data")
    response = client.request(**kwargs)
    case.validate_response(response, checks=[not_a_server_error])
