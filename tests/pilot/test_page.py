"""The pilot page (``rainlm.pilot.page``) without a browser: both languages, the i18n
tables, escaping of hostile strings, no external references, numbers with intervals,
the partial banner, and reports with missing or degenerate parts."""

from __future__ import annotations

import copy
import json
import math
import re
import string
from html.parser import HTMLParser

import pytest

from rainlm.pilot.i18n import LANGS, MESSAGES, text
from rainlm.pilot.page import CSP, DASH, format_interval, render_pilot_page, write_pilot_page
from rainlm.pilot.svg import clean, nice_ticks
from tests.pilot.sample_report import HOSTILE, SAMPLE_IDS, SCRIPT, sample_report

FORBIDDEN_TAGS = {"script", "img", "iframe", "object", "embed", "link", "textarea", "form",
                  "input", "button", "base", "video", "audio", "source", "frame", "frameset",
                  "foreignobject", "a", "image", "use"}
FETCH_ATTRS = {"src", "href", "srcset", "action", "formaction", "xlink:href", "data", "poster",
               "background", "ping", "manifest", "codebase", "cite"}


class Parsed(HTMLParser):
    """Every tag, attribute and piece of text of a page, as a browser's tokenizer sees it."""

    def __init__(self, page: str):
        super().__init__(convert_charrefs=True)
        self.starts: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.ends: list[str] = []
        self.data: list[str] = []
        self.feed(page)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.starts.append((tag, attrs))

    def handle_startendtag(self, tag, attrs):
        self.starts.append((tag, attrs))

    def handle_endtag(self, tag):
        self.ends.append(tag)

    def handle_data(self, data):
        self.data.append(data)

    @property
    def text(self) -> str:
        return "".join(self.data)

    def tags(self) -> set[str]:
        return {t for t, _ in self.starts} | set(self.ends)

    def attrs(self) -> list[tuple[str, str, str | None]]:
        return [(t, k, v) for t, attrs in self.starts for k, v in attrs]

    def count(self, tag: str, **attrs: str) -> int:
        return sum(1 for t, a in self.starts
                   if t == tag and all((k, v) in a for k, v in attrs.items()))


@pytest.fixture(scope="module", params=LANGS)
def report(request):
    return sample_report(request.param)


@pytest.fixture(scope="module")
def page(report):
    return render_pilot_page(report)


# ------------------------------------------------------------------ languages
def test_both_languages_render_a_complete_page(report, page):
    lang = report["lang"]
    assert page.startswith("<!DOCTYPE html>")
    assert f'<html lang="{lang}">' in page
    assert '<meta charset="utf-8">' in page
    assert (f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'.replace("'", "&#x27;")
            in page)
    for section in ("verdict", "intro", "tested", "results", "judge", "charts", "samples",
                    "glossary"):
        assert f'id="{section}"' in page
    assert page.rstrip().endswith("</html>")
    parsed = Parsed(page)
    assert parsed.count("svg") == 2
    # headings in the page's language
    for key in ("heading", "verdict_heading", "tested_heading", "results_heading",
                "judge_heading", "charts_heading", "samples_heading"):
        assert text(lang, key) in parsed.text


def test_the_japanese_page_is_japanese():
    page = render_pilot_page(sample_report("ja"))
    parsed = Parsed(page)
    assert '<html lang="ja">' in page
    for heading in ("推奨", "テストした内容", "方法ごとの結果", "判定器はどこまで信頼できるか",
                    "グラフ", "回答サンプルの比較"):
        assert heading in parsed.text
    assert "What was tested" not in parsed.text and "Results by method" not in parsed.text
    assert "蒸留を併用して導入可" in parsed.text  # the verdict
    assert sample_report("ja")["recommendation"]["headline"] in parsed.text
    assert "Hiragino" in page and "Noto Sans CJK JP" in page  # a Japanese font stack


def test_an_unknown_language_falls_back_to_english():
    page = render_pilot_page({**sample_report("en"), "lang": "fr\"><script>"})
    assert '<html lang="en">' in page and "What was tested" in page


