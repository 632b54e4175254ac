"""Time-budget bound of ``rain serve``: does a request with any allowed settings and
``rain.time_budget_s: T`` answer within T + 2 s plus one forward pass? (issue 13)

Starts ``rain serve`` on the embedded model with the server's DEFAULT limits (or uses
``--url``), then for each budget T sends each case once, one request at a time (no
queueing), and measures the client-side wall seconds to the complete answer (a streamed
case: to the last event). The cases (``CASES`` below) set the most expensive values the
default limits still accept: the largest candidate counts, token sets, search counts and
answer length, a ~1.8k-character prompt, the model's self-evaluation as judge (the
server's preset's rubric: a request may not choose another by default), the parallel
search mode, the plain greedy method, streaming, plus one ordinary request. A case the
server refuses (4xx) is reported as "refused by the server's limits".

"One forward pass" is measured on the same server: a ``rain.method: "greedy"`` request
for 1 token on the longest prompt, sent first (cold prefix cache); the bound uses the
server's generation time of that request (``rain.stats.wall_time_s``: the prompt's
prefill and one next-token distribution, without HTTP and the fail-safe's judgement),
and its client-side seconds are printed next to it.

Prints a Markdown table (case, T, seconds, overshoot = seconds - T, bound = 2 + forward
pass, within bound, finish_reason, the response's rain stats plus a few from the
request's audit record) and the worst overshoot, and writes them to
benchmarks/results/budget_bound.txt.

    nice -n 10 .venv/bin/python benchmarks/budget_bound.py [--budgets 2,5] [--cases NAME,NAME]
    .venv/bin/python benchmarks/budget_bound.py --url http://127.0.0.1:8000 [--api-key KEY]

Timing depends on machine load: run it on an otherwise idle machine (the server runs on
one torch thread, OMP_NUM_THREADS=1); other processes competing for the CPUs stretch
every model call and so the overshoot.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import REPO, machine, table, vicuna_prompts

sys.path.insert(0, str(REPO))

from rainlm.serve.settings import ServerSettings  # noqa: E402

LIMITS = ServerSettings()
"""The server's default limits (``rain serve`` with no ``--max-*`` flag)."""
SLACK_S = 2.0
"""The target's fixed allowance over T, in seconds."""


def long_prompt(chars: int = 1800) -> str:
    """A ~``chars``-character request built from Vicuna questions (deterministic)."""
    questions = vicuna_prompts(80)
    text = "Please answer every one of the following questions in detail, one paragraph each:\n"
    for i, q in enumerate(questions, 1):
        line = f"{i}. {q}\n"
        if len(text) + len(line) > chars:
            break
        text += line
    return text


SHORT = vicuna_prompts(1)[0]
LONG = long_prompt()

# Every cost knob the default limits accept at its largest value (the knobs bounded by
# --max-candidates, --max-token-set-length, --max-searches-limit), and every unbounded
# knob set to what makes each search pass longest.
_WIDE: dict[str, Any] = {
    # --max-candidates: every expansion draws and keeps this many children
    "num_candidates": LIMITS.max_candidates, "candidate_draws": LIMITS.max_candidates,
    "single_token_top_k": LIMITS.max_candidates, "candidate_top_k": LIMITS.max_candidates,
    "widening_max_children": LIMITS.max_candidates, "widening_samples": LIMITS.max_candidates,
    # --max-token-set-length: every candidate is a 16-token set, sampled token by token
    "token_set_lengths": [LIMITS.max_token_set_length],
    # --max-searches-limit: no step or answer budget ends the search before the time budget
    "max_searches": LIMITS.max_searches_limit, "min_new_searches": LIMITS.max_searches_limit,
    "max_searches_per_step": LIMITS.max_searches_limit,
    "max_total_searches": LIMITS.max_searches_limit,
    "early_stop_visits": LIMITS.max_searches_limit, "early_stop_value": 1.0,
    "step_budget_share": 1.0,
    # no early exit: no answer is ever accepted, so the search runs until the deadline
    "accept_value": None,
    # hot candidate and simulation laws: near-uniform tokens, no early EOS, so every
    # simulation imagines the whole rest of the answer (up to max_tokens) and few
    # candidate sets are duplicates
    "candidate_temperature": 100.0, "simulation_temperature": 100.0,
    "simulate_until": "eos", "max_simulation_tokens": None, "keep_simulations": True,
    # judge every new child (32 candidates x 2 orders of self-evaluation per expansion)
    # and check every whole answer's prefixes (answer_checks up to --max-candidates)
    "judge_candidates": True, "keep_best_answer": True, "answer_checks": LIMITS.max_candidates,
    "answer_checks_scope": "every",
    # half the passes repair the best answer, rewinding far and imagining a new ending
    "repair_share": 0.5, "repair_backoff": 64, "repair_escalate": True,
    # dynamic node addition on every visit (each one samples widening_samples sets)
    "widening_variance_scale": 1e6, "widening_value_threshold": 1.0,
    # an unfinished answer is finished greedily after the budget (up to max_tokens)
    "budget_fallback": "greedy",
}
_STOPS = ["\nHuman:", "\n###", "<|unused|>", "\n\n\n\n"]  # 4 = OpenAI's limit; never hit

