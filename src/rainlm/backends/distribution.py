"""A next-token distribution, dense (whole vocabulary) or sparse (top-k only)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TokenDistribution:
    """Log-probabilities of the next token.

    ``token_ids is None`` means dense: ``logprobs[i]`` is the log-probability of token i
    over the whole vocabulary (shape [V]). Otherwise sparse: ``token_ids`` [k] with
    ``logprobs`` [k], natural log, normalised over the whole vocabulary (so they sum to
    at most 1 in probability), as an HTTP engine's ``top_logprobs`` gives them.
    """

    logprobs: np.ndarray  # [V] or [k], natural log
    token_ids: np.ndarray | None = None  # None (dense) or [k] int64

    @property
    def is_dense(self) -> bool:
        return self.token_ids is None

    def _ids(self) -> np.ndarray:
        return np.arange(self.logprobs.shape[0]) if self.token_ids is None else self.token_ids

    def top_k(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k most probable tokens: (ids [k'], probs [k']), descending, k' <= k.

        Ties are broken by the smaller token id so results never depend on sort stability.
        """
        lp = np.asarray(self.logprobs, dtype=np.float64)
        k = min(k, lp.shape[0])
        if k < lp.shape[0]:
            part = np.argpartition(-lp, k - 1)[:k]
        else:
            part = np.arange(lp.shape[0])
        ids = self._ids()[part]
        order = np.lexsort((ids, -lp[part]))  # primary: -logprob, secondary: id
        return ids[order].astype(np.int64), np.exp(lp[part][order])

    def argmax(self) -> int:
        ids, _ = self.top_k(1)
        return int(ids[0])

    def logprob_of(self, token_id: int) -> float | None:
        """Log-probability of one token (None: a sparse distribution does not list it)."""
        if self.token_ids is None:
            return float(self.logprobs[token_id])
        hit = np.nonzero(self.token_ids == token_id)[0]
        return float(self.logprobs[hit[0]]) if hit.size else None

    def logprob_bound(self, token_id: int) -> tuple[float, bool]:
        """(log p(token), False); for a token a sparse distribution does not list, (the
        smallest listed log-prob, True): an upper bound on its log-probability."""
        logprob = self.logprob_of(token_id)
        if logprob is not None:
            return logprob, False
        listed = np.asarray(self.logprobs, dtype=np.float64)
        return (float(listed.min()) if listed.size else -math.inf), True

    def prob_of(self, token_id: int) -> float:
        """Probability of one token (0.0 if a sparse distribution does not list it)."""
        logprob = self.logprob_of(token_id)
        return 0.0 if logprob is None else float(np.exp(logprob))

    def sample(self, rng: np.random.Generator, *, top_k: int | None = None,
               temperature: float = 1.0) -> tuple[int, float]:
        """Draw one token. Returns (token id, its probability under the sampled law).

        ``top_k`` keeps the k most probable tokens and renormalises over them (the
        published code's TopKLogitsWarper). ``temperature`` divides the log-probs.
        Exactly one ``rng.random()`` is consumed per call, so runs are reproducible.
        """
        if top_k is not None:
            ids, probs = self.top_k(top_k)
            logp = np.log(np.maximum(probs, 1e-300))
        else:
            ids = self._ids()
            logp = np.asarray(self.logprobs, dtype=np.float64)
        if temperature != 1.0:
            logp = logp / temperature
        p = np.exp(logp - logp.max())
        p /= p.sum()
        u = rng.random()
        idx = int(np.searchsorted(np.cumsum(p), u, side="right"))
        idx = min(idx, p.shape[0] - 1)
        return int(ids[idx]), float(p[idx])
