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
from rainlm.core.model_calls import MIN_DECODE_STEPS, ModelCalls
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


def test_seconds_per_token_is_the_median_of_decode_steps_only(clock):
    backend = TimedBackend(clock)
    calls = ModelCalls(SearchStats())
    ids = backend.render_prompt(({"role": "user", "content": PROMPT},))

    def ask(*contexts, extra_s=0.0):
        """One call (one fake second per context), ``extra_s`` slower."""
        steps = calls.next_dists([list(c) for c in contexts])
        call = next(steps)  # the call is asked for: its clock starts
        clock.now += extra_s
        try:
            steps.send(call.answer(backend))
        except StopIteration:
            pass

    ask(ids, extra_s=30.0)  # the prompt: not a decode step
    ask(ids, ids + [1], ids + [2])  # a batch: not counted
    ask(ids + [1, 2, 3], extra_s=30.0)  # three new tokens: not a decode step
    answer = ids + [1, 2, 3]
    for extra in (0.0, 8.0, 0.0):
        answer = answer + [4]
        ask(answer, extra_s=extra)
    assert calls.seconds_per_token() == 0.0  # three decode steps: too few to say
    ask(answer + [4], extra_s=1.0)
    assert sorted(calls.decode_step_seconds) == [1.0, 1.0, 2.0, 9.0]
    assert calls.seconds_per_token() == 1.5  # the median: the slow step moves it little


class SlowStartBackend(TimedBackend):
    """``first_s`` fake seconds for each of the first ``slow_calls`` calls (a prompt
    prefill on a busy machine, first use), then ``then_s`` per context."""

    def __init__(self, clock: FakeClock, *, slow_calls: int, first_s: float, then_s: float):
        super().__init__(clock, never_ending_script)
        self.slow_calls, self.first_s, self.then_s = slow_calls, first_s, then_s

    def next_logprobs(self, contexts, *, top_k=None):
        slow = len(self.call_starts) < self.slow_calls
        before = self.clock.now
        out = super().next_logprobs(contexts, top_k=top_k)
        self.clock.now = before + (self.first_s if slow else self.then_s * len(contexts))
        return out


@pytest.mark.parametrize(("slow_calls", "first_s", "then_s", "tokens"), [
    (1, 6.0, 0.1, LENGTH),  # a slow prompt prefill: not a decode step
    (2, 6.0, 0.1, LENGTH),  # and a slow first decode step: outvoted by the median
    (5, 0.6, 0.05, 48),  # the prefill and 4 decode steps slow (a burst of load)
])
def test_slow_first_calls_do_not_reserve_the_budget_for_the_finish(clock, slow_calls, first_s,
                                                                  then_s, tokens):
    # 30 fake seconds; the first calls are slow (the prompt's prefill, first use, a burst
    # of load), then fast. Reserving the tokens x the mean of the calls so far would leave
    # no time to search at all, and so would the median of the first four decode steps
    # when all of them fall in the burst (48 x 0.6 s: 28.8 s); from decode steps, with the
    # reserve capped until a window of them is measured, the search runs many passes and
    # the greedy finish still ends inside the budget
    backend = SlowStartBackend(clock, slow_calls=slow_calls, first_s=first_s, then_s=then_s)
    cfg = RainConfig.preset("harmless", time_budget_s=30.0)
    started = clock.now
    res = generate(backend, PROMPT, cfg, evaluator=lambda prompt, response: 0.0,
                   embedder="none", seed=0, max_new_tokens=tokens)
    assert res.stats["searches"] >= 3
    assert len(res.token_ids) == tokens and not res.stats["greedy_tail_cut"]
    assert max(backend.call_starts) < started + 30.0


def test_a_budget_smaller_than_one_pass_still_gets_a_greedy_answer(clock):
    # 10 fake seconds: the first pass (a whole imagined answer) cannot fit. The reserve
    # is re-checked on every model call, so the pass stops once the speed is known (the
    # median of MIN_DECODE_STEPS decode steps) and the finish writes what is left of
    # what plain greedy writes in the same budget (10 tokens).
    res, backend, started = _rain(clock, 10.0)
    plain = greedy(TimedBackend(clock, never_ending_script), PROMPT, max_new_tokens=LENGTH,
                   time_budget_s=10.0)
    assert res.stats["greedy_tail_tokens"] >= len(plain.token_ids) - MIN_DECODE_STEPS - 2
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


def test_the_finish_leaves_time_for_its_comparison_with_the_best_answer(clock):
    # each judgement takes 4 fake seconds, each context 0.25 s; a judged whole answer
    # (0.5) is kept, so the finish ends with one more judgement (the greedy finish
    # against it). The reserve holds that judgement too: the answer, comparison
    # included, ends within the budget and one model call of it
    def slow_judge(prompt: str, response: str) -> float:
        clock.now += 4.0
        return 0.5 if response.count(" ") == LENGTH else 0.0

    backend = SlowStartBackend(clock, slow_calls=0, first_s=0.0, then_s=0.25)
    cfg = RainConfig.preset("harmless", time_budget_s=30.0)
    started = clock.now
    res = generate(backend, PROMPT, cfg, evaluator=slow_judge, embedder="none", seed=0,
                   max_new_tokens=LENGTH)
    assert res.stats["finish_judgements"] == 1 and res.stats["searches"] >= 1
    assert clock.now <= started + 30.0 + 0.25
