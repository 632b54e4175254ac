"""`rain distill export` through click's CliRunner, on scripted files and a real audit
database."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from rainlm.cli.main import cli
from rainlm.distill import formats
from tests.needs import require_module

from .helpers import audit_db, bench_row, flagged, frontier_row, write_jsonl


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def sources(tmp_path):
    run = write_jsonl(tmp_path / "bw.jsonl", [
        frontier_row("q1", "greedy", "Time is a skill.", failed=True, noise=None),
        frontier_row("q1", "rain:default@8", "Plan your day.", failed=False, noise=1.0),
        frontier_row("q2", "greedy", "Skill.", failed=True, noise=None),
        frontier_row("q2", "rain:default@8", "Practise.", failed=False, noise=1.0,
                     budget_exhausted=True),
        frontier_row("q2", "args", "Args.", failed=False, noise=1.0)])
    db = audit_db(tmp_path / "audit.sqlite3",
                  [flagged("tr_a", "I won't."), flagged("tr_b", "Rake the pins.")],
                  {"tr_a": "approved", "tr_b": "rejected"})
    return run, db


def test_export_writes_every_format_and_prints_the_summary(sources, tmp_path, monkeypatch):
    monkeypatch.setattr(formats, "datasets_available", lambda: True)
    require_module("datasets")
    out = tmp_path / "data"
    result = invoke("distill", "export", *sources, "--out", out)
    assert result.exit_code == 0, result.output
    assert "read 7 answers from 2 sources" in result.stdout
    assert "kept 2 of 5 candidate pairs (1 rain-vs-greedy, 1 review)" in result.stdout
    assert "budget-limited" in result.stdout and "no greedy answer" in result.stdout
    assert "not paired (other methods): args 1" in result.stdout
    assert "wrote" in result.stderr
    for name in ("dpo.jsonl", "sft.jsonl", "hf/dpo", "hf/sft", "export.json"):
        assert (out / name).exists(), name
    rows = [json.loads(x) for x in (out / "dpo.jsonl").read_text().splitlines()]
    # the audit source was a chat: every prompt is written as messages
    assert rows[0]["prompt"] == [{"role": "user", "content": "Question q1?"}]
    assert rows[1]["chosen"] == [{"role": "assistant", "content": "I won't."}]
    info = json.loads((out / "export.json").read_text())
    assert info["kept"] == 2 and info["dropped"] == {"no greedy answer": 2, "budget-limited": 1}
    assert info["options"]["min_margin"] == 0.1 and info["formats"] == ["dpo", "sft", "hf"]


def test_filters_on_the_command_line(sources, tmp_path):
    run, db = sources
    out = tmp_path / "data"
    result = invoke("distill", "export", run, "--out", out, "--format", "dpo",
                    "--include-budget-limited", "--judge", "banned-words", "--min-margin", "2")
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in (out / "dpo.jsonl").read_text().splitlines()]
    assert [r["chosen"] for r in rows] == ["Plan your day.", "Practise."]
    assert isinstance(rows[0]["prompt"], str)  # no chat source: plain strings
    assert not (out / "sft.jsonl").exists()
    result = invoke("distill", "export", run, "--out", tmp_path / "chat", "--format", "dpo",
                    "--as-chat")
    row = json.loads((tmp_path / "chat" / "dpo.jsonl").read_text().splitlines()[0])
    assert row["prompt"] == [{"role": "user", "content": "Question q1?"}]
    result = invoke("distill", "export", db, "--out", tmp_path / "rev", "--judge", "review",
                    "--format", "sft")
    assert "kept 1 of 3 candidate pairs (1 review)" in result.stdout


def test_default_formats_without_datasets(sources, tmp_path, monkeypatch):
    monkeypatch.setattr(formats, "datasets_available", lambda: False)
    out = tmp_path / "data"
    result = invoke("distill", "export", *sources, "--out", out)
    assert result.exit_code == 0, result.output
    assert "note: no hf/ folders: the datasets package is not installed" in result.stderr
    assert (out / "dpo.jsonl").exists() and not (out / "hf").exists()
    result = invoke("distill", "export", *sources, "--out", out, "--format", "hf")
    assert result.exit_code == 2
    assert "Error: the hf format needs the datasets package" in result.stderr
    assert "Traceback" not in result.output


def test_nothing_kept_is_an_error_with_a_hint(sources, tmp_path):
    run, _ = sources
    result = invoke("distill", "export", run, "--out", tmp_path / "x", "--judge", "refusal")
    assert result.exit_code == 1
    assert "Error: no pair kept, nothing written; most were dropped as 'judge'" in result.stderr
    assert "Judges in the sources: banned-words@1 (2)" in result.stderr
    assert not (tmp_path / "x").exists()
    empty = write_jsonl(tmp_path / "greedy.jsonl",
                        [bench_row("a", "vanilla", "Hi.", 1.0)])
    result = invoke("distill", "export", empty, "--out", tmp_path / "y")
    assert result.exit_code == 1 and "no candidate pair" in result.stderr


def test_bad_input_is_a_message_not_a_traceback(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"item_id": "a", "method": "rain", "prompt": "p", "judge": "j"}\n'
                   'oops\n{}\n')
    result = invoke("distill", "export", bad, "--out", tmp_path / "o")
    assert result.exit_code == 2
    assert f"Error: {bad}, line 2: not a JSON line" in result.stderr
    assert "Traceback" not in result.output
    result = invoke("distill", "export", tmp_path / "missing.jsonl", "--out", tmp_path / "o")
    assert result.exit_code == 2 and "no such file" in result.stderr
    result = invoke("distill", "export", tmp_path, "--out", tmp_path / "o")
    assert result.exit_code == 2 and "is a folder" in result.stderr
    result = invoke("distill", "export", bad, "--out", tmp_path / "o", "--format", "csv")
    assert result.exit_code == 2 and "unknown format 'csv'" in result.stderr
    result = invoke("distill", "export", bad, "--out", tmp_path / "o", "--min-margin", "3")
    assert result.exit_code == 2 and "--min-margin" in result.stderr


def test_help_has_examples():
    for args in (["distill", "--help"], ["distill", "export", "--help"]):
        result = invoke(*args)
        assert result.exit_code == 0 and "Examples:" in result.output
        assert "rain distill export" in result.output
    assert "distill" in invoke("--help").output
    help_text = invoke("distill", "export", "--help").output
    assert "postgresql://" in help_text and '"$RAINLM_AUDIT_DB"' in help_text
    export = cli.commands["distill"].commands["export"]
    for param in export.params:
        if param.param_type_name == "option":
            assert param.help and len(param.help) > 15, param.name
