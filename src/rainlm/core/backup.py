"""Back-up: the only code that changes visit counts, values and embeddings (RAIN_SPEC §3.4, §5)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rainlm.core.tree import Tree


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors [D]."""
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.dot(a, b)) / denom if denom > 0 else 0.0


def update_embedding(tree: Tree, node_id: int, path_embedding: np.ndarray) -> None:
    """node.embedding ← running mean of the path-text embeddings over its real visits (§5).

    Call after ``real_visits`` has been incremented for this pass.
    """
    node = tree.nodes[node_id]
    if node.embedding is None:
        node.embedding = np.array(path_embedding, dtype=np.float64)
    else:
        node.embedding = node.embedding + (path_embedding - node.embedding) / node.real_visits


def share_with_siblings(tree: Tree, node_id: int, value: float, threshold: float,
                        weight: float) -> None:
    """Virtual visits for siblings that say the same thing (§5).

    For every sibling s' with cos(s.embedding, s'.embedding) ≥ threshold:
    w = weight·cos; n' ← n' + w; q' ← (q'·n'_before + w·v) / n'.
    """
    node = tree.nodes[node_id]
    if node.parent < 0 or node.embedding is None:
        return
    for sib_id in tree.nodes[node.parent].children.values():
        sib = tree.nodes[sib_id]
        if sib_id == node_id or sib.embedding is None:
            continue
        cos = cosine(node.embedding, sib.embedding)
        if cos < threshold:
            continue
        w = weight * cos
        before = sib.visits
        sib.visits = before + w
        sib.value = (sib.value * before + w * value) / sib.visits


def backup(tree: Tree, path: Sequence[int], value: float,
           path_embeddings: Sequence[np.ndarray] | None, *, threshold: float,
           weight: float) -> None:
    """Back up ``value`` from the leaf to the root along ``path`` (root first) (§3.4).

    ``path_embeddings[i]`` embeds the text from ``path[i + 1]`` down to the end of the
    imagined completion (one per node below the root); None skips the similarity update.
    At each node: n += 1, real_visits += 1, q += (v − q)/n (n includes virtual visits,
    as in the published code), embedding and sibling update below the root, and the
    tree's q_min/q_max kept current. The paper's discount γ = 1 and reward = 0.
    """
    for i in range(len(path) - 1, -1, -1):
        node_id = path[i]
        node = tree.nodes[node_id]
        node.visits += 1.0
        node.real_visits += 1
        if i > 0 and path_embeddings is not None:
            update_embedding(tree, node_id, np.asarray(path_embeddings[i - 1], dtype=np.float64))
            share_with_siblings(tree, node_id, value, threshold, weight)
        node.value += (value - node.value) / node.visits
        if i > 0:
            tree.q_min = min(tree.q_min, node.value)
            tree.q_max = max(tree.q_max, node.value)
