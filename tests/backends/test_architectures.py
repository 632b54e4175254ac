"""The transformers backend on every common architecture: tiny random-weight models.

Llama, Qwen2, Qwen3, Mistral, Gemma3 (text, hybrid sliding-window/full attention with a
window shorter than every prompt here), Phi3 and GPT-2, each built from its config class
with ``AutoModelForCausalLM.from_config`` (2 layers, hidden 64, seeded: nothing is
downloaded, each builds in ~0.1 s) and the embedded SmolLM2 tokenizer (vocab 49152),
then wrapped in ``TransformersBackend(model, tokenizer)``.

Each runs the shared backend contract (less the checks of what the embedded model
*knows*, which random weights cannot pass: they are replaced by the same checks without
the knowledge), every prefix-cache path compared over the whole vocabulary with an
uncached forward, batched against single contexts, and a short seeded RAIN search.

Random weights still make these checks sharp (``test_the_tiny_model_sees_order_and_
position``): log-probs stay near ln(1/49152) but move by 0.14-0.5 when two early tokens
are swapped and by 3-5 when the last token's position is off by one, while every cache
path agrees with fresh forwards within 3.8e-6 on all seven (TOL: 2e-5).
"""

from __future__ import annotations

import numpy as np
import pytest

import rainlm
from rainlm.backends.base import clear_prefix_cache
from tests.backends.contract import QUESTION, BackendContract
from tests.needs import require_embedded_model, require_module

pytestmark = pytest.mark.model

TOL = 2e-5
"""Max |Δ log p| over the whole vocabulary, one model, cached/batched vs one fresh forward.

Measured on these models (x86 CPU, one thread): at most 3.8e-6 on any cache path of any
architecture (batched vs single: 1.9e-6), i.e. four float32 steps at |log p| ~ 10.8
(spacing 9.5e-7). 2e-5 leaves 5x for other CPUs' kernels; a wrong position, an attended
padding token or a stale cache moves log-probs by >= 0.14 here (the sensitivity test)."""
INIT = 0.1
"""Weight init std. At the configs' default (0.02) attention is so flat that two chat
prompts sharing their last tokens get the same top-3 (the contract tells them apart) and
swapping two early tokens moves log-probs by only ~2e-2; at 0.1 context matters ~10x
more and rounding stays within a few float32 steps."""
SLIDING_WINDOW = 8  # Gemma3's local layers: shorter than every context tested here
SIZES = {"vocab_size": 49152, "hidden_size": 64, "intermediate_size": 128,
         "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
         "max_position_embeddings": 512, "initializer_range": INIT}


def _llama(ids: dict):
    from transformers import LlamaConfig
    return LlamaConfig(**SIZES, **ids)


def _qwen2(ids: dict):
    from transformers import Qwen2Config
    return Qwen2Config(**SIZES, **ids)


def _qwen3(ids: dict):
    from transformers import Qwen3Config
    return Qwen3Config(**SIZES, head_dim=16, **ids)


def _mistral(ids: dict):
    """No sliding window, as Mistral-7B-Instruct-v0.2/v0.3 ship (v0.1's 4096-token window
    takes Gemma3's path: its cache is made of sliding-window layers)."""
    from transformers import MistralConfig
    return MistralConfig(**SIZES, sliding_window=None, **ids)


def _gemma3(ids: dict):
    """Gemma3's text model: one sliding-window layer, one full-attention layer."""
    from transformers import Gemma3TextConfig
    return Gemma3TextConfig(**SIZES, head_dim=16, sliding_window=SLIDING_WINDOW,
                            layer_types=["sliding_attention", "full_attention"], **ids)


def _phi3(ids: dict):
    from transformers import Phi3Config
    return Phi3Config(**SIZES, **ids)


def _gpt2(ids: dict):
    """Learned absolute positions (no rotary embedding), fused QKV, tied LM head."""
    from transformers import GPT2Config
    return GPT2Config(vocab_size=SIZES["vocab_size"], n_embd=64, n_layer=2, n_head=4,
                      n_positions=512, initializer_range=INIT,
                      bos_token_id=ids["bos_token_id"], eos_token_id=ids["eos_token_id"])


