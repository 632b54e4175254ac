"""Rubric files: built-ins load, user files load, malformed files fail with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from rainlm.errors import JudgeError
from rainlm.judge.rubric import Rubric, list_rubrics, load_rubric

BUILTINS = ("adversarial", "harmless", "harmless_ja", "helpful", "truthful")

VALID = '''
name = "polite"
description = "Is the response polite?"
instruction = "Decide whether the assistant is polite."
good_option = "Assistant's response is polite."
bad_option = "Assistant's response is rude."

[[examples]]
user = "Hi"
assistant = "Hello! How can I help?"
verdict = "good"
'''


def write(tmp_path: Path, text: str, name: str = "r.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_list_rubrics_has_the_builtins():
    assert set(BUILTINS) <= set(list_rubrics())
    assert list_rubrics() == sorted(list_rubrics())


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_rubrics_are_well_formed(name):
    r = load_rubric(name)
    assert r.name == name and r.source == f"builtin:{name}"
    assert r.labels == ("A", "B")
    assert 3 <= len(r.examples) <= 8
    assert {e.verdict for e in r.examples} == {"good", "bad"}
    assert r.good_option != r.bad_option and r.instruction and r.description


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_examples_balance_option_orders_and_letters(name):
    """Both option orders and both right letters appear about equally, as in the authors'
    prompt (HH/f2.txt), so the few-shot examples teach no letter or position."""
    from rainlm.judge.self_eval import GOOD_FIRST, example_order

    r = load_rubric(name)
    orders = [example_order(i) for i in range(len(r.examples))]
    letters = ["A" if (e.verdict == "good") == (o == GOOD_FIRST) else "B"
               for e, o in zip(r.examples, orders)]
    assert abs(orders.count(GOOD_FIRST) * 2 - len(orders)) <= 1
    assert abs(letters.count("A") * 2 - len(letters)) <= 1, letters


@pytest.mark.parametrize("name", ["harmless", "adversarial"])
def test_harm_rubrics_judge_partial_answers(name):
    """Most examples stop mid-answer, like the texts the search asks about."""
    r = load_rubric(name)
    partial = [e for e in r.examples if not e.assistant.rstrip().endswith((".", "!", "?"))]
    assert len(partial) >= len(r.examples) // 2


def test_default_orders():
    assert load_rubric("truthful").orders == "single"
    for name in ("harmless", "adversarial", "helpful"):
        assert load_rubric(name).orders == "both"
    t = load_rubric("truthful")
    assert "truthful" in t.good_option and "dishonest" in t.bad_option


def test_harmless_counts_refusals_as_harmless():
    r = load_rubric("harmless")
    assert r.good_option == "Assistant's response is harmless."
    assert r.bad_option == "Assistant's response is harmful."
    assert "refus" in r.instruction.lower()


def test_user_toml_by_path_and_defaults(tmp_path):
    path = write(tmp_path, VALID)
    for arg in (path, str(path)):
        r = load_rubric(arg)
        assert isinstance(r, Rubric)
        assert r.name == "polite" and r.source == str(path)
        assert r.labels == ("A", "B") and r.orders == "both"
        assert r.examples[0].assistant == "Hello! How can I help?"
    assert load_rubric(r) is r


def test_unknown_name_lists_builtins():
    with pytest.raises(JudgeError, match="harmless"):
        load_rubric("no-such-rubric")


@pytest.mark.parametrize("edit, field", [
    (lambda t: t.replace('instruction = "Decide whether the assistant is polite."\n', ""),
     "instruction"),
    (lambda t: t.replace('good_option = "Assistant\'s response is polite."',
                         'good_option = ""'), "good_option"),
    (lambda t: t.replace("[[examples]]", 'orders = "twice"\n[[examples]]'), "orders"),
    (lambda t: t.replace("[[examples]]", 'labels = ["A", "B", "C"]\n[[examples]]'), "labels"),
    (lambda t: t.replace("[[examples]]", 'labels = ["A", "A"]\n[[examples]]'), "labels"),
    (lambda t: t.replace("[[examples]]", 'labels = ["A A", "B"]\n[[examples]]'), "labels"),
    (lambda t: t.replace('verdict = "good"', 'verdict = "yes"'), "examples[0].verdict"),
    (lambda t: t.replace('user = "Hi"\n', ""), "examples[0].user"),
    (lambda t: t.replace('user = "Hi"', 'user = "Hi"\nscore = 1'), "examples[0].score"),
    (lambda t: "colour = 'blue'\n" + t, "colour"),
    (lambda t: t.replace("Assistant's response is rude.", "Assistant's response is polite."),
     "bad_option"),
])
def test_validation_errors_name_file_and_field(tmp_path, edit, field):
    path = write(tmp_path, edit(VALID))
    with pytest.raises(JudgeError) as info:
        load_rubric(path)
    message = str(info.value)
    assert str(path) in message
    assert repr(field) in message


def test_invalid_toml(tmp_path):
    path = write(tmp_path, "name = \n")
    with pytest.raises(JudgeError, match="not valid TOML"):
        load_rubric(path)


def test_rubric_is_frozen():
    r = load_rubric("harmless")
    with pytest.raises(AttributeError):
        r.name = "x"  # type: ignore[misc]
