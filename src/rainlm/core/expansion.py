"""Candidate token sets for a new node's children (RAIN_SPEC §3.3).

Every random draw goes through the generator passed in, in a fixed order
(step-major over the sampled candidates), so batching never changes the result.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from rainlm.backends.decoding import SEED_RANGE, DecodeRequest
from rainlm.core.model_calls import ModelCalls, Steps

Candidate = tuple[tuple[int, ...], float]  # (token set, probability under the proposal)


@dataclass(frozen=True)
class Proposal:
    """Children to create, plus (for 1-token sets) ranked spares for §6 node addition."""

    candidates: list[Candidate]
    spares: list[Candidate]


def propose_single_tokens(dist_ids: np.ndarray, dist_probs: np.ndarray, top_k: int,
                          spare_count: int) -> Proposal:
    """The top-k next tokens with their probabilities (§3.3, length 1).

    ``dist_ids``/``dist_probs`` are the ranked top (k + spare_count) tokens, descending.
    Raw probabilities are returned; the caller normalises them into priors.
    """
    ranked = [((int(t),), float(p)) for t, p in zip(dist_ids, dist_probs) if p > 0]
    # Zero-probability tokens are never candidates (the published code keeps p > 0 only).
    return Proposal(ranked[:top_k], ranked[top_k:top_k + spare_count])


def temper(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities of a top-k law at ``temperature``: p^(1/T) renormalised over the k
    tokens given (as the published code's temperature warper followed by top-k) [k]."""
    probs = np.asarray(probs, dtype=np.float64)
    if temperature == 1.0:
        return probs / probs.sum()
    positive = probs > 0  # a token the model rules out stays ruled out
    logp = np.log(np.where(positive, probs, 1.0)) / temperature
    out = np.where(positive, np.exp(logp - logp[positive].max()), 0.0)
    return out / out.sum()


def law_probability(token: int, logprob: float, top: dict[int, float] | None,
                    temperature: float, top_k: int | None = None) -> float:
    """A token's probability under the law an engine drew it from, given the model's
    log-probability of it and (where the law is not the model's own) the model's top
    log-probabilities at that step: the top ``top_k`` (all given: the top-k law is
    exact when the engine returned k), tempered (``temper``), as ``TokenDistribution.sample``
    computes it in process."""
    if temperature == 1.0 and top_k is None:
        return float(np.exp(logprob))
    entries = dict(top or {})
    entries.setdefault(int(token), float(logprob))
    ranked = sorted(entries.items(), key=lambda item: (-item[1], item[0]))
    if top_k is not None:
        ranked = ranked[:top_k]
    ids = [t for t, _ in ranked]
    if token not in ids:
        return 0.0
    law = temper(np.exp(np.array([lp for _, lp in ranked], dtype=np.float64)), temperature)
    return float(law[ids.index(token)])


def sample_token_sets(calls: ModelCalls, state: Sequence[int], length: int, count: int,
                      top_k: int, rng: np.random.Generator, eos_ids: Collection[int],
                      *, include_greedy: bool, temperature: float = 1.0) -> Steps[list[Candidate]]:
    """Greedy (optional) plus ``count`` sampled token sets of ``length`` tokens.

    Each token comes from the top-k filtered, renormalised distribution at
    ``temperature``; a set's probability is the product of its tokens' probabilities
    under that law. A set ends early at end-of-sequence (the published code keeps
    sampling past EOS; we stop there deliberately: tokens after EOS are never part of an
    answer). Returns every drawn set in draw order (greedy first), duplicates included.
    On a backend that decodes natively (``calls.engine_decodes``) each set is one
    continuation (``token_sets_on_engine``).
    """
    if calls.engine_decodes:
        return (yield from token_sets_on_engine(calls, state, length, count, top_k, rng,
                                                eos_ids, include_greedy=include_greedy,
                                                temperature=temperature))
    rows = ([True] if include_greedy else []) + [False] * count  # True = greedy row
    seqs: list[list[int]] = [[] for _ in rows]
    probs = [1.0 for _ in rows]
    done = [False for _ in rows]
    for _step in range(length):
        active = [i for i in range(len(rows)) if not done[i]]
        if not active:
            break
        dists = yield from calls.next_dists([list(state) + seqs[i] for i in active], top_k=top_k)
        for i, dist in zip(active, dists):
            if rows[i]:
                ids, ps = dist.top_k(top_k)
                token, p = int(ids[0]), float(temper(ps, temperature)[0])
            else:
                token, p = dist.sample(rng, top_k=top_k, temperature=temperature)
            seqs[i].append(token)
            probs[i] *= p
            done[i] = token in eos_ids
    return [(tuple(s), p) for s, p in zip(seqs, probs)]




