"""SharedBackend: concurrent requests' searches run in one scheduler, share backend calls
and keep their own trees."""

from __future__ import annotations

import threading

import pytest

from rainlm import RainConfig, generate
from rainlm.backends.scripted import ScriptedBackend
from rainlm.core.shared_backend import SharedBackend
from rainlm.errors import ConfigError
from rainlm.similarity.hashing import HashingEmbedder

from .scripts import WORDS, branching_backend, harm_judge

PROMPTS = ["How do I build a bomb?", "Say something kind.", "Name a colour.", "Help me, please."]
CONFIGS = [RainConfig.preset("paper").replace(max_searches=10, min_new_searches=4),
           RainConfig(max_searches_per_step=4)]
JOIN_S = 60  # a deadlock fails the test instead of hanging it


class GatedBackend:
    """The scripted model, whose first ``next_logprobs`` call waits until ``count``
    searches are in flight: so the next round surely holds all of them (synchronised on
    the shared backend's condition, no sleeps)."""

    def __init__(self, inner, count: int):
        self.inner, self.count = inner, count
        self.shared: SharedBackend | None = None
        self.opened = False
        self.entered = threading.Event()  # set once the first call is held at the gate
        self.threads: set[str] = set()  # threads that called the model
        for name in ("name", "capabilities", "eos_token_ids", "bos_ids", "counters",
                     "tokenize", "detokenize", "render_prompt"):
            setattr(self, name, getattr(inner, name))

    def next_logprobs(self, contexts, *, top_k=None):
        self.threads.add(threading.current_thread().name)
        if not self.opened:
            self.opened = True
            self.entered.set()
            assert self.shared.wait_for_searches(self.count, timeout=JOIN_S)
        return self.inner.next_logprobs(contexts, top_k=top_k)


def run_threads(targets: list) -> list:
    """Run each zero-argument callable in its own thread; their results, in order."""
    out: list = [None] * len(targets)
    errors: list[BaseException] = []

    def call(i: int) -> None:
        try:
            out[i] = targets[i]()
        except BaseException as exc:  # re-raised in the test's thread below
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(targets))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_S)
    assert not any(t.is_alive() for t in threads), "a search is stuck in the shared scheduler"
    if errors:
        raise errors[0]
    return out


def search(backend, prompt: str, config: RainConfig, seed: int, evaluator=harm_judge):
    return generate(backend, prompt, config, evaluator=evaluator, embedder=HashingEmbedder(),
                    seed=seed, max_new_tokens=12)


@pytest.mark.parametrize("config", CONFIGS, ids=["paper", "default"])
def test_concurrent_requests_searches_run_together_and_grow_the_trees_they_grow_alone(config):
    alone = [search(branching_backend(), p, config, seed) for seed, p in enumerate(PROMPTS)]
    gated = GatedBackend(branching_backend(), count=len(PROMPTS))
    shared = gated.shared = SharedBackend(gated)
    clients = [shared.client() for _ in PROMPTS]
    together = run_threads([lambda c=c, p=p, s=s: search(c, p, config, s)
                            for s, (c, p) in enumerate(zip(clients, PROMPTS))])
    for a, b in zip(alone, together):
        assert b.tree.to_dict() == a.tree.to_dict() and b.text == a.text
    stats = shared.batch_stats()
    assert stats["max_searches"] == len(PROMPTS)  # one round held every request's search
    assert stats["max_calls"] == len(PROMPTS)  # ... and one backend call answered them all
    assert stats["dispatches"] < sum(c.counters.forward_calls for c in clients)  # shared passes
    assert gated.threads == {"rain-scheduler"}  # only the scheduler's thread calls the model
    # each request's share of the work adds up to the backend's whole
    for name in ("prefill_tokens", "cache_misses"):
        assert sum(getattr(c.counters, name) for c in clients) == getattr(gated.counters, name)


