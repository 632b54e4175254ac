"""The scheduler measures merged and one-search-at-a-time next-token calls and chooses
the cheaper per context (``core.merge_choice``); the answers never change."""

from __future__ import annotations

from rainlm import RainConfig, generate
from rainlm.api import _start_search
from rainlm.core.merge_choice import MIN_SAMPLES, PROBE_EVERY, MergeChoice
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


def run(backend: Timed, merge: MergeChoice, rounds_of_solo: int = 0):
    """A few rounds of one search (the one-at-a-time measurements), then the four
    searches together; their texts."""
    counts = BatchCounts()
    scheduler = Scheduler(backend, counts=counts, merge=merge, clock=backend.clock)

    def start(prompt, seed):
        return _start_search(backend, prompt, cfg=CONFIG,
                             judges=lambda: (as_evaluator(harm_judge), HashingEmbedder()), seed=seed,
                             max_new_tokens=12, system=None, batched=True,
                             continuation=False, stop=None)

    first = start(PROMPTS[0], 0)
    finished = [scheduler.add(first.steps)]
    for _ in range(rounds_of_solo):
        scheduler.run_round()
    others = [start(p, s) for s, p in enumerate(PROMPTS[1:], 1)]
    finished += [scheduler.add(s.steps) for s in others]
    while scheduler.busy:
        scheduler.run_round()
    assert all(f.error is None for f in finished)
    return [s.result(f.value).text for s, f in zip([first, *others], finished)], counts


def alone_texts():
    """Each prompt's answer searched alone, with ``generate``."""
    return [generate(branching_backend(), p, CONFIG, evaluator=harm_judge,
                     embedder=HashingEmbedder(), seed=seed, max_new_tokens=12).text
            for seed, p in enumerate(PROMPTS)]


def test_a_batch_measured_slower_per_context_is_sent_one_search_at_a_time():
    # merged calls hold more contexts, and this model's cost grows with their square:
    # a batch costs more per context than its searches' calls one at a time
    backend, merge = Timed(lambda n: 0.01 * n * n), MergeChoice()
    texts, counts = run(backend, merge, rounds_of_solo=MIN_SAMPLES + 2)
    assert texts == alone_texts()  # the choice changes the speed, never an answer
    assert merge.alone.samples >= MIN_SAMPLES and merge.merged.samples >= MIN_SAMPLES
    assert merge.merged.mean >= 1.25 * merge.alone.mean
    assert not merge.prefers_merging()
    assert merge.split_groups > merge.groups // 2
    assert counts.mean_batch < 2


def test_a_batch_measured_cheaper_per_context_stays_merged():
    # a fixed cost per call and a small one per context: merging saves the fixed costs
    backend, merge = Timed(lambda n: 0.05 + 0.001 * n), MergeChoice()
    texts, counts = run(backend, merge, rounds_of_solo=MIN_SAMPLES + 2)
    assert texts == alone_texts()
    assert merge.prefers_merging()
    assert merge.split_groups == merge.groups // PROBE_EVERY  # only the probes
    assert max(counts.searches_per_model_call) == len(PROMPTS)


def test_the_choice_waits_for_measurements_of_both_ways_and_ignores_tiny_costs():
    merge = MergeChoice()
    for _ in range(MIN_SAMPLES):
        merge.note(searches=4, contexts=4, seconds=4.0)  # 1 s per context merged
    assert merge.prefers_merging()  # nothing measured one at a time yet
    for _ in range(MIN_SAMPLES):
        merge.note(searches=1, contexts=1, seconds=0.5)
    assert not merge.prefers_merging()
    tiny = MergeChoice()
    for _ in range(MIN_SAMPLES):
        tiny.note(searches=4, contexts=4, seconds=0.0004)
        tiny.note(searches=1, contexts=1, seconds=0.00001)
    assert tiny.prefers_merging()  # both far below a millisecond per context
