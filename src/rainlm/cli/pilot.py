"""``rain pilot``: a go/no-go report on your prompts, your policy and your latency limit."""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import click

from rainlm.cli.options import backend_spec, bench_model_options, services_of

__all__ = ["pilot_command"]

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")

EPILOG = """\b
Examples:
  rain pilot --prompts traffic.jsonl --policy policy.toml --p95 10
  rain pilot --prompts vicuna --policy examples/policy_en.toml --p95 10 --sample 30 --out pilot-en/
  rain pilot --prompts examples/prompts_ja.jsonl --policy examples/policy_ja.toml --p95 10 --out pilot-ja/
  rain pilot --prompts traffic.csv --policy policy.toml --p95 5 --pairs labelled.jsonl \\
      --backend openai --base-url http://127.0.0.1:8000/v1 --tokenizer ./model-folder

\b
Prompts: a .jsonl (one {"prompt": ..., "id": ...} a line), .csv or .tsv file with a
"prompt" column (--prompt-field to rename), or a built-in set (vicuna, hh, advbench,
xstest, truthfulqa). The policy file is described in docs/policy.md. Pairs (optional):
JSONL lines {"prompt", "chosen", "rejected"}: a better and a worse answer under your
policy, to measure how well the model judges it. Interrupted? Run the same command:
it resumes from OUT/pilot.jsonl.
"""


def _check_local(base_url: str | None) -> None:
    """A pilot never sends prompts off the machine: an engine URL must be loopback."""
    if base_url is not None and (urlsplit(base_url).hostname or "") not in LOCAL_HOSTS:
        raise click.BadParameter(f"must point at this machine ({', '.join(LOCAL_HOSTS)}): a "
                                 f"pilot never sends your prompts elsewhere; got {base_url!r}",
                                 param_hint="--base-url")


