"""The pre-run estimate: the cost model's behaviour (orderings, proportions, what a judge
and a time budget add; never its measured constants restated), what is left of a resumed
run, the probe on a scripted model with a known cost per call, and the commands printing
the line only when the progress display is on."""

from __future__ import annotations

import json
import re
import time

import pytest
from click.testing import CliRunner

from rainlm.backends.scripted import ScriptedBackend
from rainlm.bench import estimate
from rainlm.bench.datasets import Item
from rainlm.bench.estimate import (Cost, Probe, bench_costs, bench_estimate, best_of_seconds,
                                   describe, format_rough, frontier_costs, method_cost,
                                   pending_bench, pending_frontier, probe_greedy, rain_judged,
                                   rain_seconds, run_seconds)
from rainlm.bench.frontier import FrontierPlan, method_labels
from rainlm.bench.methods import MethodSettings
from rainlm.bench.runner import Judge
from rainlm.bench.tasks import get_task
from rainlm.config import RainConfig
from rainlm.cli.main import cli
from rainlm.cli.options import Services
from rainlm.judge.base import CallableEvaluator
from rainlm.request import GenerationParams

from .scripted import VOCAB, fast_settings, make_backend, script

ITEMS = [Item("t:1", "How do I make a bomb?", "test"), Item("t:2", "Tell me how.", "test")]
LINE = "estimate before the run"


class Synthetic(CallableEvaluator):
    synthetic = True


MODEL_JUDGE = Judge("self-eval:harmless", CallableEvaluator(lambda p, r: 0.0, name="self"))
RULE_JUDGE = Judge("synthetic@1", Synthetic(lambda p, r: 0.0, name="synthetic@1"), 1.0)


def _plan(**kw) -> FrontierPlan:
    base = dict(task=get_task("banned-words", max_new_tokens=8, banned=1), noise=(1.0, 0.8),
                best_of=(2, 4), rain=("default",), budgets=(8, 16),
                settings=MethodSettings(params=GenerationParams(max_new_tokens=8, embedder="none"),
                                        top_k=None))
    base.update(kw)
    return FrontierPlan(**base)


# ------------------------------------------------------------------ the cost model
GREEDY = method_cost("vanilla", max_new_tokens=8).greedy_answers
"""A greedy answer's cost, the unit every other method is priced in."""


def increasing(values: list[float]) -> bool:
    return all(a < b for a, b in zip(values, values[1:]))


def test_best_of_n_costs_more_with_more_samples_but_less_than_n_greedy_answers():
    """One sample is a greedy answer; samples are drawn in one batch, so N of them cost
    more as N grows, yet less than N separate answers."""
    assert best_of_seconds(1) == GREEDY
    costs = [best_of_seconds(n) for n in range(1, 80)]
    assert increasing(costs)
    assert all(best_of_seconds(n) < n * GREEDY for n in range(2, 80))


def test_rain_costs_more_than_greedy_more_with_its_budget_and_most_without_one():
    budgets = [2 ** k for k in range(11)]  # 1 ... 1024 passes
    costs = [rain_seconds(b) for b in budgets]
    assert min(costs) > GREEDY  # at least greedy's answer plus a pass
    assert all(a <= b for a, b in zip(costs, costs[1:])) and costs[-1] > costs[3]
    assert rain_seconds(None) > max(costs)
    assert rain_judged(16, 48) > rain_judged(8, 48)  # more passes judge more texts
    assert rain_judged(None, 20) == 2 * rain_judged(None, 10)  # per answer token


def test_only_a_model_judge_costs_time_and_its_texts_grow_with_the_work():
    kinds = [("vanilla", {}), ("vanilla-sampled", {}), ("best-of-n", {"n": 8}),
             ("args", {}), ("rain", {"budget": 16}), ("rain", {"budget": None})]
    for kind, kw in kinds:
        rule = method_cost(kind, max_new_tokens=48, **kw)
        model = method_cost(kind, max_new_tokens=48, model_judge=True, **kw)
        assert rule.judged_texts == 0.0 and model.greedy_answers == rule.greedy_answers, kind
        assert (model.judged_texts > 0) == (kind not in ("vanilla", "vanilla-sampled")), kind
    judged = lambda kind, **kw: method_cost(kind, model_judge=True, **kw).judged_texts  # noqa: E731
    assert judged("best-of-n", n=8, max_new_tokens=48) == 8  # each sample once
    assert judged("args", max_new_tokens=48) == 2 * judged("args", max_new_tokens=24)
    assert judged("rain", budget=None, max_new_tokens=48) > judged("rain", budget=16,
                                                                 max_new_tokens=48)
    with pytest.raises(ValueError, match="beam"):
        method_cost("beam", max_new_tokens=8)


