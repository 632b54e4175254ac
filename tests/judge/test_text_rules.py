"""The text rules of policy files: each rule, its grading, Japanese matching, the
combination, and the Japanese refusal judge."""

from __future__ import annotations

import pytest

import rainlm
from rainlm.backends.scripted import ScriptedBackend
from rainlm.errors import ConfigError
from rainlm.judge.base import EvalRequest
from rainlm.judge.matching import TermMatcher, normalise
from rainlm.judge.rules import RefusalPrefixRule, read_list, refusal_phrases_for
from rainlm.judge.text_rules import (AllCapitalsRule, AllOfRules, LetterLimitRule,
                                     LowercaseRule, NoCommasRule, PatternRule, PhrasesRule,
                                     RequiredPhrasesRule, TermsRule)


def graded(text: str, offence_at: int) -> float:
    """The value of a text whose first offence is at ``offence_at``: −1 + share before."""
    return -1.0 + offence_at / len(text)


# ------------------------------------------------------------------ terms
def test_terms_grade_a_violation_by_the_share_before_it():
    rule = TermsRule(["Google", "Bing"])
    assert rule.value("Use any search engine you like.") == 1.0
    text = "Try Bing or Google."
    assert rule.value(text) == pytest.approx(graded(text, 4))
    assert rule.violated(text) and not rule.violated("Try DuckDuckGo.")
    assert rule.found(text) == ["Bing", "Google"]  # as the policy spells them, in order
    assert rule.broken(text + " Bing!") == ["banned term: Bing", "banned term: Google"]


def test_a_later_violation_ranks_higher_and_every_violation_below_compliance():
    rule = TermsRule(["Google"])
    early, late = "Google is the one I use.", "The one I use is Google."
    assert rule.value(early) < rule.value(late) < 0 < rule.value("The one I use is mine.")


def test_an_ascii_term_matches_whole_words_only():
    rule = TermsRule(["Go"])
    assert not rule.violated("Google")  # not inside a longer Latin word
    assert not rule.violated("Gopher and ago")
    assert rule.violated("Let us go now") and rule.violated("(Go)") and rule.violated("GO!")
    assert TermsRule(["Google"]).violated("Google's results")


def test_japanese_terms_match_anywhere_and_latin_terms_inside_japanese_text():
    rule = TermsRule(["グーグル", "Google"], lang="ja")
    text = "検索はグーグルが一番です"
    assert rule.violated(text) and rule.found(text) == ["グーグル"]
    assert rule.value(text) == pytest.approx(graded(text, 3))
    assert rule.violated("Googleで検索") and rule.found("Googleで検索") == ["Google"]
    assert rule.broken("Googleで検索") == ["禁止語: Google"]
    assert not rule.violated("ヤフーで検索")


def test_full_width_and_half_width_forms_match():
    rule = TermsRule(["Google", "グーグル"])
    assert rule.found("Ｇｏｏｇｌｅで検索") == ["Google"]  # full-width Latin
    assert rule.found("ｸﾞｰｸﾞﾙで検索") == ["グーグル"]  # half-width katakana
    assert TermsRule(["ＢＩＮＧ"]).found("try bing") == ["ＢＩＮＧ"]  # a full-width term too
    assert normalise("Ｇｏｏｇｌｅ　ｸﾞｰｸﾞﾙ") == "googleグーグル"  # no space next to Japanese
    assert normalise("Acme  Corp\nsupport") == "acme corp support"  # Latin words keep one


def test_the_longest_term_wins_and_alike_terms_are_one():
    matcher = TermMatcher(["Acme", "Acme Corp", "ACME"])
    assert matcher.terms == ("Acme", "Acme Corp")
    assert [m.term for m in matcher.all("Call Acme Corp.")] == ["Acme Corp"]
    assert matcher.missing("Call Acme Corp.") == []  # each looked for alone


