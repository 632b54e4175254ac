"""Sentence embedders for the sibling similarity update (RAIN_SPEC §5)."""

from rainlm.similarity.base import Embedder
from rainlm.similarity.hashing import HashingEmbedder
from rainlm.similarity.loading import load_embedder

__all__ = ["Embedder", "HashingEmbedder", "load_embedder"]
