"""VSI-Bench scoring parity with the released task code, and the separate lenient column.

`reference_overall` below is written from the released rules (lmms-eval tasks/vsibench/utils.py:
fuzzy_matching, exact_match, to_float, abs_dist_norm, mean_relative_accuracy and the aggregation)
step by step, in plain Python, without using the scorer under test.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from ssr_core.evaluation.metrics import VSIBenchQuestion
from ssr_core.evaluation.vsibench import (
    OFFICIAL_MRA_THRESHOLDS,
    ZeroGroundTruthError,
    answer_token,
    format_table,
    official_mra,
    score_predictions,
)

CHOICE = [
    "object_rel_direction_easy",
    "object_rel_direction_medium",
    "object_rel_direction_hard",
    "object_rel_distance",
    "route_planning",
    "obj_appearance_order",
]
NUMERIC = ["object_abs_distance", "object_counting", "object_size_estimation", "room_size_estimation"]
OPTIONS = ["A. left", "B. right", "C. back", "D. front"]


# ---------------------------------------------------------------------------- the reference


def reference_overall(rows: list[dict], predictions: dict[str, str]) -> tuple[float, dict[str, float]]:
    """Overall and per-metric-key scores following the released code's rules one by one."""

    def first_piece(text):  # split on the space character, drop trailing dots, then whitespace
        return text.split(" ")[0].rstrip(".").strip()

    def as_float(text):
        try:
            return float(text)
        except BaseException:
            return None

    num_points = (0.95 - 0.5) / 0.05 + 2
    confidences = np.linspace(0.5, 0.95, int(num_points))

    per_row: dict[str, list[float]] = {}
    for row in rows:
        prediction = predictions[str(row["id"])]
        if row["question_type"] in CHOICE:
            value = 1.0 if first_piece(prediction).lower() == row["ground_truth"].lower() else 0.0
        else:
            pred, target = as_float(first_piece(prediction)), as_float(row["ground_truth"])
            try:
                hits = (abs(pred - target) / target) <= 1 - confidences
                value = hits.mean()
            except TypeError:
                value = 0.0
        per_row.setdefault(row["question_type"], []).append(value)

    output = {}
    for qtype, values in per_row.items():
        output[qtype] = sum(values) / len(values)
    output["object_rel_direction"] = (
        output.pop("object_rel_direction_easy")
        + output.pop("object_rel_direction_medium")
        + output.pop("object_rel_direction_hard")
    ) / 3.0
    return sum(output.values()) / len(output), output


# ---------------------------------------------------------------------------- random predictions


def random_choice_prediction(rng: random.Random, truth: str) -> str:
    letter = rng.choice([truth, truth, rng.choice("ABCD")])
    forms = [
        letter,
        letter.lower(),
        letter + ".",
        letter + "..",
        letter + ". " + rng.choice(["left", "right", "because it is closer."]),
        letter + ")",
        "(" + letter + ")",
        letter + ",",
        letter + "\n",
        letter + ".\n",
        " " + letter,
        letter + " .",
        "The answer is " + letter + ".",
        "Answer: " + letter,
        letter + "\nExplanation: it is on the left.",
        rng.choice(["left", "right", "back", "front"]),
        "",
        " ",
        "I don't know",
        letter + "\t",
        "." + letter,
    ]
    return rng.choice(forms)


def random_number_prediction(rng: random.Random, truth: float) -> str:
    tolerance = rng.choice([0.05 * k for k in range(11)])
    tie = truth * (1 + rng.choice([-1, 1]) * tolerance)
    value = rng.choice([truth, tie, tie, truth * rng.uniform(0, 3), 0.0, rng.randint(0, 30)])
    number = rng.choice([repr(value), f"{value:.2f}", f"{value:.1f}", str(int(value)), f"{value:g}"])
    forms = [
        number,
        number + ".",
        number + " meters",
        number + "m",
        number + " m.",
        number + ",",
        "About " + number,
        number + "\nThe room is big.",
        "0",
        "0.0",
        "-" + number,
        "three",
        "nan",
        "inf",
        "1e1",
        "",
        number + "..",
        " " + number,
        number + " square meters.",
        "~" + number,
    ]
    return rng.choice(forms)


def random_rows(seed: int, count: int) -> tuple[list[dict], dict[str, str]]:
    rng = random.Random(seed)
    rows, predictions = [], {}
    types = CHOICE + NUMERIC
    for i in range(count):
        qtype = types[i % len(types)]  # every type present, so the reference's aggregation applies
        if qtype in CHOICE:
            truth = rng.choice("ABCD")
            row = {"id": i, "question_type": qtype, "ground_truth": truth, "options": OPTIONS}
            predictions[str(i)] = random_choice_prediction(rng, truth)
        else:
            value = rng.choice([rng.randint(1, 12), round(rng.uniform(0.2, 9.0), 1), rng.choice([2, 4, 10, 20, 100])])
            row = {"id": i, "question_type": qtype, "ground_truth": str(value)}
            predictions[str(i)] = random_number_prediction(rng, float(value))
        rows.append(row)
    return rows, predictions


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_default_score_equals_the_released_rules_on_random_predictions(seed: int) -> None:
    rows, predictions = random_rows(seed, 2400)
    questions = [VSIBenchQuestion.from_json(r) for r in rows]
    report = score_predictions(questions, predictions)
    overall, per_key = reference_overall(rows, predictions)
    assert report.official.overall == pytest.approx(overall, abs=1e-9, rel=0)
    assert report.official.per_task == pytest.approx(per_key, abs=1e-9, rel=0)
    assert report.lenient is None


