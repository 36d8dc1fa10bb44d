"""Run a model on a local copy of VSI-Bench in its released layout, resumably, and score it.

Released layout (Hugging Face `nyu-visionx/VSI-Bench`):

- question rows with `id`, `dataset`, `scene_name`, `question_type`, `question`, `options`
  (None for numerical questions) and `ground_truth` (the option letter, or the number as text):
  `test.jsonl`, `test-00000-of-00001.parquet`, or `test_debiased.parquet` for VSI-Bench-Debiased;
  a file whose rows carry the `pruned` column gives the debiased variant with `debiased=True`;
- videos at `<video root>/<dataset>/<scene_name>.mp4` (the released `arkitscenes.zip`,
  `scannet.zip` and `scannetpp.zip` unpacked side by side).

Each video is decoded once (32 frames sampled uniformly, first and last included), encoded once,
and all its questions are answered in one batched `generate` call on the shared prefix with the
released prompts (`ssr_core.language.prompts.vsibench_benchmark_prompt`) and the released answer budget
of 16 new tokens. Predictions are appended to a JSONL file (`{"id", "question_type",
"prediction"}`) as each video finishes, so a killed run resumes where it stopped: rows already in
the file are not recomputed (a last line cut by the kill is dropped and redone).

Counting rule: every row of the question file stays in the denominator. A row that cannot be
run (a malformed row, a duplicate id, a missing or unreadable video) scores 0 in its question
type and is reported by row. A row whose question type itself is unreadable cannot belong to any
task: it is reported and counted as `rows_without_task`, and the run is marked incomplete.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ssr_core.errors import InputError
from ssr_core.evaluation.metrics import VSIBENCH_QUESTION_TYPES, VSIBenchQuestion
from ssr_core.evaluation.vsibench import VSIBenchScoreReport, check_official, score_predictions
from ssr_core.inference.reasoner import WindowGenerator
from ssr_core.language.parsers import NUMERIC_QUESTION_TYPES
from ssr_core.language.prompts import vsibench_benchmark_prompt

DEFAULT_NUM_FRAMES = 32  # the paper's evaluation setting
DEFAULT_MAX_NEW_TOKENS = 16  # the released task's generation budget
VIDEO_SUFFIX = ".mp4"
ROW_FIELDS = ("id", "dataset", "scene_name", "question_type", "question", "ground_truth")


class BenchmarkInputError(InputError):
    """Input the user must fix before anything can run (the message names the file)."""


class VideoReadError(InputError):
    """A video that is missing or cannot be decoded; its questions score 0 and are reported."""


# ---------------------------------------------------------------------------- question rows


@dataclass(frozen=True)
class BenchmarkRow:
    """One valid question row."""

    row: int  # 1-based position in the question file (its line number for JSONL)
    question: VSIBenchQuestion  # id, type, ground truth and options as scoring needs them
    dataset: str  # arkitscenes | scannet | scannetpp
    scene_name: str
    text: str  # the question as asked

    @property
    def id(self) -> str:
        return self.question.id

    @property
    def video(self) -> str:
        """The video's path under the video root."""
        return f"{self.dataset}/{self.scene_name}{VIDEO_SUFFIX}"

    @property
    def prompt(self) -> str:
        return vsibench_benchmark_prompt(self.question.question_type, self.text, self.question.options)


@dataclass(frozen=True)
class RowProblem:
    """A row that cannot be answered; it scores 0 in its question type (when it has one)."""

    row: int
    id: str | None
    question_type: str | None  # None: the row names no known type and belongs to no task
    reason: str

    def describe(self) -> str:
        return f"row {self.row}" + (f" (id {self.id})" if self.id is not None else "") + f": {self.reason}"


@dataclass
class BenchmarkQuestions:
    """The valid rows of a question file and the problems of the others."""

    path: Path
    rows: list[BenchmarkRow]
    problems: list[RowProblem]