CONFIGS = {"llama": _llama, "qwen2": _qwen2, "qwen3": _qwen3, "mistral": _mistral,
           "gemma3": _gemma3, "phi3": _phi3, "gpt2": _gpt2}
ARCHS = list(CONFIGS)
SLIDING = {"gemma3"}
"""Architectures whose cache holds sliding-window layers: the backend keeps exact hits only
(a window that has dropped keys cannot be cropped or shared), every other one reuses
prefixes."""


# ------------------------------------------------------------------ building
@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One torch thread for this module (two spin-wait on each other on a busy 2-core
    machine: see tests/conftest.py)."""
    torch = require_module("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tokenizer():
    """The embedded SmolLM2 tokenizer (offline), shared by every tiny model."""
    require_module("transformers")
    require_embedded_model()
    from transformers import AutoTokenizer

    from rainlm.backends.embedded import ensure_embedded_folder

    return AutoTokenizer.from_pretrained(str(ensure_embedded_folder()), local_files_only=True)


def tiny_model(arch: str, tokenizer, seed: int = 0):
    """A seeded random-weight ``arch`` model sized for ``tokenizer`` (float32, eval)."""
    import torch
    from transformers import AutoModelForCausalLM

    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
           "pad_token_id": tokenizer.pad_token_id}
    config = CONFIGS[arch](ids)
    assert config.vocab_size == len(tokenizer)
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()


def tiny_backend(arch: str, tokenizer, **kw):
    """A TransformersBackend over a fresh ``tiny_model`` (empty cache, zero counters)."""
    from rainlm.backends.transformers import TransformersBackend

    return TransformersBackend(tiny_model(arch, tokenizer), tokenizer, name=f"tiny-{arch}",
                               device="cpu", **kw)


@pytest.fixture(params=ARCHS)
def backend(request, tokenizer):
    return tiny_backend(request.param, tokenizer)


# ------------------------------------------------------------------ comparing
def fresh(backend, ctx) -> np.ndarray:
    """Log-probs after ``ctx`` from one uncached forward of the whole context."""
    return logprobs_at(backend.model, list(ctx))


def logprobs_at(model, ctx: list[int], positions: list[int] | None = None) -> np.ndarray:
    """Last-position log-probs of one uncached forward (at explicit ``positions``)."""
    import torch

    kw = {} if positions is None else {"position_ids": torch.tensor([positions])}
    with torch.inference_mode():
        out = model(input_ids=torch.tensor([ctx]), use_cache=False, **kw)
        return torch.log_softmax(out.logits[0, -1].float(), dim=-1).numpy()


def max_diff_from_fresh(backend, contexts) -> float:
    """Ask the backend for ``contexts`` in one call; the largest |Δ log p| to fresh forwards."""
    dists = backend.next_logprobs(contexts)
    return max(float(np.abs(d.logprobs - fresh(backend, c)).max())
               for d, c in zip(dists, contexts, strict=True))


def assert_fresh(backend, contexts) -> None:
    """Every distribution of one call equals an uncached forward within TOL."""
    assert max_diff_from_fresh(backend, contexts) < TOL


def reused(backend, before: dict) -> int:
    """Cached tokens reused since the counters' snapshot ``before``."""
    return backend.counters.snapshot()["cached_tokens_reused"] - before["cached_tokens_reused"]


def arch_of(backend) -> str:
    """The architecture a ``tiny_backend`` was built for (from its name)."""
    return backend.name.removeprefix("tiny-")


def expect_reuse(backend, before: dict) -> None:
    """The prefix cache served the last call, unless the model's cache cannot be shared."""
    if arch_of(backend) in SLIDING:
        assert reused(backend, before) == 0 and backend.cache_info()["kv_entries"] == 0
    else:
        assert reused(backend, before) > 0


