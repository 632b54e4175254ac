"""One answer to one prompt, whatever its source: the shape the readers produce and
pairing consumes, with the prompt helpers they share."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rainlm.errors import FileError
from rainlm.result import CUT_OFF_REASONS

__all__ = ["Answer", "SourceError", "Message", "CUT_OFF_REASONS", "FULL_MARGIN",
           "chat_messages", "is_budget_limited", "prompt_key"]

Message = dict[str, str]
"""A chat message: ``{"role": "system" | "user" | "assistant", "content": str}``."""

Kind = Literal["rain", "greedy", "other"]


FULL_MARGIN = 2.0
"""The margin of a verdict that is not a graded score: an exact rule kept by one answer
and broken by the other (+1 against -1 on the judges' [-1, 1] scale), or a reviewer's
approval against a rejection."""

ROLES = ("system", "user", "assistant")


class SourceError(FileError):
    """A source file is missing or malformed; the message names the file, line and field."""



@dataclass(frozen=True)
class Answer:
    """One answer to one prompt, from a bench results file or the audit database."""

    prompt: tuple[Message, ...]
    """The prompt as chat messages (a plain prompt is one user message)."""
    chat: bool
    """The source held a chat (a list of messages, or a system message), not a plain
    prompt string."""
    text: str
    """The model's answer (for an answer the server's policy replaced: the model's own
    answer, which its score is about; ``replaced_by`` holds what was sent)."""
    kind: Kind
    """"rain" (RAIN's answer), "greedy" (plain greedy decoding), or "other" (best-of-n,
    sampling, ARGS: not paired)."""
    method: str
    """The method as the source names it: "rain:default@16", "vanilla", "greedy", ..."""
    group: tuple[str, ...]
    """Answers compared as RAIN against greedy share it: the same source, model, prompt
    and, where each answer's value comes from its own judge, the same judge."""
    judge: str | None
    """The judge the answer was searched with and judged by ("self-eval:harmless",
    "synthetic@0.75", "banned-words@1"); ``--judge`` keeps answers by this name."""
    value: float | None
    """The evaluator's verdict on the answer, in [-1, 1]; None when it was not judged.
    Frontier rows: +1 when the answer keeps the task's exact rule, -1 when it breaks it."""
    source: str
    """Where it came from, for people: "RUN.jsonl, line 12", "audit.sqlite3, trace tr_3f..."."""
    model: str = ""
    """The model that answered."""
    budget_limited: bool = False
    """A search budget ran out: the answer was cut off or finished greedily."""
    error: str | None = None
    """Set when the answer failed (its text is then empty or partial)."""
    review: str | None = None
    """A reviewer's decision on the answer: "approved", "rejected", or None."""
    replaced_by: str | None = None
    """The refusal message the server's policy sent instead of ``text`` (else None)."""

    @property
    def prompt_key(self) -> str:
        """The prompt as one string: equal for equal prompts, whatever the source."""
        return prompt_key(self.prompt)


def prompt_key(messages: Sequence[Mapping[str, str]]) -> str:
    """``messages`` as canonical JSON (role and content of each message, in order)."""
    return json.dumps([[m["role"], m["content"]] for m in messages], ensure_ascii=False)


def _content_text(content: Any) -> str | None:
    """A message's content as text: a string, or OpenAI content parts joined; None when
    it is neither."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        if all(isinstance(p, str) for p in parts):
            return "".join(parts)  # type: ignore[arg-type]
    return None


def chat_messages(prompt: Any, *, system: Any = None) -> tuple[tuple[Message, ...], bool] | None:
    """``(messages, chat)`` for a prompt string or a list of chat messages, with ``system``
    in front when given (and the messages do not start with one); None when ``prompt`` is
    neither, is empty, or holds a message that is not a system, user or assistant turn.

    ``chat`` is True for a message list, or a string prompt with a system message.
    """
    messages: list[Message] = []
    if isinstance(prompt, str):
        if not prompt.strip():
            return None
        messages = [{"role": "user", "content": prompt}]
        chat = False
    elif isinstance(prompt, list):
        for m in prompt:
            if not isinstance(m, Mapping) or m.get("role") not in ROLES:
                return None
            content = _content_text(m.get("content"))
            if content is None:
                return None
            messages.append({"role": str(m["role"]), "content": content})
        if not any(m["role"] == "user" for m in messages):
            return None
        chat = True
    else:
        return None
    if isinstance(system, str) and system and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": system})
        chat = True
    return tuple(messages), chat


def is_budget_limited(finish_reason: Any, *flags: Any) -> bool:
    """An answer a budget (or a stop) ended, or whose search ran out of budget (any of
    ``flags`` true: ``budget_exhausted`` of a row, its details or a record's stats)."""
    return finish_reason in CUT_OFF_REASONS or any(bool(f) for f in flags)
