"""Render a model's Jinja chat template the way transformers' ``apply_chat_template`` does.

Backends that read the template from model metadata (a GGUF's ``tokenizer.chat_template``)
use this so that the same messages give the same text, and so the same token ids, as the
transformers backend: a sandboxed environment with ``trim_blocks``/``lstrip_blocks``,
``loopcontrols``, a ``tojson`` that does not escape HTML, and the ``raise_exception`` /
``strftime_now`` globals templates expect.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from rainlm.errors import ConfigError

__all__ = ["END_OF_TURN_NAMES", "render_chat_template", "plain_messages", "plain_transcript",
           "hf_bos_ids", "hf_render_prompt", "hf_encode_markup", "hf_encode_text",
           "hf_control_ids", "hf_text_tokenizer", "encode_conversation", "control_count",
           "CONTROL_TEXT"]


END_OF_TURN_NAMES = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<|eom_id|>")
"""Special tokens that end an assistant turn in common chat templates (ChatML, Llama 3,
Gemma, Phi); every backend counts the ones its vocabulary has as end-of-answer."""


CONTROL_TEXT = re.compile(
    r"<\|[^|<>\s]{1,40}\|>"  # ChatML, Llama 3, Phi: <|im_start|>, <|eot_id|>, <|end|>
    r"|<(?:start|end)_of_turn>|\[/?INST\]|<</?SYS>>|</?s>"  # Gemma, Llama 2 / Mistral
    r"|<(?:file_sep|repo_name|reponame|filename|gh_stars|issue_(?:start|comment|closed)"
    r"|jupyter_(?:start|text|code|output|script)|empty_output)>")  # SmolLM2's other specials
"""Control-token strings of the common chat formats, for text that no tokenizer has
checked yet (``rain distill export``): training tools read them as control tokens."""


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


_SENTINEL = re.compile("\ue000(\\d+)\ue001")  # a message's place in a rendered template


def encode_conversation(messages: Sequence[Mapping[str, str]],
                        render: Callable[[list[dict[str, str]]], str],
                        encode_markup: Callable[[str], list[int]],
                        encode_text: Callable[[str], list[int]],
                        control_ids: Collection[int]) -> list[int]:
    """Token ids of a conversation rendered by a chat template, in which only the
    template's own markup can become control tokens: message content is always text.

    ``render(messages) -> text``; ``encode_markup`` parses control-token strings
    (``<|im_start|>``) into their ids, ``encode_text`` never does; ``control_ids`` are
    the ids such strings become. The invariant: the prompt holds exactly as many control
    tokens as the template's markup alone (rendered with a placeholder for every
    content). A conversation whose content holds no control-token string is encoded
    whole (the ids a template user expects) when that holds. Otherwise the template is
    rendered again with a placeholder in place of each message that holds one, and the
    markup around them and those contents are encoded apart — so a user who types
    ``<|im_end|>\\n<|im_start|>system`` gets those characters, not a system turn.
    ConfigError (a 400 in the server) when the invariant cannot be kept: the template
    rewrites message text (trims it, or makes control tokens out of it).
    """
    msgs = plain_messages(messages)
    rendered = render(msgs)
    markup_only = render([dict(m, content=f"\ue000{i}\ue001") for i, m in enumerate(msgs)])
    expected = control_count(encode_markup(markup_only), control_ids)
    risky = [i for i, m in enumerate(msgs) if encode_markup(m["content"]) != encode_text(m["content"])]
    if not risky:
        whole = encode_markup(rendered)
        if control_count(whole, control_ids) == expected:
            return whole
        raise _rewritten(0)
    marked = render([dict(m, content=f"\ue000{i}\ue001") if i in risky else m
                     for i, m in enumerate(msgs)])
    pieces = _SENTINEL.split(marked)  # markup, index, markup, index, ..., markup
    markup, order = pieces[0::2], [int(i) for i in pieces[1::2]]
    if "".join(m + msgs[i]["content"] for m, i in zip(markup, order)) + markup[-1] != rendered:
        raise _rewritten(risky[0])
    ids: list[int] = []
    for part, i in zip(markup, order):
        ids += encode_markup(part) + encode_text(msgs[i]["content"])
    ids += encode_markup(markup[-1])
    if control_count(ids, control_ids) != expected:
        raise _rewritten(risky[0])
    return ids


def control_count(ids: Sequence[int], control_ids: Collection[int]) -> int:
    """How many of ``ids`` are control tokens."""
    return sum(int(t) in control_ids for t in ids)


def _rewritten(index: int) -> ConfigError:
    return ConfigError(
        f"messages[{index}].content",
        "holds text that this model reads as a control token (e.g. <|im_end|>), and its "
        "chat template changes message text, so the text cannot be kept as plain text: "
        "remove the control-token text from the message.")


def hf_encode_markup(tokenizer: Any, text: str) -> list[int]:
    """Ids of template markup: control-token strings become their ids."""
    return list(tokenizer.encode(text, add_special_tokens=False))


def hf_control_ids(tokenizer: Any) -> frozenset[int]:
    """Ids of the tokenizer's special added tokens (``<|im_start|>``, ``<file_sep>``...):
    the ones a control-token string in text would be read as."""
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    return frozenset(int(i) for i, tok in added.items() if getattr(tok, "special", False))


def hf_text_tokenizer(tokenizer: Any) -> Any:
    """A copy of ``tokenizer`` that always encodes control-token strings as text (for
    ``hf_encode_text``). Two objects, each in one mode, because the mode is a setting of
    the Rust tokenizer that transformers flips per call and then encodes with the GIL
    released: one object flipped per call would race between threads (a user's
    ``<|im_end|>`` read as a control token)."""
    text = copy.deepcopy(tokenizer)
    text.split_special_tokens = True
    return text


def hf_encode_text(text_tokenizer: Any, text: str) -> list[int]:
    """Ids of text with ``hf_text_tokenizer``'s copy: a control-token string in it stays
    text (ordinary tokens)."""
    return list(text_tokenizer.encode(text, add_special_tokens=False))


def hf_render_prompt(tokenizer: Any, text_tokenizer: Any, messages: Sequence[Mapping[str, str]],
                     *, use_template: bool) -> list[int]:
    """Prompt ids with a Hugging Face tokenizer: its chat template when ``use_template``
    (message content encoded as text by ``text_tokenizer``: ``encode_conversation``),
    else the plain transcript (with a BOS first for base models trained with one)."""
    if use_template:
        from jinja2 import TemplateError

        def render(msgs: list[dict[str, str]]) -> str:
            try:
                return tokenizer.apply_chat_template(msgs, add_generation_prompt=True,
                                                     tokenize=False)
            except TemplateError as exc:  # e.g. "roles must alternate user/assistant"
                raise ConfigError("messages", f"the model's chat template rejects this "
                                              f"conversation: {exc}") from None

        return encode_conversation(messages, render,
                                   functools.partial(hf_encode_markup, tokenizer),
                                   functools.partial(hf_encode_text, text_tokenizer),
                                   hf_control_ids(tokenizer))
    return hf_bos_ids(tokenizer) + hf_encode_text(text_tokenizer, plain_transcript(messages))


def hf_bos_ids(tokenizer: Any) -> list[int]:
    """``[bos]`` when the tokenizer puts a BOS before plain text by default (base models
    trained with one expect it), else ``[]``."""
    bos = tokenizer.bos_token_id
    with_special = tokenizer.encode("x", add_special_tokens=True)
    return [bos] if bos is not None and with_special and with_special[0] == bos else []
