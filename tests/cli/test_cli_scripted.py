"""The ``rain`` command line on a scripted model (fast; no real model anywhere).

The scripted model answers a harmful request greedily ("Sure, here is how.") and less
probably refuses ("I can't help with that."). It also acts as its own judge: after the
cue "The answer is: (" it puts most probability on the option saying the judged answer
is harmless when it refuses, and on the harmful option when it complies. So the real
SelfEvaluator path (prompt, labels, both orders) runs end to end.
"""

from __future__ import annotations

from tests.needs import require, require_module
from tests.self_judging import judge_law

import dataclasses
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import rainlm
from rainlm.backends.scripted import ScriptedBackend
from rainlm.cli.chat import ChatSession, run_chat
from rainlm.cli.generate import (fluency_note, generate_command, render_text, run_generate,
                                 with_fluency)
from rainlm.cli.main import cli
from rainlm.cli.options import RunOptions, Services
from rainlm.cli.progress import ProgressLine, format_event, progress_enabled
from rainlm.core.progress import ProgressEvent
from rainlm.errors import BackendError, ModelNotFoundError
from rainlm.fluency import FLUENCY_MARGIN, Fluency
from rainlm.judge.base import CallableEvaluator
from rainlm.request import Answer, GenerationParams


def run_options(**params) -> RunOptions:
    """The options of a command line that sets these GenerationParams fields."""
    return RunOptions(params=GenerationParams(**params))


CUE = "The answer is: ("
VOCAB = [" I", " can't", " help", " with", " that", " Sure", ",", " here", " is", " how", ".",
         " Hello", "!", "A", "B", CUE]
ANSWERS = {
    (): {" Sure": 0.7, " I": 0.3},
    (" Sure",): {",": 1.0},
    (" Sure", ","): {" here": 1.0},
    (" Sure", ",", " here"): {" is": 1.0},
    (" Sure", ",", " here", " is"): {" how": 1.0},
    (" Sure", ",", " here", " is", " how"): {".": 1.0},
    (" I",): {" can't": 1.0},
    (" I", " can't"): {" help": 1.0},
    (" I", " can't", " help"): {" with": 1.0},
    (" I", " can't", " help", " with"): {" that": 1.0},
    (" I", " can't", " help", " with", " that"): {".": 1.0},
}
HARMFUL = "Sure, here is how."
REFUSAL = "I can't help with that."
PROMPT = "How do I make a bomb?"


def script(answer: tuple[str, ...]) -> dict[str, float]:
    if answer and answer[-1] == CUE:  # a judge prompt (it has no <assistant> marker)
        return judge_law("".join(answer))
    if answer in ANSWERS:
        return ANSWERS[answer]
    return {"<eos>": 1.0}


def make_backend() -> ScriptedBackend:
    return ScriptedBackend(VOCAB, script, name="scripted-cli")


def services(backend: ScriptedBackend | None = None, calls: list | None = None) -> Services:
    backend = backend or make_backend()

    def load_backend(model, device):
        if calls is not None:
            calls.append((model, device))
        return backend

    return Services(load_backend=load_backend)


def invoke(args: list[str], obj: Services | None = None, input: str | None = None):
    return CliRunner().invoke(cli, args, obj=obj or services(), input=input)


FAST = ["--embedder", "hashing", "--max-new-tokens", "12"]


# --------------------------------------------------------------------------- help
def test_top_level_help_and_version():
    res = invoke(["--help"])
    assert res.exit_code == 0
    assert "generate" in res.output and "chat" in res.output
    res = invoke(["--version"])
    assert res.exit_code == 0 and rainlm.__version__ in res.output


@pytest.mark.parametrize("command", [generate_command, cli.commands["chat"]])
def test_every_option_has_help(command):
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help and len(param.help) > 15, param.name


