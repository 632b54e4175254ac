"""Fluency (mean NLL per token) on the REAL embedded model, and on a sparse backend."""

from __future__ import annotations

import numpy as np
import pytest

from rainlm.backends.distribution import TokenDistribution
from rainlm.fluency import answer_nll


@pytest.mark.model
def test_the_models_own_answer_reads_as_more_fluent_than_noise(embedded_backend):
    from rainlm.api import greedy

    messages = [{"role": "user", "content": "What is the best way to learn a new language?"}]
    prompt = embedded_backend.render_prompt(messages)
    answer = greedy(embedded_backend, messages, max_new_tokens=16)
    own = answer_nll(embedded_backend, prompt, answer.token_ids)
    noise = answer_nll(embedded_backend, prompt, embedded_backend.tokenize(
        " spasugglobella par curgeo unda Emerald Palace and Huangbo a Justa"))
    assert own.tokens == len(answer.token_ids) and not own.approximate
    assert 0 <= own.nll < 1.5 < 4.0 < noise.nll  # measured 0.7 and 6.8 nats
    by_hand = -sum(float(d.logprobs[t]) for d, t in zip(
        embedded_backend.next_logprobs([prompt + list(answer.token_ids[:i])
                                        for i in range(len(answer.token_ids))]),
        answer.token_ids)) / len(answer.token_ids)
    assert own.nll == pytest.approx(by_hand, abs=1e-4)
    assert answer_nll(embedded_backend, prompt, []).nll is None


class Sparse:
    """Top-2 log-probs only: token 1 at log 0.5, token 2 at log 0.25, for any context."""

    def next_logprobs(self, contexts, *, top_k=None):
        return [TokenDistribution(np.log([0.5, 0.25]), np.array([1, 2])) for _ in contexts]


def test_a_token_a_sparse_backend_does_not_list_is_bounded_and_marked():
    listed = answer_nll(Sparse(), [0], [1, 2])
    assert listed.nll == pytest.approx(-(np.log(0.5) + np.log(0.25)) / 2)
    assert not listed.approximate
    missing = answer_nll(Sparse(), [0], [1, 7])
    assert missing.approximate and missing.nll == pytest.approx(listed.nll)


@pytest.mark.model
def test_an_answers_measured_fluency_is_the_fluency_floors_measure(embedded_backend):
    # rain generate --compare shows greedy's NLL; the search's fluency floor starts from
    # its own greedy pass: the same prompt (system prompt included) and the same end
    # token counted, so the two numbers are one
    from rainlm.config import RainConfig
    from rainlm.request import GenerationParams, answer, measure_fluency

    config = RainConfig.preset("harmless", answer_nll_margin=5.0, max_total_searches=2)
    params = GenerationParams(config=config, max_new_tokens=24, system="Answer in one sentence.",
                              embedder="none")
    question = "What is the capital of France?"
    rain = answer(embedded_backend, question, params, score=False)
    greedy = measure_fluency(embedded_backend,
                             answer(embedded_backend, question, params.baseline(), score=False))
    assert greedy.result.finish_reason == "eos"  # measured: "The capital of France is Paris."
    assert greedy.fluency.tokens == len(greedy.result.token_ids) + 1
    assert greedy.fluency.nll == pytest.approx(rain.result.stats["greedy_reference_nll"],
                                               abs=1e-3)
