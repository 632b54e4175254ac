"""Shared pieces of the benchmark scripts: prompts from the shipped data sets, a token-counting
backend proxy, and table printing. Benchmarks print ratios measured in one run."""

from __future__ import annotations

import csv
import json
import os
import platform
import resource
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RAINLM_DATA", REPO / "src" / "rainlm" / "data"))


def vicuna_prompts(n: int) -> list[str]:
    """The first n Vicuna benchmark questions (harmless, single turn)."""
    lines = (DATA / "fastchat" / "vicuna_bench_questions.jsonl").read_text().splitlines()
    return [json.loads(line)["turns"][0] for line in lines[:n]]


def advbench_prompts(n: int) -> list[str]:
    """The first n AdvBench harmful behaviours (goal column)."""
    with open(DATA / "advbench" / "harmful_behaviors.csv", newline="") as f:
        return [row["goal"] for _, row in zip(range(n), csv.DictReader(f))]


class DistinctTokenCounter:
    """Counts distinct token prefixes over every context a backend is asked about.

    The minimum work for a set of contexts is encoding each distinct prefix position
    once (a trie of all contexts); a backend that re-encodes nothing reaches it.
    """

    def __init__(self, backend):
        self.backend = backend
        self._trie: dict[tuple[int, int], int] = {}  # (parent node, token) -> node

    def __getattr__(self, name):
        return getattr(self.backend, name)

    @property
    def distinct_tokens(self) -> int:
        return len(self._trie)

    def reset(self) -> None:
        self._trie.clear()

    def next_logprobs(self, contexts: Sequence[Sequence[int]], *, top_k=None):
        for ctx in contexts:
            node = 0
            for tok in ctx:
                key = (node, int(tok))
                nxt = self._trie.get(key)
                if nxt is None:
                    nxt = self._trie[key] = len(self._trie) + 1
                node = nxt
        return self.backend.next_logprobs(contexts, top_k=top_k)


def encoded_tokens(backend_stats: Mapping[str, int]) -> int:
    return int(backend_stats.get("prefill_tokens", 0)) + int(backend_stats.get("decode_tokens", 0))


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MiB (Linux ru_maxrss is KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_model() -> str:
    """The CPU's model name and its widest vector extensions (AMX, AVX-512, AVX2), read
    from /proc/cpuinfo (the machine name elsewhere): results differ between them."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                 if line.startswith("model name")), platform.machine())
    flags = next((set(line.split(":", 1)[1].split()) for line in info.splitlines()
                  if line.startswith("flags")), set())
    isa = [n for n, f in (("AMX", "amx_tile"), ("AVX-512", "avx512f"), ("AVX2", "avx2"))
           if f in flags]
    return f"{name} ({', '.join(isa) or 'no AVX2'})"


def machine() -> str:
    import torch

    return (f"{cpu_model()}, {os.cpu_count()} CPUs, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads), Python {platform.python_version()}")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table."""
    fmt = [" | ".join(str(h) for h in headers), " | ".join("---" for _ in headers)]
    for r in rows:
        fmt.append(" | ".join(f"{c:.3g}" if isinstance(c, float) else str(c) for c in r))
    return "\n".join("| " + line + " |" for line in fmt)
