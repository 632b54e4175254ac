"""``rain distill export``: turn RAIN's answers and reviewers' decisions into training data
(TRL's DPO and SFT formats, and Hugging Face ``datasets`` folders).

A thin shell around :mod:`rainlm.distill`: the pairing rules and the filters are
documented in :mod:`rainlm.distill.export`, the formats in :mod:`rainlm.distill.formats`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

__all__ = ["distill_group", "distill_export_command"]

HINTS = {
    "judge": "change or drop --judge",
    "no greedy answer": "answer the same prompts greedily too (rain bench run --methods "
                        "vanilla,rain; rain bench frontier always does)",
    "budget-limited": "--include-budget-limited keeps answers a search budget ended",
    "below min margin": "lower --min-margin",
    "not preferred": "the evaluator did not prefer RAIN's answers to greedy's",
}


def _check_formats(ctx: click.Context, param: click.Parameter,
                   value: str | None) -> tuple[str, ...] | None:
    from rainlm.distill.formats import parse_formats
    from rainlm.errors import ConfigError

    if value is None:
        return None
    try:
        return parse_formats(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc).split(": ", 1)[-1], ctx=ctx, param=param) from None


@click.group("distill", epilog="""\b
Examples:
  rain distill export benchmarks/results/frontier/banned-words.jsonl --out data/
  rain distill export RUN.jsonl ~/.local/share/rainlm/audit.sqlite3 --out data/
""")
def distill_group() -> None:
    """Turn RAIN's answers and reviewers' decisions into training data for the model."""


EXPORT_EPILOG = """\b
Examples:
  rain distill export benchmarks/results/frontier/banned-words.jsonl --out data/
  rain distill export sweep.jsonl --judge synthetic@1 --min-margin 1 --out data/
  rain distill export ~/.local/share/rainlm/audit.sqlite3 --judge review --out reviewed/
  rain distill export bw.jsonl refusal.jsonl --format dpo --all-per-prompt --out data/

