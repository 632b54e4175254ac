"""Key/value-cache helpers of the transformers backend (transformers 5.x DynamicCache).

Caches are shared shallowly: ``DynamicLayer.update`` rebinds new tensors rather than
writing in place, so a clone that shares tensors with its source is safe to extend.
Shapes: keys/values are [batch, kv_heads, tokens, head_dim].
"""

from __future__ import annotations

import copy

import numpy as np


def lcp(a: np.ndarray, b: np.ndarray) -> int:
    """Length of the longest common prefix of two int arrays."""
    n = min(a.shape[0], b.shape[0])
    diff = np.flatnonzero(a[:n] != b[:n])
    return int(diff[0]) if diff.size else n


def plain_layers(cache) -> bool:
    """True when every layer is a plain DynamicLayer (safe to share, crop and slice)."""
    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", None)
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


def clone_cache(cache, keep: int | None = None, row: int | None = None):
    """A new DynamicCache sharing tensors with ``cache`` (shallow: updates rebind, never
    write in place), optionally cut to ``keep`` tokens and to one batch ``row``."""
    new = copy.copy(cache)
    new.layers = [copy.copy(layer) for layer in cache.layers]
    for layer in new.layers:
        if layer.keys is None or layer.keys.numel() == 0:
            continue
        rows = slice(None) if row is None else slice(row, row + 1)
        layer.keys = layer.keys[rows, :, :keep]  # [B|1, kv_heads, keep, head_dim]
        layer.values = layer.values[rows, :, :keep]
    return new


def stack_caches(caches: list, length: int | None = None):
    """One DynamicCache whose batch rows are ``caches`` (each batch 1). With ``length``
    (a ragged stack) the rows may differ in length: each is right-padded with zeros to
    ``length`` tokens, and the padding must be masked out (``ragged_mask``).

    New tensors [B, kv_heads, T, head_dim]; the sources are left untouched."""
    import torch

    def rows(tensors: list) -> list:
        if length is None:
            return tensors
        return [torch.nn.functional.pad(t, (0, 0, 0, length - t.shape[2])) for t in tensors]

    new = clone_cache(caches[0])
    for i, layer in enumerate(new.layers):
        if layer.keys is None or layer.keys.numel() == 0:
            continue
        layer.keys = torch.cat(rows([c.layers[i].keys for c in caches]), dim=0)
        layer.values = torch.cat(rows([c.layers[i].values for c in caches]), dim=0)
    return new


def ragged_mask(lengths: list[int], padded: int, width: int):
    """Attention mask [B, padded + width] of a ragged ``stack_caches`` cache extended by
    ``width`` tokens per row: row r sees its own ``lengths[r]`` cached tokens and the new
    ones, never the padding between them."""
    import torch

    mask = torch.zeros((len(lengths), padded + width), dtype=torch.long)
    for r, length in enumerate(lengths):
        mask[r, :length] = 1
        mask[r, padded:] = 1
    return mask


def ragged_row(cache, row: int, length: int, padded: int):
    """Row ``row`` of an extended ragged ``stack_caches`` cache without its padding: its own
    ``length`` cached tokens followed by everything after ``padded`` (new tensors)."""
    import torch

    new = clone_cache(cache, row=row)
    for layer in new.layers:
        if layer.keys is None or layer.keys.numel() == 0:
            continue
        layer.keys = torch.cat([layer.keys[:, :, :length], layer.keys[:, :, padded:]], dim=2)
        layer.values = torch.cat([layer.values[:, :, :length], layer.values[:, :, padded:]], dim=2)
    return new


def cache_nbytes(cache) -> int:
    """Bytes of the key/value tensors (views count their own elements only)."""
    total = 0
    for layer in getattr(cache, "layers", ()):
        for t in (getattr(layer, "keys", None), getattr(layer, "values", None)):
            if t is not None:
                total += t.numel() * t.element_size()
    return total
