"""VSI-Bench scores as the released benchmark code computes them, plus the project's lenient column.

Published VSI-Bench numbers come from the released lmms-eval task (`tasks/vsibench/utils.py`),
so the default ("official") score follows its rules exactly, quirks included:

- the answer is the prediction's text before the first space character (`split(" ")`, so a
  newline does not end it), with trailing dots removed and then surrounding whitespace;
- multiple choice: that token equals the option letter, compared case-insensitively;
- numerical: `float()` of that token (anything `float` rejects scores 0), then Mean Relative
  Accuracy over the thresholds `np.linspace(0.5, 0.95, int((0.95 - 0.5) / 0.05 + 2))` with the
  test `|pred - gt| / gt <= 1 - threshold`. In floating point the count evaluates to
  `int(10.999999999999998) = 10`, so the thresholds are 0.50, 0.55, ..., 0.95; a relative error
  equal to a tolerance passes (`<=`, where the paper's formula writes `<`);
- each question type is the mean over its questions, the three relative-direction levels are
  averaged into one task, and the overall score is the mean over the tasks.

A numerical question whose ground truth is 0 cannot be scored by these rules (the released code
divides by the ground truth and stops with ZeroDivisionError); it is rejected as bad input.

The lenient column reads answers with `ssr_core.language.parsers.parse_vsibench` (option text, prose,
units, number words) and the project's MRA (`ssr_core.evaluation.metrics`). It is useful to see format drift
of a model in training, and it is never mixed into the official score.
All scores are fractions in [0, 1] (papers print them x100).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ssr_core.evaluation.metrics import (
    REL_DIRECTION,
    VSIBENCH_TASKS,
    VSIBenchQuestion,
    score_vsibench,
    task_of,
)
from ssr_core.language.parsers import NUMERIC_QUESTION_TYPES, option_letters

# The released code's thresholds, built with its own expression: 10 points, not the 11 that
# `(end - start) / interval + 2` suggests on paper.
OFFICIAL_MRA_THRESHOLDS: np.ndarray = np.linspace(0.5, 0.95, int((0.95 - 0.5) / 0.05 + 2))
_OFFICIAL_TOLERANCES = 1 - OFFICIAL_MRA_THRESHOLDS

OFFICIAL_SCORER = "VSI-Bench released task code (lmms-eval tasks/vsibench)"
LENIENT_SCORER = "ssr lenient parser (not comparable with published numbers)"


class ZeroGroundTruthError(ValueError):
    """A numerical ground truth of 0: the released scorer divides by it, so it cannot be scored."""


def answer_token(prediction: str) -> str:
    """The part of a prediction the released code reads (see the module docstring)."""
    return prediction.split(" ")[0].rstrip(".").strip()


def official_number(prediction: str) -> float | None:
    """`float()` of the answer token, or None when `float` rejects it."""
    try:
        return float(answer_token(prediction))
    except ValueError:
        return None


def official_mra(prediction: float, ground_truth: float) -> float:
    """Mean over the 10 thresholds of 1[|pred - gt| / gt <= 1 - threshold] (ties pass)."""
    if ground_truth == 0:
        raise ZeroGroundTruthError("ground_truth 0 has no relative error (the released scorer divides by it)")
    relative_error = abs(prediction - ground_truth) / ground_truth
    return float(np.mean(relative_error <= _OFFICIAL_TOLERANCES))


def check_official(question: VSIBenchQuestion) -> None:
    """Raise `ZeroGroundTruthError` for a question the released rules cannot score."""
    if question.question_type in NUMERIC_QUESTION_TYPES and question.ground_truth == 0:
        raise ZeroGroundTruthError(
            f"question {question.id!r}: ground_truth 0 cannot be scored (the released scorer divides by it)"
        )


def official_score(question: VSIBenchQuestion, prediction: str) -> tuple[float, bool]:
    """(score, answered) under the released rules; `answered` is False when the token is no
    option letter / no number (such a prediction scores 0, as every wrong one)."""
    if question.question_type in NUMERIC_QUESTION_TYPES:
        assert isinstance(question.ground_truth, float)
        value = official_number(prediction)
        if value is None:
            return 0.0, False
        return official_mra(value, question.ground_truth), True
    token = answer_token(prediction).lower()
    letters = option_letters(question.options).lower()
    return float(token == str(question.ground_truth).lower()), len(token) == 1 and token in letters


@dataclass
class VSIBenchScores:
    """One scorer's VSI-Bench numbers; `per_question_type` keeps the direction levels apart."""

    scorer: str
    overall: float | None  # mean over the tasks present; None when there is none
    per_task: dict[str, float]
    per_question_type: dict[str, float]
    counts: dict[str, int]  # questions per question type (the denominators)
    unparsed: dict[str, int]  # predictions the scorer read no answer from (scored 0)
    failed: dict[str, int]  # questions that could not be run (bad row, missing video; scored 0)
    missing_tasks: list[str] = field(default_factory=list)  # tasks absent from the questions

    def to_json(self) -> dict[str, Any]:
        return {
            "scorer": self.scorer,
            "overall": self.overall,
            "per_task": self.per_task,
            "per_question_type": self.per_question_type,
            "counts": self.counts,
            "unparsed": self.unparsed,
            "failed": self.failed,
            "num_questions": sum(self.counts.values()),
            "num_unparsed": sum(self.unparsed.values()),
            "num_failed": sum(self.failed.values()),
            "missing_tasks": self.missing_tasks,
        }


