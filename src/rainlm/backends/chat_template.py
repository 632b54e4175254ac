"""Render a model's Jinja chat template the way transformers' ``apply_chat_template`` does.

Backends that read the template from model metadata (a GGUF's ``tokenizer.chat_template``)
use this so that the same messages give the same text, and so the same token ids, as the
transformers backend: a sandboxed environment with ``trim_blocks``/``lstrip_blocks``,
``loopcontrols``, a ``tojson`` that does not escape HTML, and the ``raise_exception`` /
``strftime_now`` globals templates expect.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from rainlm.errors import ConfigError

__all__ = ["END_OF_TURN_NAMES", "render_chat_template", "plain_messages", "plain_transcript",
           "hf_bos_ids", "hf_render_prompt"]


END_OF_TURN_NAMES = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<|eom_id|>")
"""Special tokens that end an assistant turn in common chat templates (ChatML, Llama 3,
Gemma, Phi); every backend counts the ones its vocabulary has as end-of-answer."""


@functools.lru_cache(maxsize=8)
def _compile(template: str):
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x: Any, ensure_ascii: bool = False, indent: int | None = None,
               separators: Any = None, sort_keys: bool = False) -> str:
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent,
                          separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt: str) -> str:
        return datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env.from_string(template)


def render_chat_template(template: str, messages: Sequence[Mapping[str, str]], *,
                         add_generation_prompt: bool = True,
                         special_tokens: Mapping[str, str] | None = None) -> str:
    """The conversation as text, ending where the assistant's answer begins.

    ``special_tokens`` (``bos_token``, ``eos_token``, ...) are passed to the template as
    variables, as transformers passes its tokenizer's special-tokens map.
    """
    import jinja2

    msgs = [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]
    try:
        return _compile(template).render(messages=msgs, tools=None, documents=None,
                                         add_generation_prompt=add_generation_prompt,
                                         **dict(special_tokens or {}))
    except jinja2.exceptions.TemplateError as exc:
        raise ConfigError("messages", f"the model's chat template rejected the "
                                      f"conversation: {exc}") from exc


def plain_messages(messages: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    """Messages as plain ``{"role": str, "content": str}`` dicts (what templates expect)."""
    return [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]


def plain_transcript(messages: Sequence[Mapping[str, str]]) -> str:
    """A model without a chat template gets ``Human: ...\n\nAssistant:`` text
    (system turns as bare text), ending where the answer begins."""
    names = {"user": "Human", "assistant": "Assistant"}
    parts = []
    for m in plain_messages(messages):
        if m["role"] == "system":
            parts.append(m["content"])
        elif m["role"] in names:
            parts.append(f"{names[m['role']]}: {m['content']}")
        else:
            raise ConfigError("messages", f"role must be system, user or assistant; "
                                          f"got {m['role']!r}.")
    return "\n\n".join(parts + ["Assistant:"])


def hf_render_prompt(tokenizer: Any, messages: Sequence[Mapping[str, str]], *,
                     use_template: bool, tokenize: Any) -> list[int]:
    """Prompt ids with a Hugging Face tokenizer: its chat template when ``use_template``,
    else the plain transcript (with a BOS first for base models trained with one).
    ``tokenize(text) -> ids`` is the backend's own (no special tokens added)."""
    if use_template:
        from jinja2 import TemplateError

        try:
            text = tokenizer.apply_chat_template(plain_messages(messages),
                                                 add_generation_prompt=True, tokenize=False)
        except TemplateError as exc:  # e.g. "roles must alternate user/assistant"
            raise ConfigError("messages", f"the model's chat template rejects this "
                                          f"conversation: {exc}") from None
        return tokenize(text)
    return hf_bos_ids(tokenizer) + tokenize(plain_transcript(messages))


def hf_bos_ids(tokenizer: Any) -> list[int]:
    """``[bos]`` when the tokenizer puts a BOS before plain text by default (base models
    trained with one expect it), else ``[]``."""
    bos = tokenizer.bos_token_id
    with_special = tokenizer.encode("x", add_special_tokens=True)
    return [bos] if bos is not None and with_special and with_special[0] == bos else []
