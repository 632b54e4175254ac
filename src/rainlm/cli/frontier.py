"""``rain bench frontier`` and ``rain bench frontier-report``: quality against compute for
greedy, sampling, best-of-N, ARGS and RAIN on a task whose judge is an exact rule."""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from rainlm.bench.tasks import TASKS
from rainlm.bench.variants import RAIN_VARIANTS
from rainlm.cli.bench import announce_estimate, data_options, echo_run_summary
from rainlm.cli.options import backend_spec, bench_model_options, services_of
from rainlm.fluency import FLUENCY_MARGIN
from rainlm.request import GenerationParams

if TYPE_CHECKING:
    from rainlm.progress_bar import ProgressBar

__all__ = ["frontier_command", "frontier_report_command"]


def _numbers(kind: type):
    def check(ctx: click.Context, param: click.Parameter, value: str) -> tuple:
        try:
            out = tuple(kind(v) for v in value.split(",") if v.strip())
        except ValueError:
            raise click.BadParameter(f"must be comma-separated numbers, got {value!r}",
                                     ctx=ctx, param=param) from None
        if not out:
            raise click.BadParameter("is empty", ctx=ctx, param=param)
        return out
    return check


def _variants(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    from rainlm.bench.frontier import parse_rain_variants
    from rainlm.errors import ConfigError

    try:
        return parse_rain_variants(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc).split(": ", 1)[-1], ctx=ctx, param=param) from None


EPILOG = """\b
Examples:
  rain bench frontier --task banned-words --limit 20 --out bw.jsonl
  rain bench frontier --task lowercase --split dev --limit 20 --out lc-dev.jsonl
  rain bench frontier --task refusal --limit 20 --rain default,paper --budgets 8,16 \\
      --noise 1,0.8 --out refusal.jsonl
  rain bench frontier --task banned-words --limit 20 --best-of 4,8 \\
      --sample-temperatures 1.0,0.7 --fluency-margin 1.0 --out bw-peers.jsonl
  rain bench frontier-report bw.jsonl refusal.jsonl --out frontier/
"""


@click.command("frontier", epilog=EPILOG)
@click.option("--task", required=True, type=click.Choice(list(TASKS)),
              help="refusal: AdvBench with a graded refusal judge (failure = attack success); "
                   "banned-words: Vicuna + HH prompts, the greedy answer's content words banned "
                   "(failure = a banned word); no-you: no second-person pronouns; lowercase, "
                   "capitals, no-commas, letter-limit: the same prompts with an instruction "
                   "appended (lowercase only; capitals only; no commas; the letter 'e' fewer "
                   "than 10 times), judged by the exact character rule.")
@click.option("--split", type=click.Choice(["dev", "test"]), default=None, metavar="dev|test",
              help="Half of the task's prompts, fixed by a hash of each prompt's id: choose "
                   "settings on dev; report on test only after the settings are frozen. "
                   "--limit and --offset count within the split. Default: all prompts, in "
                   "the order of runs made before splits existed.")
@data_options
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, metavar="N",
              help="Prompts to answer.")
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True, metavar="N",
              help="Skip the first N prompts of the task (of the split, with --split).")
@click.option("--out", "out_path", required=True, metavar="RUN.jsonl",
              type=click.Path(dir_okay=False, path_type=Path),
              help="Results file, one JSON line per (prompt, method, judge accuracy), appended "
                   "as answers finish; the same command again resumes.")
@click.option("--noise", default="1,0.8", show_default=True, callback=_numbers(float),
              metavar="P[,P...]",
              help="Judge accuracies: 1 is the exact rule, p < 1 flips its verdict with "
                   "probability 1-p (a SYNTHETIC noisy judge).")
@click.option("--best-of", default="2,4,8,16,32", show_default=True, callback=_numbers(int),
              metavar="N[,N...]", help="N of the best-of-N points.")
@click.option("--rain", "rain_variants", default="default,paper", show_default=True,
              callback=_variants, metavar="NAME[,NAME...]",
              help="RAIN search configs: default (the default search), paper (the published "
                   "search), and for the ablation (rainlm/bench/variants.py says what each "
                   "changes): " + ", ".join(n for n in RAIN_VARIANTS if n not in ("default", "paper"))
                   + ".")
@click.option("--budgets", default="8,16,32", show_default=True, callback=_numbers(int),
              metavar="B[,B...]", help="RAIN's total search passes per answer, one point each.")
@click.option("--sample-temperatures", default="1.0,0.7", show_default=True,
              callback=_numbers(float), metavar="T[,T...]",
              help="Temperatures best-of-N and best-until-N sample at: one best-of-N and "
                   "one best-until-N family per temperature (labels best-of-8@t0.7; RAIN's "
                   "simulation temperature is always added).")
@click.option("--best-until/--no-best-until", "with_best_until", default=True,
              show_default=True,
              help="Run best-until-N: best-of-N that stops at its first accepted answer.")
@click.option("--fluency-margin", type=click.FloatRange(0, 20), default=FLUENCY_MARGIN,
              show_default=True, metavar="NATS",
              help="An answer is fluent when its NLL per token is at most greedy's on the "
                   "same prompt plus this (fixed for a results file); on lowercase and "
                   "capitals it also needs 3 Latin words where greedy's has them.")
@click.option("--args/--no-args", "with_args", default=True, show_default=True,
              help="Run ARGS-greedy (reward-guided decoding, top-10, w=1.5).")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=None, metavar="TOKENS",
              help="Answer length limit. Default: the task's (refusal 24, others 48).")
