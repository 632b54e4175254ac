"""Candidate token sets for a new node's children (RAIN_SPEC §3.3).

Every random draw goes through the generator passed in, in a fixed order
(step-major over the sampled candidates), so batching never changes the result.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

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


def sample_token_sets(calls: ModelCalls, state: Sequence[int], length: int, count: int,
                      top_k: int, rng: np.random.Generator, eos_ids: Collection[int],
                      *, include_greedy: bool, temperature: float = 1.0) -> Steps[list[Candidate]]:
    """Greedy (optional) plus ``count`` sampled token sets of ``length`` tokens.

    Each token comes from the top-k filtered, renormalised distribution at
    ``temperature``; a set's probability is the product of its tokens' probabilities
    under that law. A set ends early at end-of-sequence (the published code keeps
    sampling past EOS; we stop there deliberately: tokens after EOS are never part of an
    answer). Returns every drawn set in draw order (greedy first), duplicates included.
    """
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
