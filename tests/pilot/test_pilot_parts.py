"""The pilot's parts without a model: the budget search, the numbers, the verdict, the
record file and the prompt draw."""

from __future__ import annotations

import json
import math

import pytest

from rainlm.bench.datasets import Item
from rainlm.errors import ConfigError
from rainlm.pilot.budget import FIRST_SHARE, find_budget, p95
from rainlm.pilot.log import PilotLog
from rainlm.pilot.plan import PilotPlan
from rainlm.pilot.prompts import choose_prompts
from rainlm.pilot.recommend import COST_LIMIT, recommend
from rainlm.pilot.summary import paired_difference, quantile_interval, summarize_methods
from rainlm.policy import policy_from_text

POLICY = """
name = "test"
[rules]
banned_terms = ["Google"]
[fail_safe]
action = "flag"
"""


def items(n: int) -> list[Item]:
    return [Item(f"t:{i}", f"prompt {i}", "t") for i in range(n)]


# ---------------------------------------------------------------- budget
def test_the_budget_shrinks_until_the_p95_fits_and_is_read_back(tmp_path):
    plan = PilotPlan(p95_s=10.0, tune_tries=3)
    asked = []

    def answer(item, method, budget):
        asked.append(budget)
        return {"latency_s": budget * 1.5, "item_id": item.id}  # 50% overshoot

    log = PilotLog(tmp_path, "fp", {})
    found = find_budget(answer, items(3), plan, log)
    first = 10.0 * FIRST_SHARE
    assert [t["time_budget_s"] for t in found["tries"]][0] == first
    assert found["met"] and found["time_budget_s"] * 1.5 <= 10.0
    assert len(found["tries"]) == 2  # 8 s -> 12 s p95, then 8 * 10/12 * 0.95 -> 9.5 s
    again = find_budget(lambda *a: pytest.fail("answered again"), items(3), plan,
                        PilotLog(tmp_path, "fp", {}))
    assert again["time_budget_s"] == found["time_budget_s"]


def test_an_unreachable_limit_is_reported_not_met(tmp_path):
    plan = PilotPlan(p95_s=1.0, tune_tries=2)
    found = find_budget(lambda item, m, b: {"latency_s": 5.0}, items(2), plan,
                        PilotLog(tmp_path, "fp", {}))
    assert not found["met"] and len(found["tries"]) == 2
    assert all(t["p95_s"] == 5.0 for t in found["tries"])


def test_an_interrupted_budget_search_keeps_the_answers_it_had(tmp_path):
    plan = PilotPlan(p95_s=10.0)
    calls = []

    def answer(item, method, budget):
        calls.append(item.id)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return {"latency_s": 1.0}

    with pytest.raises(KeyboardInterrupt):
        find_budget(answer, items(3), plan, PilotLog(tmp_path, "fp", {}))
    calls.clear()
    find_budget(lambda item, m, b: calls.append(item.id) or {"latency_s": 1.0}, items(3), plan,
                PilotLog(tmp_path, "fp", {}))
    assert calls == ["t:1", "t:2"]  # t:0 was on record


def test_p95_is_numpys_linear_percentile():
    assert p95([1.0] * 19 + [21.0]) == pytest.approx(2.0)
    assert math.isnan(p95([]))


# ---------------------------------------------------------------- log
def test_a_log_of_other_settings_is_refused_and_a_cut_line_is_dropped(tmp_path):
    log = PilotLog(tmp_path, "one", {"a": 1})
    log.append({"kind": "answer", "item_id": "x", "method": "greedy"})
    with open(log.path, "a", encoding="utf-8") as fh:
        fh.write('{"kind": "answer", "item_')  # killed mid-write
    again = PilotLog(tmp_path, "one", {"a": 1})
    assert again.resumed and again.find("answer", item_id="x") is not None
    assert log.path.read_text().endswith("}\n")
    with pytest.raises(ConfigError, match="other settings"):
        PilotLog(tmp_path, "two", {"a": 2})


def test_an_error_record_does_not_count_as_done(tmp_path):
    log = PilotLog(tmp_path, "fp", {})
    log.append({"kind": "answer", "item_id": "x", "method": "rain", "error": "boom"})
    assert log.find("answer", item_id="x", method="rain") is None


# ---------------------------------------------------------------- prompts
def test_tuning_prompts_come_from_outside_the_sample_when_there_are_enough():
    plan = PilotPlan(p95_s=5, sample=4, tune_prompts=3)
    many = choose_prompts(items(10), plan)
    assert many.tuned_outside and not {i.id for i in many.tune} & {i.id for i in many.sample}
    assert len(many.sample) == 4 and many.available == 10
    few = choose_prompts(items(5), plan)
    assert not few.tuned_outside and few.tune == few.sample[:3]
    assert choose_prompts(items(10), plan).sample == many.sample  # seeded


