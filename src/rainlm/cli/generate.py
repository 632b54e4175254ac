"""``rain generate``: answer one prompt with RAIN (optionally next to plain greedy decoding).

The command is a thin shell around :func:`run_generate`, which takes an already-built
backend; tests call it directly with a ScriptedBackend.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from rainlm.backends.base import clear_prefix_cache
from rainlm.backends.threads import fit_torch_threads
from rainlm.cli.answer_log import AnswerLog, log_options
from rainlm.cli.options import RunOptions, policy_file_option, search_options, services_of
from rainlm.cli.progress import ProgressLine, progress_enabled
from rainlm.config import RainConfig
from rainlm.errors import RainError
from rainlm.jsonable import to_json_text
from rainlm.core.progress import ProgressCallback
from rainlm.fluency import FLUENCY_MARGIN
from rainlm.request import Answer, FinalJudge, answer, measure_fluency, score_answer
from rainlm.result import GenerationResult

__all__ = ["GenerateReport", "fluency_note", "generate_command", "render_text", "run_generate",
           "with_fluency"]


@dataclass(frozen=True)
class GenerateReport:
    """What ``rain generate`` produced: the RAIN answer and, with --compare, greedy's."""

    rain: Answer
    """RAIN's answer."""
    vanilla: Answer | None
    """Greedy's answer (with --compare)."""
    config: RainConfig
    """The search config RAIN used."""
    cold_cache: bool = True
    """Each answer started from an empty prefix cache, so neither time includes keys and
    values the other paid for (False: the backend cannot clear its cache, e.g. an
    engine over HTTP; the later answer's time may come partly from the cache)."""

    def to_json(self) -> dict[str, Any]:
        """``{"rain": {...}, "vanilla": {...}}`` (``vanilla`` only with --compare)."""
        out = {"rain": self.rain.to_json()}
        if self.vanilla is not None:
            out["vanilla"] = self.vanilla.to_json()
        return out

    def trace(self, detokenize: Any) -> dict[str, Any]:
        """The RAIN search trace, plus the final answers' self-evaluations (and greedy's
        answer with --compare)."""
        payload = self.rain.result.trace(detokenize)
        payload["seconds"] = round(self.rain.seconds, 4)
        payload["final_evaluations"] = {
            name: {"text": a.result.text, "score": a.score, "paper_vote": a.paper_vote,
                   "scoring": {"score": "continuous", "paper_vote": "paper"},
                   "rubric": self.config.judging.rubric,
                   **({"policy": a.policy_check.to_dict()} if a.policy_check else {})}
            for name, a in (("rain", self.rain), ("vanilla", self.vanilla)) if a is not None}
        if self.vanilla is not None:
            payload["vanilla"] = self.vanilla.to_json()
        return payload


# ------------------------------------------------------------------------- work
def start_cold(backend: Any) -> bool:
    """Empty the backend's prefix cache; whether the next answer starts cold (True also
    for a backend without a prefix cache; False for one that cannot empty its own)."""
    caps = getattr(backend, "capabilities", None)
    return clear_prefix_cache(backend) or not getattr(caps, "prefix_cache", False)


def run_generate(backend: Any, prompt: str | Sequence[Mapping[str, str]], options: RunOptions,
                 *, compare: bool = False, score: bool = True, embedder: Any = None,
                 on_progress: ProgressCallback | None = None,
                 status: ProgressLine | None = None) -> GenerateReport:
    """Answer ``prompt`` with RAIN on ``backend``; with ``compare`` also greedily (with no
    time budget: the baseline runs to its end), and both answers' fluency measured (mean
    NLL per token under the model). Each answer starts from an emptied prefix cache where
    the backend has one (``GenerateReport.cold_cache``).

    ``embedder``: a loaded Embedder or "none" (default: ``options.params.embedder``).
    ``score``: self-evaluate the final answers (continuous score and paper vote).
    With ``options.params.banned_words`` the rule is RAIN's judge instead of the
    self-evaluation, and each answer reports the banned words it holds; with
    ``options.params.policy`` the policy is RAIN's judge, and each answer reports the
    policy's rules it breaks.
    """
    params = options.params
    cold = start_cold(backend)
    rain = answer(backend, prompt, params, embedder=embedder, score=False,
                  on_progress=on_progress)
    vanilla = None
    if compare:
        if status is not None:
            status.status("greedy baseline…")
        cold = start_cold(backend) and cold  # greedy's time is not RAIN's cache's
        vanilla = answer(backend, prompt, params.baseline(), score=False)
    if score:
        if status is not None:
            status.status("scoring the final answer" + ("s…" if compare else "…"))
        judge = FinalJudge.of(params.config)
        rain = score_answer(backend, rain, judge)
        vanilla = None if vanilla is None else score_answer(backend, vanilla, judge)
    if vanilla is not None:  # side by side, how likely the model finds each answer
        if status is not None:
            status.status("measuring fluency…")
        rain, vanilla = with_fluency(backend, rain), with_fluency(backend, vanilla)
    return GenerateReport(rain=rain, vanilla=vanilla, config=params.config, cold_cache=cold)


