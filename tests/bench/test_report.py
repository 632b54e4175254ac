"""Reports: the files exist, the Markdown table holds the numbers, synthetic judges are named."""

from __future__ import annotations

import importlib.util
import json

import pytest

from rainlm.bench.metrics import Interval
from rainlm.bench.report import SYNTHETIC_NOTE, fmt_mean, fmt_rate, load_runs, write_report
from rainlm.errors import ConfigError

from .test_metrics import _rec, hand_records

HAVE_MPL = importlib.util.find_spec("matplotlib") is not None


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_formatting():
    assert fmt_rate(Interval(0.25, 0.0456, 0.6994, 4)) == "25% [5–70]"
    assert fmt_rate(Interval(float("nan"), float("nan"), float("nan"), 0)) == "–"
    assert fmt_mean(Interval(12.345, 10.06, 14.0, 3)) == "12.3 [10.1–14.0]"
    assert fmt_mean(Interval(4.0, 4.0, 4.0, 4), 2) == "4.00 [4.00–4.00]"


def test_report_files_and_numbers(tmp_path):
    run = write_jsonl(tmp_path / "run.jsonl", hand_records())
    files = write_report([run], tmp_path / "rep")
    assert files.markdown.is_file() and files.summary_json.is_file()
    if HAVE_MPL:
        assert {p.name for p in files.plots} >= {"attack_success.png", "refusal.png", "harmless.png"}
        assert all(p.is_file() and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in files.plots)
        assert all(f"]({p.name})" in files.markdown.read_text() for p in files.plots)
    else:
        assert files.plots == [] and "matplotlib is not installed" in files.notes[0]
    md = files.markdown.read_text()
    rows = [line for line in md.splitlines() if line.startswith("| advbench")]
    assert [r.split(" | ")[2] for r in rows] == ["vanilla", "rain"]  # vanilla first
    rain = rows[1].strip("| ").split(" | ")
    # dataset, model, method, judge, n, failed, cut off, budget-limited, attack success,
    # refusal, over-refusal, harmless, answer tokens, seconds, tokens encoded, cost x vanilla
    assert rain[4:9] == ["4", "1", "0", "0", "25% [5–70]"]  # Wilson 1/4 = [0.046, 0.699], by hand
    assert rain[9] == "75% [30–95]" and rain[10] == "–" and rain[11].startswith("50% ")
    assert rain[12].startswith("5.0 [") and rain[13].startswith("4.00 [")
    assert rain[14].startswith("400 [") and rain[15].startswith("4.00 [")
    xs = next(line for line in md.splitlines() if line.startswith("| xstest"))
    assert "50% [9–91]" in xs  # over-refusal 1 of 2 safe prompts
    assert "failed" in md and "SYNTHETIC" not in md
    summary = json.loads(files.summary_json.read_text())
    first = next(r for r in summary if r["method"] == "rain" and r["dataset"] == "advbench")
    assert first["attack_success"]["value"] == 0.25 and first["over_refusal"]["value"] is None


def test_synthetic_runs_say_so_and_get_a_sweep_plot(tmp_path):
    recs = []
    for acc, refused in ((0.5, False), (0.75, True), (1.0, True)):
        for method in ("vanilla", "rain"):
            recs.append(dict(_rec("a0", method, refused=refused and method == "rain"),
                             judge=f"synthetic@{acc:g}", synthetic_judge=True, judge_accuracy=acc))
    run = write_jsonl(tmp_path / "sweep.jsonl", recs)
    files = write_report([run], tmp_path / "rep")
    md = files.markdown.read_text()
    assert SYNTHETIC_NOTE in md and "synthetic@0.75" in md
    if HAVE_MPL:
        assert "judge_accuracy_sweep.png" in {p.name for p in files.plots}


def test_last_line_wins_and_several_files_merge(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", [_rec("a0", "rain", error="RuntimeError: x")])
    b = write_jsonl(tmp_path / "b.jsonl", [_rec("a0", "rain", refused=True),
                                          _rec("a1", "rain", refused=False)])
    recs = load_runs([a, b])
    assert len(recs) == 2 and all(r["error"] is None for r in recs)
    files = write_report([a, b], tmp_path / "rep", plots=False)
    assert files.plots == [] and "50% [9–91]" in files.markdown.read_text()


def test_no_results_is_an_error(tmp_path):
    empty = tmp_path / "e.jsonl"
    empty.write_text("")
    with pytest.raises(ConfigError):
        write_report([empty], tmp_path / "rep")
    with pytest.raises(ConfigError):
        load_runs([])


def test_without_matplotlib_the_markdown_is_still_written(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    run = write_jsonl(tmp_path / "run.jsonl", hand_records())
    files = write_report([run], tmp_path / "rep")
    assert files.plots == [] and "rainlm[bench]" in files.notes[0]
    assert "rainlm[bench]" in files.markdown.read_text()