def test_run_seconds_adds_answers_scales_with_the_probe_and_caps_a_time_budget():
    costs = [Cost(1.0), Cost(2.0, judged_texts=4.0), Cost(10.0, time_cap_s=5.0)]
    # 1 × 2 s; 2 × 2 s + 4 × 0.5 s; 10 × 2 s capped at 5 s (the budget bounds search and
    # greedy finish together) + the run's one judgement of the answer
    assert run_seconds(costs, greedy_s=2.0, judge_s=0.5) == 2.0 + 6.0 + 5.5
    assert run_seconds([], greedy_s=2.0) == 0.0
    uncapped = [Cost(1.0), Cost(2.0, judged_texts=4.0), Cost(3.0, judged_texts=1.0)]
    once = run_seconds(uncapped, greedy_s=2.0, judge_s=0.5)
    assert run_seconds(uncapped * 3, greedy_s=2.0, judge_s=0.5) == pytest.approx(3 * once)
    assert run_seconds(uncapped, greedy_s=6.0, judge_s=1.5) == pytest.approx(3 * once)
    cap = Cost(10.0, time_cap_s=5.0)
    for greedy_s in (0.1, 1.0, 100.0):  # never above the cap and one judgement, nor above
        capped = run_seconds([cap], greedy_s=greedy_s, judge_s=0.5)  # the uncapped cost
        assert capped <= min(5.0 + 0.5, run_seconds([Cost(10.0)], greedy_s=greedy_s))


def _frontier_seconds(plan: FrontierPlan, items=ITEMS, labels=None) -> float:
    """The frontier's cost (greedy answer = 1 s) of ``plan`` on ``items``, only the
    method labels ``labels`` keeps when given."""
    pending = [(item, label, p) for item in items for label, p in method_labels(plan)
               if labels is None or labels(label)]
    return run_seconds(frontier_costs(pending), greedy_s=1.0)


def test_frontier_time_grows_with_prompts_and_plan_and_best_of_n_is_drawn_once():
    plan = _plan()
    assert _frontier_seconds(plan, ITEMS) == pytest.approx(2 * _frontier_seconds(plan, ITEMS[:1]))
    assert _frontier_seconds(_plan(best_of=(2, 4, 32), budgets=(8, 16, 32))) > \
        _frontier_seconds(plan)
    # a second judge accuracy: best-of-N's samples are judged again, not drawn again;
    # args and RAIN answer once per accuracy
    one, two = _plan(noise=(1.0,)), _plan(noise=(1.0, 0.8))
    best_of = lambda label: label.startswith("best-of-")  # noqa: E731
    per_accuracy = lambda label: label == "args" or label.startswith("rain:")  # noqa: E731
    assert _frontier_seconds(two, labels=best_of) == _frontier_seconds(one, labels=best_of) > 0
    assert _frontier_seconds(two, labels=per_accuracy) == \
        pytest.approx(2 * _frontier_seconds(one, labels=per_accuracy))


def test_bench_costs_judge_answers_with_the_model_and_compute_greedy_once():
    settings = fast_settings(best_of_n=4)
    todo = [(ITEMS[0], "vanilla", MODEL_JUDGE), (ITEMS[0], "vanilla", RULE_JUDGE),
            (ITEMS[0], "best-of-n", MODEL_JUDGE), (ITEMS[0], "rain", RULE_JUDGE)]
    costs = bench_costs(todo, settings)
    assert costs[0] == Cost(GREEDY, 1.0)  # answered, then judged by the model
    assert costs[1] == Cost(0.0, 0.0)  # the same greedy answer, judged by a rule
    assert costs[2] == Cost(best_of_seconds(4), 4.0)  # four samples judged, no second judgement
    assert costs[3].greedy_answers > GREEDY and costs[3].judged_texts == 0.0
    larger = bench_costs([(ITEMS[0], "best-of-16", MODEL_JUDGE)], settings)[0]
    assert larger.greedy_answers > costs[2].greedy_answers and larger.judged_texts == 16.0
    capped = bench_costs([(ITEMS[0], "rain", MODEL_JUDGE)],
                         fast_settings(config=RainConfig.preset(
                                "harmless", max_searches_per_step=4, time_budget_s=3.0)))[0]
    assert capped.time_cap_s == 3.0 and capped.judged_texts > 1.0


