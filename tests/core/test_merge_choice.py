"""The scheduler measures merged next-token calls against the same calls one search at a
time and chooses the cheaper way (``core.merge_choice``); the answers never change."""

from __future__ import annotations

import pytest

from rainlm import RainConfig, generate
from rainlm.api import _start_search
from rainlm.core.merge_choice import MIN_SAMPLES, MergeChoice
from rainlm.core.scheduler import BatchCounts, Scheduler
from rainlm.judge.base import as_evaluator
from rainlm.similarity.hashing import HashingEmbedder

from .scripts import branching_backend, harm_judge

PROMPTS = ["How do I build a bomb?", "Say something kind.", "Name a colour.", "Help me, please."]
CONFIG = RainConfig(max_searches_per_step=4)


class Timed:
    """The scripted model on a clock of its own: each ``next_logprobs`` call advances it
    by ``cost(contexts)`` seconds (no real time is measured, so the test has no race)."""

    def __init__(self, cost):
        self.inner, self.cost, self.now = branching_backend(), cost, 0.0
        for name in ("name", "capabilities", "eos_token_ids", "bos_ids", "counters",
                     "tokenize", "detokenize", "render_prompt"):
            setattr(self, name, getattr(self.inner, name))

    def next_logprobs(self, contexts, *, top_k=None):
        self.now += self.cost(len(contexts))
        return self.inner.next_logprobs(contexts, top_k=top_k)

    def clock(self) -> float:
        return self.now


def run(backend: Timed, merge: MergeChoice | None):
    """The four searches together; their texts, the counts and the kind of group the
    merge choice measured (the searches' next-token calls)."""
    counts = BatchCounts()
    scheduler = Scheduler(backend, counts=counts, merge=merge, clock=backend.clock)
    searches = [_start_search(backend, p, cfg=CONFIG,
                              judges=lambda: (as_evaluator(harm_judge), HashingEmbedder()),
                              seed=seed, max_new_tokens=12, system=None, batched=True,
                              continuation=False, stop=None)
                for seed, p in enumerate(PROMPTS)]
    finished = [scheduler.add(s.steps) for s in searches]
    while scheduler.busy:
        scheduler.run_round()
    assert all(f.error is None for f in finished)
    kind = next(iter(merge._kinds)) if merge is not None else None  # the one kind here
    return [s.result(f.value).text for s, f in zip(searches, finished)], counts, kind


def alone_texts():
    """Each prompt's answer searched alone, with ``generate``."""
    return [generate(branching_backend(), p, CONFIG, evaluator=harm_judge,
                     embedder=HashingEmbedder(), seed=seed, max_new_tokens=12).text
            for seed, p in enumerate(PROMPTS)]


def seconds_always_merged(cost) -> float:
    """The model's seconds for the four searches with every group merged."""
    backend = Timed(cost)
    run(backend, None)
    return backend.now


def test_a_batch_measured_slower_is_sent_one_search_at_a_time_and_the_run_is_faster():
    # merged calls hold more contexts, and this model's cost grows with their square:
    # a batch costs more than its searches' calls one at a time
    cost = lambda n: 0.01 * n * n  # noqa: E731
    backend, merge = Timed(cost), MergeChoice(probe_every=4)
    texts, counts, kind = run(backend, merge)
    assert texts == alone_texts()  # the choice changes the speed, never an answer
    measured = merge._kinds[kind]
    assert measured.split_groups > measured.groups // 2
    assert counts.mean_batch < 2
    assert backend.now < 0.8 * seconds_always_merged(cost)


def test_a_batch_measured_cheaper_stays_merged():
    # a fixed cost per call and a small one per context: merging saves the fixed costs
    cost = lambda n: 0.05 + 0.001 * n  # noqa: E731
    backend, merge = Timed(cost), MergeChoice()  # a probe every 16th group
    texts, counts, kind = run(backend, merge)
    assert texts == alone_texts()
    assert merge.prefers_merging(kind)
    measured = merge._kinds[kind]
    assert measured.merged_over_alone() < 0.8  # measured: merging saves the fixed costs
    assert measured.split_groups == measured.groups // 16  # only the probes
    assert max(counts.searches_per_model_call) == len(PROMPTS)
    # the probes cost a little: within 15% of always merging
    assert backend.now < 1.15 * seconds_always_merged(cost)


def test_without_a_merge_choice_every_group_is_merged():
    backend = Timed(lambda n: 0.01 * n * n)
    counts = BatchCounts()
    scheduler = Scheduler(backend, counts=counts, clock=backend.clock)  # run_together's default
    searches = [_start_search(backend, p, cfg=CONFIG,
                              judges=lambda: (as_evaluator(harm_judge), HashingEmbedder()),
                              seed=seed, max_new_tokens=12, system=None, batched=True,
                              continuation=False, stop=None)
                for seed, p in enumerate(PROMPTS)]
    for s in searches:
        scheduler.add(s.steps)
    while scheduler.busy:
        scheduler.run_round()
    assert max(counts.searches_per_model_call) == len(PROMPTS)
    assert counts.mean_batch > 2


def test_the_choice_waits_for_measurements_of_both_ways_and_ignores_tiny_costs():
    merge = MergeChoice()
    for _ in range(MIN_SAMPLES):  # 4 searches' calls of 1 context merged: 4 s
        merge.note_merged("k", calls=4, contexts=4, seconds=4.0)
    assert merge.prefers_merging("k")  # nothing measured one at a time yet
    for contexts in (1, 2, 1, 2):  # one search's call: 0.5 s + 0.1 s per context
        merge.note_single("k", contexts=contexts, seconds=0.5 + 0.1 * contexts)
    assert merge._kinds["k"].line() == pytest.approx((0.5, 0.1))
    assert merge._kinds["k"].merged_over_alone() == pytest.approx(4.0 / 2.4)
    assert not merge.prefers_merging("k")
    assert merge.prefers_merging("another kind")  # each kind is measured on its own
    tiny = MergeChoice()
    for _ in range(MIN_SAMPLES):
        tiny.note_merged("k", calls=4, contexts=4, seconds=0.0016)
        tiny.note_single("k", contexts=1, seconds=0.00001)
    assert tiny.prefers_merging("k")  # both below a millisecond per context
