"""Named search configs of ``rain bench frontier --rain``: the paper's search, the default
search, and the variants of the ablation tables (``benchmarks/RESULTS.md``). A module of
its own so the command line can list the names without importing the benchmark."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rainlm.config import RainConfig


def _paper() -> RainConfig:
    return RainConfig.preset("paper")


def _default(**changes: Any) -> RainConfig:
    return RainConfig.preset("harmless", **changes)


PREVIOUS_DEFAULT: dict[str, Any] = dict(simulate_until="clause", accept_value=None,
                                        keep_best_answer=False, num_candidates=10,
                                        step_budget_share=0.25, repair_share=0.0,
                                        answer_checks=0)
"""What the default search of stop 16 had where today's differs (the ``prev`` variants)."""


def _calm_free(**changes: Any) -> RainConfig:
    """The default of stops 23–35 (imaginations from the whole vocabulary at 1), which
    the historical variants change one setting of (their results were measured so)."""
    return _default(**{"simulation_temperature": 1.0, "simulation_top_k": None, **changes})


def _prev(**changes: Any) -> RainConfig:
    return _calm_free(**{**PREVIOUS_DEFAULT, **changes})


_ACCEPT = dict(accept_value=1.0, keep_best_answer=True)
_CALM = dict(simulation_temperature=0.7, simulation_top_k=40)
"""Imaginations from the model's top 40 at temperature 0.7 (issue 27's lead; the default
since)."""

RAIN_VARIANTS: dict[str, Callable[[], RainConfig]] = {
    "paper": _paper,
    "paper+fpu": lambda: _paper().replace(unvisited_value="neutral"),
    "paper+answer": lambda: _paper().replace(depth_origin="answer"),
    "paper+secure": lambda: _paper().replace(commit_rule="secure"),
    "paper+keep": lambda: _paper().replace(keep_simulations=True),
    "paper+forced": lambda: _paper().replace(skip_forced_steps=True),
    "paper+t2": lambda: _paper().replace(candidate_temperature=2.0, candidate_draws=19),
    "paper+eos+accept": lambda: _paper().replace(simulate_until="eos", **_ACCEPT),
    "default": _default,
    "default+t2": lambda: _calm_free(candidate_temperature=2.0, candidate_draws=7),
    "default+jc": lambda: _calm_free(judge_candidates=True),
    "default-accept": lambda: _calm_free(accept_value=None, keep_best_answer=False,
                                         repair_share=0.0, answer_checks=0),
    "default-repair": lambda: _calm_free(repair_share=0.0, answer_checks=0),
    "default+repair25": lambda: _calm_free(repair_share=0.25),
    "default+repair-b0": lambda: _calm_free(repair_backoff=0),
    "default+repair-b8": lambda: _calm_free(repair_backoff=8),
    "default+escalate": lambda: _calm_free(repair_escalate=True),
    "default-checks": lambda: _calm_free(answer_checks=0),
    "default+checks": lambda: _calm_free(answer_checks_scope="every"),
    "default+checks+escalate": lambda: _calm_free(answer_checks_scope="every", repair_escalate=True),
    "default+checks-best": _calm_free,
    "default-rootrepair": lambda: _calm_free(repair_from_root=False),
    "default+share1": lambda: _calm_free(step_budget_share=1.0),
    "default+share75": lambda: _calm_free(step_budget_share=0.75),
    "default+t07": _default,
    "default-calm": _calm_free,
    "default+floor": lambda: _default(answer_nll_margin=0.5, **_CALM),
    "default+floor-m1": lambda: _default(answer_nll_margin=1.0, **_CALM),
    "default+floor-t05": lambda: _default(answer_nll_margin=0.5, **{**_CALM, "simulation_temperature": 0.5}),
    "prev": _prev,
    "prev+accept": lambda: _prev(**_ACCEPT),
    "prev+eos+accept": lambda: _prev(simulate_until="eos", **_ACCEPT),
    "prev+eos+accept+jc": lambda: _prev(simulate_until="eos", judge_candidates=True, **_ACCEPT),
    "prev+eos+accept+n4": lambda: _prev(simulate_until="eos", num_candidates=4, **_ACCEPT),
    "prev+eos+accept+n4+jc": lambda: _prev(simulate_until="eos", num_candidates=4,
                                           judge_candidates=True, **_ACCEPT),
}
"""Named search configs for the frontier and its ablation: the paper's search, the
paper's search with one new setting each, the default search (every setting of
``default_search()``) with one setting added or removed (``default-repair`` is the default
of stop 17, before repair passes and checks; ``default-checks`` the default of stops
18–22, before checks; ``default+checks`` checks every whole answer judged ≥ 0;
``default+checks-best``, the name the default of stops 23–35 was measured under, is that
default, ``default-calm`` (every variant named after a ``default`` of before, and every
``prev`` one, keeps its imaginations from the whole vocabulary at 1, as measured);
``default+t07``, the name today's calm imaginations
were chosen under on the dev split, is ``default``; ``default+floor``,
``default+floor-m1`` and ``default+floor-t05`` add the fluency floor, margin 0.5 or 1
nat, the last imagining at temperature 0.5),
and the default of stop 16 (clause simulations, no accepted answers, 10 candidates, a
0.25 step share) with the settings of stop 17 added one by one (``prev+eos+accept+n4``
is stop 17's default with the 0.25 step share)."""