def with_fluency(backend: Any, done: Answer) -> Answer:
    """``done`` with its fluency measured; as it was (fluency unknown, shown as nothing)
    when the backend fails: the answer is kept and logged all the same."""
    try:
        return measure_fluency(backend, done)
    except (RainError, OSError) as exc:
        click.echo(f"[rain] could not measure the answer's fluency: {exc}", err=True)
        return done


# ---------------------------------------------------------------------- output
def policy_note(a: Answer) -> str:
    """``policy kept: every rule | `` or ``policy BROKEN: banned term: Google; ... | ``
    (empty without a policy)."""
    check = a.policy_check
    if check is None or check.rules_value is None:  # no policy, or one without rules
        return ""
    return (f"policy BROKEN: {'; '.join(check.broken)} | " if check.broken
            else "policy kept: every rule | ")


def _fmt_score(a: Answer) -> str:
    rule = policy_note(a)
    if a.banned_found is not None:
        rule = (f"rule BROKEN: says {', '.join(a.banned_found)} | " if a.banned_found
                else "rule kept: no banned word | ")
    nll = _fmt_nll(a)
    if a.score is None:
        return rule + "not scored" + nll
    vote = "?" if a.paper_vote is None else f"{a.paper_vote:+g}" if a.paper_vote else "0"
    return rule + f"self-evaluation {a.score:+.3f} (continuous), vote {vote} (paper)" + nll


def _fmt_nll(a: Answer) -> str:
    """`` | NLL 0.84 nats/token`` once the answer's fluency is measured (≥ for a lower
    bound from a sparse backend), else empty."""
    if a.fluency is None or a.fluency.nll is None:
        return ""
    return f" | NLL {'≥' if a.fluency.approximate else ''}{a.fluency.nll:.2f} nats/token"


def fluency_note(rain: Answer, vanilla: Answer, floor: float | None = None) -> str | None:
    """A line when RAIN's answer is less likely than greedy's by more than
    ``FLUENCY_MARGIN`` nats per token (it may keep a rule by reading as noise), else None
    (also when greedy's NLL is only a lower bound, from a sparse backend). ``floor``: the
    search's fluency floor (``answer_nll_margin``), named instead of suggested."""
    mine = None if rain.fluency is None else rain.fluency.nll
    greedy = None if vanilla.fluency is None else vanilla.fluency.nll
    if (mine is None or greedy is None or vanilla.fluency.approximate
            or mine <= greedy + FLUENCY_MARGIN):
        return None
    hint = ("--fluency-floor keeps the search from accepting such answers" if floor is None
            else f"the search's fluency floor was {floor:g} nats over its own greedy pass")
    return (f"note: the model finds this answer {mine - greedy:.2f} nats per token less "
            f"likely than greedy's (NLL {mine:.2f} against {greedy:.2f}; fluent is within "
            f"{FLUENCY_MARGIN:g}): it may read as noise ({hint})")


