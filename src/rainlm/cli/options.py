"""Options shared by ``rain generate`` and ``rain chat``, and how they become a RainConfig.

Values are validated here, at the edge: a bad value gets click's usage error naming
the option (exit code 2) before any model is loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from rainlm.backends.registry import (DEFAULT_KIND, backend_kind_names, backend_kinds,
                                      find_backend_kind, tokenizer_kind_names)
from rainlm.config import PRESETS, RainConfig
from rainlm.request import (BUDGET_FALLBACKS, DEFAULT_PRESET, DEVICES, EMBEDDERS, SCORINGS,
                            GenerationParams, field_default)
from rainlm.services import Services

__all__ = ["backend_options", "backend_spec", "bench_model_options", "BACKENDS",
           "policy_file_option", "RunOptions", "Services", "search_options", "services_of"]

BACKENDS = backend_kind_names()
"""The ``--backend`` choices: the kinds registered in ``rainlm.backends.registry``."""
EMBEDDED_MODEL = "SmolLM2-135M-Instruct"


# ---------------------------------------------------------------------- services
def services_of(ctx: click.Context) -> Services:
    found = ctx.find_object(Services)
    return found if found is not None else Services()


# ---------------------------------------------------------------------- options
@dataclass(frozen=True)
class RunOptions:
    """One invocation's options: which model, where, with what progress display, and
    the answer's parameters (``rainlm.request.GenerationParams``, declared there)."""

    params: GenerationParams = field(default_factory=GenerationParams)
    """The answer's parameters: preset with the command line's overrides, seed,
    length, system prompt, embedder."""
    model: str | None = None
    """``--model`` (None: the embedded model)."""
    backend: str = DEFAULT_KIND
    """``--backend``: the registered kind that runs the model."""
    base_url: str | None = None
    """``--base-url`` of an HTTP engine."""
    tokenizer: str | None = None
    """``--tokenizer``: the served model's local tokenizer folder (absolute), with
    ``--backend openai`` (None: found by the backend)."""
    device: str = "auto"
    """``--device``: "auto", "cpu" or "cuda"."""
    progress: bool | None = None
    """``--progress/--no-progress`` (None: only on a terminal)."""

    def config(self) -> RainConfig:
        """The search config: the preset with the command-line overrides applied."""
        return self.params.config

    def model_spec(self) -> str | None:
        """What ``load_backend`` is given (see ``backend_spec``)."""
        return backend_spec(self.backend, self.model, self.base_url, self.tokenizer)

    def open_backend(self, services: Services) -> Any:
        """The backend these options name, loaded by ``services`` (``--tokenizer``
        included)."""
        return services.open_backend(self.model_spec(), self.device, tokenizer=self.tokenizer)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready options (recorded with each answer)."""
        return {"model": self.model, "backend": self.backend, "base_url": self.base_url,
                "tokenizer": self.tokenizer, "device": self.device, **self.params.to_dict()}

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> "RunOptions":
        """Pop ``search_options``' values (and ``policy_file_option``'s, when the command
        has it) out of a click command's keyword arguments; the preset with its
        overrides is validated here (ConfigError naming the field)."""
        params = GenerationParams.from_preset(
            kwargs.pop("preset"), **{n: kwargs.pop(n) for n in _OVERRIDES},
            **{n: kwargs.pop(n) for n in _PARAM_FIELDS},
            policy=kwargs.pop("policy_file", None))
        return cls(params=params, **{n: kwargs.pop(n) for n in _MODEL_FIELDS})


_OVERRIDES = ("scoring", "rubric", "max_searches_per_step", "time_budget_s", "budget_fallback",
              "parallel", "answer_nll_margin")
"""``GenerationParams.from_preset``'s config overrides, as click options."""
_PARAM_FIELDS = ("seed", "max_new_tokens", "system", "embedder")
"""GenerationParams fields that are click options of their own."""
_MODEL_FIELDS = ("model", "backend", "base_url", "tokenizer", "device", "progress")


