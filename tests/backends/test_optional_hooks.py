"""The Backend protocol's optional hooks, read through ``stop_strings_of`` and
``clear_prefix_cache`` (no model needed)."""

from __future__ import annotations

import rainlm
from rainlm.backends.base import Backend, clear_prefix_cache, set_cache_budget, stop_strings_of
from rainlm.backends.scripted import EOS, ScriptedBackend


class Bare:
    """Neither hook (nor anything else)."""


class Hooked(ScriptedBackend):
    """The scripted model with both optional hooks."""

    default_stop_strings = ["STOP"]  # a list: the helper still returns a tuple

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.cleared = 0

    def clear_cache(self) -> None:
        self.cleared += 1


def _says(*tokens: str):
    return lambda answer: {(list(tokens) + [EOS])[len(answer)]: 1.0}


def test_an_object_without_the_hooks_gets_the_defaults():
    assert stop_strings_of(Bare()) == ()
    assert clear_prefix_cache(Bare()) is False
    scripted = ScriptedBackend(["a"], {})
    assert isinstance(scripted, Backend)
    assert stop_strings_of(scripted) == () and clear_prefix_cache(scripted) is False


def test_a_backend_with_the_hooks_is_heard():
    backend = Hooked(["a"], {})
    assert isinstance(backend, Backend)
    assert stop_strings_of(backend) == ("STOP",)
    assert clear_prefix_cache(backend) is True and backend.cleared == 1


def test_the_cache_budget_is_set_only_where_there_is_one():
    assert set_cache_budget(Bare(), 64) is False
    budgeted = Hooked(["a"], {})
    budgeted.cache_budget_bytes = 512 * 2**20
    assert set_cache_budget(budgeted, 64) is True and budgeted.cache_budget_bytes == 64 * 2**20


def test_a_non_callable_clear_cache_is_not_called():
    bare = Bare()
    bare.clear_cache = "not a method"
    assert clear_prefix_cache(bare) is False


def test_greedy_cuts_the_answer_at_the_backends_stop_strings():
    vocab = ["Hi", " there", "STOP", " more"]
    plain = ScriptedBackend(vocab, _says("Hi", " there", "STOP", " more"))
    hooked = Hooked(vocab, _says("Hi", " there", "STOP", " more"))
    assert rainlm.greedy(plain, "x", max_new_tokens=8).text == "Hi thereSTOP more"
    assert rainlm.greedy(hooked, "x", max_new_tokens=8).text == "Hi there"
