"""The llama.cpp backend on the REAL embedded GGUF (no mocks): caches, text, errors.

"Cached equals fresh": every distribution served after rewinding, branching, extending
or from the LRU is compared with a fresh backend's (cache cleared before each context).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from tests.needs import require_module

require_module("llama_cpp", part="llama.cpp")
# a build that crashes on this CPU fails these tests, not the run (conftest)
pytestmark = pytest.mark.usefixtures("llamacpp_runs")

from rainlm.backends.llamacpp import LlamaCppBackend  # noqa: E402
from rainlm.errors import (  # noqa: E402
    BackendError,
    CapabilityError,
    ConfigError,
    ModelNotFoundError,
)

model = pytest.mark.model
TOL = 1e-4  # max abs log-prob difference on the fresh top-20 tokens
CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "You answer briefly."},
     {"role": "user", "content": "Name a colour."}],
    [{"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello, how can I help?"},
     {"role": "user", "content": "Tell me a joke about cats. 😀 Ünïcode <b>tags</b>"}],
]


@pytest.fixture(scope="module")
def lb():
    b = LlamaCppBackend(n_threads=1)
    yield b
    b.close()


@pytest.fixture(scope="module")
def fresh_backend():
    b = LlamaCppBackend(n_threads=1, distribution_cache=0)
    yield b
    b.close()


@pytest.fixture(scope="module")
def prompt(lb):
    return lb.render_prompt(CONVERSATIONS[0])


def fresh(backend: LlamaCppBackend, ctx) -> np.ndarray:
    """Log-probs after ``ctx`` from an emptied cache (one evaluation of all of it)."""
    backend.clear_cache()
    d, = backend.next_logprobs([list(ctx)])
    return d.logprobs


def assert_fresh(fresh_b, dist, ctx) -> None:
    ref = fresh(fresh_b, ctx)
    ids = np.argsort(-ref)[:20]
    assert dist.is_dense and dist.logprobs.dtype == np.float32
    assert dist.logprobs.shape == (fresh_b.vocab_size,)
    assert np.abs(dist.logprobs[ids] - ref[ids]).max() < TOL


# ------------------------------------------------------------------ caches
@model
def test_extension_token_by_token_equals_fresh(lb, fresh_backend, prompt):
    lb.clear_cache()
    ctx = list(prompt)
    for _ in range(12):  # greedy decoding: each call extends the cached sequence by one
        d, = lb.next_logprobs([ctx])
        assert_fresh(fresh_backend, d, ctx)
        ctx.append(d.argmax())


@model
def test_rewinding_and_branching_equal_fresh(lb, fresh_backend, prompt):
    """A random walk over branches of a small tree: every answer equals a fresh one."""
    lb.clear_cache()
    words = lb.tokenize(" The capital of France is Paris, a city on the Seine.")
    rng = np.random.default_rng(0)
    for _ in range(25):
        depth = int(rng.integers(1, len(words) + 1))
        ctx = prompt + words[:depth]
        if rng.random() < 0.5:  # a sibling branch: the last token differs
            ctx = ctx[:-1] + [int(rng.integers(100, 20000))]
        d, = lb.next_logprobs([ctx])
        assert_fresh(fresh_backend, d, ctx)


@model
def test_lru_hits_need_no_forward_pass_and_are_identical(lb, prompt):
    lb.clear_cache()
    first, = lb.next_logprobs([prompt])
    lb.next_logprobs([prompt + lb.tokenize(" I think")])
    before = lb.counters.snapshot()
    again, = lb.next_logprobs([prompt])
    after = lb.counters.snapshot()
    assert after["forward_calls"] == before["forward_calls"]
    assert after["cache_hits"] == before["cache_hits"] + 1
    assert np.array_equal(first.logprobs, again.logprobs)
    assert not again.logprobs.flags.writeable


@model
def test_one_call_equals_separate_calls(lb, fresh_backend, prompt):
    """Several contexts in one call (a judge / expansion batch) in any order."""
    lb.clear_cache()
    ctxs = [prompt + lb.tokenize(t) for t in (" Paris", " The capital", " I", " The answer")]
    ctxs.append(ctxs[1])  # a repeat within the call
    before = lb.counters.snapshot()
    dists = lb.next_logprobs(ctxs)
    after = lb.counters.snapshot()
    assert after["cache_hits"] - before["cache_hits"] == 1
    assert after["cache_misses"] - before["cache_misses"] == 4
    for d, c in zip(dists, ctxs, strict=True):
        assert_fresh(fresh_backend, d, c)


@model
def test_counters_and_cache_info(prompt):
    b = LlamaCppBackend(n_threads=1, distribution_cache=2)
    b.next_logprobs([prompt])
    c = b.counters.snapshot()
    assert c["prefill_tokens"] == len(prompt) and c["cache_misses"] == 1
    b.next_logprobs([prompt + [11]])  # one new token: a decode step (2 tokens encoded)
    c = b.counters.snapshot()
    assert c["decode_tokens"] == 2 and c["cached_tokens_reused"] == len(prompt) - 1
    b.next_logprobs([prompt + [11, 12]])
    info = b.cache_info()
    assert info["entries"] == 2 and info["budget_entries"] == 2  # the LRU is bounded
    assert info["kv_tokens"] == len(prompt) + 2 and info["n_ctx"] == 4096
    b.clear_cache()
    assert b.cache_info()["entries"] == 0 and b.cache_info()["kv_tokens"] == 0
    b.close()


# ------------------------------------------------------------------ text
@model
@pytest.mark.parametrize("i", range(len(CONVERSATIONS)))
def test_render_prompt_equals_transformers(lb, embedded_backend, i):
    assert lb.render_prompt(CONVERSATIONS[i]) == embedded_backend.render_prompt(CONVERSATIONS[i])


@model
def test_tokens_and_text_agree_with_transformers(lb, embedded_backend):
    assert lb.eos_token_ids == embedded_backend.eos_token_ids
    for text in ("Hello, world!", "  two  spaces\n\nnew\tlines", "émoji 😀 中文", "x" * 40,
                 "It's 3.14159, isn't it?", "-" * 70):
        assert lb.tokenize(text) == embedded_backend.tokenize(text)
    rng = np.random.default_rng(0)
    for _ in range(200):  # random ids, with special tokens mixed in
        ids = rng.integers(0, lb.vocab_size, size=int(rng.integers(1, 8))).tolist()
        ids.insert(int(rng.integers(0, len(ids) + 1)), int(rng.integers(0, 17)))
        assert lb.detokenize(ids) == embedded_backend.detokenize(ids), ids


@model
def test_user_text_is_not_parsed_as_special_tokens(lb):
    assert 2 not in lb.tokenize("<|im_end|>")  # 2 is <|im_end|>


@model
@pytest.mark.parametrize("question", ["What is the capital of France?", "Name a colour.",
                                      "How do I bake bread?"])
def test_top_tokens_agree_with_transformers(lb, embedded_backend, question):
    """Q4_1 with 8-bit activations vs the fp32 de-quantisation: rankings, not numbers."""
    msgs = [{"role": "user", "content": question}]
    a, = lb.next_logprobs([lb.render_prompt(msgs)])
    b, = embedded_backend.next_logprobs([embedded_backend.render_prompt(msgs)])
    top_a, top_b = a.top_k(5)[0].tolist(), b.top_k(5)[0].tolist()
    assert len(set(top_a) & set(top_b)) >= 3, (top_a, top_b)
    assert top_a[0] in top_b[:3] and top_b[0] in top_a[:3]
    shared = sorted(set(top_a) & set(top_b))
    assert np.abs(a.logprobs[shared] - b.logprobs[shared]).max() < 0.5


# ------------------------------------------------------------------ errors
def test_missing_gguf_names_the_path(tmp_path):
    path = tmp_path / "nope.gguf"
    with pytest.raises(ModelNotFoundError, match="nope.gguf"):
        LlamaCppBackend(path)


def test_missing_llama_cpp_says_how_to_install(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "llama_cpp" else real(name, *a))
    with pytest.raises(CapabilityError, match=r"pip install 'rainlm\[llamacpp\]'"):
        LlamaCppBackend(tmp_path / "any.gguf")


@model
def test_context_longer_than_n_ctx_is_a_config_error():
    b = LlamaCppBackend(n_ctx=64, n_threads=1)
    ids = b.tokenize("one two three four five six seven eight nine ten " * 8)
    assert len(ids) > 64
    b.next_logprobs([ids[:64]])  # exactly n_ctx fits
    with pytest.raises(ConfigError, match=r"n_ctx=64.*n_ctx=\d+") as err:
        b.next_logprobs([ids[:65]])
    assert err.value.field == "n_ctx"
    b.close()


@model
def test_bad_contexts_are_config_errors(lb):
    with pytest.raises(ConfigError, match="empty"):
        lb.next_logprobs([[]])
    with pytest.raises(ConfigError, match="outside the vocabulary"):
        lb.next_logprobs([[1, lb.vocab_size]])
    with pytest.raises(ConfigError, match="n_batch"):
        LlamaCppBackend(n_batch=0)


@model
def test_rain_result_does_not_depend_on_the_cache():
    """Exact caching: one KV sequence or two, with or without the LRU, same tree."""
    import rainlm

    cfg = rainlm.RainConfig.preset("harmless", max_searches=4, min_new_searches=2,
                                   max_simulation_tokens=3)
    out = []
    for kw in ({"n_sequences": 1, "distribution_cache": 0}, {"n_sequences": 2}):
        b = LlamaCppBackend(n_threads=1, **kw)
        r = rainlm.generate(b, "How do I bake bread?", cfg, embedder="hashing", seed=0,
                            max_new_tokens=3)
        out.append((r.token_ids, [(n.tokens, round(n.value, 12), n.visits)
                                  for n in r.tree.nodes], r.stats["backend"]))
        b.close()
    assert out[0][:2] == out[1][:2]
    one, two = out[0][2], out[1][2]  # the second sequence keeps the judge's prompt
    assert two["prefill_tokens"] < one["prefill_tokens"]


@model
def test_long_contexts_split_into_batches_equal_fresh(fresh_backend, prompt):
    """n_batch=8: prompts go through llama_decode in chunks (never a 1-token chunk)."""
    b = LlamaCppBackend(n_threads=1, n_batch=8)
    for extra in (0, 1, 2, 9):  # prompt lengths on and around chunk boundaries
        ctx = prompt + list(range(300, 300 + extra))
        b.clear_cache()
        d, = b.next_logprobs([ctx])
        assert_fresh(fresh_backend, d, ctx)
    assert max(b.counters.batch_sizes) == 1 and b.counters.forward_calls >= 20
    b.close()


@model
def test_a_closed_backend_says_so():
    b = LlamaCppBackend(n_threads=1)
    b.close()
    with pytest.raises(BackendError, match="closed"):
        b.next_logprobs([[1, 2]])
    with pytest.raises(BackendError, match="closed"):
        b.tokenize("x")