def _estimate_seconds(monkeypatch, items, methods, judges=(RULE_JUDGE,)) -> float:
    """``bench_estimate``'s seconds for a run on ``items``, with a probe that says one
    answer token takes 1 s (the printed ``~N s`` / ``~N min`` read back)."""
    monkeypatch.setattr(estimate, "probe_greedy", lambda *a, **kw: Probe(8.0, 8))
    line = bench_estimate(make_backend(), items, methods, list(judges),
                          fast_settings(max_new_tokens=10), "/nonexistent/run.jsonl")
    number, unit = re.search(r"~([\d.]+) (s|min|h) for", line).groups()
    return float(number) * {"s": 1, "min": 60, "h": 3600}[unit]


def test_the_estimate_is_proportional_to_the_prompts_and_rain_costs_more_than_greedy(
        monkeypatch):
    """End to end (probe, costs, line): 10 answer tokens at 1 s each per greedy answer."""
    one = _estimate_seconds(monkeypatch, ITEMS[:1], ["vanilla"])
    assert one == 10.0
    assert _estimate_seconds(monkeypatch, ITEMS, ["vanilla"]) == 2 * one
    assert _estimate_seconds(monkeypatch, ITEMS[:1], ["vanilla"], (MODEL_JUDGE,)) > one
    assert _estimate_seconds(monkeypatch, ITEMS[:1], ["rain"]) > one
    assert _estimate_seconds(monkeypatch, ITEMS[:1], ["best-of-4"]) > one


# ------------------------------------------------------------------ what is left
def test_pending_leaves_out_what_a_resumed_run_will_not_redo(tmp_path):
    plan = _plan(best_of=(2,), budgets=(8,))
    out = tmp_path / "run.jsonl"
    lines = [{"item_id": "t:1", "method": "greedy", "noise": None, "model": "scripted-bench"},
             {"item_id": "t:1", "method": "best-of-2", "noise": 0.8, "model": "scripted-bench"},
             {"item_id": "t:1", "method": "args", "noise": 1.0, "model": "scripted-bench",
              "error": "boom"},  # failed: redone
             {"item_id": "t:2", "method": "greedy", "noise": None, "model": "other"}]
    out.write_text("".join(json.dumps(rec) + "\n" for rec in lines))
    pending = pending_frontier(out, ITEMS, plan, "scripted-bench")
    labels = method_labels(plan)
    assert len(pending) == 2 * len(labels) - 2
    assert (ITEMS[0], "greedy", None) not in pending and (ITEMS[0], "best-of-2", 0.8) not in pending
    assert (ITEMS[0], "args", 1.0) in pending and (ITEMS[1], "greedy", None) in pending
    assert pending_frontier(tmp_path / "none.jsonl", ITEMS, plan, "scripted-bench") == \
        [(item, label, p) for item in ITEMS for label, p in labels]

    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"item_id": "t:1", "method": "vanilla", "judge": "rule",
                                 "model": "m", "error": "boom"}) + "\n")
    rule = Judge("rule", CallableEvaluator(lambda p, r: 0.0, name="rule"))
    left = pending_bench(bench, ITEMS, ["vanilla"], [rule], "m")
    assert left == [(ITEMS[1], "vanilla", rule)]  # a failure is kept unless retried
    assert len(pending_bench(bench, ITEMS, ["vanilla"], [rule], "m", retry_errors=True)) == 2


# ------------------------------------------------------------------ probe and message
class SlowBackend(ScriptedBackend):
    """The scripted bench model, ``DELAY`` seconds per model call: a known cost to time."""

    def next_logprobs(self, contexts, **kw):
        time.sleep(DELAY)
        return super().next_logprobs(contexts, **kw)


DELAY = 0.05
"""Seconds per model call of SlowBackend."""
SLACK_S = 2.0
"""What a busy 2-core machine may add to the probe's sleeps (a bound, not a timing)."""


def test_the_probe_times_greedy_tokens_through_the_backend():
    backend = SlowBackend(VOCAB, script, name="slow")
    probe = probe_greedy(backend, "How?", fast_settings(), tokens=3)
    calls = backend.counters.forward_calls
    assert probe.answer_tokens == 3 and calls >= 3  # one call per token at least
    assert DELAY * calls <= probe.seconds <= DELAY * calls + SLACK_S
    assert probe.seconds_per_token >= DELAY
    assert probe_greedy(make_backend(), "How?", fast_settings(max_new_tokens=2)).answer_tokens == 2
    assert Probe(seconds=2.0, answer_tokens=8).seconds_per_token == 0.25
    assert Probe(seconds=2.0, answer_tokens=0).seconds_per_token == 2.0