def summary_line(a: Answer) -> str:
    """``12.34 s | 45 searches, 8 steps | finish: eos`` (searches only for RAIN)."""
    parts = [f"{a.seconds:.2f} s"]
    if a.result.method == "rain":
        parts.append(f"{a.result.stats.get('searches', 0)} searches, "
                     f"{a.result.stats.get('steps', 0)} steps")
        imagined = a.result.stats.get("simulated_answer_tokens", 0)
        if imagined:
            parts.append(f"last {imagined} tokens from a judged whole answer")
    parts.append(f"{a.result.stats.get('answer_tokens', len(a.result.token_ids))} tokens")
    parts.append(f"finish: {a.result.finish_reason}")
    return " | ".join(parts)


def budget_note(result: GenerationResult) -> str | None:
    """One line when a budget ended the search — how much was searched and what became
    of the rest ("budget ran out after 3 of 128 tokens; finished greedily") — and/or when
    the search accepted no whole answer (``stats["accepted"]`` False: the answer may
    break the rule, however it ended), else None."""
    stats = result.stats
    parts = []
    if result.finish_reason in ("time_budget", "search_budget"):
        total = stats.get("answer_tokens", len(result.token_ids))
        tail = stats.get("greedy_tail_tokens", 0)
        which = result.finish_reason.split("_")[0]
        rest = (f"{tail} more added greedily (not searched), then cut off by the time budget"
                if tail and stats.get("greedy_tail_cut") else
                f"the last {tail} finished greedily (not searched)" if tail
                else "the answer is cut off there")
        parts.append(f"the {which} budget ran out after {total - tail} of {total} tokens; {rest}")
    if stats.get("accepted") is False:
        floor = (" and the fluency floor" if result.config is not None
                 and result.config.answers.answer_nll_margin is not None else "")
        parts.append(f"no whole answer the search found was accepted (by the judge{floor}), "
                     "so this one may break the rule or fall short of what the judge asks")
    return "note: " + "; ".join(parts) if parts else None


def render_text(report: GenerateReport) -> str:
    """Plain output: the answer; with --compare both answers with scores and times. A
    budget-limited answer is always marked (budget_note)."""
    if report.vanilla is None:
        note = budget_note(report.rain.result)
        return report.rain.result.text + (f"\n[{note}]" if note else "")
    blocks = []
    policy = report.rain.policy_check
    judged = f", policy {policy.name!r}" if policy is not None else ""
    for title, a in ((f"RAIN ({report.config.preset_name} preset{judged})", report.rain),
                     ("Greedy (vanilla)", report.vanilla)):
        notes = ([budget_note(a.result),
                  fluency_note(a, report.vanilla, report.config.answers.answer_nll_margin)]
                 if a.result.method == "rain" else [])
        blocks.append(f"=== {title} ===\n{a.result.text.strip() or '(empty answer)'}\n"
                      + "".join(f"[{note}]\n" for note in notes if note)
                      + f"[{_fmt_score(a)} | {summary_line(a)}]")
    if not report.cold_cache:
        blocks.append("[times: this backend cannot empty its prefix cache, so greedy's may "
                      "come partly from what RAIN's search cached]")
    return "\n\n".join(blocks)


