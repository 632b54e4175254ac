"""Load on ``rain serve``: latency and throughput with 1, 4 and 8 concurrent clients.

Starts ``rain serve`` on the embedded model (or uses ``--url``), answers the N prompts
once greedily (a warm-up: every phase then finds the prompts in the prefix cache, as a
long-running server would), then sends the same N chat requests from 1 client, then
from 4 and from 8 concurrent clients (``--clients``), each phase with its own seed;
then answers each concurrent phase's requests again from 1 client with the same seed
(untimed) and counts the answers equal to those given under load. Prints per phase: latency p50/p95 (client-side seconds), requests/s, completion
tokens/s, answers the time budget cut, and how many searches' model calls the server's
shared scheduler sent to the model together (``/health`` ``batching``: calls per
dispatch), the groups of several searches' calls it sent one search at a time (merging
measured slower, or a probe), and the answers equal to their solo answers.
Writes the table to benchmarks/results/serve_load.txt.

    .venv/bin/python benchmarks/serve_load.py [-n 8] [--clients 1,4,8] [--time-budget 60]

The server runs up to ``--max-concurrent`` searches at once and batches their model
calls (``core/shared_backend.py``); the time budget is set high enough not to cut answers
(the "cut" column says if it did), so requests/s compares the same work.
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


def one_request(url: str, prompt: str, args: argparse.Namespace, seed: int,
                method: str = "rain") -> tuple[float, int, int, bool, str | None]:
    """(seconds, completion tokens, HTTP status, cut by the time budget, the answer) of
    one chat completion."""
    import httpx

    body = {"model": "rain", "messages": [{"role": "user", "content": prompt}],
            "max_tokens": args.max_tokens,
            "rain": {"time_budget_s": args.time_budget, "seed": seed, "method": method,
                     "max_searches_per_step": args.max_searches_per_step}}
    start = time.perf_counter()
    resp = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=600,
                      headers=_auth(args))
    seconds = time.perf_counter() - start
    if resp.status_code != 200:
        return seconds, 0, resp.status_code, False, None
    data = resp.json()
    stats = (data.get("rain") or {}).get("stats") or {}
    return (seconds, data["usage"]["completion_tokens"], 200, bool(stats.get("budget_exhausted")),
            data["choices"][0]["message"]["content"])


def _auth(args: argparse.Namespace) -> dict[str, str]:
    return {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}


def batching(url: str, args: argparse.Namespace) -> dict[str, object]:
    """The server's batching counters (``/health`` ``batching``)."""
    import httpx

    return httpx.get(f"{url}/health", timeout=30, headers=_auth(args)).json().get("batching", {})


def phase(url: str, prompts: list[str], clients: int, args: argparse.Namespace,
          seed: int) -> tuple[dict[str, object], list[str | None]]:
    """One phase's row, and its answers (None: failed)."""
    before = batching(url, args)
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        results = list(pool.map(lambda p: one_request(url, p, args, seed), prompts))
    wall = time.perf_counter() - start
    after = batching(url, args)
    dispatches = after.get("dispatches", 0) - before.get("dispatches", 0)
    split = (after.get("merge") or {}).get("split_groups", 0) - (before.get("merge") or {}).get(
        "split_groups", 0)
    ok = [r for r in results if r[2] == 200]
    latencies = [r[0] for r in ok]
    return {"clients": clients, "requests": len(prompts), "ok": len(ok),
            "cut": sum(r[3] for r in ok),
            "p50_s": round(percentile(latencies, 0.5), 2),
            "p95_s": round(percentile(latencies, 0.95), 2),
            "req_per_s": round(len(ok) / wall, 3),
            "completion_tok_per_s": round(sum(r[1] for r in ok) / wall, 2),
            "calls_per_dispatch": round((after.get("calls", 0) - before.get("calls", 0))
                                        / max(dispatches, 1), 2),
            "contexts_per_dispatch": round((after.get("contexts", 0) - before.get("contexts", 0))
                                           / max(dispatches, 1), 2),
            "groups sent one search at a time": split,
            "wall_s": round(wall, 1)}, [r[4] for r in results]


