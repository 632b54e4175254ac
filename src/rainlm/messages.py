"""Prompt normalisation: a string or a list of chat messages -> a tuple of messages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Union

from rainlm.errors import ConfigError

Message = dict  # {"role": "system" | "user" | "assistant", "content": str}
PromptLike = Union[str, Sequence[Mapping[str, str]]]

ROLES = ("system", "user", "assistant")


def normalize_messages(prompt: PromptLike, *, system: str | None = None) -> tuple[Message, ...]:
    """Turn a prompt string or a message list into validated chat messages.

    A plain string becomes one user message. ``system`` (if given) is put in front
    unless the messages already start with a system message.
    """
    if isinstance(prompt, str):
        if not prompt.strip():
            raise ConfigError("prompt", "is empty; give the question to answer")
        messages = [{"role": "user", "content": prompt}]
    elif isinstance(prompt, Mapping) or not isinstance(prompt, Sequence) or isinstance(prompt, bytes):
        raise ConfigError("prompt", f"must be a question (str) or a list of chat messages "
                                    f"[{{'role': 'user', 'content': ...}}], got "
                                    f"{type(prompt).__name__}")
    else:
        messages = []
        for i, m in enumerate(prompt):
            if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
                raise ConfigError(f"messages[{i}]", "must be a mapping with 'role' and 'content'")
            if m["role"] not in ROLES:
                raise ConfigError(f"messages[{i}].role", f"must be one of {ROLES}, got {m['role']!r}")
            if not isinstance(m["content"], str):
                raise ConfigError(f"messages[{i}].content", "must be a string")
            messages.append({"role": str(m["role"]), "content": m["content"]})
        if not messages:
            raise ConfigError("messages", "is empty; give at least one user message")
        if not any(m["role"] == "user" for m in messages):
            raise ConfigError("messages", "has no user message")
    if system is not None and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": system})
    return tuple(messages)


def last_user_text(messages: Sequence[Mapping[str, str]]) -> str:
    """The content of the last user message (what a judge calls 'the prompt')."""
    for m in reversed(messages):
        if m["role"] == "user":
            return m["content"]
    return ""