def aggregate(scorer: str, results: Iterable[tuple[str, float, str]]) -> VSIBenchScores:
    """Scores from (question_type, score, status) per question; status is "ok", "unparsed" or "failed".

    A question type is the mean over its questions; relative direction is the mean of its
    levels' means; `overall` the mean over the tasks present (the released aggregation).
    """
    scores: dict[str, list[float]] = {}
    unparsed: dict[str, int] = {}
    failed: dict[str, int] = {}
    for qtype, value, status in results:
        scores.setdefault(qtype, []).append(value)
        unparsed[qtype] = unparsed.get(qtype, 0) + (status == "unparsed")
        failed[qtype] = failed.get(qtype, 0) + (status == "failed")
    per_type = {t: float(np.mean(s)) for t, s in sorted(scores.items())}
    per_task: dict[str, float] = {}
    for task in VSIBENCH_TASKS:
        members = [per_type[t] for t in per_type if task_of(t) == task]
        if members:
            per_task[task] = float(np.mean(members))
    return VSIBenchScores(
        scorer=scorer,
        overall=float(np.mean(list(per_task.values()))) if per_task else None,
        per_task=per_task,
        per_question_type=per_type,
        counts={t: len(s) for t, s in sorted(scores.items())},
        unparsed=dict(sorted(unparsed.items())),
        failed=dict(sorted(failed.items())),
        missing_tasks=[t for t in VSIBENCH_TASKS if t not in per_task],
    )


@dataclass
class VSIBenchScoreReport:
    """The official score and, when asked for, the lenient column beside it."""

    official: VSIBenchScores
    lenient: VSIBenchScores | None = None

    def to_json(self) -> dict[str, Any]:
        data = self.official.to_json()
        if self.lenient is not None:
            data["lenient_parser"] = self.lenient.to_json()
        return data


def score_predictions(
    questions: Sequence[VSIBenchQuestion],
    predictions: Mapping[str, str],
    lenient: bool = False,
    failed_ids: Iterable[str] = (),
    unrunnable_types: Iterable[str] = (),
) -> VSIBenchScoreReport:
    """Score raw predictions (id -> model text); ids in `failed_ids` score 0 and count as failed.

    `unrunnable_types` holds one question type per row that never became a question (a
    malformed benchmark row): each adds a failed 0 to its type, so the denominator keeps it.

    Raises `ValueError` when a question that did not fail has no prediction, and
    `ZeroGroundTruthError` for a question the released rules cannot score.
    """
    failed = set(failed_ids)
    missing = [q.id for q in questions if q.id not in failed and q.id not in predictions]
    if missing:
        raise ValueError(f"no prediction for {len(missing)} question(s), first {missing[0]!r}")
    official: list[tuple[str, float, str]] = []
    relaxed: list[tuple[str, float, str]] = []
    for q in questions:
        check_official(q)
        if q.id in failed:
            official.append((q.question_type, 0.0, "failed"))
            relaxed.append((q.question_type, 0.0, "failed"))
            continue
        value, answered = official_score(q, predictions[q.id])
        official.append((q.question_type, value, "ok" if answered else "unparsed"))
        if lenient:
            value, parsed = score_vsibench(q, predictions[q.id])
            relaxed.append((q.question_type, value, "ok" if parsed else "unparsed"))
    for qtype in unrunnable_types:
        official.append((qtype, 0.0, "failed"))
        relaxed.append((qtype, 0.0, "failed"))
    return VSIBenchScoreReport(
        aggregate(OFFICIAL_SCORER, official), aggregate(LENIENT_SCORER, relaxed) if lenient else None
    )


# Column order and headers of the paper's per-task VSI-Bench table.
TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    (REL_DIRECTION, "Rel. Dir."),
    ("object_rel_distance", "Rel. Dist."),
    ("obj_appearance_order", "Appr. Order"),
    ("route_planning", "Route Plan"),
    ("object_size_estimation", "Obj. Size"),
    ("object_counting", "Obj. Count"),
    ("object_abs_distance", "Abs. Dist."),
    ("room_size_estimation", "Room Size"),
)


def format_table(report: VSIBenchScoreReport) -> str:
    """Per-task scores x100 in the paper's column order plus Overall; '-' for an absent task."""
    headers = [h for _, h in TABLE_COLUMNS] + ["Overall"]
    rows = [("official", report.official)]
    if report.lenient is not None:
        rows.append(("lenient parser*", report.lenient))
    width = max(len(name) for name, _ in rows)
    lines = [" | ".join([" " * width, *(f"{h:>11}" for h in headers)])]
    for name, scores in rows:
        cells = [scores.per_task.get(task) for task, _ in TABLE_COLUMNS] + [scores.overall]
        lines.append(" | ".join([f"{name:<{width}}", *(f"{'-' if v is None else f'{100 * v:.1f}':>11}" for v in cells)]))
    if report.lenient is not None:
        lines.append("* lenient parser: the project's own answer reading, not comparable with published scores")
    return "\n".join(lines)


def format_details(scores: VSIBenchScores) -> str:
    """Per question type: questions, failed (not run), unparsed, score x100."""
    lines = [f"{'question type':<30} {'n':>5} {'failed':>6} {'unparsed':>8} {'score':>7}"]
    for qtype, value in scores.per_question_type.items():
        lines.append(
            f"{qtype:<30} {scores.counts[qtype]:>5} {scores.failed[qtype]:>6} {scores.unparsed[qtype]:>8} {100 * value:>7.1f}"
        )
    return "\n".join(lines)