def chat(backend, text: str) -> list[int]:
    return list(backend.render_prompt([{"role": "user", "content": text}]))


def top_tokens(backend, ctx, k: int) -> list[int]:
    return [int(t) for t in np.argsort(-backend.next_logprobs([ctx])[0].logprobs)[:k]]


# ------------------------------------------------------------------ the contract
class TestTinyArchitectureContract(BackendContract):
    """The shared contract on each architecture, one class-scoped backend per model."""

    @pytest.fixture(scope="class", params=ARCHS)
    @classmethod
    def contract_backend(cls, request, tokenizer):
        return tiny_backend(request.param, tokenizer)

    # What the embedded model knows ("Paris"), random weights cannot say:
    test_the_answer_starts_sensibly = None

    def assert_knows_the_capital(self, b, ext, dist) -> None:
        """Instead of "Paris": the cached distribution equals a fresh forward."""
        assert np.abs(dist.logprobs - fresh(b, ext)).max() < TOL

    def assert_knows_the_answer(self, text: str) -> None:
        """Random weights know nothing: the contract's length and finish checks remain."""


# ------------------------------------------------------------------ the models themselves
@pytest.mark.parametrize("arch", ARCHS)
def test_the_tiny_model_sees_order_and_position(arch, tokenizer):
    """Guard for every "equals fresh" check below: the random model's log-probs move by
    far more than TOL when two early tokens swap or the last token's position is off by
    one (what a wrong cache or position id would do)."""
    backend = tiny_backend(arch, tokenizer)
    model, ctx = backend.model, chat(backend, QUESTION)
    base = logprobs_at(model, ctx)
    swapped = [ctx[0], ctx[2], ctx[1], *ctx[3:]]
    gap = [*range(len(ctx) - 1), len(ctx)]
    assert np.abs(logprobs_at(model, swapped) - base).max() > 1000 * TOL
    assert np.abs(logprobs_at(model, ctx, gap) - base).max() > 1000 * TOL
    if arch in SLIDING:
        assert model.config.sliding_window < len(ctx)


# ------------------------------------------------------------------ every cache path
def test_batched_equals_single(backend):
    """Contexts of different lengths in one call equal each asked alone on an empty cache."""
    contexts = [chat(backend, "Name a colour."), chat(backend, QUESTION),
                backend.tokenize("Write one short sentence about the sea."), [5, 6]]
    together = backend.next_logprobs(contexts)
    assert max(backend.counters.batch_sizes) > 1  # some rows really shared a forward pass
    for ctx, d in zip(contexts, together, strict=True):
        clear_prefix_cache(backend)
        alone, = backend.next_logprobs([ctx])
        assert np.abs(d.logprobs - alone.logprobs).max() < TOL
        assert np.abs(alone.logprobs - fresh(backend, ctx)).max() < TOL


def test_in_place_extension_equals_fresh(backend):
    """The simulation pattern: one token added per call to the same cached context."""
    ctx = chat(backend, "Name a colour.")
    backend.next_logprobs([ctx])
    before = backend.counters.snapshot()
    for tok in backend.tokenize(" Blue is nice"):
        ctx = ctx + [tok]
        assert_fresh(backend, [ctx])
    expect_reuse(backend, before)
    assert_fresh(backend, [ctx[:-1]])  # the consumed prefix answers from its kept logits


def test_copy_and_crop_equal_fresh(backend):
    """Two extensions of one entry (each on a copy), then a context that diverges from the
    longest entry three tokens before its end (cropped), then that entry again."""
    prompt = chat(backend, "Name a colour.")
    backend.next_logprobs([prompt])
    long = prompt + backend.tokenize(" Green is my favourite colour of them all, really")
    before = backend.counters.snapshot()
    assert_fresh(backend, [prompt + backend.tokenize(" Red"), long])
    expect_reuse(backend, before)
    before = backend.counters.snapshot()
    assert_fresh(backend, [long[:-3] + backend.tokenize(" yellow")])
    expect_reuse(backend, before)
    assert_fresh(backend, [long])


