"""The backend kinds ``load_backend`` and ``rain --backend`` know: one entry per engine.

Adding a backend is one new module (the Backend class) plus one ``BackendKind`` entry in
``_BUILT_IN`` below, whose loader imports that module inside the function. The CLI's
``--backend`` choices, help text and ``--base-url`` rules are derived from this table.
Tests (or plugins) may add a kind at run time with ``register_backend_kind`` and take it
away with ``unregister_backend_kind``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rainlm.backends.base import Backend
from rainlm.errors import ConfigError, ModelNotFoundError

__all__ = ["BackendKind", "DEFAULT_KIND", "URL_KIND", "backend_kinds", "backend_kind_names",
           "find_backend_kind", "register_backend_kind", "unregister_backend_kind",
           "looks_like_path", "tokenizer_kind_names"]

Loader = Callable[..., Backend]
"""``loader(spec, *, device, dtype, **kw)``: ``spec`` is what follows ``KIND:``; ``device``
and ``dtype`` are ``load_backend``'s (a loader may ignore them); ``kw`` goes to the backend."""


@dataclass(frozen=True)
class BackendKind:
    """One engine ``load_backend("KIND:SPEC")`` and ``rain ... --backend KIND`` can use."""

    name: str
    """The kind as typed before the colon and after ``--backend`` (lower case)."""
    help: str
    """One line for ``--backend``'s help: how it runs and what it needs."""
    usage: str
    """How ``load_backend`` is given this kind, shown in the unknown-kind error."""
    load: Loader
    """Builds the backend from the spec (imports the backend module inside the function)."""
    aliases: tuple[str, ...] = ()
    """Other names accepted before the colon (``"vllm:URL"``), not on the command line."""
    takes_base_url: bool = False
    """The spec is ``BASE_URL[#MODEL]``: the CLI requires ``--base-url`` for this kind and
    puts ``--model`` after the ``#``; other kinds reject ``--base-url``."""
    takes_tokenizer: bool = False
    """The loader takes ``tokenizer=`` (a local tokenizer folder, CLI ``--tokenizer``):
    the engine serves the model by a name that need not be a local folder. Other kinds
    read their model's own tokenizer and reject it."""


# ------------------------------------------------------------------ built-in loaders
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


def _load_transformers(spec: str, *, device: str, dtype: str, **kw) -> Backend:
    """A local folder, a .gguf file or a cached hub id through transformers."""
    path = Path(spec).expanduser()
    if path.is_file() and _is_embedded_gguf(path):  # the converted copy: 0.2 s, not ~18 s
        from rainlm.backends.embedded import load_embedded_backend

        return load_embedded_backend(device=device, dtype=dtype, **kw)
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


def _load_llamacpp(spec: str, *, device: str, dtype: str, **kw) -> Backend:
    """llama.cpp in process over ``spec`` (a .gguf path; empty: the embedded GGUF)."""
    from rainlm.backends.llamacpp import LlamaCppBackend

    path = spec.strip() or None
    if path is not None and not Path(path).expanduser().is_file():
        raise ModelNotFoundError(f"No GGUF file at {path!r} (llamacpp backend).")
    return LlamaCppBackend(path, **kw)


def _load_openai(spec: str, *, device: str, dtype: str, **kw) -> Backend:
    """An OpenAI-compatible engine at ``BASE_URL[#MODEL]``."""
    from rainlm.backends.openai_compat import OpenAICompatibleBackend

    url, _, served = spec.strip().partition("#")
    if not url.startswith(("http://", "https://")):
        raise ConfigError("base_url", f"must be an http(s) URL such as "
                                      f"http://127.0.0.1:8000/v1, got {url!r}")
    if served:
        kw.setdefault("model", served)
    return OpenAICompatibleBackend(url, **kw)


# ------------------------------------------------------------------ the table
DEFAULT_KIND = "transformers"
"""The kind of a spec with no ``KIND:`` prefix (and of ``--backend``'s default); the CLI
passes ``--model`` to it unprefixed."""
URL_KIND = "openai"
"""The kind a bare ``http://`` or ``https://`` spec goes to."""

_BUILT_IN = (
    BackendKind(
        name="transformers", load=_load_transformers,
        help="in process, PyTorch",
        usage="a local model folder, a .gguf file or a hub id already in the local cache, "
              "optionally as 'transformers:SPEC'"),
    BackendKind(
        name="llamacpp", load=_load_llamacpp, aliases=("llama-cpp", "llama_cpp"),
        help="in process, llama.cpp on a GGUF: --model FILE.gguf, default the embedded GGUF; "
             "needs `pip install 'rainlm[llamacpp]'`",
        usage="'llamacpp:[FILE.gguf]'"),
    BackendKind(
        name="openai", load=_load_openai, aliases=("vllm", "sglang"), takes_base_url=True,
        takes_tokenizer=True,
        help="an OpenAI-compatible server such as vLLM, SGLang or llama.cpp's, at --base-url; "
             "--model names the served model, --tokenizer its local tokenizer folder; API "
             "key from $RAINLM_ENGINE_API_KEY",
        usage="'openai:BASE_URL[#MODEL]' or a bare http(s) URL"),
)
_KINDS: dict[str, BackendKind] = {k.name: k for k in _BUILT_IN}


def backend_kinds() -> tuple[BackendKind, ...]:
    """Every registered kind, built-in ones first, in registration order."""
    return tuple(_KINDS.values())


def backend_kind_names() -> tuple[str, ...]:
    """The kinds' names (what ``--backend`` accepts)."""
    return tuple(_KINDS)


def tokenizer_kind_names() -> tuple[str, ...]:
    """The kinds that take ``tokenizer=`` (``--tokenizer``)."""
    return tuple(k.name for k in _KINDS.values() if k.takes_tokenizer)


def find_backend_kind(name: str) -> BackendKind | None:
    """The kind called ``name`` or with ``name`` among its aliases (case-insensitive);
    None when there is none."""
    key = name.lower()
    if key in _KINDS:
        return _KINDS[key]
    return next((k for k in _KINDS.values() if key in k.aliases), None)


def register_backend_kind(kind: BackendKind) -> None:
    """Add ``kind``; ConfigError when its name or an alias is already taken."""
    if not isinstance(kind, BackendKind):
        raise ConfigError("kind", f"must be a BackendKind, got {type(kind).__name__}")
    for name in (kind.name, *kind.aliases):
        if name != name.lower() or not name.replace("-", "").replace("_", "").isalnum() \
                or len(name) < 2:
            raise ConfigError("kind.name", f"must be 2+ lower-case letters, digits, '-' or "
                                           f"'_' (what goes before the colon), got {name!r}")
        if find_backend_kind(name) is not None:
            raise ConfigError("kind.name", f"{name!r} is already a backend kind or alias; "
                                           f"pick another name or unregister it first")
    _KINDS[kind.name] = kind


def unregister_backend_kind(name: str) -> None:
    """Remove the kind called ``name``; ConfigError when there is none."""
    if name not in _KINDS:
        raise ConfigError("name", f"no backend kind {name!r}; registered: "
                                  f"{', '.join(_KINDS)}")
    del _KINDS[name]
