"""``rain distill export``: turn RAIN's answers and reviewers' decisions into training data
(TRL's DPO and SFT formats, and Hugging Face ``datasets`` folders); ``rain distill train``:
train a model on them.

A thin shell around :mod:`rainlm.distill`: the pairing rules and the filters are
documented in :mod:`rainlm.distill.export`, the formats in :mod:`rainlm.distill.formats`,
training in :mod:`rainlm.distill.train`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from rainlm.distill.train import DEFAULT_SFT_WEIGHT, TrainSettings

__all__ = ["distill_group", "distill_export_command", "distill_train_command"]

HINTS = {
    "judge": "change or drop --judge",
    "no greedy answer": "answer the same prompts greedily too (rain bench run --methods "
                        "vanilla,rain; rain bench frontier always does)",
    "budget-limited": "--include-budget-limited keeps answers a search budget ended",
    "below min margin": "lower --min-margin",
    "not preferred": "the evaluator did not prefer RAIN's answers to greedy's",
    "control-token text": "prompts or answers held chat control tokens such as <|im_end|> "
                          "(a forged turn would reach the training data)",
}
DEFAULTS = TrainSettings()


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
  rain distill train data/ --out distilled/
  rain generate --model distilled/ --compare "How do I manage my time?"
""")
def distill_group() -> None:
    """Turn RAIN's answers and reviewers' decisions into training data, and train the model
    on them."""


EXPORT_EPILOG = """\b
Examples:
  rain distill export benchmarks/results/frontier/banned-words.jsonl --out data/
  rain distill export sweep.jsonl --judge synthetic@1 --min-margin 1 --out data/
  rain distill export ~/.local/share/rainlm/audit.sqlite3 --judge review --out reviewed/
  rain distill export "$RAINLM_AUDIT_DB" --judge review --out reviewed/
  rain distill export bw.jsonl refusal.jsonl --format dpo --all-per-prompt --out data/

\b
SOURCE is a bench results file (JSONL), an audit database file (SQLite), or a
PostgreSQL audit store's URL (postgresql://USER:PASSWORD@HOST:PORT/DB, as given to
`rain serve --store` or in $RAINLM_AUDIT_DB). A database without rainlm's tables is
refused, not changed; a URL's password is never printed or written (shown as ***).

\b
Pairs: RAIN's answer (chosen) against greedy's on the same prompt when the evaluator
prefers RAIN's by at least --min-margin (an exact rule: RAIN keeps it and greedy breaks
it, margin 2); from the audit database, answers reviewers approved against answers they
rejected on the same prompt (margin 2, judge "review"). SFT examples are the chosen
answers. Writes dpo.jsonl, sft.jsonl, hf/dpo and hf/sft, and export.json (the counts).
"""


@distill_group.command("export", epilog=EXPORT_EPILOG)
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...",
                type=str)
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
def distill_export_command(sources: tuple[str, ...], out_dir: Path,
                           formats: tuple[str, ...] | None, min_margin: float,
                           judges: tuple[str, ...], include_budget_limited: bool,
                           all_per_prompt: bool, as_chat: bool) -> None:
    """Export preference pairs (DPO) and SFT examples from bench results files (JSONL of
    `rain bench run` and `rain bench frontier`) and audit stores (an SQLite file or a
    postgresql:// URL).

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


TRAIN_EPILOG = """\b
Examples:
  rain distill train data/ --out distilled/
  rain distill train data/dpo.jsonl --out distilled/ --max-steps 20 --learning-rate 5e-5
  rain distill train data/sft.jsonl --method sft --out distilled-sft/
  rain distill train data/ --model ./my-model --no-lora --out distilled-full/
  rain distill train data/ --out distilled/ --resume     (after an interruption)
  rain generate --model distilled/ --compare "How do I manage my time?"

