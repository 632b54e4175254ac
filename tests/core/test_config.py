"""RainConfig validation, presets, and the import-weight promise."""

import subprocess
import sys

import pytest

from rainlm import RainConfig
from rainlm.config import PRESETS
from rainlm.errors import ConfigError


def test_defaults_are_the_papers():
    cfg = RainConfig()
    cand, budgets, widening = cfg.candidates, cfg.budgets, cfg.widening
    assert cfg.selection.c_puct == 2.0
    assert (cand.token_set_lengths, cand.single_token_top_k, cand.num_candidates,
            cand.candidate_top_k, cand.root_prior_mix) == ((1, 2, 4, 10), 10, 10, 15, 0.25)
    assert (budgets.max_searches, budgets.min_new_searches, budgets.early_stop_visits,
            budgets.early_stop_value) == (50, 15, 6, 0.8)
    assert (cfg.similarity.similarity_threshold, cfg.similarity.similarity_weight) == (0.95, 0.2)
    assert (widening.widening_max_children, widening.widening_variance_scale,
            widening.widening_samples) == (20, 0.03, 2)
    assert [cfg.candidates.token_set_length(d) for d in range(6)] == [1, 2, 4, 10, 10, 10]


def test_presets():
    assert RainConfig.preset("harmless").budgets.early_stop_visits == 6
    assert RainConfig.preset("adversarial").budgets.early_stop_visits == 5
    truthful = RainConfig.preset("truthful")
    assert (truthful.budgets.early_stop_visits, truthful.simulation.simulate_until,
            truthful.judging.judge_orders) == (16, "eos", "single")
    assert truthful.answers.accept_value is None  # paper_values: the paper's None
    assert RainConfig.preset("harmless", max_searches=10).budgets.max_searches == 10
    assert set(PRESETS) == {"paper", "harmless", "adversarial", "truthful"}


@pytest.mark.parametrize("field,value,match", [
    ("c_puct", -1, r"c_puct: must be a number in \[0.0"),
    ("max_searches", 0, r"max_searches: must be an integer >= 1, got 0"),
    ("early_stop_value", 2.0, r"early_stop_value: must be a number in \[-1.0, 1.0\], got 2.0"),
    ("token_set_lengths", (1, 0), "token_set_lengths"),
    ("simulate_until", "forever", r"simulate_until: must be one of \('clause', 'eos'\)"),
    ("time_budget_s", 0, r"time_budget_s: must be a number in \(0.0"),
    ("max_searches_per_step", 2.5, "max_searches_per_step: must be an integer"),
    ("scoring", "vibes", "scoring"),
])
def test_bad_values_name_the_field(field, value, match):
    with pytest.raises(ConfigError, match=match):
        RainConfig(**{field: value})


def test_unknown_field_and_preset():
    with pytest.raises(ConfigError, match="not a RainConfig field; did you mean 'c_puct'"):
        RainConfig().replace(c_putc=1.0)
    with pytest.raises(ConfigError, match="unknown preset 'safe'"):
        RainConfig.preset("safe")


def test_every_setting_has_one_group_and_a_docstring():
    import ast
    import inspect

    from rainlm.config import GROUPS, SETTING_GROUP

    seen = []
    for cls in GROUPS.values():
        body = ast.parse(inspect.getsource(cls)).body[0].body
        for i, node in enumerate(body):
            if isinstance(node, ast.AnnAssign):
                seen.append(node.target.id)
                nxt = body[i + 1]
                assert isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant), node.target.id
    assert sorted(seen) == sorted(SETTING_GROUP) and len(seen) == len(set(seen)) == 51


def test_flat_settings_land_in_their_groups_and_come_back_flat():
    cfg = RainConfig(c_puct=3.0, simulation_top_k=7, accept_value=0.5, max_total_searches=9)
    assert (cfg.selection.c_puct, cfg.simulation.simulation_top_k, cfg.answers.accept_value,
            cfg.budgets.max_total_searches) == (3.0, 7, 0.5, 9)
    flat = cfg.to_dict()
    assert flat["c_puct"] == 3.0 and flat["preset_name"] == "custom" and len(flat) == 52
    assert RainConfig(**cfg.settings()) == cfg and hash(RainConfig(**cfg.settings())) == hash(cfg)
    grouped = cfg.to_dict(grouped=True)
    assert grouped["simulation"]["simulation_top_k"] == 7 and grouped["budgets"]["max_total_searches"] == 9
    changed = cfg.replace(c_puct=1.0)
    assert changed.selection.c_puct == 1.0 and changed.simulation == cfg.simulation and cfg.selection.c_puct == 3.0
    assert RainConfig.preset("truthful", c_puct=1.0).preset_name == "truthful"
    assert cfg.replace(preset_name="mine").preset_name == "mine"


def test_presets_are_data_grouped_by_concern():
    from rainlm.config import default_search
    from rainlm.config.presets import flat_settings, preset_settings

    assert preset_settings("paper") == {} and PRESETS["paper"] == RainConfig()  # never changes
    harmless = preset_settings("harmless")
    assert harmless == {**default_search(), "early_stop_visits": 6}
    assert default_search()["simulation_top_k"] == 40 and "accept_value" not in preset_settings("truthful")
    with pytest.raises(ConfigError, match=r"presets.x.budgets.c_puct: it belongs to \[selection\]"):
        flat_settings({"budgets": {"c_puct": 1.0}}, "presets.x")
    with pytest.raises(ConfigError, match="'budget' is not a group"):
        flat_settings({"budget": {"max_searches": 1}}, "presets.x")


def test_a_preset_that_puts_back_what_the_default_search_never_set_is_refused(monkeypatch):
    from rainlm.config import presets

    broken = {"default_search": {"budgets": {"max_total_searches": 8}},
              "presets": {"odd": {"default_search": True, "paper_values": ["c_puct"]}}}
    monkeypatch.setattr(presets, "_read", lambda: broken)
    assert presets.preset_names() == ["odd"]
    with pytest.raises(ConfigError, match=r"presets.odd.paper_values: 'c_puct' is not a setting"):
        presets.preset_settings("odd")


def test_import_rainlm_and_core_do_not_import_torch():
    code = ("import sys, rainlm, rainlm.api, rainlm.core.search, rainlm.core.decode; "
            "rainlm.RainConfig; rainlm.generate; "
            "bad = [m for m in ('torch', 'transformers', 'tokenizers') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
