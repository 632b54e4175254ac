"""Dynamic node addition trigger and prior re-normalisation (§6)."""

import numpy as np
import pytest

from rainlm.core.widening import add_child_and_renormalize, embedding_variance_norm, should_widen
from rainlm.core.tree import Tree


def _tree(embeddings, values, tokens_len=1):
    tree = Tree.new()
    for i, (e, v) in enumerate(zip(embeddings, values)):
        cid = tree.add_child(0, tuple(range(i * 10, i * 10 + tokens_len)), 0.5, 0.5)
        tree.nodes[cid].embedding = None if e is None else np.asarray(e, dtype=float)
        tree.nodes[cid].value = v
    return tree


KW = dict(max_children=20, variance_scale=0.03, value_threshold=0.0)


def test_variance_norm_hand_computed():
    # per-dim unbiased variances: dim0 var([0, 2]) = 2, dim1 var([1, 1]) = 0 -> norm 2
    assert embedding_variance_norm([np.array([0.0, 1.0]), np.array([2.0, 1.0])]) == pytest.approx(2.0)


def test_widen_when_children_agree_and_are_bad():
    same = [[1.0, 0.0], [1.0, 0.001], [1.0, 0.0]]
    assert should_widen(_tree(same, [-0.5, -0.2, -0.9]), 0, **KW)


def test_no_widen_when_best_child_is_good_or_children_differ_or_unembedded():
    same = [[1.0, 0.0], [1.0, 0.001]]
    assert not should_widen(_tree(same, [-0.5, 0.1]), 0, **KW)  # best q ≥ 0
    assert not should_widen(_tree([[1.0, 0.0], [0.0, 1.0]], [-0.5, -0.5]), 0, **KW)  # var 0.71 > 0.03
    assert not should_widen(_tree([[1.0, 0.0], None], [-0.5, -0.5]), 0, **KW)  # one not embedded
    assert not should_widen(_tree([[1.0, 0.0]], [-0.5]), 0, **KW)  # one child: no variance


def test_threshold_scales_with_token_set_length():
    # var norm = 2 * (0.1^2/2)... computed: values 0 and 0.2 in one dim -> var 0.02
    e = [[0.0, 0.0], [0.2, 0.0]]
    assert embedding_variance_norm([np.array(x) for x in e]) == pytest.approx(0.02)
    assert should_widen(_tree(e, [-1, -1], tokens_len=1), 0, **KW)  # 0.02 < 0.03
    assert not should_widen(_tree(e, [-1, -1], tokens_len=1), 0,
                            max_children=2, variance_scale=0.03, value_threshold=0.0)  # full
    assert not should_widen(_tree(e, [-1, -1]), 0, max_children=20, variance_scale=0.01,
                            value_threshold=0.0)  # 0.02 ≥ 0.01 * 1


def test_add_child_renormalises_priors_with_root_mixing():
    tree = Tree.new()
    tree.add_child(0, (1,), 0.0, 0.6)
    tree.add_child(0, (2,), 0.0, 0.3)
    new = add_child_and_renormalize(tree, 0, (3,), 0.1, is_root=True, root_mix=0.25)
    priors = [tree.nodes[c].prior for c in tree.child_ids(0)]
    assert priors == pytest.approx([0.75 * 0.6 + 0.25 / 3, 0.75 * 0.3 + 0.25 / 3, 0.75 * 0.1 + 0.25 / 3])
    assert tree.nodes[new].tokens == (3,)
