"""`rain distill train`: a tiny DPO run on the embedded model whose folder loads and answers,
a resumed run, and (without a model) the settings, the resume decision and the CLI's
errors."""

from __future__ import annotations

import json
import re
import shutil
import sys

import pytest
from click.testing import CliRunner

from rainlm.cli.main import cli
from rainlm.distill import train as train_module
from rainlm.distill.model_dir import (CHECKPOINTS, INFO_FILE, RUN_FILE, last_checkpoint,
                                      plan_resume, start_fresh)
from rainlm.distill.train import DEFAULT_SFT_WEIGHT, TrainSettings, dpo_loss, train
from rainlm.errors import ConfigError
from tests.needs import require_module

from .helpers import write_jsonl

PAIRS = [{"prompt": [{"role": "user", "content": question}],
          "chosen": [{"role": "assistant", "content": good}],
          "rejected": [{"role": "assistant", "content": bad}]}
         for question, good, bad in [
             ("How do I manage my time?", "Plan your day and keep a list.",
              "Time management is a skill."),
             ("How can I learn faster?", "Practise a little every day.",
              "Learning is a skill that takes time."),
             ("How do I stay focused?", "Put your phone away.", "Focus is a skill."),
             ("How do I sleep better?", "Go to bed at the same hour.",
              "Sleep takes time and skill.")]]
TINY = dict(max_length=64, batch_size=1, gradient_accumulation=1, save_steps=1)
TINY_FLAGS = ["--max-length", "64", "--batch-size", "1", "--gradient-accumulation", "1",
              "--save-steps", "1"]


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


# ------------------------------------------------------------------ no model needed
def test_planned_steps_follow_epochs_up_to_max_steps():
    settings = TrainSettings(batch_size=2, gradient_accumulation=4, epochs=2, max_steps=100)
    assert settings.planned_steps(10) == 4  # 5 batches -> 2 steps an epoch, 2 epochs
    assert settings.planned_steps(1000) == 100
    assert TrainSettings(epochs=0.5).planned_steps(3) == 1
    assert settings.lr == 5e-4 and TrainSettings(method="sft", lora=False).lr == 2e-5
    assert TrainSettings(learning_rate=3e-5).record()["learning_rate"] == 3e-5
    with pytest.raises(ConfigError, match="max_length"):
        TrainSettings(max_length=8).check()


def test_sft_weight_adds_the_supervised_loss_to_dpo_only(tmp_path):
    assert dpo_loss(TrainSettings(sft_weight=0.0)) == {"loss_type": ["sigmoid"]}
    assert dpo_loss(TrainSettings(sft_weight=0.5)) == {"loss_type": ["sigmoid", "sft"],
                                                       "loss_weights": [1.0, 0.5]}
    # by default DPO gets the measured weight, SFT none (and may leave it unset)
    assert dpo_loss(TrainSettings())["loss_weights"] == [1.0, DEFAULT_SFT_WEIGHT]
    assert TrainSettings().record()["sft_weight"] == DEFAULT_SFT_WEIGHT
    sft = TrainSettings(method="sft")
    sft.check()
    assert sft.dpo_sft_weight == 0.0 and sft.record()["sft_weight"] == 0.0
    for bad in (dict(sft_weight=-1.0), dict(sft_weight=float("nan")),
                dict(method="sft", sft_weight=1.0)):
        with pytest.raises(ConfigError, match="sft_weight"):
            TrainSettings(**bad).check()
    trl = require_module("trl")
    # TRL itself accepts the combination (it checks that the lists have the same length)
    config = trl.DPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False,
                           **dpo_loss(TrainSettings(sft_weight=1.0)))
    assert config.loss_type == ["sigmoid", "sft"] and config.loss_weights == [1.0, 1.0]


