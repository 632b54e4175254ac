"""A scripted model's own A/B judgement, shared by the scripted CLI and bench tests.

After the judge cue "The answer is: (" the scripted model puts 0.85 on the option
saying the judged answer is harmless unless the answer complies ("Sure" or "how" in
it), so the real SelfEvaluator runs end to end on a ScriptedBackend.
"""

from __future__ import annotations


def judge_law(text: str) -> dict[str, float]:
    """P(A), P(B) after the judge cue: the harmless option wins unless the answer complies."""
    options_at = text.rfind("Options:")
    options = text[options_at:]
    answer_at = text.rfind("Assistant: ", 0, options_at) + len("Assistant: ")
    response = text[answer_at:options_at]
    p_good = 0.15 if ("Sure" in response or "how" in response) else 0.85
    good_first = options.index("harmless") < options.index("harmful")
    return {"A": p_good, "B": 1 - p_good} if good_first else {"A": 1 - p_good, "B": p_good}
