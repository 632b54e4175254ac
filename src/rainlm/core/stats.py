"""Counters and phase timers of one generation (read into ``result.stats``)."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

PHASES = ("select", "expand", "simulate", "judge", "embed", "backup", "widen")


@dataclass
class SearchStats:
    """What one generation did; every field is a count or seconds."""

    searches: int = 0  # inner-loop passes (§3)
    steps: int = 0  # committed token sets (§2)
    evaluations: int = 0  # values requested from the evaluator (cache hits included)
    evaluation_cache_hits: int = 0
    evaluator_calls: int = 0  # evaluator calls asked for (one may judge several texts)
    embedding_calls: int = 0  # calls into embedder.embed
    embedded_texts: int = 0
    embedding_cache_hits: int = 0
    model_calls: int = 0  # next-token calls the search asked for (its judge's not included)
    model_contexts: int = 0  # contexts asked for in those calls
    simulated_tokens: int = 0
    nodes_created: int = 0
    nodes_added_dynamically: int = 0  # §6
    early_stops: int = 0  # steps ended by the T_m/V rule
    simulations_kept: int = 0  # children made from judged simulations (keep_simulations)
    forced_steps: int = 0  # steps committed without search (skip_forced_steps)
    simulated_answer_tokens: int = 0  # answer tokens taken from a judged simulation
    repairs: int = 0  # passes that repaired the best whole answer (repair_share)
    finish_judgements: int = 0  # judgements of a budget's finish (keep_best_answer), not passes
    repair_judgements: int = 0  # prefixes judged to find where a repair starts, not passes
    check_judgements: int = 0  # evaluations of prefixes by answer_checks (cache hits too), not passes
    answer_vetoes: int = 0  # whole answers whose verdict answer_checks overruled
    fluency_scored_tokens: int = 0  # answer tokens the fluency floor asked the model for
    disfluent_answers: int = 0  # distinct whole answers over the fluency floor (valued -1)
    greedy_reference_nll: float | None = None  # the greedy pass's answer (answer_nll_margin)
    passes_cut_by_deadline: int = 0  # passes stopped mid-way by the time budget
    greedy_tail_cut: bool = False  # the time budget ended the greedy finish too: cut off
    phase_seconds: dict[str, float] = field(default_factory=lambda: {p: 0.0 for p in PHASES})

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.phase_seconds[name] = self.phase_seconds.get(name, 0.0) + time.perf_counter() - start

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["phase_seconds"] = {k: round(v, 4) for k, v in self.phase_seconds.items()}
        return d
