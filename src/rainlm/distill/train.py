"""``rain distill train``: DPO (or SFT) with TRL on the data ``rain distill export`` wrote.

The base model is what ``rain generate --model`` takes for transformers models: nothing
(the embedded SmolLM2-135M-Instruct, read from its converted copy of the GGUF), a local
model folder, a ``.gguf`` file (de-quantised by transformers) or a hub id already in the
local cache. LoRA adapters (``peft``) are trained by default and merged into the weights
at the end, so MODEL_DIR is an ordinary transformers folder that ``rainlm.load_backend``
and every ``rain`` command load. Training resumes from the last checkpoint in
``MODEL_DIR/checkpoints`` (see :mod:`rainlm.distill.model_dir`).

torch, transformers, datasets, trl and peft are imported inside the functions that need
them (``pip install 'rainlm[distill]'``).

    from rainlm.distill.train import TrainSettings, train
    result = train("data/dpo.jsonl", "distilled/", settings=TrainSettings(max_steps=20))
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import importlib.util
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from rainlm.distill.model_dir import (CHECKPOINTS, INFO_FILE, check_out_dir, checkpoint_step,
                                      plan_resume, save_model, start_fresh, write_json)
from rainlm.distill.train_data import METHODS, TrainingData, read_training_data, style_of
from rainlm.errors import ConfigError, ModelNotFoundError, RainError
from rainlm.request import DEVICES

__all__ = ["TrainSettings", "TrainResult", "train", "require_training_deps", "peak_memory_mib",
           "base_model_spec", "INSTALL_HINT", "DEFAULT_LEARNING_RATES", "DEFAULT_SFT_WEIGHT",
           "INFO_FILE"]

INSTALL_HINT = "pip install 'rainlm[distill]'"
TRAINING_PACKAGES = ("torch", "transformers", "datasets", "trl", "peft")
DEFAULT_LEARNING_RATES = {("dpo", True): 5e-4, ("sft", True): 2e-4,
                          ("dpo", False): 5e-6, ("sft", False): 2e-5}
"""(method, lora) -> the learning rate used when none is given. DPO with LoRA: 5e-4 with
``DEFAULT_SFT_WEIGHT`` removed 8 of 9 held-out violations in ``distill_loop.py`` (1e-4
changed nothing, 5e-4 with an SFT weight of 1.0 almost nothing, 5e-4 without it broke
the model)."""
DEFAULT_SFT_WEIGHT = 0.2
"""DPO's ``sft_weight`` when none is given (docs/distill.md, "Measured")."""
# Settings that only say how long to train or where: a resumed run may change them.
RESUMABLE_CHANGES = ("epochs", "max_steps", "save_steps", "device")