def ratios(rows: list[dict[str, object]]) -> str:
    """Each phase's requests/s and p95 latency as multiples of the 1-client phase's."""
    base = rows[0]
    if not base["ok"]:
        return "no ratios: the first phase had no successful answers"
    lines = [f"{r['clients']} clients: requests/s x{float(r['req_per_s']) / float(base['req_per_s']):.2f}, "
             f"p95 latency x{float(r['p95_s']) / float(base['p95_s']):.2f}" for r in rows[1:]]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=8, help="requests per phase")
    parser.add_argument("--url", default=None, help="use this running server (http://HOST:PORT)")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--clients", default="1,4,8",
                        help="concurrent clients of each phase, comma-separated (the first "
                             "is the baseline of the ratios)")
    parser.add_argument("--threads", type=int, default=1,
                        help="the started server's torch threads (OMP_NUM_THREADS)")
    parser.add_argument("--max-concurrent", type=int, default=8,
                        help="the started server's --max-concurrent")
    parser.add_argument("--cache-mb", type=float, default=None,
                        help="the started server's --cache-mb (default: the backend's own)")
    parser.add_argument("--time-budget", type=float, default=60.0,
                        help="seconds per request (high: the budget should not cut answers)")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--max-searches-per-step", type=int, default=4)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "serve_load.txt")
    args = parser.parse_args()
    prompts = vicuna_prompts(args.n)

    clients = [int(c) for c in args.clients.split(",")]

    def run(url: str) -> tuple[list[dict[str, object]], object]:
        for p in prompts:  # warm-up: the prompts (and the fail-safe's judge) in the cache
            one_request(url, p, args, seed=0, method="greedy")
        rows = []
        for i, c in enumerate(clients):
            row, answers = phase(url, prompts, c, args, seed=1 + i)
            if c > 1:  # the same requests alone (untimed): equal answers under load?
                alone = [one_request(url, p, args, seed=1 + i)[4] for p in prompts]
                row["equal to solo"] = (f"{sum(a is not None and a == b for a, b in zip(answers, alone))}"
                                        f"/{len(prompts)}")
            else:
                row["equal to solo"] = "-"
            rows.append(row)
        return rows, batching(url, args).get("merge")

    if args.url:
        rows, merge = run(args.url.rstrip("/"))
    else:
        from tests.serve.server import running_server

        with tempfile.TemporaryDirectory() as tmp:
            server_args = ["--db", str(Path(tmp) / "audit.sqlite3"), "--embedder", "hashing",
                           "--device", "cpu", "--policy", "pass", "--queue-size", "16",
                           "--max-concurrent", str(args.max_concurrent)]
            if args.cache_mb is not None:
                server_args += ["--cache-mb", f"{args.cache_mb:g}"]
            with running_server(server_args, Path(tmp) / "server.log",
                                env={"OMP_NUM_THREADS": str(args.threads)}) as srv:
                rows, merge = run(srv.url)
    header = (f"rain serve load: {args.n} Vicuna prompts per phase, max_tokens "
              f"{args.max_tokens}, time budget {args.time_budget} s, max_searches_per_step "
              f"{args.max_searches_per_step}; server on {args.threads} torch thread(s) "
              f"(OMP_NUM_THREADS={args.threads}), "
              f"--max-concurrent {args.max_concurrent}, --cache-mb "
              f"{'default' if args.cache_mb is None else f'{args.cache_mb:g}'}\n"
              f"client machine: {machine()}\n\n")
    text = (header + table(list(rows[0]), [list(r.values()) for r in rows]) + "\n\n"
            + ratios(rows) + f"\nthe scheduler's merge choice at the end (/health): {merge}\n")
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