def backend_spec(backend: str, model: str | None, base_url: str | None,
                 tokenizer: str | None = None) -> str | None:
    """The model, prefixed with the backend kind, as ``load_backend`` reads it.

    The rules come from the registry (``rainlm.backends.registry``): the default kind
    (transformers) takes ``--model`` as is; a kind that takes a base URL (openai) becomes
    ``"KIND:BASE_URL[#MODEL]"`` and requires ``--base-url``; any other kind becomes
    ``"KIND:[MODEL]"`` and rejects ``--base-url``. ``--tokenizer`` is checked here
    (only a kind that takes one accepts it) and goes to ``load_backend`` as
    ``tokenizer=``, not in the spec. (An engine's API key comes from the environment
    variable RAINLM_ENGINE_API_KEY, never from the command line.)
    """
    from rainlm.errors import ConfigError

    kind = find_backend_kind(backend)
    if kind is None:
        raise ConfigError("--backend", f"unknown backend {backend!r}; pass one of "
                                       f"{', '.join(backend_kind_names())}")
    if tokenizer is not None and not kind.takes_tokenizer:
        takers = tokenizer_kind_names() or ("<none registered>",)
        raise ConfigError("--tokenizer", f"only applies to --backend {' or '.join(takers)} "
                                         f"(--backend {kind.name} reads the model's own "
                                         f"tokenizer); add --backend {takers[0]} --base-url "
                                         f"URL or drop --tokenizer")
    if kind.takes_base_url:
        if not base_url:
            raise ConfigError("--base-url", f"is required with --backend {kind.name}, e.g. "
                                            f"--base-url http://127.0.0.1:8000/v1")
        return f"{kind.name}:{base_url}" + (f"#{model}" if model else "")
    if base_url:
        url_kinds = _url_kind_names() or ("<none registered>",)
        raise ConfigError("--base-url", f"only applies to --backend {' or '.join(url_kinds)}; "
                                        f"add --backend {url_kinds[0]} or drop --base-url")
    if kind.name == DEFAULT_KIND:
        return model
    return f"{kind.name}:{model or ''}"


def _url_kind_names() -> tuple[str, ...]:
    return tuple(k.name for k in backend_kinds() if k.takes_base_url)


def _backend_help() -> str:
    """``--backend``'s help: each registered kind with its one-line help."""
    parts = [f"'{k.name}' ({k.help})" for k in backend_kinds()]
    listed = ", ".join(parts[:-1]) + " or " + parts[-1] if len(parts) > 1 else parts[0]
    return f"Engine that runs the model: {listed}."


def _base_url_help() -> str:
    return (f"With --backend {' or '.join(_url_kind_names())}: the engine's API root, "
            f"e.g. http://127.0.0.1:8000/v1.")


def _tokenizer_help() -> str:
    return (f"With --backend {' or '.join(tokenizer_kind_names())}: a local folder with the "
            f"served model's tokenizer files (tokenizer.json or tokenizer_config.json), when "
            f"--model is a served name, not a local folder (e.g. vLLM's --served-model-name). "
            f"Nothing is downloaded. Default: found for the embedded model or a model "
            f"served from a local folder.")


BACKEND_HELP = _backend_help()
BASE_URL_HELP = _base_url_help()
TOKENIZER_HELP = _tokenizer_help()