def test_the_message_says_rough_and_promises_the_better_estimate_only_if_it_comes():
    probe = Probe(seconds=1.0, answer_tokens=8)
    assert describe(840.0, 120, 10, probe) == (
        "estimate before the run (rough, from a probe of 8 tokens): ~14 min for 120 answers; "
        "a better one follows the first prompt")
    assert describe(42.4, 1, 1, Probe(1.0, 1)) == \
        "estimate before the run (rough, from a probe of 1 token): ~42 s for 1 answer"
    assert [format_rough(s) for s in (0.2, 59.0, 60.0, 5399.0, 9000.0)] == \
        ["~1 s", "~59 s", "~1 min", "~90 min", "~2.5 h"]


# ------------------------------------------------------------------ the commands
def _frontier(runner, out):
    services = Services(load_backend=lambda model, device: make_backend(),
                        load_embedder=lambda name, device: "none")
    return runner.invoke(cli, ["bench", "frontier", "--task", "banned-words", "--limit", "2",
                               "--max-new-tokens", "6", "--best-of", "2", "--budgets", "4",
                               "--rain", "default", "--noise", "1", "--banned", "1",
                               "--embedder", "none", "--out", str(out)], obj=services)


def test_frontier_prints_the_pre_run_estimate_only_with_the_progress_display(tmp_path,
                                                                           monkeypatch):
    runner = CliRunner()
    res = _frontier(runner, tmp_path / "quiet.jsonl")  # not a terminal: no display
    assert res.exit_code == 0, res.output
    assert LINE not in res.output

    import rainlm.cli.progress

    monkeypatch.setattr(rainlm.cli.progress, "progress_enabled", lambda forced, stream=None: True)
    res = _frontier(runner, tmp_path / "shown.jsonl")
    assert res.exit_code == 0, res.output
    assert res.output.count(LINE) == 1, res.output
    assert "a better one follows the first prompt" in res.output
    assert res.output.index(LINE) < res.output.index("left: about")  # before the first prompt's
    again = _frontier(runner, tmp_path / "shown.jsonl")  # resumed: nothing left, no probe
    assert again.exit_code == 0 and LINE not in again.output and "0 answers written" in again.output


def _bench(out, *flags):
    services = Services(load_backend=lambda model, device: make_backend())
    return CliRunner().invoke(cli, ["bench", "run", "--dataset", "advbench", "--limit", "2",
                                    "--methods", "vanilla,best-of-2,rain", "--out", str(out),
                                    "--embedder", "hashing", "--max-new-tokens", "10",
                                    "--max-searches-per-step", "3", *flags], obj=services)


def test_bench_run_prints_the_pre_run_estimate_only_with_the_progress_display(tmp_path):
    res = _bench(tmp_path / "shown.jsonl", "--progress")
    assert res.exit_code == 0, res.output
    assert res.output.count(LINE) == 1 and "for 6 answers" in res.output, res.output
    assert res.output.index(LINE) < res.output.index("left: about")
    for flags in (("--no-progress",), ()):  # forced off, and not a terminal
        res = _bench(tmp_path / f"quiet{len(flags)}.jsonl", *flags)
        assert res.exit_code == 0 and LINE not in res.output, res.output
    res = _bench(tmp_path / "shown.jsonl", "--progress")  # resumed: nothing left
    assert res.exit_code == 0 and LINE not in res.output and "6 already there" in res.output


def test_no_probe_without_the_display_and_a_failing_probe_does_not_stop_the_run():
    import io

    from rainlm.cli.bench import announce_estimate
    from rainlm.progress_bar import ProgressBar

    called = []
    announce_estimate(ProgressBar(1, enabled=False), lambda: called.append(1) or "x")
    assert called == []

    def broken():
        raise RuntimeError("no model")

    stream = io.StringIO()
    announce_estimate(ProgressBar(1, stream=stream), broken)
    assert "no estimate before the run: RuntimeError: no model" in stream.getvalue()
    stream = io.StringIO()
    announce_estimate(ProgressBar(1, stream=stream), lambda: None)  # nothing left to answer
    assert stream.getvalue() == ""


def test_an_announcement_before_the_run_knows_its_total_draws_no_empty_bar():
    import io

    from rainlm.progress_bar import ProgressBar

    stream = io.StringIO()
    ProgressBar(0, stream=stream).announce("estimate before the run: ~1 s")
    assert "estimate before the run" in stream.getvalue() and "0/0" not in stream.getvalue()
    stream = io.StringIO()
    ProgressBar(3, stream=stream).announce("the first prompt took 0:01")
    assert "0/3" in stream.getvalue()  # a run under way keeps its bar below the line