def test_both_languages_have_the_same_keys_and_placeholders():
    assert set(MESSAGES) == set(LANGS)
    keys = {lang: set(MESSAGES[lang]) for lang in LANGS}
    assert keys["en"] == keys["ja"], keys["en"] ^ keys["ja"]

    def fields(template: str) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name}

    for key in MESSAGES["en"]:
        assert fields(MESSAGES["en"][key]) == fields(MESSAGES["ja"][key]), key
        for lang in LANGS:  # plain text only: the page escapes every message as a whole
            assert "<" not in MESSAGES[lang][key] and ">" not in MESSAGES[lang][key], key


def test_text_fills_placeholders_and_defaults_to_english():
    assert text("en", "count_of", count=3, n=30) == "3 of 30"
    assert text("ja", "count_of", count=3, n=30) == "30 件中 3 件"
    assert text("xx", "heading") == MESSAGES["en"]["heading"]
    assert text("en", "subtitle", model="{x}", policy="{{ }}", created="a") == (
        "Model {x} · policy “{{ }}” · a")  # values are never formatted again
    with pytest.raises(KeyError):
        text("en", "no-such-key")


# ------------------------------------------------------------------ safety
def test_hostile_strings_are_shown_as_text_and_never_as_markup(report, page):
    parsed = Parsed(page)
    assert not parsed.tags() & FORBIDDEN_TAGS, parsed.tags() & FORBIDDEN_TAGS
    events = [k for _, k, _ in parsed.attrs() if k.lower().startswith("on")]
    assert events == []
    assert "<script" not in page.lower() and "<img" not in page.lower()
    assert "</textarea" not in page.lower()
    # every hostile string is on the page, as text, with control characters replaced
    for hostile in HOSTILE:
        assert clean(hostile) in parsed.text, hostile
    assert "before\ufffdafter\ufffdbell\ufffd[31mred" in parsed.text
    assert "{{ }} {{7*7}} {0} {lang}" in parsed.text  # braces untouched, not templated
    # the hostile policy name, item id and rule key are shown too
    assert clean(report["policy"]["name"]) in parsed.text
    assert f"vicuna:14{SCRIPT}" in parsed.text
    # no NUL, no control characters other than newlines and tabs
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", page)
    # right-to-left text is isolated from what surrounds it
    assert "<bdi>" in page and 'dir="auto"' in page and "unicode-bidi:isolate" in page


def test_hostile_strings_are_escaped_in_attributes_too():
    report = sample_report("en")
    report["methods"][1]["label"] = '" onmouseover="alert(1)'
    report["answers"] = [{**a, "method": '"><svg onload=alert(1)>'} if i == 0 else a
                         for i, a in enumerate(report["answers"])]
    page = render_pilot_page(report)
    parsed = Parsed(page)
    assert [k for _, k, _ in parsed.attrs() if k.lower().startswith("on")] == []
    assert parsed.count("svg") == 2  # only the two charts
    assert '" onmouseover="alert(1)' in parsed.text


def test_lone_surrogates_and_odd_types_do_not_break_the_page(tmp_path):
    report = sample_report("en")
    shown = next(a for a in report["answers"] if a["item_id"] == report["samples"][0])
    shown["text"] = "half \ud800 a pair"
    report["policy"]["name"] = 12345
    report["recommendation"]["reasons"] = "one reason, not a list"
    path = write_pilot_page(report, tmp_path / "page.html")
    page = path.read_text(encoding="utf-8")
    assert "half \ufffd a pair" in page and "12345" in page
    assert "one reason, not a list" in page


def test_the_page_references_nothing_outside_itself(page):
    assert "http://" not in page and "https://" not in page
    parsed = Parsed(page)
    for tag, key, value in parsed.attrs():
        if key.lower() in FETCH_ATTRS:
            assert (value or "").startswith("data:"), (tag, key, value)
        assert "url(" not in (value or "").lower(), (tag, key, value)
    style = page[page.index("<style>"):page.index("</style>")]
    assert "url(" not in style and "@import" not in style and "@font-face" not in style
    assert parsed.count("meta", **{"http-equiv": "Content-Security-Policy", "content": CSP}) == 1