def test_one_source_batched_and_padded_equals_fresh(backend):
    """The expansion pattern: several tokens after one cached context in one pass (the
    cache batch-repeated), then unequal suffixes right-padded together."""
    prompt = chat(backend, "Name a colour.")
    top = top_tokens(backend, prompt, 6)
    contexts = [prompt + [t] for t in top]
    before = backend.counters.snapshot()
    assert_fresh(backend, contexts)
    expect_reuse(backend, before)
    padded = [contexts[0] + [top[1]], contexts[0] + [top[2], top[3]]]
    assert_fresh(backend, padded)
    assert_fresh(backend, [padded[1] + [top[0]]])  # a row stored from the batch extends


def test_different_sources_equal_and_ragged_equal_fresh(backend):
    """Each context extends its own cached entry by one token: entries of one length are
    stacked, entries of different lengths padded and the padding masked (ragged, with
    explicit position ids); rows stored from either extend correctly again."""
    prompt = chat(backend, "Name a colour.")
    top = top_tokens(backend, prompt, 4)
    step = [prompt + [t] for t in top]
    backend.next_logprobs(step)
    before = backend.counters.snapshot()
    assert_fresh(backend, [c + [top[0]] for c in step])
    expect_reuse(backend, before)
    clear_prefix_cache(backend)
    sources = [prompt, backend.tokenize("Name a colour."),
               backend.tokenize("Write one short sentence about the sea and the wind."),
               prompt + backend.tokenize(" Blue")]
    assert len({len(s) for s in sources}) == len(sources)
    backend.next_logprobs(sources)
    ragged = [s + backend.tokenize(" The") for s in sources]
    before = backend.counters.snapshot()
    assert_fresh(backend, ragged)
    expect_reuse(backend, before)
    assert_fresh(backend, [c + backend.tokenize(" sea") for c in ragged])


def test_shared_uncached_prefix_equals_fresh(backend):
    """A few-shot prefix common to a call's contexts, forwarded once first."""
    shared = backend.tokenize("Examples follow. " + "Q: is water wet? A: yes. " * 6)
    assert_fresh(backend, [shared + backend.tokenize(" Q: is fire cold?"),
                           shared + backend.tokenize(" Q: is ice hot?")])


def test_exact_hits_need_no_forward(backend):
    """Every architecture, sliding windows included, answers a repeated context from the
    cache: the same array, no forward pass."""
    prompt = chat(backend, QUESTION)
    first, = backend.next_logprobs([prompt])
    calls = backend.counters.forward_calls
    again, = backend.next_logprobs([prompt])
    assert backend.counters.forward_calls == calls and again.logprobs is first.logprobs


# ------------------------------------------------------------------ RAIN end to end
def avoid_the_letter_e(prompt: str, answer: str) -> float:
    """A rule as the judge: prefer answers without an "e" (random models say anything)."""
    return -1.0 if "e" in answer.lower() else 0.5


def rain(backend) -> rainlm.GenerationResult:
    cfg = rainlm.RainConfig(max_searches=4, min_new_searches=2, max_simulation_tokens=3)
    return rainlm.generate(backend, QUESTION, cfg, evaluator=avoid_the_letter_e,
                           embedder="hashing", seed=3, max_new_tokens=6)


@pytest.mark.parametrize("arch", ARCHS)
def test_rain_answers_and_is_deterministic(arch, tokenizer):
    """A short seeded RAIN search answers; the same seed gives the same answer on the
    same backend again (its cache warm) and on a second model built from the same seed."""
    backend = tiny_backend(arch, tokenizer)
    first = rain(backend)
    assert first.token_ids and len(first.token_ids) <= 6
    assert first.stats["searches"] >= 2 and first.evaluations
    assert rain(backend).token_ids == first.token_ids
    assert rain(tiny_backend(arch, tokenizer)).token_ids == first.token_ids
