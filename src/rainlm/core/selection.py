"""Selection decisions (RAIN_SPEC §2, §3.1): PUCT score, child choice, commit choice."""

from __future__ import annotations

import math

from rainlm.core.tree import Tree

Q_NORM_EPS = 1e-5


def normalized_q(q: float, visits: float, q_min: float, q_max: float,
                 unvisited: float = 0.0) -> float:
    """q̂ = (q − q_min) / (q_max − q_min + 1e-5); ``unvisited`` (the paper: 0) for a
    node with no visits (§3.1)."""
    if visits == 0:
        return unvisited
    return (q - q_min) / (q_max - q_min + Q_NORM_EPS)


def puct_score(q: float, visits: float, prior: float, parent_visits: float,
               q_min: float, q_max: float, c_puct: float, unvisited: float = 0.0) -> float:
    """score = q̂ + c · p · sqrt(n_parent) / (1 + n)   (§3.1; c = 2 in the paper).

    ``visits`` and ``parent_visits`` include virtual visits, as in the published code;
    ``unvisited`` is q̂ of a child not visited yet (see ``first_play_value``).
    """
    exploration = c_puct * prior * math.sqrt(parent_visits) / (1.0 + visits)
    return normalized_q(q, visits, q_min, q_max, unvisited) + exploration


def first_play_value(tree: Tree, node_id: int, rule: str = "zero") -> float:
    """q̂ given to the unvisited children of ``node_id``.

    "zero": 0, the paper's rule (as low as the worst value seen, so a child judged bad
    and its untried siblings look alike); "parent": the node's own q̂ (so the search
    tries a sibling as soon as a child scores below its parent); "neutral": the q̂ of
    the value 0.
    """
    if rule == "zero":
        return 0.0
    if rule == "parent":
        node = tree.nodes[node_id]
        return normalized_q(node.value, node.visits, tree.q_min, tree.q_max)
    return normalized_q(0.0, 1.0, tree.q_min, tree.q_max)


def select_child(tree: Tree, node_id: int, c_puct: float, unvisited_rule: str = "zero") -> int:
    """The child maximising the PUCT score; ties go to the earliest-added child.

    An unvisited child's q̂ is its ``judged`` value when it has one (``judge_candidates``),
    else ``first_play_value``."""
    parent = tree.nodes[node_id]
    unvisited = first_play_value(tree, node_id, unvisited_rule)
    best_id, best_score = -1, -math.inf
    for child_id in parent.children.values():
        child = tree.nodes[child_id]
        first = unvisited if child.judged is None else normalized_q(child.judged, 1.0, tree.q_min, tree.q_max)
        score = puct_score(child.value, child.visits, child.prior, parent.visits,
                           tree.q_min, tree.q_max, c_puct, first)
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


def secure_child(tree: Tree, node_id: int) -> int | None:
    """The visited child with the highest lower bound ``q − 1/sqrt(real_visits)`` (ties:
    more visits, then earliest added); None when no child has a real visit."""
    best_id, best_key = None, None
    for child_id in tree.nodes[node_id].children.values():
        child = tree.nodes[child_id]
        if child.real_visits == 0:
            continue
        key = (child.value - 1.0 / math.sqrt(child.real_visits), child.visits)
        if best_key is None or key > best_key:
            best_id, best_key = child_id, key
    return best_id


def commit_choice(tree: Tree, node_id: int, rule: str = "visits") -> int | None:
    """The child a step commits: ``most_visited_child`` ("visits", the paper's) or
    ``secure_child`` ("secure"; the most visited when no child was visited)."""
    if rule == "secure":
        chosen = secure_child(tree, node_id)
        if chosen is not None:
            return chosen
    return most_visited_child(tree, node_id)


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
