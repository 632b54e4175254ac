"""The runner: one line per answer, resumable without duplicates, failures recorded."""

from __future__ import annotations

import io
import threading

import pytest

from rainlm.bench.datasets import DatasetError, Item
from rainlm.progress_bar import ProgressBar, format_duration
from rainlm.bench.runner import Judge, item_seed, make_judges, read_records, run_bench
from rainlm.errors import ConfigError
from rainlm.judge.base import CallableEvaluator

from .scripted import PHRASES, REFUSAL, fast_settings, make_backend

METHODS = ["vanilla", "best-of-n", "rain"]
ITEMS = [Item(f"t:{k}", f"Question number {k}?", "t", "unsafe") for k in range(4)]


def rule(prompt: str, response: str) -> float:
    return 1.0 if "cannot" in response else -1.0


def judge(fn=rule) -> list[Judge]:
    return [Judge("rule", CallableEvaluator(fn, name="rule"))]


def run(path, items=ITEMS, methods=METHODS, judges=None, settings=None, **kw):
    return run_bench(make_backend(), items, methods, path, settings=settings or fast_settings(),
                     judges=judges or judge(), refusal_phrases=PHRASES, **kw)


def keys(path):
    return [(r["item_id"], r["method"], r["judge"]) for r in read_records(path)]


def test_lines_hold_answer_cost_verdict_config_seed_model_versions(tmp_path):
    out = tmp_path / "run.jsonl"
    summary = run(out, items=ITEMS[:1])
    assert (summary.written, summary.failed, summary.skipped) == (3, 0, 0)
    recs = read_records(out)
    assert [r["method"] for r in recs] == METHODS
    rain = recs[2]
    assert rain["text"].strip() == REFUSAL and rain["refused"] is True and rain["judge_value"] == 1.0
    assert rain["tokens_encoded"] > 0 and rain["seconds"] > 0 and rain["answer_tokens"] == 6
    assert rain["model"] == "scripted-bench" and rain["seed"] == item_seed(0, "t:0")
    assert rain["settings"]["config"]["max_searches_per_step"] == 4
    assert rain["versions"]["rainlm"] and rain["versions"]["numpy"]
    assert rain["error"] is None and rain["label"] == "unsafe" and rain["details"]["searches"] > 0
    assert recs[0]["refused"] is False and recs[0]["judge_value"] == -1.0  # greedy complies


def test_resume_after_a_prefix_redoes_nothing_and_duplicates_nothing(tmp_path):
    out = tmp_path / "run.jsonl"
    first = run(out, items=ITEMS[:2])
    before = out.read_bytes()
    assert first.written == 6
    second = run(out, items=ITEMS)
    assert (second.written, second.skipped) == (6, 6)
    assert out.read_bytes().startswith(before)  # the first lines are untouched
    k = keys(out)
    assert len(k) == len(set(k)) == 12
    third = run(out, items=ITEMS)
    assert (third.written, third.skipped) == (0, 12)
    # the same answers as a run that was never interrupted
    fresh = tmp_path / "fresh.jsonl"
    run(fresh, items=ITEMS)
    texts = {(r["item_id"], r["method"]): r["text"] for r in read_records(out)}
    assert texts == {(r["item_id"], r["method"]): r["text"] for r in read_records(fresh)}


class Interrupt:
    """A judge that stops the run (as Ctrl-C would) on its ``after``-th call."""

    name = "rule"

    def __init__(self, after: int):
        self.calls, self.after = 0, after

    def evaluate(self, requests):
        self.calls += 1
        if self.calls >= self.after:
            raise KeyboardInterrupt
        return [rule("", r.response) for r in requests]


def test_interrupted_run_resumes_cleanly(tmp_path):
    out = tmp_path / "run.jsonl"
    with pytest.raises(KeyboardInterrupt):
        run(out, judges=[Judge("rule", Interrupt(after=12))])
    partial = keys(out)
    assert 0 < len(partial) < 12
    run(out)
    k = keys(out)
    assert len(k) == len(set(k)) == 12 and k[: len(partial)] == partial


def test_a_line_cut_short_is_dropped_and_the_file_repaired(tmp_path):
    out = tmp_path / "run.jsonl"
    run(out, items=ITEMS[:1])
    with open(out, "a") as fh:
        fh.write('{"item_id": "t:1", "meth')  # killed mid-write
    assert len(read_records(out)) == 3
    run(out, items=ITEMS[:2])
    assert len(keys(out)) == 6 and all(line for line in out.read_text().splitlines())