def _commands(group: click.Group, path: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        yield path + (name,), command
        if isinstance(command, click.Group):
            yield from _commands(command, path + (name,))


def test_every_command_and_group_shows_examples():
    missing = []
    for path, _ in _commands(cli):
        own = invoke([*path, "--help"]).output
        parent = invoke([*path[:-1], "--help"]).output if len(path) > 1 else ""
        # a group's examples may cover its subcommands (rain review approve / reject)
        covered = "Examples:" in parent and re.search(rf"rain {re.escape(' '.join(path))}\b", parent)
        if "Examples:" not in own and not covered:
            missing.append(" ".join(path))
    assert not missing, f"no examples in --help of: {missing}"


def test_every_option_of_every_command_is_described_with_a_named_placeholder():
    undescribed, generic = [], []
    for path, command in _commands(cli):
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden and not param.help:
                undescribed.append(f"{' '.join(path)} {param.opts[0]}")
        # click's own placeholders say the type, not what to write
        shown = re.findall(r"\b(?:INTEGER|FLOAT)(?: RANGE)?\b", invoke([*path, "--help"]).output)
        if shown:
            generic.append(f"{' '.join(path)}: {sorted(set(shown))}")
    assert not undescribed, undescribed
    assert not generic, generic


def test_generate_help_names_options_defaults_and_units():
    res = invoke(["generate", "--help"])
    assert res.exit_code == 0
    text = " ".join(res.output.split())
    for opt in ("--preset", "--model", "--max-new-tokens", "--seed", "--time-budget",
                "--max-searches-per-step", "--scoring", "--rubric", "--system", "--embedder",
                "--device", "--compare", "--json", "--trace", "--progress"):
        assert opt in text, opt
    assert "[default: harmless]" in text and "[default: 128" in text
    assert "in seconds" in text and "in tokens" in text
    assert "SmolLM2-135M-Instruct" in text


# ------------------------------------------------------------------ bad values
@pytest.mark.parametrize("args, option", [
    (["--max-new-tokens", "0"], "--max-new-tokens"),
    (["--max-new-tokens", "ten"], "--max-new-tokens"),
    (["--time-budget", "0"], "--time-budget"),
    (["--time-budget", "-5"], "--time-budget"),
    (["--seed", "-1"], "--seed"),
    (["--max-searches-per-step", "0"], "--max-searches-per-step"),
    (["--preset", "evil"], "--preset"),
    (["--scoring", "vibes"], "--scoring"),
    (["--device", "tpu"], "--device"),
    (["--embedder", "bert"], "--embedder"),
    (["--rubric", "no-such-rubric"], "--rubric"),
    (["--model", "missing.gguf"], "--model"),
    (["--trace", "/no/such/folder/t.json"], "--trace"),
])
def test_bad_values_are_usage_errors_naming_the_option(args, option):
    calls: list = []
    res = invoke(["generate", *args, PROMPT], obj=services(calls=calls))
    assert res.exit_code == 2, res.output
    assert option in res.stderr and "Usage:" in res.stderr
    assert "Traceback" not in res.output
    assert calls == []  # nothing was loaded


def test_missing_or_empty_prompt_is_a_usage_error():
    assert invoke(["generate"]).exit_code == 2
    res = invoke(["generate", "   "])
    assert res.exit_code == 2 and "PROMPT" in res.stderr


def test_rain_error_is_a_clean_message_with_exit_2():
    def broken(model, device):
        raise ModelNotFoundError("no model here: install it")

    res = invoke(["generate", PROMPT], obj=Services(load_backend=broken))
    assert res.exit_code == 2
    assert "Error: no model here: install it" in res.stderr
    assert res.stdout == "" and "Traceback" not in res.output


def test_entry_point_reports_rain_errors_without_traceback(tmp_path):
    """The installed `rain` script (real loader): a missing model folder -> Error, exit 2."""
    rain = Path(sys.executable).with_name("rain")
    require(rain.exists(), f"the `rain` script ({rain})",
            "pip install -e . in this environment (scripts/setup does it)")
    proc = subprocess.run([str(rain), "generate", "--model", str(tmp_path / "nope") + "/",
                           "--embedder", "none", PROMPT], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("Error: ") and "Traceback" not in proc.stderr
    assert proc.stdout == ""


# --------------------------------------------------------------- run_generate
def test_run_generate_rain_refuses_where_greedy_complies():
    backend = make_backend()
    report = run_generate(backend, PROMPT, run_options(max_new_tokens=12, embedder="hashing"),
                          compare=True)
    assert report.rain.result.text.strip() == REFUSAL
    assert report.vanilla is not None and report.vanilla.result.text.strip() == HARMFUL
    assert report.rain.result.method == "rain" and report.vanilla.result.method == "greedy"
    assert report.rain.score == pytest.approx(0.7) and report.vanilla.score == pytest.approx(-0.7)
    assert report.rain.paper_vote == 1.0 and report.vanilla.paper_vote == -1.0
    assert report.rain.seconds > 0 and report.vanilla.seconds > 0  # measured, not left at 0


def test_run_generate_without_compare_or_scoring():
    report = run_generate(make_backend(), PROMPT, run_options(embedder="none"), score=False)
    assert report.vanilla is None and report.rain.score is None
    assert set(report.to_json()) == {"rain"}


def test_run_generate_applies_overrides():
    opts = RunOptions(params=GenerationParams.from_preset(
        "adversarial", scoring="continuous", max_searches_per_step=3, time_budget_s=30.0,
        embedder="none", seed=7, max_new_tokens=12))
    report = run_generate(make_backend(), PROMPT, opts, score=False)
    cfg = report.rain.result.config
    assert (cfg.preset_name, cfg.judging.rubric, cfg.judging.scoring) == ("adversarial", "adversarial", "continuous")
    assert cfg.budgets.max_searches_per_step == 3 and cfg.budgets.time_budget_s == 30.0
    assert report.rain.result.seed == 7
    assert all(step.searches <= 3 for step in report.rain.result.steps)


def test_parallel_option_selects_the_parallel_search():
    report = run_generate(make_backend(), PROMPT, RunOptions(params=GenerationParams.from_preset(
                              parallel=3, embedder="none")),
                          score=False)
    cfg = report.rain.result.config
    assert (cfg.selection.search_mode, cfg.selection.parallel_leaves) == ("parallel", 3)
    assert report.rain.result.stats["searches"] > 0


# ------------------------------------------------------------------- command
def test_plain_output_is_just_the_answer():
    calls: list = []
    res = invoke(["generate", *FAST, "--model", "my-model", "--device", "cpu", PROMPT],
                 obj=services(calls=calls))
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == REFUSAL
    assert calls == [("my-model", "cpu")]


def test_json_is_exactly_one_object_with_the_documented_shape():
    res = invoke(["generate", *FAST, "--json", "--progress", PROMPT])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)  # the whole of stdout is one JSON document
    assert set(data) == {"rain"}
    rain = data["rain"]
    assert {"text", "seconds", "score", "stats", "finish_reason"} <= set(rain)
    assert rain["text"].strip() == REFUSAL and rain["finish_reason"] == "eos"
    assert isinstance(rain["seconds"], float) and -1 <= rain["score"] <= 1
    assert rain["stats"]["searches"] > 0
    assert "[rain]" in res.stderr  # forced progress went to stderr only


def test_json_compare_has_both_answers():
    res = invoke(["generate", *FAST, "--json", "--compare", PROMPT])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert set(data) == {"rain", "vanilla"}
    for key in ("rain", "vanilla"):
        entry = data[key]
        assert isinstance(entry["seconds"], float) and entry["seconds"] > 0
        assert -1 <= entry["score"] <= 1 and entry["paper_vote"] in (-1, 0, 1)
        assert isinstance(entry["stats"], dict) and entry["finish_reason"]
    assert data["vanilla"]["text"].strip() == HARMFUL
    assert data["rain"]["score"] > data["vanilla"]["score"]


def test_compare_text_shows_both_answers_scores_and_times():
    res = invoke(["generate", *FAST, "--compare", PROMPT])
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert "=== RAIN (harmless preset) ===" in out and "=== Greedy (vanilla) ===" in out
    assert REFUSAL in out and HARMFUL in out
    assert "self-evaluation +0.700 (continuous), vote +1 (paper)" in out
    assert "self-evaluation -0.700 (continuous), vote -1 (paper)" in out
    assert out.count(" s | ") == 2 and "searches" in out


def test_ban_makes_a_policy_rule_the_judge_and_reports_it():
    res = invoke(["generate", *FAST, "--compare", "--ban", "Sure,here", PROMPT])
    assert res.exit_code == 0, res.output
    out = res.stdout
    rain_block, greedy_block = out.split("=== Greedy (vanilla) ===")
    assert REFUSAL in rain_block and "rule kept: no banned word" in rain_block
    # the default search accepts the first whole answer the rule judges +1, and says so
    assert "tokens from a judged whole answer" in rain_block
    assert "tokens from a judged whole answer" not in greedy_block
    assert HARMFUL in greedy_block and "rule BROKEN: says sure, here" in greedy_block
    js = invoke(["generate", *FAST, "--compare", "--json", "--ban", "Sure", PROMPT])
    payload = json.loads(js.stdout)
    assert payload["rain"]["banned_found"] == [] and payload["vanilla"]["banned_found"] == ["sure"]
    bad = invoke(["generate", *FAST, "--ban", "a b,", PROMPT])
    assert bad.exit_code == 2 and "--ban" in bad.output


def test_budget_fallback_option_reaches_the_config():
    opts = RunOptions.from_kwargs(dict(
        preset="harmless", model=None, backend="transformers", base_url=None, tokenizer=None,
        device="cpu", max_new_tokens=8, seed=0, time_budget_s=None, budget_fallback="greedy",
        max_searches_per_step=None, parallel=None, scoring=None, rubric=None, system=None,
        embedder="none", progress=None, answer_nll_margin=None))
    assert opts.config().budgets.budget_fallback == "greedy"
    assert opts.config().answers.answer_nll_margin is None  # the floor is off by default
    bad = invoke(["generate", *FAST, "--budget-fallback", "maybe", PROMPT])
    assert bad.exit_code == 2 and "--budget-fallback" in bad.output


def test_fluency_floor_option_turns_on_the_floor_and_says_so():
    # the floor opens the search with a greedy pass (its NLL is the reference) and an
    # answer it rejects counts as not accepted, which the note names
    res = invoke(["generate", *FAST, "--json", "--fluency-floor", "0.5", PROMPT])
    assert res.exit_code == 0, res.output
    stats = json.loads(res.stdout)["rain"]["stats"]
    assert isinstance(stats["greedy_reference_nll"], float) and stats["greedy_reference_nll"] >= 0
    plain = json.loads(invoke(["generate", *FAST, "--json", PROMPT]).stdout)["rain"]["stats"]
    assert plain["greedy_reference_nll"] is None
    for value in ("-1", "21", "lots"):
        bad = invoke(["generate", *FAST, "--fluency-floor", value, PROMPT])
        assert bad.exit_code == 2 and "--fluency-floor" in bad.output


def test_compare_shows_each_answers_nll_and_flags_a_less_fluent_one():
    res = invoke(["generate", *FAST, "--compare", "--json", PROMPT])
    data = json.loads(res.stdout)
    for key in ("rain", "vanilla"):
        fluency, entry = data[key]["fluency"], data[key]
        # every answer token, and the end-of-sequence token where the answer ended there
        ended = entry["finish_reason"] == "eos"
        assert fluency["tokens"] == entry["stats"]["answer_tokens"] + ended > 1
        assert isinstance(fluency["nll"], float) and fluency["nll"] >= 0
        assert fluency["approximate"] is False  # a dense backend lists every token
    # the scripted model says its greedy answer with p = 0.7 for the first token and 1
    # after it (the end too): NLL = -ln(0.7) / its tokens
    greedy_tokens = data["vanilla"]["fluency"]["tokens"]
    assert data["vanilla"]["fluency"]["nll"] == pytest.approx(-math.log(0.7) / greedy_tokens,
                                                               abs=1e-3)
    report = run_generate(make_backend(), PROMPT, run_options(embedder="hashing",
                                                              max_new_tokens=12), compare=True)
    text = render_text(report)
    assert text.count(" nats/token") == 2
    # the refusal is 0.85 nat less likely in all than greedy's answer: not flagged
    assert "less likely than greedy's" not in text
    # made 3 nats per token less likely, RAIN's answer is flagged, in its own block only
    noisy = dataclasses.replace(report, rain=dataclasses.replace(
        report.rain, fluency=Fluency(report.vanilla.fluency.nll + 3.0, 8)))
    rain_block, greedy_block = render_text(noisy).split("=== Greedy (vanilla) ===")
    assert "3.00 nats per token less likely than greedy's" in rain_block
    assert "less likely" not in greedy_block


def test_an_answer_whose_fluency_cannot_be_measured_is_kept(capsys):
    backend = make_backend()
    report = run_generate(backend, PROMPT, run_options(embedder="hashing", max_new_tokens=12),
                          compare=False)

    def broken(*args, **kwargs):
        raise BackendError("the engine went away")

    backend.next_logprobs = broken
    kept = with_fluency(backend, report.rain)
    assert kept is report.rain and kept.fluency is None
    assert "could not measure the answer's fluency: the engine went away" in capsys.readouterr().err


def test_fluency_note_flags_an_answer_past_the_margin_only():
    def with_nll(nll, approximate=False):
        return Answer(result=None, seconds=1.0, fluency=Fluency(nll, 8, approximate))

    greedy = with_nll(0.5)
    assert fluency_note(with_nll(0.5 + FLUENCY_MARGIN - 0.01), greedy) is None
    note = fluency_note(with_nll(0.5 + FLUENCY_MARGIN + 0.25), greedy)
    assert note is not None and "1.25 nats per token less likely" in note
    assert "--fluency-floor" in note
    # with the floor on, the note names it rather than suggesting it
    floored = fluency_note(with_nll(0.5 + FLUENCY_MARGIN + 0.25), greedy, floor=2.0)
    assert "fluency floor was 2 nats" in floored and "--fluency-floor" not in floored
    assert fluency_note(with_nll(3.0), with_nll(None)) is None  # an empty greedy answer
    assert fluency_note(with_nll(3.0), with_nll(0.5, approximate=True)) is None  # a bound
    assert fluency_note(Answer(result=None, seconds=1.0), greedy) is None  # not measured


def test_no_progress_line_when_stderr_is_not_a_terminal():
    res = invoke(["generate", *FAST, PROMPT])
    assert res.exit_code == 0 and "[rain]" not in res.stderr


def test_trace_file_has_a_consistent_tree(tmp_path):
    path = tmp_path / "trace.json"
    res = invoke(["generate", *FAST, "--compare", "--json", "--trace", str(path), PROMPT])
    assert res.exit_code == 0, res.output
    trace = json.loads(path.read_text())
    assert trace["method"] == "rain" and trace["text"].strip() == REFUSAL
    assert trace["evaluations"] and all(-1 <= e["value"] <= 1 for e in trace["evaluations"])
    assert set(trace["final_evaluations"]) == {"rain", "vanilla"}
    assert trace["vanilla"]["text"].strip() == HARMFUL
    _check_tree_visits(trace["tree"])
    # the committed path spells the answer
    texts = {n["id"]: n["text"] for n in trace["tree"]["nodes"]}
    assert "".join(texts[i] for i in trace["tree"]["committed"]).strip() == REFUSAL


def _check_tree_visits(tree: dict) -> None:
    """Visits add up: every real visit of an expanded node went on to one of its children,
    except the pass that reached it as a leaf (n_real = 1 + Σ children). With kept
    simulations (the default search) a pass may also go on to the child it kept, and a
    node made from a kept simulation has one visit before the pass that expands it, so
    n_real - 2 <= Σ children <= n_real. A committed ancestor of the current root stops
    being searched while its committed child goes on being searched as the root, so
    there n_real - 1 <= Σ children."""
    nodes = {n["id"]: n for n in tree["nodes"]}
    ancestors = ({0} | set(tree["committed"])) - {tree["root"]}
    checked = 0
    for node in nodes.values():
        kids = [nodes[c] for c in node["children"]]
        if kids and node["real_visits"] > 0:
            child_visits = sum(k["real_visits"] for k in kids)
            if node["id"] in ancestors:
                assert child_visits >= node["real_visits"] - 2, node["id"]
            else:
                assert node["real_visits"] - 2 <= child_visits <= node["real_visits"], node["id"]
            checked += 1
        assert node["visits"] >= node["real_visits"] - 1e-9  # virtual visits only add
    assert checked > 0


def test_system_prompt_and_stdin_prompt():
    res = invoke(["generate", *FAST, "--system", "Be safe.", "--json", "-"], input=PROMPT + "\n")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["rain"]["text"].strip() == REFUSAL


# ------------------------------------------------------------------- progress
def test_generate_reports_progress_events():
    events: list[ProgressEvent] = []
    result = rainlm.generate(make_backend(), PROMPT, embedder="none", max_new_tokens=12,
                             on_progress=events.append)
    assert events
    searches = [e.searches for e in events]
    assert searches == sorted(searches) and searches[-1] == result.stats["searches"]
    assert events[-1].steps == result.stats["steps"]
    assert events[-1].committed_text == result.text
    elapsed = [e.elapsed_s for e in events]
    assert elapsed == sorted(elapsed)  # a clock that moves forward
    assert all(result.text.startswith(e.committed_text) for e in events)


def test_progress_line_format_and_switch():
    text = "word " * 40
    line = format_event(ProgressEvent(text, 12, 3, 4.25))
    assert "searches   12" in line and "steps   3" in line and "4.2s" in line
    assert line.split("| ")[1].startswith("…") and len(line.split("| ")[1]) == 60
    assert progress_enabled(True) and not progress_enabled(False)

    class Stream(list):
        def write(self, s):
            self.append(s)

        def flush(self):
            pass

        def isatty(self):
            return False

    out = Stream()
    assert not progress_enabled(None, out)
    ProgressLine(False, out)(ProgressEvent("x", 1, 0, 0.1))
    assert out == []
    shown = ProgressLine(True, out, min_interval_s=0)
    shown(ProgressEvent("hello\nworld", 1, 0, 0.1))
    shown.done("finished")
    assert "hello world" in "".join(out) and "finished\n" in "".join(out)


# ----------------------------------------------------------------------- chat
def test_chat_session_keeps_the_conversation_and_resets():
    backend = make_backend()
    session = ChatSession(backend, run_options(embedder="none", max_new_tokens=12))
    answers: list[str] = []
    notices: list[str] = []
    n = run_chat(session, [PROMPT, "", "/help", "Hello"], write=answers.append,
                 notice=notices.append)
    assert n == 2 and answers[0] == REFUSAL
    roles = [m["role"] for m in session.messages]
    assert roles == ["user", "assistant", "user", "assistant"]
    assert session.messages[0]["content"] == PROMPT and session.messages[2]["content"] == "Hello"
    run_chat(session, ["/reset", "/bogus"], write=answers.append, notice=notices.append)
    assert session.messages == []
    assert any("cleared" in s for s in notices) and any("unknown command" in s for s in notices)


def test_chat_second_turn_sees_the_first():
    seen: list[int] = []
    backend = make_backend()
    original = backend.render_prompt

    def render(messages):
        seen.append(len(messages))
        return original(messages)

    backend.render_prompt = render
    session = ChatSession(backend, run_options(embedder="none", max_new_tokens=12,
                                              system="Be safe."))
    run_chat(session, [PROMPT, PROMPT], write=lambda s: None, notice=lambda s: None)
    assert seen == [2, 4]  # system + user; system + user + assistant + user


def test_chat_command_quits_and_handles_eof():
    res = invoke(["chat", *FAST], input=f"{PROMPT}\n/reset\n{PROMPT}\n/quit\nnever asked\n")
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines() == [REFUSAL, REFUSAL]
    assert "cleared" in res.stderr
    res = invoke(["chat", *FAST], input=f"{PROMPT}\n")  # EOF without /quit
    assert res.exit_code == 0 and res.stdout.strip() == REFUSAL
    res = invoke(["chat", *FAST], input="")
    assert res.exit_code == 0 and res.stdout == ""


def test_chat_rejects_bad_values():
    res = invoke(["chat", "--time-budget", "0"], input="hi\n")
    assert res.exit_code == 2 and "--time-budget" in res.stderr


# ------------------------------------------------------------------ --backend / --base-url
@pytest.mark.parametrize("args, spec", [
    ([], None),
    (["--model", "some/folder"], "some/folder"),
    (["--backend", "llamacpp"], "llamacpp:"),
    (["--backend", "openai", "--base-url", "http://127.0.0.1:9/v1"], "openai:http://127.0.0.1:9/v1"),
    (["--backend", "openai", "--base-url", "http://h:1/v1", "--model", "m"], "openai:http://h:1/v1#m"),
])
def test_backend_options_become_one_load_backend_spec(args, spec):
    seen = []

    def load_backend(model, device):
        seen.append(model)
        return make_backend()

    res = invoke(["generate", "--embedder", "none", "--max-new-tokens", "4", *args, PROMPT],
                 obj=Services(load_backend=load_backend))
    assert res.exit_code == 0, res.output
    assert seen == [spec]


@pytest.mark.parametrize("command", [["generate"], ["calibrate", "--limit", "1"],
                                     ["bench", "run", "--dataset", "vicuna", "--out", "x.jsonl"]])
def test_base_url_mistakes_are_named_before_any_model_loads(command):
    def load_backend(model, device):
        raise AssertionError("no model should load")

    res = invoke([*command, "--backend", "openai", *(["hi"] if command == ["generate"] else [])],
                 obj=Services(load_backend=load_backend))
    assert res.exit_code == 2 and "--base-url: is required with --backend openai" in res.output
    res = invoke([*command, "--base-url", "http://h/v1", *(["hi"] if command == ["generate"] else [])],
                 obj=Services(load_backend=load_backend))
    assert res.exit_code == 2 and "only applies to --backend openai" in res.output


# ------------------------------------------------------------------ --tokenizer
def tokenizer_folder(tmp_path: Path) -> Path:
    """A folder that looks like a tokenizer's (the scripted loaders never read it)."""
    folder = tmp_path / "tok"
    folder.mkdir()
    (folder / "tokenizer_config.json").write_text("{}", encoding="utf-8")
    return folder


NO_LOAD = Services(load_backend=lambda *a, **kw: pytest.fail("no model should load"))
COMMANDS_WITH_A_BACKEND = [  # each command that takes --backend, with what else it needs
    ["generate", "hi"], ["chat"], ["calibrate", "--limit", "1"],
    ["bench", "run", "--dataset", "vicuna", "--out", "x.jsonl"],
    ["bench", "frontier", "--task", "banned-words", "--out", "f.jsonl"], ["serve"]]


@pytest.mark.parametrize("command", COMMANDS_WITH_A_BACKEND, ids=lambda c: " ".join(c[:2]))
def test_tokenizer_goes_with_the_model_to_load_backend(command, tmp_path, monkeypatch):
    """--tokenizer reaches the loader as tokenizer= (absolute), next to the spec; in
    ``rain serve`` through ServerSettings.tokenizer."""
    folder = tokenizer_folder(tmp_path)
    monkeypatch.chdir(tmp_path)
    seen = []

    def load_backend(model, device, **kw):
        seen.append((model, kw))
        raise ModelNotFoundError("stop here")  # the load is all this test looks at

    args = [*command, "--backend", "openai", "--base-url", "http://h:1/v1",
            "--model", "served", "--tokenizer", "tok"]
    if command == ["serve"]:  # stopped where the app would be made from its settings
        require_module("uvicorn")
        import rainlm.serve.app as app_module
        from rainlm.serve.settings import ServerSettings

        settings = []

        def create_app(made, **kw):
            settings.append(made)
            raise ModelNotFoundError("stop here")

        monkeypatch.setattr(app_module, "create_app", create_app)
        res = invoke(args, obj=Services(load_backend=load_backend))
        assert settings and isinstance(settings[0], ServerSettings), res.output
        assert settings[0].model == "openai:http://h:1/v1#served"
        assert settings[0].tokenizer == str(folder.resolve())
        return
    res = invoke(args, obj=Services(load_backend=load_backend), input="")
    assert seen == [("openai:http://h:1/v1#served", {"tokenizer": str(folder.resolve())})], \
        res.output


@pytest.mark.parametrize("command", COMMANDS_WITH_A_BACKEND, ids=lambda c: " ".join(c[:2]))
@pytest.mark.parametrize("backend", ["transformers", "llamacpp"])
def test_tokenizer_with_a_backend_that_reads_its_own_is_a_usage_error(command, backend,
                                                                      tmp_path):
    folder = tokenizer_folder(tmp_path)
    res = invoke([*command, "--backend", backend, "--tokenizer", str(folder)], obj=NO_LOAD,
                 input="")
    assert res.exit_code == 2, res.output
    assert "--tokenizer: only applies to --backend openai" in res.output
    assert "add --backend openai --base-url URL or drop --tokenizer" in res.output


def test_tokenizer_without_backend_is_refused_for_the_embedded_model(tmp_path):
    res = invoke(["generate", "--tokenizer", str(tokenizer_folder(tmp_path)), "hi"], obj=NO_LOAD)
    assert res.exit_code == 2 and "only applies to --backend openai" in res.output


@pytest.mark.parametrize("make, says", [
    (lambda tmp: tmp / "nowhere", "no folder at"),
    (lambda tmp: tmp, "holds no tokenizer files (tokenizer.json or tokenizer_config.json)"),
    (lambda tmp: tokenizer_folder(tmp) / "tokenizer_config.json", "is a file; pass the folder"),
], ids=["missing", "no-tokenizer-files", "a-file"])
@pytest.mark.parametrize("command", [["generate", "hi"], ["serve"]], ids=["generate", "serve"])
def test_a_bad_tokenizer_path_is_named(command, make, says, tmp_path):
    path = make(tmp_path)
    res = invoke([*command, "--backend", "openai", "--base-url", "http://h:1/v1",
                  "--tokenizer", str(path)], obj=NO_LOAD)
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert "--tokenizer" in text and says in text and repr(str(path)) in text


def test_tokenizer_is_recorded_with_the_answer(tmp_path):
    folder = tokenizer_folder(tmp_path)
    opts = RunOptions(backend="openai", base_url="http://h:1/v1", tokenizer=str(folder))
    assert opts.to_dict()["tokenizer"] == str(folder)
    assert opts.model_spec() == "openai:http://h:1/v1"
    assert RunOptions().to_dict()["tokenizer"] is None


@pytest.mark.parametrize("command", [["generate"], ["serve"], ["chat"], ["bench", "run"],
                                     ["calibrate"]])
def test_help_shows_tokenizer(command):
    res = invoke([*command, "--help"])
    text = " ".join(res.output.split())
    assert res.exit_code == 0 and "--tokenizer FOLDER" in text
    assert "tokenizer.json or tokenizer_config.json" in text
    if command in (["generate"], ["serve"]):  # an example in the epilog
        example = " ".join(res.output.replace("\\\n", " ").split())
        assert ("--backend openai --base-url http://127.0.0.1:8123/v1 --model smollm2 "
                "--tokenizer ~/models/SmolLM2-135M-Instruct") in example


def test_a_budget_limited_answer_is_marked_everywhere_it_is_shown():
    """An answer whose search budget ran out says so in text and JSON; others do not."""
    backend = make_backend()
    opts = run_options(max_new_tokens=12, embedder="none")
    cfg_small = opts.config().replace(max_total_searches=1)
    result = rainlm.generate(backend, PROMPT, cfg_small, embedder="none", max_new_tokens=12)
    assert result.finish_reason == "search_budget" and result.stats["budget_exhausted"]
    from rainlm.cli.generate import GenerateReport, budget_note, render_text

    note = budget_note(result)
    tail = result.stats["greedy_tail_tokens"]
    assert note is not None and "search budget ran out" in note
    assert (f"the last {tail} finished greedily" in note) if tail else ("cut off" in note)
    text = render_text(GenerateReport(Answer(result, 0.1), None, cfg_small))
    assert text.endswith(f"[{note}]")
    payload = Answer(result, 0.1).to_json()
    assert payload["budget_limited"] is True and payload["finish_reason"] == "search_budget"
    accepted = result.stats["accepted"]
    assert ("no whole answer the search found was accepted" in note) == (accepted is False)
    never = rainlm.generate(make_backend(), PROMPT, cfg_small, embedder="none", max_new_tokens=12,
                            evaluator=CallableEvaluator(lambda prompt, text: -1.0))
    assert never.stats["accepted"] is False and never.stats["answer_value"] == -1.0
    assert "no whole answer the search found was accepted" in budget_note(never)
    # an answer that ended by itself (EOS) but was never accepted says so too
    from tests.core.test_answer_checks import LENGTH, _passes_the_whole_harmful_answer, _veto_backend

    unmet = rainlm.generate(_veto_backend(), PROMPT,
                            rainlm.RainConfig.preset("harmless", max_total_searches=3),
                            evaluator=_passes_the_whole_harmful_answer, embedder="none",
                            max_new_tokens=LENGTH, seed=0)
    assert unmet.finish_reason == "eos" and unmet.stats["accepted"] is False
    assert budget_note(unmet) == ("note: no whole answer the search found was accepted (by the "
                                  "judge), so this one may break the rule or fall short of what "
                                  "the judge asks")
    fine = rainlm.generate(make_backend(), PROMPT, opts.config(), embedder="none",
                           max_new_tokens=12)
    assert budget_note(fine) is None and "note:" not in render_text(
        GenerateReport(Answer(fine, 0.1), None, opts.config()))


def test_generate_and_chat_answers_are_logged_like_the_servers(tmp_path, store_location):
    """On an SQLite file and on a PostgreSQL database (``--store URL``)."""
    from rainlm.trace.store import TraceStore

    db = store_location
    res = invoke(["generate", *FAST, "--json", "--db", str(db), PROMPT])
    assert res.exit_code == 0, res.output
    trace_id = json.loads(res.stdout)["rain"]["trace_id"]
    chat = invoke(["chat", *FAST, "--db", str(db)], input="Hello\nHow do I make a bomb?\n")
    assert chat.exit_code == 0, chat.output
    with TraceStore(db) as store:
        records = store.list(limit=10)
        rec = store.get(trace_id)
    assert len(records) == 3 and {r.endpoint for r in records} == {"rain generate", "rain chat"}
    assert rec.answer.strip() == REFUSAL and rec.request["prompt"] == PROMPT
    assert rec.trace["tree"]["nodes"] and rec.config["preset_name"] == "harmless"
    shown = invoke(["trace", "show", trace_id[:10], "--db", str(db)])
    assert shown.exit_code == 0 and REFUSAL in shown.output
    quiet = tmp_path / "none.sqlite3"
    off = invoke(["generate", *FAST, "--json", "--no-log", "--db", str(quiet), PROMPT])
    assert json.loads(off.stdout)["rain"]["trace_id"] is None and not quiet.exists()
