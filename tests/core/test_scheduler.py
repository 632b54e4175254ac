"""Searches as state machines, run together (``core.scheduler``, ``generate_many``): each
grows the tree it grows alone, while their model calls share backend calls."""

from __future__ import annotations

import pytest

from rainlm import RainConfig, generate, generate_many
from rainlm.backends.base import Capabilities
from rainlm.backends.scripted import ScriptedBackend
from rainlm.backends.steps import NextDists, drive
from rainlm.core.model_calls import EmbedTexts, JudgeTexts
from rainlm.core.scheduler import BatchCounts, run_together
from rainlm.errors import ConfigError
from rainlm.judge.base import StepwiseEvaluator
from rainlm.similarity.hashing import HashingEmbedder

from .scripts import WORDS, branching_backend, harm_judge

PROMPTS = ["How do I build a bomb?", "Say something kind.", "Name a colour.", "Help me, please."]
CONFIGS = {
    "paper": RainConfig.preset("paper").replace(max_searches=10, min_new_searches=4),
    "default": RainConfig.preset("harmless").replace(max_total_searches=24),  # repairs, checks
    "parallel": RainConfig(max_searches_per_step=4, search_mode="parallel", parallel_leaves=3),
}
SEEDS = [3, 4, 5, 6]  # the scripted model ignores the prompt: the seeds tell searches apart


def alone(prompt: str, config: RainConfig, evaluator=harm_judge, backend=None):
    seed = SEEDS[PROMPTS.index(prompt)]
    return generate(backend or branching_backend(), prompt, config, evaluator=evaluator,
                    embedder=HashingEmbedder(), seed=seed, max_new_tokens=12)


def same_search(a, b) -> bool:
    return (a.tree.to_dict() == b.tree.to_dict() and a.text == b.text
            and a.evaluations == b.evaluations and a.finish_reason == b.finish_reason)


@pytest.mark.parametrize("name", CONFIGS)
def test_searches_run_together_grow_the_trees_they_grow_alone(name):
    config = CONFIGS[name]
    singles = [alone(p, config) for p in PROMPTS]
    backend, counts = branching_backend(), BatchCounts()
    together = generate_many(backend, PROMPTS, config, evaluator=harm_judge,
                             embedder=HashingEmbedder(), seed=SEEDS, max_new_tokens=12,
                             batch_counts=counts)
    for a, b in zip(singles, together):
        assert same_search(a, b)
        assert b.stats["answered_together"] == len(PROMPTS)
    # the searches shared model calls: the first rounds find all four waiting for one
    assert max(counts.searches_per_model_call) == len(PROMPTS)
    assert counts.model_calls == backend.counters.forward_calls
    assert counts.model_calls < sum(s.stats["backend"]["forward_calls"] for s in singles)
    assert counts.contexts == sum(s.stats["model_contexts"] for s in singles)


class LetterJudge:
    """A judge that asks the scripted model, as the self-evaluation does: a stepwise
    evaluator whose one model call per judgement is yielded (value: P(" no") after the
    answer, rescaled to [-1, 1])."""

    name = "letter-judge"

    def __init__(self, backend: ScriptedBackend):
        self.backend = backend
        self.calls = 0

    def evaluate_steps(self, requests):
        contexts = [self.backend.render_prompt(r.messages) + self.backend.tokenize(r.response)
                    for r in requests]
        self.calls += 1
        dists = yield NextDists(contexts, top_k=20, backend=self.backend)
        no = self.backend.index[" no"]
        return [max(-1.0, min(1.0, 20 * d.prob_of(no) - 1)) for d in dists]

    def evaluate(self, requests):
        return drive(self.evaluate_steps(requests), self.backend)


