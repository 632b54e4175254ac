"""The embedder interface."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Embedder(Protocol):
    """Maps texts to unit-length vectors; cosine similarity is their dot product."""

    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of ``texts``: float32 array [len(texts), dim], each row L2-normalised."""
        ...


class SerialEmbedder:
    """An embedder that threads share: one ``embed`` call at a time (a sentence
    encoder's tokenizer and model are not made for concurrent calls)."""

    def __init__(self, embedder: Embedder):
        self.embedder = embedder
        self.name = embedder.name
        self.dim = embedder.dim
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            return self.embedder.embed(texts)
