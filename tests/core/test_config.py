"""RainConfig validation, presets, and the import-weight promise."""

import subprocess
import sys

import pytest

from rainlm import RainConfig
from rainlm.config import PRESETS
from rainlm.errors import ConfigError


def test_defaults_are_the_papers():
    cfg = RainConfig()
    assert (cfg.c_puct, cfg.token_set_lengths, cfg.single_token_top_k, cfg.num_candidates,
            cfg.candidate_top_k, cfg.root_prior_mix) == (2.0, (1, 2, 4, 10), 10, 10, 15, 0.25)
    assert (cfg.max_searches, cfg.min_new_searches, cfg.early_stop_visits,
            cfg.early_stop_value) == (50, 15, 6, 0.8)
    assert (cfg.similarity_threshold, cfg.similarity_weight) == (0.95, 0.2)
    assert (cfg.widening_max_children, cfg.widening_variance_scale, cfg.widening_samples) == (20, 0.03, 2)
    assert [cfg.token_set_length(d) for d in range(6)] == [1, 2, 4, 10, 10, 10]


def test_presets():
    assert RainConfig.preset("harmless").early_stop_visits == 6
    assert RainConfig.preset("adversarial").early_stop_visits == 5
    truthful = RainConfig.preset("truthful")
    assert (truthful.early_stop_visits, truthful.simulate_until, truthful.judge_orders) == (16, "eos", "single")
    assert RainConfig.preset("harmless", max_searches=10).max_searches == 10
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


def test_every_field_has_a_docstring():
    import ast
    import inspect

    from rainlm import config as module

    tree = ast.parse(inspect.getsource(module.RainConfig))
    body = tree.body[0].body
    for i, node in enumerate(body):
        if isinstance(node, ast.AnnAssign):
            nxt = body[i + 1]
            assert isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant), node.target.id


def test_import_rainlm_and_core_do_not_import_torch():
    code = ("import sys, rainlm, rainlm.api, rainlm.core.search, rainlm.core.decode; "
            "rainlm.RainConfig; rainlm.generate; "
            "bad = [m for m in ('torch', 'transformers', 'tokenizers') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