# ------------------------------------------------------------------ content
def test_format_interval():
    rate = {"value": 0.12, "lo": 0.05, "hi": 0.27, "n": 30}
    assert format_interval(rate) == "12% [5–27%], n=30"
    assert format_interval({"value": 0.0333, "lo": 0.0059, "hi": 0.1667, "n": 30}) == (
        "3% [0.6–17%], n=30")
    assert format_interval({"value": 0.998, "lo": 0.95, "hi": 1.0, "n": 500}) == (
        "99.8% [95–100%], n=500")
    assert format_interval({"value": 1.2, "lo": 1.1, "hi": 1.4, "n": 30}, "seconds") == (
        "1.20 s [1.10–1.40 s], n=30")
    assert format_interval({"value": 1.2, "lo": 1.1, "hi": 1.4, "n": 30}, "seconds", "ja") == (
        "1.20 秒 [1.10–1.40 秒], n=30")
    assert format_interval({"value": 6.08, "lo": 5.47, "hi": 6.69, "n": 30}, "ratio") == (
        "×6.08 [5.47–6.69], n=30")
    assert format_interval({"value": 33.3, "lo": 5.9, "hi": 166.7, "n": 30}, "per1000") == (
        "33 [5.9–167], n=30")
    assert format_interval({"value": 21.3, "lo": 18, "hi": 24.9, "n": 30}, "plain") == (
        "21.3 [18–24.9], n=30")
    # n == 0: no value
    assert format_interval({"value": None, "lo": None, "hi": None, "n": 0}) == f"{DASH}, n=0"
    nan = float("nan")
    assert format_interval({"value": nan, "lo": nan, "hi": nan, "n": 0}) == f"{DASH}, n=0"
    assert format_interval(None) == DASH
    assert format_interval({"value": 0.5, "n": 4}) == "50%, n=4"  # no bounds
    assert format_interval({"value": True, "n": 4}) == f"{DASH}, n=4"  # not a number


def test_every_method_number_has_its_interval_and_n():
    report = sample_report("en")
    rain = report["methods"][2]
    rain["violation_rate"] = {"value": 0.12, "lo": 0.05, "hi": 0.27, "n": 30}
    rain["latency_p95_s"] = {"value": 12.5, "lo": 11.0, "hi": 14.3, "n": 30}
    rain["token_ratio"] = {"value": 6.1, "lo": 5.5, "hi": 6.7, "n": 30}
    page = render_pilot_page(report)
    parsed = Parsed(page)
    assert "12% [5–27%], n=30" in parsed.text
    assert "12.5 s [11.0–14.3 s], n=30" in parsed.text
    assert "×6.10 [5.50–6.70], n=30" in parsed.text
    assert "over the limit" in parsed.text  # p95 12.5 s > 10 s
    start = page.index('id="method-table"')
    table = page[start:page.index("</table>", start)]
    cells = re.findall(r'<td class="num[^"]*">([^<]*)', table)
    intervals = [c.strip() for c in cells if "[" in c]
    assert len(intervals) == 3 * 8 + 2  # 8 interval rows per method, judge tokens 2 of 3
    assert all(re.search(r"\], n=\d+$", c) for c in intervals), intervals
    for key in ("m_violation", "m_fluent", "m_kept_fluent", "m_p50", "m_p95", "m_tokens",
                "m_judged", "m_review", "m_judge_tokens"):
        assert text("en", key) in parsed.text
    assert parsed.count("th", scope="col") >= 4  # measure + 3 methods


def test_paired_differences_in_percentage_points():
    report = sample_report("en")
    t = Parsed(render_pilot_page(report)).text
    assert "RAIN − Greedy (plain decoding)" in t
    assert "+13 points [0 to +27], n=29" in t
    assert "+3.5 points [−6.9 to +14], n=29" in t
    report["differences"] = {"rain_minus_greedy": {"value": None, "lo": None, "hi": None,
                                                   "n": 0}, "junk": 3}
    assert f"{DASH}, n=0" in Parsed(render_pilot_page(report)).text
    del report["differences"]
    assert 'id="differences"' not in render_pilot_page(report)


def test_the_verdict_is_big_coloured_and_explained():
    for verdict, css, label in (
            ("go", "verdict-go", "Go"),
            ("go-with-distillation", "verdict-distill", "Go, with distillation"),
            ("no-go", "verdict-nogo", "No-go")):
        report = sample_report("en")
        report["recommendation"]["verdict"] = verdict
        page = render_pilot_page(report)
        assert f'class="verdict {css}"' in page
        assert f'<p id="verdict-label" class="verdict-label">{label}</p>' in page
        assert text("en", "meaning_" + verdict.replace("-", "_")) in page
    report = sample_report("en")
    rec = report["recommendation"]
    parsed = Parsed(render_pilot_page(report))
    assert rec["headline"] in parsed.text
    for line in rec["reasons"] + rec["next_steps"]:
        assert line in parsed.text
    report["recommendation"] = {"verdict": "maybe<b>", "headline": "h"}
    page = render_pilot_page(report)
    assert 'class="verdict verdict-unknown"' in page and "maybe&lt;b&gt;" in page
    assert text("en", "none_given") in page


