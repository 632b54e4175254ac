"""The pilot's record file: one JSON line per thing done, appended as it is done.

``OUT/pilot.jsonl`` starts with a ``run`` line holding the settings' fingerprint; then
``tune`` (an answer timed while the time budget is looked for), ``budget`` (the budget
found), ``answer``, ``judge`` (the model's own verdict on an answer) and ``pair`` (a
labelled pair judged) lines. An interrupted pilot loses at most the line in progress;
the same command again reads the file and does only what is missing. A file made with
other settings is refused, naming the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from rainlm.errors import ConfigError

__all__ = ["FILE_NAME", "PilotLog", "read_log"]

FILE_NAME = "pilot.jsonl"


class PilotLog:
    """Append-only records of one pilot in ``folder`` (created when missing)."""

    def __init__(self, folder: str | Path, fingerprint: str, settings: Mapping[str, Any]):
        self.folder = Path(folder).expanduser()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / FILE_NAME
        self.records: list[dict[str, Any]] = [self._check(r, fingerprint)
                                              for r in read_log(self.path)]
        self.resumed = bool(self.records)
        if not self.records:
            self.append({"kind": "run", "fingerprint": fingerprint, "settings": dict(settings)})

    def _check(self, rec: dict[str, Any], fingerprint: str) -> dict[str, Any]:
        if rec.get("kind") == "run" and rec.get("fingerprint") != fingerprint:
            raise ConfigError("out", f"{self.path} holds a pilot made with other settings "
                                     "(prompts, policy, model or options); run the same command "
                                     "to resume it, or give a new --out folder")
        return rec

    def append(self, rec: dict[str, Any]) -> dict[str, Any]:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
        self.records.append(rec)
        return rec

    def of_kind(self, kind: str) -> Iterator[dict[str, Any]]:
        return (r for r in self.records if r.get("kind") == kind)

    def find(self, kind: str, **match: Any) -> dict[str, Any] | None:
        """The last record of ``kind`` whose fields equal ``match`` (errors count only
        as not done)."""
        found = None
        for rec in self.of_kind(kind):
            if all(rec.get(k) == v for k, v in match.items()) and not rec.get("error"):
                found = rec
        return found


def read_log(path: Path) -> list[dict[str, Any]]:
    """The file's records; a last line cut short by an interruption is removed first
    (as ``bench.runner.read_records`` does for lines keyed by item and method)."""
    if not path.exists():
        return []
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    tail = lines[-1]
    if tail.strip():
        with open(path, "r+b") as fh:
            fh.truncate(len(raw) - len(tail))
    out = []
    for n, line in enumerate(lines[:-1], start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError("out", f"{path} line {n} is not a pilot record ({exc}); "
                                     "give a new --out folder") from None
        if not isinstance(rec, dict) or "kind" not in rec:
            raise ConfigError("out", f"{path} line {n} is not a pilot record; "
                                     "give a new --out folder")
        out.append(rec)
    return out
