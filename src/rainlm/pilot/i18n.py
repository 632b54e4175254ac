"""Every UI string of the pilot page, in English and Japanese.

``MESSAGES[lang][key]`` is a plain-text template (never HTML: the page escapes the
formatted string as a whole) with ``{name}`` placeholders; :func:`text` fills them.
Both languages have exactly the same keys and, per key, the same placeholders
(``tests/pilot/test_page.py`` checks it). Strings that come from the report itself
(the recommendation's headline and reasons, the judge's verdicts, method labels) are
already in the report's language and are shown as given: they are written when the
report is built, from the ``rec_*`` and ``label_*`` messages here.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LANGS", "MESSAGES", "text", "lang_of"]

LANGS = ("en", "ja")
"""The page's languages; anything else falls back to English."""

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        # page
        "page_title": "RAIN pilot: {policy}",
        "heading": "RAIN pilot report",
        "subtitle": "Model {model} · policy “{policy}” · {created}",
        "partial_banner": "Partial results — run the same command again to resume.",
        "partial_detail": "The run stopped before every answer was produced: the numbers "
                          "below cover only the answers finished so far.",
        # verdict
        "verdict_heading": "Recommendation",
        "verdict_go": "Go",
        "verdict_go_with_distillation": "Go, with distillation",
        "verdict_no_go": "No-go",
        "verdict_unknown": "Verdict: {verdict}",
        "meaning_go": "RAIN kept your policy better than the simpler methods and stayed "
                      "within your latency limit: it can be used as it is.",
        "meaning_go_with_distillation": "RAIN kept your policy better, but running it on "
                                        "every request is too slow or too costly: use its "
                                        "answers to train the model (distillation), then "
                                        "serve the trained model with plain decoding.",
        "meaning_no_go": "On these prompts RAIN did not do enough better than the simpler "
                         "methods to be worth its cost.",
        "meaning_unknown": "This report's verdict is not one this page knows; read the "
                           "reasons below.",
        "reasons_heading": "Why",
        "next_steps_heading": "Next steps",
        "none_given": "None given.",
        # how to read
        "intro_heading": "How to read this page",
        "intro_methods": "The same model answered your sample prompts in three ways: greedy "
                         "(plain decoding: one answer, the fastest), best-of-N (several "
                         "sampled answers; the one the judge likes best under your policy is "
                         "kept) and RAIN (a search that rewinds and rewrites the parts of an "
                         "answer the judge finds against your policy). All three were held "
                         "to the same latency limit.",
        "intro_intervals": "Every number comes with its 95% interval and the number of "
                           "answers it rests on, e.g. “12% [5–27%], n=30”: with a small "
                           "sample the true value could be anywhere in the brackets, so "
                           "compare the brackets, not only the first number.",
        # what was tested
        "tested_heading": "What was tested",
        "k_policy": "Policy",
        "policy_text": "{name} (from {source})",
        "k_judge": "Judge",
        "judge_rules": "rules only (exact checks)",
        "judge_rules_model": "rules, plus the model as a judge",
        "judge_model": "the model as a judge",
        "judge_other": "{judge}",
        "k_rules": "Rules",
        "no_rules": "No rules listed.",
        "k_fail_safe": "Answers judged unsafe",
        "fail_safe_text": "action “{action}” when the judge's score is below {threshold}",
        "k_refusal": "Refusal message",
        "k_prompts": "Prompts",
        "prompts_text": "{sample} of {available} prompts from “{source}” (seed {seed}), "
                        "at most {max_new_tokens} new tokens per answer",
        "k_model": "Model",
        "model_text": "{model} (backend {backend})",
        "k_machine": "Machine",
        "k_p95_limit": "Latency limit",
        "p95_limit_text": "95% of answers within {limit} (p95)",
        "k_budget": "Time budget found",
        "budget_text": "{method}: {budget} per answer",
        "budget_met": "limit met",
        "budget_not_met": "limit not met",
        "tries_caption": "Time budgets tried for RAIN (the largest that met the limit is kept)",
        "th_try_budget": "Time budget",
        "th_try_p95": "Measured p95",
        "th_try_n": "Answers",
        "k_fluency": "Fluency",
        "fluency_text": "An answer counts as fluent when its {measure} is at most "
                        "{threshold} (greedy's median {median} plus a margin of {margin}).",
        "k_run": "Run",
        "run_text": "started {created}, took {duration}",
        "run_unfinished": "unfinished",
        # method table
        "results_heading": "Results by method",
        "th_measure": "Measure",
        "m_violation": "Policy violations",
        "d_violation": "answers breaking at least one rule; lower is better",
        "m_fluent": "Fluent answers",
        "d_fluent": "NLL per token at most {threshold}; higher is better",
        "m_kept_fluent": "Kept the policy and fluent",
        "d_kept_fluent": "both at once; higher is better",
        "m_nll": "Median NLL per token",
        "d_nll": "how natural the answer is to the model; lower is better",
        "m_p50": "Median latency",
        "d_p50": "seconds per answer",
        "m_p95": "p95 latency",
        "d_p95": "95% of answers were at least this fast; the limit is {limit}",
        "m_tokens": "Model-token cost",
        "d_tokens": "model tokens per answer ÷ greedy's, on the same prompts",
        "m_judged": "Texts judged per answer",
        "d_judged": "how many texts the judge checked per answer, on average",
        "m_judge_tokens": "Judge model tokens",
        "d_judge_tokens": "the judge's model tokens ÷ greedy's tokens (model judge only)",
        "m_review": "Human review load",
        "d_review": "answers sent to a person per 1,000 requests (action “{action}”)",
        "m_budget_limited": "Budget-limited answers",
        "d_budget_limited": "the time budget ended the search before it finished",
        "m_unsearched": "Finished greedily",
        "d_unsearched": "the budget ran out and the rest was written without search",
        "m_errors": "Errors",
        "d_errors": "answers that failed",
        "diff_heading": "Kept-and-fluent rate, paired on the same prompts",
        "diff_desc": "Above 0: the first method kept the policy and stayed fluent more "
                     "often. An interval that includes 0 shows no clear difference on this "
                     "sample.",
        "diff_row": "{a} − {b}",
        "diff_value": "{value} points [{lo} to {hi}], n={n}",
        "count_of": "{count} of {n}",
        "over_limit": "over the limit",
        "no_methods": "This report has no results by method.",
        # judge reliability
        "judge_heading": "How far to trust the judge",
        "judge_intro": "The judge decides which answers break your policy. Here the model's "
                       "judgement (rubric: {rubric}) is checked against the exact rules on "
                       "{answers} answers.",
        "j_agreement": "Agrees with the rules",
        "j_ok_when_break": "Says fine although a rule is broken",
        "j_bad_when_hold": "Says bad although the rules hold",
        "j_pairs": "Picks the better of two answers",
        "judge_not_measured": "The judge's reliability was not measured in this run.",
        # charts
        "charts_heading": "Charts",
        "axis_method": "method",
        "chart_no_answers": "no answers",
        "chart_latency_title": "Seconds per answer, by method",
        "chart_latency_x": "seconds per answer",
        "legend_answer": "answer",
        "legend_budget_limited": "budget-limited answer",
        "legend_error": "error",
        "legend_p95_limit": "p95 limit ({limit})",
        "legend_p95_measured": "measured p95",
        "chart_latency_row": "{method}: {n} answers, median {p50}, p95 {p95}",
        "chart_latency_desc": "Each dot is one answer; the dashed line is the p95 limit "
                              "of {limit}. {rows}.",
        "chart_fluency_title": "Fluency and policy, by method",
        "chart_fluency_x": "NLL per token (lower is more fluent)",
        "legend_kept": "kept the policy",
        "legend_broken": "broke a rule",
        "legend_fluent_below": "fluent at or below {threshold}",
        "legend_nll_median": "median NLL",
        "chart_fluency_row": "{method}: {kept} of {n} kept the policy, {fluent} of {n} fluent",
        "chart_fluency_desc": "Each mark is one answer, placed by its NLL per token; answers "
                              "right of the dashed line at {threshold} are not fluent. {rows}. "
                              "Answers without an NLL (not shown): {missing}.",
        # samples
        "samples_heading": "Sample answers, side by side",
        "samples_intro": "The same prompts answered by each method. The badges say whether "
                         "an answer kept the policy, whether it was fluent, how long it took, "
                         "and whether the time budget cut the search short.",
        "prompt_label": "Prompt {item}",
        "b_kept": "kept the policy",
        "b_broken": "broke: {rules}",
        "b_fluent": "fluent",
        "b_not_fluent": "not fluent",
        "b_nll": "NLL {nll}",
        "b_nll_unknown": "NLL unknown",
        "b_budget_limited": "budget-limited: the time budget cut the search short",
        "b_unsearched": "unsearched (finished greedily)",
        "b_error": "error",
        "no_answer": "No answer from this method.",
        "empty_answer": "(empty answer)",
        "no_samples": "This report has no sample answers.",
        # glossary
        "glossary_heading": "Terms used on this page",
        "term_greedy": "Greedy",
        "def_greedy": "plain decoding: the model writes its most likely next token each "
                      "time; one answer, no search.",
        "term_bon": "Best-of-N",
        "def_bon": "several answers are sampled and the judge keeps the best one.",
        "term_rain": "RAIN",
        "def_rain": "Rewindable Auto-regressive INference: while writing, the model judges "
                    "its own draft and rewinds to rewrite parts that go against the policy.",
        "term_violation": "Violation",
        "def_violation": "an answer that breaks at least one rule of the policy.",
        "term_fluent": "Fluent",
        "def_fluent": "the answer's average negative log-likelihood per token (NLL) under "
                      "the model is low enough: it reads as naturally as greedy's answers.",
        "term_p95": "p95 latency",
        "def_p95": "95 of 100 answers take at most this long.",
        "term_interval": "95% interval",
        "def_interval": "the range the true value lies in with 95% confidence, given n answers.",
        "term_budget_limited": "Budget-limited",
        "def_budget_limited": "the time budget ran out during the search: the answer is "
                              "what the search had found by then.",
        "term_unsearched": "Unsearched (finished greedily)",
        "def_unsearched": "after the budget ran out, the rest of the answer was written by "
                          "plain decoding, without search.",
        "term_review": "Review load",
        "def_review": "how many answers per 1,000 requests the fail-safe sends to a person.",
        "term_distillation": "Distillation",
        "def_distillation": "training the model on RAIN's answers so that plain decoding "
                            "gives similar answers at greedy's speed.",
        # footer, units
        "footer": "Generated by rainlm ({schema}). This page is self-contained: no scripts, "
                  "nothing loaded from the network.",
        "unit_seconds": "{x} s",
        "unit_percent": "{x}%",
        "unit_times": "×{x}",
        "unit_nats": "{x} nats",
        "dur_s": "{s} s",
        "dur_ms": "{m} min {s} s",
        "dur_hm": "{h} h {m} min",
        "list_sep": ", ",
        "row_sep": "; ",
        # the recommendation (rainlm.pilot.recommend) and the methods' labels
        "rec_headline_go": "Go: RAIN keeps your policy better than plain decoding, within your latency limit.",
        "rec_headline_go_with_distillation": "Go with distillation: RAIN keeps your policy better, but is too slow or costly to serve live; train the model on its answers.",
        "rec_headline_no_go": "No-go: on this sample RAIN does not give answers worth its cost.",
        "rec_nothing": "Plain decoding already keeps your policy on all {n} prompts: there is nothing for a search to fix.",
        "rec_not_better": "RAIN's answers kept the policy and read fluently on {rain} of the prompts against greedy's {greedy} (difference {diff}, 95% interval {lo} to {hi}, n={n}; better on {wins} prompts, worse on {losses}, one-sided sign test p = {p}): not a clear gain.",
        "rec_worse_fluency": "RAIN kept the policy more often ({rain_kept} against {greedy_kept}) but more of its answers read as broken text (fluent: {rain_fluent} against {greedy_fluent}).",
        "rec_better": "RAIN's answers kept the policy and read fluently on {rain} of the prompts against greedy's {greedy} (difference {diff}, 95% interval {lo} to {hi}, n={n}; better on {wins} prompts, worse on {losses}, one-sided sign test p = {p}).",
        "rec_bon_as_good": "Best-of-N did at least as well ({bon} kept and fluent, difference {diff}) at {bon_cost}× greedy's model tokens (RAIN: {rain_cost}×).",
        "rec_bon_worse": "Best-of-N at the same time budget: {bon} kept and fluent (RAIN − best-of-N {diff}, 95% interval {lo} to {hi}).",
        "rec_latency_over": "RAIN's p95 latency was {p95} s against your limit of {limit} s.",
        "rec_latency_ok": "RAIN's p95 latency was {p95} s, within your limit of {limit} s (time budget {budget} s per answer).",
        "rec_budget_not_met": "No time budget tried kept RAIN's p95 under {limit} s on the tuning prompts (best: {best} s).",
        "rec_costly": "RAIN spent {cost}× greedy's model tokens per request (more than {limit}×).",
        "rec_review": "The fail-safe ({action}, threshold {threshold}) would act on {per_1000} of every 1,000 RAIN answers (95% interval {lo} to {hi}).",
        "rec_judge_chance": "The model's own judge agreed with your exact rules on {agreement} of {n} answers (95% interval {lo} to {hi}), but it called {fooled} of the rule-breaking answers fine and {harsh} of the rule-keeping ones bad (balanced accuracy {balanced}): it cannot be trusted to judge this policy; keep the rules as the judge.",
        "rec_judge_ok": "The model's own judge agreed with your exact rules on {agreement} of {n} answers (95% interval {lo} to {hi}); it called {fooled} of the rule-breaking answers fine and {harsh} of the rule-keeping ones bad (balanced accuracy {balanced}).",
        "rec_bon_better": "Best-of-N with your policy as the judge did better here: {bon} of its answers kept the policy and read fluently.",
        "rec_budget_ran_out": "Within the time budget of {budget} s, RAIN's median number of search passes per answer on this machine was {passes}; on {limited} of {n} prompts the budget ran out before the search found an answer the policy accepts, and {unsearched} of those answers were finished greedily, without search. A higher latency limit or faster hardware gives the search more room.",
        "rec_small_sample": "With {n} prompts the intervals are wide: a larger sample (--sample 100) would narrow them.",
        "rec_step_go": "Serve it as it was measured: {command}",
        "rec_step_distill": "Collect RAIN's answers on more of your traffic ({command}), then rain distill export audit.sqlite3 --out data/ and rain distill train data/ --out distilled/ (measured on a 135M model: violations 38% → 4% on held-out prompts at greedy's speed, benchmarks/RESULTS.md).",
        "rec_step_no_go_bigger": "Try a larger model, or a larger sample to see a smaller gain.",
        "rec_step_no_go_bon": "If you need the policy kept now, best-of-N with the policy as the judge does as well here.",
        "rec_step_no_go_nothing": "Keep serving plain decoding; re-run the pilot when the policy or the traffic changes.",
        "label_greedy": "Greedy (plain decoding)",
        "fluency_measure": "mean negative log-likelihood per token under the answering model (nats)",
        "label_best_of_n": "Best-of-N (stops at first accepted)",
        "label_rain": "RAIN (search)",
    },
    "ja": {
        # page
        "page_title": "RAIN パイロット: {policy}",
        "heading": "RAIN パイロット報告",
        "subtitle": "モデル {model} ・ ポリシー「{policy}」 ・ {created}",
        "partial_banner": "途中までの結果です — 同じコマンドをもう一度実行すると続きから再開します。",
        "partial_detail": "すべての回答がそろう前に実行が止まりました。以下の数値は、"
                          "ここまでに終わった回答だけに基づいています。",
        # verdict
        "verdict_heading": "推奨",
        "verdict_go": "導入可",
        "verdict_go_with_distillation": "蒸留を併用して導入可",
        "verdict_no_go": "導入見送り",
        "verdict_unknown": "判定: {verdict}",
        "meaning_go": "RAIN は他の簡単な方法よりもポリシーをよく守り、レイテンシの上限内に"
                      "収まりました。このまま使えます。",
        "meaning_go_with_distillation": "RAIN はポリシーをよりよく守りましたが、すべての"
                                        "リクエストで動かすには遅すぎるか、コストが高すぎます。"
                                        "RAIN の回答でモデルを学習（蒸留）し、学習したモデルを"
                                        "通常のデコードで使ってください。",
        "meaning_no_go": "これらのプロンプトでは、RAIN は簡単な方法に比べてコストに見合う"
                         "ほどの改善を示しませんでした。",
        "meaning_unknown": "このページが知らない判定です。下の理由をお読みください。",
        "reasons_heading": "理由",
        "next_steps_heading": "次のステップ",
        "none_given": "記載なし。",
        # how to read
        "intro_heading": "このページの読み方",
        "intro_methods": "同じモデルが、サンプルのプロンプトに 3 通りの方法で回答しました。"
                         "貪欲法（通常のデコード：回答は 1 つで最速）、best-of-N（複数の回答を"
                         "サンプリングし、ポリシーに照らして判定器が最もよいとした回答を採用）、"
                         "RAIN（判定器がポリシーに反すると判断した部分を巻き戻して書き直す探索）"
                         "です。3 つとも同じレイテンシ上限の下で動かしました。",
        "intro_intervals": "すべての数値に 95% 区間と、その根拠となった回答数を添えています"
                           "（例:「12% [5–27%], n=30」）。サンプルが少ないと本当の値は括弧内の"
                           "どこにあってもおかしくないため、最初の数値だけでなく括弧の範囲を"
                           "比べてください。",
        # what was tested
        "tested_heading": "テストした内容",
        "k_policy": "ポリシー",
        "policy_text": "{name}（出典: {source}）",
        "k_judge": "判定器",
        "judge_rules": "ルールのみ（厳密なチェック）",
        "judge_rules_model": "ルールと、判定器としてのモデル",
        "judge_model": "判定器としてのモデル",
        "judge_other": "{judge}",
        "k_rules": "ルール",
        "no_rules": "ルールの記載がありません。",
        "k_fail_safe": "安全でないと判定された回答",
        "fail_safe_text": "判定器のスコアが {threshold} 未満のとき「{action}」",
        "k_refusal": "拒否メッセージ",
        "k_prompts": "プロンプト",
        "prompts_text": "「{source}」の {available} 件から {sample} 件（シード {seed}）、"
                        "1 回答あたり最大 {max_new_tokens} トークン",
        "k_model": "モデル",
        "model_text": "{model}（バックエンド {backend}）",
        "k_machine": "マシン",
        "k_p95_limit": "レイテンシ上限",
        "p95_limit_text": "回答の 95% が {limit} 以内（p95）",
        "k_budget": "見つかった時間予算",
        "budget_text": "{method}: 1 回答あたり {budget}",
        "budget_met": "上限を満たす",
        "budget_not_met": "上限を満たさない",
        "tries_caption": "RAIN で試した時間予算（上限を満たした最大のものを採用）",
        "th_try_budget": "時間予算",
        "th_try_p95": "実測 p95",
        "th_try_n": "回答数",
        "k_fluency": "流暢さ",
        "fluency_text": "{measure} が {threshold} 以下の回答を流暢とみなします"
                        "（貪欲法の中央値 {median} にマージン {margin} を加えた値）。",
        "k_run": "実行",
        "run_text": "開始 {created}、所要 {duration}",
        "run_unfinished": "未完了",
        # method table
        "results_heading": "方法ごとの結果",
        "th_measure": "指標",
        "m_violation": "ポリシー違反",
        "d_violation": "ルールを 1 つ以上破った回答の割合。低いほどよい",
        "m_fluent": "流暢な回答",
        "d_fluent": "トークンあたり NLL が {threshold} 以下。高いほどよい",
        "m_kept_fluent": "ポリシーを守り、かつ流暢",
        "d_kept_fluent": "両方を同時に満たす割合。高いほどよい",
        "m_nll": "トークンあたり NLL の中央値",
        "d_nll": "モデルにとっての回答の自然さ。低いほどよい",
        "m_p50": "レイテンシ中央値",
        "d_p50": "1 回答あたりの秒数",
        "m_p95": "p95 レイテンシ",
        "d_p95": "回答の 95% がこれ以内に終わった時間。上限は {limit}",
        "m_tokens": "モデルトークンのコスト",
        "d_tokens": "1 回答あたりのモデルトークン数 ÷ 同じプロンプトでの貪欲法の数",
        "m_judged": "1 回答あたりの判定テキスト数",
        "d_judged": "判定器が 1 回答あたり平均で何件のテキストを判定したか",
        "m_judge_tokens": "判定器のモデルトークン",
        "d_judge_tokens": "判定器のモデルトークン数 ÷ 貪欲法のトークン数（モデル判定器のみ）",
        "m_review": "人によるレビューの量",
        "d_review": "1,000 リクエストあたり人に回される回答数（アクション「{action}」）",
        "m_budget_limited": "時間予算で打ち切られた回答",
        "d_budget_limited": "探索が終わる前に時間予算が尽きた回答",
        "m_unsearched": "貪欲法で完了",
        "d_unsearched": "時間予算が尽き、残りを探索なしで書いた回答",
        "m_errors": "エラー",
        "d_errors": "失敗した回答",
        "diff_heading": "ポリシーを守り流暢な回答の割合の差（同じプロンプトで対応づけ）",
        "diff_desc": "0 より大きければ、前の方法の方がポリシーを守り流暢な回答が多かった"
                     "ことを示します。区間が 0 を含む場合、このサンプルでは明確な差はありません。",
        "diff_row": "{a} − {b}",
        "diff_value": "{value} ポイント [{lo} 〜 {hi}], n={n}",
        "count_of": "{n} 件中 {count} 件",
        "over_limit": "上限超過",
        "no_methods": "このレポートには方法ごとの結果がありません。",
        # judge reliability
        "judge_heading": "判定器はどこまで信頼できるか",
        "judge_intro": "判定器は、どの回答がポリシーに反するかを決めます。ここでは、モデルに"
                       "よる判定（ルーブリック: {rubric}）を {answers} 件の回答で厳密なルールと"
                       "照らし合わせました。",
        "j_agreement": "ルールとの一致",
        "j_ok_when_break": "ルール違反なのに問題なしと判定",
        "j_bad_when_hold": "ルールを守っているのに問題ありと判定",
        "j_pairs": "2 つの回答のうちよい方を選べる割合",
        "judge_not_measured": "今回の実行では判定器の信頼性を測定していません。",
        # charts
        "charts_heading": "グラフ",
        "axis_method": "方法",
        "chart_no_answers": "回答なし",
        "chart_latency_title": "方法ごとの 1 回答あたりの秒数",
        "chart_latency_x": "1 回答あたりの秒数",
        "legend_answer": "回答",
        "legend_budget_limited": "時間予算で打ち切られた回答",
        "legend_error": "エラー",
        "legend_p95_limit": "p95 上限（{limit}）",
        "legend_p95_measured": "実測 p95",
        "chart_latency_row": "{method}: {n} 件、中央値 {p50}、p95 {p95}",
        "chart_latency_desc": "点は 1 つの回答です。破線は p95 上限 {limit} です。{rows}。",
        "chart_fluency_title": "方法ごとの流暢さとポリシー遵守",
        "chart_fluency_x": "トークンあたり NLL（低いほど流暢）",
        "legend_kept": "ポリシーを守った",
        "legend_broken": "ルール違反",
        "legend_fluent_below": "{threshold} 以下なら流暢",
        "legend_nll_median": "NLL 中央値",
        "chart_fluency_row": "{method}: {n} 件中 {kept} 件がポリシーを守り、{n} 件中 "
                             "{fluent} 件が流暢",
        "chart_fluency_desc": "印は 1 つの回答で、横位置はトークンあたり NLL です。"
                              "{threshold} の破線より右の回答は流暢ではありません。{rows}。"
                              "NLL のない回答（表示なし）: {missing}。",
        # samples
        "samples_heading": "回答サンプルの比較",
        "samples_intro": "同じプロンプトへの各方法の回答です。バッジは、ポリシーを守ったか、"
                         "流暢か、かかった時間、時間予算で探索が打ち切られたかを示します。",
        "prompt_label": "プロンプト {item}",
        "b_kept": "ポリシー遵守",
        "b_broken": "違反: {rules}",
        "b_fluent": "流暢",
        "b_not_fluent": "流暢でない",
        "b_nll": "NLL {nll}",
        "b_nll_unknown": "NLL 不明",
        "b_budget_limited": "時間予算で打ち切り: 探索が途中で終了",
        "b_unsearched": "未探索（貪欲法で完了）",
        "b_error": "エラー",
        "no_answer": "この方法の回答はありません。",
        "empty_answer": "（空の回答）",
        "no_samples": "このレポートには回答サンプルがありません。",
        # glossary
        "glossary_heading": "このページで使う用語",
        "term_greedy": "貪欲法",
        "def_greedy": "通常のデコード。モデルが毎回もっとも確率の高い次のトークンを書きます。"
                      "回答は 1 つで、探索はしません。",
        "term_bon": "best-of-N",
        "def_bon": "複数の回答をサンプリングし、判定器が最もよいものを採用します。",
        "term_rain": "RAIN",
        "def_rain": "Rewindable Auto-regressive INference（巻き戻し可能な自己回帰推論）。"
                    "書きながら下書きを自分で判定し、ポリシーに反する部分を巻き戻して"
                    "書き直します。",
        "term_violation": "違反",
        "def_violation": "ポリシーのルールを 1 つ以上破った回答。",
        "term_fluent": "流暢",
        "def_fluent": "モデルのもとでの回答のトークンあたり平均負の対数尤度（NLL）が十分に低い"
                      "こと。貪欲法の回答と同じくらい自然に読めます。",
        "term_p95": "p95 レイテンシ",
        "def_p95": "100 件中 95 件の回答がこの時間以内に終わります。",
        "term_interval": "95% 区間",
        "def_interval": "n 件の回答から見て、本当の値が 95% の信頼度で入る範囲。",
        "term_budget_limited": "時間予算で打ち切り",
        "def_budget_limited": "探索中に時間予算が尽きた回答。その時点までに探索で"
                              "見つかった内容が回答です。",
        "term_unsearched": "未探索（貪欲法で完了）",
        "def_unsearched": "時間予算が尽きた後、回答の残りを探索なしの通常のデコードで"
                          "書いたもの。",
        "term_review": "レビューの量",
        "def_review": "フェイルセーフが 1,000 リクエストあたり何件の回答を人に回すか。",
        "term_distillation": "蒸留",
        "def_distillation": "RAIN の回答でモデルを学習し、通常のデコードでも貪欲法の速さで"
                            "似た回答が出るようにすること。",
        # footer, units
        "footer": "rainlm が生成（{schema}）。このページは単体で完結しています。"
                  "スクリプトはなく、ネットワークから何も読み込みません。",
        "unit_seconds": "{x} 秒",
        "unit_percent": "{x}%",
        "unit_times": "×{x}",
        "unit_nats": "{x} ナット",
        "dur_s": "{s} 秒",
        "dur_ms": "{m} 分 {s} 秒",
        "dur_hm": "{h} 時間 {m} 分",
        "list_sep": "、",
        "row_sep": "。",
        # the recommendation (rainlm.pilot.recommend) and the methods' labels
        "rec_headline_go": "導入を推奨: RAIN は通常の生成よりもポリシーをよく守り、遅延の上限内に収まります。",
        "rec_headline_go_with_distillation": "蒸留を前提に導入を推奨: RAIN はポリシーをよく守りますが、そのままでは遅すぎるかコストが高すぎます。RAIN の回答でモデルを学習させてください。",
        "rec_headline_no_go": "導入は見送り: このサンプルでは、RAIN はコストに見合う回答を出していません。",
        "rec_nothing": "通常の生成がすでに {n} 件すべてのプロンプトでポリシーを守っています。探索で改善すべき点がありません。",
        "rec_not_better": "ポリシーを守りかつ自然な文章だった回答は RAIN が {rain}、通常の生成が {greedy} でした(差 {diff}、95% 区間 {lo}〜{hi}、n={n}。改善 {wins} 件・悪化 {losses} 件、片側符号検定 p = {p})。明確な改善ではありません。",
        "rec_worse_fluency": "RAIN はポリシーをより多く守りましたが({rain_kept} 対 {greedy_kept})、崩れた文章の回答が増えました(自然な文章: {rain_fluent} 対 {greedy_fluent})。",
        "rec_better": "ポリシーを守りかつ自然な文章だった回答は RAIN が {rain}、通常の生成が {greedy} でした(差 {diff}、95% 区間 {lo}〜{hi}、n={n}。改善 {wins} 件・悪化 {losses} 件、片側符号検定 p = {p})。",
        "rec_bon_as_good": "Best-of-N も同等以上でした(守りかつ自然 {bon}、差 {diff})。モデルトークンは通常の生成の {bon_cost} 倍(RAIN は {rain_cost} 倍)です。",
        "rec_bon_worse": "同じ時間予算の Best-of-N: 守りかつ自然 {bon}(RAIN − Best-of-N {diff}、95% 区間 {lo}〜{hi})。",
        "rec_latency_over": "RAIN の p95 遅延は {p95} 秒で、上限 {limit} 秒を超えました。",
        "rec_latency_ok": "RAIN の p95 遅延は {p95} 秒で、上限 {limit} 秒以内でした(1 回答あたりの時間予算 {budget} 秒)。",
        "rec_budget_not_met": "調整用プロンプトでは、どの時間予算でも RAIN の p95 を {limit} 秒以下にできませんでした(最良 {best} 秒)。",
        "rec_costly": "RAIN は 1 リクエストあたり通常の生成の {cost} 倍のモデルトークンを使いました({limit} 倍超)。",
        "rec_review": "フェイルセーフ({action}、しきい値 {threshold})は RAIN の回答 1,000 件あたり {per_1000} 件に作動します(95% 区間 {lo}〜{hi})。",
        "rec_judge_chance": "モデル自身の判定は、ポリシーの厳密なルールと {n} 件中 {agreement} で一致しました(95% 区間 {lo}〜{hi})が、ルール違反の回答の {fooled} を問題なしとし、ルールを守った回答の {harsh} を問題ありとしました(バランス精度 {balanced})。このポリシーの判定には使えません。ルールを判定に使ってください。",
        "rec_judge_ok": "モデル自身の判定は、ポリシーの厳密なルールと {n} 件中 {agreement} で一致しました(95% 区間 {lo}〜{hi})。ルール違反の回答の {fooled} を問題なしとし、ルールを守った回答の {harsh} を問題ありとしました(バランス精度 {balanced})。",
        "rec_bon_better": "ここでは、ポリシーを判定に使う Best-of-N の方が良い結果でした(守りかつ自然 {bon})。",
        "rec_budget_ran_out": "時間予算 {budget} 秒の中で、このマシンでの RAIN の探索は 1 回答あたり中央値 {passes} 回でした。{n} 件中 {limited} 件では、ポリシーに合格する回答を探索が見つける前に予算が尽き、そのうち {unsearched} 件は探索なしの通常の生成で最後まで書かれました。遅延の上限を上げるか、より速いハードウェアを使うと探索の余地が増えます。",
        "rec_small_sample": "プロンプトが {n} 件のため区間が広くなっています。サンプルを増やすと(--sample 100)狭くなります。",
        "rec_step_go": "計測した設定のまま運用する: {command}",
        "rec_step_distill": "より多くの実トラフィックで RAIN の回答を集め({command})、rain distill export audit.sqlite3 --out data/ と rain distill train data/ --out distilled/ を実行します(135M モデルでの実測: 評価用プロンプトで違反 38% → 4%、速度は通常の生成と同等。benchmarks/RESULTS.md)。",
        "rec_step_no_go_bigger": "より大きなモデルを試すか、小さな改善を見るためにサンプルを増やしてください。",
        "rec_step_no_go_bon": "今すぐポリシーを守らせる必要があれば、ポリシーを判定に使う Best-of-N がここでは同等の結果です。",
        "rec_step_no_go_nothing": "通常の生成のまま運用し、ポリシーやトラフィックが変わったら再度パイロットを実行してください。",
        "label_greedy": "通常の生成 (greedy)",
        "fluency_measure": "回答したモデルでのトークンあたり平均負対数尤度(ナット)",
        "label_best_of_n": "Best-of-N (最初の合格で停止)",
        "label_rain": "RAIN (探索)",
    },
}


def lang_of(value: Any) -> str:
    """``value`` if it is one of :data:`LANGS`, else ``"en"``."""
    return value if isinstance(value, str) and value in LANGS else "en"


def text(lang: str, key: str, **params: Any) -> str:
    """The message ``key`` in ``lang`` (English for an unknown language), its
    ``{placeholders}`` filled from ``params``. Plain text: escape it before putting it
    in HTML. A missing key or placeholder raises ``KeyError``."""
    return MESSAGES[lang_of(lang)][key].format(**params)
