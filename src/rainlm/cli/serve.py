"""``rain serve``: run the OpenAI-compatible server (``rainlm.serve``) with uvicorn."""

from __future__ import annotations

import itertools
import logging
import os
import signal
from typing import Any

import click

from rainlm.cli.options import (EMBEDDED_MODEL, _check_model, backend_options,
                                backend_spec, policy_file_option, services_of)
from rainlm.config import PRESETS
from rainlm.request import DEVICES, EMBEDDERS, field_default
from rainlm.serve.settings import POLICIES, ServerSettings

log = logging.getLogger("rainlm.serve")

__all__ = ["serve_command"]


def _default(name: str) -> Any:
    """An option's default: the ``ServerSettings`` field's, declared there once."""
    return field_default(ServerSettings, name)


EPILOG = """\b
Endpoints:
  POST /v1/chat/completions   POST /v1/completions   GET /v1/models
  GET  /health (open)         GET /v1/rain/traces/ID  GET /review (human review page)
  POST /v1/rain/reviews/ID    {"decision": "approved"|"rejected", "note": "..."}

\b
RAIN settings per request (openai client: extra_body={"rain": {...}}):
  preset, method ("rain"|"greedy"), seed, time_budget_s, max_searches,
  max_searches_per_step, ... any RainConfig field; policy and threshold only with
  --allow-request-policy; rubric, scoring and judge_orders only with
  --allow-request-judge. OpenAI's max_tokens / max_completion_tokens, seed, stop and
  n (=1 only) are honoured; temperature, top_p, presence_penalty, frequency_penalty and
  user are accepted and ignored (the search chooses the tokens).

\b
Streaming sends only committed text (never text the search may still rewind). With
--policy refuse nothing is streamed before the fail-safe has judged the whole answer
(sent text cannot be recalled): the answer, or the refusal, arrives in one chunk.

\b
Examples:
  rain serve --embedder hashing
  rain serve --backend openai --base-url http://127.0.0.1:8123/v1 --model smollm2 \\
      --tokenizer ~/models/SmolLM2-135M-Instruct   # an engine's served name, its tokenizer
  rain serve --api-key s3cret --policy refuse --threshold 0.2 --store audit.sqlite3
  rain serve --policy-file acme.toml   # its rules judge every search and the fail-safe
  RAINLM_AUDIT_DB=postgresql://rain:PW@db:5432/rain rain serve --port 8001   # a replica
  python -c "from openai import OpenAI; c = OpenAI(base_url='http://127.0.0.1:8000/v1',
      api_key='s3cret'); print(c.chat.completions.create(model='rain',
      messages=[{'role': 'user', 'content': 'Hi'}], max_tokens=16).choices[0].message.content)"
"""


@click.command("serve", epilog=EPILOG)
@click.option("--host", metavar="HOST", default=_default("host"), show_default=True,
              help="Interface to bind (the default serves only this machine).")
@click.option("--port", metavar="PORT", type=click.IntRange(0, 65535),
              default=_default("port"), show_default=True,
              help="TCP port to listen on.")
@click.option("--model", metavar="PATH|HUB_ID", default=None, callback=_check_model,
              help=f"Model to answer with (a folder, a .gguf file or a cached hub id). "
                   f"Default: the embedded {EMBEDDED_MODEL}.")
@backend_options
@click.option("--device", type=click.Choice(DEVICES), default=_default("device"), show_default=True,
              help="Where the model (and sentence encoder) runs: 'auto' picks CUDA when "
                   "available, else CPU.")
@click.option("--api-key", envvar="RAINLM_API_KEY", default=None, metavar="KEY",
              help="Require 'Authorization: Bearer KEY' on /v1/* and /review (the review "
                   "page also takes ?key=KEY). Env: RAINLM_API_KEY. Default: no key.")