\b
Pairs: RAIN's answer (chosen) against greedy's on the same prompt when the evaluator
prefers RAIN's by at least --min-margin (an exact rule: RAIN keeps it and greedy breaks
it, margin 2); from the audit database, answers reviewers approved against answers they
rejected on the same prompt (margin 2, judge "review"). SFT examples are the chosen
answers. Writes dpo.jsonl, sft.jsonl, hf/dpo and hf/sft, and export.json (the counts).
"""


@distill_group.command("export", epilog=EXPORT_EPILOG)
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...",
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, metavar="DIR",
              type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the data (created if needed; files of an earlier export there "
                   "are replaced).")
@click.option("--format", "formats", default=None, callback=_check_formats,
              metavar="FMT[,FMT...]",
              help="dpo (dpo.jsonl: TRL's prompt/chosen/rejected), sft (sft.jsonl: TRL's "
                   "messages), hf (hf/dpo and hf/sft: datasets' save_to_disk folders; needs "
                   "pip install 'rainlm[distill]'). Default: dpo,sft, and hf when the "
                   "datasets package is installed.")
@click.option("--min-margin", type=click.FloatRange(min=0, max=2), default=0.1,
              show_default=True, metavar="X",
              help="Keep a pair only when the evaluator prefers the chosen answer by at least "
                   "X (and by more than 0) on the judges' [-1, 1] scale: the difference of the "
                   "two answers' values; exact rules and reviewers' decisions count 2.")
@click.option("--judge", "judges", multiple=True, metavar="NAME",
              help="Keep only pairs judged by NAME (repeatable): a bench run's judge "
                   "(self-eval:harmless, synthetic@0.75), a frontier rule at an accuracy "
                   "(banned-words@1; banned-words alone matches every accuracy), the audit "
                   "database's self-evaluation (self-eval:harmless), or review (reviewers' "
                   "decisions).")
@click.option("--include-budget-limited", is_flag=True,
              help="Keep answers a search budget ended (cut off or finished greedily); "
                   "excluded by default.")
@click.option("--all-per-prompt", is_flag=True,
              help="Keep every pair of a prompt (different RAIN settings, budgets, judges), "
                   "not only the one with the largest margin.")
@click.option("--as-chat", is_flag=True,
              help="Write every DPO prompt as chat messages, a plain prompt as one user "
                   "message (the default does so only when a source was a chat). RAIN "
                   "answered through the chat template either way.")
def distill_export_command(sources: tuple[Path, ...], out_dir: Path,
                           formats: tuple[str, ...] | None, min_margin: float,
                           judges: tuple[str, ...], include_budget_limited: bool,
                           all_per_prompt: bool, as_chat: bool) -> None:
    """Export preference pairs (DPO) and SFT examples from bench results files (JSONL of
    `rain bench run` and `rain bench frontier`) and audit databases (SQLite).

    Prints what was kept and, per reason, what was dropped.
    """
    from rainlm import __version__
    from rainlm.distill.export import ExportOptions, export_pairs
    from rainlm.distill.formats import INSTALL_HINT, datasets_available, write_formats

    options = ExportOptions(min_margin=min_margin, judges=judges,
                            include_budget_limited=include_budget_limited,
                            all_per_prompt=all_per_prompt)
    if formats is None:
        formats = ("dpo", "sft", "hf") if datasets_available() else ("dpo", "sft")
        if "hf" not in formats:
            click.echo(f"note: no hf/ folders: the datasets package is not installed "
                       f"({INSTALL_HINT})", err=True)
    result = export_pairs(sources, options)
    for line in summary_lines(result):
        click.echo(line)
    if not result.pairs:
        raise click.ClickException(_nothing_kept(result, judges))
    written = write_formats(result.pairs, out_dir, formats, chat=True if as_chat else None,
                            manifest={"rainlm": __version__, **result.summary(options)})
    click.echo("wrote " + ", ".join(str(p) for p in written), err=True)


def summary_lines(result: Any) -> list[str]:
    """What was read, kept, dropped (per reason) and ignored, for people."""
    parts = []
    for s in result.sources:
        skipped = "".join(f", {n} skipped: {why}" for why, n in s.skipped.items())
        parts.append(f"{s.path} ({s.answers} answers{skipped})")
    lines = [f"read {result.answers} answers from {len(result.sources)} "
             f"source{'s' if len(result.sources) != 1 else ''}: " + ", ".join(parts)]
    kinds: dict[str, int] = {}
    for p in result.pairs:
        kinds[p.kind] = kinds.get(p.kind, 0) + 1
    by_kind = ", ".join(f"{n} {k}" for k, n in kinds.items())
    lines.append(f"kept {len(result.pairs)} of {result.candidates} candidate pairs"
                 + (f" ({by_kind})" if by_kind else ""))
    if result.dropped:
        lines.append("dropped:")
        width = max(len(r) for r in result.dropped)
        lines += [f"  {r:<{width}}  {n}" for r, n in result.dropped.items()]
    if result.ignored:
        lines.append("not paired (other methods): "
                     + ", ".join(f"{m} {n}" for m, n in result.ignored.items()))
    return lines


def _nothing_kept(result: Any, judges: tuple[str, ...]) -> str:
    if not result.candidates:
        return ("no candidate pair: the sources hold no RAIN answers and no review "
                "decisions; pass results of `rain bench run` (method rain) or `rain bench "
                "frontier`, or an audit database with reviewed answers")
    message = "no pair kept, nothing written"
    top = max(result.dropped, key=result.dropped.get)
    if top in HINTS:
        message += f"; most were dropped as {top!r}: {HINTS[top]}"
    if judges and "judge" in result.dropped:
        seen = ", ".join(f"{j} ({n})" for j, n in result.judges.items())
        message += f". Judges in the sources: {seen}"
    return message