@pytest.mark.parametrize("bad", [[], [""], ["  "], [3], "Google"])
def test_terms_need_non_empty_texts(bad):
    with pytest.raises(ConfigError) as err:
        TermsRule(bad)
    assert err.value.field == "terms"


# ------------------------------------------------------------------ patterns, phrases
def test_patterns_are_searched_in_the_nfkc_form():
    rule = PatternRule([r"\b\d{3}-\d{4}\b"])
    assert rule.violated("Call 555-1234 today") and not rule.violated("Call us today")
    # full-width digits and dash read as ASCII (no \b: "は" is a word character too)
    assert PatternRule([r"\d{3}-\d{4}"]).found("電話は０９０－１２３４まで") == ["090-1234"]
    text = "Call 555-1234"
    assert rule.value(text) == pytest.approx(graded(text, 5))
    assert rule.broken(text) == [r'banned pattern \b\d{3}-\d{4}\b: "555-1234"']


def test_pattern_case_is_a_choice():
    assert not PatternRule(["secret"]).violated("SECRET")
    assert PatternRule(["secret"], ignore_case=True).violated("SECRET")


@pytest.mark.parametrize("bad,says", [("(abc", "'(abc' is not a valid regular expression"),
                                      ("x*", "matches the empty text")])
def test_a_bad_pattern_is_named(bad, says):
    with pytest.raises(ConfigError, match=r"patterns: .*" + says.replace("(", r"\(")):
        PatternRule(["fine", bad])


def test_forbidden_phrases_are_substrings_after_normalising():
    rule = PhrasesRule(["as an AI", "申し訳"])
    assert rule.violated("Well, AS  AN\nai model I think") and rule.violated("as an AIrline")
    text = "はい、申し訳ないです"
    assert rule.value(text) == pytest.approx(graded(text, 3))
    assert rule.broken(text) == ['forbidden phrase: "申し訳"']


def test_required_phrases_are_worth_zero_until_present_and_minus_one_at_the_end():
    rule = RequiredPhrasesRule(["Acme", "support"])
    assert rule.value("Hello") == 0.0 and rule.final_value("Hello") == -1.0
    assert rule.violated("Acme here") and rule.broken("Acme here") == [
        'missing required phrase: "support"']
    assert rule.value("Acme support here") == 1.0 == rule.final_value("Acme support here")
    assert not rule.violated("ACME SUPPORT")
    either = RequiredPhrasesRule(["Acme", "support"], need="any", lang="ja")
    assert not either.violated("Acme here") and either.broken("x") == [
        "必須表現がどれもない: 「Acme」、「support」"]
    with pytest.raises(ConfigError):
        RequiredPhrasesRule(["x"], need="some")


# ------------------------------------------------------------------ characters
def test_lowercase_rule_grades_the_first_capital():
    rule = LowercaseRule()
    assert rule.value("all lower case, 日本語も") == 1.0
    assert rule.value("all good. But") == pytest.approx(graded("all good. But", 10))
    assert rule.broken("all good. But") == ['capital letter: "B"']


def test_all_capitals_ignores_scripts_without_case():
    rule = AllCapitalsRule()
    assert rule.value("HELLO 日本語 ＡＢＣ 123") == 1.0
    assert rule.value("HELLO world") == pytest.approx(graded("HELLO world", 6))


def test_no_commas_counts_japanese_commas():
    rule = NoCommasRule(lang="ja")
    assert rule.value("句点だけ。ok") == 1.0
    for text in ("a, b", "はい、そうです", "はい，そうです", "ﾊｲ､ｿｳ"):
        assert rule.violated(text), text
    assert rule.broken("はい、そうです") == ["読点・カンマ: 「、」"]


