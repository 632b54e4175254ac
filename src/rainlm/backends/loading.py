"""``load_backend``: turn what a user typed (nothing, a folder, a .gguf, a hub id) into a Backend.

Resolution order for ``model``:

* ``None``, ``"embedded"``, ``"smollm2"``: the embedded SmolLM2-135M-Instruct;
* an object that already is a Backend: returned unchanged;
* ``"http://..."`` or ``"https://..."``: the ``openai`` kind on that URL;
* ``"KIND:SPEC"``: the registered kind ``KIND`` (or one of its aliases) builds the backend
  from ``SPEC`` (``rainlm.backends.registry``: ``llamacpp:[PATH.gguf]``,
  ``openai:BASE_URL[#MODEL]``, ``transformers:SPEC``, ...); an unknown kind is an error
  naming the registered ones;
* anything else goes to the ``transformers`` kind: an existing folder
  (``TransformersBackend.from_pretrained``), an existing ``.gguf`` file (transformers'
  ``gguf_file``), a path that does not exist (ModelNotFoundError), or a Hugging Face hub
  id taken ONLY from the local cache (never downloaded).

``tokenizer=`` (a local tokenizer folder) goes only to a kind that takes one (``openai``:
the engine serves the model by a name); any other kind, and the embedded model, read
their model's own tokenizer and refuse it (ConfigError naming the fix).
"""

from __future__ import annotations

import os
from typing import Any

from rainlm.backends.base import Backend
from rainlm.backends.registry import (DEFAULT_KIND, URL_KIND, BackendKind, backend_kinds,
                                      find_backend_kind, looks_like_path, tokenizer_kind_names)
from rainlm.errors import CapabilityError, ConfigError

__all__ = ["load_backend", "EMBEDDED_ALIASES", "looks_like_path", "refuse_tokenizer", "spec_kind",
           "split_kind", "takes_tokenizer"]

EMBEDDED_ALIASES = frozenset({"embedded", "smollm2", "default"})


def split_kind(spec: str) -> tuple[str, str]:
    """``"llamacpp:model.gguf"`` -> ("llamacpp", "model.gguf"); plain specs -> ("", spec).

    Windows drive letters (``C:\\...``) are not kinds.
    """
    head, sep, rest = spec.partition(":")
    if sep and len(head) > 1 and head.replace("-", "").replace("_", "").isalnum():
        return head.lower(), rest
    return "", spec


def _is_embedded_spec(spec: str) -> bool:
    return spec == "" or spec.lower() in EMBEDDED_ALIASES


def _kind_name_and_rest(spec: str) -> tuple[str, str]:
    """The kind a (non-embedded, stripped) spec names, and what follows ``KIND:``."""
    if spec.startswith(("http://", "https://")):
        return URL_KIND, spec
    kind_name, rest = split_kind(spec)
    return kind_name or DEFAULT_KIND, rest


def spec_kind(model: str | os.PathLike | None) -> BackendKind | None:
    """The registered kind ``load_backend(model)`` builds with; None for the embedded
    model (None, "embedded", ...) and for an unknown kind."""
    spec = "" if model is None else os.fspath(model).strip()
    if _is_embedded_spec(spec):
        return None
    return find_backend_kind(_kind_name_and_rest(spec)[0])


def takes_tokenizer(model: str | os.PathLike | None) -> bool:
    """Whether ``load_backend(model, tokenizer=...)`` accepts a tokenizer folder."""
    kind = spec_kind(model)
    return kind is not None and kind.takes_tokenizer


def refuse_tokenizer(what: str) -> ConfigError:
    """The error for a tokenizer given with ``what`` (a backend that reads its own)."""
    kinds = tokenizer_kind_names() or ("<none registered>",)
    return ConfigError(
        "tokenizer", f"only applies to a model served by an OpenAI-compatible engine "
                     f"(backend {' or '.join(kinds)}: 'openai:BASE_URL#MODEL'); {what} reads "
                     f"its model's own tokenizer. Drop the tokenizer, or serve the model and "
                     f"use --backend {kinds[0]} --base-url URL.")


def load_backend(model: Any = None, *, device: str = "auto", dtype: str = "auto",
                 **kw) -> Backend:
    """Build a Backend from ``model`` (see the module docstring for what it may be).

    ``device``: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ...
    ``dtype``: ``"auto"`` (float32 on CPU, bfloat16 on CUDA; float32 for the embedded
    model), ``"float32"``, ``"bfloat16"`` or ``"float16"``. ``tokenizer``: a local
    tokenizer folder, only for a kind that takes one (``openai``); None: the backend
    finds its own. Other keywords go to the backend (``cache_budget_mb``,
    ``num_threads``, ``name``, ``local_files_only``...).
    """
    tokenizer = kw.pop("tokenizer", None)
    if model is not None and not isinstance(model, (str, os.PathLike)):
        if isinstance(model, Backend):
            if tokenizer is not None:
                raise refuse_tokenizer("a Backend object")
            return model
        raise ConfigError(
            "model", f"cannot build a backend from a {type(model).__name__}: pass a model "
            f"folder, a .gguf file, a hub id in the local cache, 'embedded', or a Backend "
            f"object. For transformers objects use TransformersBackend(model, tokenizer).")
    spec = "" if model is None else os.fspath(model).strip()
    if _is_embedded_spec(spec):
        if tokenizer is not None:
            raise refuse_tokenizer("the embedded model")
        from rainlm.backends.embedded import load_embedded_backend

        return load_embedded_backend(device=device, dtype=dtype, **kw)
    kind_name, spec = _kind_name_and_rest(spec)
    kind = find_backend_kind(kind_name)
    if kind is None:
        usages = "; ".join(f"{k.name} ({k.usage})" for k in backend_kinds())
        raise CapabilityError(
            f"Unknown backend kind {kind_name!r}. Available: {usages}; or 'embedded' "
            f"(or no model) for the embedded SmolLM2-135M-Instruct.")
    if tokenizer is not None:
        if not kind.takes_tokenizer:
            raise refuse_tokenizer(f"the {kind.name} backend")
        kw["tokenizer"] = tokenizer
    return kind.load(spec, device=device, dtype=dtype, **kw)
