"""The backend registry: the CLI's --backend choices, load_backend's dispatch, adding a kind.

No model, no network beyond a closed port on 127.0.0.1.
"""

from __future__ import annotations

import click
import pytest

from rainlm.backends.loading import load_backend
from rainlm.backends.registry import (
    DEFAULT_KIND,
    URL_KIND,
    BackendKind,
    backend_kind_names,
    backend_kinds,
    find_backend_kind,
    register_backend_kind,
    unregister_backend_kind,
)
from rainlm.backends.scripted import ScriptedBackend
from rainlm.cli.main import cli
from rainlm.cli.options import BACKEND_HELP, BACKENDS, backend_spec
from rainlm.errors import BackendError, CapabilityError, ConfigError, ModelNotFoundError
from tests.backends.engine import free_port


class Bare:
    """What a placeholder loader returns (never called)."""


def _backend_choices(group: click.Group) -> list[tuple[str, ...]]:
    """The ``--backend`` choices of every command under ``group`` that has the option."""
    found = []
    for command in group.commands.values():
        if isinstance(command, click.Group):
            found += _backend_choices(command)
        for param in command.params:
            if "--backend" in getattr(param, "opts", ()):
                found.append(tuple(param.type.choices))
    return found


# ------------------------------------------------------------------ the CLI mirrors it
def test_backend_choices_are_exactly_the_registry_kinds():
    kinds = backend_kind_names()
    assert kinds == BACKENDS == tuple(k.name for k in backend_kinds())
    assert DEFAULT_KIND in kinds and find_backend_kind(URL_KIND).takes_base_url
    choices = _backend_choices(cli)
    assert len(choices) >= 5  # generate, chat, bench run, calibrate, serve, frontier...
    assert all(c == kinds for c in choices), choices
    for kind in backend_kinds():
        assert f"'{kind.name}' ({kind.help})" in BACKEND_HELP


def test_backend_spec_follows_each_kinds_base_url_rule():
    for kind in backend_kinds():
        if kind.takes_base_url:
            assert backend_spec(kind.name, "m", "http://h/v1") == f"{kind.name}:http://h/v1#m"
            with pytest.raises(ConfigError, match=f"--base-url: is required with --backend "
                                                  f"{kind.name}"):
                backend_spec(kind.name, None, None)
        else:
            with pytest.raises(ConfigError, match="--base-url: only applies to --backend"):
                backend_spec(kind.name, None, "http://h/v1")
    assert backend_spec(DEFAULT_KIND, "some/folder", None) == "some/folder"
    assert backend_spec("llamacpp", None, None) == "llamacpp:"
    with pytest.raises(ConfigError, match="--backend: unknown backend 'ollama'.*transformers"):
        backend_spec("ollama", None, None)


# ------------------------------------------------------------------ every loader is reached
MISSING = {
    "transformers": [("transformers:/no/such/folder", ModelNotFoundError, "No model folder")],
    "llamacpp": [("llamacpp:/no/such.gguf", ModelNotFoundError, "No GGUF file at '/no/such.gguf'"),
                 ("llama-cpp:/no/such.gguf", ModelNotFoundError, "No GGUF file"),
                 ("llama_cpp:/no/such.gguf", ModelNotFoundError, "No GGUF file")],
    "openai": [("openai:127.0.0.1:8000", ConfigError, "base_url: must be an http"),
               ("vllm:not-a-url", ConfigError, "base_url"),
               ("sglang:not-a-url", ConfigError, "base_url")],
}
"""Per registered kind: specs with a missing file or a bad URL and the error they give
(a new kind needs an entry here)."""


def test_every_registered_kind_has_a_missing_spec_case():
    assert set(MISSING) == set(backend_kind_names())
    for kind in backend_kinds():
        assert {s.partition(":")[0] for s, _, _ in MISSING[kind.name]} \
            == {kind.name, *kind.aliases}


@pytest.mark.parametrize("spec, error, message",
                         [case for cases in MISSING.values() for case in cases])
def test_load_backend_reaches_each_kinds_loader(spec, error, message):
    with pytest.raises(error, match=message):
        load_backend(spec)


def test_a_url_nobody_serves_is_a_backend_error_naming_it():
    url = f"http://127.0.0.1:{free_port()}/v1"
    for spec in (url, f"{URL_KIND}:{url}#served"):
        with pytest.raises(BackendError) as err:
            load_backend(spec, max_retries=0)
        assert url in str(err.value)


def test_unknown_kind_lists_every_registered_kind():
    with pytest.raises(CapabilityError, match="Unknown backend kind 'ollama'") as err:
        load_backend("ollama:llama3")
    for kind in backend_kinds():
        assert f"{kind.name} ({kind.usage})" in str(err.value)


# ------------------------------------------------------------------ adding a kind
@pytest.fixture
def fake_kind():
    """A ``fake`` kind (alias ``phony``) that records its calls; removed afterwards."""
    calls: list[tuple[str, str, str, dict]] = []

    def load(spec: str, *, device: str, dtype: str, **kw) -> ScriptedBackend:
        calls.append((spec, device, dtype, kw))
        return ScriptedBackend(["a"], {}, name=f"fake {spec}")

    kind = BackendKind(name="fake", help="a scripted model", usage="'fake:NAME'", load=load,
                       aliases=("phony",))
    register_backend_kind(kind)
    try:
        yield calls
    finally:
        unregister_backend_kind("fake")


def test_one_registry_entry_is_all_a_new_backend_needs(fake_kind):
    backend = load_backend("fake:x", device="cpu", num_threads=1)
    assert isinstance(backend, ScriptedBackend) and backend.name == "fake x"
    assert load_backend("PHONY:y").name == "fake y"
    assert fake_kind == [("x", "cpu", "auto", {"num_threads": 1}), ("y", "auto", "auto", {})]
    assert "fake" in backend_kind_names()
    assert backend_spec("fake", "m", None) == "fake:m"
    with pytest.raises(CapabilityError, match=r"fake \('fake:NAME'\)"):
        load_backend("ollama:llama3")


def test_an_unregistered_kind_is_unknown_again():
    register_backend_kind(BackendKind("fake", "", "", lambda spec, **kw: Bare()))
    unregister_backend_kind("fake")
    with pytest.raises(CapabilityError, match="Unknown backend kind 'fake'"):
        load_backend("fake:x")
    assert backend_kind_names() == BACKENDS


@pytest.mark.parametrize("name", ["openai", "vllm", "Fake", "x", "has space"])
def test_a_taken_or_bad_name_is_refused(name):
    with pytest.raises(ConfigError, match="kind.name"):
        register_backend_kind(BackendKind(name, "", "", lambda spec, **kw: Bare()))
    assert backend_kind_names() == BACKENDS


def test_unregistering_an_unknown_kind_names_the_registered_ones():
    with pytest.raises(ConfigError, match="name: no backend kind 'nope'; registered: "
                                          "transformers"):
        unregister_backend_kind("nope")
