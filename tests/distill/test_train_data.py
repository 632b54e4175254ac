"""Reading and checking the data of `rain distill train` (no model, no training packages)."""

from __future__ import annotations

import json

import pytest

from rainlm.distill.formats import write_formats
from rainlm.distill.train_data import read_training_data, resolve_data_path
from rainlm.errors import ConfigError
from tests.needs import require_module

from .helpers import write_jsonl
from .test_formats import make_pair

CHAT_ROW = {"prompt": [{"role": "system", "content": "Be brief."},
                       {"role": "user", "content": "How do I manage my time?"}],
            "chosen": [{"role": "assistant", "content": "Plan your day."}],
            "rejected": [{"role": "assistant", "content": "Time is a skill."}],
            "margin": 2.0, "judge": "banned-words@1", "kind": "rain-vs-greedy", "source": "x"}
PLAIN_ROW = {"prompt": "How do I manage my time?", "chosen": "Plan your day.",
             "rejected": "Time is a skill."}


def test_conversational_and_standard_dpo_rows_become_chat_rows(tmp_path):
    data = read_training_data(write_jsonl(tmp_path / "dpo.jsonl", [CHAT_ROW, PLAIN_ROW]))
    assert len(data.examples) == 2 and len(data.sha256) == 64
    rows = data.as_rows(chat=True)
    assert rows[0] == {"prompt": CHAT_ROW["prompt"], "chosen": CHAT_ROW["chosen"],
                       "rejected": CHAT_ROW["rejected"]}  # the metadata columns are dropped
    # a plain prompt is one user message: RAIN answered it through the chat template
    assert rows[1]["prompt"] == [{"role": "user", "content": "How do I manage my time?"}]
    assert rows[1]["rejected"] == [{"role": "assistant", "content": "Time is a skill."}]


def test_models_without_a_chat_template_get_plain_transcripts(tmp_path):
    rows = read_training_data(write_jsonl(tmp_path / "dpo.jsonl", [CHAT_ROW])).as_rows(chat=False)
    assert rows == [{"prompt": "Be brief.\n\nHuman: How do I manage my time?\n\nAssistant:",
                     "chosen": " Plan your day.", "rejected": " Time is a skill."}]


def test_sft_reads_messages_and_the_chosen_answers_of_dpo_rows(tmp_path):
    sft = write_jsonl(tmp_path / "sft.jsonl", [
        {"messages": [*CHAT_ROW["prompt"], {"role": "assistant", "content": "Plan."}]}])
    rows = read_training_data(sft, "sft").as_rows(chat=True)
    assert rows == [{"prompt": CHAT_ROW["prompt"],
                     "completion": [{"role": "assistant", "content": "Plan."}]}]
    dpo = write_jsonl(tmp_path / "dpo.jsonl", [PLAIN_ROW])
    assert read_training_data(dpo, "sft").as_rows(chat=False) == [
        {"prompt": "Human: How do I manage my time?\n\nAssistant:",
         "completion": " Plan your day."}]


def test_an_export_folder_gives_the_methods_file(tmp_path):
    write_formats([make_pair("Q?", "A.", "B.")], tmp_path / "data", ["dpo", "sft"])
    assert resolve_data_path(tmp_path / "data", "dpo") == tmp_path / "data" / "dpo.jsonl"
    assert resolve_data_path(tmp_path / "data", "sft") == tmp_path / "data" / "sft.jsonl"
    assert read_training_data(tmp_path / "data", "sft").examples[0].chosen == "A."
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="without dpo.jsonl or hf/dpo"):
        resolve_data_path(tmp_path / "empty", "dpo")


def test_an_hf_folder_is_read_with_datasets(tmp_path):
    require_module("datasets")
    write_formats([make_pair("Q?", "A.", "B.")], tmp_path / "data", ["hf"])
    data = read_training_data(tmp_path / "data" / "hf" / "dpo")
    assert data.as_rows(chat=True)[0]["chosen"] == [{"role": "assistant", "content": "A."}]
    assert read_training_data(tmp_path / "data").path == tmp_path / "data" / "hf" / "dpo"


@pytest.mark.parametrize("rows, tail, method, message", [
    ([], "", "dpo", "holds no rows"),
    ([PLAIN_ROW], "{not json\n", "dpo", r"line 2: not JSON"),
    ([PLAIN_ROW], "[" * 200_000 + "]" * 200_000 + "\n", "dpo", r"line 2: a JSON value nested too deeply"),
    ([PLAIN_ROW, {"prompt": "Q", "chosen": "A"}], "", "dpo",
     r"line 2: field 'rejected' is missing"),
    ([{"messages": [{"role": "user", "content": "Q"}]}], "", "dpo",
     r"field 'prompt' is missing; this is SFT data \(sft.jsonl\)"),
    ([{**PLAIN_ROW, "chosen": ""}], "", "dpo", "field 'chosen' is empty"),
    ([{**PLAIN_ROW, "chosen": 3}], "", "dpo", "field 'chosen' must be a string"),
    ([{**PLAIN_ROW, "rejected": PLAIN_ROW["chosen"]}], "", "dpo", "are the same answer"),
    ([{**PLAIN_ROW, "prompt": [{"role": "bot", "content": "Q"}]}], "", "dpo",
     r"field 'prompt', message 1: needs a role"),
    ([{"messages": [{"role": "user", "content": "Q"}]}], "", "sft",
     "must end with the assistant's answer"),
    ([["not", "an", "object"]], "", "sft", "a row must be a JSON object"),
])
def test_bad_rows_name_the_file_line_and_field(tmp_path, rows, tail, method, message):
    path = write_jsonl(tmp_path / "data.jsonl", rows, tail)
    with pytest.raises(ConfigError, match=message) as info:
        read_training_data(path, method)
    assert str(path) in str(info.value)


def test_blank_lines_are_skipped_and_line_numbers_kept(tmp_path):
    path = tmp_path / "dpo.jsonl"
    path.write_text(json.dumps(PLAIN_ROW) + "\n\n" + json.dumps({"prompt": "Q"}) + "\n")
    with pytest.raises(ConfigError, match="line 3: field 'chosen' is missing"):
        read_training_data(path)