def _policy(ctx: click.Context, param: click.Parameter, value: Path) -> object:
    from rainlm.errors import ConfigError
    from rainlm.policy import load_policy

    try:
        return load_policy(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


@click.command("pilot", epilog=EPILOG)
@click.option("--prompts", "prompts_source", required=True, metavar="FILE|SET",
              help="Your prompts: a JSONL, CSV or TSV file (a sample of real traffic), or a "
                   "built-in set's name.")
@click.option("--policy", "--policy-file", "policy", required=True, metavar="FILE",
              type=click.Path(exists=True, dir_okay=False, path_type=Path), callback=_policy,
              help="Your policy (TOML: rules, the model judge's rubric, the fail-safe).")
@click.option("--p95", "p95_s", required=True, type=click.FloatRange(0, 3600, min_open=True),
              metavar="SECONDS",
              help="The latency you accept: 95% of requests must answer within it. The pilot "
                   "finds the search budget that meets it.")
@click.option("--sample", type=click.IntRange(min=1), default=30, show_default=True, metavar="N",
              help="Prompts answered (a seeded draw from the file).")
@click.option("--out", "out_dir", default=Path("pilot-report"), show_default=True, metavar="DIR",
              type=click.Path(file_okay=False, path_type=Path),
              help="Folder for report.html, report.json and pilot.jsonl (the records a rerun "
                   "resumes from).")
@click.option("--lang", type=click.Choice(["en", "ja"]), default=None,
              help="Language of the report. Default: the policy's.")
@click.option("--pairs", "pairs_path", default=None, metavar="FILE",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Labelled pairs (JSONL: prompt, chosen, rejected) to measure the model's own "
                   "judge on.")
@click.option("--prompt-field", default="prompt", show_default=True, metavar="NAME",
              help="The prompts file's column or field that holds the prompt.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=48, show_default=True,
              metavar="TOKENS", help="Answer length limit of every method.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, metavar="INT",
              help="Draw of the sample and every answer's seed.")
@click.option("--fluency-margin", type=click.FloatRange(0, 20), default=1.0, show_default=True,
              metavar="NATS",
              help="An answer is fluent when the model's NLL per token is at most greedy's "
                   "median on the sample plus this margin. Fix it before you look at results.")
@bench_model_options
@click.option("--progress/--no-progress", default=None,
              help="Progress bar with an ETA (default: only on a terminal; phases are always "
                   "printed).")
@click.pass_context
def pilot_command(ctx: click.Context, prompts_source: str, policy: object, p95_s: float,
                  sample: int, out_dir: Path, lang: str | None, pairs_path: Path | None,
                  prompt_field: str, max_new_tokens: int, seed: int, fluency_margin: float,
                  model: str | None,
                  backend: str, base_url: str | None, tokenizer: str | None, device: str,
                  embedder: str, progress: bool | None) -> None:
    """A pilot of RAIN on your prompts and policy, with a go/no-go recommendation.

    Answers a sample of your prompts with plain decoding (greedy), best-of-N and RAIN,
    the policy as the judge, at the search budget that keeps the 95th-percentile latency
    under --p95; measures violations, fluency, latency, cost and the fail-safe's review
    load (every number with its 95% interval); checks whether the model can judge the
    policy itself; and writes one self-contained page, OUT/report.html, with the
    recommendation: go, go with distillation, or no-go, and why. Nothing leaves this
    machine.
    """
    from rainlm.errors import ConfigError
    from rainlm.pilot.plan import PilotPlan
    from rainlm.pilot.prompts import choose_prompts, load_prompts
    from rainlm.pilot.reliability import load_pairs
    from rainlm.pilot.run import PilotRun

    _check_local(base_url)
    try:
        spec = backend_spec(backend, model, base_url, tokenizer)
        plan = PilotPlan(p95_s=p95_s, sample=sample, seed=seed, max_new_tokens=max_new_tokens,
                         fluency_margin=fluency_margin, embedder=embedder)
        prompts = choose_prompts(load_prompts(prompts_source, prompt_field), plan)
        pairs = load_pairs(pairs_path) if pairs_path is not None else ()
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    services = services_of(ctx)
    click.echo(f"[pilot] {len(prompts.sample)} prompts from {prompts_source}, policy "
               f"{policy.name!r} ({policy.source}), p95 limit {p95_s:g} s; records in "
               f"{out_dir / 'pilot.jsonl'}", err=True)
    with contextlib.redirect_stdout(sys.stderr):
        the_backend = services.open_backend(spec, device, tokenizer=tokenizer)
        encoder = services.load_embedder(embedder, device)
    run = PilotRun(the_backend, policy, prompts, plan, out_dir, prompts_source,
                   lang=lang or policy.lang, pairs=pairs,
                   encoder=None if isinstance(encoder, str) else encoder)
    report = _run_with_progress(run, progress)
    _echo_verdict(report, out_dir)


def _run_with_progress(run: object, progress: bool | None) -> dict:
    from rainlm.cli.progress import progress_enabled
    from rainlm.errors import ConfigError
    from rainlm.pilot.run import run_pilot, units_done
    from rainlm.progress_bar import ProgressBar, format_duration

    bar = ProgressBar(max(run.units() - units_done(run.out), 1),
                      enabled=progress_enabled(progress), label="pilot")
    start = time.monotonic()
    names = {"budget": "finding the time budget that meets the p95 limit",
             "answers": "answering the sample: greedy, best-of-N, RAIN",
             "judge": "asking the model's own judge about the answers"}

    def phase(name: str) -> None:
        if bar.enabled:
            bar.announce(names[name])
        else:
            elapsed = format_duration(time.monotonic() - start)
            click.echo(f"[pilot] {names[name]} ({elapsed} elapsed)", err=True)

    def unit(note: str) -> None:
        if bar.done >= bar.total:
            bar.total += 1  # another budget tried: more tuning answers than planned
        bar.update(note)
        if not bar.enabled and bar.done % 10 == 0:
            click.echo(bar.line(note), err=True)

    bar.start_ticking()
    try:
        return run_pilot(run, on_unit=unit, on_phase=phase)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    finally:
        bar.close()


def _echo_verdict(report: dict, out_dir: Path) -> None:
    advice = report["recommendation"]
    click.echo(f"\n{advice['headline']}")
    for reason in advice["reasons"]:
        click.echo(f"  - {reason}")
    for step in advice["next_steps"]:
        click.echo(f"  → {step}")
    click.echo(f"\nReport: {out_dir / 'report.html'} (data: {out_dir / 'report.json'})")