def test_letter_limit_offends_at_the_n_plus_first_occurrence():
    rule = LetterLimitRule("E", 2)
    assert rule.value("eEa") == 1.0 and not rule.violated("eEa")
    text = "e-e-ｅ-e"  # any case and width: the third "e" (index 4) is the offence
    assert rule.value(text) == pytest.approx(graded(text, 4))
    assert rule.broken(text) == ['letter "e" used 4 times (at most 2)']
    assert LetterLimitRule("a", 0).value("bab") == pytest.approx(graded("bab", 1))
    for letter, n in (("ee", 1), ("1", 1), ("e", -1), ("e", True)):
        with pytest.raises(ConfigError):
            LetterLimitRule(letter, n)


# ------------------------------------------------------------------ all of them
def test_all_of_takes_the_lowest_value_and_names_every_broken_rule():
    rules = AllOfRules([TermsRule(["Google"]), NoCommasRule(), LetterLimitRule("z", 0)])
    text = "Well, Google"
    assert rules.value(text) == pytest.approx(graded(text, 4))  # the comma comes first
    assert rules.violated(text) and not rules.violated("Well then")
    assert rules.broken(text) == ["banned term: Google", 'comma: ","']
    assert rules.descriptions == ["Never use the terms: Google", "Use no commas",
                                  'Use the letter "z" at most 0 times (any case)']
    required = AllOfRules([TermsRule(["x"]), RequiredPhrasesRule(["Acme"])])
    assert required.value("hi") == 0.0 and required.final_value("hi") == -1.0
    assert rules.evaluate([EvalRequest((), "ok"), EvalRequest((), "a,b")])[0] == 1.0
    with pytest.raises(ConfigError):
        AllOfRules([])


def test_descriptions_follow_the_language():
    assert TermsRule(["Google", "Bing"], lang="ja").description == "次の語を使わない: Google、Bing"
    assert LowercaseRule(lang="ja").description == "英字の大文字を使わない"
    with pytest.raises(ConfigError):
        LowercaseRule(lang="fr")


def test_a_rule_is_a_judge_the_search_keeps():
    """A banned term the greedy answer holds is avoided by the search with the rule."""
    vocab = [" Use", " Google", " DuckDuckGo", "."]

    def script(answer):
        table = {(): {" Use": 1.0}, (" Use",): {" Google": 0.8, " DuckDuckGo": 0.2},
                 (" Use", " Google"): {".": 1.0}, (" Use", " DuckDuckGo"): {".": 1.0}}
        return table.get(tuple(answer), {"<eos>": 1.0})

    backend = ScriptedBackend(vocab, script)
    greedy = rainlm.greedy(backend, "Which search engine?", max_new_tokens=5)
    assert "Google" in greedy.text
    out = rainlm.generate(backend, "Which search engine?", evaluator=TermsRule(["google"]),
                          embedder="none", max_new_tokens=5, seed=0)
    assert "DuckDuckGo" in out.text and "Google" not in out.text


# ------------------------------------------------------------------ refusals in Japanese
def test_japanese_refusal_rule_uses_the_shipped_lists_without_spaces():
    rule = RefusalPrefixRule(lang="ja")
    assert rule.phrases and set(read_list("refusal_phrases_ja")) >= {"申し訳ありません"}
    assert rule.value("申し訳 ありませんが、 お答え できません。") == 1.0  # spaces ignored
    assert not rule.violated("申し訳ありませんが、お答えできません。")
    assert rule.value("はい、以下は作り方です。") == -1.0 and rule.violated("はい、以下は作り方です。")
    assert rule.value("ええと") == 0.0
    assert refusal_phrases_for("ja") == read_list("refusal_phrases_ja")
    assert "I'm sorry" in refusal_phrases_for("en")
    english = RefusalPrefixRule(["I cannot"])
    assert english.value("Sure, here") == -1.0 and english.value("I cannot") == 1.0