def read_questions(path: Path, debiased: bool = False) -> BenchmarkQuestions:
    """Rows of a `.jsonl`, `.json` (a list of rows) or `.parquet` question file.

    `debiased=True` keeps the rows whose `pruned` field is false (the released VSI-Bench-Debiased
    selection); give `test_debiased.parquet` itself without the flag. Raises
    `BenchmarkInputError` when the file cannot be read at all; bad rows become `RowProblem`s.
    """
    records = _records(path)
    if debiased:
        if not any(isinstance(r, dict) and "pruned" in r for _, r in records):
            raise BenchmarkInputError(
                f"{path}: --debiased needs rows with the 'pruned' field; or give the debiased rows "
                "(test_debiased.parquet) without --debiased"
            )
        records = [(n, r) for n, r in records if not (isinstance(r, dict) and r.get("pruned"))]
    rows: list[BenchmarkRow] = []
    problems: list[RowProblem] = []
    seen: set[str] = set()
    for number, record in records:
        try:
            row = _row(number, record)
        except ValueError as exc:
            problems.append(_problem(number, record, str(exc)))
            continue
        if row.id in seen:
            problems.append(RowProblem(number, row.id, row.question.question_type, f"duplicate id {row.id!r}"))
            continue
        seen.add(row.id)
        rows.append(row)
    if not rows and not problems:
        raise BenchmarkInputError(f"{path} holds no question rows")
    return BenchmarkQuestions(path, rows, problems)