\b
DATA is a file `rain distill export` wrote (dpo.jsonl, sft.jsonl, or a datasets
folder such as hf/dpo) or its --out folder. Plain prompts are trained through the
model's chat template, as RAIN answered them. Checkpoints go to MODEL_DIR/checkpoints;
running the same command again continues from the last one. MODEL_DIR ends up an
ordinary transformers folder (LoRA merged) with rainlm-distill.json saying what was
trained: `--model MODEL_DIR` works in every rain command.
"""


def _check_base_model(ctx: click.Context, param: click.Parameter,
                      value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise click.BadParameter("is empty; give a folder, a .gguf file or a hub id "
                                 "(or leave it out for the embedded model)", ctx=ctx, param=param)
    return value


@distill_group.command("train", epilog=TRAIN_EPILOG)
@click.argument("data", metavar="DATA", type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out_dir", required=True, metavar="MODEL_DIR",
              type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the trained model and its checkpoints (created if needed).")
@click.option("--model", metavar="PATH|HUB_ID", default=None, callback=_check_base_model,
              help="Base model: a local model folder, a .gguf file or a hub id already in "
                   "the local cache (nothing is downloaded). Default: the embedded "
                   "SmolLM2-135M-Instruct.")
@click.option("--method", type=click.Choice(["dpo", "sft"]), default=DEFAULTS.method,
              show_default=True,
              help="dpo: prefer the chosen answers to the rejected ones (TRL's DPOTrainer); "
                   "sft: imitate the chosen answers (SFTTrainer).")
@click.option("--lora/--no-lora", default=DEFAULTS.lora, show_default=True,
              help="Train LoRA adapters (merged into the weights at the end) or every weight.")
@click.option("--lora-r", type=click.IntRange(min=1), default=DEFAULTS.lora_r,
              show_default=True, metavar="R",
              help="LoRA rank (its alpha is twice the rank).")
@click.option("--epochs", type=click.FloatRange(min=0, min_open=True), default=DEFAULTS.epochs,
              show_default=True, metavar="N",
              help="Passes over the data, unless --max-steps ends training first.")
@click.option("--max-steps", type=click.IntRange(min=1), default=DEFAULTS.max_steps,
              show_default=True, metavar="N", help="The most optimizer steps.")
@click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="LR",
              help="AdamW learning rate. Default: 5e-4 for DPO with LoRA, 2e-4 SFT with "
                   "LoRA, 5e-6 DPO without, 2e-5 SFT without.")
@click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULTS.batch_size,
              show_default=True, metavar="N", help="Examples per forward pass.")
@click.option("--gradient-accumulation", type=click.IntRange(min=1),
              default=DEFAULTS.gradient_accumulation, show_default=True, metavar="N",
              help="Forward passes per optimizer step (a step sees batch size x N examples).")
@click.option("--max-length", type=click.IntRange(min=16), default=DEFAULTS.max_length,
              show_default=True, metavar="TOKENS",
              help="Tokens per example, prompt (with the chat template) and answer; longer "
                   "examples are cut at the end.")
@click.option("--beta", type=click.FloatRange(min=0, min_open=True), default=DEFAULTS.beta,
              show_default=True, metavar="X",
              help="DPO's beta: how far from the base model the model may move (larger: "
                   "less far).")
@click.option("--sft-weight", type=click.FloatRange(min=0), default=None, metavar="X",
              help="DPO only: add the chosen answers' supervised loss with this weight (RPO); "
                   "keeps the model writing full answers at high learning rates. 0: plain "
                   f"DPO. Default: {DEFAULT_SFT_WEIGHT} with DPO.")
@click.option("--save-steps", type=click.IntRange(min=1), default=DEFAULTS.save_steps,
              show_default=True, metavar="N",
              help="Steps between checkpoints (the last step is always saved).")
@click.option("--seed", type=click.IntRange(min=0), default=DEFAULTS.seed, show_default=True,
              metavar="INT", help="Seed of the LoRA initialisation and the data order.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=DEFAULTS.device,
              show_default=True, help="'auto' trains on CUDA when available, else on the CPU.")
@click.option("--resume/--no-resume", default=None,
              help="--resume: continue from the last checkpoint in MODEL_DIR/checkpoints (an "
                   "error when there is none); --no-resume: start over, deleting them. "
                   "Default: continue when there is a checkpoint of the same data and "
                   "settings (--epochs, --max-steps and --save-steps may change).")
@click.option("--progress/--no-progress", default=None,
              help="Show the progress bar on stderr. Default: only when stderr is a terminal.")
def distill_train_command(data: Path, out_dir: Path, model: str | None, method: str,
                          lora: bool, lora_r: int, epochs: float, max_steps: int,
                          learning_rate: float | None, batch_size: int,
                          gradient_accumulation: int, max_length: int, beta: float,
                          sft_weight: float | None, save_steps: int, seed: int, device: str,
                          resume: bool | None,
                          progress: bool | None) -> None:
    """Train the model on DATA (DPO by default, LoRA, on the CPU in minutes for the
    embedded model) and save it into MODEL_DIR.

    Prints what was trained, the final loss, the time and the peak memory.
    """
    from rainlm.cli.progress import progress_enabled
    from rainlm.distill.train import TrainSettings, train

    settings = TrainSettings(method=method, lora=lora, lora_r=lora_r,
                             lora_alpha=2 * lora_r, epochs=epochs, max_steps=max_steps,
                             learning_rate=learning_rate, batch_size=batch_size,
                             gradient_accumulation=gradient_accumulation,
                             max_length=max_length, beta=beta, sft_weight=sft_weight,
                             save_steps=save_steps,
                             seed=seed, device=device)
    try:
        result = train(data, out_dir, model=model, settings=settings, resume=resume,
                       progress=progress_enabled(progress),
                       log=lambda line: click.echo(line, err=True))
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted; run the same command again to continue from the last "
                   f"checkpoint in {out_dir / 'checkpoints'}", err=True)
        raise SystemExit(130) from None
    for line in train_summary(result):
        click.echo(line)


def train_summary(result: Any) -> list[str]:
    """What was trained, for people."""
    from rainlm.progress_bar import format_duration

    info = result.info
    how = (f"LoRA r {info['lora']['r']}, merged" if info["lora"] else "every weight")
    resumed = (f", resumed at step {result.resumed_from_step}"
               if result.resumed_from_step is not None else "")
    loss = f"{result.final_loss:.4f}" if result.final_loss is not None else "not logged"
    return [
        f"trained {result.out_dir}: {info['method']} ({how}) on {info['base_model']['name']}, "
        f"{info['data']['rows']} examples from {info['data']['path']}",
        f"steps {result.steps}{resumed}, final loss {loss}",
        f"time {format_duration(result.seconds)} (training "
        f"{format_duration(info['train_seconds'])}), peak memory "
        f"{result.peak_memory_mib:.0f} MiB",
        f"use it: rain generate --model {result.out_dir} --compare \"...\"",
    ]
