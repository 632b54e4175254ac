"""Back-up running means, embeddings and the sibling similarity update (§3.4, §5)."""

import numpy as np
import pytest

from rainlm.core.backup import backup, cosine, share_with_siblings
from rainlm.core.tree import Tree


def test_backup_running_mean_and_counts_without_embeddings():
    tree = Tree.new()
    a = tree.add_child(0, (1,), 0.5, 0.5)
    b = tree.add_child(a, (2, 3), 1.0, 1.0)
    backup(tree, [0, a, b], 1.0, None, threshold=0.95, weight=0.2)
    backup(tree, [0, a], -0.5, None, threshold=0.95, weight=0.2)
    assert tree.nodes[0].visits == 2 and tree.nodes[0].real_visits == 2
    assert tree.nodes[a].value == pytest.approx((1.0 - 0.5) / 2)
    assert tree.nodes[b].value == pytest.approx(1.0) and tree.nodes[b].visits == 1
    assert tree.q_min == -1.0 and tree.q_max == 1.0  # initialised to ±1, values inside


def test_similarity_update_hand_computed():
    tree = Tree.new()
    s = tree.add_child(0, (1,), 0.5, 0.5)
    t = tree.add_child(0, (2,), 0.5, 0.5)
    far = tree.add_child(0, (3,), 0.5, 0.5)
    tree.nodes[t].embedding = np.array([1.0, 0.1])
    tree.nodes[t].visits, tree.nodes[t].value = 2.0, 0.5
    tree.nodes[far].embedding = np.array([0.0, 1.0])
    tree.nodes[far].visits, tree.nodes[far].value = 1.0, 0.3
    backup(tree, [0, s], -1.0, [np.array([1.0, 0.0])], threshold=0.95, weight=0.2)
    cos = 1.0 / np.sqrt(1.01)  # ≈ 0.995 ≥ 0.95
    w = 0.2 * cos
    assert tree.nodes[t].visits == pytest.approx(2.0 + w)
    assert tree.nodes[t].value == pytest.approx((0.5 * 2.0 + w * -1.0) / (2.0 + w))
    assert tree.nodes[far].visits == 1.0 and tree.nodes[far].value == 0.3  # cos 0: untouched
    assert tree.nodes[t].real_visits == 0  # virtual visits are not real


def test_embedding_running_mean_over_real_visits():
    tree = Tree.new()
    s = tree.add_child(0, (1,), 1.0, 1.0)
    backup(tree, [0, s], 0.0, [np.array([1.0, 0.0])], threshold=0.95, weight=0.2)
    backup(tree, [0, s], 0.0, [np.array([0.0, 1.0])], threshold=0.95, weight=0.2)
    np.testing.assert_allclose(tree.nodes[s].embedding, [0.5, 0.5])
    assert tree.nodes[0].embedding is None  # the root has no embedding


def test_q_uses_visits_including_virtual_ones():
    tree = Tree.new()
    s = tree.add_child(0, (1,), 1.0, 1.0)
    tree.nodes[s].visits, tree.nodes[s].value = 0.2, 1.0  # one virtual visit of weight 0.2
    backup(tree, [0, s], -1.0, None, threshold=0.95, weight=0.2)
    assert tree.nodes[s].visits == pytest.approx(1.2)
    assert tree.nodes[s].value == pytest.approx(1.0 + (-1.0 - 1.0) / 1.2)


def test_cosine_and_guard_for_root():
    assert cosine(np.array([1.0, 0]), np.array([2.0, 0])) == pytest.approx(1.0)
    assert cosine(np.zeros(2), np.ones(2)) == 0.0
    tree = Tree.new()
    share_with_siblings(tree, 0, 1.0, 0.95, 0.2)  # no parent: nothing happens, no error