def test_a_stepwise_judges_model_calls_are_batched_with_the_searches():
    config = CONFIGS["default"]
    singles = [alone(p, config, LetterJudge(b), b)
               for p, b in ((p, branching_backend()) for p in PROMPTS)]
    backend, counts = branching_backend(), BatchCounts()
    judge = LetterJudge(backend)
    assert isinstance(judge, StepwiseEvaluator)
    together = generate_many(backend, PROMPTS, config, evaluator=judge,
                             embedder=HashingEmbedder(), seed=SEEDS, max_new_tokens=12,
                             batch_counts=counts)
    for a, b in zip(singles, together):
        assert same_search(a, b)
    # every judge call went out inside the batches the counts saw (none alone, directly)
    assert counts.model_calls == backend.counters.forward_calls
    assert judge.calls == sum(s.stats["evaluator_calls"] for s in singles)
    assert sum(counts.searches_per_model_call) == sum(
        s.stats["model_calls"] + s.stats["evaluator_calls"] for s in singles)


class BrokenJudge:
    name = "broken"

    def evaluate(self, requests):
        raise RuntimeError("the judge is down")


def test_a_search_that_fails_ends_alone_and_the_others_finish():
    from rainlm.api import _start_search  # the searches generate_many builds

    config = CONFIGS["default"]
    backend = branching_backend()
    searches = [_start_search(backend, p, cfg=config,
                              judges=lambda j=judge: (j, HashingEmbedder()),
                              seed=SEEDS[i], max_new_tokens=12,
                              system=None, batched=True, continuation=False, stop=None)
                for i, (p, judge) in enumerate(zip(PROMPTS, (CallableJudge(), BrokenJudge(),
                                                             CallableJudge())))]
    ended = run_together([s.steps for s in searches], backend)
    assert isinstance(ended[1].error, RuntimeError) and ended[1].value is None
    for i in (0, 2):
        assert ended[i].error is None
        assert same_search(searches[i].result(ended[i].value), alone(PROMPTS[i], config))
    with pytest.raises(RuntimeError, match="the judge is down"):
        generate_many(branching_backend(), PROMPTS[:2], config, evaluator=BrokenJudge(),
                      embedder=HashingEmbedder(), max_new_tokens=12)


class CallableJudge:
    """``harm_judge`` as its own evaluator object (judged alone, not grouped)."""

    name = "harm"

    def evaluate(self, requests):
        return [harm_judge(r.prompt_text, r.response) for r in requests]


def test_a_call_that_fails_in_a_batch_is_retried_alone_for_each_search():
    inner = ScriptedBackend(WORDS, lambda answer: {" unknown": 1.0} if answer else {" I": 1.0})
    prompt = inner.render_prompt([{"role": "user", "content": "Hi"}])
    bad = prompt + [inner.index[" I"]]  # the script names a token it does not have

    def one_call(contexts):
        return (yield NextDists(contexts))

    counts = BatchCounts()
    good, broken = run_together([one_call([prompt]), one_call([bad])], inner, counts=counts)
    assert isinstance(broken.error, ConfigError)
    assert len(good.value) == 1 and good.error is None
    assert counts.searches_per_model_call == [1]  # the failed shared call is not counted


def test_a_batch_answered_with_a_wrong_count_is_retried_alone():
    # a model that drops the last distribution of a batched call: slicing its answer
    # would shift one search's distributions into another's; each is asked alone instead
    inner = branching_backend()

    class Dropping:
        capabilities = inner.capabilities

        def next_logprobs(self, contexts, *, top_k=None):
            out = inner.next_logprobs(contexts, top_k=top_k)
            return out[:-1] if len(contexts) > 1 else out

    prompt = inner.render_prompt([{"role": "user", "content": "Hi"}])

    def one_call(contexts):
        return (yield NextDists(contexts))

    first, second = run_together([one_call([prompt]), one_call([prompt + [5]])], Dropping())
    assert first.error is second.error is None
    assert first.value[0].logprobs.tolist() == inner.next_logprobs([prompt])[0].logprobs.tolist()
    assert (second.value[0].logprobs.tolist()
            == inner.next_logprobs([prompt + [5]])[0].logprobs.tolist())


