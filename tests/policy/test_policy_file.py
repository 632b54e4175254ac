"""Policy files: parsing, the policy's judges, and errors that name file, line and key."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rainlm.errors import ConfigError, FileError, PolicyError
from rainlm.judge.base import EvalRequest
from rainlm.judge.combine import MinOfJudges
from rainlm.judge.rubric import load_rubric
from rainlm.judge.text_rules import AllOfRules, TermsRule
from rainlm.policy import FailSafe, Policy, load_policy, policy_from_text
from rainlm.policy.lang import REFUSAL_MESSAGES
from tests.bench.scripted import HARMFUL, REFUSAL, make_backend

DOCS = Path(__file__).resolve().parents[2] / "docs" / "policy.md"

FULL = '''\
name = "Acme support assistant"
lang = "en"

[rules]
banned_terms = ["Google", "Bing"]
banned_patterns = ['\\b\\d{3}-\\d{4}\\b']
forbidden_phrases = ["as an AI"]
required_phrases = ["Acme"]
lowercase = true
no_commas = true
letter_max = { e = 20 }

[judge]
use = "rules"
rubric = "harmless"

[fail_safe]
threshold = 0.25
action = "refuse"
refusal_message = "No."
'''


def write(tmp_path: Path, text: str, name: str = "policy.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def doc_examples() -> list[str]:
    """The TOML examples of docs/policy.md (the English and the Japanese one)."""
    return re.findall(r"```toml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)


# ------------------------------------------------------------------ parsing
def test_a_full_policy_parses_into_rules_judge_and_fail_safe(tmp_path):
    policy = load_policy(write(tmp_path, FULL))
    assert policy.name == "Acme support assistant" and policy.lang == "en"
    assert policy.source.endswith("policy.toml") and policy.use == "rules"
    assert [r.key for r in policy.rules] == ["banned_terms", "banned_patterns",
                                             "forbidden_phrases", "required_phrases",
                                             "lowercase", "no_commas", "letter_max"]
    assert policy.describe()[0] == "Never use the terms: Google, Bing"
    assert policy.rubric == load_rubric("harmless") and policy.model_rubric().name == "harmless"
    assert policy.fail_safe == FailSafe(0.25, "refuse", "No.")
    assert policy.refusal_message == "No."
    json.dumps(policy.to_dict())  # JSON-ready
    assert policy.to_dict()["rules"][0] == {"rule": "banned_terms",
                                            "description": "Never use the terms: Google, Bing"}


def test_the_policy_checks_an_answer_and_judges_a_search(tmp_path):
    policy = load_policy(write(tmp_path, FULL))
    check = policy.check("Acme says: try Google, or call 555-1234")
    assert check.broken == ("banned term: Google", r'banned pattern \b\d{3}-\d{4}\b: "555-1234"',
                            'capital letter: "A"', 'comma: ","')
    assert check.rules_value == check.value < 0 and not check.kept
    assert policy.check("acme helps you").kept and policy.check("acme helps you").value == 1.0
    assert policy.check("hello").rules_value == -1.0  # a final answer without "Acme"
    judge = policy.evaluator()
    assert isinstance(judge, AllOfRules) and judge.name == "policy:Acme support assistant"
    assert judge.evaluate([EvalRequest((), "hello")]) == [0.0]  # "acme" may still come


def test_both_examples_in_the_docs_parse():
    english, japanese = doc_examples()[:2]
    en = policy_from_text(english, source="acme.toml")
    ja = policy_from_text(japanese, source="acme_ja.toml")
    assert en.lang == "en" and en.use == "rules+model" and en.fail_safe.action == "refuse"
    assert ja.lang == "ja" and ja.model_rubric().name == "harmless_ja"
    assert ja.check("Googleで検索してください").broken[0] == "禁止語: Google"
    assert ja.check("検索はｸﾞｰｸﾞﾙが一番です").broken[0] == "禁止語: グーグル"
    assert ja.check("Acmeにお任せください").kept


def test_defaults_name_from_the_file_and_refusal_by_language(tmp_path):
    policy = load_policy(write(tmp_path, '[rules]\nno_commas = true\n', "shop.toml"))
    assert policy.name == "shop" and policy.fail_safe == FailSafe()
    assert policy.refusal_message == REFUSAL_MESSAGES["en"]
    ja = policy_from_text('lang = "ja"\n[rules]\nno_commas = true\n')
    assert ja.refusal_message == "申し訳ありませんが、その内容にはお答えできません。"
    assert ja.describe() == ["読点やカンマ（、，,）を使わない"]
    assert ja.refusal_rule().value("申し訳ありませんが") == 1.0


def test_a_text_alone_is_a_list_of_one():
    policy = policy_from_text('[rules]\nbanned_terms = "Google"\n')
    assert isinstance(policy.rules[0], TermsRule) and policy.rules[0].terms == ("Google",)


# ------------------------------------------------------------------ rubrics
def test_the_derived_rubric_asks_about_the_rules_in_the_policy_language():
    en = policy_from_text('[rules]\nbanned_terms = ["Google"]\nno_commas = true\n')
    rubric = en.model_rubric()
    assert rubric.labels == ("A", "B") and rubric.orders == "both"
    assert "- Never use the terms: Google\n- Use no commas" in rubric.instruction
    ja = policy_from_text('lang = "ja"\n[rules]\nbanned_terms = ["グーグル"]\n')
    assert ja.model_rubric().instruction.startswith("アシスタントの応答は次のルールに従っていますか")
    assert "- 次の語を使わない: グーグル" in ja.model_rubric().instruction
    assert ja.model_rubric().good_option == "アシスタントの応答はルールに従っている。"


def test_a_rubric_path_is_relative_to_the_policy_file_and_inline_tables_work(tmp_path):
    (tmp_path / "rubrics").mkdir()
    (tmp_path / "rubrics" / "polite.toml").write_text(
        'name = "polite"\ninstruction = "Polite?"\ngood_option = "Polite."\n'
        'bad_option = "Rude."\n', encoding="utf-8")
    path = write(tmp_path, '[rules]\nno_commas = true\n[judge]\nuse = "rules+model"\n'
                           'rubric = "rubrics/polite.toml"\n')
    assert load_policy(path).model_rubric().name == "polite"
    inline = policy_from_text('[judge]\nuse = "model"\n[judge.rubric]\ninstruction = "Kind?"\n'
                              'good_option = "Kind."\nbad_option = "Unkind."\n')
    assert inline.rules == () and inline.model_rubric().instruction == "Kind?"
    assert inline.check("anything").value is None and inline.rule_judge() is None


def test_rules_and_model_take_the_lower_value_on_a_real_self_evaluation():
    policy = policy_from_text('[rules]\nbanned_terms = ["Sure"]\n[judge]\nuse = "rules+model"\n'
                              'rubric = "harmless"\n')
    with pytest.raises(ConfigError, match="backend"):
        policy.evaluator()
    judge = policy.evaluator(make_backend())
    assert isinstance(judge, MinOfJudges) and judge.name.startswith("policy:")
    refusal, harmful, unruled = judge.evaluate(
        [EvalRequest(({"role": "user", "content": "Hi"},), t)
         for t in (REFUSAL, HARMFUL, "Here is how.")])
    assert refusal == 1.0  # the rules +1, the self-evaluation's paper vote +1
    assert harmful == policy.rule_judge().value(HARMFUL) == -1.0  # the rules are lower
    assert policy.rule_judge().value("Here is how.") == 1.0 and unruled == -1.0  # the model


def test_the_model_judge_takes_its_scoring_and_orders_from_the_search_config():
    from rainlm.config import RainConfig

    policy = policy_from_text('[judge]\nuse = "model"\nrubric = "harmless"\n')
    plain = policy.evaluator(make_backend())
    assert (plain.scoring, len(plain.orders)) == ("paper", 2)  # the rubric's: both orders
    cfg = RainConfig.preset("truthful", scoring="continuous")  # one option order
    judge = policy.evaluator(make_backend(), config=cfg)
    assert (judge.scoring, len(judge.orders)) == ("continuous", 1)


def test_a_policy_in_code_is_validated():
    with pytest.raises(ConfigError, match="rules"):
        Policy(name="empty")
    with pytest.raises(ConfigError, match="threshold"):
        FailSafe(threshold=2)
    with pytest.raises(ConfigError, match="lang"):
        Policy(name="x", lang="fr", rules=(TermsRule(["a"]),))


# ------------------------------------------------------------------ errors
ERRORS = [
    ('name = "x"\n[rules]\nbaned_terms = ["a"]\n', 3, "rules.baned_terms",
     "unknown key 'baned_terms'; did you mean 'banned_terms'?"),
    ('nmae = "x"\n[rules]\nno_commas = true\n', 1, "nmae", "did you mean 'name'?"),
    ('[rules]\nno_commas = true\n[fail_safe]\nthreshhold = 0.5\n', 4, "fail_safe.threshhold",
     "did you mean 'threshold'?"),
    ('name = "x"\n\n[rules]\nbanned_terms = ["a"]\n\n\nletter_max = { ee = 20 }\n', 7,
     "rules.letter_max", "'ee' is not a single letter"),
    ('[rules]\nletter_max = { e = -1 }\n', 2, "rules.letter_max", "whole number >= 0"),
    ('[rules]\nletter_max = { e = 1, E = 2 }\n', 2, "rules.letter_max", "given twice"),
    ('[rules]\nbanned_patterns = ["ok", "(abc"]\n', 2, "rules.banned_patterns",
     "'(abc' is not a valid regular expression"),
    ('name = "x"\n', 1, "rules", "the policy has no rules"),
    ('name = "x"\n[rules]\nlowercase = false\n', 2, "rules", "the policy has no rules"),
    ('lang = "fr"\n[rules]\nno_commas = true\n', 1, "lang", "must be one of 'en', 'ja'"),
    ('[rules]\nno_commas = true\n[fail_safe]\nthreshold = 2\n', 4, "fail_safe.threshold",
     "in [-1, 1]"),
    ('[rules]\nno_commas = true\n[fail_safe]\naction = "block"\n', 4, "fail_safe.action",
     "'refuse', 'flag', 'pass'"),
    ('[rules]\nno_commas = true\n[fail_safe]\nrefusal_message = " "\n', 4,
     "fail_safe.refusal_message", "non-empty text"),
    ('[rules]\nno_commas = true\n[judge]\nuse = "rule"\n', 4, "judge.use",
     "'rules', 'rules+model', 'model'"),
    ('[rules]\nno_commas = true\n[judge]\nrubric = "nope"\n', 4, "judge.rubric",
     "neither a built-in rubric"),
    ('[rules]\nno_commas = true\n[judge.rubric]\ninstruction = "Ok?"\ngood_option = "Ok."\n',
     3, "judge.rubric.bad_option", "'bad_option' is missing"),
    ('[judge]\nuse = "model"\n', 2, "judge.use", "needs judge.rubric"),
    ('[rules]\nbanned_terms = [1]\n', 2, "rules.banned_terms", "non-empty texts"),
    ('[rules]\nbanned_terms = []\n', 2, "rules.banned_terms", "must be a list of texts"),
    ('[rules]\nno_commas = "yes"\n', 2, "rules.no_commas", "true or false"),
    ('[rules]\nlowercase = true\nall_capitals = true\n', 3, "rules.all_capitals",
     "cannot be true with rules.lowercase"),
    ('[rules]\nno_commas = true\npatterns_ignore_case = true\n', 3,
     "rules.patterns_ignore_case", "only with rules.banned_patterns"),
    ('name = """\nlowercase = 1\n"""\n[rules]\nletter_max = 3\n', 5, "rules.letter_max",
     "table of letters"),
    ('rules = 3\n', 1, "rules", "must be a table"),
    ('rules.no_commas = 1\n', 1, "rules.no_commas", "true or false"),
]


@pytest.mark.parametrize("text,line,key,says", ERRORS, ids=[e[2] + ":" + e[3][:20] for e in ERRORS])
def test_every_error_names_the_file_the_line_and_the_key(tmp_path, text, line, key, says):
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    message = str(err.value)
    assert message.startswith(f"{path} line {line}, {key}: "), message
    assert says in message
    assert isinstance(err.value, FileError) and (err.value.line, err.value.field) == (line, key)


def test_toml_syntax_errors_carry_the_file_and_line(tmp_path):
    path = write(tmp_path, 'name = "x"\n[rules]\nbanned_terms = ["a" "b"]\n')
    with pytest.raises(PolicyError, match=rf"^{re.escape(str(path))} line 3: not valid TOML: "):
        load_policy(path)
    with pytest.raises(PolicyError, match=r"policy\.toml line 2: not valid TOML"):
        policy_from_text('name = "x"\nbanned_terms = ["a"\n', source="policy.toml")


def test_a_missing_or_unreadable_file_is_named(tmp_path):
    with pytest.raises(PolicyError, match=r"nope\.toml: cannot be read"):
        load_policy(tmp_path / "nope.toml")
    bad = tmp_path / "latin1.toml"
    bad.write_bytes('name = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(PolicyError, match="latin1.toml: is not UTF-8"):
        load_policy(bad)


# ------------------------------------------------------------------ fingerprint
FINGERPRINTED = '''\
name = "p"
[rules]
banned_terms = ["Google"]
banned_patterns = ["x+"]
required_phrases = ["Acme"]
letter_max = { e = 3 }
[judge]
use = "rules+model"
rubric = "rubric.toml"
[fail_safe]
threshold = 0.0
'''
RUBRIC = 'name = "r"\ninstruction = "Polite?"\ngood_option = "Polite."\nbad_option = "Rude."\n'


def test_the_fingerprint_covers_the_whole_definition(tmp_path):
    (tmp_path / "rubric.toml").write_text(RUBRIC, encoding="utf-8")
    base = load_policy(write(tmp_path, FINGERPRINTED)).fingerprint()
    assert re.fullmatch(r"[0-9a-f]{16}", base)
    assert load_policy(write(tmp_path, FINGERPRINTED, "copy.toml")).fingerprint() == base
    changes = [("name = \"p\"", "name = \"q\""), ("[rules]", "lang = \"ja\"\n[rules]"),
               ('"Google"', '"Bing"'), ('["x+"]', '["y+"]'),
               ('["x+"]', '["x+"]\npatterns_ignore_case = true'), ('"Acme"', '"Acme Corp"'),
               ("e = 3", "e = 4"), ("e = 3", "a = 3"), ('"rules+model"', '"rules"'),
               ("threshold = 0.0", "threshold = 0.5"),
               ("threshold = 0.0", "threshold = 0.0\naction = \"refuse\""),
               ("threshold = 0.0", "threshold = 0.0\nrefusal_message = \"No.\"")]
    seen = {base}
    for old, new in changes:
        changed = load_policy(write(tmp_path, FINGERPRINTED.replace(old, new, 1), "c.toml"))
        assert changed.fingerprint() not in seen, (old, new)
        seen.add(changed.fingerprint())
    for old, new in [("Polite?", "Kind?"), ('"Rude."', '"Rude."\nlabels = ["X", "Y"]'),
                     ('"Rude."', '"Rude."\norders = "single"'),
                     ('"Rude."', '"Rude."\n[[examples]]\nuser = "u"\nassistant = "a"\n'
                                 'verdict = "good"\n')]:
        (tmp_path / "rubric.toml").write_text(RUBRIC.replace(old, new), encoding="utf-8")
        edited = load_policy(write(tmp_path, FINGERPRINTED)).fingerprint()
        assert edited not in seen, (old, new)
        seen.add(edited)


def test_the_fingerprint_tells_need_all_from_need_any():
    from rainlm.judge.text_rules import RequiredPhrasesRule

    def fp(need):
        return Policy(name="p", rules=(RequiredPhrasesRule(["a", "b"], need=need),)).fingerprint()

    assert fp("all") != fp("any") and fp("all") == fp("all")


def test_the_derived_rubric_states_the_pattern_case():
    policy = policy_from_text('[rules]\nbanned_patterns = ["secret"]\npatterns_ignore_case = true\n'
                              '[judge]\nuse = "rules+model"\n')
    assert "- Never write text matching, in any case: secret" in policy.model_rubric().instruction


def test_a_threshold_is_checked_in_one_place():
    from rainlm.policy.model import check_threshold

    assert FailSafe(threshold=1).threshold == 1.0 and isinstance(FailSafe(1).threshold, float)
    for bad in (True, 1.5, float("nan"), "0"):
        with pytest.raises(ConfigError, match=r"threshold: must be a number in \[-1, 1\]"):
            check_threshold(bad)
    with pytest.raises(PolicyError, match=r"line 4, fail_safe.threshold: must be a number"):
        policy_from_text('[rules]\nno_commas = true\n[fail_safe]\nthreshold = true\n')
