"""Metrics: VSI-Bench MRA / exact match / overall, LocalCogMap cell error, grounding."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ssr_core.evaluation.metrics import (
    MRA_THRESHOLDS,
    VSIBENCH_TASKS,
    VSIBenchQuestion,
    evaluate_cogmap,
    evaluate_grounding,
    exact_match,
    mean_relative_accuracy,
    score_detections,
)
from ssr_core.evaluation.vsibench import score_predictions
from ssr_core.language.prompts import format_grounding_answer
from ssr_core.scene.cogmap import cell_error
from ssr_core.scene.objects import GroundedObject

# ---------------------------------------------------------------------------- MRA


def test_thresholds_are_the_vsibench_ones() -> None:
    assert MRA_THRESHOLDS == (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


@pytest.mark.parametrize(
    ("pred", "gt", "mra"),
    [
        (2.0, 2.0, 1.0),
        (2.08, 2.0, 1.0),  # 4 % off: below every tolerance 0.50 ... 0.05
        (2.2, 2.0, 0.8),  # 10 %: below 0.50 ... 0.15 (8 of 10); 0.10 is not "< 0.10"
        (1.8, 2.0, 0.8),  # same from below (floating-point noise does not count)
        (2.6, 2.0, 0.4),  # 30 %: below 0.50, 0.45, 0.40, 0.35
        (1.0, 2.0, 0.0),  # 50 %: below no tolerance
        (100.0, 2.0, 0.0),
        (0.0, 0.0, 1.0),  # zero ground truth: exact only
        (0.1, 0.0, 0.0),
        (math.nan, 2.0, 0.0),
    ],
)
def test_mean_relative_accuracy(pred: float, gt: float, mra: float) -> None:
    assert mean_relative_accuracy(pred, gt) == pytest.approx(mra)


def test_exact_match() -> None:
    assert exact_match("B", " B\n") == 1.0
    assert exact_match("A", "B") == 0.0


# ---------------------------------------------------------------------------- VSI-Bench

DIRECTION = ["A. left", "B. right"]
HARD = ["A. front-left", "B. front-right", "C. back-left", "D. back-right"]
ORDER = [
    "A. chair, sofa, tv, bed",
    "B. sofa, chair, tv, bed",
    "C. bed, tv, sofa, chair",
    "D. tv, bed, chair, sofa",
]


def rows() -> list[dict]:
    return [
        {"id": 1, "question_type": "object_counting", "ground_truth": "4"},
        {"id": 2, "question_type": "object_counting", "ground_truth": 10},
        {"id": 3, "question_type": "object_rel_direction_easy", "ground_truth": "A", "options": DIRECTION},
        {"id": 4, "question_type": "object_rel_direction_easy", "ground_truth": "B", "options": DIRECTION},
        {"id": 5, "question_type": "object_rel_direction_hard", "ground_truth": "D", "options": HARD},
        {"id": 6, "question_type": "obj_appearance_order", "ground_truth": "C", "options": ORDER},
    ]


def evaluate_vsibench(questions, predictions):
    """The lenient column (the project's parser) of the VSI-Bench report."""
    return score_predictions(questions, predictions, lenient=True).lenient


def test_vsibench_overall_by_hand() -> None:
    questions = [VSIBenchQuestion.from_json(r) for r in rows()]
    predictions = {
        "1": "4",  # MRA 1.0
        "2": "about 13 of them",  # 30 % off: MRA 0.4 (lenient parse)
        "3": "A",  # right
        "4": "I do not know",  # unparseable: 0, counted
        "5": "back-right",  # option text -> D, right
        "6": "A",  # wrong
    }
    report = evaluate_vsibench(questions, predictions)
    assert report.per_question_type == pytest.approx(
        {
            "object_counting": 0.7,
            "object_rel_direction_easy": 0.5,
            "object_rel_direction_hard": 1.0,
            "obj_appearance_order": 0.0,
        }
    )
    # Relative direction is the mean of its levels (0.5 and 1.0), not of its 3 questions.
    assert report.per_task == pytest.approx(
        {"object_counting": 0.7, "object_rel_direction": 0.75, "obj_appearance_order": 0.0}
    )
    assert report.overall == pytest.approx((0.7 + 0.75 + 0.0) / 3)
    assert report.unparsed == {
        "obj_appearance_order": 0,
        "object_counting": 0,
        "object_rel_direction_easy": 1,
        "object_rel_direction_hard": 0,
    }
    assert report.counts["object_counting"] == 2
    assert report.missing_tasks == [
        "object_abs_distance",
        "object_size_estimation",
        "room_size_estimation",
        "object_rel_distance",
        "route_planning",
    ]
    data = report.to_json()
    assert data["num_questions"] == 6 and data["num_unparsed"] == 1


def test_all_eight_tasks_when_present() -> None:
    numeric = ["object_counting", "object_abs_distance", "object_size_estimation", "room_size_estimation"]
    choice = [
        "object_rel_distance",
        "object_rel_direction_easy",
        "object_rel_direction_medium",
        "object_rel_direction_hard",
        "route_planning",
        "obj_appearance_order",
    ]
    questions = [VSIBenchQuestion(t, t, 2.0) for t in numeric]
    questions += [VSIBenchQuestion(t, t, "A", ("A. x", "B. y")) for t in choice]
    report = evaluate_vsibench(questions, {q.id: "2" if q.id in numeric else "A" for q in questions})
    assert sorted(report.per_task) == sorted(VSIBENCH_TASKS)
    assert report.overall == 1.0 and report.missing_tasks == []


def test_vsibench_missing_prediction_raises() -> None:
    questions = [VSIBenchQuestion.from_json(r) for r in rows()]
    with pytest.raises(ValueError, match="no prediction"):
        evaluate_vsibench(questions, {"1": "4"})


def test_empty_ground_truth_has_no_overall() -> None:
    report = evaluate_vsibench([], {})
    assert report.overall is None and report.missing_tasks == list(VSIBENCH_TASKS)


def test_question_accepts_option_text_as_ground_truth() -> None:
    row = {
        "id": "x",
        "question_type": "object_rel_direction_easy",
        "ground_truth": "right",
        "options": DIRECTION,
    }
    assert VSIBenchQuestion.from_json(row).ground_truth == "B"
    row["ground_truth"] = "A. left"
    assert VSIBenchQuestion.from_json(row).ground_truth == "A"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"question_type": "object_counting", "ground_truth": "3"}, "missing field 'id'"),
        ({"id": 1, "ground_truth": "3"}, "missing field 'question_type'"),
        ({"id": 1, "question_type": "object_counting"}, "missing field 'ground_truth'"),
        ({"id": 1, "question_type": "colour", "ground_truth": "3"}, "unknown question_type"),
        ({"id": [1], "question_type": "object_counting", "ground_truth": "3"}, "'id'"),
        ({"id": 1, "question_type": "object_counting", "ground_truth": "many"}, "not a number"),
        ({"id": 1, "question_type": "object_counting", "ground_truth": "inf"}, "not finite"),
        ({"id": 1, "question_type": "object_counting", "ground_truth": None}, "'ground_truth'"),
        ({"id": 1, "question_type": "route_planning", "ground_truth": "A"}, "needs 'options'"),
        ({"id": 1, "question_type": "route_planning", "ground_truth": "E", "options": DIRECTION}, "neither"),
    ],
)
def test_question_validation(row: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VSIBenchQuestion.from_json(row)


# ---------------------------------------------------------------------------- LocalCogMap


def test_cell_error_is_euclidean() -> None:
    assert cell_error((7, 3), (4, 7)) == 5.0
    assert cell_error((5, 5), (5, 5)) == 0.0


def test_evaluate_cogmap() -> None:
    report = evaluate_cogmap(["[7, 3]", "[4, 7]", "no idea"], [(7, 3), (7, 3), (1, 1)])
    assert report.n == 3 and report.n_unparsed == 1
    assert report.mean_cell_error == pytest.approx(2.5)
    assert report.exact_accuracy == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        evaluate_cogmap(["[1, 1]"], [])


# ---------------------------------------------------------------------------- grounding


def box(x: float, y: float = 0.0, label: str = "chair", size: float = 1.0) -> GroundedObject:
    return GroundedObject(label, np.array([x, y, 0.5, size, size, 1.0, 0.0]))


def answer(*objects: GroundedObject) -> str:
    return format_grounding_answer(list(objects))


def test_grounding_single_targets() -> None:
    predictions = [
        answer(box(0.0)),  # exact: IoU 1
        answer(box(0.5)),  # shifted half a box: IoU 1/3
        answer(box(0.2)),  # IoU 0.8 / 1.2 = 2/3
        "no box",  # unparsed: IoU 0
    ]
    gts = [[box(0.0)], [box(0.0)], [box(0.0)], [box(0.0)]]
    report = evaluate_grounding(predictions, gts)
    assert report.n == 4 and report.n_unparsed == 1 and report.n_matched == 3
    assert report.mean_iou == pytest.approx((1 + 1 / 3 + 2 / 3) / 4)
    assert report.acc_025 == pytest.approx(3 / 4)
    assert report.acc_050 == pytest.approx(2 / 4)
    assert report.mean_center_error == pytest.approx((0 + 0.5 + 0.2) / 3)


def test_grounding_single_target_scores_the_first_box_whatever_its_label() -> None:
    report = evaluate_grounding([answer(box(3.0, label="armchair"), box(0.0))], [[box(0.0)]])
    assert report.mean_iou == 0.0 and report.mean_center_error == pytest.approx(3.0)


def test_grounding_several_targets_are_matched_one_to_one() -> None:
    gt = [box(0.0), box(5.0), box(10.0, label="table")]
    pred = answer(box(5.0), box(0.2), box(10.0, label="chair"))
    by_box = evaluate_grounding([pred], [gt])
    assert by_box.n_matched == 3 and by_box.mean_iou == pytest.approx((2 / 3 + 1 + 1) / 3)
    by_label = evaluate_grounding([pred], [gt], match_labels=True)
    assert by_label.n_matched == 2  # the "chair" at x=10 cannot stand for the table
    assert by_label.mean_iou == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert by_label.acc_050 == pytest.approx(2 / 3)


def test_grounding_missing_boxes_score_zero() -> None:
    report = evaluate_grounding(["[]", answer(box(0.0))], [[box(0.0), box(5.0)], [box(0.0), box(5.0)]])
    assert report.n == 4 and report.n_matched == 1 and report.n_unparsed == 0
    assert report.mean_iou == pytest.approx(0.25)


def test_detections_are_scored_against_the_objects_in_view() -> None:
    truth = [box(0.0), box(10.0), box(20.0, label="sofa"), box(30.0, label="table")]
    detections = [box(30.0, label="table"), box(0.5), box(10.0, label="bed")]
    matches, report = score_detections(detections, truth)
    pairs = {(m.prediction, m.truth): m for m in matches}
    assert set(pairs) == {(0, 3), (1, 0)}  # the bed on the chair at x=10 matches nothing: labels differ
    assert pairs[0, 3].iou == pytest.approx(1.0) and pairs[0, 3].center_error == pytest.approx(0.0)
    assert pairs[1, 0].iou == pytest.approx(1 / 3) and pairs[1, 0].center_error == pytest.approx(0.5)
    assert report.n == 4 and report.n_matched == 2  # the sofa nobody detected still counts
    assert report.acc_025 == pytest.approx(2 / 4) and report.acc_050 == pytest.approx(1 / 4)
    assert report.median_center_error == pytest.approx(0.25)


def test_no_detections_score_zero_over_every_object_in_view() -> None:
    matches, report = score_detections([], [box(0.0), box(5.0)])
    assert matches == [] and report.n == 2 and report.acc_025 == 0.0 and math.isnan(report.median_center_error)
