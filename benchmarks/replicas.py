"""Replicas: one vs two ``rain serve`` replicas in front of the same engine, sharing one
PostgreSQL audit store; then one replica killed with SIGKILL in the middle of a run.

One run, one local cluster (``rainlm.cluster.local.LocalCluster``: PostgreSQL in a
temporary folder, the llama.cpp server on the embedded model, two replicas started with
``--backend openai``, a round-robin front):

1. **Load**: the same N chat requests (Vicuna prompts, RAIN, same seeds) from 1, 4 and 8
   concurrent clients (``--clients``), sent to replica 1 alone, then through the front to
   both replicas. Requests/s and latency p50/p95 (client-side), and the ratios
   two replicas ÷ one.
2. **A killed replica**: ``--kill-requests`` requests from ``--kill-clients`` clients
   through the front; once ``--kill-after`` answers are back, replica 2 is killed with
   SIGKILL. Counted: requests answered, requests that failed and how (a connection error
   is what a client of a dead replica should see), and the store's records — complete,
   unfinished ("started", the killed replica's requests in flight), missing (an answered
   request without a complete record, or a failed request whose first streamed chunk —
   sent once its record exists — named a trace id without an unfinished record: must be
   0). The kill waits until replica 2 is running a search. The survivor must keep
   answering. Then replica
   2 is restarted (same host:port: the same owner), marks its unfinished records
   "interrupted", and the review queue's counts are read from both replicas.

    .venv/bin/python benchmarks/replicas.py [-n 8] [--clients 1,4,8] [--max-tokens 8]

Writes benchmarks/results/replicas.json (every request) and replicas.txt (the tables).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import REPO, machine, table, vicuna_prompts

sys.path.insert(0, str(REPO))

from serve_load import percentile  # noqa: E402

UNFINISHED = ("started", "interrupted")


def one_request(url: str, prompt: str, args: argparse.Namespace, seed: int) -> dict:
    """One chat completion: seconds, status ("ok", "http NNN" or "connection error: ..."),
    the trace id of an answer, and whether the budget cut it."""
    import httpx

    body = {"model": "rain", "messages": [{"role": "user", "content": prompt}],
            "max_tokens": args.max_tokens,
            "rain": {"time_budget_s": args.time_budget, "seed": seed,
                     "max_searches_per_step": args.max_searches_per_step}}
    start = time.perf_counter()
    try:
        # a new connection per request: the front balances connections, as kube-proxy does
        resp = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=600)
    except httpx.TransportError as exc:
        return {"seconds": time.perf_counter() - start, "status": f"connection error: "
                f"{type(exc).__name__}", "id": None, "cut": False}
    seconds = time.perf_counter() - start
    if resp.status_code != 200:
        return {"seconds": seconds, "status": f"http {resp.status_code}", "id": None,
                "cut": False}
    data = resp.json()
    stats = (data.get("rain") or {}).get("stats") or {}
    return {"seconds": seconds, "status": "ok", "id": data["id"],
            "cut": bool(stats.get("budget_exhausted"))}


def streamed_request(url: str, prompt: str, args: argparse.Namespace, seed: int) -> dict:
    """One streamed chat completion: its trace id is in the first chunk, which the server
    sends only once the request's record exists; so a request that fails after it has a
    known id, and one that fails before it never got a byte back."""
    import httpx

    body = {"model": "rain", "messages": [{"role": "user", "content": prompt}],
            "max_tokens": args.max_tokens, "stream": True,
            "rain": {"time_budget_s": args.time_budget, "seed": seed,
                     "max_searches_per_step": args.max_searches_per_step}}
    start, trace_id, finished = time.perf_counter(), None, False
    try:
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=body,
                          timeout=600) as resp:
            if resp.status_code != 200:
                return {"seconds": time.perf_counter() - start, "status":
                        f"http {resp.status_code}", "id": None, "cut": False}
            for line in resp.iter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    trace_id = trace_id or json.loads(line[len("data: "):])["id"]
                finished = finished or line == "data: [DONE]"
    except httpx.TransportError as exc:
        return {"seconds": time.perf_counter() - start, "status": f"connection error: "
                f"{type(exc).__name__}", "id": trace_id, "cut": False}
    return {"seconds": time.perf_counter() - start,
            "status": "ok" if finished else "cut stream", "id": trace_id, "cut": False}


def phase(url: str, prompts: list[str], clients: int, args: argparse.Namespace,
          seed: int, replicas: int) -> dict:
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        results = list(pool.map(lambda p: one_request(url, p, args, seed), prompts))
    wall = time.perf_counter() - start
    ok = [r for r in results if r["status"] == "ok"]
    latencies = [r["seconds"] for r in ok]
    return {"replicas": replicas, "clients": clients, "requests": len(prompts),
            "ok": len(ok), "cut": sum(r["cut"] for r in ok),
            "p50_s": round(percentile(latencies, 0.5), 2),
            "p95_s": round(percentile(latencies, 0.95), 2),
            "req_per_s": round(len(ok) / wall, 3), "wall_s": round(wall, 1),
            "results": results}


def kill_run(cluster, prompts: list[str], args: argparse.Namespace) -> dict:
    """Requests through the front; replica 2 SIGKILLed once ``kill_after`` answers are in."""
    done = threading.Semaphore(0)
    killed: dict = {}

    def killer() -> None:
        import httpx

        for _ in range(args.kill_after):
            done.acquire()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # kill it while it runs a search
            health = httpx.get(f"{cluster.replica_urls[1]}/health", timeout=10).json()
            if health.get("running", 0) >= 1:
                killed["running"], killed["queued"] = health["running"], health["queue_depth"]
                break
            time.sleep(0.05)
        killed["at_s"] = time.perf_counter() - start
        killed["pid"] = cluster.kill_replica(1)

    def request(i: int) -> dict:
        out = streamed_request(cluster.front_url, prompts[i % len(prompts)], args, seed=100 + i)
        out["finished_s"] = time.perf_counter() - start
        done.release()
        return out

    start = time.perf_counter()
    watcher = threading.Thread(target=killer, daemon=True)
    watcher.start()
    with ThreadPoolExecutor(max_workers=args.kill_clients) as pool:
        results = list(pool.map(request, range(args.kill_requests)))
    watcher.join(timeout=5)
    after = [one_request(cluster.front_url, prompts[i % len(prompts)], args, seed=200 + i)
             for i in range(args.after_requests)]
    return {"results": results, "after_kill": after, "killed": killed}


def store_census(store_url: str, results: list[dict], killed_owner: str) -> dict:
    """The store seen after the kill: complete, unfinished and missing records."""
    from rainlm.trace.store import TraceStore

    with TraceStore(store_url) as store:
        records, page = [], None
        while page is None or len(page) == 500:
            page = store.list(limit=500, offset=len(records))
            records += page
        owners = dict(store._db.execute("SELECT id, owner FROM traces").fetchall())
    by_id = {r.id: r for r in records}
    answered = [r["id"] for r in results if r["status"] == "ok"]
    failed = [r for r in results if r["status"] != "ok"]
    failed_with_id = [r["id"] for r in failed if r["id"]]
    unfinished = [r.id for r in records if r.finish_reason in UNFINISHED]
    unfinished_killed = [i for i in unfinished if owners.get(i) == killed_owner]
    missing_answered = [i for i in answered
                        if i not in by_id or by_id[i].finish_reason in UNFINISHED]
    return {"records": len(records),
            "complete": len(records) - len(unfinished),
            "unfinished": len(unfinished),
            "started": sum(r.finish_reason == "started" for r in records),
            "interrupted": sum(r.finish_reason == "interrupted" for r in records),
            "unfinished_on_killed_replica": len(unfinished_killed),
            "answered_without_complete_record": len(missing_answered),
            "failed_requests": len(failed),
            # failed after the first chunk: the record existed; each must be found unfinished
            "failed_after_first_chunk": len(failed_with_id),
            "failed_after_first_chunk_without_unfinished_record": sum(
                1 for i in failed_with_id if i not in by_id
                or by_id[i].finish_reason not in UNFINISHED),
            # failed before any byte came back: accepted (then it has a "started" record)
            # or never read by the killed replica (then it needs none)
            "failed_before_first_chunk": len(failed) - len(failed_with_id)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=8, help="requests per load phase")
    parser.add_argument("--clients", default="1,4,8")
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--time-budget", type=float, default=120.0,
                        help="seconds per request (high: the budget should not cut answers)")
    parser.add_argument("--max-searches-per-step", type=int, default=2)
    parser.add_argument("--kill-requests", type=int, default=16)
    parser.add_argument("--kill-clients", type=int, default=4)
    parser.add_argument("--kill-after", type=int, default=4,
                        help="answers back before replica 2 is killed")
    parser.add_argument("--after-requests", type=int, default=4,
                        help="requests sent once the kill run is over (the survivor)")
    parser.add_argument("--engine-url", default=None,
                        help="an engine already running (default: start the llama.cpp server)")
    parser.add_argument("--skip-load", action="store_true", help="only the kill run")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "replicas")
    args = parser.parse_args()
    from rainlm.cluster.local import LocalCluster
    from rainlm.trace import postgres_db, store  # noqa: F401 - imported now, as they are now

    prompts = vicuna_prompts(args.n)
    clients = [int(c) for c in args.clients.split(",")]
    serve_args = ["--embedder", "hashing", "--device", "cpu", "--policy", "flag",
                  "--threshold", "1.0", "--queue-size", "32", "--max-concurrent", "8"]
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp, LocalCluster(
            replicas=2, engine_url=args.engine_url, serve_args=serve_args,
            log_dir=Path(tmp)) as cluster:
        for url in cluster.replica_urls:  # warm-up: both replicas, the engine's cache
            one_request(url, prompts[0], args, seed=0)
        if not args.skip_load:
            for i, c in enumerate(clients):
                rows.append(phase(cluster.replica_urls[0], prompts, c, args, 1 + i, 1))
                rows.append(phase(cluster.front_url, prompts, c, args, 1 + i, 2))
                partial = args.out.with_suffix(".partial.json")  # kept if a later step fails
                partial.parent.mkdir(parents=True, exist_ok=True)
                partial.write_text(json.dumps({"load": rows}, indent=1))
        owner = cluster.owners[1]
        kill = kill_run(cluster, prompts, args)
        census = store_census(cluster.store_url, kill["results"], owner)
        cluster.restart_replica(1)
        import httpx

        counts = [httpx.get(f"{url}/v1/rain/review-queue", timeout=30).json()
                  for url in cluster.replica_urls]
        with_restart = store_census(cluster.store_url, kill["results"], owner)
    statuses: dict[str, int] = {}
    for r in kill["results"]:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    load_table = table(["replicas", "clients", "requests", "ok", "cut", "p50_s", "p95_s",
                        "req_per_s", "wall_s"],
                       [[r[k] for k in ("replicas", "clients", "requests", "ok", "cut", "p50_s",
                                        "p95_s", "req_per_s", "wall_s")] for r in rows])
    ratio_lines = []
    for c in clients:
        one = next((r for r in rows if r["replicas"] == 1 and r["clients"] == c), None)
        two = next((r for r in rows if r["replicas"] == 2 and r["clients"] == c), None)
        if one and two and one["req_per_s"] and one["p95_s"]:
            ratio_lines.append(f"{c} clients: requests/s 2 replicas ÷ 1 = "
                               f"x{two['req_per_s'] / one['req_per_s']:.2f}, p95 "
                               f"x{two['p95_s'] / one['p95_s']:.2f}")
    after_ok = sum(r["status"] == "ok" for r in kill["after_kill"])
    text = (f"replicas: {args.n} Vicuna prompts per load phase, RAIN, max_tokens "
            f"{args.max_tokens}, time budget {args.time_budget} s, max_searches_per_step "
            f"{args.max_searches_per_step}; one llama.cpp server, replicas with --backend "
            f"openai, one PostgreSQL store\nmachine: {machine()}\n\n"
            + (load_table + "\n\n" + "\n".join(ratio_lines) + "\n\n" if rows else "")
            + f"kill run: {args.kill_requests} requests from {args.kill_clients} clients "
              f"through the front; replica 2 SIGKILLed at {kill['killed'].get('at_s', 0):.1f} s "
              f"(after {args.kill_after} answers, while it ran {kill['killed'].get('running')} "
              f"search(es) with {kill['killed'].get('queued')} queued)\n"
            + f"client outcomes: {json.dumps(statuses)}\n"
            + f"survivor afterwards: {after_ok}/{args.after_requests} answered\n"
            + f"store after the kill: {json.dumps(census)}\n"
            + f"store after replica 2 restarted: {json.dumps(with_restart)}\n"
            + f"review queue counts from replica 1 and replica 2: {json.dumps(counts)}\n")
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".txt").write_text(text)
    args.out.with_suffix(".partial.json").unlink(missing_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(
        {"args": {k: str(v) for k, v in vars(args).items()}, "load": rows, "kill": kill,
         "census": census, "census_after_restart": with_restart, "review_counts": counts},
        indent=1))


if __name__ == "__main__":
    main()