def _records(path: Path) -> list[tuple[int, Any]]:
    """(row number, parsed row); an unparseable JSONL line becomes a string (a bad row)."""
    if not path.is_file():
        raise BenchmarkInputError(f"question file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise BenchmarkInputError(
                f"{path}: reading parquet needs pyarrow, which is not installed; use the release's "
                "test.jsonl instead"
            ) from None
        try:
            return list(enumerate(pq.read_table(path).to_pylist(), start=1))
        except Exception as exc:  # pyarrow raises its own error types for a damaged file
            raise BenchmarkInputError(f"cannot read {path}: {exc}") from None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchmarkInputError(f"cannot read {path}: {exc}") from None
    if suffix == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise BenchmarkInputError(f"{path} is not valid JSON: {exc}") from None
        if not isinstance(data, list):
            raise BenchmarkInputError(f"{path}: expected a JSON list of question rows")
        return list(enumerate(data, start=1))
    records: list[tuple[int, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append((number, json.loads(line)))
        except ValueError:
            records.append((number, "not valid JSON"))
    return records


def _problem(number: int, record: Any, reason: str) -> RowProblem:
    if not isinstance(record, dict):
        return RowProblem(number, None, None, reason)
    qid = record.get("id")
    qtype = record.get("question_type")
    return RowProblem(
        number,
        str(qid) if isinstance(qid, str | int) and not isinstance(qid, bool) else None,
        qtype if qtype in VSIBENCH_QUESTION_TYPES else None,
        reason,
    )


def _row(number: int, record: Any) -> BenchmarkRow:
    if isinstance(record, str):
        raise ValueError(record)
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    missing = [key for key in ROW_FIELDS if record.get(key) is None]
    if missing:
        raise ValueError(f"missing field(s) {', '.join(missing)}")
    for key in ("dataset", "scene_name"):
        value = record[key]
        if not isinstance(value, str) or not value.strip() or "/" in value or "\\" in value or value.startswith("."):
            raise ValueError(f"{key} must be a plain name, got {value!r}")
    if not isinstance(record["question"], str) or not record["question"].strip():
        raise ValueError("question must be a non-empty string")
    qid = record["id"]
    if isinstance(qid, bool) or not isinstance(qid, str | int):
        raise ValueError("id must be a string or an integer")
    fields = {key: record[key] for key in ("question_type", "ground_truth")}
    if record["question_type"] not in NUMERIC_QUESTION_TYPES and record.get("options") is not None:
        fields["options"] = list(record["options"]) if isinstance(record["options"], tuple) else record["options"]
    question = VSIBenchQuestion.from_json({"id": str(qid), **fields})
    check_official(question)
    return BenchmarkRow(number, question, record["dataset"], record["scene_name"], record["question"])


# ---------------------------------------------------------------------------- videos


def uniform_frame_indices(total: int, count: int) -> np.ndarray:
    """`count` frame indices spread evenly over a `total`-frame video, first and last included."""
    return np.unique(np.linspace(0, total - 1, min(count, total)).round().astype(int))


def read_video_frames(path: Path, num_frames: int = DEFAULT_NUM_FRAMES) -> np.ndarray:
    """uint8 RGB frames (N, H, W, 3) sampled uniformly; raises `VideoReadError`.

    Frames are read in order (grab, decode only the picked ones), which is exact where seeking
    is not. A container that announces more frames than it holds is sampled again over the
    frames it really has.
    """
    import cv2

    if not path.is_file():
        raise VideoReadError(f"video {path} is missing")
    announced = None
    for _ in range(2):
        capture = cv2.VideoCapture(str(path))
        try:
            if not capture.isOpened():
                raise VideoReadError(f"cannot open video {path}")
            total = announced if announced is not None else int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            if total <= 0:
                raise VideoReadError(f"video {path} holds no frames")
            wanted = uniform_frame_indices(total, num_frames)
            picked = set(wanted.tolist())
            frames = []
            grabbed = 0
            while grabbed <= wanted[-1] and capture.grab():
                if grabbed in picked:
                    ok, bgr = capture.retrieve()
                    if not ok:
                        raise VideoReadError(f"cannot decode frame {grabbed} of {path}")
                    frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                grabbed += 1
        finally:
            capture.release()
        if len(frames) == len(wanted):
            return np.stack(frames)
        if grabbed == 0:
            break
        announced = grabbed  # fewer frames than announced: sample over the real ones
    raise VideoReadError(f"cannot decode video {path}")


# ---------------------------------------------------------------------------- predictions file


def read_finished(path: Path) -> dict[str, str]:
    """Predictions already in the file (id -> text).

    Lines are written whole, newline last, so only a final piece without a newline can be cut
    by a kill: it is removed from the file (its video is redone). Any other bad line raises
    `BenchmarkInputError`.
    """
    if not path.exists():
        return {}
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BenchmarkInputError(f"cannot read {path}: {exc}") from None
    *lines, tail = data.split(b"\n")
    finished: dict[str, str] = {}
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except ValueError:
            row = None
        if not (isinstance(row, dict) and isinstance(row.get("id"), str) and isinstance(row.get("prediction"), str)):
            raise BenchmarkInputError(
                f"{path} line {number}: not a prediction row written by this command; "
                "move the file away to start a fresh run"
            )
        finished[row["id"]] = row["prediction"]
    if tail:
        with open(path, "r+b") as fh:
            fh.truncate(len(data) - len(tail))
    return finished


# ---------------------------------------------------------------------------- running


@dataclass
class BenchmarkRun:
    """What a run produced: every prediction (resumed and new) and the rows that could not run."""

    predictions: dict[str, str]
    failures: list[RowProblem]  # rows of missing / unreadable videos
    resumed: int  # predictions taken from the file
    videos_run: int
    questions_run: int
    seconds: float
    videos_failed: list[str] = field(default_factory=list)


def run_benchmark(
    questions: BenchmarkQuestions,
    video_root: Path,
    generator: WindowGenerator,
    predictions_path: Path,
    num_frames: int = DEFAULT_NUM_FRAMES,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    progress: bool = True,
) -> BenchmarkRun:
    """Answer every unfinished row, one encode per video; predictions are appended as they come.

    Generator exceptions (and KeyboardInterrupt) propagate; what was written stays for a resume.
    """
    from tqdm import tqdm

    finished = read_finished(predictions_path)
    pending: dict[str, list[BenchmarkRow]] = {}
    for row in questions.rows:
        if row.id not in finished:
            pending.setdefault(row.video, []).append(row)
    predictions = {row.id: finished[row.id] for row in questions.rows if row.id in finished}
    failures: list[RowProblem] = []
    failed_videos: list[str] = []
    start = time.perf_counter()
    videos_run = questions_run = 0
    predictions_path.parent.mkdir(parents=True, exist_ok=True)
    bar = tqdm(
        total=sum(len(rows) for rows in pending.values()),
        unit="q",
        desc="VSI-Bench",
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    with open(predictions_path, "a", encoding="utf-8") as out, bar:
        for video, rows in pending.items():
            bar.set_postfix_str(video, refresh=False)
            try:
                frames = read_video_frames(video_root / video, num_frames)
            except VideoReadError as exc:
                failures += [RowProblem(r.row, r.id, r.question.question_type, str(exc)) for r in rows]
                failed_videos.append(video)
                bar.update(len(rows))
                continue
            window = generator.encode_window(frames)
            try:
                texts = generator.generate(window, [r.prompt for r in rows], [max_new_tokens] * len(rows))
            finally:
                generator.release(window)
            if len(texts) != len(rows):
                raise RuntimeError(f"generator returned {len(texts)} answers for {len(rows)} prompts")
            lines = []
            for row, text in zip(rows, texts):
                predictions[row.id] = str(text)
                record = {"id": row.id, "question_type": row.question.question_type, "prediction": str(text)}
                lines.append(json.dumps(record) + "\n")
            out.write("".join(lines))
            out.flush()
            os.fsync(out.fileno())
            videos_run += 1
            questions_run += len(rows)
            bar.update(len(rows))
    return BenchmarkRun(
        predictions=predictions,
        failures=failures,
        resumed=len(finished.keys() & {r.id for r in questions.rows}),
        videos_run=videos_run,
        questions_run=questions_run,
        seconds=time.perf_counter() - start,
        videos_failed=failed_videos,
    )


# ---------------------------------------------------------------------------- scoring and report


@dataclass
class BenchmarkReport:
    scores: VSIBenchScoreReport
    problems: list[RowProblem]  # bad rows and rows of failed videos, in row order
    rows_without_task: int  # problems that belong to no task (unknown question type)
    num_rows: int  # every row of the file (after the debiased selection)

    @property
    def complete(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            **self.scores.to_json(),
            "num_rows": self.num_rows,
            "rows_without_task": self.rows_without_task,
            "problems": [{"row": p.row, "id": p.id, "question_type": p.question_type, "reason": p.reason}
                         for p in self.problems],
        }


def score_benchmark(questions: BenchmarkQuestions, run: BenchmarkRun, lenient: bool = False) -> BenchmarkReport:
    """Scores under the counting rule of the module docstring."""
    failed_ids = {p.id for p in run.failures if p.id is not None}
    bad_types = [p.question_type for p in questions.problems if p.question_type is not None]
    scores = score_predictions(
        [r.question for r in questions.rows], run.predictions, lenient, failed_ids, unrunnable_types=bad_types
    )
    problems = sorted(questions.problems + run.failures, key=lambda p: p.row)
    return BenchmarkReport(
        scores=scores,
        problems=problems,
        rows_without_task=sum(p.question_type is None for p in questions.problems),
        num_rows=len(questions.rows) + len(questions.problems),
    )


def describe_problems(problems: Iterable[RowProblem]) -> list[str]:
    """One line per reason, listing its rows (a missing video names all its questions' rows)."""
    by_reason: dict[str, list[RowProblem]] = {}
    for p in problems:
        by_reason.setdefault(p.reason, []).append(p)
    lines = []
    for reason, members in by_reason.items():
        where = ", ".join(str(p.row) + (f" (id {p.id})" if p.id is not None else "") for p in members)
        lines.append(f"{reason}: row{'s' if len(members) > 1 else ''} {where}")
    return lines


def summary_lines(report: BenchmarkReport, run: BenchmarkRun) -> list[str]:
    """Counts of the run for the report header."""
    official = report.scores.official
    lines = [
        f"{report.num_rows} row(s): {run.resumed} resumed from the predictions file, {run.questions_run} answered "
        f"on {run.videos_run} video(s) in {run.seconds:.1f} s",
        f"{sum(official.failed.values())} row(s) could not be run and score 0 (counted); "
        f"{sum(official.unparsed.values())} prediction(s) give no answer under the released rules (score 0)",
    ]
    if report.rows_without_task:
        lines.append(f"{report.rows_without_task} row(s) name no valid question type and belong to no task: "
                     "the overall score leaves them out, so this run is INCOMPLETE")
    return lines


def limit_videos(questions: BenchmarkQuestions, count: int) -> BenchmarkQuestions:
    """Only the rows of the first `count` videos (quick runs); the bad rows are kept."""
    keep = set(list(dict.fromkeys(r.video for r in questions.rows))[:count])
    return BenchmarkQuestions(questions.path, [r for r in questions.rows if r.video in keep], questions.problems)
