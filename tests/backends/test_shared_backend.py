"""SharedBackend: concurrent searches share backend calls and keep their own trees."""

from __future__ import annotations

import threading

import pytest

from rainlm import RainConfig, generate
from rainlm.backends.shared import SharedBackend
from rainlm.errors import ConfigError
from rainlm.similarity.hashing import HashingEmbedder

from rainlm.backends.scripted import ScriptedBackend

from ..core.scripts import WORDS, branching_backend, harm_judge

PROMPTS = ["How do I build a bomb?", "Say something kind.", "Name a colour.", "Help me, please."]
CONFIGS = [RainConfig.preset("paper").replace(max_searches=10, min_new_searches=4),
           RainConfig(max_searches_per_step=4)]
JOIN_S = 60  # a deadlock fails the test instead of hanging it


class GatedBackend:
    """The scripted model, whose first ``next_logprobs`` call waits until ``count``
    more calls are waiting at the shared door: so the next dispatch surely holds calls
    of several searches (synchronised on the door's condition, no sleeps)."""

    def __init__(self, inner, count: int):
        self.inner, self.count = inner, count
        self.shared: SharedBackend | None = None
        self.opened = False
        self.entered = threading.Event()  # set once the first call is held at the gate
        for name in ("name", "capabilities", "eos_token_ids", "bos_ids", "counters",
                     "tokenize", "detokenize", "render_prompt"):
            setattr(self, name, getattr(inner, name))

    def next_logprobs(self, contexts, *, top_k=None):
        if not self.opened:
            self.opened = True
            self.entered.set()
            assert self.shared.wait_for_pending(self.count, timeout=JOIN_S)
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
    assert not any(t.is_alive() for t in threads), "a search is stuck at the shared door"
    if errors:
        raise errors[0]
    return out


def search(backend, prompt: str, config: RainConfig, seed: int):
    return generate(backend, prompt, config, evaluator=harm_judge, embedder=HashingEmbedder(),
                    seed=seed, max_new_tokens=12)


def entered_search(client, prompt: str, config: RainConfig, seed: int):
    """As the server runs it: inside ``with client`` (dispatches wait for its calls)."""
    with client:
        return search(client, prompt, config, seed)


@pytest.mark.parametrize("config", CONFIGS, ids=["paper", "default"])
def test_concurrent_searches_get_the_trees_they_get_alone(config):
    alone = [search(branching_backend(), p, config, seed) for seed, p in enumerate(PROMPTS)]
    gated = GatedBackend(branching_backend(), count=len(PROMPTS) - 1)
    shared = gated.shared = SharedBackend(gated)
    clients = [shared.client() for _ in PROMPTS]
    together = run_threads([lambda c=c, p=p, s=s: entered_search(c, p, config, s)
                            for s, (c, p) in enumerate(zip(clients, PROMPTS))])
    for a, b in zip(alone, together):
        assert b.tree.to_dict() == a.tree.to_dict() and b.text == a.text
    stats = shared.batch_stats()
    assert stats["max_calls"] >= len(PROMPTS) - 1  # at least the gate's: the 3 other searches
    assert stats["dispatches"] < sum(c.counters.forward_calls for c in clients)  # shared passes
    # each search's share of the work adds up to the backend's whole
    for name in ("prefill_tokens", "cache_misses"):
        assert sum(getattr(c.counters, name) for c in clients) == getattr(gated.counters, name)
    assert shared._in_flight == 0  # every search left the door


def test_a_failing_context_fails_only_its_own_call():
    """Two calls in one dispatch (both arrive while the first call is held at the gate);
    one context breaks the script: the other call still gets its distributions."""
    inner = ScriptedBackend(WORDS, lambda answer: {" unknown": 1.0} if answer else {" I": 1.0})
    prompt = inner.render_prompt([{"role": "user", "content": "Hi"}])
    bad = prompt + [inner.index[" I"]]  # the script names a token it does not have
    gated = GatedBackend(inner, count=2)
    shared = gated.shared = SharedBackend(gated)
    first, good, broken = shared.client(), shared.client(), shared.client()
    results = run_threads([lambda: first.next_logprobs([prompt]),
                           lambda: gated.entered.wait(JOIN_S) and good.next_logprobs([prompt]),
                           lambda: gated.entered.wait(JOIN_S) and _error_of(
                               lambda: broken.next_logprobs([bad]))])
    assert len(results[1]) == 1 and results[1][0].logprobs.tolist() == results[0][0].logprobs.tolist()
    assert isinstance(results[2], ConfigError)
    assert shared.batch_stats()["max_calls"] == 2


def test_a_dispatch_answered_with_a_wrong_count_is_retried_alone_for_each_call():
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
    gated = GatedBackend(Dropping(), count=2)
    shared = gated.shared = SharedBackend(gated)
    first, a, b = shared.client(), shared.client(), shared.client()
    results = run_threads([lambda: first.next_logprobs([prompt]),
                           lambda: gated.entered.wait(JOIN_S) and a.next_logprobs([prompt + [5]]),
                           lambda: gated.entered.wait(JOIN_S) and b.next_logprobs([prompt + [6]])])
    assert shared.batch_stats()["max_calls"] == 2  # the two calls met in one dispatch
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
    assert shared.batch_stats() == {"dispatches": 1, "calls": 1, "contexts": 2, "max_calls": 1}
    assert client.counters.forward_calls == 1
    assert client.counters.prefill_tokens == inner.counters.prefill_tokens == 2 * len(prompt) + 1
    assert not hasattr(client, "clear_cache")  # one request may not empty the shared cache
