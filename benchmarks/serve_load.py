"""Load on ``rain serve``: latency and throughput with 1 and then 4 concurrent clients.

Starts ``rain serve`` on the embedded model (or uses ``--url``), sends N chat requests
from 1 client and then the same N prompts from 4 concurrent clients, each with a fixed
small budget, and prints per phase: latency p50/p95 (client-side seconds), requests/s
and completion tokens/s. Writes the table to benchmarks/results/serve_load.txt.

    nice -n 10 .venv/bin/python benchmarks/serve_load.py [-n 8] [--time-budget 3] [--max-tokens 16]

The server runs one search at a time (the backend is not thread-safe), so 4 clients
mostly add queueing: expect about the same requests/s and ~4x the latency. The second
phase uses another seed (different searches), but the backend's prefix cache keeps the
prompts from the first phase, as a long-running server would.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import REPO, machine, table, vicuna_prompts

sys.path.insert(0, str(REPO))


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by linear interpolation."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    pos = q * (len(xs) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def one_request(url: str, prompt: str, args: argparse.Namespace, seed: int) -> tuple[float, int, int]:
    """(seconds, completion tokens, HTTP status) of one chat completion."""
    import httpx

    body = {"model": "rain", "messages": [{"role": "user", "content": prompt}],
            "max_tokens": args.max_tokens,
            "rain": {"time_budget_s": args.time_budget, "seed": seed,
                     "max_searches_per_step": args.max_searches_per_step}}
    start = time.perf_counter()
    resp = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=600,
                      headers={"Authorization": f"Bearer {args.api_key}"} if args.api_key else {})
    seconds = time.perf_counter() - start
    tokens = resp.json().get("usage", {}).get("completion_tokens", 0) if resp.status_code == 200 else 0
    return seconds, tokens, resp.status_code


def phase(url: str, prompts: list[str], clients: int, args: argparse.Namespace,
          seed: int) -> dict[str, object]:
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        results = list(pool.map(lambda p: one_request(url, p, args, seed), prompts))
    wall = time.perf_counter() - start
    ok = [r for r in results if r[2] == 200]
    latencies = [r[0] for r in ok]
    return {"clients": clients, "requests": len(prompts), "ok": len(ok),
            "p50_s": round(percentile(latencies, 0.5), 2),
            "p95_s": round(percentile(latencies, 0.95), 2),
            "req_per_s": round(len(ok) / wall, 3),
            "completion_tok_per_s": round(sum(r[1] for r in ok) / wall, 2),
            "wall_s": round(wall, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=8, help="requests per phase")
    parser.add_argument("--url", default=None, help="use this running server (http://HOST:PORT)")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--time-budget", type=float, default=3.0, help="seconds per request")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--max-searches-per-step", type=int, default=4)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "serve_load.txt")
    args = parser.parse_args()
    prompts = vicuna_prompts(args.n)

    def run(url: str) -> list[dict[str, object]]:
        return [phase(url, prompts, 1, args, seed=1), phase(url, prompts, 4, args, seed=2)]

    if args.url:
        rows = run(args.url.rstrip("/"))
    else:
        from tests.serve.server import running_server

        with tempfile.TemporaryDirectory() as tmp:
            server_args = ["--db", str(Path(tmp) / "audit.sqlite3"), "--embedder", "hashing",
                           "--device", "cpu", "--policy", "pass", "--queue-size", "16"]
            with running_server(server_args, Path(tmp) / "server.log") as srv:
                rows = run(srv.url)
    header = (f"rain serve load: {args.n} Vicuna prompts per phase, max_tokens "
              f"{args.max_tokens}, time budget {args.time_budget} s, max_searches_per_step "
              f"{args.max_searches_per_step}; server on 1 torch thread (OMP_NUM_THREADS=1)\n"
              f"client machine: {machine()}\n\n")
    text = header + table(list(rows[0]), [list(r.values()) for r in rows]) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