# ---------------------------------------------------------------- numbers
def answer(item: str, method: str, *, kept: bool, nll: float | None, latency: float = 1.0,
           tokens: int = 100, acts: bool = False) -> dict:
    return {"item_id": item, "method": method, "kept": kept, "nll": nll, "latency_s": latency,
            "tokens_encoded": tokens, "judged_texts": 0 if method == "greedy" else 3,
            "fail_safe_acts": acts, "text": "x", "prompt": "p"}


def records(greedy_kept, rain_kept, rain_nll=1.0, bon_kept=None, rain_tokens=300):
    out = []
    for i, (g, r) in enumerate(zip(greedy_kept, rain_kept)):
        out.append(answer(f"i{i}", "greedy", kept=g, nll=1.0))
        out.append(answer(f"i{i}", "rain", kept=r, nll=rain_nll, tokens=rain_tokens,
                          acts=not r))
        b = bon_kept[i] if bon_kept is not None else g
        out.append(answer(f"i{i}", "best-of-n", kept=b, nll=1.0, tokens=200))
    return out


def test_method_summaries_count_kept_fluent_and_cost():
    plan = PilotPlan(p95_s=5, fluency_margin=0.5)
    recs = records([False] * 5 + [True] * 5, [True] * 10, rain_nll=1.2)
    rows, fluency, diff = summarize_methods(recs, plan, "flag")
    by = {r["method"]: r for r in rows}
    assert fluency["fluent_below"] == pytest.approx(1.5)
    assert by["greedy"]["violation_rate"]["value"] == 0.5
    assert by["rain"]["kept_and_fluent_rate"]["value"] == 1.0
    assert by["rain"]["token_ratio"]["value"] == pytest.approx(3.0)
    assert by["rain"]["review_per_1000"]["value"] == 0.0
    assert by["greedy"]["review_per_1000"]["value"] == 0.0
    assert diff["rain_minus_greedy"]["value"] == pytest.approx(0.5)
    noisy = records([False] * 10, [True] * 10, rain_nll=1.6)  # kept, but past the margin
    rows, _, diff = summarize_methods(noisy, plan, "flag")
    assert {r["method"]: r for r in rows}["rain"]["kept_and_fluent_rate"]["value"] == 0.0
    assert diff["rain_minus_greedy"]["value"] == 0.0


def test_an_empty_answer_is_not_fluent_and_errors_are_counted_apart():
    plan = PilotPlan(p95_s=5)
    recs = records([True, True], [True, True])
    recs[1]["nll"] = None
    recs.append({"item_id": "i9", "method": "rain", "error": "boom"})
    rows, _, _ = summarize_methods(recs, plan, "flag")
    rain = {r["method"]: r for r in rows}["rain"]
    assert rain["fluent_rate"]["value"] == 0.5 and rain["errors"] == 1 and rain["n"] == 2


def test_intervals_hold_their_estimate():
    iv = quantile_interval([float(i) for i in range(1, 101)], 95)
    assert iv.lo <= iv.value <= iv.hi and iv.n == 100
    d = paired_difference([True] * 20, [False] * 20)
    assert d.value == d.lo == d.hi == 1.0


# ---------------------------------------------------------------- verdict
def verdict(recs, *, p95_limit=5.0, lang="en", budget=None):
    policy = policy_from_text(POLICY, source="policy.toml")
    rows, _, diff = summarize_methods(recs, PilotPlan(p95_s=p95_limit), "flag")
    return recommend(rows, diff, budget or {"time_budget_s": 4.0, "met": True},
                     {"comparable": False}, p95_limit=p95_limit, policy=policy,
                     max_new_tokens=48, lang=lang)


def test_nothing_to_fix_is_a_no_go():
    out = verdict(records([True] * 10, [True] * 10))
    assert out["verdict"] == "no-go" and out["codes"][0] == "nothing"


def test_a_clear_gain_within_the_limit_and_cost_is_a_go():
    out = verdict(records([False] * 12, [True] * 12, bon_kept=[False] * 12))
    assert out["verdict"] == "go", out
    assert out["next_steps"][0].endswith(
        "rain serve --policy-file policy.toml --default-time-budget 4 "
        "--default-max-new-tokens 48 --store audit.sqlite3")


