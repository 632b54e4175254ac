"""The pilot's prompts: the sample it reports on and the prompts it tunes the budget on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rainlm.bench.datasets import Item, load_dataset, select
from rainlm.pilot.plan import PilotPlan

__all__ = ["PilotPrompts", "choose_prompts", "load_prompts"]


@dataclass(frozen=True)
class PilotPrompts:
    """The sample and the tuning prompts."""

    sample: tuple[Item, ...]
    """The prompts every method answers (what the report is about)."""
    tune: tuple[Item, ...]
    """The prompts the time budget is tuned on."""
    tuned_outside: bool
    """The tuning prompts are not in the sample (the file had enough prompts)."""
    available: int
    """Prompts in the file."""


def load_prompts(source: str, prompt_field: str = "prompt") -> list[Item]:
    """Every prompt of a JSONL/CSV/TSV file (a ``prompt`` field; optional ``id``) or of a
    built-in set by name (vicuna, hh, advbench, xstest, truthfulqa)."""
    return load_dataset(source, prompt_field=prompt_field)


def choose_prompts(items: Sequence[Item], plan: PilotPlan) -> PilotPrompts:
    """A seeded draw of ``plan.sample`` prompts (all of them when the file has fewer);
    the tuning prompts come after the sample in the same draw when there are enough,
    else they are the sample's first ones."""
    shuffled = select(list(items), seed=plan.seed)
    sample = tuple(shuffled[: plan.sample])
    rest = shuffled[plan.sample:]
    outside = len(rest) >= plan.tune_prompts
    tune = tuple(rest[: plan.tune_prompts]) if outside else sample[: plan.tune_prompts]
    return PilotPrompts(sample, tune, outside, len(items))