CASES: list[dict[str, Any]] = [
    # Ordinary: a short question, the server's default preset, answer length and judge.
    {"name": "ordinary", "prompt": SHORT, "body": {}},
    # Longest answer (max_tokens at --max-new-tokens-limit) on the long prompt with the
    # default preset: its budget_fallback "greedy" finishes an unfinished answer with up
    # to max_tokens greedy tokens after the budget ran out.
    {"name": "long_answer", "prompt": LONG,
     "body": {"max_tokens": LIMITS.max_new_tokens_limit}},
    # Every cost knob at the limit (see _WIDE), sequential search: each pass expands 32
    # candidates of 16 sampled tokens, judges each of them twice (self-evaluation, both
    # orders), simulates 512-token answers and repairs; 4 stop strings checked each step.
    {"name": "wide_sequential", "prompt": LONG,
     "body": {"max_tokens": LIMITS.max_new_tokens_limit, "stop": _STOPS,
              "rain": {**_WIDE, "search_mode": "sequential"}}},
    # As wide_sequential in the parallel search mode with 32 leaves per round: every
    # model call is a batch of up to 32 long contexts, every judge call up to 64.
    {"name": "wide_parallel", "prompt": LONG,
     "body": {"max_tokens": LIMITS.max_new_tokens_limit, "stop": _STOPS,
              "rain": {**_WIDE, "search_mode": "parallel",
                       "parallel_leaves": LIMITS.max_candidates}}},
    # wide_parallel streamed: commits are sent as server-sent events while it searches.
    {"name": "wide_parallel_stream", "prompt": LONG,
     "body": {"max_tokens": LIMITS.max_new_tokens_limit, "stop": _STOPS, "stream": True,
              "rain": {**_WIDE, "search_mode": "parallel",
                       "parallel_leaves": LIMITS.max_candidates}}},
    # The paper's preset (same rubric as the server's, so allowed) at the longest answer:
    # the paper's 50 searches per step, no total search budget, clause simulations.
    {"name": "paper_preset", "prompt": LONG,
     "body": {"max_tokens": LIMITS.max_new_tokens_limit, "rain": {"preset": "paper"}}},
    # The plain greedy method (rain.method "greedy") at the longest answer: up to 512
    # decoding steps on the long prompt, then the fail-safe's judgement.
    {"name": "greedy_method", "prompt": LONG,
     "body": {"max_tokens": LIMITS.max_new_tokens_limit, "rain": {"method": "greedy"}}},
]


def request_body(case: dict[str, Any], budget_s: float, seed: int = 0) -> dict[str, Any]:
    body = json.loads(json.dumps(case["body"]))  # a deep copy
    body["model"] = "rain"
    body["messages"] = [{"role": "user", "content": case["prompt"]}]
    body.setdefault("rain", {}).update(time_budget_s=budget_s, seed=seed)
    return body


