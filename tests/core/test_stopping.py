"""The one finish rule: every decoder (search, simulation, greedy, sampling, ARGS) asks
``finish_reason``; here its order and its lazy text."""

from __future__ import annotations

import pytest

from rainlm.core.stopping import finish_reason, is_terminal

EOS = 0
WORDS = {1: "Hi", 2: "!", 3: "\nUser:", EOS: ""}


def detokenize(ids):
    return "".join(WORDS[i] for i in ids)


def reason(ids, limit=5, stops=("\nUser:",)):
    return finish_reason(ids, eos_ids={EOS}, max_new_tokens=limit, stop_strings=stops,
                         detokenize=detokenize)


@pytest.mark.parametrize("ids,expected", [
    ([], None), ([1, 2], None),
    ([1, EOS], "eos"), ([EOS, 1], "eos"),  # anywhere: a committed token set may hold it
    ([1, 2, 1, 2, 1], "length"), ([1, 2, 1, 2, EOS], "eos"),  # EOS wins over the limit
    ([1, 3], "stop_string"), ([1, 3, 1, 2, 1], "length"),
])
def test_reasons_in_order(ids, expected):
    assert reason(ids) == expected


def test_the_text_is_read_only_when_a_stop_string_could_end_it():
    def refuse(ids):
        raise AssertionError("read the text")

    assert finish_reason([1, EOS], eos_ids={EOS}, max_new_tokens=5, stop_strings=("x",),
                         detokenize=refuse) == "eos"
    assert finish_reason([1], eos_ids={EOS}, max_new_tokens=5, stop_strings=(),
                         detokenize=refuse) is None
    assert finish_reason([1], eos_ids={EOS}, max_new_tokens=5, stop_strings=("Hi",),
                         text="Hi") == "stop_string"


@pytest.mark.parametrize("ids,terminal", [
    ([1], False), ([1, 2, 1, 2], False), ([1, EOS], True), ([1, 3], True), ([1, 2, 1, 2, 1], True),
])
def test_a_terminal_leaf_is_a_finished_answer(ids, terminal):
    assert is_terminal(ids, detokenize(ids), eos_ids={EOS}, max_new_tokens=5,
                       stop_strings=("\nUser:",)) is terminal