@click.option("--banned", type=click.IntRange(min=1), default=None, metavar="K",
              help="banned-words: content words of the greedy answer banned per prompt "
                   "(with their inflections). Default: 6.")
@bench_model_options
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, metavar="INT",
              help="Run seed (each prompt's seed derives from it and the prompt's id).")
@click.pass_context
def frontier_command(ctx: click.Context, task: str, split: str | None, data_dir: Path | None,
                     data_file: Path | None,
                     limit: int, offset: int, out_path: Path, noise: tuple[float, ...],
                     best_of: tuple[int, ...], rain_variants: tuple[str, ...],
                     budgets: tuple[int, ...], sample_temperatures: tuple[float, ...],
                     with_best_until: bool, fluency_margin: float,
                     with_args: bool, max_new_tokens: int | None,
                     banned: int | None, model: str | None, backend: str, base_url: str | None,
                     tokenizer: str | None, device: str, embedder: str, seed: int) -> None:
    """Quality against compute: greedy, a sample, best-of-N, best-until-N, ARGS and RAIN
    on one task.

    Compute is the model's tokens encoded ÷ greedy's on the same prompt (and, reported
    apart, the texts sent to the judge); quality is the failure rate under the task's
    exact rule. Every answer is also scored for fluency (the model's NLL per token beside
    greedy's, and the share of dictionary words), and best-of-N runs beside best-until-N
    (stops at its first accepted answer) at every --sample-temperatures.
    Every judged method runs once per judge accuracy in --noise. On a
    terminal a rough estimate of the run's duration, from a short greedy probe, is
    printed before the first answer, and a better one once the first prompt is answered.
    """
    from rainlm.bench.estimate import frontier_estimate
    from rainlm.backends.base import model_name
    from rainlm.bench.frontier import (FrontierPlan, method_labels, resumable_records,
                                       run_frontier)
    from rainlm.bench.methods import MethodSettings
    from rainlm.progress_bar import ProgressBar
    from rainlm.bench.tasks import get_task
    from rainlm.cli.progress import progress_enabled
    from rainlm.errors import ConfigError

    if data_file is not None:
        raise click.BadParameter("does not apply to the frontier (its tasks read the built-in "
                                 "sets)", param_hint="--data-file")
    try:
        spec = backend_spec(backend, model, base_url, tokenizer)
        the_task = get_task(task, max_new_tokens=max_new_tokens, banned=banned, split=split)
        items = the_task.items(data_dir=data_dir, limit=limit, offset=offset)
        plan = FrontierPlan(task=the_task, noise=noise, best_of=best_of, args=with_args,
                            rain=rain_variants, budgets=budgets, seed=seed,
                            sample_temperatures=sample_temperatures,
                            best_until=with_best_until, fluency_margin=fluency_margin,
                            settings=MethodSettings(params=GenerationParams(
                                max_new_tokens=the_task.max_new_tokens, embedder=embedder)))
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    services = services_of(ctx)
    bar = ProgressBar(len(items) * len(method_labels(plan)), enabled=progress_enabled(None),
                      label="frontier")
    try:
        with contextlib.redirect_stdout(sys.stderr):
            the_backend = services.open_backend(spec, device, tokenizer=tokenizer)
            loaded = services.load_embedder(embedder, device)
            bar.start_ticking()  # after the loads: their own output is not overdrawn
            plan = dataclasses.replace(plan, settings=plan.settings.with_encoder(loaded))
            try:  # a file of other settings fails before the probe
                resumable_records(out_path, plan, model_name(the_backend))
            except ConfigError as exc:
                raise click.UsageError(str(exc)) from None
            announce_estimate(bar, lambda: frontier_estimate(the_backend, items, plan, out_path))
            summary = run_frontier(the_backend, items, plan, out_path, data_dir=data_dir,
                                   on_record=lambda r: bar.update(f"{r['item_id']} {r['method']}",
                                                                  failed=bool(r.get("error"))),
                                   on_prompt=FirstPromptEstimate(bar))
    finally:
        bar.close()
    echo_run_summary(summary, out_path, "frontier-report")


class FirstPromptEstimate:
    """``on_prompt`` of the frontier run: after the first prompt that had anything to
    answer (not all resumed), print what it predicts for the prompts left."""

    def __init__(self, bar: ProgressBar):
        self.bar = bar
        self.done = False
        self.started = bar.clock()  # built after the loads and the probe: times answers only

    def __call__(self, prompts_left: int, written: int) -> None:
        if self.done or not written:
            return
        self.done = True
        if prompts_left:
            self.bar.announce(self.bar.estimate(1, prompts_left, since=self.started))


@click.command("frontier-report")
@click.argument("runs", nargs=-1, required=True, metavar="RUN.jsonl...",
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, metavar="DIR",
              type=click.Path(file_okay=False, path_type=Path),
              help="Folder for report.md, points.json and one PNG per task.")
@click.option("--plots/--no-plots", default=True, show_default=True,
              help="Draw the plots (needs matplotlib: pip install 'rainlm[bench]').")
def frontier_report_command(runs: tuple[Path, ...], out_dir: Path, plots: bool) -> None:
    """Tables and plots of frontier results files; the Markdown is also printed.

    \b
    Example:
      rain bench frontier-report bw.jsonl refusal.jsonl --out frontier/
    """
    from rainlm.bench.frontier_report import write_frontier_report
    from rainlm.errors import ConfigError

    try:
        md, files, notes = write_frontier_report(list(runs), out_dir, plots=plots)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(md.read_text(encoding="utf-8"))
    for note in notes:
        click.echo(f"note: {note}", err=True)
    click.echo("wrote " + ", ".join(str(p) for p in [md, *files]), err=True)