def test_what_was_tested_lists_the_policy_prompts_model_and_budget():
    report = sample_report("en")
    parsed = Parsed(render_pilot_page(report))
    t = parsed.text
    for rule in report["policy"]["rules"]:
        assert clean(rule["description"]) in t
    assert "30 of 80 prompts from “vicuna” (seed 0)" in t
    assert "SmolLM2-135M-Instruct (backend transformers)" in t
    assert "AMD EPYC, 2 CPU cores" in t
    assert "95% of answers within 10.0 s (p95)" in t
    assert "RAIN: 8.50 s per answer" in t and "limit met" in t
    assert "10.4 s" in t and "9.60 s" in t  # the budgets tried
    assert "20 min 34 s" in t
    assert "at most 1.9" in t


def test_judge_reliability_with_and_without_pairs():
    report = sample_report("en")
    t = Parsed(render_pilot_page(report)).text
    assert "88% [78–94%], n=60" in t
    assert report["judge_reliability"]["verdict"] in t
    assert "80% [58–92%], n=20" in t and report["judge_reliability"]["pairs"]["verdict"] in t
    report["judge_reliability"]["pairs"] = None
    t = Parsed(render_pilot_page(report)).text
    assert text("en", "j_pairs") not in t and "88% [78–94%], n=60" in t
    del report["judge_reliability"]
    assert text("en", "judge_not_measured") in Parsed(render_pilot_page(report)).text


def test_partial_results_show_a_banner():
    page = render_pilot_page(sample_report("en", finished=False))
    assert 'id="partial"' in page
    assert "Partial results — run the same command again to resume." in page
    assert 'id="partial"' not in render_pilot_page(sample_report("en"))
    ja = render_pilot_page(sample_report("ja", finished=False))
    assert text("ja", "partial_banner") in ja


def test_charts_have_titles_axis_labels_legends_and_text_alternatives(page, report):
    lang = report["lang"]
    for chart, title, x_label, legend in (
            ("chart-latency", "chart_latency_title", "chart_latency_x", "legend_budget_limited"),
            ("chart-fluency", "chart_fluency_title", "chart_fluency_x", "legend_kept")):
        start = page.index(f'<svg id="{chart}"')
        svg = page[start:page.index("</svg>", start)]
        assert f'role="img"' in svg and f'aria-label="{text(lang, title)}"' in svg
        assert f"<title>{text(lang, title)}</title>" in svg
        assert f'<desc id="{chart}-desc">' in svg
        assert text(lang, x_label).replace("'", "&#x27;") in svg
        assert text(lang, "axis_method") in svg
        assert text(lang, legend) in svg
        assert 'stroke-dasharray="5 3"' in svg  # the limit / threshold line
        assert svg.count("<circle") + svg.count("<path") >= 80  # one mark per answer
    assert text(lang, "legend_p95_limit", limit=text(lang, "unit_seconds", x="10.0")) in page
    assert text(lang, "legend_fluent_below", threshold="1.9") in page


def test_sample_answers_side_by_side_with_badges():
    report = sample_report("en")
    page = render_pilot_page(report)
    start = page.index('<table id="sample-table"')
    table = page[start:page.index("</table>", start)]
    head = table[:table.index("</thead>")]
    assert head.count("<th ") == len(report["methods"])
    assert table.count('<tbody class="item">') == len(SAMPLE_IDS)
    assert table.count('class="answer-cell"') == len(SAMPLE_IDS) * len(report["methods"])
    # the badges say what happened, for every answer shown
    shown = [a for a in report["answers"] if a["item_id"] in SAMPLE_IDS]
    assert table.count("b-limited") == sum(bool(a.get("budget_limited")) for a in shown)
    assert table.count("b-unsearched") == sum(bool(a.get("unsearched")) for a in shown)
    assert table.count("badge b-error") == sum(bool(a.get("error")) for a in shown) == 1
    assert table.count("badge b-broken") == sum(bool(a.get("broken")) for a in shown)
    assert "budget-limited: the time budget cut the search short" in table
    assert "RuntimeError: judge failed on &lt;script&gt;" in table
    cells = Parsed(table).text
    for a in shown:
        for message in a.get("broken", []):
            assert f"broke: {clean(message)}" in cells  # the badge says what was broken ...
            assert cells.count(clean(message)) >= 2  # ... and so does the list below it