def test_a_bad_line_in_the_middle_is_an_error_naming_the_line(tmp_path):
    out = tmp_path / "run.jsonl"
    out.write_text('{"item_id": "a", "method": "vanilla"}\nnot json\n{"item_id": "b", "method": "x"}\n')
    with pytest.raises(DatasetError) as err:
        read_records(out)
    assert err.value.line == 2 and str(out) in str(err.value)
    out.write_text('{"item_id": "a"}\n')
    with pytest.raises(DatasetError) as err:
        read_records(out)
    assert (err.value.line, err.value.field) == (1, "method")


def test_failing_items_are_recorded_and_the_run_goes_on(tmp_path):
    def picky(prompt, response):
        if "number 1" in prompt:
            raise ValueError("judge exploded")
        return rule(prompt, response)

    out = tmp_path / "run.jsonl"
    summary = run(out, judges=judge(picky))
    assert (summary.written, summary.failed) == (12, 3)  # every method of item t:1 fails
    assert "judge exploded" in summary.errors[0]
    recs = read_records(out)
    bad = [r for r in recs if r["error"]]
    assert {r["item_id"] for r in bad} == {"t:1"}
    assert all(r["error"] == "ValueError: judge exploded" and "traceback" in r for r in bad)
    assert run(out).written == 0  # failures are not retried by default...
    again = run(out, retry_errors=True)  # ...unless asked
    assert (again.written, again.failed) == (3, 0)


def test_resuming_with_other_settings_is_refused(tmp_path):
    out = tmp_path / "run.jsonl"
    run(out, items=ITEMS[:1])
    with pytest.raises(ConfigError) as err:
        run(out, settings=fast_settings(max_new_tokens=5))
    assert err.value.field == "out" and "other settings" in str(err.value)


def test_method_checks_and_compute_matching_order(tmp_path):
    with pytest.raises(ConfigError):
        run(tmp_path / "a.jsonl", methods=["vanilla", "vanilla"])
    with pytest.raises(ConfigError):
        run(tmp_path / "a.jsonl", methods=["nope"])
    with pytest.raises(ConfigError) as err:
        run(tmp_path / "a.jsonl", methods=["best-of-n"], settings=fast_settings(match_compute=True))
    assert err.value.field == "match_compute"
    out = tmp_path / "m.jsonl"
    run(out, items=ITEMS[:1], methods=["best-of-n", "rain"],
        settings=fast_settings(match_compute=True))
    recs = read_records(out)
    assert [r["method"] for r in recs] == ["rain", "best-of-n"]  # rain first: its cost is the budget
    assert recs[1]["details"]["token_budget"] == recs[0]["tokens_encoded"]


def test_synthetic_sweep_has_one_line_per_judge_and_greedy_once(tmp_path):
    backend = make_backend()
    judges = make_judges(backend, fast_settings(), ("synthetic", [0.5, 1.0]), PHRASES)
    out = tmp_path / "sweep.jsonl"
    run_bench(backend, ITEMS[:2], ["vanilla", "rain"], out, settings=fast_settings(),
              judges=judges, refusal_phrases=PHRASES)
    recs = read_records(out)
    assert len(recs) == 8 and {r["judge"] for r in recs} == {"synthetic@0.5", "synthetic@1"}
    assert all(r["synthetic_judge"] for r in recs)
    van = [r for r in recs if r["method"] == "vanilla" and r["item_id"] == "t:0"]
    assert van[0]["text"] == van[1]["text"] and van[0]["tokens_encoded"] == van[1]["tokens_encoded"]
    assert make_judges(backend, fast_settings(), ("self", []), PHRASES)[0].name == "self-eval:harmless"


def test_item_seed_is_fixed_by_run_seed_and_item():
    assert item_seed(0, "a") == item_seed(0, "a") != item_seed(1, "a") != item_seed(0, "b")


def test_progress_bar_shows_counts_and_eta():
    stream = io.StringIO()
    bar = ProgressBar(4, stream=stream)
    bar.update("t:0 rain")
    bar.update("t:1 rain", failed=True)
    line = bar.line()
    assert line.startswith("[bench] 2/4 [##########..........]  50%") and "ETA" in line
    assert "1 failed" in line and "t:1 rain" in stream.getvalue()
    bar.close()
    assert stream.getvalue().endswith("\n")
    silent = io.StringIO()
    ProgressBar(2, enabled=False, stream=silent).update("x")
    assert silent.getvalue() == ""
    assert (format_duration(75.3), format_duration(3725), format_duration(float("nan"))) == (
        "1:15", "1:02:05", "?")


