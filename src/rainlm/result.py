"""What generate() and greedy() return: frozen records, never tuples that change with flags."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rainlm.config import RainConfig
from rainlm.core.decode import StepRecord
from rainlm.core.tree import Tree

CUT_OFF_REASONS = ("time_budget", "search_budget", "stopped")
"""Finish reasons of an answer a budget (or a stop) ended: cut off there unless the
budget fallback finished it greedily (``stats["greedy_tail_tokens"]`` > 0), and then
still cut off when the time budget also ended that finish (``stats["greedy_tail_cut"]``)."""


@dataclass(frozen=True)
class GenerationResult:
    """One answer and how it was produced."""

    text: str
    """The answer text (special tokens skipped, cut at the first stop string)."""
    token_ids: tuple[int, ...]
    """Answer token ids (up to, not including, end-of-sequence)."""
    finish_reason: str
    """"eos", "length", "stop_string", "time_budget" or "search_budget" (the answer
    ended because a budget ran out: see ``stats["budget_exhausted"]``), or "stopped"
    (the caller stopped the search, e.g. a server shutting down)."""
    stats: dict[str, Any]
    """Counters and seconds: searches, steps, evaluations, evaluation_cache_hits,
    model_calls, wall_time_s, phase_seconds, backend counters, ..."""
    method: str
    """"rain" or "greedy"."""
    model: str
    """The backend's model name."""
    prompt_token_ids: tuple[int, ...] = ()
    tree: Tree | None = None
    """The whole search tree (rewound branches included); None for greedy."""
    steps: tuple[StepRecord, ...] = ()
    """Each committed token set with its visits, value and searches."""
    evaluations: tuple[dict[str, Any], ...] = ()
    """Every judged text with its value and whether it came from the cache."""
    config: RainConfig | None = None
    seed: int | None = None
    messages: tuple[dict[str, str], ...] = field(default_factory=tuple)

    def trace(self, detokenize: Any = None) -> dict[str, Any]:
        """A JSON-ready record of the search: tree, commits, evaluations, stats."""
        return {
            "version": 1,
            "method": self.method,
            "model": self.model,
            "seed": self.seed,
            "messages": [dict(m) for m in self.messages],
            "config": self.config.to_dict() if self.config else None,
            "text": self.text,
            "finish_reason": self.finish_reason,
            "stats": self.stats,
            "steps": [s.__dict__ for s in self.steps],
            "evaluations": list(self.evaluations),
            "tree": self.tree.to_dict(detokenize) if self.tree is not None else None,
        }