def send(url: str, body: dict[str, Any], api_key: str | None, timeout_s: float
         ) -> dict[str, Any]:
    """Post one chat completion; the client-side seconds to its last byte, the HTTP
    status, and (on 200) choices[0].finish_reason and the ``rain`` object. A stream is
    read to its end and its last chunk's finish_reason and ``rain`` are taken."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    out: dict[str, Any] = {"status": None, "seconds": None, "finish_reason": None,
                           "rain": None, "error": None}
    start = time.perf_counter()
    try:
        if body.get("stream"):
            with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, headers=headers,
                              timeout=timeout_s) as resp:
                out["status"] = resp.status_code
                if resp.status_code != 200:
                    resp.read()
                    out["error"] = _error_message(resp)
                else:
                    for line in resp.iter_lines():
                        if not line.startswith("data: ") or line == "data: [DONE]":
                            continue
                        chunk = json.loads(line[6:])
                        if "error" in chunk:
                            out["error"] = chunk["error"].get("message")
                        for choice in chunk.get("choices") or []:
                            if choice.get("finish_reason"):
                                out["finish_reason"] = choice["finish_reason"]
                        if "rain" in chunk:
                            out["rain"] = chunk["rain"]
                            out["completion_tokens"] = chunk.get("usage", {}).get("completion_tokens")
        else:
            resp = httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers,
                              timeout=timeout_s)
            out["status"] = resp.status_code
            if resp.status_code == 200:
                data = resp.json()
                out["finish_reason"] = data["choices"][0].get("finish_reason")
                out["rain"] = data.get("rain")
                out["completion_tokens"] = data.get("usage", {}).get("completion_tokens")
            else:
                out["error"] = _error_message(resp)
    except httpx.TimeoutException:
        out["error"] = f"no answer within the client timeout of {timeout_s:.0f} s"
    out["seconds"] = time.perf_counter() - start
    return out


def _error_message(resp: Any) -> str:
    try:
        return str(resp.json().get("error", {}).get("message"))
    except ValueError:
        return resp.text[:200]


def trace_stats(url: str, trace_id: str | None, api_key: str | None) -> dict[str, Any]:
    """The audit record's stats (more than the response carries), or {} when unavailable."""
    import httpx

    if not trace_id:
        return {}
    try:
        resp = httpx.get(f"{url}/v1/rain/traces/{trace_id}", timeout=30,
                         headers={"Authorization": f"Bearer {api_key}"} if api_key else {})
        return dict(resp.json().get("stats") or {}) if resp.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        return {}


def stats_text(rain: dict[str, Any] | None, completion_tokens: Any,
               record: dict[str, Any]) -> str:
    """The response's rain stats in one cell, then (from the audit record) the seconds
    spent in the search's phases, the passes cut by the deadline and the fail-safe's
    judgement seconds."""
    if not rain:
        return "-"
    s = rain.get("stats") or {}
    parts = [f"rain.finish_reason={rain.get('finish_reason')}", f"method={rain.get('method')}",
             f"passes={s.get('searches')}", f"steps={s.get('steps')}",
             f"budget_exhausted={s.get('budget_exhausted')}",
             f"greedy_tail_tokens={s.get('greedy_tail_tokens')}",
             f"answer_tokens={completion_tokens}",
             f"generate_s={s.get('wall_time_s')}", f"server_total_s={s.get('total_s')}"]
    phases = record.get("phase_seconds")
    if isinstance(phases, dict):
        parts.append(f"search_phases_s={sum(phases.values()):.2f}")
    if "passes_cut_by_deadline" in record:
        parts.append(f"passes_cut_by_deadline={record['passes_cut_by_deadline']}")
    if "score_s" in record:
        parts.append(f"failsafe_judge_s={record['score_s']}")
    return " ".join(parts)


def forward_pass(url: str, prompt: str, api_key: str | None, timeout_s: float
                 ) -> tuple[float, float]:
    """(server generation seconds, client seconds) of a greedy 1-token answer to
    ``prompt``."""
    body = {"model": "rain", "messages": [{"role": "user", "content": prompt}],
            "max_tokens": 1, "rain": {"method": "greedy"}}
    r = send(url, body, api_key, timeout_s)
    if r["status"] != 200:
        raise RuntimeError(f"the greedy 1-token request failed: HTTP {r['status']}: {r['error']}")
    server_s = (r["rain"] or {}).get("stats", {}).get("wall_time_s")
    return float(server_s if server_s is not None else r["seconds"]), r["seconds"]


