"""Selection decisions (RAIN_SPEC §2, §3.1): PUCT score, child choice, commit choice."""

from __future__ import annotations

import math

from rainlm.core.tree import Tree

Q_NORM_EPS = 1e-5


def normalized_q(q: float, visits: float, q_min: float, q_max: float) -> float:
    """q̂ = (q − q_min) / (q_max − q_min + 1e-5); 0 for an unvisited node (§3.1)."""
    if visits == 0:
        return 0.0
    return (q - q_min) / (q_max - q_min + Q_NORM_EPS)


def puct_score(q: float, visits: float, prior: float, parent_visits: float,
               q_min: float, q_max: float, c_puct: float) -> float:
    """score = q̂ + c · p · sqrt(n_parent) / (1 + n)   (§3.1; c = 2 in the paper).

    ``visits`` and ``parent_visits`` include virtual visits, as in the published code.
    """
    exploration = c_puct * prior * math.sqrt(parent_visits) / (1.0 + visits)
    return normalized_q(q, visits, q_min, q_max) + exploration


def select_child(tree: Tree, node_id: int, c_puct: float) -> int:
    """The child maximising the PUCT score; ties go to the earliest-added child."""
    parent = tree.nodes[node_id]
    best_id, best_score = -1, -math.inf
    for child_id in parent.children.values():
        child = tree.nodes[child_id]
        score = puct_score(child.value, child.visits, child.prior, parent.visits,
                           tree.q_min, tree.q_max, c_puct)
        if score > best_score:
            best_id, best_score = child_id, score
    return best_id


def most_visited_child(tree: Tree, node_id: int) -> int | None:
    """The child with the most visits n (ties: higher q, then earliest added) (§2).

    Visits, not value, decide what is committed: visits are the robust statistic.
    """
    best_id, best_key = None, None
    for child_id in tree.nodes[node_id].children.values():
        child = tree.nodes[child_id]
        key = (child.visits, child.value)
        if best_key is None or key > best_key:
            best_id, best_key = child_id, key
    return best_id


def mix_with_uniform(priors: list[float], weight: float) -> list[float]:
    """p ← (1−w)·p + w/k, renormalised (root priors, §2/§3.3; w = 0.25 in the paper)."""
    k = len(priors)
    if k == 0:
        return []
    mixed = [(1.0 - weight) * p + weight / k for p in priors]
    total = sum(mixed)
    return [m / total for m in mixed]


def normalize(probs: list[float]) -> list[float]:
    """Probabilities scaled to sum to 1 (uniform if they sum to 0)."""
    total = sum(probs)
    if total <= 0:
        return [1.0 / len(probs)] * len(probs) if probs else []
    return [p / total for p in probs]