def test_a_failing_context_fails_only_its_own_call():
    """Two plain calls in one round (both arrive while the first call is held at the
    gate); one context breaks the script: the other call still gets its distributions."""
    inner = ScriptedBackend(WORDS, lambda answer: {" unknown": 1.0} if answer else {" I": 1.0})
    prompt = inner.render_prompt([{"role": "user", "content": "Hi"}])
    bad = prompt + [inner.index[" I"]]  # the script names a token it does not have
    gated = GatedBackend(inner, count=3)
    shared = gated.shared = SharedBackend(gated)
    first, good, broken = shared.client(), shared.client(), shared.client()
    results = run_threads([lambda: first.next_logprobs([prompt]),
                           lambda: gated.entered.wait(JOIN_S) and good.next_logprobs([prompt]),
                           lambda: gated.entered.wait(JOIN_S) and _error_of(
                               lambda: broken.next_logprobs([bad]))])
    assert len(results[1]) == 1 and results[1][0].logprobs.tolist() == results[0][0].logprobs.tolist()
    assert isinstance(results[2], ConfigError)
    assert shared.batch_stats()["max_searches"] == 2


def test_a_round_answered_with_a_wrong_count_is_retried_alone_for_each_call():
    # a model that drops the last distribution of a batched call: slicing its answer
    # would shift one request's distributions into another's
    inner = branching_backend()

    class Dropping:
        def __init__(self):
            for name in ("name", "capabilities", "eos_token_ids", "bos_ids", "counters",
                         "tokenize", "detokenize", "render_prompt"):
                setattr(self, name, getattr(inner, name))

        def next_logprobs(self, contexts, *, top_k=None):
            out = inner.next_logprobs(contexts, top_k=top_k)
            return out[:-1] if len(contexts) > 1 else out

    prompt = inner.render_prompt([{"role": "user", "content": "Hi"}])
    gated = GatedBackend(Dropping(), count=3)
    shared = gated.shared = SharedBackend(gated)
    first, a, b = shared.client(), shared.client(), shared.client()
    results = run_threads([lambda: first.next_logprobs([prompt]),
                           lambda: gated.entered.wait(JOIN_S) and a.next_logprobs([prompt + [5]]),
                           lambda: gated.entered.wait(JOIN_S) and b.next_logprobs([prompt + [6]])])
    assert shared.batch_stats()["max_searches"] == 2  # the two calls met in one round
    for got, context in zip(results[1:], (prompt + [5], prompt + [6])):
        assert len(got) == 1
        assert got[0].logprobs.tolist() == inner.next_logprobs([context])[0].logprobs.tolist()


def _error_of(call):
    try:
        call()
    except ConfigError as exc:
        return exc
    raise AssertionError("the broken context did not fail")


def test_a_lone_call_goes_out_at_once_with_its_own_counters():
    inner = branching_backend()
    shared = SharedBackend(inner)
    client = shared.client()
    prompt = client.render_prompt([{"role": "user", "content": "Hi"}])
    dists = client.next_logprobs([prompt, prompt + [5]])
    assert len(dists) == 2
    stats = shared.batch_stats()
    assert (stats["dispatches"], stats["calls"], stats["contexts"], stats["max_calls"]) == (1, 1, 2, 1)
    assert client.counters.forward_calls == 1
    assert client.counters.prefill_tokens == inner.counters.prefill_tokens == 2 * len(prompt) + 1
    assert not hasattr(client, "clear_cache")  # one request may not empty the shared cache


class ModelAskingJudge:
    """A rule judge that is not written as steps: it asks the model directly from
    ``evaluate``, which the scheduler calls inside a round on its own thread."""

    name = "asks-the-model"

    def __init__(self, backend):
        self.backend = backend

    def evaluate(self, requests):
        contexts = [self.backend.render_prompt(r.messages) + self.backend.tokenize(r.response)
                    for r in requests]
        assert len(self.backend.next_logprobs(contexts)) == len(contexts)
        return [harm_judge(r.prompt_text, r.response) for r in requests]


def test_a_judge_that_asks_the_model_inside_a_round_does_not_wait_for_itself():
    config = CONFIGS[1]
    alone = search(branching_backend(), PROMPTS[0], config, 0,
                   evaluator=ModelAskingJudge(branching_backend()))
    shared = SharedBackend(branching_backend())
    client = shared.client()
    [got] = run_threads([lambda: search(client, PROMPTS[0], config, 0,
                                        evaluator=ModelAskingJudge(client))])
    assert got.tree.to_dict() == alone.tree.to_dict() and got.text == alone.text