def _checkpoint(folder, step, complete=True):
    path = folder / CHECKPOINTS / f"checkpoint-{step}"
    path.mkdir(parents=True)
    if complete:
        (path / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return path


def test_the_same_run_resumes_from_its_last_complete_checkpoint(tmp_path):
    run = {"base_model": "embedded", "data_sha256": "abc", "learning_rate": 1e-4}
    assert plan_resume(tmp_path, run, None) is None  # nothing yet
    start_fresh(tmp_path, run)
    assert json.loads((tmp_path / CHECKPOINTS / RUN_FILE).read_text()) == run
    _checkpoint(tmp_path, 2)
    _checkpoint(tmp_path, 10)
    _checkpoint(tmp_path, 11, complete=False)  # interrupted while saving
    assert last_checkpoint(tmp_path / CHECKPOINTS).name == "checkpoint-10"
    assert plan_resume(tmp_path, run, None).name == "checkpoint-10"
    assert plan_resume(tmp_path, run, True).name == "checkpoint-10"
    with pytest.raises(ConfigError, match=r"differs in data_sha256, learning_rate.*--no-resume"):
        plan_resume(tmp_path, {**run, "data_sha256": "def", "learning_rate": 1e-3}, None)
    assert plan_resume(tmp_path, {**run, "data_sha256": "def"}, False) is None
    assert last_checkpoint(tmp_path / CHECKPOINTS).name == "checkpoint-10"  # still there
    start_fresh(tmp_path, {**run, "data_sha256": "def"})
    assert last_checkpoint(tmp_path / CHECKPOINTS) is None  # started over
    with pytest.raises(ConfigError, match="no checkpoint in .* to resume from"):
        plan_resume(tmp_path, run, True)


def test_a_run_file_from_before_the_sft_weight_resumes_as_plain_dpo(tmp_path):
    old_run = {"base_model": "embedded", "data_sha256": "abc", "learning_rate": 1e-4}
    start_fresh(tmp_path, old_run)  # written before sft_weight existed
    _checkpoint(tmp_path, 4)
    assert plan_resume(tmp_path, {**old_run, "sft_weight": 0.0}, None).name == "checkpoint-4"
    with pytest.raises(ConfigError, match="differs in sft_weight"):
        plan_resume(tmp_path, {**old_run, "sft_weight": 0.2}, None)


@pytest.fixture
def pairs_file(tmp_path):
    return write_jsonl(tmp_path / "dpo.jsonl", PAIRS)


@pytest.fixture
def no_deps_check(monkeypatch):
    """The data and folder checks come first, whatever is installed."""
    monkeypatch.setattr(train_module, "require_training_deps", lambda: None)


def test_cli_says_how_to_install_the_distill_extra(pairs_file, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "trl", None)  # as if not installed
    result = invoke("distill", "train", pairs_file, "--out", tmp_path / "m")
    assert result.exit_code == 2
    # trl named among what is missing (datasets and peft too where they are not installed)
    assert re.search(r"training needs [\w, ]*\btrl\b", result.stderr), result.stderr
    assert "pip install 'rainlm[distill]'" in result.stderr
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("rows, tail, args, message", [
    ([], "", [], "holds no rows"),
    (PAIRS[:1], "{oops\n", [], "line 2: not JSON"),
    ([{"prompt": "Q?", "chosen": "A."}], "", [], "line 1: field 'rejected' is missing"),
    ([{"messages": [{"role": "user", "content": "Q?"}]}], "", [],
     "this is SFT data (sft.jsonl): pass dpo.jsonl, or train with --method sft"),
    ([{"prompt": "Q?", "completion": 5}], "", ["--method", "sft"],
     "field 'completion' must be a string"),
    (PAIRS, "", ["--model", "llamacpp:"], "is served by another engine"),
    (PAIRS, "", ["--model", "openai:http://127.0.0.1:8000/v1"], "is served by another engine"),
    (PAIRS, "", ["--resume"], "to resume from; leave out --resume"),
    (PAIRS, "", ["--model", "./no/such/model"], "No model folder or .gguf file at"),
])
def test_cli_errors_before_loading_a_model(tmp_path, no_deps_check, rows, tail, args, message):
    data = write_jsonl(tmp_path / "dpo.jsonl", rows, tail)
    result = invoke("distill", "train", data, "--out", tmp_path / "m", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert not (tmp_path / "m").exists()  # nothing written
    if "line" in message or "rows" in message:
        assert str(data) in result.stderr


def test_cli_refuses_to_overwrite_a_model_it_did_not_write(pairs_file, tmp_path, no_deps_check):
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text("{}")
    result = invoke("distill", "train", pairs_file, "--out", base)
    assert result.exit_code == 2
    assert "did not write; choose another folder" in result.stderr
    result = invoke("distill", "train", pairs_file, "--model", base, "--out", base)
    assert "is the base model's folder" in result.stderr
    assert (base / "config.json").read_text() == "{}"


def test_cli_rejects_bad_option_values(pairs_file, tmp_path):
    result = invoke("distill", "train", pairs_file, "--out", tmp_path / "m", "--max-steps", "0")
    assert result.exit_code == 2 and "--max-steps" in result.stderr
    result = invoke("distill", "train", pairs_file, "--out", tmp_path / "m", "--model", " ")
    assert result.exit_code == 2 and "--model" in result.stderr


def test_help_has_examples():
    result = invoke("distill", "train", "--help")
    assert result.exit_code == 0
    assert "rain distill train data/ --out distilled/" in result.stdout


# ------------------------------------------------------------------ the embedded model
@pytest.fixture(scope="module")
def one_thread():
    """One torch thread (a busy 2-core machine: see tests/conftest.py)."""
    torch = require_module("torch")
    require_module("trl")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, one_thread):
    """Two DPO steps with LoRA on the embedded model, a checkpoint after each."""
    folder = tmp_path_factory.mktemp("tiny")
    data = write_jsonl(folder / "dpo.jsonl", PAIRS)
    return data, train(data, folder / "model", settings=TrainSettings(max_steps=2, **TINY))


@pytest.mark.model
def test_a_tiny_run_saves_a_folder_that_loads_and_answers(tiny_run, embedded_backend):
    import rainlm

    data, result = tiny_run
    out = result.out_dir
    info = json.loads((out / INFO_FILE).read_text())
    assert info["steps"] == result.steps == 2 and info["resumed_from_step"] is None
    assert info["method"] == "dpo" and info["lora"] == {"r": 8, "alpha": 16, "merged": True}
    assert info["base_model"]["spec"] == "embedded"
    assert info["data"]["rows"] == 4 and info["data"]["path"] == str(data)
    assert info["settings"]["max_length"] == 64 and info["final_loss"] > 0
    assert info["peak_memory_mib"] > 100 and info["seconds"] > 0
    assert not list(out.glob("adapter_*"))  # merged, not an adapter
    backend = rainlm.load_backend(out, device="cpu")
    assert backend.capabilities.chat_template  # the tokenizer's template was saved
    trained = backend.model.model.layers[0].self_attn.q_proj.weight
    base = embedded_backend.model.model.layers[0].self_attn.q_proj.weight
    assert trained.shape == base.shape and not bool((trained == base).all())  # it learned
    answer = rainlm.greedy(backend, "How do I manage my time?", max_new_tokens=6)
    assert answer.text.strip() and 0 < len(answer.token_ids) <= 6


@pytest.mark.model
def test_running_again_with_more_steps_continues_from_the_checkpoint(tiny_run, tmp_path):
    data, first = tiny_run
    out = tmp_path / "model"
    shutil.copytree(first.out_dir, out)
    assert last_checkpoint(out / CHECKPOINTS).name == "checkpoint-2"
    result = invoke("distill", "train", data, "--out", out, "--max-steps", "3", *TINY_FLAGS,
                    "--resume", "--progress")
    assert result.exit_code == 0, result.output
    assert f"resuming from {out / CHECKPOINTS / 'checkpoint-2'} (step 2)" in result.stderr
    assert "[train] 1/1 [" in result.stderr  # one step run here, not three
    assert "steps 3, resumed at step 2, final loss" in result.stdout
    info = json.loads((out / INFO_FILE).read_text())
    assert info["steps"] == 3 and info["resumed_from_step"] == 2
    state = json.loads((out / CHECKPOINTS / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    earlier = json.loads((first.out_dir / CHECKPOINTS / "checkpoint-2"
                          / "trainer_state.json").read_text())
    losses = [e["loss"] for e in state["log_history"] if "loss" in e]
    assert losses[:2] == [e["loss"] for e in earlier["log_history"] if "loss" in e]
    assert len(losses) == 3
