"""The writers: TRL's DPO and SFT rows, JSONL files and `datasets` folders, read back with
`datasets`' own loaders (and TRL's format check)."""

from __future__ import annotations

import json

import pytest

from rainlm.distill import formats
from rainlm.distill.answers import Answer
from rainlm.distill.formats import (dpo_rows, is_chat, parse_formats, sft_rows,
                                    write_formats)
from rainlm.distill.pairs import Pair
from rainlm.errors import ConfigError, RainError
from tests.needs import require_module

SYSTEM = {"role": "system", "content": "Be brief."}


def make_pair(question: str, chosen: str, rejected: str, *, system: bool = False) -> Pair:
    prompt = ((SYSTEM,) if system else ()) + ({"role": "user", "content": question},)
    answer = Answer(prompt=prompt, chat=system, text=chosen, kind="rain", method="rain",
                    group=("g",), judge="banned-words@1", value=1.0, source="run.jsonl, line 3")
    return Pair(kind="rain-vs-greedy", prompt=prompt, chat=system, chosen=chosen,
                rejected=rejected, margin=2.0, judge="banned-words@1", answers=(answer,))


PLAIN = [make_pair("Why is the sky blue?", "Rayleigh scattering.", "Because it is."),
         make_pair("Name a prime.", "Seven.", "Nine.")]
MIXED = PLAIN + [make_pair("Pick a lock?", "I won't.", "Rake the pins.", system=True)]


def test_standard_rows_when_no_source_was_a_chat():
    rows = dpo_rows(PLAIN)
    assert not is_chat(PLAIN)
    assert rows[0] == {"prompt": "Why is the sky blue?", "chosen": "Rayleigh scattering.",
                       "rejected": "Because it is.", "margin": 2.0, "judge": "banned-words@1",
                       "kind": "rain-vs-greedy", "source": "run.jsonl, line 3"}


def test_one_chat_source_makes_every_row_conversational():
    rows = dpo_rows(MIXED)
    assert rows[0]["prompt"] == [{"role": "user", "content": "Why is the sky blue?"}]
    assert rows[0]["chosen"] == [{"role": "assistant", "content": "Rayleigh scattering."}]
    assert rows[0]["rejected"] == [{"role": "assistant", "content": "Because it is."}]
    assert rows[2]["prompt"] == [SYSTEM, {"role": "user", "content": "Pick a lock?"}]
    forced = dpo_rows(PLAIN, chat=True)
    assert forced[1]["prompt"] == [{"role": "user", "content": "Name a prime."}]


def test_sft_rows_are_the_prompt_then_the_chosen_answer():
    rows = sft_rows(MIXED)
    assert rows[2]["messages"] == [SYSTEM, {"role": "user", "content": "Pick a lock?"},
                                   {"role": "assistant", "content": "I won't."}]
    assert rows[0]["messages"][-1] == {"role": "assistant", "content": "Rayleigh scattering."}
    # one answer preferred to two others: two DPO rows, one SFT example
    twice = [PLAIN[0], make_pair("Why is the sky blue?", "Rayleigh scattering.", "Magic.")]
    assert len(dpo_rows(twice)) == 2 and len(sft_rows(twice)) == 1


def test_parse_formats():
    assert parse_formats("dpo, SFT,dpo") == ("dpo", "sft")
    with pytest.raises(ConfigError, match="unknown format 'xml'"):
        parse_formats("dpo,xml")
    with pytest.raises(ConfigError, match="is empty"):
        parse_formats(" , ")


def test_jsonl_files_and_manifest(tmp_path):
    written = write_formats(MIXED, tmp_path / "out", ["dpo", "sft"], manifest={"kept": 3})
    names = [p.name for p in written]
    assert names == ["dpo.jsonl", "sft.jsonl", "export.json"]
    lines = (tmp_path / "out" / "dpo.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(x) for x in lines] == dpo_rows(MIXED)
    info = json.loads((tmp_path / "out" / "export.json").read_text(encoding="utf-8"))
    assert info["kept"] == 3 and info["style"] == "conversational"
    assert info["rows"] == {"dpo": 3, "sft": 3}
    assert info["files"] == ["dpo.jsonl", "sft.jsonl"]
    write_formats(PLAIN, tmp_path / "out", ["dpo"])  # a second export replaces the first
    assert len((tmp_path / "out" / "dpo.jsonl").read_text().splitlines()) == 2
    assert not list((tmp_path / "out").glob("*.tmp"))


def test_nothing_to_write_and_missing_datasets(tmp_path, monkeypatch):
    with pytest.raises(RainError, match="no pair to write"):
        write_formats([], tmp_path, ["dpo"])
    monkeypatch.setattr(formats, "datasets_available", lambda: False)
    with pytest.raises(RainError, match=r"needs the datasets package: pip install "
                                        r"'rainlm\[distill\]'"):
        write_formats(PLAIN, tmp_path / "hf-out", ["dpo", "hf"])
    assert not (tmp_path / "hf-out").exists()


@pytest.mark.parametrize("pairs", [PLAIN, MIXED], ids=["standard", "conversational"])
def test_read_back_with_datasets_loaders(tmp_path, pairs):
    datasets = require_module("datasets")
    out = tmp_path / "out"
    write_formats(pairs, out, ["dpo", "sft", "hf"])
    for name, rows in (("dpo", dpo_rows(pairs)), ("sft", sft_rows(pairs))):
        from_json = datasets.load_dataset("json", data_files=str(out / f"{name}.jsonl"),
                                          split="train", cache_dir=str(tmp_path / "cache"))
        from_disk = datasets.load_from_disk(str(out / "hf" / name))
        for ds in (from_json, from_disk):
            assert ds.num_rows == len(pairs)
            assert ds.to_list() == rows
    dpo = datasets.load_from_disk(str(out / "hf" / "dpo"))
    assert {"prompt", "chosen", "rejected"} <= set(dpo.column_names)


@pytest.mark.slow
def test_trl_sees_the_formats_it_expects(tmp_path):
    require_module("datasets")
    data_utils = require_module("trl.data_utils")
    import datasets

    write_formats(MIXED, tmp_path / "chat", ["dpo", "sft"])
    write_formats(PLAIN, tmp_path / "plain", ["dpo"])
    load = lambda p: datasets.load_dataset("json", data_files=str(p), split="train",  # noqa: E731
                                           cache_dir=str(tmp_path / "cache"))
    assert data_utils.is_conversational(load(tmp_path / "chat" / "dpo.jsonl")[0])
    assert data_utils.is_conversational(load(tmp_path / "chat" / "sft.jsonl")[0])
    assert not data_utils.is_conversational(load(tmp_path / "plain" / "dpo.jsonl")[0])