@click.option("--store", "--db", "db_path", default=None, metavar="PATH|URL",
              help="Audit store: an SQLite file (':memory:' for none on disk), or a "
                   "postgresql://USER@HOST:PORT/DB URL that several replicas share (the "
                   "password from PGPASSWORD or ~/.pgpass, or the whole URL from "
                   "$RAINLM_AUDIT_DB, keeps it out of the process list). Default: "
                   "$RAINLM_AUDIT_DB or ~/.local/share/rainlm/audit.sqlite3.")
@click.option("--policy", type=click.Choice(POLICIES), default=_default("policy"),
              help="Fail-safe for answers whose self-evaluation score is below --threshold: "
                   "'refuse' sends --refusal-message instead (and, when streaming, buffers "
                   "the answer until it is judged), 'flag' sends it and queues it on /review, "
                   "'pass' only records the score. With --policy-file the score is the "
                   "policy's value. Default: the file's fail_safe.action with --policy-file, "
                   "else flag.")
@click.option("--threshold", metavar="VALUE", type=click.FloatRange(-1.0, 1.0),
              default=_default("threshold"),
              help="Score (continuous self-evaluation, in [-1, 1]) below which the policy acts. "
                   "Default: the file's fail_safe.threshold with --policy-file, else 0.")
@click.option("--refusal-message", default=_default("refusal_message"), metavar="TEXT",
              help="What a refused request receives. Default: the file's "
                   "fail_safe.refusal_message (or its language's default) with "
                   "--policy-file, else an English apology.")
@policy_file_option
@click.option("--allow-request-policy", is_flag=True,
              help="Let requests choose rain.policy and rain.threshold (else 403).")
@click.option("--shutdown-timeout", "shutdown_timeout_s", type=click.FloatRange(min=0),
              default=_default("shutdown_timeout_s"), show_default=True, metavar="SECONDS",
              help="On SIGTERM/Ctrl-C, how long running searches may go on before they are "
                   "stopped and their answers so far recorded; queued requests are recorded "
                   "as rejected at once. A second signal stops them at once.")
@click.option("--max-candidates", type=click.IntRange(min=1),
              default=_default("max_candidates"), show_default=True,
              metavar="N", help="Largest candidate count a request may set (num_candidates, "
                                "candidate_draws, top-k sizes, widening, parallel_leaves, "
                                "answer_checks).")
@click.option("--max-token-set-length", type=click.IntRange(min=1),
              default=_default("max_token_set_length"),
              show_default=True, metavar="TOKENS",
              help="Longest token set a request may ask for (rain.token_set_lengths).")
@click.option("--max-searches-limit", type=click.IntRange(min=1),
              default=_default("max_searches_limit"),
              show_default=True, metavar="N",
              help="Largest search count a request may set (max_searches, "
                   "max_total_searches, ...).")
@click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="NAME",
              help="A Host name or address clients may use besides 127.0.0.1/localhost "
                   "(repeatable); others get 400. Needed when serving beyond this machine.")
@click.option("--allow-request-judge", is_flag=True,
              help="Let requests choose how their search judges (rain.rubric, rain.scoring, "
                   "rain.judge_orders, a preset with another rubric; else 403). The fail-safe "
                   "always judges with the server's rubric.")
@click.option("--max-concurrent", metavar="N", type=click.IntRange(min=1),
              default=_default("max_concurrent"),
              show_default=True,
              help="Searches that run at once; their model calls are batched together, so "
                   "concurrent requests share forward passes.")
@click.option("--cache-mb", type=click.FloatRange(0, min_open=True),
              default=_default("cache_mb"), metavar="MiB",
              help="Memory budget of the model's prefix KV cache (the transformers "
                   "backend). Default: the backend's own (512). Concurrent searches each "
                   "keep a working set there; too small a budget makes them encode "
                   "prefixes again.")
@click.option("--queue-size", metavar="N", type=click.IntRange(min=0),
              default=_default("queue_size"), show_default=True,
              help="Requests that may wait while --max-concurrent run; more get 429 with "
                   "Retry-After.")
