"""PUCT, q normalisation, commit choice and prior mixing against hand-computed values."""

import math

import pytest

from rainlm.core.selection import (most_visited_child, mix_with_uniform, normalize, normalized_q,
                                   puct_score, select_child)
from rainlm.core.tree import Tree


def test_normalized_q_matches_formula():
    assert normalized_q(0.5, 3, -1.0, 1.0) == pytest.approx((0.5 + 1) / (2 + 1e-5))
    assert normalized_q(0.5, 0, -1.0, 1.0) == 0.0  # unvisited child
    assert normalized_q(0.2, 1, 0.0, 0.4) == pytest.approx(0.2 / (0.4 + 1e-5))


def test_puct_score_hand_computed():
    # q̂ = (0.5+1)/(2+1e-5); u = 2 * 0.3 * sqrt(16) / (1 + 3) = 0.6
    score = puct_score(q=0.5, visits=3, prior=0.3, parent_visits=16, q_min=-1, q_max=1, c_puct=2)
    assert score == pytest.approx(1.5 / (2 + 1e-5) + 0.6)
    # unvisited: q̂ = 0; u = 2 * 0.1 * sqrt(9) / 1
    assert puct_score(0.9, 0, 0.1, 9, -1, 1, 2) == pytest.approx(0.6)


def _tree_with_children(specs):
    tree = Tree.new()
    for i, (visits, value, prior) in enumerate(specs):
        cid = tree.add_child(0, (i,), prior, prior)
        tree.nodes[cid].visits = visits
        tree.nodes[cid].real_visits = int(visits)
        tree.nodes[cid].value = value
    tree.nodes[0].visits = sum(v for v, _, _ in specs)
    return tree


def test_select_child_prefers_high_score_and_breaks_ties_by_order():
    tree = _tree_with_children([(4, 0.0, 0.5), (1, 0.9, 0.5)])
    n = tree.nodes[0].visits  # 5
    s0 = puct_score(0.0, 4, 0.5, n, -1, 1, 2)
    s1 = puct_score(0.9, 1, 0.5, n, -1, 1, 2)
    assert s1 > s0  # 0.95 + 0.559 vs 0.5 + 0.224
    assert select_child(tree, 0, 2.0) == 2  # child ids are 1 and 2
    tied = _tree_with_children([(0, 0.0, 0.5), (0, 0.0, 0.5)])
    assert select_child(tied, 0, 2.0) == 1  # first added wins a tie


def test_most_visited_child_uses_visits_then_value():
    tree = _tree_with_children([(3, -0.5, 0.2), (5, -0.9, 0.3), (5, 0.1, 0.5)])
    assert most_visited_child(tree, 0) == 3  # 5 visits, higher q
    assert most_visited_child(Tree.new(), 0) is None


def test_mix_with_uniform_and_normalize():
    assert mix_with_uniform([0.7, 0.2, 0.1], 0.25) == pytest.approx(
        [0.75 * 0.7 + 0.25 / 3, 0.75 * 0.2 + 0.25 / 3, 0.75 * 0.1 + 0.25 / 3])
    assert sum(mix_with_uniform([0.5, 0.1], 0.25)) == pytest.approx(1.0)
    assert normalize([2.0, 6.0]) == [0.25, 0.75]
    assert normalize([0.0, 0.0]) == [0.5, 0.5]
    assert math.isclose(sum(normalize([1e-9, 3e-9, 1e-9])), 1.0)
