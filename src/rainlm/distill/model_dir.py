"""The folder ``rain distill train`` writes: checkpoints, the resume decision, the model.

Layout of MODEL_DIR::

    config.json, model.safetensors, tokenizer files, chat_template.jinja
                            the trained model (LoRA merged), what load_backend reads
    rainlm-distill.json     what was trained: base model, method, data hash, settings,
                            steps, final loss, time, peak memory (written last)
    checkpoints/            the trainer's checkpoint-N folders (the last two) and
                            rainlm-run.json, the run they belong to

A run resumes from the last complete checkpoint (one with its ``trainer_state.json``)
when ``rainlm-run.json`` describes the same run: same base model, method, data and
settings, except the ones that only say how long to train (``RESUMABLE_CHANGES`` of
:mod:`rainlm.distill.train`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rainlm.errors import ConfigError, RainError

__all__ = ["CHECKPOINTS", "INFO_FILE", "RUN_FILE", "check_out_dir", "last_checkpoint",
           "plan_resume", "save_model", "start_fresh", "write_json", "checkpoint_step"]

CHECKPOINTS = "checkpoints"
INFO_FILE = "rainlm-distill.json"
RUN_FILE = "rainlm-run.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
SETTINGS_ADDED_LATER = {"sft_weight": 0.0}
"""Settings a run file may lack because they were added after it was written, with the
value those older runs trained with (so they still resume)."""


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as JSON whole or not at all (a temporary file, then a rename)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise RainError(f"cannot write {path}: {exc.strerror or exc}; choose another --out "
                        "folder") from None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def check_out_dir(out: Path, base_path: str | None) -> None:
    """ConfigError when ``out`` must not be written: a file, the base model's own folder,
    or a model folder this command did not write (it would be overwritten)."""
    if out.exists() and not out.is_dir():
        raise ConfigError("out", f"{out} is a file; give a folder for the trained model")
    if base_path is not None and out.exists() and out.resolve() == Path(base_path).resolve():
        raise ConfigError("out", f"{out} is the base model's folder; give another folder "
                                 "for the trained model")
    if ((out / "config.json").exists() and not (out / INFO_FILE).exists()
            and not (out / CHECKPOINTS).exists()):
        raise ConfigError("out", f"{out} holds a model that `rain distill train` did not "
                                 "write; choose another folder for the trained model")


def checkpoint_step(folder: Path) -> int | None:
    """The step of a complete checkpoint folder (its trainer state is written last)."""
    match = _CHECKPOINT.match(folder.name)
    if not match or not folder.is_dir():
        return None
    state = _read_json(folder / "trainer_state.json")
    return int(match.group(1)) if state is not None else None


def last_checkpoint(folder: Path) -> Path | None:
    """The complete ``checkpoint-N`` folder with the largest N under ``folder``."""
    if not folder.is_dir():
        return None
    found = [(step, p) for p in folder.iterdir() if (step := checkpoint_step(p)) is not None]
    return max(found)[1] if found else None


def plan_resume(out: Path, run: Mapping[str, Any], resume: bool | None) -> Path | None:
    """The checkpoint to continue from, or None to start afresh (then call ``start_fresh``).

    ``resume`` None: continue when ``out`` has a checkpoint of the same ``run``; True: the
    same, but no checkpoint is an error; False: start over. Checkpoints of another run are
    an error unless ``resume`` is False. Changes nothing on disk.
    """
    folder = out / CHECKPOINTS
    last = None if resume is False else last_checkpoint(folder)
    if last is None and resume:
        raise ConfigError("resume", f"no checkpoint in {folder} to resume from; leave out "
                                    "--resume to start training")
    if last is not None:
        earlier = {**SETTINGS_ADDED_LATER, **(_read_json(folder / RUN_FILE) or {})}
        now = {**SETTINGS_ADDED_LATER, **run}
        changed = sorted(k for k in set(now) | set(earlier) if now.get(k) != earlier.get(k))
        if changed:
            raise ConfigError("resume", f"{folder} holds checkpoints of another run (it "
                                        f"differs in {', '.join(changed)}); pass --no-resume "
                                        "to start over (it deletes them), or choose another "
                                        "--out folder")
    return last


def start_fresh(out: Path, run: Mapping[str, Any]) -> None:
    """Empty ``out``'s checkpoints folder (creating the folders) and record ``run`` in it.

    Only what training writes there is removed (``checkpoint-N`` folders and the run
    file); a folder holding anything else was not written by us and is refused."""
    folder = out / CHECKPOINTS
    if folder.is_dir():
        foreign = sorted(p.name for p in folder.iterdir()
                         if p.name != RUN_FILE and not _CHECKPOINT.match(p.name))
        if foreign:
            raise ConfigError("out", f"{folder} holds files training did not write "
                                     f"({', '.join(foreign[:3])}); choose another --out folder")
    try:
        if folder.exists():
            for entry in folder.iterdir():
                if entry.is_dir():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RainError(f"cannot prepare {folder}: {exc.strerror or exc}; choose another "
                        "--out folder") from None
    write_json(folder / RUN_FILE, run)


def save_model(model: Any, tokenizer: Any, out: Path) -> None:
    """Save ``model`` and ``tokenizer`` into ``out``.

    Saved first into a hidden folder inside ``out``, then moved in. ``INFO_FILE`` is
    removed first; write it (``write_json``) once the save is done, so that a folder
    without it is an unfinished save.
    """
    tmp = out / ".saving"
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (out / INFO_FILE).unlink(missing_ok=True)
        for old in out.glob("model*.safetensors*"):  # an earlier save's (sharded) weights
            old.unlink()
        for item in tmp.iterdir():
            target = out / item.name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(item, target)
        tmp.rmdir()
    except OSError as exc:
        raise RainError(f"cannot save the model into {out}: {exc.strerror or exc}; check "
                        "free disk space or choose another --out folder") from None