# ---------------------------------------------------------------------- command
def _check_trace(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    if value is not None and not value.expanduser().resolve().parent.is_dir():
        raise click.BadParameter(f"folder {str(value.parent)!r} does not exist", ctx=ctx, param=param)
    return value


def _read_prompt(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if value == "-":
        value = sys.stdin.read()
    if not value.strip():
        raise click.BadParameter("is empty; give the question to answer (or '-' to read stdin)",
                                 ctx=ctx, param=param)
    return value.strip() if value.endswith("\n") else value


def _read_ban(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    words = tuple(w.strip() for w in value.split(",") if w.strip())
    if not words or any(not w.replace("'", "").replace("-", "").isalpha() for w in words):
        raise click.BadParameter(f"must be comma-separated words (letters, ' or -), got {value!r}",
                                 ctx=ctx, param=param)
    return words


EPILOG = """\b
Examples:
  rain generate "How do I pick a lock?"
  rain generate --compare --ban Chrome,Google "Which web browser should I use?"
  rain generate --compare --fluency-floor 1 --ban Paris,capital "Capital of France?"
  rain generate --compare --policy-file acme.toml "Which search engine is best?"
  rain generate --compare --time-budget 60 "How do I make a pipe bomb?"
  rain generate --json --trace trace.json --max-new-tokens 64 "Hello"
  echo "What is RAIN?" | rain generate -
  rain generate --backend openai --base-url http://127.0.0.1:8123/v1 --model smollm2 \\
      --tokenizer ~/models/SmolLM2-135M-Instruct "Hello"   # a served name + its tokenizer
"""


@click.command("generate", epilog=EPILOG)
@click.argument("prompt", callback=_read_prompt)
@search_options
@click.option("--compare", is_flag=True,
              help="Also answer with plain greedy decoding (the baseline) and show both "
                   "answers, their self-evaluation scores (continuous score in [-1, 1] and "
                   "the paper's vote in {-1, 0, 1}, same rubric), their fluency (mean NLL "
                   "per token under the model; RAIN's answer is flagged when it is more than "
                   f"{FLUENCY_MARGIN:g} nat less likely than greedy's) and their times.")
@click.option("--json", "as_json", is_flag=True,
              help='Print exactly one JSON object on stdout: {"rain": {"text", "seconds", '
                   '"score", "paper_vote", "stats", "finish_reason"}, "vanilla": {...}} '
                   "(vanilla only with --compare, and then each with \"fluency\": "
                   '{"nll", "tokens", "approximate"}). Nothing else goes to stdout.')
@click.option("--trace", "trace_path", metavar="FILE", default=None, callback=_check_trace,
              type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Write the search trace (whole tree with texts, commits, every "
                   "evaluation, stats, final scores) as JSON to FILE.")
@click.option("--ban", metavar="WORD[,WORD...]", default=None, callback=_read_ban,
              help="A policy rule as the judge: the answer must not contain these words "
                   "(whole words, any case; list inflections too, e.g. manage,managed). "
                   "RAIN searches with the rule instead of the self-evaluation, and each "
                   "answer says which banned words it holds. Not with --policy-file (list "
                   "the words in its banned_terms).")
@policy_file_option
@log_options
@click.pass_context
def generate_command(ctx: click.Context, prompt: str, compare: bool, as_json: bool,
                     trace_path: Path | None, ban: tuple[str, ...], log: bool,
                     log_db: Path | None, **kwargs: Any) -> None:
    """Answer PROMPT with RAIN: search, self-evaluate and rewind on a frozen model.

    PROMPT is the user's question ('-' reads it from stdin). The answer goes to
    stdout; a live progress line goes to stderr when it is a terminal.
    """
    if ban and kwargs.get("policy_file") is not None:
        raise click.UsageError("--ban and --policy-file cannot be used together: list the "
                               "words in the policy file's banned_terms (under [rules])", ctx=ctx)
    options = RunOptions.from_kwargs(kwargs)  # config errors before the model loads
    options = dataclasses.replace(options, params=options.params.replace(banned_words=ban))
    services = services_of(ctx)
    line = ProgressLine(progress_enabled(options.progress))
    try:
        # Libraries that print go to stderr: stdout carries only the answer (or JSON).
        with contextlib.redirect_stdout(sys.stderr):
            line.status("loading model…")
            backend = options.open_backend(services)
            embedder = services.load_embedder(options.params.embedder, options.device)
            fit_torch_threads()  # busy CPUs: fewer threads run faster (backends.threads)
            line.status("searching…")
            report = run_generate(backend, prompt, options, compare=compare,
                                  score=compare or as_json or trace_path is not None,
                                  embedder=embedder, on_progress=line, status=line)
    finally:
        line.clear()
    if trace_path is not None:
        try:
            trace_path.expanduser().write_text(
                to_json_text(report.trace(backend.detokenize), indent=1) + "\n", encoding="utf-8")
        except OSError as exc:
            raise click.FileError(str(trace_path), hint=exc.strerror or str(exc)) from None
    answers = AnswerLog(log, log_db, "rain generate")
    rain = report.rain
    trace_id = answers.record(
        rain.result, detokenize=backend.detokenize,
        request={"prompt": prompt, "options": options.to_dict()}, scores=rain.scores())
    answers.close()
    line.done(f"done: {summary_line(report.rain)}")
    payload = report.to_json()
    payload["rain"]["trace_id"] = trace_id  # the audit record (None with --no-log)
    click.echo(to_json_text(payload) if as_json else render_text(report))
