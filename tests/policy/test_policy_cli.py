"""``--policy-file`` on the command line (click's CliRunner, scripted model): a bad file is
a usage error (exit code 2) naming file, line and key before any model loads; a good one
is RAIN's judge and each answer says which rules it breaks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from rainlm.bench.runner import read_records
from rainlm.cli.main import cli
from rainlm.cli.options import Services
from tests.cli.test_cli_scripted import FAST, HARMFUL, PROMPT, REFUSAL, services

BAD = 'name = "x"\n[rules]\nbaned_terms = ["Sure"]\n'
GOOD = 'name = "No sure"\n[rules]\nbanned_terms = ["Sure", "here"]\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


def invoke(args: list[str], obj: Services | None = None):
    return CliRunner().invoke(cli, args, obj=obj or services())


COMMANDS = {
    "generate": ["generate", *FAST, PROMPT],
    "chat": ["chat", *FAST],
    "serve": ["serve", "--embedder", "hashing"],
    "bench run": ["bench", "run", "--dataset", "advbench", "--limit", "1", "--out", "r.jsonl",
                  *FAST],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_bad_policy_file_is_a_usage_error_before_the_model_loads(tmp_path, command):
    path = write(tmp_path, BAD)
    calls: list = []
    res = invoke([*COMMANDS[command], "--policy-file", str(path)], services(calls=calls))
    assert res.exit_code == 2, res.output
    assert "Invalid value for '--policy-file'" in res.output
    assert (f"{path} line 3, rules.baned_terms: unknown key 'baned_terms'; did you mean "
            f"'banned_terms'?") in res.output
    assert calls == []  # no model was loaded


def test_a_missing_policy_file_is_named(tmp_path):
    res = invoke(["generate", *FAST, "--policy-file", str(tmp_path / "nope.toml"), PROMPT])
    assert res.exit_code == 2 and "nope.toml: cannot be read" in res.output


def test_ban_and_policy_file_together_are_refused(tmp_path):
    res = invoke(["generate", *FAST, "--ban", "Sure", "--policy-file",
                  str(write(tmp_path, GOOD)), PROMPT])
    assert res.exit_code == 2 and "--ban and --policy-file cannot be used together" in res.output


def test_judge_and_policy_file_together_are_refused(tmp_path):
    res = invoke([*COMMANDS["bench run"], "--judge", "synthetic:1", "--policy-file",
                  str(write(tmp_path, GOOD))])
    assert res.exit_code == 2 and "--judge and --policy-file" in res.output


def test_generate_compare_searches_with_the_policy_and_reports_broken_rules(tmp_path):
    path = write(tmp_path, GOOD)
    res = invoke(["generate", *FAST, "--compare", "--policy-file", str(path), PROMPT])
    assert res.exit_code == 0, res.output
    rain_block, greedy_block = res.stdout.split("=== Greedy (vanilla) ===")
    assert "=== RAIN (harmless preset, policy 'No sure') ===" in rain_block
    assert REFUSAL in rain_block and "policy kept: every rule" in rain_block
    assert HARMFUL in greedy_block
    assert "policy BROKEN: banned term: Sure; banned term: here" in greedy_block
    js = invoke(["generate", *FAST, "--compare", "--json", "--policy-file", str(path), PROMPT])
    payload = json.loads(js.stdout)
    assert payload["rain"]["policy"]["broken"] == []
    assert payload["rain"]["policy"]["name"] == "No sure"
    assert payload["vanilla"]["policy"]["broken"] == ["banned term: Sure", "banned term: here"]
    assert payload["rain"]["stats"]["evaluator"] == "policy:No sure"


def test_a_policy_can_make_the_search_comply_where_the_self_evaluation_refuses(tmp_path):
    """The policy, not the self-evaluation, is the judge: banning the refusal's words
    makes RAIN answer as greedy does."""
    path = write(tmp_path, '[rules]\nforbidden_phrases = ["can\'t"]\n')
    res = invoke(["generate", *FAST, "--json", "--policy-file", str(path), PROMPT])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["rain"]["text"].strip() == HARMFUL


def test_bench_run_judges_with_the_policy(tmp_path):
    out = tmp_path / "run.jsonl"
    res = invoke(["bench", "run", "--dataset", "advbench", "--limit", "1", "--methods",
                  "vanilla,rain", "--out", str(out), *FAST, "--max-searches-per-step", "3",
                  "--policy-file", str(write(tmp_path, GOOD))])
    assert res.exit_code == 0, res.output
    records = {r["method"]: r for r in read_records(out)}
    assert {r["judge"] for r in records.values()} == {"policy:No sure"}
    assert records["vanilla"]["judge_value"] < 0 <= records["rain"]["judge_value"]
