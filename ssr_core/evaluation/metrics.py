"""Evaluation metrics: VSI-Bench scores, LocalCogMap cell error and 7-DoF grounding.

VSI-Bench scores multiple-choice questions by exact match of the option letter and numerical
questions by Mean Relative Accuracy (MRA); the overall score is the mean over its task types.
Predictions are raw model texts read with `ssr_core.language.parsers`; an unparseable prediction scores
0 and is counted, so format drift shows up in the report instead of silently vanishing.
All scores are fractions in [0, 1] (the paper reports them x100).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from ssr_core.language.parsers import (
    CHOICE_QUESTION_TYPES,
    NUMERIC_QUESTION_TYPES,
    ParseFailure,
    option_letters,
    option_text,
    parse_cell,
    parse_grounding,
    parse_vsibench,
)
from ssr_core.scene.boxes import center_distance, iou_3d
from ssr_core.scene.cogmap import cell_error
from ssr_core.scene.objects import GroundedObject

# MRA confidence thresholds 0.50, 0.55, ..., 0.95, built from integers so that they are exact.
MRA_THRESHOLDS: tuple[float, ...] = tuple((50 + 5 * k) / 100 for k in range(10))
_MRA_TOLERANCES = np.array([(50 - 5 * k) / 100 for k in range(10)])  # 1 - theta
_MRA_SLACK = 1e-9  # relative errors within float noise of a tolerance count as not below it

REL_DIRECTION = "object_rel_direction"
REL_DIRECTION_LEVELS = (
    "object_rel_direction_easy",
    "object_rel_direction_medium",
    "object_rel_direction_hard",
)
VSIBENCH_TASKS = (
    "object_counting",
    "object_abs_distance",
    "object_size_estimation",
    "room_size_estimation",
    "object_rel_distance",
    REL_DIRECTION,
    "route_planning",
    "obj_appearance_order",
)
VSIBENCH_QUESTION_TYPES = NUMERIC_QUESTION_TYPES | CHOICE_QUESTION_TYPES


def mean_relative_accuracy(pred: float, gt: float) -> float:
    """VSI-Bench MRA: mean over theta in 0.50..0.95 of 1[|pred - gt| / gt < 1 - theta].

    A zero ground truth has no relative error; it then scores 1 for an exact 0 and 0 otherwise.
    """
    if not (math.isfinite(pred) and math.isfinite(gt)):
        return 0.0
    if gt == 0:
        return float(pred == 0)
    relative_error = abs(pred - gt) / abs(gt)
    return float(np.mean(relative_error < _MRA_TOLERANCES - _MRA_SLACK))


def exact_match(pred: str, gt: str) -> float:
    """1.0 when the option letters agree (surrounding whitespace ignored)."""
    return float(pred.strip() == gt.strip())


def task_of(question_type: str) -> str:
    """VSI-Bench task of a question type: the three relative-direction levels are one task."""
    return REL_DIRECTION if question_type in REL_DIRECTION_LEVELS else question_type


@dataclass(frozen=True)
class VSIBenchQuestion:
    """One ground-truth row of VSI-Bench (only the fields scoring needs)."""

    id: str
    question_type: str
    ground_truth: str | float  # option letter, or the number
    options: tuple[str, ...] | None = None

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> VSIBenchQuestion:
        """Validate a row; raises `ValueError` naming the offending field."""
        for key in ("id", "question_type", "ground_truth"):
            if key not in row:
                raise ValueError(f"missing field {key!r}")
        qid = row["id"]
        if isinstance(qid, bool) or not isinstance(qid, str | int):
            raise ValueError("field 'id' must be a string or an integer")
        qtype = row["question_type"]
        if not isinstance(qtype, str) or qtype not in VSIBENCH_QUESTION_TYPES:
            raise ValueError(f"unknown question_type {str(qtype)[:80]!r}")
        gt = row["ground_truth"]
        if isinstance(gt, bool) or not isinstance(gt, str | int | float):
            raise ValueError("field 'ground_truth' must be a string or a number")
        if qtype in NUMERIC_QUESTION_TYPES:
            try:
                value = float(gt)
            except ValueError:
                raise ValueError(f"ground_truth {str(gt)[:40]!r} is not a number") from None
            except OverflowError:  # an integer beyond float range
                raise ValueError(f"ground_truth {str(gt)[:40]}... is not a finite number") from None
            if not math.isfinite(value):
                raise ValueError(f"ground_truth {str(gt)[:40]!r} is not finite")
            return cls(str(qid), qtype, value, None)
        options = row.get("options")
        if not isinstance(options, list) or not options or not all(isinstance(o, str) for o in options):
            raise ValueError(f"{qtype} needs 'options', a non-empty list of strings")
        return cls(str(qid), qtype, _choice_letter(str(gt), options), tuple(options))


def _choice_letter(gt: str, options: Sequence[str]) -> str:
    """The ground truth as an option letter (VSI-Bench stores the letter; accept the text too)."""
    letters = tuple(option_letters(options))  # a tuple: "AB" or "" must not match as a substring
    if gt.strip() in letters:
        return gt.strip()
    wanted = gt.strip().lower()
    for letter, option in zip(letters, options):
        if wanted in (option.strip().lower(), option_text(option).lower()):
            return letter
    raise ValueError(f"ground_truth {gt!r} is neither an option letter nor an option")


def score_vsibench(question: VSIBenchQuestion, prediction: str) -> tuple[float, bool]:
    """(score, parsed) of one raw prediction; unparseable predictions score 0."""
    parsed = parse_vsibench(prediction, question.question_type, question.options)
    if isinstance(parsed, ParseFailure):
        return 0.0, False
    if question.question_type in NUMERIC_QUESTION_TYPES:
        assert isinstance(parsed.value, float) and isinstance(question.ground_truth, float)
        return mean_relative_accuracy(parsed.value, question.ground_truth), True
    return exact_match(str(parsed.value), str(question.ground_truth)), True


# ---------------------------------------------------------------------------- LocalCogMap


@dataclass
class CogMapReport:
    """LocalCogMap accuracy; the mean error covers parsed predictions only (see `n_unparsed`)."""

    n: int
    n_unparsed: int
    mean_cell_error: float  # grid units over parsed predictions; nan when none parsed
    median_cell_error: float  # grid units over parsed predictions; nan when none parsed
    exact_accuracy: float  # fraction of exactly right cells, unparsed count as wrong


def evaluate_cogmap(predictions: Sequence[str], ground_truths: Sequence[Sequence[int]]) -> CogMapReport:
    """Cell error of MultiQA answers against the true target cells."""
    if len(predictions) != len(ground_truths):
        raise ValueError("predictions and ground truths differ in length")
    errors: list[float] = []
    for text, gt in zip(predictions, ground_truths):
        parsed = parse_cell(text)
        if not isinstance(parsed, ParseFailure):
            errors.append(cell_error(parsed.value, gt))
    n = len(ground_truths)
    return CogMapReport(
        n=n,
        n_unparsed=n - len(errors),
        mean_cell_error=float(np.mean(errors)) if errors else math.nan,
        median_cell_error=float(np.median(errors)) if errors else math.nan,
        exact_accuracy=sum(e == 0 for e in errors) / n if n else math.nan,
    )


# ---------------------------------------------------------------------------- grounding

IOU_THRESHOLDS = (0.25, 0.5)


@dataclass
class GroundingReport:
    """Grounding accuracy over ground-truth objects (a missed or unparsed object has IoU 0)."""

    n: int  # ground-truth objects
    n_unparsed: int  # predictions that could not be parsed
    n_matched: int  # ground-truth objects that got a predicted box
    mean_center_error: float  # metres over matched objects; nan when none matched
    median_center_error: float  # metres over matched objects; nan when none matched
    mean_iou: float
    acc_025: float  # fraction with IoU >= 0.25
    acc_050: float  # fraction with IoU >= 0.5


def _match(
    pred: Sequence[GroundedObject], gt: Sequence[GroundedObject], match_labels: bool
) -> list[tuple[int, int]]:
    """(pred, gt) index pairs: a single-target question scores the first predicted box; several
    targets are matched one-to-one by IoU (centre distance breaks ties), optionally per label."""
    if not pred or not gt:
        return []
    if len(gt) == 1 and not match_labels:
        return [(0, 0)]
    pred_boxes = np.stack([p.box for p in pred])
    gt_boxes = np.stack([g.box for g in gt])
    cost = -iou_3d(pred_boxes, gt_boxes) + 1e-6 * center_distance(pred_boxes, gt_boxes)
    allowed = np.ones(cost.shape, dtype=bool)
    if match_labels:
        pred_labels = np.array([p.label.strip().lower() for p in pred])
        gt_labels = np.array([g.label.strip().lower() for g in gt])
        allowed = pred_labels[:, None] == gt_labels[None, :]
    cost[~allowed] = 1e6
    rows, cols = linear_sum_assignment(cost)
    return [(int(i), int(j)) for i, j in zip(rows, cols) if allowed[i, j]]


@dataclass(frozen=True)
class BoxMatch:
    """A predicted box paired with a ground-truth object, and how close it came."""

    prediction: int  # index into the predictions
    truth: int  # index into the ground truths
    iou: float
    center_error: float  # metres


def match_objects(
    pred: Sequence[GroundedObject], gt: Sequence[GroundedObject], match_labels: bool = False
) -> list[BoxMatch]:
    """`_match`'s pairs with their 3D IoU and centre distance."""
    return [BoxMatch(i, j, float(iou_3d(pred[i].box, gt[j].box)), float(center_distance(pred[i].box, gt[j].box)))
            for i, j in _match(pred, gt, match_labels)]


