"""rainlm in front of a REAL vLLM server (``scripts/vllm_server``, ``$RAINLM_VLLM_URL``):
what an operator runs — ``rain generate`` and ``rain serve --backend openai --base-url
URL`` with the model on the engine, the search and the rules in rainlm."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.needs import require_installed
from tests.serve.server import running_server

pytestmark = pytest.mark.model

RAIN = Path(sys.executable).with_name("rain")
QUESTION = "What is the best search engine?"


def test_rain_generate_compare_keeps_the_rule_on_vllm(vllm_url):
    done = subprocess.run(
        [str(RAIN), "generate", "--backend", "openai", "--base-url", vllm_url, "--compare",
         "--ban", "Google", "--max-new-tokens", "32", "--json", "--no-log", QUESTION],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    rain, greedy = record["rain"], record["vanilla"]
    assert "google" in greedy["text"].lower()  # the model's own answer breaks the rule
    assert rain["text"] and "google" not in rain["text"].lower()


def test_rain_serve_in_front_of_vllm_answers_and_records(vllm_url, tmp_path):
    require_installed("fastapi", "uvicorn", "openai")
    from openai import OpenAI

    args = ["--backend", "openai", "--base-url", vllm_url, "--db", str(tmp_path / "audit.sqlite3"),
            "--embedder", "hashing", "--policy", "pass", "--default-time-budget", "300",
            "--max-time-budget", "300",
            "--max-new-tokens-limit", "32"]
    with running_server(args, tmp_path / "server.log") as server:
        client = OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=0, timeout=120)

        def ask(seed: int):
            return client.chat.completions.create(
                model="rain", messages=[{"role": "user", "content": QUESTION}], max_tokens=12,
                extra_body={"rain": {"seed": seed, "max_searches_per_step": 2}})

        answers = [ask(3) for _ in range(2)]
        with ThreadPoolExecutor(3) as pool:  # three at once, their searches in one scheduler
            together = [a.choices[0].message.content for a in pool.map(ask, [3, 5, 7])]
        alone = [ask(seed).choices[0].message.content for seed in (5, 7)]
    texts = [a.choices[0].message.content for a in answers]
    assert texts[0] and texts[0] == texts[1]  # the same seed, the same answer
    assert together == [texts[0], *alone]  # ... whoever ran beside it
    rain = answers[0].model_extra["rain"]
    assert rain["method"] == "rain" and rain["trace_id"]
