"""``rain pilot`` end to end on the REAL embedded model: interrupted and resumed, the
report and its page, a Japanese policy, and the errors a user meets first.

Each run is small (3 prompts, 12 tokens) and runs in a subprocess through the module
entry point, as a user's shell would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.needs import require_embedded_model, require_installed

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
PROMPTS = ["What is the best search engine?", "How do I learn to cook?",
           "Explain how vaccines work.", "What makes a good manager?",
           "Why is the sky blue?", "How do I write a cover letter?"]


def pilot_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "rainlm.cli.main", "pilot", "--device", "cpu",
            "--embedder", "hashing", "--max-new-tokens", "12", "--no-progress", *args]


def write_prompts(path: Path, prompts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"id": f"p{i}", "prompt": p}, ensure_ascii=False) + "\n"
                            for i, p in enumerate(prompts)), encoding="utf-8")
    return path


def kinds(out: Path) -> Counter:
    return Counter(json.loads(line)["kind"] for line in (out / "pilot.jsonl").read_text().splitlines())


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def english(tmp_path_factory):
    """A pilot killed after its first sample answer, then run again to the end."""
    require_installed("torch", "transformers")
    require_embedded_model()
    tmp = tmp_path_factory.mktemp("pilot")
    prompts = write_prompts(tmp / "prompts.jsonl", PROMPTS)
    out = tmp / "out"
    cmd = pilot_cmd("--prompts", str(prompts), "--policy", str(EXAMPLES / "policy_en.toml"),
                    "--p95", "8", "--sample", "3", "--out", str(out))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env())
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "pilot.jsonl").exists() and kinds(out)["answer"] >= 1:
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = kinds(out)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env())
    assert done.returncode == 0, done.stderr[-3000:]
    return out, before, done, cmd


pytestmark = pytest.mark.model


def test_a_killed_pilot_resumes_without_redoing_what_it_recorded(english):
    out, before, _, _ = english
    after = kinds(out)
    assert before["tune"] >= 3 and after["tune"] == before["tune"]  # budget not searched again
    records = [json.loads(line) for line in (out / "pilot.jsonl").read_text().splitlines()]
    answers = Counter((r["item_id"], r["method"]) for r in records if r["kind"] == "answer")
    assert len(answers) == 9 and set(answers.values()) == {1}
    assert after["budget"] == 1 and after["finished"] == 1


def test_the_report_holds_every_method_with_intervals_and_a_verdict(english):
    out, _, done, _ = english
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))  # strict JSON
    assert report["schema"] == "rainlm.pilot/1" and report["finished"] is True
    assert [m["method"] for m in report["methods"]] == ["greedy", "best-of-n", "rain"]
    for row in report["methods"]:
        assert row["n"] + row["errors"] == 3
        for key in ("violation_rate", "kept_and_fluent_rate", "latency_p95_s", "token_ratio"):
            iv = row[key]
            assert iv["n"] == row["n"] and iv["lo"] <= iv["value"], (key, iv)
            # 3 answers cannot bound a 95th percentile from above: no upper bound
            assert (iv["hi"] is None) if key == "latency_p95_s" else iv["value"] <= iv["hi"]
    assert report["recommendation"]["verdict"] in ("go", "go-with-distillation", "no-go")
    assert report["recommendation"]["headline"] in done.stdout
    assert len(report["answers"]) == 9
    assert report["budget"]["rain"]["tries"][0]["time_budget_s"] == pytest.approx(6.4)
    page = (out / "report.html").read_text(encoding="utf-8")
    assert report["recommendation"]["headline"] in page and "<html lang=\"en\"" in page
    assert "report.html" in done.stdout


def test_every_answer_is_judged_by_the_policy_file(english):
    from rainlm.policy import load_policy

    out, _, _, _ = english
    rules = load_policy(EXAMPLES / "policy_en.toml").rule_judge()
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    for a in report["answers"]:
        assert a["kept"] == (not rules.broken(a["text"])), a
        assert a["broken"] == list(rules.broken(a["text"]))


def test_a_finished_pilot_is_reported_again_with_another_margin_answering_nothing(english):
    out, _, _, cmd = english
    before = kinds(out)
    took = json.loads((out / "report.json").read_text(encoding="utf-8"))["timing"]["seconds"]
    start = time.monotonic()
    again = subprocess.run(cmd + ["--fluency-margin", "3"], capture_output=True, text=True,
                           timeout=300, env=env())
    wall = time.monotonic() - start
    assert again.returncode == 0, again.stderr[-2000:]
    after = kinds(out)
    assert after - before == Counter({"finished": 1, "session": 1})
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["fluency"]["margin_nats"] == 3.0
    # the time is the sessions' sum: the earlier one once, plus this short one
    assert took <= report["timing"]["seconds"] <= took + wall + 0.2


def test_a_japanese_policy_gives_a_japanese_page_and_enforces_its_rules(tmp_path):
    from rainlm.policy import load_policy

    require_installed("torch", "transformers")
    require_embedded_model()
    lines = (EXAMPLES / "prompts_ja.jsonl").read_text(encoding="utf-8").splitlines()[:6]
    prompts = tmp_path / "ja.jsonl"
    prompts.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    proc = subprocess.run(pilot_cmd("--prompts", str(prompts), "--policy",
                                    str(EXAMPLES / "policy_ja.toml"), "--p95", "8",
                                    "--sample", "2", "--out", str(out)),
                          capture_output=True, text=True, timeout=600, env=env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["lang"] == "ja"
    assert any("\u3040" <= ch <= "\u30ff" for ch in report["recommendation"]["headline"])
    page = (out / "report.html").read_text(encoding="utf-8")
    assert '<html lang="ja"' in page
    rules = load_policy(EXAMPLES / "policy_ja.toml").rule_judge()
    for a in report["answers"]:
        assert a["kept"] == (not rules.broken(a["text"]))
        for broken in a["broken"]:
            assert broken.startswith(("禁止語", "禁止パターン")), broken


def test_an_engine_off_this_machine_is_refused_before_anything_loads(tmp_path):
    prompts = write_prompts(tmp_path / "p.jsonl", PROMPTS[:2])
    proc = subprocess.run(pilot_cmd("--prompts", str(prompts), "--policy",
                                    str(EXAMPLES / "policy_en.toml"), "--p95", "5",
                                    "--backend", "openai", "--base-url",
                                    "http://10.0.0.5:8000/v1", "--out", str(tmp_path / "o")),
                          capture_output=True, text=True, timeout=120, env=env())
    assert proc.returncode == 2 and "never sends your prompts elsewhere" in proc.stderr
    assert not (tmp_path / "o").exists()


def test_a_wrong_policy_file_names_its_line_and_rule(tmp_path):
    prompts = write_prompts(tmp_path / "p.jsonl", PROMPTS[:2])
    bad = tmp_path / "policy.toml"
    bad.write_text('name = "x"\n\n[rules]\nbanned_terms = ["a"]\nletter_max = { e = -1 }\n',
                   encoding="utf-8")
    proc = subprocess.run(pilot_cmd("--prompts", str(prompts), "--policy", str(bad),
                                    "--p95", "5", "--out", str(tmp_path / "o")),
                          capture_output=True, text=True, timeout=120, env=env())
    assert proc.returncode == 2
    assert "line 5" in proc.stderr and "letter_max" in proc.stderr, proc.stderr
    missing = subprocess.run(pilot_cmd("--prompts", str(tmp_path / "nope.jsonl"), "--policy",
                                       str(EXAMPLES / "policy_en.toml"), "--p95", "5"),
                             capture_output=True, text=True, timeout=120, env=env())
    assert missing.returncode == 2 and "nope.jsonl" in missing.stderr


def test_an_edited_policy_does_not_resume_into_the_old_records(english, tmp_path):
    out, _, _, cmd = english
    edited = tmp_path / "policy.toml"
    edited.write_text((EXAMPLES / "policy_en.toml").read_text(encoding="utf-8").replace(
        '"unique", "key"]', '"unique", "key", "great"]'), encoding="utf-8")
    before = kinds(out)
    i = cmd.index("--policy")
    proc = subprocess.run(cmd[:i + 1] + [str(edited)] + cmd[i + 2:], capture_output=True,
                          text=True, timeout=300, env=env())
    assert proc.returncode == 2 and "other settings" in proc.stderr, proc.stderr[-2000:]
    assert kinds(out) == before
