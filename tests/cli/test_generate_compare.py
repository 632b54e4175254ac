"""``rain generate --compare`` times each answer from a cold prefix cache, or says that it
cannot: greedy's time must not come from keys and values RAIN's search just cached."""

from __future__ import annotations

from dataclasses import replace

from rainlm.backends.scripted import ScriptedBackend
from rainlm.cli.generate import render_text, run_generate
from tests.cli.test_cli_scripted import PROMPT, VOCAB, run_options, script


class CachingBackend(ScriptedBackend):
    """The scripted model, declaring a prefix cache and counting what happens to it."""

    def __init__(self):
        super().__init__(VOCAB, script, name="scripted-cache")
        self.capabilities = replace(self.capabilities, prefix_cache=True)
        self.events: list[str] = []

    def next_logprobs(self, contexts, *, top_k=None):
        if not self.events or self.events[-1] != "call":
            self.events.append("call")
        return super().next_logprobs(contexts, top_k=top_k)

    def clear_cache(self) -> None:
        self.events.append("clear")


class UnclearableBackend(CachingBackend):
    """A prefix cache it cannot empty (an engine behind HTTP)."""

    clear_cache = None  # type: ignore[assignment]


def _compare(backend):
    return run_generate(backend, PROMPT, run_options(max_new_tokens=12, embedder="none"),
                        compare=True, score=False)


def test_each_side_of_compare_starts_from_an_emptied_cache():
    backend = CachingBackend()
    report = _compare(backend)
    # the cache is emptied before RAIN's answer and again before greedy's
    assert backend.events == ["clear", "call", "clear", "call"]
    assert report.cold_cache
    assert "cannot empty its prefix cache" not in render_text(report)


def test_a_cache_that_cannot_be_emptied_is_said_next_to_the_times():
    report = _compare(UnclearableBackend())
    assert not report.cold_cache
    assert "greedy's may come partly from what RAIN's search cached" in render_text(report)


def test_a_backend_without_a_prefix_cache_needs_no_note():
    report = _compare(ScriptedBackend(VOCAB, script, name="scripted"))
    assert report.cold_cache and "prefix cache" not in render_text(report)
