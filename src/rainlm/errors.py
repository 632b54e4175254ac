"""The exception tree of rainlm.

Every error a user can cause says what went wrong *and what to do next*.
Catch only at the edges (CLI main, server handler, bench runner per item).
"""

from __future__ import annotations

from pathlib import Path


class RainError(Exception):
    """Base class of every error rainlm raises on purpose."""

    #: Whether retrying the same call may succeed (network blips, busy servers).
    retryable: bool = False


class ConfigError(RainError, ValueError):
    """A configuration field or argument is out of range or of the wrong type.

    The message names the field, the allowed values and the value received.
    """

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


class CapabilityError(RainError):
    """The backend cannot do what the configuration asks (e.g. full distributions)."""


class BackendError(RainError):
    """The model backend failed (a model that will not load, an engine that died)."""

    def __init__(self, message: str, *, retryable: bool = False):
        super().__init__(message)
        self.retryable = retryable


class ModelNotFoundError(BackendError):
    """A model file or package is missing; the message says what to install."""


class JudgeError(RainError):
    """A rubric or evaluator is malformed (missing field, label not one token, ...)."""


class EvaluatorError(RainError):
    """A user-supplied evaluator returned something that is not a float in [-1, 1]."""


class FileError(RainError):
    """A file is missing or malformed; the message names the file, line and field."""

    def __init__(self, path: str | Path, message: str, *, line: int | None = None,
                 field: str | None = None):
        self.path, self.line, self.field = str(path), line, field
        where = str(path) + (f", line {line}" if line is not None else "")
        where += f", field {field!r}" if field is not None else ""
        super().__init__(f"{where}: {message}")


class PolicyError(FileError):
    """A policy file (``--policy-file``) is malformed: the message names the file, the
    line and the key, e.g. ``policy.toml line 7, rules.letter_max: ...``."""

    def __init__(self, path: str | Path, message: str, *, line: int | None = None,
                 key: str | None = None):
        self.path, self.line, self.field = str(path), line, key
        where = str(path) + (f" line {line}" if line is not None else "")
        where += f", {key}" if key else ""
        RainError.__init__(self, f"{where}: {message}")
