"""The search tree as an arena of plain node records addressed by integer id (RAIN_SPEC §1).

No tokenizer, encoder or model lives in a node. Statistics change only in
``core/backup.py`` and ``core/widening.py``; this module only stores and reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

ROOT = 0
NO_PARENT = -1


class Node:
    """One token set in the tree (the root holds the empty token set)."""

    __slots__ = ("parent", "tokens", "depth", "prior", "prob", "visits", "real_visits",
                 "value", "embedding", "children", "terminal", "expanded", "pool", "judged")

    def __init__(self, parent: int, tokens: tuple[int, ...], depth: int, prior: float, prob: float):
        self.parent = parent  # node id, NO_PARENT for the first root
        self.tokens = tokens  # the token set this node appends to its parent's state
        self.depth = depth  # depth from the start of the answer (first root = 0)
        self.prior = prior  # p: probability among siblings, normalised (and mixed at root)
        self.prob = prob  # raw candidate probability before normalisation (for re-normalising)
        self.visits = 0.0  # n: visit count including fractional virtual visits (§5)
        self.real_visits = 0  # visits from actual search passes only
        self.value = 0.0  # q: running mean of backed-up values, in [-1, 1]
        self.embedding: np.ndarray | None = None  # [D] running mean of path-text embeddings
        self.children: dict[tuple[int, ...], int] = {}  # token tuple -> node id, insertion order
        self.terminal = False  # EOS inside, length limit, or a stop string reached
        self.expanded = False  # candidates were proposed (children may still be added, §6)
        self.pool: list[tuple[tuple[int, ...], float]] = []  # unused 1-token candidates (§6)
        self.judged: float | None = None  # the judge's value of the path to here, before any visit


@dataclass
class Tree:
    """All nodes ever created for one answer; ``root`` moves as token sets are committed."""

    nodes: list[Node] = field(default_factory=list)
    root: int = ROOT
    q_min: float = -1.0  # smallest q seen (§1), kept across re-rooting
    q_max: float = 1.0  # largest q seen
    committed: list[int] = field(default_factory=list)  # ids of committed nodes, in order

    @classmethod
    def new(cls) -> "Tree":
        tree = cls()
        tree.nodes.append(Node(NO_PARENT, (), 0, 1.0, 1.0))
        return tree

    def add_child(self, parent: int, tokens: tuple[int, ...], prior: float, prob: float) -> int:
        node_id = len(self.nodes)
        self.nodes.append(Node(parent, tokens, self.nodes[parent].depth + 1, prior, prob))
        self.nodes[parent].children[tokens] = node_id
        return node_id

    def node(self, node_id: int) -> Node:
        return self.nodes[node_id]

    def child_ids(self, node_id: int) -> list[int]:
        return list(self.nodes[node_id].children.values())

    def is_leaf(self, node_id: int) -> bool:
        return not self.nodes[node_id].children

    def path_tokens(self, node_id: int, stop_at: int) -> list[int]:
        """Tokens from just below ``stop_at`` down to ``node_id`` (inclusive)."""
        parts: list[tuple[int, ...]] = []
        while node_id != stop_at:
            node = self.nodes[node_id]
            parts.append(node.tokens)
            node_id = node.parent
        return [t for part in reversed(parts) for t in part]

    def subtree_ids(self, node_id: int) -> list[int]:
        """Ids of ``node_id`` and all its descendants (iterative, depth-first)."""
        out, stack = [], [node_id]
        while stack:
            current = stack.pop()
            out.append(current)
            stack.extend(reversed(self.child_ids(current)))
        return out

    def to_dict(self, detokenize: Any = None) -> dict[str, Any]:
        """A JSON-ready picture of the whole tree (rewound branches included)."""
        nodes = []
        for i, n in enumerate(self.nodes):
            item = {
                "id": i, "parent": n.parent, "tokens": list(n.tokens), "depth": n.depth,
                "prior": round(n.prior, 6), "visits": round(n.visits, 6),
                "real_visits": n.real_visits, "value": round(n.value, 6),
                "terminal": n.terminal, "children": list(n.children.values()),
            }
            if detokenize is not None:
                item["text"] = detokenize(list(n.tokens))
            nodes.append(item)
        return {"root": self.root, "committed": list(self.committed), "q_min": self.q_min,
                "q_max": self.q_max, "nodes": nodes}