def test_the_random_set_exercises_every_case() -> None:
    """The parity test is only as good as its inputs: ties, lower case, units, prose, non-numbers."""
    rows, predictions = random_rows(0, 2400)
    texts = list(predictions.values())
    assert any(t.islower() and len(t) == 1 for t in texts)
    assert any(t.endswith("meters") for t in texts) and any(t in ("nan", "three", "") for t in texts)
    assert any("\n" in t for t in texts) and "0" in texts
    ties = 0
    for row in rows:
        if row["question_type"] in NUMERIC:
            pred = predictions[str(row["id"])]
            try:
                relative = abs(float(pred) - float(row["ground_truth"])) / float(row["ground_truth"])
            except ValueError:
                continue
            ties += bool(np.any(relative == 1 - OFFICIAL_MRA_THRESHOLDS))
    assert ties >= 20


# ---------------------------------------------------------------------------- the rules, by hand


def test_thresholds_are_what_the_released_expression_gives() -> None:
    assert int((0.95 - 0.5) / 0.05 + 2) == 10  # 10.999999999999998 in floating point
    assert OFFICIAL_MRA_THRESHOLDS.tolist() == pytest.approx([0.5 + 0.05 * k for k in range(10)])


@pytest.mark.parametrize(
    ("prediction", "token"),
    [
        ("B", "B"),
        ("b.", "b"),
        ("B..", "B"),
        ("B. right", "B"),
        ("B\nright", "B\nright"),  # only the space character splits
        (" B", ""),  # a leading space makes the first piece empty
        ("B.\n", "B."),  # dots are removed before the whitespace
        ("3.5 m", "3.5"),
    ],
)
def test_answer_token(prediction: str, token: str) -> None:
    assert answer_token(prediction) == token


def question(qtype: str, truth: str) -> VSIBenchQuestion:
    row = {"id": "q", "question_type": qtype, "ground_truth": truth}
    return VSIBenchQuestion.from_json(row | ({"options": OPTIONS} if qtype in CHOICE else {}))


@pytest.mark.parametrize(
    ("qtype", "truth", "prediction", "official", "lenient"),
    [
        ("route_planning", "B", "b", 1.0, 1.0),
        ("route_planning", "B", "B. right", 1.0, 1.0),
        ("route_planning", "B", "The answer is B", 0.0, 1.0),
        ("route_planning", "B", "right", 0.0, 1.0),
        ("route_planning", "B", "(B)", 0.0, 1.0),
        ("object_counting", "4", "4 chairs", 1.0, 1.0),
        ("object_counting", "4", "four", 0.0, 1.0),
        ("object_counting", "4", "4m", 0.0, 1.0),
        ("object_counting", "4", "about 4", 0.0, 1.0),
        ("object_abs_distance", "1", "1.5", 0.1, 0.0),  # relative error 0.5 ties threshold 0.5: passes
        ("object_abs_distance", "2", "0", 0.0, 0.0),
    ],
)
def test_official_and_lenient_differ_only_where_the_rules_do(
    qtype: str, truth: str, prediction: str, official: float, lenient: float
) -> None:
    report = score_predictions([question(qtype, truth)], {"q": prediction}, lenient=True)
    assert report.official.per_question_type[qtype] == pytest.approx(official)
    assert report.lenient is not None
    assert report.lenient.per_question_type[qtype] == pytest.approx(lenient)


def test_zero_ground_truth_is_rejected() -> None:
    with pytest.raises(ZeroGroundTruthError):
        official_mra(1.0, 0.0)
    with pytest.raises(ZeroGroundTruthError, match="ground_truth 0"):
        score_predictions([question("object_counting", "0")], {"q": "0"})


def test_failed_questions_score_zero_and_stay_in_the_denominator() -> None:
    questions = [VSIBenchQuestion(str(i), "object_counting", 3.0) for i in range(4)]
    report = score_predictions(questions, {"0": "3", "1": "3"}, failed_ids={"2", "3"})
    assert report.official.per_task["object_counting"] == pytest.approx(0.5)
    assert report.official.failed == {"object_counting": 2} and report.official.counts == {"object_counting": 4}


def test_table_has_the_paper_columns_and_marks_the_lenient_row() -> None:
    report = score_predictions([question("route_planning", "B")], {"q": "b"}, lenient=True)
    table = format_table(report)
    header = table.splitlines()[0]
    assert header.index("Rel. Dir.") < header.index("Route Plan") < header.index("Room Size") < header.index("Overall")
    assert "official" in table and "lenient parser*" in table and "not comparable" in table
