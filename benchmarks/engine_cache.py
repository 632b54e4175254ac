"""RAIN over HTTP to llama-cpp-python's server, with and without its RAM prompt cache.

Starts two private servers on 127.0.0.1 (the embedded GGUF, one thread each), one after
the other, and runs the same small RAIN searches against each: seconds per search
iteration, printed and written to ``benchmarks/results/engine_cache.txt``.

    .venv/bin/python benchmarks/engine_cache.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPTS = ["How can I improve my time management skills?", "Name a colour."]
SETTINGS = "harmless preset, max_searches_per_step=6, 6-token answers, self-evaluation judge, hashing embedder, seed 0"


def run(label: str, extra_args: tuple[str, ...]) -> tuple[str, list[str]]:
    import rainlm
    from rainlm.backends.openai_compat import OpenAICompatibleBackend
    from tests.backends.engine import EngineServer

    server = EngineServer(extra_args=extra_args)
    url = server.start()
    lines = []
    try:
        backend = OpenAICompatibleBackend(url)
        config = rainlm.RainConfig.preset("harmless", max_searches_per_step=6)
        seconds = searches = 0.0
        for prompt in PROMPTS:
            r = rainlm.generate(backend, prompt, config, embedder="hashing", seed=0,
                                max_new_tokens=6)
            seconds += r.stats["wall_time_s"]
            searches += r.stats["searches"]
            lines.append(f"  [{label}] {prompt!r} -> {r.text!r}: {r.stats['searches']} "
                         f"searches, {r.stats['wall_time_s']:.1f} s")
        return f"| {label} | {searches:.0f} | {seconds:.1f} | {seconds / searches:.3f} |", lines
    finally:
        server.stop()


def main() -> None:
    out = [f"llama-cpp-python server, {SETTINGS}", "",
           "| server | searches | seconds | s / search iteration |", "| --- | --- | --- | --- |"]
    details: list[str] = []
    for label, extra in (("no cache", ()), ("--cache true", ("--cache", "true"))):
        row, lines = run(label, extra)
        out.append(row)
        details += lines
        print(row, flush=True)
    text = "\n".join(out + ["", *details]) + "\n"
    print(text)
    (ROOT / "benchmarks" / "results" / "engine_cache.txt").write_text(text)


if __name__ == "__main__":
    main()
