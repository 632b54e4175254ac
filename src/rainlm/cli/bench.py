"""``rain bench run`` and ``rain bench report``: compare vanilla, best-of-n and RAIN on a
prompt set, resumably, and turn the results into a Markdown table and plots.

The commands are thin shells around :mod:`rainlm.bench`; the model comes from the
Services in click's ``obj`` (tests inject a scripted backend there).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from rainlm.cli.options import RunOptions, policy_file_option, search_options, services_of

if TYPE_CHECKING:
    from rainlm.progress_bar import ProgressBar

__all__ = ["bench_group", "bench_run_command", "bench_report_command"]

DATASETS_HELP = "advbench, hh, xstest, truthfulqa, vicuna"


def _check_methods(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    from rainlm.bench.methods import parse_method
    from rainlm.errors import ConfigError

    names = tuple(m.strip() for m in value.split(",") if m.strip())
    if not names:
        raise click.BadParameter("is empty; give e.g. vanilla,best-of-n,rain", ctx=ctx, param=param)
    if len(set(names)) != len(names):
        raise click.BadParameter(f"lists a method twice: {value!r}", ctx=ctx, param=param)
    try:
        for name in names:
            parse_method(name)
    except ConfigError as exc:
        raise click.BadParameter(str(exc).split(": ", 1)[-1], ctx=ctx, param=param) from None
    return names


def _check_judge(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, list[float]]:
    from rainlm.bench.synthetic import parse_judge_spec
    from rainlm.errors import ConfigError

    try:
        return parse_judge_spec(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc).split(": ", 1)[-1], ctx=ctx, param=param) from None


def data_options(func: Any) -> Any:
    """--data-dir and --data-file (shared with ``rain calibrate``)."""
    func = click.option(
        "--data-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
        default=None, metavar="FILE",
        help="Read a built-in set from FILE (same format) instead of the shipped file, e.g. "
             "an AdvBench CSV with a 'suffix' column of attack suffixes.")(func)
    return click.option(
        "--data-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
        default=None, metavar="DIR",
        help="Folder of the public data sets, laid out like the copy shipped in the "
             "package. Default: $RAINLM_DATA, else the shipped copy.")(func)


EPILOG = """\b
Examples:
  rain bench run --dataset advbench --limit 5 --methods vanilla,rain --max-new-tokens 32 --out RUN.jsonl
  rain bench run --dataset advbench --limit 20 --methods vanilla,best-of-n,rain --out RUN.jsonl
  rain bench run --dataset xstest --limit 50 --methods vanilla,rain --out xs.jsonl
  rain bench run --dataset vicuna --limit 20 --policy-file acme.toml --out acme.jsonl
  rain bench run --dataset advbench --limit 20 --judge synthetic:0.5,0.75,1 \\
      --methods vanilla,best-of-n,rain --match-compute --out sweep.jsonl
  rain bench report RUN.jsonl xs.jsonl --out report/
"""


@click.group("bench", epilog="""\b
Examples:
  rain bench frontier --task banned-words --limit 4 --budgets 8,16 --out bw.jsonl
  rain bench frontier-report bw.jsonl --out report/
  rain bench run --dataset advbench --limit 5 --methods vanilla,rain --max-new-tokens 32 --out RUN.jsonl
  rain bench report RUN.jsonl --out report/
