"""``rain calibrate``: measure how well the model judges its own answers on HH pairs, and
say in plain words whether RAIN can be expected to help with it."""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from pathlib import Path
from typing import Any

import click

from rainlm.backends.base import model_name
from rainlm.cli.bench import data_options
from rainlm.cli.options import (_check_model, _check_rubric, backend_options,
                                backend_spec, services_of)
from rainlm.request import DEVICES, SCORINGS

__all__ = ["calibrate_command"]

EPILOG = """\b
Examples:
  rain calibrate --limit 200
  rain calibrate --limit 50 --rubric adversarial --json
  rain calibrate --model path/to/model-folder --transcript both
"""


@click.command("calibrate", epilog=EPILOG)
@click.option("--limit", type=click.IntRange(min=1), default=200, show_default=True, metavar="N",
              help="Number of HH harmless-base pairs to judge (each pair = 2 answers x 2 "
                   "option orders).")
@click.option("--sample-seed", type=click.IntRange(min=0), default=None, metavar="INT",
              help="Take a seeded random sample of the usable pairs instead of the first N.")
@click.option("--rubric", metavar="NAME|PATH", default="harmless", show_default=True,
              callback=_check_rubric,
              help="Self-evaluation rubric: a built-in name or a rubric TOML file.")
@click.option("--model", metavar="PATH|HUB_ID", default=None, callback=_check_model,
              help="Model to judge with (a local folder, a .gguf file or a cached hub id). "
                   "Default: the embedded SmolLM2-135M-Instruct.")
@functools.partial(backend_options, dest="backend_kind")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
              help="Where the model runs: 'auto' picks CUDA when available, else CPU.")
@click.option("--transcript", type=click.Choice(("plain", "chat", "both")), default="plain",
              show_default=True,
              help="Judge prompt: 'plain' (the paper's Human:/Assistant: text), 'chat' (wrapped "
                   "in the model's chat template) or 'both' (measure each).")
@click.option("--shots", type=click.IntRange(min=0), default=None, metavar="N",
              help="Worked examples of the rubric to show the judge. Default: all.")
@click.option("--scoring", type=click.Choice(SCORINGS), default="paper",
              show_default=True,
              help="The scoring mode RAIN would use; the verdict is about this mode (every "
                   "mode is measured and shown).")
@click.option("--batch-pairs", metavar="N", type=click.IntRange(min=1), default=2, show_default=True,
              help="Pairs judged per model call (each pair is 4 contexts).")
@click.option("--json", "as_json", is_flag=True,
              help='Print one JSON object {"rows": [...], "verdict": "..."} instead of the table.')
@click.option("--progress/--no-progress", default=None,
              help="Show a progress bar with ETA on stderr. Default: only on a terminal.")
@data_options
@click.pass_context
def calibrate_command(ctx: click.Context, limit: int, sample_seed: int | None, rubric: str,
                      model: str | None, backend_kind: str, base_url: str | None,
                      tokenizer: str | None, device: str,
                      transcript: str, shots: int | None,
                      scoring: str, batch_pairs: int, as_json: bool, progress: bool | None,
                      data_dir: Path | None, data_file: Path | None) -> None:
    """Pairwise accuracy of the model's self-evaluation on HH harmless-base pairs.

    For each pair the judge scores the answer people chose as less harmful and the one
    they rejected; accuracy is how often the chosen one scores higher (ties count half),
    with a 95% bootstrap interval, for every scoring mode (paper vote, continuous,
    log-odds, first order only). Ends with a verdict on whether RAIN can help.
    """
    from rainlm.bench.calibrate import calibrate, render_table, verdict
    from rainlm.progress_bar import ProgressBar
    from rainlm.cli.progress import progress_enabled

    pairs = _pairs(data_dir, data_file, limit, sample_seed)
    transcripts = ("plain", "chat") if transcript == "both" else (transcript,)
    n_batches = -(-len(pairs) // batch_pairs) * len(transcripts)
    bar = ProgressBar(n_batches, enabled=progress_enabled(progress), label="calibrate")
    try:
        with contextlib.redirect_stdout(sys.stderr):
            backend = services_of(ctx).open_backend(
                backend_spec(backend_kind, model, base_url, tokenizer), device,
                tokenizer=tokenizer)
            bar.start_ticking()  # after the load: its own output is not overdrawn
            rows = calibrate(backend, pairs, rubric=rubric, shots=shots, transcripts=transcripts,
                             batch_pairs=batch_pairs, on_batch=lambda k: bar.update(f"{k} pairs"))
    finally:
        bar.close()
    text = verdict(rows, used_mode=scoring)
    if as_json:
        click.echo(json.dumps({"model": model_name(backend), "rubric": rubric,
                               "rows": [r.to_dict() for r in rows], "verdict": text}))
        return
    click.echo(render_table(rows, f"Self-evaluation pairwise accuracy of "
                                  f"{getattr(backend, 'name', 'model')}, {len(pairs)} HH "
                                  f"harmless-base pairs, rubric {Path(rubric).stem}"))
    click.echo("")
    click.echo(f"Verdict: {text}")


def _pairs(data_dir: Path | None, data_file: Path | None, limit: int,
           sample_seed: int | None) -> list[Any]:
    from rainlm.bench.datasets import BUILTIN, DatasetError, load_hh_pairs
    from rainlm.bench.datasets import data_file as builtin_file

    path = data_file if data_file is not None else builtin_file(data_dir, BUILTIN["hh"])
    pairs = load_hh_pairs(path, None if sample_seed is not None else limit)
    if sample_seed is not None:
        import numpy as np

        order = np.random.default_rng(sample_seed).permutation(len(pairs))[:limit]
        pairs = [pairs[i] for i in order]
    if not pairs:
        raise DatasetError(path, "holds no usable pairs (final answers that differ)")
    return pairs
