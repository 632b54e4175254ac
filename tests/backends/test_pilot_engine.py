"""``rain pilot`` against a REAL serving engine (llama-cpp-python's OpenAI-compatible
server on the embedded GGUF, on 127.0.0.1): a company pilots RAIN on the engine it
already runs. The fluency of each answer comes from the engine's top-k log-probs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from rainlm.cli.main import cli

pytestmark = pytest.mark.model

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_a_pilot_runs_against_a_local_engine(engine_url, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in (
        "What is the best search engine?", "Why is the sky blue?", "How do I boil an egg?")))
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, [
        "pilot", "--prompts", str(prompts), "--policy", str(EXAMPLES / "policy_en.toml"),
        "--p95", "20", "--sample", "2", "--max-new-tokens", "8", "--embedder", "none",
        "--backend", "openai", "--base-url", engine_url, "--no-progress", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["backend"] == "OpenAICompatibleBackend"
    assert [m["n"] for m in report["methods"]] == [2, 2, 2]
    for answer in report["answers"]:
        assert answer["error"] is None
        assert answer["nll"] is None or answer["nll"] >= 0  # from the engine's log-probs
    assert any(a["nll"] is not None for a in report["answers"])
    assert (out / "report.html").stat().st_size > 10_000