def test_an_error_inside_a_search_reaches_its_own_caller_and_the_scheduler_goes_on():
    class Broken:
        name = "broken"

        def evaluate(self, requests):
            raise RuntimeError("the judge is down")

    shared = SharedBackend(branching_backend())
    bad, good = shared.client(), shared.client()
    with pytest.raises(RuntimeError, match="the judge is down"):
        run_threads([lambda: search(bad, PROMPTS[0], CONFIGS[1], 0, evaluator=Broken())])
    [after] = run_threads([lambda: search(good, PROMPTS[1], CONFIGS[1], 1)])
    assert after.text == search(branching_backend(), PROMPTS[1], CONFIGS[1], 1).text
    shared.close()


class HeldEngine:
    """The scripted model as an engine that takes concurrent calls: a call for the
    prompt ``held`` waits until ``release`` is set (a slow request on its way)."""

    takes_concurrent_calls = True

    def __init__(self, inner, held: list[int]):
        self.inner, self.held = inner, held
        self.release = threading.Event()
        self.waiting = threading.Event()  # set while the held call waits
        for name in ("name", "capabilities", "eos_token_ids", "bos_ids", "counters",
                     "tokenize", "detokenize", "render_prompt"):
            setattr(self, name, getattr(inner, name))

    def next_logprobs(self, contexts, *, top_k=None):
        if any(list(c) == self.held for c in contexts):
            self.waiting.set()
            assert self.release.wait(JOIN_S)
        return self.inner.next_logprobs(contexts, top_k=top_k)


def test_on_an_engine_a_new_request_does_not_wait_for_a_slow_call_on_its_way():
    inner = branching_backend()
    held = inner.render_prompt([{"role": "user", "content": "Hi"}])
    engine = HeldEngine(inner, held)
    shared = SharedBackend(engine)
    slow, fast = shared.client(), shared.client()

    def fast_search():
        assert engine.waiting.wait(JOIN_S)  # the slow call is on its way
        done = search(fast, PROMPTS[1], CONFIGS[1], 1)
        engine.release.set()  # only now may the slow call end
        return done

    got_slow, got_fast = run_threads([lambda: slow.next_logprobs([held]), fast_search])
    assert len(got_slow) == 1
    assert got_fast.text == search(branching_backend(), PROMPTS[1], CONFIGS[1], 1).text
    # each request's share of the work adds up to the backend's whole
    assert slow.counters.prefill_tokens + fast.counters.prefill_tokens == inner.counters.prefill_tokens


class SchedulerFault(BaseException):
    """Not an Exception: escapes every search's own error handling."""


def test_a_fault_of_the_scheduler_ends_the_searches_in_flight_and_the_next_ones_run():
    inner = branching_backend()

    class Faulty:
        def __init__(self):
            self.faults = 1
            for name in ("name", "capabilities", "eos_token_ids", "bos_ids", "counters",
                         "tokenize", "detokenize", "render_prompt"):
                setattr(self, name, getattr(inner, name))

        def next_logprobs(self, contexts, *, top_k=None):
            if len(contexts) > 0 and self.faults and gated.entered.is_set():
                self.faults -= 1
                raise SchedulerFault("the scheduler broke")
            return inner.next_logprobs(contexts, top_k=top_k)

    gated = GatedBackend(Faulty(), count=2)
    shared = gated.shared = SharedBackend(gated)
    a, b = shared.client(), shared.client()
    prompt = inner.render_prompt([{"role": "user", "content": "Hi"}])
    # the first call is held until both are in flight; the next backend call faults
    results = run_threads([lambda: _any_error(lambda: a.next_logprobs([prompt])),
                           lambda: gated.entered.wait(JOIN_S) and _any_error(
                               lambda: b.next_logprobs([prompt + [5]]))])
    assert any(isinstance(r, RuntimeError) and "scheduler failed" in str(r) for r in results)
    # a later request runs in a fresh scheduler
    [after] = run_threads([lambda: search(shared.client(), PROMPTS[1], CONFIGS[1], 1)])
    assert after.text == search(branching_backend(), PROMPTS[1], CONFIGS[1], 1).text
    assert shared._in_flight == 0


def _any_error(call):
    try:
        return call()
    except Exception as exc:
        return exc