@dataclass(frozen=True)
class TrainSettings:
    """How to train. The defaults are sized for the embedded 135M-parameter model on a
    small CPU: LoRA, short examples, 8 pairs a step, at most 50 steps (measured times in
    docs/distill.md)."""

    method: str = "dpo"
    """``dpo`` (preference pairs: chosen against rejected) or ``sft`` (the chosen answers)."""
    lora: bool = True
    """Train LoRA adapters on every linear layer but the output head, merged into the
    weights at the end; False: full finetuning (every weight; checkpoints are ~3x the
    model's size)."""
    lora_r: int = 8
    """LoRA rank."""
    lora_alpha: int = 16
    """LoRA scaling numerator (the update is scaled by alpha / r)."""
    lora_dropout: float = 0.0
    """Dropout on the LoRA inputs (DPO switches dropout off anyway)."""
    max_length: int = 256
    """Tokens per example, prompt (with the chat template) and answer together; longer
    examples are cut at the end. RAIN's answers are 128 tokens by default."""
    batch_size: int = 2
    """Examples per forward pass (a DPO example is two sequences: chosen and rejected)."""
    gradient_accumulation: int = 4
    """Forward passes per optimizer step: a step sees batch_size x this examples."""
    epochs: float = 6.0
    """Passes over the data, unless ``max_steps`` ends training first (a few dozen pairs
    need several passes: 2 passes over 15 pairs were 4 steps, which changed nothing)."""
    max_steps: int = 50
    """The most optimizer steps (the time limit: 50 steps of 8 pairs are 400 DPO pairs)."""
    learning_rate: float | None = None
    """AdamW learning rate; None: ``DEFAULT_LEARNING_RATES`` for the method and LoRA."""
    beta: float = 0.1
    """DPO's beta: how far the model may move from the base model (larger: less far)."""
    sft_weight: float | None = None
    """DPO only: weight of a supervised loss (the chosen answer's negative log-likelihood)
    added to DPO's, as in RPO (Pang et al., 2024, "Iterative Reasoning Preference
    Optimization"); it keeps the model writing the chosen kind of answer instead of just
    moving away from the rejected one (plain DPO at a high learning rate learnt short,
    looping answers: docs/distill.md). 0: plain DPO; None: ``DEFAULT_SFT_WEIGHT`` for DPO
    (SFT has no second loss)."""
    save_steps: int = 10
    """Steps between checkpoints (the last step is always saved; the last two are kept)."""
    seed: int = 0
    """Seed of the LoRA initialisation and the data order."""
    device: str = "auto"
    """``auto`` (CUDA when available, else CPU), ``cpu`` or ``cuda``."""

    def check(self) -> None:
        """ConfigError naming the first field out of range."""
        if self.method not in METHODS:
            raise ConfigError("method", f"must be one of {', '.join(METHODS)}; got "
                                        f"{self.method!r}")
        if self.device not in DEVICES:
            raise ConfigError("device", f"must be one of {', '.join(DEVICES)}; got "
                                        f"{self.device!r}")
        for name in ("lora_r", "lora_alpha", "batch_size", "gradient_accumulation",
                     "max_steps", "save_steps"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(name, f"must be >= 1; got {getattr(self, name)}")
        if self.max_length < 16:
            raise ConfigError("max_length", f"must be >= 16; got {self.max_length}")
        for name in ("epochs", "beta"):
            if not getattr(self, name) > 0:
                raise ConfigError(name, f"must be > 0; got {getattr(self, name)}")
        weight = self.sft_weight
        if weight is not None and not (weight >= 0 and math.isfinite(weight)):
            raise ConfigError("sft_weight", f"must be a finite number >= 0; got {weight}")
        if weight and self.method != "dpo":
            raise ConfigError("sft_weight", "adds a supervised loss to DPO's; with method "
                                            "'sft' the loss is already supervised: leave it "
                                            "unset or 0")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ConfigError("learning_rate", f"must be > 0; got {self.learning_rate}")
        if not 0 <= self.lora_dropout < 1:
            raise ConfigError("lora_dropout", f"must be in [0, 1); got {self.lora_dropout}")

    @property
    def lr(self) -> float:
        """The learning rate: the one given, else the method's default."""
        if self.learning_rate is not None:
            return self.learning_rate
        return DEFAULT_LEARNING_RATES[(self.method, self.lora)]

    @property
    def dpo_sft_weight(self) -> float:
        """The supervised loss's weight in DPO: the one given, else ``DEFAULT_SFT_WEIGHT``
        (0 for SFT, which has no second loss)."""
        if self.method != "dpo":
            return 0.0
        return DEFAULT_SFT_WEIGHT if self.sft_weight is None else self.sft_weight

    def planned_steps(self, examples: int) -> int:
        """Optimizer steps for ``epochs`` over ``examples``, at most ``max_steps``."""
        per_epoch = math.ceil(math.ceil(examples / self.batch_size) / self.gradient_accumulation)
        return max(1, min(self.max_steps, math.ceil(per_epoch * self.epochs)))

    def record(self) -> dict[str, Any]:
        """The settings as JSON, the learning rate and the SFT weight resolved."""
        return {**dataclasses.asdict(self), "learning_rate": self.lr,
                "sft_weight": self.dpo_sft_weight}


@dataclass(frozen=True)
class TrainResult:
    """What a training run did (also written to ``MODEL_DIR/rainlm-distill.json``)."""

    out_dir: Path
    """The model folder."""
    steps: int
    """Optimizer steps the model has had, over every run resumed."""
    resumed_from_step: int | None
    """The checkpoint's step this run continued from; None when it started afresh."""
    final_loss: float | None
    """The training loss logged last."""
    seconds: float
    """Wall-clock time of this run, loading and saving included."""
    peak_memory_mib: float
    """The process's peak resident memory (``ru_maxrss``), MiB."""
    info: dict[str, Any]
    """The contents of ``rainlm-distill.json``."""


def require_training_deps() -> None:
    """RainError naming the missing packages and ``pip install 'rainlm[distill]'``."""
    missing = [name for name in TRAINING_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise RainError(f"training needs {', '.join(missing)}, not installed: "
                        f"{INSTALL_HINT}")


def peak_memory_mib() -> float:
    """Peak resident memory of this process so far, MiB (ru_maxrss: KiB on Linux, bytes
    on macOS; NaN where the ``resource`` module does not exist, e.g. Windows)."""
    try:
        import resource
    except ImportError:
        return float("nan")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def base_model_spec(model: str | os.PathLike | None) -> str:
    """The base model as ``rain generate --model`` takes it, normalised: ``embedded``, an
    absolute path, or a hub id. ConfigError for models that are not transformers weights
    (``llamacpp:``, ``openai:``, URLs)."""
    from rainlm.backends.loading import EMBEDDED_ALIASES, looks_like_path, split_kind

    spec = "" if model is None else os.fspath(model).strip()
    if spec.lower() in {"", *EMBEDDED_ALIASES}:
        return "embedded"
    kind, rest = ("url", spec) if spec.startswith(("http://", "https://")) else split_kind(spec)
    if kind not in ("", "transformers"):
        raise ConfigError("model", f"{spec!r} is served by another engine; training needs the "
                                   "weights: a local model folder, a .gguf file, a hub id in "
                                   "the local cache, or nothing for the embedded model")
    path = Path(rest).expanduser()
    if path.exists():
        return str(path.resolve())
    if looks_like_path(rest):
        raise ModelNotFoundError(f"No model folder or .gguf file at {rest!r}.")
    return rest


def _load_base(spec: str) -> tuple[Any, Any, dict[str, Any]]:
    """(model, tokenizer, description) of the base model, float32 on the CPU, loaded the
    way ``rainlm.load_backend`` loads it."""
    from rainlm.backends.loading import load_backend
    from rainlm.backends.transformers import TransformersBackend

    backend = load_backend(None if spec == "embedded" else spec, device="cpu", dtype="float32")
    if not isinstance(backend, TransformersBackend):  # pragma: no cover - kinds checked before
        raise ConfigError("model", f"{spec!r} is not a transformers model")
    model, tokenizer = backend.model, backend.tokenizer
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None and spec.endswith(".gguf"):
        # A GGUF is de-quantised on load, yet marked quantised: the Trainer would refuse
        # to train it and save_pretrained to save it.
        quantizer.remove_quantization_config(model)
        for module in model.modules():
            if getattr(getattr(module, "config", None), "_is_quantized", False):
                module.config._is_quantized = False
    path = str(getattr(model.config, "_name_or_path", "") or spec)
    return model, tokenizer, {"spec": spec, "name": backend.name, "path": path}


def _versions() -> dict[str, str]:
    import importlib.metadata

    out = {}
    for name in ("rainlm", *TRAINING_PACKAGES):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "?"
    return out


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No progress bars of datasets (one per map over a few rows) or transformers (one per
    load and save), and no deprecation notes about arguments TRL itself passes."""
    from datasets.utils import (are_progress_bars_disabled, disable_progress_bars,
                                enable_progress_bars)
    from transformers.utils import logging as hf_logging

    datasets_quiet = are_progress_bars_disabled()
    hf_quiet = not hf_logging.is_progress_bar_enabled()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*gradient_checkpointing",
                                category=FutureWarning)
        warnings.filterwarnings("ignore", message=r".*environment variable", category=UserWarning)
        # peft, saving an adapter of a model loaded from a .gguf (no config.json beside it)
        warnings.filterwarnings("ignore", message=r"Could not find a config file",
                                category=UserWarning)
        disable_progress_bars()  # datasets warns when an environment variable wins
        hf_logging.disable_progress_bar()
        try:
            yield
        finally:
            if not datasets_quiet:
                enable_progress_bars()
            if not hf_quiet:
                hf_logging.enable_progress_bar()


def _progress_callback(enabled: bool, stream: TextIO | None) -> Any:
    """A TrainerCallback drawing rainlm's progress bar: steps, loss, elapsed time and ETA
    (of this run's steps: a resumed run counts from its checkpoint)."""
    from transformers import TrainerCallback

    from rainlm.progress_bar import ProgressBar

    class ProgressCallback(TrainerCallback):
        def __init__(self) -> None:
            self.bar: ProgressBar | None = None
            self.loss: float | None = None

        def note(self, state: Any) -> str:
            loss = "" if self.loss is None else f"  loss {self.loss:.4f}"
            return f"step {state.global_step}/{state.max_steps}{loss}"

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            todo = max(0, state.max_steps - state.global_step)  # 0: resumed at the end
            self.bar = ProgressBar(todo, enabled=enabled and todo > 0, stream=stream,
                                   label="train")
            self.bar.working(self.note(state))
            self.bar.start_ticking()

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if self.bar is not None:
                self.bar.update(self.note(state))

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None,
                   **kw: Any) -> None:
            if logs and "loss" in logs and self.bar is not None:
                self.loss = float(logs["loss"])
                self.bar.working(self.note(state))

        def close(self) -> None:
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    return ProgressCallback()


def dpo_loss(settings: TrainSettings) -> dict[str, Any]:
    """DPOConfig's loss settings: DPO's sigmoid loss, plus the supervised loss on the
    chosen answers unless its weight (``TrainSettings.dpo_sft_weight``) is 0."""
    weight = settings.dpo_sft_weight
    if not weight:
        return {"loss_type": ["sigmoid"]}
    return {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, weight]}


def _trainer(model: Any, tokenizer: Any, rows: list[dict[str, Any]], out: Path,
             settings: TrainSettings, steps: int, callbacks: list[Any]) -> Any:
    """TRL's DPOTrainer or SFTTrainer over ``rows``, checkpointing into MODEL_DIR/checkpoints
    (without transformers' own progress printer: ``callbacks`` draw the progress)."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers.trainer_callback import PrinterCallback

    cuda = settings.device != "cpu" and torch.cuda.is_available()
    if settings.device == "cuda" and not cuda:
        raise ConfigError("device", "cuda was asked for but torch sees no CUDA device; use "
                                    "--device cpu (or auto)")
    common = dict(
        output_dir=str(out / CHECKPOINTS), max_steps=steps,
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation,
        learning_rate=settings.lr, lr_scheduler_type="linear", warmup_steps=0.1,
        max_length=settings.max_length, logging_steps=1, save_strategy="steps",
        save_steps=settings.save_steps, save_total_limit=2, report_to="none",
        disable_tqdm=True, use_cpu=not cuda, bf16=cuda and torch.cuda.is_bf16_supported(),
        gradient_checkpointing=False, seed=settings.seed, data_seed=settings.seed)
    peft_config = None
    if settings.lora:
        peft_config = LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_alpha,
                                 lora_dropout=settings.lora_dropout,
                                 target_modules="all-linear", task_type="CAUSAL_LM")
    dataset = Dataset.from_list(rows)
    model.train()
    if settings.method == "dpo":
        from trl import DPOConfig, DPOTrainer

        ref_model = None if settings.lora else copy.deepcopy(model).eval()
        trainer = DPOTrainer(model=model, ref_model=ref_model,
                             args=DPOConfig(beta=settings.beta, **dpo_loss(settings), **common),
                             train_dataset=dataset, processing_class=tokenizer,
                             peft_config=peft_config, callbacks=callbacks)
    else:
        from trl import SFTConfig, SFTTrainer

        trainer = SFTTrainer(model=model, args=SFTConfig(**common), train_dataset=dataset,
                             processing_class=tokenizer, peft_config=peft_config,
                             callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)
    return trainer


def _final_loss(log_history: list[dict[str, Any]]) -> float | None:
    losses = [entry["loss"] for entry in log_history if "loss" in entry]
    return float(losses[-1]) if losses else None


def train(data: str | os.PathLike, out_dir: str | os.PathLike, *,
          model: str | os.PathLike | None = None, settings: TrainSettings | None = None,
          resume: bool | None = None, progress: bool = False, stream: TextIO | None = None,
          log: Callable[[str], None] | None = None) -> TrainResult:
    """Train on ``data`` (a file or folder of ``rain distill export``) and save the model
    into ``out_dir``.

    ``model``: the base model (see the module docstring; default the embedded one).
    ``resume``: None continues from the last checkpoint of the same run in
    ``out_dir/checkpoints`` when there is one, True requires one, False starts over.
    ``progress``: draw a progress bar on ``stream`` (default stderr); ``log`` receives
    one-line notes (what is resumed). Errors in the data, the settings or the folders
    are raised before any model loads.
    """
    started = time.monotonic()
    settings = settings or TrainSettings()
    settings.check()
    require_training_deps()
    examples = read_training_data(data, settings.method)
    out = Path(out_dir).expanduser()
    spec = base_model_spec(model)
    check_out_dir(out, spec if Path(spec).exists() else None)
    run = {"base_model": spec, "method": settings.method, "data_sha256": examples.sha256,
           **{k: v for k, v in settings.record().items() if k not in RESUMABLE_CHANGES}}
    checkpoint = plan_resume(out, run, resume)
    with _quiet():
        base_model, tokenizer, base = _load_base(spec)
    if checkpoint is None:
        start_fresh(out, run)
    elif log is not None:
        log(f"resuming from {checkpoint} (step {checkpoint_step(checkpoint)})")
    return _run(examples, out, base_model, tokenizer, base, settings, checkpoint,
                _progress_callback(progress, stream), started)


def _run(examples: TrainingData, out: Path, model: Any, tokenizer: Any,
         base: dict[str, Any], settings: TrainSettings, checkpoint: Path | None,
         callback: Any, started: float) -> TrainResult:
    """Build the trainer, train (from ``checkpoint`` if any), merge and save."""
    rows = examples.as_rows(chat=bool(getattr(tokenizer, "chat_template", None)))
    steps = settings.planned_steps(len(rows))
    # read now: the trainer deletes all but the last two checkpoints as it saves new ones
    resumed_from = checkpoint_step(checkpoint) if checkpoint else None
    with _quiet():
        trainer = _trainer(model, tokenizer, rows, out, settings, steps, [callback])
        train_started = time.monotonic()
        try:
            trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        finally:
            callback.close()
    train_seconds = time.monotonic() - train_started
    trained = trainer.model
    if settings.lora:
        trained = trained.merge_and_unload()
    trained.config.use_cache = True
    state = trainer.state
    info = {
        "rainlm_distill": 1, "base_model": base, "method": settings.method,
        "lora": ({"r": settings.lora_r, "alpha": settings.lora_alpha, "merged": True}
                 if settings.lora else None),
        "data": {"path": str(examples.path), "sha256": examples.sha256, "rows": len(rows),
                 "style": style_of(rows)},
        "settings": settings.record(), "steps": int(state.global_step), "planned_steps": steps,
        "resumed_from_step": resumed_from,
        "final_loss": _final_loss(state.log_history),
        "train_seconds": round(train_seconds, 1),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(),
    }
    with _quiet():
        save_model(trained, tokenizer, out)
    info["seconds"] = round(time.monotonic() - started, 1)
    info["peak_memory_mib"] = round(peak_memory_mib(), 1)
    write_json(out / INFO_FILE, info)
    return TrainResult(out_dir=out, steps=info["steps"],
                       resumed_from_step=info["resumed_from_step"],
                       final_loss=info["final_loss"], seconds=info["seconds"],
                       peak_memory_mib=info["peak_memory_mib"], info=info)

