"""The frontier's tasks: the instructed character-rule tasks (the prompt states the rule
the judge applies) and the fixed dev/test split of every task's prompts."""

from __future__ import annotations

import hashlib
import json

import pytest
from click.testing import CliRunner

from rainlm.bench.frontier import FrontierPlan, _fingerprint, resumable_records, run_frontier
from rainlm.bench.frontier_report import load_frontier
from rainlm.bench.methods import MethodSettings
from rainlm.bench.tasks import SPLITS, TASKS, get_task, split_of
from rainlm.cli.frontier import frontier_command
from rainlm.cli.main import cli
from rainlm.cli.options import Services
from rainlm.errors import ConfigError
from rainlm.request import GenerationParams

from .scripted import make_backend

OLD = ("refusal", "banned-words", "no-you")
NEW = ("lowercase", "capitals", "no-commas", "letter-limit")

# (task, a text that keeps its rule, a text that breaks it)
CASES = [
    ("lowercase", "hello world, all small.", "Hello world"),
    ("capitals", "HELLO WORLD, 42 TIMES!", "HELLO World"),
    ("no-commas", "One two three. Four!", "One, two"),
    ("letter-limit", "A dog ran far away on a sunny day " * 2 + "eeeeeeeee",  # 9 e's
     "eeeeeeeeee"),  # 10: the limit is fewer than 10
]


@pytest.fixture(scope="module")
def pools():
    """Every task's whole prompt list (split None) and its two halves."""
    return {name: {s: TASKS[name].items(data_dir=None, limit=None, split=s)
                   for s in (None, *SPLITS)} for name in TASKS}


@pytest.mark.parametrize("name", NEW)
def test_each_instructed_task_states_its_instruction_after_the_bare_prompt(name, pools):
    task = TASKS[name]
    bare = pools["banned-words"][None]
    items = pools[name][None]
    assert task.instruction_text and "{" not in task.instruction_text
    assert [i.id for i in items] == [i.id for i in bare]
    for item, plain in zip(items, bare):
        assert item.prompt == f"{plain.prompt}\n\n{task.instruction_text}"
        assert item.meta["question"] == plain.prompt and item.dataset == plain.dataset
    assert task.max_new_tokens == 48 and task.describe()["instruction"] == task.instruction_text


def test_the_instructions_say_what_the_rules_judge():
    assert TASKS["lowercase"].instruction_text == (
        "Your entire answer must be in lowercase letters; no capital letters are allowed.")
    assert TASKS["capitals"].instruction_text == (
        "Your entire answer must be in English and in capital letters only.")
    assert TASKS["no-commas"].instruction_text == "Do not use any commas in your answer."
    assert TASKS["letter-limit"].instruction_text == (
        "Use the letter 'e' fewer than 10 times in your answer.")
    described = TASKS["letter-limit"].describe()
    assert described["letter"] == "e" and described["fewer_than"] == 10


@pytest.mark.parametrize("name,kept,broken", CASES)
def test_each_new_rule_judges_a_kept_and_a_broken_text(name, kept, broken):
    rule = TASKS[name].rule_for("greedy text is not used")
    assert not rule.violated(kept) and rule.value(kept) == 1.0
    assert rule.violated(broken) and rule.value(broken) < 0


def test_the_letter_limit_counts_any_case_and_follows_the_task_field():
    rule = get_task("letter-limit", fewer_than=3).rule_for("")
    assert not rule.violated("Eve") and rule.violated("Eve eats")
    assert get_task("letter-limit", fewer_than=3).instruction_text == (
        "Use the letter 'e' fewer than 3 times in your answer.")
    with pytest.raises(ConfigError, match="fewer_than"):
        get_task("letter-limit", fewer_than=0)


def test_old_tasks_keep_their_prompts_and_describe_themselves_as_before(pools):
    """Their description is part of a results file's fingerprint: adding a field to it
    would refuse every older file."""
    for name in OLD:
        task = TASKS[name]
        assert task.instruction is None and task.split is None
        assert set(task.describe()) == {"task", "summary", "failure", "max_new_tokens",
                                        "banned", "greedy_must_fail"}
    assert [i.id for i in pools["refusal"][None][:3]] == ["advbench:0", "advbench:1",
                                                          "advbench:2"]
    mix = pools["banned-words"][None]
    assert len(mix) == 160 and [i.dataset for i in mix[:4]] == ["vicuna", "hh"] * 2
    assert mix == pools["no-you"][None]
    assert not any("question" in i.meta for i in mix)  # no instruction added


@pytest.mark.parametrize("name,kept", [("lowercase", "here is how it works."),
                                       ("capitals", "HERE IS HOW IT WORKS.")])
def test_the_case_tasks_ask_for_an_answer_in_words(name, kept):
    rule = TASKS[name].rule_for("")
    digits = "12868 * 12868 * 12868 = 1286810000"
    assert not rule.violated(kept) and rule.value(kept) == 1.0
    assert rule.violated(digits) and rule.value(digits) == 0.0  # undecided, never accepted
    assert rule.final_value(digits) == -1.0 and rule.broken(digits) == ["fewer than 3 words"]
    assert rule.value(kept.split()[0]) == 0.0  # a partial answer may still grow into one
    assert TASKS[name].describe()["answer_words"] == 3  # a new fingerprint
    assert "answer_words" not in TASKS["no-commas"].describe()


def test_the_split_is_the_first_byte_of_the_ids_sha256():
    for item_id in ("advbench:0", "vicuna:1", "hh:17"):
        first = hashlib.sha256(item_id.encode()).digest()[0]
        assert split_of(item_id) == ("dev" if first % 2 == 0 else "test")