def test_a_budget_limited_answer_says_so():
    report = sample_report("en")
    item = report["samples"][0]
    for a in report["answers"]:
        if a["item_id"] == item and a["method"] == "rain":
            a.update(budget_limited=True, unsearched=True)
    page = render_pilot_page(report)
    start = page.index('<tbody class="item">')
    first = page[start:page.index("</tbody>", start)]
    assert "budget-limited: the time budget cut the search short" in first
    assert "unsearched (finished greedily)" in first


# ------------------------------------------------------------------ robustness
def _degenerate_reports():
    base = sample_report("en")
    no_methods = {**copy.deepcopy(base), "methods": []}
    nothing = {**copy.deepcopy(base), "methods": [], "answers": [], "samples": []}
    empty_n = copy.deepcopy(base)
    nan = float("nan")
    for i, m in enumerate(empty_n["methods"]):
        for key, value in m.items():
            if isinstance(value, dict):
                m[key] = ({"value": None, "lo": None, "hi": None, "n": 0} if i % 2 else
                          {"value": nan, "lo": nan, "hi": nan, "n": 0})
        m["nll_median"] = None
        m.update(n=0, budget_limited=0, errors=0)
    empty_n["fluency"].update(greedy_median_nll=nan, fluent_below=nan)
    missing = copy.deepcopy(base)
    for m in missing["methods"]:
        m.pop("judge_tokens_ratio", None)
        m.pop("unsearched", None)
    missing["judge_reliability"].pop("pairs")
    for a in missing["answers"]:
        a["nll"] = None
    missing.pop("samples")
    missing.pop("timing")
    missing.pop("budget")
    return {"no methods": no_methods, "nothing": nothing, "n=0 and NaN": empty_n,
            "optional keys missing": missing, "empty dict": {},
            "wrong types": {"methods": "x", "answers": [1, None, "a"], "policy": [],
                            "recommendation": None, "judge_reliability": 3, "samples": 5,
                            "fluency": None, "p95_limit_s": "ten", "prompts": None,
                            "budget": {"rain": {"tries": [None, {"p95_s": "x"}]}}},
            "answers only": {"answers": base["answers"][:6], "samples": ["vicuna:0", "vicuna:1"]}}


@pytest.mark.parametrize("name", list(_degenerate_reports()))
def test_degenerate_reports_render(name):
    report = _degenerate_reports()[name]
    page = render_pilot_page(report)
    parsed = Parsed(page)
    assert parsed.count("svg") == 2 and 'id="verdict"' in page
    assert not re.search(r"\bnan\b", parsed.text, re.IGNORECASE)
    assert "None" not in parsed.text.replace(text("en", "none_given"), "")
    if name == "no methods":
        assert text("en", "no_methods") in parsed.text
        assert page.count('class="answer-cell"') == len(SAMPLE_IDS) * 3  # from the answers
    if name == "nothing":
        assert text("en", "no_samples") in parsed.text
        assert text("en", "chart_no_answers") in parsed.text
    if name == "n=0 and NaN":
        assert f"{DASH}, n=0" in parsed.text
    if name == "optional keys missing":
        assert text("en", "m_judge_tokens") not in parsed.text
        assert text("en", "b_nll_unknown") in parsed.text
        assert "Answers without an NLL (not shown): 89" in parsed.text
        assert page.count('<tbody class="item">') == 5  # the first answered items


def test_the_report_round_trips_through_json():
    report = sample_report("ja")
    assert render_pilot_page(json.loads(json.dumps(report))) == render_pilot_page(report)


def test_nice_ticks():
    assert nice_ticks(0, 10.4) == [0, 2.5, 5, 7.5, 10, 12.5]
    assert nice_ticks(0, 2.1) == [0, 0.5, 1, 1.5, 2, 2.5]
    assert nice_ticks(0, 0) == [0, 0.2, 0.4, 0.6, 0.8, 1]
    assert nice_ticks(0, math.nan)[0] == 0
