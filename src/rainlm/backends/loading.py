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
"""

from __future__ import annotations

import os
from typing import Any

from rainlm.backends.base import Backend
from rainlm.backends.registry import (DEFAULT_KIND, URL_KIND, backend_kinds,
                                      find_backend_kind, looks_like_path)
from rainlm.errors import CapabilityError, ConfigError

__all__ = ["load_backend", "EMBEDDED_ALIASES", "looks_like_path", "split_kind"]

EMBEDDED_ALIASES = frozenset({"embedded", "smollm2", "default"})


def split_kind(spec: str) -> tuple[str, str]:
    """``"llamacpp:model.gguf"`` -> ("llamacpp", "model.gguf"); plain specs -> ("", spec).

    Windows drive letters (``C:\\...``) are not kinds.
    """
    head, sep, rest = spec.partition(":")
    if sep and len(head) > 1 and head.replace("-", "").replace("_", "").isalnum():
        return head.lower(), rest
    return "", spec


def load_backend(model: Any = None, *, device: str = "auto", dtype: str = "auto",
                 **kw) -> Backend:
    """Build a Backend from ``model`` (see the module docstring for what it may be).

    ``device``: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ...
    ``dtype``: ``"auto"`` (float32 on CPU, bfloat16 on CUDA; float32 for the embedded
    model), ``"float32"``, ``"bfloat16"`` or ``"float16"``. Other keywords go to the
    backend (``cache_budget_mb``, ``num_threads``, ``name``, ``local_files_only``...).
    """
    if model is not None and not isinstance(model, (str, os.PathLike)):
        if isinstance(model, Backend):
            return model
        raise ConfigError(
            "model", f"cannot build a backend from a {type(model).__name__}: pass a model "
            f"folder, a .gguf file, a hub id in the local cache, 'embedded', or a Backend "
            f"object. For transformers objects use TransformersBackend(model, tokenizer).")
    spec = "" if model is None else os.fspath(model).strip()
    if spec == "" or spec.lower() in EMBEDDED_ALIASES:
        from rainlm.backends.embedded import load_embedded_backend

        return load_embedded_backend(device=device, dtype=dtype, **kw)
    if spec.startswith(("http://", "https://")):
        kind_name = URL_KIND
    else:
        kind_name, spec = split_kind(spec)
    kind = find_backend_kind(kind_name or DEFAULT_KIND)
    if kind is None:
        usages = "; ".join(f"{k.name} ({k.usage})" for k in backend_kinds())
        raise CapabilityError(
            f"Unknown backend kind {kind_name!r}. Available: {usages}; or 'embedded' "
            f"(or no model) for the embedded SmolLM2-135M-Instruct.")
    return kind.load(spec, device=device, dtype=dtype, **kw)
