"""Answer extraction and exact match on crafted outputs, with lm-eval's own GSM8K filters."""

from __future__ import annotations

import pytest
import yaml

pytest.importorskip("lm_eval")

from ternlab.evals.gsm8k import gsm8k_config, lm_eval_task_dir
from ternlab.evals.scoring import exact_match, extract, filters, score

STRICT, FLEX = "strict-match", "flexible-extract"


@pytest.fixture(scope="module")
def gsm() -> dict:
    return gsm8k_config("hub", "gsm8k")


@pytest.fixture(scope="module")
def cot() -> dict:
    return gsm8k_config("hub", "gsm8k-cot")


def test_filters_are_lm_evals_yaml(gsm, cot):
    """The regexes come from lm-eval's shipped YAML, unchanged."""
    raw = yaml.safe_load((lm_eval_task_dir() / "gsm8k.yaml").read_text())
    assert gsm["filter_list"] == raw["filter_list"]
    pats = {f["name"]: f["filter"][0] for f in raw["filter_list"]}
    assert pats[STRICT]["regex_pattern"] == r"#### (\-?[0-9\.\,]+)"
    assert pats[FLEX]["regex_pattern"] == r"(-?[$0-9.,]{2,})|(-?[0-9]+)"
    assert pats[FLEX]["group_select"] == -1
    assert set(filters(gsm)) == {STRICT, FLEX}
    assert cot["filter_list"][0]["filter"][0]["regex_pattern"] == r"The answer is (\-?[0-9\.\,]+)."


@pytest.mark.parametrize(
    ("output", "strict", "flexible"),
    [
        ("Ada has 3 + 4 = <<3+4=7>>7 apples.\n#### 7", "7", "7"),
        ("#### -1,234.5 and then 99 more", "-1,234.5", "99"),  # flexible takes the LAST number
        ("The answer is 42.", "[invalid]", "42."),
        ("It costs $1,000 in total", "[invalid]", "$1,000"),
        ("x 5 y 7", "[invalid]", "7"),  # one-digit numbers: the second alternative
        ("no number at all", "[invalid]", "[invalid]"),
        ("####7", "[invalid]", "7"),  # strict needs the space after ####
        ("#### 12\n#### 13", "12", "13"),  # strict takes the first match
    ],
)
def test_extraction(gsm, output, strict, flexible):
    assert extract(gsm, output, STRICT) == strict
    assert extract(gsm, output, FLEX) == flexible


@pytest.mark.parametrize(
    ("prediction", "reference", "same"),
    [
        ("7", "Ada has 7.\n#### 7", True),  # reference: everything up to '#### ' is ignored
        ("42.", "#### 42", True),  # a final '.' is ignored
        ("$1,000", "#### 1000", True),  # '$' and ',' are ignored
        ("-3", "#### 3", False),
        ("[invalid]", "#### 7", False),
        ("7.0", "#### 7", False),  # no numeric normalisation in lm-eval's exact match
    ],
)
def test_exact_match_options(gsm, prediction, reference, same):
    assert exact_match(gsm, prediction, reference) is same


def test_score_both_filters(gsm, cot):
    ref = "Step.\n#### 21"
    assert score(gsm, "so 3*7=21\n#### 21", ref) == {STRICT: True, FLEX: True}
    assert score(gsm, "so the answer is 21", ref) == {STRICT: False, FLEX: True}
    assert score(gsm, "#### 21 wait no 20", ref) == {STRICT: True, FLEX: False}
    # CoT: strict is "The answer is N."; its target is the number after ####.
    assert extract(cot, "5 + 4 = 9. The answer is 9.", STRICT) == "9"
    assert score(cot, "5 + 4 = 9. The answer is 9.", ref.replace("21", "9"))[STRICT]


def test_unknown_filter_names_the_choices(gsm):
    with pytest.raises(KeyError, match="strict-match"):
        extract(gsm, "1", "nope")
