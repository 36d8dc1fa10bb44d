"""Run any `WindowGenerator` over a QA file and score it (the library behind `ssr eval run`).

Input rows are training samples (ARCHITECTURE.md, "Training samples": `messages`, `frames`,
`task`, `ground_truth`) or VSI-Bench-style rows (`question`, `question_type`, `options`,
`ground_truth`, frames as `frames` or `video`: a frame list, a folder of images or a video file).
Frame paths are relative to `--root` (default: the QA file's folder).

Questions are grouped by window (their frame list), so each window is encoded once and all its
questions are answered in one batched `generate` call on the shared prefix. Predictions are the
raw model texts (`{"id", "prediction"}` per line), so they can be re-scored later. VSI-Bench
questions are scored by the released benchmark's rules (`ssr_core.evaluation.vsibench`), with the
lenient parser's row printed apart; grounding and LocalCogMap scores come from
`ssr_core.evaluation.metrics`. The real benchmark (its released files and videos) is run by
`ssr_core.evaluation.benchmark` (`ssr eval vsibench-run`). Bad input (malformed rows, missing frames) raises
`EvalInputError` naming the file and line, before any model runs.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ssr_core.data.questions import DETECT_ALL, TASK_COGMAP, TASK_GROUNDING, TASK_VSIBENCH
from ssr_core.data.sample_format import (
    IMAGE_SUFFIXES,
    TASKS,
    VIDEO_SUFFIXES,
    check_frame_list,
    check_messages,
    load_frames,
    read_records,
    sample_id,
)
from ssr_core.errors import InputError
from ssr_core.evaluation.metrics import (
    CogMapReport,
    GroundingReport,
    VSIBenchQuestion,
    evaluate_cogmap,
    evaluate_grounding,
)
from ssr_core.evaluation.vsibench import (
    VSIBenchScoreReport,
    VSIBenchScores,
    check_official,
    format_table,
    score_predictions,
)
from ssr_core.inference.reasoner import WindowGenerator
from ssr_core.io import atomic_open
from ssr_core.language.prompts import (
    CELL_ANSWER_TOKENS,
    DETECT_ALL_ANSWER_TOKENS,
    GROUNDING_ANSWER_TOKENS,
    SHORT_ANSWER_TOKENS,
    Prompt,
    vsibench_prompt,
)
from ssr_core.scene.cogmap import GRID_SIZE
from ssr_core.scene.objects import GroundedObject

DEFAULT_NUM_FRAMES = 32  # frames taken from a `video` folder or file (SSR's default window)
BLIND_GREY = 128  # the blind baseline's constant frame value (as training.dataset's blind runs)

# Answer budgets by task (the numbers are the prompt module's, shared with the reasoner).
MAX_NEW_TOKENS = {
    TASK_COGMAP: CELL_ANSWER_TOKENS,
    TASK_GROUNDING: GROUNDING_ANSWER_TOKENS,
    DETECT_ALL: DETECT_ALL_ANSWER_TOKENS,
    TASK_VSIBENCH: SHORT_ANSWER_TOKENS,
}

class EvalInputError(InputError):
    """Input the user must fix (the message names the file and line)."""


@dataclass(frozen=True)
class EvalSample:
    """One question to answer and score."""

    id: str
    task: str  # cogmap | grounding | vsibench
    question_type: str | None
    prompt: Prompt
    frames: tuple[Path, ...]  # resolved frame files, or a single video file
    ground_truth: Any  # cell [c, r], GroundedObject list, or VSIBenchQuestion

    @property
    def max_new_tokens(self) -> int:
        return MAX_NEW_TOKENS[DETECT_ALL if self.question_type == DETECT_ALL else self.task]


@dataclass
class EvalReport:
    """Scores of one run (parts are None / empty when the data holds no such task)."""

    vsibench: VSIBenchScores | None  # the released VSI-Bench rules (comparable with papers)
    cogmap: CogMapReport | None
    grounding: dict[str, GroundingReport]  # per question type, plus "all"
    num_samples: int
    num_windows: int
    seconds: float
    counts: dict[str, int] = field(default_factory=dict)  # samples per task
    vsibench_lenient: VSIBenchScores | None = None  # the project's lenient parser, shown apart
    zero_shot: bool = False  # answered by a base model never trained for SSR


# ---------------------------------------------------------------------------- reading


def read_samples(path: Path, root: Path | None = None, limit: int | None = None, num_frames: int = DEFAULT_NUM_FRAMES) -> list[EvalSample]:
    """Validated samples of a QA JSONL file (the first `limit` rows); raises `EvalInputError`."""
    if not path.is_file():
        raise EvalInputError(f"QA file {path} does not exist")
    root = root if root is not None else path.parent
    if not root.is_dir():
        raise EvalInputError(f"frame root {root} is not a directory")
    return read_records(path, lambda row: _sample(row, root, num_frames), lambda s: s.id, "samples",
                        EvalInputError, limit)


def _sample(row: dict[str, Any], root: Path, num_frames: int) -> EvalSample:
    sid = sample_id(row)
    task = row.get("task") or (TASK_VSIBENCH if "question" in row else None)
    if task not in TASKS:
        raise ValueError(f"sample {sid!r}: task must be one of {', '.join(TASKS)}, got {task!r}")
    qtype = row.get("question_type")
    if qtype is not None and not isinstance(qtype, str):
        raise ValueError(f"sample {sid!r}: question_type must be a string or null, got {type(qtype).__name__}")
    if "ground_truth" not in row:
        raise ValueError(f"sample {sid!r}: missing 'ground_truth'")
    truth = row["ground_truth"]
    options = row.get("options")
    prompt: Prompt
    if "messages" in row:
        try:
            prompt = check_messages(row["messages"])
        except ValueError as exc:
            raise ValueError(f"sample {sid!r}: {exc}") from None
    elif isinstance(row.get("question"), str) and row["question"].strip():
        if options is not None and not (isinstance(options, list) and all(isinstance(o, str) for o in options)):
            raise ValueError(f"sample {sid!r}: 'options' must be a list of strings")
        prompt = vsibench_prompt(row["question"], options or None)
    else:
        raise ValueError(f"sample {sid!r}: needs 'messages' or a non-empty 'question'")
    ground_truth: Any
    if task == TASK_VSIBENCH:
        ground_truth = VSIBenchQuestion.from_json({**row, "id": sid})
        check_official(ground_truth)
    elif task == TASK_COGMAP:
        ground_truth = _cell(truth, sid)
    else:
        ground_truth = _boxes(truth, sid)
    return EvalSample(sid, task, qtype, prompt, _frames(row, root, sid, num_frames), ground_truth)


def _cell(value: Any, sid: str) -> tuple[int, int]:
    ok = isinstance(value, list) and len(value) == 2 and all(
        isinstance(v, int) and not isinstance(v, bool) and 0 <= v < GRID_SIZE for v in value
    )
    if not ok:
        raise ValueError(f"sample {sid!r}: a cogmap ground_truth is [col, row] in 0..{GRID_SIZE - 1}, got {value!r}")
    return int(value[0]), int(value[1])


def _boxes(value: Any, sid: str) -> list[GroundedObject]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"sample {sid!r}: a grounding ground_truth is a non-empty list of objects")
    objects = []
    for item in value:
        box = item.get("bbox_7dof") if isinstance(item, dict) else None
        label = item.get("label") if isinstance(item, dict) else None
        numbers = isinstance(box, list) and len(box) == 7 and all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in box
        )
        if not isinstance(label, str) or not numbers:
            raise ValueError(f"sample {sid!r}: grounding objects need 'label' and 7 finite 'bbox_7dof' numbers")
        objects.append(GroundedObject(label, np.asarray(box, dtype=np.float64)))
    return objects


def _frames(row: dict[str, Any], root: Path, sid: str, num_frames: int) -> tuple[Path, ...]:
    """Frame files of a row: `frames` list, or `video` (list, image folder or video file)."""
    source = row.get("frames", row.get("video"))
    if isinstance(source, list):
        try:
            paths = tuple(root / p for p in check_frame_list(source))
        except ValueError as exc:
            raise ValueError(f"sample {sid!r}: {exc}") from None
    elif isinstance(source, str) and source:
        target = root / source
        if target.is_dir():
            images = sorted(p for p in target.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not images:
                raise ValueError(f"sample {sid!r}: no images in {target}")
            picked = np.unique(np.linspace(0, len(images) - 1, min(num_frames, len(images))).round().astype(int))
            paths = tuple(images[i] for i in picked)
        elif target.suffix.lower() in VIDEO_SUFFIXES:
            paths = (target,)
        else:
            raise ValueError(f"sample {sid!r}: video {target} is neither a folder of images nor a video file")
    else:
        raise ValueError(f"sample {sid!r}: needs 'frames' (a list of paths) or 'video'")
    missing = next((p for p in paths if not p.is_file()), None)
    if missing is not None:
        raise ValueError(f"sample {sid!r}: frame file {missing} does not exist")
    return paths


# ---------------------------------------------------------------------------- running


def group_by_window(samples: Sequence[EvalSample]) -> dict[tuple[Path, ...], list[EvalSample]]:
    """Samples sharing a frame list, in first-seen order: one encoding each."""
    groups: dict[tuple[Path, ...], list[EvalSample]] = {}
    for sample in samples:
        groups.setdefault(sample.frames, []).append(sample)
    return groups


def predict(
    samples: Sequence[EvalSample],
    generator: WindowGenerator,
    num_frames: int = DEFAULT_NUM_FRAMES,
    max_new_tokens: int | None = None,
    log: Callable[[str], None] | None = None,
    blind: bool = False,
) -> dict[str, str]:
    """Raw answer text per sample id; each window encoded once, its questions in one call.

    `max_new_tokens` caps every task's budget (quick runs). `blind` shows the model constant
    grey frames of the same shape (the blind baseline). Generator exceptions propagate.
    """
    predictions: dict[str, str] = {}
    groups = group_by_window(samples)
    for n, (paths, members) in enumerate(groups.items(), start=1):
        start = time.perf_counter()
        frames = load_frames(paths, num_frames)
        window = generator.encode_window(np.full_like(frames, BLIND_GREY) if blind else frames)
        try:
            limits = [s.max_new_tokens if max_new_tokens is None else min(s.max_new_tokens, max_new_tokens) for s in members]
            texts = generator.generate(window, [s.prompt for s in members], limits)
        finally:
            generator.release(window)
        if len(texts) != len(members):
            raise RuntimeError(f"generator returned {len(texts)} answers for {len(members)} prompts")
        predictions.update((s.id, str(t)) for s, t in zip(members, texts))
        if log is not None:
            log(f"window {n}/{len(groups)}: {len(members)} question(s) in {time.perf_counter() - start:.2f} s")
    return predictions


def score(
    samples: Sequence[EvalSample], predictions: dict[str, str], seconds: float = 0.0, zero_shot: bool = False
) -> EvalReport:
    """Scores of every task present (metrics from `ssr_core.evaluation.metrics`).

    Grounding is reported per question type; detect-all pairs boxes per label, a referral
    question judges its box alone. "referrals" pools the referral types when there are several.
    """
    by_task: dict[str, list[EvalSample]] = {t: [s for s in samples if s.task == t] for t in TASKS}
    vsi, cog, ground = by_task[TASK_VSIBENCH], by_task[TASK_COGMAP], by_task[TASK_GROUNDING]

    def grounding_report(members: Sequence[EvalSample]) -> GroundingReport:
        return evaluate_grounding(
            [predictions[s.id] for s in members],
            [s.ground_truth for s in members],
            match_labels=members[0].question_type == DETECT_ALL,
        )

    grounding = {
        qtype: grounding_report([s for s in ground if str(s.question_type) == qtype])
        for qtype in sorted({str(s.question_type) for s in ground})
    }
    referrals = [s for s in ground if s.question_type != DETECT_ALL]
    if len({s.question_type for s in referrals}) > 1:
        grounding["referrals"] = grounding_report(referrals)
    vsibench = score_predictions([s.ground_truth for s in vsi], predictions, lenient=True) if vsi else None
    return EvalReport(
        vsibench=vsibench.official if vsibench else None,
        vsibench_lenient=vsibench.lenient if vsibench else None,
        cogmap=evaluate_cogmap([predictions[s.id] for s in cog], [s.ground_truth for s in cog]) if cog else None,
        grounding=grounding,
        num_samples=len(samples),
        num_windows=len(group_by_window(samples)),
        seconds=seconds,
        counts={t: len(v) for t, v in by_task.items() if v},
        zero_shot=zero_shot,
    )


def format_report(report: EvalReport) -> str:
    """The human-readable tables (scores x100 as the paper reports them)."""
    lines = [
        f"{report.num_samples} question(s) on {report.num_windows} window(s) in {report.seconds:.1f} s "
        + "(" + ", ".join(f"{t}: {n}" for t, n in report.counts.items()) + ")"
    ]
    if report.zero_shot:
        lines.append("ZERO-SHOT: an untrained base model with the SSR-2D prompts, not a trained SSR model")
    if report.vsibench is not None:
        v = report.vsibench
        lines += ["", "VSI-Bench (the released benchmark's scoring rules)",
                  f"  {'question type':<30} {'n':>5} {'unparsed':>8} {'score':>7}"]
        for qtype, value in v.per_question_type.items():
            lines.append(f"  {qtype:<30} {v.counts[qtype]:>5} {v.unparsed[qtype]:>8} {100 * value:>7.1f}")
        lines.append(f"  {'task':<30} {'':>5} {'':>8} {'score':>7}")
        lines += [f"  {task:<30} {'':>5} {'':>8} {100 * value:>7.1f}" for task, value in v.per_task.items()]
        if v.overall is not None:
            lines.append(f"  {'overall (mean of tasks)':<30} {'':>5} {'':>8} {100 * v.overall:>7.1f}")
        if v.missing_tasks:
            lines.append(f"  not in the data (overall leaves them out): {', '.join(v.missing_tasks)}")
        table = format_table(VSIBenchScoreReport(v, report.vsibench_lenient))
        lines += ["", *(f"  {line}" for line in table.splitlines())]
    if report.grounding:
        lines += ["", "3D grounding (7-DoF)", f"  {'question type':<24} {'objects':>7} {'unparsed':>8} "
                  f"{'centre err m':>12} {'median m':>8} {'IoU':>6} {'Acc@.25':>7} {'Acc@.5':>7}"]
        for qtype, g in report.grounding.items():
            lines.append(
                f"  {qtype:<24} {g.n:>7} {g.n_unparsed:>8} {g.mean_center_error:>12.3f} {g.median_center_error:>8.3f} "
                f"{100 * g.mean_iou:>6.1f} {100 * g.acc_025:>7.1f} {100 * g.acc_050:>7.1f}"
            )
    if report.cogmap is not None:
        c = report.cogmap
        lines += ["", "LocalCogMap (MultiQA cells)", f"  {'n':>5} {'unparsed':>8} {'mean cell error':>15} {'median':>6} {'exact':>6}",
                  f"  {c.n:>5} {c.n_unparsed:>8} {c.mean_cell_error:>15.3f} {c.median_cell_error:>6.2f} {100 * c.exact_accuracy:>6.1f}"]
    return "\n".join(lines)


def write_predictions(
    path: Path, samples: Sequence[EvalSample], predictions: dict[str, str], zero_shot: bool = False
) -> None:
    """`{"id", "prediction"}` per line, in input order (plus `"zero_shot": true` from an untrained base);
    written atomically (an earlier file survives a failure)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    label = {"zero_shot": True} if zero_shot else {}
    with atomic_open(path) as fh:
        for s in samples:
            fh.write(json.dumps({"id": s.id, "prediction": predictions[s.id], **label}) + "\n")