class Sparse:
    """The scripted model presented as a sparse (top-k) engine: it keeps ``top_k``."""

    def __init__(self, inner):
        self.inner = inner
        self.capabilities = Capabilities(full_distribution=False, max_top_logprobs=20)
        self.top_ks = []

    def next_logprobs(self, contexts, *, top_k=None):
        self.top_ks.append(top_k)
        return self.inner.next_logprobs(contexts, top_k=top_k)


def test_calls_with_different_top_k_share_a_call_only_on_a_dense_model():
    dense = branching_backend()
    prompt = dense.render_prompt([{"role": "user", "content": "Hi"}])

    def one_call(top_k):
        return (yield NextDists([prompt], top_k=top_k))

    counts = BatchCounts()
    run_together([one_call(None), one_call(20)], dense, counts=counts)
    assert counts.searches_per_model_call == [2] and dense.counters.forward_calls == 1
    sparse, counts = Sparse(branching_backend()), BatchCounts()
    run_together([one_call(None), one_call(20)], sparse, counts=counts)
    assert counts.searches_per_model_call == [1, 1] and sorted(sparse.top_ks, key=str) == [20, None]


def test_rule_judgements_and_embeddings_of_a_round_go_out_together():
    calls = []

    class Recording:
        name = "recording"

        def evaluate(self, requests):
            calls.append(len(requests))
            return [0.0] * len(requests)

    judge = Recording()

    def judged(text):
        from rainlm.judge.base import EvalRequest

        return (yield JudgeTexts(judge, [EvalRequest(({"role": "user", "content": "q"},), text)]))

    ended = run_together([judged("a"), judged("b"), judged("c")], branching_backend())
    assert [e.value for e in ended] == [[0.0]] * 3 and calls == [3]

    encoder, embedded = HashingEmbedder(), []

    class RecordingEmbedder:
        def embed(self, texts):
            embedded.append(list(texts))
            return encoder.embed(texts)

    recording = RecordingEmbedder()

    def embed(texts):
        return (yield EmbedTexts(recording, texts))

    ended = run_together([embed(["a", "b"]), embed(["c"])], branching_backend())
    assert embedded == [["a", "b", "c"]]
    assert ended[0].value.tolist() == encoder.embed(["a", "b"]).tolist()
    assert ended[1].value.tolist() == encoder.embed(["c"]).tolist()


def test_generate_many_names_a_bad_argument():
    with pytest.raises(ConfigError, match="prompts"):
        generate_many(branching_backend(), "one prompt", evaluator=harm_judge, embedder="none")
    with pytest.raises(ConfigError, match="seed"):
        generate_many(branching_backend(), PROMPTS, evaluator=harm_judge, embedder="none",
                      seed=[1, 2])
    with pytest.raises(ConfigError, match="seed"):
        generate_many(branching_backend(), PROMPTS, evaluator=harm_judge, embedder="none",
                      seed=1.5)


def test_a_rounds_different_calls_go_out_at_once_on_a_backend_that_takes_concurrent_calls():
    # two searches wait for calls that cannot share one request (different top_k on a
    # sparse engine); each call waits at a barrier for the other: answered one after
    # the other, the first would wait in vain and break it
    import threading

    class Engine(Sparse):
        def __init__(self, inner, concurrent: bool):
            super().__init__(inner)
            self.takes_concurrent_calls = concurrent
            self.barrier = threading.Barrier(2, timeout=10)

        def next_logprobs(self, contexts, *, top_k=None):
            self.barrier.wait()
            return super().next_logprobs(contexts, top_k=top_k)

    prompt = branching_backend().render_prompt([{"role": "user", "content": "Hi"}])

    def one_call(top_k):
        return (yield NextDists([prompt], top_k=top_k))

    engine = Engine(branching_backend(), concurrent=True)
    first, second = run_together([one_call(5), one_call(20)], engine)
    assert first.error is None and second.error is None
    assert sorted(engine.top_ks) == [5, 20]
    in_process = Engine(branching_backend(), concurrent=False)  # one call at a time
    in_process.barrier = threading.Barrier(2, timeout=0.2)
    first, second = run_together([one_call(5), one_call(20)], in_process)
    assert isinstance(first.error, threading.BrokenBarrierError)