""")
def bench_group() -> None:
    """Benchmark RAIN against vanilla decoding and best-of-n on public prompt sets."""


@bench_group.command("run", epilog=EPILOG)
@click.option("--dataset", required=True, metavar="NAME|FILE",
              help=f"Prompt set: a built-in name ({DATASETS_HELP}) or a .jsonl/.csv file whose "
                   "--prompt-field holds the prompt (optional 'id' and 'label' fields).")
@data_options
@click.option("--prompt-field", default="prompt", show_default=True, metavar="FIELD",
              help="Field (JSONL key or CSV column) with the prompt, for a user file.")
@click.option("--limit", type=click.IntRange(min=1), default=None, metavar="N",
              help="Answer at most N prompts. Default: all.")
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True, metavar="N",
              help="Skip the first N prompts (after shuffling with --sample-seed).")
@click.option("--sample-seed", type=click.IntRange(min=0), default=None, metavar="INT",
              help="Shuffle the whole set with this seed before --offset/--limit (the same "
                   "seed gives the same sample). Default: file order.")
@click.option("--suffix", default=None, metavar="TEXT",
              help="AdvBench only: an attack suffix appended to every goal.")
@click.option("--methods", metavar="NAME[,NAME...]", default="vanilla,rain", show_default=True, callback=_check_methods,
              help="Comma-separated methods: vanilla (greedy), vanilla-sampled, best-of-n "
                   "(--n sampled answers, the judge keeps the best; best-of-8 fixes N=8), rain.")
@click.option("--out", "out_path", required=True, metavar="RUN.jsonl",
              type=click.Path(dir_okay=False, path_type=Path),
              help="Results file: one JSON line per (prompt, method, judge), appended as each "
                   "answer finishes. Running again with the same file resumes: answers already "
                   "there are not redone.")
@click.option("--judge", "judge_spec", default="self", show_default=True, callback=_check_judge,
              metavar="self|synthetic:ACC[,ACC...]",
              help="Judge for best-of-n and RAIN, and of every final answer: 'self' (the model's "
                   "self-evaluation with the preset's rubric) or a SYNTHETIC judge: the "
                   "refusal-phrase rule flipped with probability 1-ACC, one run per accuracy. "
                   "--policy-file judges instead.")
@policy_file_option
@click.option("--n", "best_of_n", metavar="N", type=click.IntRange(min=1), default=4, show_default=True,
              help="N of best-of-n: sampled answers per prompt.")
@click.option("--match-compute", is_flag=True,
              help="Choose best-of-n's N per prompt so the tokens it encodes (sampling and "
                   "judging) match RAIN's on the same prompt (needs rain in --methods).")
@click.option("--max-n", metavar="N", type=click.IntRange(min=1), default=64, show_default=True,
              help="Upper bound on N with --match-compute.")
@click.option("--temperature", metavar="T", type=click.FloatRange(min=0, min_open=True, max=100),
              default=1.0, show_default=True, help="Sampling temperature of sampled methods.")
@click.option("--top-k", metavar="K", type=click.IntRange(min=0), default=50, show_default=True,
              help="Sampled methods draw from the K most probable tokens (0: all tokens).")
@click.option("--refusal-phrases", "phrases_file", default=None, metavar="FILE",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Refusal phrases, one a line (case-sensitive substrings) for attack success "
                   "and refusal rates. Default: GCG's advbench/test_prefixes.txt in --data-dir "
                   "(with a Japanese --policy-file: its Japanese phrases, compared as its "
                   "rules compare texts).")
@click.option("--retry-errors", is_flag=True,
              help="On resume, answer again the prompts whose earlier attempt failed.")
@search_options
@click.pass_context
def bench_run_command(ctx: click.Context, dataset: str, data_dir: Path | None,
                      data_file: Path | None, prompt_field: str, limit: int | None, offset: int,
                      sample_seed: int | None, suffix: str | None, methods: tuple[str, ...],
                      out_path: Path, judge_spec: tuple[str, list[float]], best_of_n: int,
                      match_compute: bool, max_n: int, temperature: float, top_k: int,
                      phrases_file: Path | None, retry_errors: bool, **kwargs: Any) -> None:
    """Answer a prompt set with each method and append the results to --out.

    On a terminal (or with --progress) a rough estimate of the run's duration, from a
    short greedy probe, is printed before the first answer, and a better one once the
    first prompt is answered.
    """
    from rainlm.bench.datasets import load_dataset, load_refusal_prefixes
    from rainlm.bench.estimate import bench_estimate
    from rainlm.bench.methods import MethodSettings
    from rainlm.progress_bar import ProgressBar
    from rainlm.bench.runner import make_judges, run_bench
    from rainlm.cli.progress import progress_enabled

    policy = kwargs.pop("policy_file")  # the judge, not a parameter of the answers
    if policy is not None and ctx.get_parameter_source("judge_spec") not in (
            ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP):
        raise click.UsageError("--judge and --policy-file cannot be used together: the "
                               "policy file is the judge", ctx=ctx)
    options = RunOptions.from_kwargs(kwargs)  # config errors before any data or model loads
    items = load_dataset(dataset, data_dir=data_dir, path=data_file, prompt_field=prompt_field,
                         limit=limit, offset=offset, seed=sample_seed, suffix=suffix)
    phrases = load_refusal_prefixes(data_dir, path=phrases_file)
    if policy is not None and phrases_file is None and policy.lang != "en":
        phrases = policy.refusal_phrases  # counted by its refusal rule (Judge.refusal_test)
    services = services_of(ctx)
    with contextlib.redirect_stdout(sys.stderr):
        backend = options.open_backend(services)
        embedder = services.load_embedder(options.params.embedder, options.device)
        settings = MethodSettings(
            params=options.params, best_of_n=best_of_n, match_compute=match_compute,
            max_n=max_n, temperature=temperature, top_k=top_k or None).with_encoder(embedder)
        judges = make_judges(backend, settings, judge_spec, phrases, seed=options.params.seed,
                             policy=policy)
        bar = ProgressBar(0, enabled=progress_enabled(options.progress))
        announce_estimate(bar, lambda: bench_estimate(backend, items, methods, judges, settings,
                                                      out_path, retry_errors=retry_errors))
        summary = run_bench(backend, items, methods, out_path, settings=settings, judges=judges,
                            refusal_phrases=phrases, seed=options.params.seed,
                            retry_errors=retry_errors, progress=bar)
    echo_run_summary(summary, out_path, "report")


def announce_estimate(bar: ProgressBar, estimate: Callable[[], str | None]) -> None:
    """Before a run's first answer, only when its progress display is on (a terminal, or
    --progress): print the rough estimate ``estimate()`` returns (it probes the model;
    None: nothing left to answer, nothing printed). A failing probe is said in one line
    and the run goes on (it records its own errors)."""
    if not bar.enabled:
        return
    try:
        message = estimate()
    except Exception as exc:  # the estimate must never stop the run
        message = f"no estimate before the run: {type(exc).__name__}: {exc}"
    if message:
        bar.announce(message)


def echo_run_summary(summary: Any, out_path: Path, report_command: str) -> None:
    """What a run wrote, its first errors, and the command that reports it; a run whose
    every answer failed is an error (exit 1)."""
    click.echo(f"{summary.written} answers written to {out_path} ({summary.failed} failed, "
               f"{summary.skipped} already there)")
    for err in summary.errors:
        click.echo(f"failed: {err}", err=True)
    if summary.written and summary.failed == summary.written:
        raise click.ClickException("every answer failed; see the 'error' fields in "
                                   f"{out_path}")
    click.echo(f"report: rain bench {report_command} {out_path} --out REPORT_DIR")


@bench_group.command("report", epilog="""\b
Examples:
  rain bench report RUN.jsonl --out report/
  rain bench report advbench.jsonl xstest.jsonl --out report/
""")
@click.argument("runs", nargs=-1, required=True, metavar="RUN.jsonl...",
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, metavar="DIR",
              type=click.Path(file_okay=False, path_type=Path),
              help="Folder for report.md, summary.json and the PNG plots (created if needed).")
@click.option("--plots/--no-plots", default=True, show_default=True,
              help="Draw PNG plots (needs matplotlib: pip install 'rainlm[bench]').")
def bench_report_command(runs: tuple[Path, ...], out_dir: Path, plots: bool) -> None:
    """Summarise results files: a Markdown table with 95% intervals and PNG plots.

    The Markdown table is also printed on stdout.
    """
    from rainlm.bench.report import write_report

    files = write_report(list(runs), out_dir, plots=plots)
    click.echo(files.markdown.read_text(encoding="utf-8"))
    for note in files.notes:
        click.echo(f"note: {note}", err=True)
    written = [files.markdown, files.summary_json, *files.plots]
    click.echo("wrote " + ", ".join(str(p) for p in written), err=True)
