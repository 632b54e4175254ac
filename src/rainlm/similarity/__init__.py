"""Sentence embedders for the sibling similarity update (RAIN_SPEC §5)."""

from rainlm.similarity.base import Embedder
from rainlm.similarity.hashing import HashingEmbedder

__all__ = ["Embedder", "HashingEmbedder"]
