"""A dependency-free embedder: hashed character n-grams and words (for tests, fallback).

It captures surface overlap, not meaning; use MiniLM (the paper's encoder) for real runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np


class HashingEmbedder:
    """Bag of hashed word unigrams and character trigrams, L2-normalised."""

    def __init__(self, dim: int = 384):
        if dim < 8:
            raise ValueError(f"dim must be >= 8, got {dim}")
        self.dim = dim
        self.name = f"hashing-{dim}"

    def _features(self, text: str) -> list[str]:
        lowered = text.lower()
        words = lowered.split()
        padded = f" {lowered} "
        trigrams = [padded[i:i + 3] for i in range(max(0, len(padded) - 2))]
        return ["w:" + w for w in words] + ["c:" + t for t in trigrams]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)  # [N, dim]
        for row, text in enumerate(texts):
            for feat in self._features(text):
                h = int.from_bytes(hashlib.blake2b(feat.encode(), digest_size=8).digest(), "little")
                sign = 1.0 if (h >> 63) & 1 else -1.0
                out[row, h % self.dim] += sign
            norm = np.linalg.norm(out[row])
            if norm > 0:
                out[row] /= norm
            else:
                out[row, 0] = 1.0  # empty text: a fixed unit vector
        return out
