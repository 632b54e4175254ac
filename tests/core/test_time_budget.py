"""A time budget bounds the whole answer: the search leaves the time a greedy finish
needs, the finish itself stops at the budget's end, and plain greedy decoding honours
the budget too. Time is a fake clock that the model advances (one second per context),
so nothing here depends on the machine's speed."""

from __future__ import annotations

import threading
import time

import pytest

from rainlm.core.model_calls import drive
from rainlm import RainConfig, generate, greedy
from rainlm.backends.scripted import ScriptedBackend
from rainlm.core.model_calls import ModelCalls
from rainlm.core.stats import SearchStats

from .scripts import WORDS, branching_script

PROMPT = "Tell me something."
LENGTH = 12


class FakeClock:
    """``time.perf_counter`` for the duration of a test: moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TimedBackend(ScriptedBackend):
    """The scripted model, one fake second per context it is asked about."""

    def __init__(self, clock: FakeClock, script=branching_script):
        super().__init__(WORDS, script, name="scripted-timed")
        self.clock = clock
        self.call_starts: list[float] = []

    def next_logprobs(self, contexts, *, top_k=None):
        self.call_starts.append(self.clock.now)
        self.clock.now += float(len(contexts))
        return super().next_logprobs(contexts, top_k=top_k)


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(time, "perf_counter", fake)
    return fake


def never_ending_script(answer: tuple[str, ...]) -> dict[str, float]:
    """Never EOS before the length limit: a greedy finish costs one call per token."""
    return {" safely": 0.6, " please": 0.4}


def _rain(clock: FakeClock, budget: float, **changes):
    backend = TimedBackend(clock, never_ending_script)
    cfg = RainConfig.preset("harmless", time_budget_s=budget, **changes)
    started = clock.now
    # a judge that finds every answer undecided (0): nothing is accepted, the search goes on
    res = generate(backend, PROMPT, cfg, evaluator=lambda prompt, response: 0.0,
                   embedder="none", seed=0, max_new_tokens=LENGTH)
    return res, backend, started


def test_the_search_leaves_time_for_the_greedy_finish(clock):
    # 60 fake seconds: the search could use them all (12 tokens, 64 passes), but it stops
    # when what is left would only just pay for a greedy finish of the rest (1 s a token),
    # and the finish completes the answer inside the budget
    res, backend, started = _rain(clock, 60.0)
    assert res.finish_reason == "time_budget" and res.stats["budget_exhausted"]
    assert len(res.token_ids) == LENGTH and not res.stats["greedy_tail_cut"]
    assert res.stats["greedy_tail_tokens"] > 0 and res.stats["searches"] > 0
    # every model call started before the budget's end
    assert max(backend.call_starts) < started + 60.0


@pytest.mark.parametrize("budget", [3.0, 10.0, 20.0, 30.0])
def test_an_answer_the_time_budget_ended_says_time_budget(clock, budget):
    # at 20 s a model call stops the first pass for the finish's reserve while the
    # search's own deadline (set before the pass, from a slower first estimate) has not
    # passed: the reason is still the time budget, never the unspent pass budget
    res, _, _ = _rain(clock, budget)
    assert res.finish_reason == "time_budget" and res.stats["budget_exhausted"]


def test_without_the_reserve_the_finish_would_run_past_the_budget(clock):
    # the same answer with budget_fallback="truncate" searches to the budget's end: the
    # reserve is what made room for the finish above (a test that can fail if it is gone)
    res, backend, started = _rain(clock, 60.0, budget_fallback="truncate")
    assert res.finish_reason == "time_budget" and len(res.token_ids) < LENGTH
    assert max(backend.call_starts) >= started + 60.0 - LENGTH


def test_a_finish_that_does_not_fit_is_cut_at_the_budget_and_marked(clock):
    # 3 fake seconds cannot pay for 12 greedy tokens: the finish writes what fits, then
    # the answer is cut off, marked as such (not "finished greedily")
    res, backend, started = _rain(clock, 3.0)
    assert res.finish_reason == "time_budget"
    assert res.stats["greedy_tail_cut"] is True
    assert len(res.token_ids) < LENGTH
    assert max(backend.call_starts) < started + 3.0


def test_greedy_stops_at_its_time_budget(clock):
    backend = TimedBackend(clock, never_ending_script)
    res = greedy(backend, PROMPT, max_new_tokens=LENGTH, time_budget_s=5.5)
    # calls start at +0 .. +5 (each before +5.5): six tokens, then the budget ends
    assert res.finish_reason == "time_budget" and len(res.token_ids) == 6
    full = greedy(backend, PROMPT, max_new_tokens=LENGTH)
    assert full.finish_reason == "length" and len(full.token_ids) == LENGTH
    # the stats say so as RAIN's do: True only when the budget ended the answer
    assert res.stats["budget_exhausted"] is True
    assert full.stats["budget_exhausted"] is False
    roomy = greedy(backend, PROMPT, max_new_tokens=LENGTH, time_budget_s=60.0)
    assert roomy.finish_reason == "length" and roomy.stats["budget_exhausted"] is False


def test_a_stopped_greedy_answer_is_marked_as_a_stopped_rain_answer(clock):
    stop = threading.Event()
    stop.set()
    plain = greedy(TimedBackend(clock, never_ending_script), PROMPT, max_new_tokens=LENGTH,
                   stop=stop)
    rain = generate(TimedBackend(clock, never_ending_script), PROMPT, "harmless",
                    evaluator=lambda prompt, response: 0.0, embedder="none",
                    max_new_tokens=LENGTH, stop=stop)
    assert plain.finish_reason == rain.finish_reason == "stopped"
    assert plain.stats["budget_exhausted"] is rain.stats["budget_exhausted"] is True


def test_seconds_per_token_averages_one_context_calls_only(clock):
    backend = TimedBackend(clock)
    calls = ModelCalls(SearchStats())
    assert calls.seconds_per_token() == 0.0
    ids = backend.render_prompt(({"role": "user", "content": PROMPT},))
    drive(calls.next_dists([ids]), backend)
    drive(calls.next_dists([ids, ids + [1], ids + [2]]), backend)  # a batch: 3 fake s, not counted
    drive(calls.next_dists([ids + [1]]), backend)
    assert calls.seconds_per_token() == 1.0


def test_a_budget_smaller_than_one_pass_still_gets_a_greedy_answer(clock):
    # 10 fake seconds: the first pass (a whole imagined answer) cannot fit. The reserve
    # is re-checked on every model call, so the pass stops once the speed is known and
    # the finish writes about what plain greedy writes in the same budget (10 tokens).
    res, backend, started = _rain(clock, 10.0)
    plain = greedy(TimedBackend(clock, never_ending_script), PROMPT, max_new_tokens=LENGTH,
                   time_budget_s=10.0)
    assert res.stats["greedy_tail_tokens"] >= len(plain.token_ids) - 3
    assert max(backend.call_starts) < started + 10.0


def test_the_best_judged_whole_answer_still_beats_a_finish_the_budget_ended(clock):
    # the judge likes whole answers (12 words) only; the budget ends the search; the
    # comparison with the best judged answer is made although the budget's end has passed
    backend = TimedBackend(clock, never_ending_script)
    cfg = RainConfig.preset("harmless", time_budget_s=20.0, budget_fallback="truncate")
    res = generate(backend, PROMPT, cfg, evaluator=lambda p, r: 0.5 if r.count(" ") == LENGTH else 0.0,
                   embedder="none", seed=0, max_new_tokens=LENGTH)
    assert len(res.token_ids) == LENGTH and res.stats["finish_judgements"] == 1


class SlowingBackend(TimedBackend):
    """One fake second per context for the first ``fast_calls`` calls, then three: the
    machine slows down, so the finish the search left time for does not fit."""

    def __init__(self, clock: FakeClock, fast_calls: int):
        super().__init__(clock, never_ending_script)
        self.fast_calls = fast_calls

    def next_logprobs(self, contexts, *, top_k=None):
        if len(self.call_starts) >= self.fast_calls:
            self.clock.now += 2.0 * len(contexts)
        return super().next_logprobs(contexts, top_k=top_k)


def test_a_cut_finish_replaced_by_the_best_judged_answer_is_not_marked_cut(clock):
    # the first pass imagines a whole answer (judged 0.5); then the model slows down 3x,
    # the greedy finish is cut at the budget's end, and the whole answer replaces it:
    # the answer shown was not cut, so the stats must not say so
    backend = SlowingBackend(clock, fast_calls=LENGTH + 2)
    cfg = RainConfig.preset("harmless", time_budget_s=30.0)
    res = generate(backend, PROMPT, cfg,
                   evaluator=lambda p, r: 0.5 if r.count(" ") == LENGTH else 0.0,
                   embedder="none", seed=0, max_new_tokens=LENGTH)
    assert len(res.token_ids) == LENGTH and res.stats["greedy_tail_tokens"] == 0
    assert res.stats["greedy_tail_cut"] is False
