"""Dynamic node addition (RAIN_SPEC §6): widen a node whose children all say the same bad thing."""

from __future__ import annotations

import numpy as np

from rainlm.core.selection import mix_with_uniform, normalize
from rainlm.core.tree import Tree


def embedding_variance_norm(embeddings: list[np.ndarray]) -> float:
    """‖per-dimension variance of the embeddings‖₂ (unbiased variance, as torch.var)."""
    stacked = np.stack(embeddings)  # [children, D]
    return float(np.linalg.norm(np.var(stacked, axis=0, ddof=1)))


def should_widen(tree: Tree, node_id: int, *, max_children: int, variance_scale: float,
                 value_threshold: float) -> bool:
    """All children embedded, fewer than ``max_children`` of them, low embedding variance
    (< scale·len(token set)) and the best child's q below ``value_threshold`` (§6).

    A node with fewer than two children has no variance and is never widened.
    """
    node = tree.nodes[node_id]
    child_ids = list(node.children.values())
    if len(child_ids) < 2 or len(child_ids) >= max_children:
        return False
    children = [tree.nodes[c] for c in child_ids]
    if any(c.embedding is None for c in children):
        return False
    set_length = len(children[0].tokens)
    if embedding_variance_norm([c.embedding for c in children]) >= variance_scale * set_length:
        return False
    return max(c.value for c in children) < value_threshold


def add_child_and_renormalize(tree: Tree, node_id: int, tokens: tuple[int, ...], prob: float,
                              *, is_root: bool, root_mix: float) -> int:
    """Add one child and re-normalise all children's priors from their raw probabilities
    (mixed with uniform at the root).

    The published code gives only the new child a prior normalised over the first
    k + 1 candidates and leaves its siblings' priors as they were; RAIN_SPEC §6 says
    priors are re-normalised, which is what we do.
    """
    child_id = tree.add_child(node_id, tokens, 0.0, prob)
    ids = tree.child_ids(node_id)
    priors = normalize([tree.nodes[c].prob for c in ids])
    if is_root:
        priors = mix_with_uniform(priors, root_mix)
    for c, p in zip(ids, priors):
        tree.nodes[c].prior = p
    return child_id