def _check_rubric(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A built-in rubric name or a readable, valid rubric TOML file."""
    if value is None:
        return None
    from rainlm.errors import JudgeError
    from rainlm.judge.rubric import load_rubric

    try:
        load_rubric(value)
    except JudgeError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
    # Keep paths absolute so the value means the same thing in traces.
    return str(Path(value).expanduser().resolve()) if Path(value).expanduser().is_file() else value


def _check_model(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise click.BadParameter("is empty; give a folder, a .gguf file or a hub id "
                                 "(or leave it out for the embedded model)", ctx=ctx, param=param)
    if value is not None and value.endswith(".gguf") and not Path(value).expanduser().is_file():
        raise click.BadParameter(f"GGUF file {value!r} does not exist", ctx=ctx, param=param)
    return value


def _check_tokenizer(ctx: click.Context, param: click.Parameter,
                     value: str | None) -> str | None:
    """A local folder holding tokenizer files, kept absolute (it means the same in
    traces and in ``rain serve``'s settings)."""
    if value is None:
        return None
    from rainlm.backends.openai_compat import tokenizer_folder_problem

    problem = tokenizer_folder_problem(value)
    if problem is not None:
        raise click.BadParameter(problem, ctx=ctx, param=param)
    return str(Path(value).expanduser().resolve())


def _load_policy_file(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """The policy in the file, parsed and validated before any model loads (a usage error
    naming the file, line and key when it is wrong)."""
    if value is None:
        return None
    from rainlm.policy import PolicyError, load_policy

    try:
        return load_policy(value)
    except PolicyError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


POLICY_FILE_HELP = (
    "A policy file (TOML; docs/policy.md): its rules, or the model's own judgement with its "
    "rubric, or both, as its [judge] says, judge the search and every answer (which rules an "
    "answer breaks is reported). rain serve also takes its [fail_safe], option by option: "
    "its action unless --policy is given, its threshold unless --threshold is, its "
    "refusal message unless --refusal-message is.")


def policy_file_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator adding ``--policy-file FILE`` (the command gets ``policy_file``: a
    ``rainlm.policy.Policy`` or None); shared by generate, chat, serve and bench run."""
    return click.option("--policy-file", "policy_file", metavar="FILE", default=None,
                        callback=_load_policy_file, help=POLICY_FILE_HELP)(func)


def _builtin_rubrics() -> str:
    from rainlm.judge.rubric import list_rubrics

    return ", ".join(list_rubrics())


def backend_options(func: Callable[..., Any], *, dest: str = "backend") -> Callable[..., Any]:
    """Decorator adding ``--backend`` (stored as ``dest``), ``--base-url`` and
    ``--tokenizer`` (checked against the backend by ``backend_spec``, loaded with
    ``Services.open_backend``)."""
    func = click.option("--tokenizer", metavar="FOLDER", default=None, callback=_check_tokenizer,
                        help=TOKENIZER_HELP)(func)
    func = click.option("--base-url", metavar="URL", default=None, help=BASE_URL_HELP)(func)
    return click.option("--backend", dest, type=click.Choice(BACKENDS), default=DEFAULT_KIND,
                        show_default=True, help=BACKEND_HELP)(func)


def bench_model_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator adding what a benchmark-like command answers with: ``--model``, the
    backend options (``backend_options``), ``--device`` and RAIN's ``--embedder``."""
    func = click.option("--embedder", type=click.Choice(EMBEDDERS), default="auto",
                        show_default=True, help="RAIN's sentence encoder.")(func)
    func = click.option("--device", type=click.Choice(DEVICES), default="auto",
                        show_default=True, help="Where the model runs.")(func)
    func = backend_options(func)
    return click.option("--model", metavar="PATH|HUB_ID", default=None,
                        help=f"Model (default: the embedded {EMBEDDED_MODEL}).")(func)


def search_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator adding the model and search options to a click command."""
    presets = sorted(PRESETS)
    options = [
        click.option("--preset", type=click.Choice(presets), default=DEFAULT_PRESET, show_default=True,
                     help="Search preset: 'harmless' (harmlessness rubric, the default "
                          "search), 'adversarial' (red-teaming rubric, T_m=5), 'truthful' "
                          "(truthfulness rubric, simulate to end of sequence, T_m=16), or "
                          "'paper' (the published HH search exactly, never changed)."),
        click.option("--model", metavar="PATH|HUB_ID", default=None, callback=_check_model,
                     help=f"Model to answer with: a local model folder, a .gguf file or a hub id "
                          f"already in the local cache (nothing is downloaded). "
                          f"Default: the embedded {EMBEDDED_MODEL}."),
        click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
                     help="Where the model (and sentence encoder) runs: 'auto' picks CUDA when "
                          "available, else CPU."),
        click.option("--max-new-tokens", type=click.IntRange(min=1),
                     default=field_default(GenerationParams, "max_new_tokens"),
                     show_default=True, metavar="TOKENS",
                     help="Answer length limit, in tokens."),
        click.option("--seed", type=click.IntRange(min=0), default=field_default(GenerationParams, "seed"),
                     show_default=True, metavar="INT",
                     help="Random seed of the search; the same seed and inputs give the same "
                          "answer."),
        click.option("--time-budget", "time_budget_s",
                     type=click.FloatRange(min=0, min_open=True), default=None,
                     metavar="SECONDS",
                     help="Wall-clock budget for the RAIN search of one answer, in seconds. "
                          "When it runs out the most-visited path is committed (anytime "
                          "search). Default: no budget."),
        click.option("--budget-fallback", type=click.Choice(BUDGET_FALLBACKS), default=None,
                     help="When a budget runs out: 'truncate' (stop after the most-visited "
                          "path) or 'greedy' (finish the answer with plain greedy decoding, "
                          "not searched). The answer's finish reason says a budget ended it. "
                          "Default: the preset's ('truncate')."),
        click.option("--max-searches-per-step", type=click.IntRange(min=1), default=None,
                     metavar="N",
                     help="Cap on search passes per committed token set (overrides the "
                          "preset's 50 searches / at least 15 new per step). Default: no cap."),
        click.option("--fluency-floor", "answer_nll_margin", type=click.FloatRange(0, 20),
                     default=None, metavar="NATS",
                     help="Fluency floor: the search first decodes greedily, and no whole "
                          "answer more than NATS nats per token less likely than greedy's "
                          "(mean NLL under the model) is accepted or kept, whatever the judge "
                          "says: a rule is not kept by writing noise. Costs the greedy pass. "
                          "Default: off (every preset)."),
        click.option("--parallel", type=click.IntRange(min=1), default=None, metavar="N",
                     help="Parallel search: N leaves per round chosen with a virtual loss, "
                          "their simulations, judgements and embeddings batched. Faster, but "
                          "not the paper's sequential search. Default: 1 (the paper's)."),
        click.option("--scoring", type=click.Choice(SCORINGS), default=None,
                     help="How the self-evaluation turns the judge's answer into a value: "
                          "'paper' (hard two-order vote in {-1, 0, 1}) or 'continuous' "
                          "(probability of the good option mapped to [-1, 1]). "
                          "Default: the preset's ('paper')."),
        click.option("--rubric", metavar="NAME|PATH", default=None, callback=_check_rubric,
                     help="Self-evaluation rubric: a built-in name (harmless, adversarial, "
                          "truthful, helpful) or a path to a rubric TOML file. "
                          "Default: the preset's."),
        click.option("--system", metavar="TEXT", default=None,
                     help="System prompt placed before the conversation. Default: none."),
        click.option("--embedder", type=click.Choice(EMBEDDERS),
                     default=field_default(GenerationParams, "embedder"),
                     show_default=True,
                     help="Sentence encoder for the similarity update and dynamic node "
                          "addition: 'minilm' (all-MiniLM-L6-v2, the paper's), 'hashing' "
                          "(dependency-free, surface overlap only), 'auto' (MiniLM when "
                          "installed, else hashing) or 'none' (both features off)."),
        click.option("--progress/--no-progress", default=None,
                     help="Show a live progress line on stderr (committed text, searches, "
                          "steps, seconds). Default: only when stderr is a terminal."),
    ]
    for option in reversed(options):
        func = option(func)
    return backend_options(func)