def run(url: str, cases: list[dict[str, Any]], budgets: list[float],
        args: argparse.Namespace) -> str:
    longest = max((c["prompt"] for c in cases), key=len)
    fwd_s, fwd_client_s = forward_pass(url, longest, args.api_key, args.timeout)
    bound = SLACK_S + fwd_s
    rows, refused, worst = [], [], None
    for budget in budgets:
        for case in cases:
            r = send(url, request_body(case, budget), args.api_key, args.timeout)
            name = case["name"]
            if r["status"] is not None and 400 <= r["status"] < 500:
                rows.append([name, budget, "-", "-", round(bound, 2), "-",
                             f"refused by the server's limits (HTTP {r['status']})", "-"])
                refused.append(f"- {name} (T={budget:g}): HTTP {r['status']}: {r['error']}")
                continue
            seconds = r["seconds"]
            overshoot = seconds - budget
            failed = r["status"] != 200 or r["error"]
            if not failed:
                worst = overshoot if worst is None else max(worst, overshoot)
            else:
                refused.append(f"- {name} (T={budget:g}): HTTP {r['status']}: {r['error']}")
            finish = r["finish_reason"] if not failed else f"error (HTTP {r['status']})"
            rows.append([name, budget, round(seconds, 2), round(overshoot, 2), round(bound, 2),
                         "yes" if overshoot <= bound and not failed else "no", finish,
                         stats_text(r["rain"], r.get("completion_tokens"),
                                    trace_stats(url, (r["rain"] or {}).get("trace_id"),
                                                args.api_key))])
            print(f"  {name} T={budget:g}: {seconds:.2f} s ({finish})", file=sys.stderr, flush=True)
    header = (f"rain serve time-budget bound (issue 13): each case once per budget T, one "
              f"request at a time; client-side seconds to the whole answer\n"
              f"machine: {machine()}\n"
              f"server: {'--url ' + url if args.url else 'rain serve on the embedded model, --embedder hashing --device cpu --policy pass, 1 torch thread'}; "
              f"limits assumed at their defaults: --max-candidates {LIMITS.max_candidates}, "
              f"--max-token-set-length {LIMITS.max_token_set_length}, --max-searches-limit "
              f"{LIMITS.max_searches_limit}, --max-new-tokens-limit {LIMITS.max_new_tokens_limit}, "
              f"--max-prompt-tokens {LIMITS.max_prompt_tokens}, --max-time-budget "
              f"{LIMITS.max_time_budget_s:g} s, --preset {LIMITS.preset}, no --allow-request-judge\n"
              f"prompts: short {len(SHORT)} chars, long {len(LONG)} chars\n"
              f"one forward pass: {fwd_s:.3f} s (server-side generation of a greedy 1-token "
              f"answer to the {len(longest)}-char prompt, cold; {fwd_client_s:.3f} s client-side "
              f"including HTTP and the fail-safe judgement); bound = {SLACK_S:g} s + forward "
              f"pass = {bound:.2f} s over T\n\n")
    heads = ["case", "T (s)", "seconds", "overshoot (s)", "bound (s)", "within bound",
             "finish_reason", "rain stats"]
    legend = ("\nrain stats: generate_s = the server's generate() seconds (search, then "
              "any greedy tail after the budget); search_phases_s = seconds in the search's "
              "phases (select, expand, simulate, judge, embed, backup, widen); "
              "failsafe_judge_s = the fail-safe's judgement of the final answer, after "
              "generate(); server_total_s = arrival to the end of that judgement\n\n")
    text = header + table(heads, rows) + "\n" + legend
    if worst is None:
        text += f"worst overshoot: none measured; bound {bound:.2f} s: not measured\n"
    else:
        text += (f"worst overshoot {worst:.2f} s; bound {bound:.2f} s: "
                 f"{'met' if worst <= bound else 'missed'}\n")
    if refused:
        text += "\nrefused or failed:\n" + "\n".join(refused) + "\n"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budgets", default="2,5", help="time budgets T, comma-separated seconds")
    names = [c["name"] for c in CASES]
    parser.add_argument("--cases", default=",".join(names),
                        help=f"cases to run, comma-separated, of {names}")
    parser.add_argument("--url", default=None, help="use this running server (http://HOST:PORT)")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="client timeout per request, seconds")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "budget_bound.txt")
    args = parser.parse_args()
    budgets = [float(b) for b in args.budgets.split(",") if b.strip()]
    chosen = [n.strip() for n in args.cases.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in names]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; choose from {names}")
    cases = [c for c in CASES if c["name"] in chosen]

    if args.url:
        text = run(args.url.rstrip("/"), cases, budgets, args)
    else:
        from tests.serve.server import running_server

        with tempfile.TemporaryDirectory() as tmp:
            server_args = ["--db", str(Path(tmp) / "audit.sqlite3"), "--embedder", "hashing",
                           "--device", "cpu", "--policy", "pass"]
            with running_server(server_args, Path(tmp) / "server.log") as srv:
                text = run(srv.url, cases, budgets, args)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