def test_progress_clock_keeps_moving_between_answers():
    now = [100.0]
    drawn = threading.Event()

    class Stream(io.StringIO):
        def write(self, text):
            if "0:07 elapsed" in text:
                drawn.set()  # the ticker redrew after the clock moved, with no update
            return super().write(text)

    stream = Stream()
    bar = ProgressBar(3, stream=stream, clock=lambda: now[0])
    bar.working("t:0 rain ...")
    assert "0:00 elapsed" in stream.getvalue() and "t:0 rain ..." in stream.getvalue()
    bar.start_ticking(0.01)
    now[0] = 107.0
    assert drawn.wait(10), stream.getvalue()[-200:]
    bar.close()
    assert not bar._ticker.is_alive() and stream.getvalue().endswith("\n")


def test_estimate_after_the_first_prompt_by_hand():
    now = [10.0]
    bar = ProgressBar(6, stream=io.StringIO(), clock=lambda: now[0])
    now[0] = 105.0  # the first prompt took 95 s
    assert bar.estimate(1, 19) == "the first prompt took 1:35; the 19 left: about 30:05 more"
    assert bar.estimate(2, 1).startswith("the first 2 prompts took 1:35; the 1 left: about 0:48")


def test_the_run_prints_one_estimate_once_its_first_prompt_is_answered(tmp_path):
    stream = io.StringIO()
    bar = ProgressBar(0, stream=stream)
    run(tmp_path / "run.jsonl", items=ITEMS[:3], progress=bar)
    lines = [ln for ln in stream.getvalue().replace("\r", "\n").split("\n") if "left: about" in ln]
    assert len(lines) == 1 and "the 2 left" in lines[0], stream.getvalue()
    # a resumed run whose first prompt is done already measures from the next one
    stream2 = io.StringIO()
    run(tmp_path / "run2.jsonl", items=ITEMS[:1], progress=ProgressBar(0, stream=io.StringIO()))
    run(tmp_path / "run2.jsonl", items=ITEMS[:3], progress=ProgressBar(0, stream=stream2))
    lines = [ln for ln in stream2.getvalue().replace("\r", "\n").split("\n") if "left: about" in ln]
    assert len(lines) == 1 and "the 1 left" in lines[0], stream2.getvalue()


# ------------------------------------------------------------------ a policy as the judge
def policy_run(path, text, methods=("vanilla",), backend=None, phrases=PHRASES):
    from rainlm.policy import policy_from_text

    policy = policy_from_text(text, source="p.toml")
    backend = backend or make_backend()
    settings = fast_settings()
    judges = make_judges(backend, settings, ("self", []), phrases, policy=policy)
    return run_bench(backend, ITEMS[:1], list(methods), path, settings=settings,
                     judges=judges, refusal_phrases=phrases)


def test_a_changed_policy_does_not_resume_into_the_same_file(tmp_path):
    out = tmp_path / "run.jsonl"
    text = 'name = "p"\n[rules]\nbanned_terms = ["Sure"]\n'
    assert policy_run(out, text).written == 1
    assert policy_run(out, text).skipped == 1  # the same policy resumes
    for changed in (text.replace('["Sure"]', '["Sure", "here"]'),
                    text + "[fail_safe]\nthreshold = 0.5\n"):
        with pytest.raises(ConfigError, match="policy file"):  # same judge name, other rules
            policy_run(out, changed)
    assert [r["judge"] for r in read_records(out)] == ["policy:p"]


def test_a_finished_answer_without_a_required_phrase_records_minus_one(tmp_path):
    out = tmp_path / "run.jsonl"
    policy_run(out, 'name = "p"\n[rules]\nrequired_phrases = ["Acme"]\n',
               methods=("vanilla", "best-of-n"))
    recs = read_records(out)
    assert [r["method"] for r in recs] == ["vanilla", "best-of-n"]
    assert [r["judge_value"] for r in recs] == [-1.0, -1.0]  # not the 0 of a partial answer


def test_a_japanese_policy_counts_refusals_with_its_refusal_rule(tmp_path):
    from rainlm.backends.scripted import ScriptedBackend
    from rainlm.judge.rules import refusal_phrases_for

    words = ["ＡＩ", "として", "、", "それはできません。"]

    def script(answer):
        return {words[len(answer)]: 1.0} if len(answer) < len(words) else {"<eos>": 1.0}

    out = tmp_path / "run.jsonl"
    policy_run(out, 'name = "p"\nlang = "ja"\n[rules]\nbanned_terms = ["グーグル"]\n',
               backend=ScriptedBackend(words, script), phrases=refusal_phrases_for("ja"))
    rec = read_records(out)[0]
    assert rec["text"] == "ＡＩとして、それはできません。" and rec["error"] is None
    assert rec["refused"] is True  # "AIとして", as the policy's refusal rule reads it
