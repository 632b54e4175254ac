"""The backend contract, and what the engine-side decoding buys, on a real vLLM server
(``scripts/vllm_server``: the embedded model's folder, float32, prefix caching)."""

from __future__ import annotations

import pytest

import rainlm
from rainlm.backends.decoding import DecodeRequest, decodes_natively
from tests.backends.contract import QUESTION, BackendContract


@pytest.fixture(scope="module")
def vllm_backend(vllm_url):
    from rainlm.backends.openai_compat import OpenAICompatibleBackend

    with OpenAICompatibleBackend(vllm_url) as backend:
        yield backend


class TestVLLM(BackendContract):
    engine_controls_cache = True  # the server decides what it re-encodes

    @pytest.fixture(scope="class")
    @classmethod
    def contract_backend(cls, vllm_backend):
        yield vllm_backend


def test_vllm_takes_token_ids_and_decodes_natively(vllm_backend):
    assert decodes_natively(vllm_backend)
    assert vllm_backend.prompt_mode == "ids"


def test_contexts_of_one_call_go_out_as_one_request(vllm_backend):
    prompt = vllm_backend.render_prompt([{"role": "user", "content": QUESTION}])
    before = vllm_backend.requests_sent
    dists = vllm_backend.next_logprobs([prompt + vllm_backend.tokenize(w)
                                        for w in (" The", " Paris", " It", " France")])
    assert vllm_backend.requests_sent - before == 1
    assert len(dists) == 4 and all(d.token_ids is not None for d in dists)


def test_greedy_batch_is_one_request_and_sampled_ones_have_their_own_seed(vllm_backend):
    prompt = vllm_backend.render_prompt([{"role": "user", "content": "Name one colour."}])
    before = vllm_backend.requests_sent
    greedy = vllm_backend.decode([DecodeRequest(prompt, 6), DecodeRequest(prompt, 6)])
    assert vllm_backend.requests_sent - before == 1
    assert greedy[0].tokens == greedy[1].tokens and len(greedy[0].tokens) == 6
    sampled = vllm_backend.decode([DecodeRequest(prompt, 12, temperature=1.0, seed=s)
                                   for s in (1, 2, 3, 4)])
    assert len({tuple(d.tokens) for d in sampled}) > 1  # one seed each: not one shared draw


def test_a_search_pass_costs_at_most_three_requests_on_average(vllm_backend):
    """RAIN with a judge made of code: expansion (one next-token request), imagination to
    the end of the clause (one continuation), the judge (no request). Its values stay
    below the acceptance of a whole answer, so the search runs pass after pass."""
    cfg = rainlm.RainConfig.preset("harmless", max_searches=8, min_new_searches=4)
    before = vllm_backend.requests_sent
    result = rainlm.generate(vllm_backend, "What is the best search engine?", cfg,
                             evaluator=lambda p, a: -1.0 if "google" in a.lower() else 0.5,
                             embedder="hashing", seed=0, max_new_tokens=16)
    sent = vllm_backend.requests_sent - before
    searches = result.stats["searches"]
    assert searches >= 8
    assert sent / searches <= 3.0, (sent, searches)


def test_same_seed_same_answer_through_the_engine(vllm_backend):
    cfg = rainlm.RainConfig.preset("harmless", max_searches=6, min_new_searches=2)
    answers = [rainlm.generate(vllm_backend, QUESTION, cfg,
                               evaluator=lambda p, a: -1.0 if "London" in a else 0.5,
                               embedder="hashing", seed=5, max_new_tokens=10).token_ids
               for _ in range(2)]
    assert answers[0] == answers[1]


def test_a_top_logprobs_cap_above_the_engines_is_refused_at_the_first_call(vllm_url):
    from rainlm.backends.openai_compat import OpenAICompatibleBackend
    from rainlm.errors import CapabilityError

    with OpenAICompatibleBackend(vllm_url, max_top_logprobs=60) as backend:  # server: 50
        with pytest.raises(CapabilityError, match="--max-logprobs"):
            backend.next_logprobs([backend.tokenize("Hello there")])


def test_the_frontiers_best_of_n_draws_whole_answers_from_the_engine(vllm_backend):
    """best-of-N's answers are the engine's own continuations, one request per answer
    (seeded from the answer's own generator), not one request per token; the same seed
    gives the same answers."""
    from rainlm.bench.methods import MethodSettings, draw_answers
    from rainlm.request import GenerationParams

    settings = MethodSettings(params=GenerationParams(max_new_tokens=24, embedder="none"))
    before = vllm_backend.requests_sent
    drawn = draw_answers(vllm_backend, "Name a colour and say why you like it.", settings,
                         seed=3, n=4)
    sent = vllm_backend.requests_sent - before
    assert 4 <= sent <= 8, sent  # a few answers may need asking again past a stop string
    assert all(n > 1 for n in drawn.details["answer_tokens"])
    again = draw_answers(vllm_backend, "Name a colour and say why you like it.", settings,
                         seed=3, n=4)
    assert again.details["texts"] == drawn.details["texts"]
    assert len(set(drawn.details["texts"])) > 1