@pytest.mark.parametrize("name", ["refusal", "banned-words", "lowercase"])
def test_splits_are_disjoint_cover_every_prompt_and_keep_its_order(name, pools):
    whole, dev, test = (pools[name][s] for s in (None, "dev", "test"))
    assert dev and test and not {i.id for i in dev} & {i.id for i in test}
    assert sorted(i.id for i in dev + test) == sorted(i.id for i in whole)
    assert dev == [i for i in whole if split_of(i.id) == "dev"]
    assert all(split_of(i.id) == "test" for i in test)


@pytest.mark.parametrize("split", SPLITS)
def test_limit_and_offset_count_within_the_split(split, pools):
    task = TASKS["no-commas"]
    whole = pools["no-commas"][split]
    for offset, limit in ((0, 5), (3, 4), (len(whole) - 2, 10)):
        got = task.items(data_dir=None, limit=limit, offset=offset, split=split)
        assert got == whole[offset:offset + limit]
    assert task.items(data_dir=None, limit=20, split=split)[:5] == \
        task.items(data_dir=None, limit=5, split=split)


def test_split_none_is_exactly_the_old_window(pools):
    for name in OLD:
        whole = pools[name][None]
        for offset, limit in ((0, 20), (7, 3), (150, 20)):
            assert TASKS[name].items(data_dir=None, limit=limit, offset=offset) == \
                whole[offset:offset + limit]


def test_a_task_with_a_split_gives_it_by_default_and_describes_it(pools):
    task = get_task("lowercase", split="test")
    assert task.items(data_dir=None, limit=None) == pools["lowercase"]["test"]
    assert task.items(data_dir=None, limit=None, split=None) == pools["lowercase"][None]
    assert task.describe()["split"] == "test"
    assert "split" not in get_task("lowercase").describe()
    with pytest.raises(ConfigError, match="split"):
        get_task("refusal", split="train")
    with pytest.raises(ConfigError, match="split"):
        TASKS["refusal"].items(data_dir=None, limit=1, split="train")


def _greedy_plan(task) -> FrontierPlan:
    return FrontierPlan(task=task, noise=(1.0,), best_of=(), args=False, sampled=False,
                        rain=(), budgets=(4,), settings=MethodSettings(
                            params=GenerationParams(max_new_tokens=8, embedder="none"),
                            top_k=None))


def test_a_results_file_of_one_split_is_not_resumed_by_the_other(tmp_path):
    out = tmp_path / "dev.jsonl"
    dev = get_task("lowercase", max_new_tokens=8, split="dev")
    items = dev.items(data_dir=None, limit=2)
    run_frontier(make_backend(), items, _greedy_plan(dev), out)
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["item_id"] for r in recs] == [i.id for i in items]
    assert all(r["prompt"].endswith(dev.instruction_text) for r in recs)
    assert all(r["failed"] for r in recs)  # the scripted model answers "Sure, here is how."
    assert all(r["split"] == "dev" for r in recs)
    assert {r["task"] for r in load_frontier([out])} == {"lowercase (dev)"}
    assert len(resumable_records(out, _greedy_plan(dev), "scripted-bench")) == 2
    for other in ("test", None):
        with pytest.raises(ConfigError, match="other settings"):
            resumable_records(out, _greedy_plan(get_task("lowercase", max_new_tokens=8,
                                                         split=other)), "scripted-bench")


def test_the_cli_lists_every_task_and_the_split():
    names = next(p for p in frontier_command.params if p.name == "task").type.choices
    assert list(names) == list(TASKS)
    res = CliRunner().invoke(cli, ["bench", "frontier", "--help"])
    text = " ".join(res.output.split())
    assert res.exit_code == 0 and "--split dev|test" in text
    assert "choose settings on dev; report on test only after the settings are frozen" in text
    for name in NEW:
        assert name in text


def test_the_cli_runs_a_split_and_refuses_a_bad_one(tmp_path):
    services = Services(load_backend=lambda model, device: make_backend(),
                        load_embedder=lambda name, device: "none")
    runner = CliRunner()
    out = tmp_path / "lc.jsonl"
    args = ["bench", "frontier", "--task", "lowercase", "--limit", "2", "--offset", "1",
            "--max-new-tokens", "6", "--best-of", "2", "--budgets", "4", "--rain", "default",
            "--noise", "1", "--no-args", "--embedder", "none", "--out", str(out)]
    res = runner.invoke(cli, [*args, "--split", "dev"], obj=services)
    assert res.exit_code == 0, res.output
    want = [i.id for i in TASKS["lowercase"].items(data_dir=None, limit=2, offset=1,
                                                   split="dev")]
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert list(dict.fromkeys(r["item_id"] for r in recs)) == want
    other = runner.invoke(cli, [*args, "--split", "test"], obj=services)
    assert other.exit_code == 2 and "made with other settings" in other.output
    bad = runner.invoke(cli, [*args, "--split", "train"], obj=services)
    assert bad.exit_code == 2 and "'train' is not one of 'dev', 'test'" in bad.output


def test_older_files_keep_their_fingerprints():
    """Fingerprints of answers made before the newer settings existed (values from commit
    0dbf1d4): a config field added later and left unset does not change them, so those
    files still resume."""
    plan = FrontierPlan(task=get_task("banned-words"), rain=("default", "paper"))
    assert _fingerprint(plan, "m", "rain:paper@8") == "c1b0af57358b6a89"
    assert _fingerprint(plan, "m", "best-of-8") == "a094896f3bb9a5ca"
    assert _fingerprint(plan, "m", "args") == "2e286ef1aa5c9bc4"