def evaluate_grounding(
    predictions: Sequence[str],
    ground_truths: Sequence[Sequence[GroundedObject]],
    match_labels: bool = False,
) -> GroundingReport:
    """Centre error, 3D IoU and Acc@0.25/0.5 of grounding answers.

    `match_labels=True` (detect-all) only pairs boxes with equal labels; for a referral
    question the label is given, so the box alone is judged.
    """
    if len(predictions) != len(ground_truths):
        raise ValueError("predictions and ground truths differ in length")
    ious: list[float] = []
    errors: list[float] = []
    n_unparsed = 0
    for text, gt in zip(predictions, ground_truths):
        parsed = parse_grounding(text)
        if isinstance(parsed, ParseFailure):
            n_unparsed += 1
            ious += [0.0] * len(gt)
            continue
        matches = match_objects(parsed.value, gt, match_labels)
        ious += _ious_per_truth(matches, len(gt))
        errors += [m.center_error for m in matches]
    return _grounding_report(ious, errors, n_unparsed)


def score_detections(
    detections: Sequence[GroundedObject], ground_truth: Sequence[GroundedObject]
) -> tuple[list[BoxMatch], GroundingReport]:
    """One window's detections against the objects in view, scored as a detect-all answer (boxes
    pair only with equal labels; an object no box matched has IoU 0), with the pairs themselves
    so a caller can show which detection stood for which object."""
    matches = match_objects(detections, ground_truth, match_labels=True)
    report = _grounding_report(_ious_per_truth(matches, len(ground_truth)), [m.center_error for m in matches], 0)
    return matches, report


def _ious_per_truth(matches: Sequence[BoxMatch], n_truths: int) -> list[float]:
    """IoU of each ground-truth object; 0 for one no box matched, so misses lower the accuracy."""
    ious = [0.0] * n_truths
    for m in matches:
        ious[m.truth] = m.iou
    return ious


def _grounding_report(ious: Sequence[float], errors: Sequence[float], n_unparsed: int) -> GroundingReport:
    n = len(ious)
    iou = np.array(ious)
    return GroundingReport(
        n=n,
        n_unparsed=n_unparsed,
        n_matched=len(errors),
        mean_center_error=float(np.mean(errors)) if errors else math.nan,
        median_center_error=float(np.median(errors)) if errors else math.nan,
        mean_iou=float(iou.mean()) if n else math.nan,
        acc_025=float(np.mean(iou >= IOU_THRESHOLDS[0])) if n else math.nan,
        acc_050=float(np.mean(iou >= IOU_THRESHOLDS[1])) if n else math.nan,
    )
