"""The search's state and the one object that changes it (as in DeepMind's mctx, where
the search loop only calls decisions and one place applies what they decide).

``SearchState`` holds what a search changes as it runs: its tree, its whole answers (the
best one, their values, vetoes, the fluency floor and the log-probabilities it scores
with), what it judged and embedded, and its clock. Every other module reads these
fields; every change is a method here (``tests/core/test_state_owner.py`` fails on a
write elsewhere). The statistics arithmetic stays in pure functions of a tree
(``backup.py``, ``widening.py``), which only these methods call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rainlm.core.backup import backup
from rainlm.core.fluency import remember_imagined
from rainlm.core.selection import mix_with_uniform
from rainlm.core.tree import Tree
from rainlm.core.widening import add_child_and_renormalize

MAX_EMBEDDING_CACHE = 50_000  # texts; the cache is per generation
VIRTUAL_LOSS_VALUE = -1.0  # the value a virtual visit counts (the parallel search's rounds)


@dataclass
class SearchState:
    """Everything one search changes as it runs; read freely, changed only by its methods."""

    tree: Tree = field(default_factory=Tree.new)
    # --- whole answers
    best_answer: tuple[float, list[int]] | None = None  # best judged whole answer (value, ids)
    whole_values: dict[tuple[int, ...], float] = field(default_factory=dict)  # noted answers
    vetoed_answers: set[str] = field(default_factory=set)  # judged texts answer_checks overruled
    disfluent: set[str] = field(default_factory=set)  # whole answers over the fluency floor
    nll_limit: float | None = None  # the fluency floor: greedy's NLL + answer_nll_margin
    # the model's log-probability of each token the search drew or scored, by the answer
    # prefix ending with it (answer_nll_margin; core.fluency)
    token_logprobs: dict[tuple[int, ...], float] = field(default_factory=dict)
    repair_misses: int = 0  # repairs since the best answer last changed (repair_escalate)
    repair_attempts: int = 0  # passes that were due as repairs (repair_share)
    # --- what was judged and embedded
    eval_cache: dict[tuple[str, str], float] = field(default_factory=dict)
    evaluations: list[dict[str, Any]] = field(default_factory=list)  # the audit log
    embedding_cache: dict[str, np.ndarray] = field(default_factory=dict)
    # --- the clock (time.perf_counter() values)
    deadline: float | None = None  # when the search must stop
    budget_end: float | None = None  # when the time budget ends

    # ------------------------------------------------------------------ the tree
    def add_candidates(self, node_id: int, candidates: Sequence[tuple[tuple[int, ...], float]],
                       priors: Sequence[float]) -> list[int]:
        """Children of ``node_id`` for the (tokens, raw probability) ``candidates`` with
        their normalised ``priors`` (§3.3); returns their ids."""
        return [self.tree.add_child(node_id, tokens, prior, prob)
                for (tokens, prob), prior in zip(candidates, priors)]

    def set_judged(self, child_ids: Sequence[int], values: Sequence[float]) -> None:
        """The judge's values of new children's texts (``judge_candidates``)."""
        for child_id, value in zip(child_ids, values):
            self.tree.nodes[child_id].judged = value

    def mark_expanded(self, node_id: int, spares: Sequence[tuple[tuple[int, ...], float]]) -> None:
        """``node_id`` has its candidates; ``spares``: 1-token candidates kept for §6."""
        node = self.tree.nodes[node_id]
        node.pool = list(spares)
        node.expanded = True

    def take_spare(self, node_id: int) -> tuple[tuple[int, ...], float] | None:
        """The next unused 1-token candidate of ``node_id`` (§6), or None."""
        pool = self.tree.nodes[node_id].pool
        return pool.pop(0) if pool else None

    def add_child(self, node_id: int, tokens: tuple[int, ...], prob: float, *,
                  root_mix: float) -> int:
        """One more child of ``node_id`` (raw probability ``prob``), every sibling's prior
        renormalised (mixed with uniform at the root: ``root_mix``)."""
        return add_child_and_renormalize(self.tree, node_id, tokens, prob,
                                         is_root=node_id == self.tree.root, root_mix=root_mix)

    def mark_terminal(self, node_id: int) -> None:
        """The answer at ``node_id`` is finished (EOS, the length limit or a stop string)."""
        self.tree.nodes[node_id].terminal = True

    def back_up(self, path: list[int], value: float, embeddings: list[np.ndarray] | None, *,
                threshold: float, weight: float) -> None:
        """Back ``value`` up along ``path`` with the similarity update (§3.4, §5)."""
        backup(self.tree, path, value, embeddings, threshold=threshold, weight=weight)

    @contextmanager
    def virtual_losses(self) -> Iterator[Callable[[list[int]], None]]:
        """Inside the block, the function given counts one visit of value −1 on every
        node of a path (the parallel search's selection); every virtual visit is gone
        when the block ends, so nothing backed up ever sees one."""
        saved: dict[int, tuple[float, float]] = {}  # node id -> (visits, value) before

        def add(path: list[int]) -> None:
            for node_id in path:
                node = self.tree.nodes[node_id]
                saved.setdefault(node_id, (node.visits, node.value))
                node.value = (node.value * node.visits + VIRTUAL_LOSS_VALUE) / (node.visits + 1.0)
                node.visits += 1.0

        try:
            yield add
        finally:
            for node_id, (visits, value) in saved.items():
                self.tree.nodes[node_id].visits, self.tree.nodes[node_id].value = visits, value

    def commit(self, child_id: int, *, root_mix: float) -> None:
        """Make a child of the root the new root (§2); its children's priors are
        re-mixed: p ← (1 − root_mix)·p + root_mix/len(children)."""
        tree = self.tree
        tree.committed.append(child_id)
        tree.root = child_id
        ids = tree.child_ids(child_id)
        if ids:
            mixed = mix_with_uniform([tree.nodes[c].prior for c in ids], root_mix)
            for c, p in zip(ids, mixed):
                tree.nodes[c].prior = p

    def rewind_commits(self, root: int, committed: int) -> None:
        """Take back the commits made after the root was ``root`` with ``committed``
        commits (never shown: the budget's finish, replaced by a better judged answer)."""
        self.tree.root = root
        del self.tree.committed[committed:]

    # ------------------------------------------------------------------ whole answers
    def note_whole_value(self, ids: Sequence[int], value: float) -> None:
        """The value the search gave the whole answer ``ids`` (what the result reports)."""
        self.whole_values[tuple(ids)] = value

    def set_best_answer(self, value: float, ids: list[int]) -> None:
        """``ids`` is the best judged whole answer (repairs start again from it)."""
        self.best_answer = (value, ids)
        self.repair_misses = 0

    def forget_best_answer(self) -> None:
        self.best_answer = None

    def veto(self, text: str) -> bool:
        """``answer_checks`` overruled the whole answer ``text``; whether for the first time."""
        new = text not in self.vetoed_answers
        self.vetoed_answers.add(text)
        return new

    def mark_disfluent(self, text: str) -> bool:
        """The whole answer ``text`` is over the fluency floor; whether newly found."""
        new = text not in self.disfluent
        self.disfluent.add(text)
        return new

    def set_fluency_floor(self, limit: float) -> None:
        self.nll_limit = limit

    def remember_logprobs(self, answer: Sequence[int], tokens: Sequence[int],
                          logprobs: Sequence[float]) -> None:
        """The model's log-probabilities of ``tokens`` drawn after ``answer``."""
        remember_imagined(self.token_logprobs, answer, tokens, logprobs)

    def count_repair_attempt(self) -> None:
        self.repair_attempts += 1

    def count_repair_miss(self) -> None:
        """A repair pass that did not change the best answer (``repair_escalate``)."""
        self.repair_misses += 1

    # ------------------------------------------------------------------ judged and embedded
    def remember_verdict(self, key: tuple[str, str], value: float) -> None:
        self.eval_cache[key] = value

    def log_evaluation(self, record: dict[str, Any]) -> None:
        """One line of the audit log of judged texts."""
        self.evaluations.append(record)

    def remember_embeddings(self, texts: Sequence[str], vectors: Sequence[np.ndarray]) -> None:
        """Keep embedded texts' vectors (bounded: past ``MAX_EMBEDDING_CACHE`` texts the
        cache starts afresh rather than grow without limit)."""
        if len(self.embedding_cache) + len(texts) > MAX_EMBEDDING_CACHE:
            self.embedding_cache.clear()
        for text, vector in zip(texts, vectors):
            self.embedding_cache[text] = vector

    # ------------------------------------------------------------------ the clock
    def set_budget_end(self, end: float | None) -> None:
        self.budget_end = end

    def set_deadline(self, deadline: float | None) -> None:
        self.deadline = deadline