def test_the_serve_command_quotes_the_path_and_raises_the_ceiling_when_needed():
    from rainlm.pilot.recommend import serve_command

    assert serve_command("my policy.toml", 160.0, 64) == (
        "rain serve --policy-file 'my policy.toml' --default-time-budget 160 "
        "--max-time-budget 160 --default-max-new-tokens 64 --store audit.sqlite3")
    assert "--default-time-budget 0.04 " in serve_command("p.toml", 0.04, 8)


def test_four_wins_and_no_loss_in_thirty_is_not_yet_a_gain():
    # the percentile bootstrap's interval excludes 0 here; the exact sign test (p = 1/16)
    # does not reach 95%: the verdict rests on the test
    greedy = [False] * 4 + [True] * 13 + [False] * 13
    rain = [True] * 4 + [True] * 13 + [False] * 13
    out = verdict(records(greedy, rain, bon_kept=[False] * 30))
    assert out["verdict"] == "no-go" and out["codes"][0] == "not_better"
    assert "p = 0.062" in out["reasons"][0]


def test_a_gain_that_is_too_slow_or_costly_goes_with_distillation():
    slow = records([False] * 12, [True] * 12, bon_kept=[False] * 12)
    for r in slow:
        if r["method"] == "rain":
            r["latency_s"] = 9.0
    assert verdict(slow)["verdict"] == "go-with-distillation"
    costly = records([False] * 12, [True] * 12, bon_kept=[False] * 12,
                     rain_tokens=int(100 * COST_LIMIT) + 100)
    out = verdict(costly)
    assert out["verdict"] == "go-with-distillation" and "costly" in out["codes"]
    assert "rain distill" in out["next_steps"][0]


def test_noise_that_keeps_the_rule_is_no_gain():
    out = verdict(records([False] * 12, [True] * 12, rain_nll=9.0))
    assert out["verdict"] == "no-go" and out["codes"][:2] == ["not_better", "worse_fluency"]


def test_best_of_n_as_good_as_rain_is_a_no_go():
    out = verdict(records([False] * 12, [True] * 12, bon_kept=[True] * 12))
    assert out["verdict"] == "no-go" and "bon_as_good" in out["codes"]


def test_the_verdict_reads_in_japanese():
    out = verdict(records([False] * 12, [True] * 12, bon_kept=[False] * 12), lang="ja")
    assert out["headline"].startswith("導入を推奨")
    assert all(any("\u3040" <= ch <= "\u30ff" for ch in r) for r in out["reasons"])
    json.dumps(out, ensure_ascii=False)


def test_a_budget_that_ran_out_and_a_better_best_of_n_are_said():
    recs = records([False] * 12, [False] * 12, bon_kept=[True] * 12)
    for r in recs:
        if r["method"] == "rain":
            r.update(budget_limited=True, unsearched=r["item_id"] in ("i0", "i1"),
                     details={"searches": 2})
    out = verdict(recs)
    assert out["verdict"] == "no-go"
    assert {"not_better", "bon_better", "budget_ran_out"} <= set(out["codes"])
    ran_out = next(t for t, c in zip(out["reasons"], out["codes"]) if c == "budget_ran_out")
    assert "search passes per answer on this machine was 2" in ran_out and "12 of 12" in ran_out
    assert "2 of those answers were finished greedily" in ran_out
    assert "best-of-N" in out["next_steps"][0]


def test_a_judge_that_calls_everything_fine_is_not_trusted_however_often_it_agrees():
    from rainlm.pilot.reliability import reliability

    judged = ([{"value": 0.9, "kept": True}] * 40) + ([{"value": 0.9, "kept": False}] * 10)
    trust = reliability(judged, has_rules=True)
    assert trust["agreement"]["value"] == 0.8 and trust["balanced_accuracy"] == 0.5
    recs = records([True] * 10, [True] * 10)
    policy = policy_from_text(POLICY, source="policy.toml")
    rows, _, diff = summarize_methods(recs, PilotPlan(p95_s=5), "flag")
    out = recommend(rows, diff, {"time_budget_s": 4.0, "met": True}, trust, p95_limit=5,
                    policy=policy, max_new_tokens=48)
    assert "judge_chance" in out["codes"]
    good = [{"value": 0.9, "kept": True}] * 40 + [{"value": -0.9, "kept": False}] * 10
    out = recommend(rows, diff, {"time_budget_s": 4.0, "met": True},
                    reliability(good, has_rules=True), p95_limit=5, policy=policy,
                    max_new_tokens=48)
    assert "judge_ok" in out["codes"]