@click.option("--max-time-budget", "max_time_budget_s", type=click.FloatRange(0, min_open=True),
              default=_default("max_time_budget_s"), show_default=True, metavar="SECONDS",
              help="Largest rain.time_budget_s a request may ask for.")
@click.option("--default-time-budget", "default_time_budget_s",
              type=click.FloatRange(0, min_open=True), default=_default("default_time_budget_s"), show_default=True,
              metavar="SECONDS", help="Search time budget of requests that set none.")
@click.option("--max-new-tokens-limit", type=click.IntRange(min=1),
              default=_default("max_new_tokens_limit"),
              show_default=True, metavar="TOKENS", help="Largest max_tokens a request may ask for.")
@click.option("--default-max-new-tokens", type=click.IntRange(min=1),
              default=_default("default_max_new_tokens"),
              show_default=True, metavar="TOKENS", help="Answer length when max_tokens is unset.")
@click.option("--max-prompt-tokens", type=click.IntRange(min=1),
              default=_default("max_prompt_tokens"),
              show_default=True, metavar="TOKENS",
              help="Longest prompt (chat template included); longer requests get 400.")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default=_default("preset"),
              show_default=True, help="Search preset of requests that name none.")
@click.option("--embedder", type=click.Choice(EMBEDDERS),
              default=_default("embedder"), show_default=True,
              help="Sentence encoder for the similarity update and node addition.")
@click.option("--log-level", type=click.Choice(("critical", "error", "warning", "info", "debug")),
              default="warning", show_default=True, help="uvicorn's log level.")
@click.pass_context
def serve_command(ctx: click.Context, host: str, port: int, log_level: str,
                  default_max_new_tokens: int, **kwargs: Any) -> None:
    """Serve RAIN over an OpenAI-compatible HTTP API, with per-request budgets, a
    self-evaluation fail-safe and an audit trail of every request.

    Binds 127.0.0.1:8000 by default and prints the URL once the model is loaded.
    Use the official openai client with base_url=http://HOST:PORT/v1.
    """
    import uvicorn

    from rainlm.serve.app import create_app

    kwargs["model"] = backend_spec(kwargs.pop("backend"), kwargs["model"], kwargs.pop("base_url"),
                                   kwargs["tokenizer"])
    limit = kwargs["max_new_tokens_limit"]
    # --policy, --threshold, --refusal-message: None when not given; the settings fill
    # them from --policy-file's [fail_safe], else the defaults (serve/settings.py)
    settings = ServerSettings(host=host, port=port,
                              default_max_new_tokens=min(default_max_new_tokens, limit),
                              **kwargs)
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"

    def ready() -> None:
        click.echo(f"rain serve: ready at {url}/v1 (model {app.state.engine.model_name}; "
                   f"review page {url}/review; audit db {app.state.store.path})", err=False)

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    app = create_app(settings, services=services_of(ctx), on_ready=ready)
    click.echo(f"rain serve: listening on {url} (loading the model…)")
    engine = app.state.engine

    class Server(uvicorn.Server):
        """uvicorn, with the engine told about each shutdown signal: the first rejects
        the queue (recorded) and gives the running searches --shutdown-timeout seconds;
        the second stops them at their next model call (their answers so far are recorded
        before the process exits)."""

        signals_seen = itertools.count()  # next() is atomic: a handler may interrupt a handler

        def handle_exit(self, sig: int, frame: Any) -> None:
            if next(self.signals_seen) == 0:
                log.warning("rain serve: %s: shutting down", signal.Signals(sig).name)
                engine.begin_shutdown(settings.shutdown_timeout_s)
            else:
                log.warning("rain serve: second signal (%s): stopping the running searches now",
                            signal.Signals(sig).name)
                engine.stop_searches_now()
            super().handle_exit(sig, frame)

    Server(uvicorn.Config(app, host=host, port=port, log_level=log_level,
                          access_log=False)).run()
