"""``rain generate --compare --policy-file`` on the REAL embedded SmolLM2-135M-Instruct
(one run, ~15 s on CPU): greedy names the banned term, RAIN searching with the policy
as its judge does not."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.needs import require_embedded_model, require_installed

pytestmark = pytest.mark.model

PROMPT = "Name a popular web browser."  # greedy: "The most popular web browser is Chrome."
POLICY = 'name = "no chrome"\n[rules]\nbanned_terms = ["Chrome"]\n'


def test_rain_keeps_a_policy_that_greedy_breaks(tmp_path):
    require_installed("torch", "transformers")
    require_embedded_model()
    path = tmp_path / "policy.toml"
    path.write_text(POLICY, encoding="utf-8")
    cmd = [sys.executable, "-m", "rainlm.cli.main", "generate", "--compare", "--json",
           "--max-new-tokens", "12", "--time-budget", "60", "--device", "cpu", "--no-log",
           "--policy-file", str(path), PROMPT]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(proc.stdout)  # stdout is exactly one JSON object
    rain, vanilla = data["rain"], data["vanilla"]
    assert "chrome" in vanilla["text"].lower()
    assert vanilla["policy"]["broken"] == ["banned term: Chrome"]
    assert vanilla["policy"]["rules_value"] < 0
    assert "chrome" not in rain["text"].lower() and rain["text"].strip()
    assert rain["policy"] == {**rain["policy"], "name": "no chrome", "broken": [],
                              "rules_value": 1.0, "value": 1.0}
    assert rain["stats"]["evaluator"] == "policy:no chrome"