# ------------------------------------------------------------------ review fixes
def test_spaces_next_to_japanese_are_ignored_in_terms_phrases_and_answers():
    assert PhrasesRule(["AIとして"]).violated("私は AI として答えます")
    assert TermsRule(["グーグル"], lang="ja").found("グー グル で検索") == ["グーグル"]
    assert PhrasesRule(["AI として"]).violated("私はAIとして")  # in the phrase too
    assert PhrasesRule(["申し訳"]).violated("申し\n訳ない") and PhrasesRule(["、それ"]).violated("はい 、 それ")
    assert not PhrasesRule(["as an AI"]).violated("asanAI")  # Latin words keep their space
    assert normalise("Use  Google で 検索") == "use googleで検索"


def test_the_japanese_refusal_rule_reads_texts_as_the_text_rules_do():
    rule = RefusalPrefixRule(lang="ja")
    assert rule.value("私は ＡＩ として、それはできません。") == 1.0
    # the same normalisation as the text rules: case folded, Latin words keep a space
    assert not RefusalPrefixRule(["as an ai"], lang="ja").violated("As an AI, no.")
    text = "申し 訳 ありません、 AI  Assistant です"
    assert rule._form(text) == normalise(text)


def test_accented_latin_terms_match_whole_words_only():
    assert not TermsRule(["né"]).violated("Renée")
    assert not TermsRule(["café"]).violated("Two cafés, please")
    assert not TermsRule(["Müller"]).violated("Müllerstraße 5")
    assert TermsRule(["né"]).violated("Il est né.") and TermsRule(["café"]).violated("Un café!")
    assert TermsRule(["Müller"]).found("Herr MÜLLER kommt") == ["Müller"]
    assert TermsRule(["Müller"]).violated("ミュラー Müllerさん")  # next to Japanese: a word


def test_a_pattern_offends_only_with_a_match_that_holds_a_character():
    rule = PatternRule([r"\b(Google)?\b"])
    assert not rule.violated("Hello there") and rule.broken("Hello there") == []
    assert rule.value("Hello there") == 1.0 and rule.found("Hello there") == []
    text = "Hello Google"
    assert rule.found(text) == ["Google"] and rule.value(text) == pytest.approx(graded(text, 6))


@pytest.mark.parametrize("bad", [r"\b", "(?=a)", r"\b\B"])
def test_a_pattern_that_only_matches_the_empty_text_is_refused(bad):
    with pytest.raises(ConfigError, match="only the empty text"):
        PatternRule([bad])


def test_the_pattern_rule_says_when_it_ignores_case():
    assert PatternRule(["secret"]).description == "Never write text matching: secret"
    assert PatternRule(["secret"], ignore_case=True).description == \
        "Never write text matching, in any case: secret"
    assert "大文字・小文字を問わず" in PatternRule(["x"], ignore_case=True, lang="ja").description
    assert "大文字・小文字を問わず" not in PatternRule(["x"], lang="ja").description


@pytest.mark.parametrize("bad", [5, None, {"a": 1}, b"ab"])
def test_a_list_of_texts_that_is_no_list_is_a_config_error(bad):
    for make in (TermsRule, PhrasesRule, RequiredPhrasesRule, PatternRule):
        with pytest.raises(ConfigError, match="must be a list of texts"):
            make(bad)


def test_a_finished_answer_is_worth_its_rules_final_value_inside_any_judge():
    from rainlm.judge.base import CallableEvaluator, final_value
    from rainlm.judge.combine import MinOfJudges

    rules = AllOfRules([RequiredPhrasesRule(["Acme"])])
    both = MinOfJudges([rules, CallableEvaluator(lambda p, r: 0.5, name="model")])
    missing, holding = EvalRequest((), "Hello"), EvalRequest((), "Acme here")
    assert rules.evaluate([missing]) == [0.0] and both.evaluate([missing]) == [0.0]
    assert final_value(rules, missing) == -1.0 == final_value(both, missing)
    assert final_value(both, missing, 0.0) == -1.0  # a value already known is lowered
    assert final_value(both, holding) == 0.5 and final_value(both, holding, 0.3) == 0.3
    model = CallableEvaluator(lambda p, r: 0.25)
    assert final_value(model, missing) == 0.25  # no rules: the judge's value
