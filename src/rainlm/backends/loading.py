"""``load_backend``: turn what a user typed (nothing, a folder, a .gguf, a hub id) into a Backend.

Resolution order for ``model``:

* ``None``, ``"embedded"``, ``"smollm2"``: the embedded SmolLM2-135M-Instruct;
* an object that already is a Backend: returned unchanged;
* ``"llamacpp:"`` or ``"llamacpp:PATH.gguf"``: llama.cpp in process (the embedded GGUF when
  no path is given; needs the ``llamacpp`` extra);
* ``"openai:BASE_URL"`` or ``"openai:BASE_URL#MODEL"``: an OpenAI-compatible engine (vLLM,
  SGLang, a llama.cpp server) over HTTP; ``MODEL`` is the served model name (default: the
  first one the engine lists);
* ``"KIND:SPEC"`` with another kind: an error naming the kinds that exist;
* an existing folder: ``TransformersBackend.from_pretrained(folder)``;
* an existing ``.gguf`` file: loaded through transformers' ``gguf_file``;
* something that looks like a path but does not exist: ModelNotFoundError;
* anything else: a Hugging Face hub id, taken ONLY from the local cache (never downloaded).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rainlm.backends.base import Backend
from rainlm.errors import CapabilityError, ConfigError, ModelNotFoundError

__all__ = ["load_backend", "EMBEDDED_ALIASES", "AVAILABLE_KINDS", "looks_like_path", "split_kind"]

EMBEDDED_ALIASES = frozenset({"embedded", "smollm2", "default"})
AVAILABLE_KINDS = ("transformers", "llamacpp", "openai")
_KIND_ALIASES = {"llama-cpp": "llamacpp", "llama_cpp": "llamacpp", "vllm": "openai",
                 "sglang": "openai"}


def split_kind(spec: str) -> tuple[str, str]:
    """``"llamacpp:model.gguf"`` -> ("llamacpp", "model.gguf"); plain specs -> ("", spec).

    Windows drive letters (``C:\\...``) are not kinds.
    """
    head, sep, rest = spec.partition(":")
    if sep and len(head) > 1 and head.replace("-", "").replace("_", "").isalnum():
        return head.lower(), rest
    return "", spec


def looks_like_path(spec: str) -> bool:
    """Paths start like one, end in .gguf, or have more slashes than an ``org/name`` id."""
    return (spec.startswith(("/", "./", "../", "~", ".\\")) or spec.endswith(".gguf")
            or spec.rstrip("/").count("/") > 1)


def _is_embedded_gguf(path: Path) -> bool:
    from rainlm.backends.embedded import embedded_model_path

    try:
        return path.resolve() == embedded_model_path().resolve()
    except ModelNotFoundError:
        return False


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

        return load_embedded_backend(device=device,
                                     dtype="float32" if dtype == "auto" else dtype, **kw)
    if spec.startswith(("http://", "https://")):
        kind = "openai"
    else:
        kind, spec = split_kind(spec)
        kind = _KIND_ALIASES.get(kind, kind)
    if kind == "llamacpp":
        return _load_llamacpp(spec, **kw)
    if kind == "openai":
        return _load_openai(spec, **kw)
    if kind and kind != "transformers":
        raise CapabilityError(
            f"Unknown backend kind {kind!r}. Available: {', '.join(AVAILABLE_KINDS)} "
            f"('llamacpp:[FILE.gguf]', 'openai:BASE_URL[#MODEL]', or a local model folder, a "
            f".gguf file, a hub id already in the local cache, or 'embedded').")
    return _load_transformers(spec, device=device, dtype=dtype, **kw)


def _load_llamacpp(spec: str, **kw) -> Backend:
    """llama.cpp in process over ``spec`` (a .gguf path; empty: the embedded GGUF)."""
    from rainlm.backends.llamacpp import LlamaCppBackend

    path = spec.strip() or None
    if path is not None and not Path(path).expanduser().is_file():
        raise ModelNotFoundError(f"No GGUF file at {path!r} (llamacpp backend).")
    return LlamaCppBackend(path, **kw)


def _load_openai(spec: str, **kw) -> Backend:
    """An OpenAI-compatible engine at ``BASE_URL[#MODEL]``."""
    from rainlm.backends.openai_compat import OpenAICompatibleBackend

    url, _, served = spec.strip().partition("#")
    if not url.startswith(("http://", "https://")):
        raise ConfigError("base_url", f"must be an http(s) URL such as "
                                      f"http://127.0.0.1:8000/v1, got {url!r}")
    if served:
        kw.setdefault("model", served)
    return OpenAICompatibleBackend(url, **kw)


def _load_transformers(spec: str, *, device: str, dtype: str, **kw) -> Backend:
    """A local folder, a .gguf file or a cached hub id through transformers."""
    path = Path(spec).expanduser()
    if path.is_file() and _is_embedded_gguf(path):  # the converted copy: 0.2 s, not ~18 s
        return load_backend(None, device=device, dtype=dtype, **kw)
    if path.is_file() and path.suffix.lower() != ".gguf":
        raise ModelNotFoundError(
            f"{spec!r} is a file but not a .gguf model: pass a model folder "
            f"(with config.json) or a .gguf file.")
    if not path.exists() and looks_like_path(spec):
        raise ModelNotFoundError(f"No model folder or .gguf file at {spec!r}.")
    from rainlm.backends.embedded import require_model_deps

    require_model_deps()
    from rainlm.backends.transformers import TransformersBackend

    if path.is_dir():
        return TransformersBackend.from_pretrained(path, device=device, dtype=dtype, **kw)
    if path.is_file():
        return TransformersBackend.from_pretrained(
            path.parent, gguf_file=path.name, device=device, dtype=dtype, **kw)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    kw.setdefault("local_files_only", True)
    try:
        return TransformersBackend.from_pretrained(spec, device=device, dtype=dtype, **kw)
    except ModelNotFoundError as exc:
        raise ModelNotFoundError(
            f"Model {spec!r} is not in the local Hugging Face cache, and rainlm never "
            f"downloads models. Pass a local model folder or a .gguf file instead "
            f"(or omit the model to use the embedded SmolLM2-135M-Instruct)."
        ) from exc
