"""``rain serve --policy-file``: the file's rules judge every search and its fail-safe
applies (threshold, action, refusal message), unless the command line says otherwise;
each audit record names the policy. The real CLI builds the real app on a scripted model
(tests/bench/scripted.py); only uvicorn's loop is replaced by starlette's TestClient."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.needs import require_module

require_module("fastapi")
require_module("uvicorn")

import uvicorn  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from rainlm.cli.main import cli  # noqa: E402
from rainlm.policy import policy_from_text  # noqa: E402
from rainlm.services import Services  # noqa: E402
from rainlm.serve.settings import ServerSettings  # noqa: E402
from rainlm.trace.store import TraceStore  # noqa: E402
from tests.bench.scripted import HARMFUL, REFUSAL, make_backend  # noqa: E402
from tests.serve.test_app_scripted import (LOCAL, NO_EMBEDDER, create_ready_app,  # noqa: E402
                                           wait_ready)

POLICY = '''\
name = "No sure"
[rules]
banned_terms = ["Sure"]
[fail_safe]
threshold = 0.0
action = "refuse"
refusal_message = "Nope: policy."
'''


def chat(method: str) -> dict:
    return {"model": "rain", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8,
            "rain": {"max_searches": 4, "method": method}}


def serve_and_ask(tmp_path: Path, monkeypatch, *extra: str) -> dict:
    """Run ``rain serve --policy-file FILE EXTRA`` and send a greedy and a RAIN request;
    their responses and audit records."""
    path = tmp_path / "policy.toml"
    path.write_text(POLICY, encoding="utf-8")
    seen: dict = {}

    def run(server, *args, **kwargs):  # instead of serving a socket: ask the app
        app = server.config.app
        with TestClient(app, base_url=LOCAL) as client:
            deadline = time.monotonic() + 60
            while client.get("/health").json()["status"] != "ok":
                assert time.monotonic() < deadline, client.get("/health").json()
                time.sleep(0.05)
            for method in ("greedy", "rain"):
                body = client.post("/v1/chat/completions", json=chat(method)).json()
                seen[method] = body, client.get(f"/v1/rain/traces/{body['id']}").json()
            seen["settings"] = app.state.settings

    monkeypatch.setattr(uvicorn.Server, "run", run)
    backend = make_backend()
    services = Services(load_backend=lambda model, device: backend,
                        load_embedder=lambda name, device: "none")
    res = CliRunner().invoke(cli, ["serve", "--embedder", "none", "--store",
                                   str(tmp_path / "audit.sqlite3"), "--policy-file", str(path),
                                   *extra], obj=services)
    assert res.exit_code == 0, res.output
    return seen


def test_the_files_fail_safe_applies_and_the_record_names_the_policy(tmp_path, monkeypatch):
    seen = serve_and_ask(tmp_path, monkeypatch)
    settings = seen["settings"]
    assert (settings.policy, settings.threshold, settings.refusal_message) == (
        "refuse", 0.0, "Nope: policy.")
    body, record = seen["greedy"]  # greedy says "Sure": the rules value it -1, refused
    assert body["choices"][0]["message"]["content"] == "Nope: policy."
    assert body["rain"]["policy"]["action"] == "refused" and -1.0 <= body["rain"]["score"] < 0
    assert record["policy"]["original_text"].strip() == HARMFUL
    assert record["scores"]["policy"]["name"] == "No sure"
    assert record["scores"]["policy"]["source"].endswith("policy.toml")
    assert record["scores"]["policy"]["broken"] == ["banned term: Sure"]
    body, record = seen["rain"]  # the search judged by the policy avoids "Sure"
    assert body["choices"][0]["message"]["content"].strip() == REFUSAL
    assert body["rain"]["policy"]["action"] == "passed" and body["rain"]["score"] == 1.0
    assert record["stats"]["evaluator"] == "policy:No sure"
    assert record["scores"]["policy"]["broken"] == []


def test_the_command_line_wins_over_the_file(tmp_path, monkeypatch):
    seen = serve_and_ask(tmp_path, monkeypatch, "--policy", "flag", "--threshold", "-0.5",
                         "--refusal-message", "CLI says no.")
    settings = seen["settings"]
    assert (settings.policy, settings.threshold, settings.refusal_message) == (
        "flag", -0.5, "CLI says no.")
    body, record = seen["greedy"]
    assert body["choices"][0]["message"]["content"].strip() == HARMFUL
    assert body["rain"]["policy"]["action"] == "flagged" and record["review_state"] == "pending"


def test_rules_and_model_take_the_lower_value_for_the_fail_safe(tmp_path):
    policy = policy_from_text('name = "careful"\n[rules]\nbanned_terms = ["Sure"]\n'
                              '[judge]\nuse = "rules+model"\nrubric = "harmless"\n',
                              source="careful.toml")
    store = TraceStore(str(tmp_path / "audit.sqlite3"))
    settings = ServerSettings(policy="flag", threshold=0.5, embedder="none",
                              policy_file=policy)
    app = create_ready_app(settings, backend=make_backend(), store=store, services=NO_EMBEDDER)
    with TestClient(app, base_url=LOCAL) as client:
        wait_ready(client)
        body = client.post("/v1/chat/completions", json=chat("rain")).json()
        record = client.get(f"/v1/rain/traces/{body['id']}").json()
    scores = record["scores"]["policy"]
    # the rules keep the refusal (+1); the model's own continuous judgement is lower
    assert body["choices"][0]["message"]["content"].strip() == REFUSAL
    assert scores["rules_value"] == 1.0 and scores["model_value"] == pytest.approx(0.7)
    assert body["rain"]["score"] == pytest.approx(0.7) == scores["value"]
    assert body["rain"]["policy"]["action"] == "passed"
    assert record["scores"]["rubric"] == "harmless" and record["stats"]["evaluator"].startswith(
        "policy:careful+self-eval:harmless")


def test_settings_refuse_anything_but_a_policy():
    with pytest.raises(Exception, match="policy_file"):
        ServerSettings(policy_file="policy.toml")


def test_settings_made_in_python_take_the_files_fail_safe_option_by_option():
    from rainlm.policy.lang import REFUSAL_MESSAGES
    from rainlm.serve.settings import DEFAULT_REFUSAL

    policy = policy_from_text(POLICY, source="p.toml")

    def fail_safe(**given):
        s = ServerSettings(embedder="none", policy_file=policy, **given)
        return s.policy, s.threshold, s.refusal_message

    assert fail_safe() == ("refuse", 0.0, "Nope: policy.")
    assert fail_safe(threshold=0.5) == ("refuse", 0.5, "Nope: policy.")
    assert fail_safe(policy="pass") == ("pass", 0.0, "Nope: policy.")
    assert fail_safe(refusal_message="No.") == ("refuse", 0.0, "No.")
    ja = policy_from_text('lang = "ja"\n[rules]\nno_commas = true\n')
    assert ServerSettings(policy_file=ja).refusal_message == REFUSAL_MESSAGES["ja"]
    plain = ServerSettings()
    assert (plain.policy, plain.threshold, plain.refusal_message) == ("flag", 0.0,
                                                                      DEFAULT_REFUSAL)


def test_one_option_given_on_the_command_line_leaves_the_others_to_the_file(tmp_path,
                                                                            monkeypatch):
    seen = serve_and_ask(tmp_path, monkeypatch, "--threshold", "-0.5")
    settings = seen["settings"]
    assert (settings.policy, settings.threshold, settings.refusal_message) == (
        "refuse", -0.5, "Nope: policy.")
    help_text = " ".join(CliRunner().invoke(cli, ["serve", "--help"]).output.split())
    assert "option by option: its action unless --policy is given, its threshold unless " \
           "--threshold is, its refusal message unless --refusal-message is" in help_text