def token_sets_on_engine(calls: ModelCalls, state: Sequence[int], length: int, count: int,
                         top_k: int, rng: np.random.Generator, eos_ids: Collection[int], *,
                         include_greedy: bool, temperature: float = 1.0) -> Steps[list[Candidate]]:
    """``sample_token_sets`` by the engine's own decoding: the greedy set is one
    continuation, the sampled sets (top-k at ``temperature``, one seed from ``rng``) one
    request's ``samples``, both in one call; each set's probability is the product of ``law_probability`` over its
    tokens, from the top-k log-probabilities the engine returns with them."""
    eos = tuple(sorted(eos_ids))
    greedy = [DecodeRequest(list(state), length, top_k=top_k, stop_token_ids=eos,
                            report_top=top_k)] if include_greedy else []
    sampled = [DecodeRequest(list(state), length, temperature=temperature, top_k=top_k,
                             stop_token_ids=eos, seed=int(rng.integers(SEED_RANGE)),
                             report_top=top_k, samples=count)] if count else []
    outs = yield from calls.continuations(greedy + sampled)
    sets = []
    for out in outs:
        tokens = list(out.tokens)
        cut = next((j + 1 for j, t in enumerate(tokens) if t in eos_ids), len(tokens))
        p = 1.0
        for j in range(cut):
            p *= law_probability(tokens[j], out.logprobs[j], (out.top or [{}] * cut)[j],
                                 temperature, top_k)
        sets.append((tuple(int(t) for t in tokens[:cut]), p))
    return sets


def propose_token_sets(calls: ModelCalls, state: Sequence[int], length: int,
                       num_candidates: int, top_k: int, rng: np.random.Generator,
                       eos_ids: Collection[int], *, clip_greedy: bool,
                       temperature: float = 1.0, draws: int | None = None) -> Steps[Proposal]:
    """One greedy set plus up to ``num_candidates − 1`` sampled ones, de-duplicated (§3.3).

    ``draws`` sampled sets are drawn (default ``num_candidates − 1``) and the first
    ``num_candidates − 1`` distinct ones kept, as the authors' AdvBench code does with
    ``2·num_candidates − 1`` draws."""
    draws = num_candidates - 1 if draws is None else draws
    drawn = yield from sample_token_sets(calls, state, length, draws, top_k, rng, eos_ids,
                              include_greedy=True, temperature=temperature)
    greedy, sampled = drawn[0], []
    seen = {greedy[0]}
    for tokens, p in drawn[1:]:
        if tokens not in seen and len(sampled) < num_candidates - 1:
            seen.add(tokens)
            sampled.append((tokens, p))
    greedy_p = greedy[1]
    if clip_greedy and sampled:
        greedy_p = clip_greedy_probability(greedy_p, [p for _, p in sampled])
    return Proposal([(greedy[0], greedy_p)] + sampled, [])


def clip_greedy_probability(greedy_p: float, sampled_ps: Sequence[float]) -> float:
    """Clip greedy's probability to at most sum(sampled) and at least max + min (§3.3).

    Applied in that order, as the published code does (the lower bound wins if the
    two conflict).
    """
    p = min(greedy_p, float(sum(sampled_ps)))
    return max(p, float(max(sampled_ps) + min(sampled_ps)))
