"""Candidate proposal (§3.3): top-k single tokens, greedy + sampled sets, greedy clipping."""

import numpy as np
import pytest

from rainlm.core.model_calls import drive
from rainlm.backends.scripted import ScriptedBackend
from rainlm.core.expansion import (clip_greedy_probability, propose_single_tokens,
                                   propose_token_sets, sample_token_sets)
from rainlm.core.model_calls import ModelCalls
from rainlm.core.stats import SearchStats


def test_clip_greedy_probability_hand_computed():
    assert clip_greedy_probability(0.9, [0.1, 0.2, 0.05]) == pytest.approx(0.35)  # capped at sum
    assert clip_greedy_probability(0.01, [0.1, 0.2, 0.05]) == pytest.approx(0.25)  # raised to max+min
    assert clip_greedy_probability(0.3, [0.1, 0.2, 0.05]) == pytest.approx(0.3)  # inside: unchanged
    assert clip_greedy_probability(0.5, [0.2]) == pytest.approx(0.4)  # lower bound wins a conflict


def test_single_tokens_top_k_and_spares_drop_zero_probability():
    ids = np.array([5, 3, 9, 1, 2])
    probs = np.array([0.5, 0.3, 0.15, 0.05, 0.0])
    prop = propose_single_tokens(ids, probs, top_k=2, spare_count=5)
    assert prop.candidates == [((5,), 0.5), ((3,), 0.3)]
    assert prop.spares == [((9,), 0.15), ((1,), 0.05)]


VOCAB = [" a", " b", " c"]


def _uniformish(answer):
    return {" a": 0.5, " b": 0.3, " c": 0.2} if len(answer) < 3 else {"<eos>": 1.0}


def test_token_sets_greedy_first_deduplicated_and_probabilities_are_products():
    backend = ScriptedBackend(VOCAB, _uniformish)
    calls = ModelCalls(SearchStats())
    state = backend.render_prompt([{"role": "user", "content": "q"}])
    prop = drive(propose_token_sets(calls, state, 2, 10, 15, np.random.default_rng(0),
                                    backend.eos_token_ids, clip_greedy=False), backend)
    a = backend.index[" a"]
    assert prop.candidates[0] == ((a, a), pytest.approx(0.25))  # greedy: argmax twice
    sets = [c[0] for c in prop.candidates]
    assert len(sets) == len(set(sets)) <= 10
    law = {backend.index[k]: v for k, v in _uniformish(()).items()}
    for tokens, p in prop.candidates:
        assert p == pytest.approx(law[tokens[0]] * law[tokens[1]])


def test_token_sets_stop_at_eos():
    backend = ScriptedBackend(VOCAB, lambda ans: {"<eos>": 1.0})
    calls = ModelCalls(SearchStats())
    drawn = drive(sample_token_sets(calls, [backend.index["<assistant>"]], 4, 3, 15,
                                    np.random.default_rng(0), backend.eos_token_ids,
                                    include_greedy=True), backend)
    assert all(tokens == (backend.index["<eos>"],) for tokens, _ in drawn)


def test_top_k_filter_is_respected():
    backend = ScriptedBackend(VOCAB, _uniformish)
    calls = ModelCalls(SearchStats())
    drawn = drive(sample_token_sets(calls, [backend.index["<assistant>"]], 1, 50, 1,
                                    np.random.default_rng(3), backend.eos_token_ids,
                                    include_greedy=False), backend)
    assert {t for t, _ in drawn} == {(backend.index[" a"],)}  # top-1 only
    assert all(p == pytest.approx(1.0) for _, p in drawn)  # renormalised over the top-1
