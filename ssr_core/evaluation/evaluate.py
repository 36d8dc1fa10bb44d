"""`ssr eval run`: run a checkpoint (or any `WindowGenerator`) over a QA file and score it.

Input rows are training samples (ARCHITECTURE.md, "Training samples": `messages`, `frames`,
`task`, `ground_truth`) or VSI-Bench-style rows (`question`, `question_type`, `options`,
`ground_truth`, frames as `frames` or `video`: a frame list, a folder of images or a video file).
Frame paths are relative to `--root` (default: the QA file's folder).

Questions are grouped by window (their frame list), so each window is encoded once and all its
questions are answered in one batched `generate` call on the shared prefix. Predictions are the
raw model texts (`{"id", "prediction"}` per line), so they can be re-scored later; the scores
come from `ssr_core.evaluation.metrics`. Bad input (missing checkpoint, malformed rows, missing frames)
ends with one clear message and exit status 1 (as every `ssr` command), before any model is loaded
when possible.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ssr_core.commands.main import CliError, read_jsonl
from ssr_core.data.questions import DETECT_ALL, TASK_COGMAP, TASK_GROUNDING, TASK_VSIBENCH
from ssr_core.evaluation.metrics import (
    CogMapReport,
    GroundingReport,
    VSIBenchQuestion,
    VSIBenchReport,
    evaluate_cogmap,
    evaluate_grounding,
    evaluate_vsibench,
)
from ssr_core.inference.reasoner import WindowGenerator
from ssr_core.language.parsers import GroundedObject
from ssr_core.language.prompts import Prompt, vsibench_prompt
from ssr_core.scene.cogmap import GRID_SIZE

TASKS = (TASK_COGMAP, TASK_GROUNDING, TASK_VSIBENCH)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")
DEFAULT_NUM_FRAMES = 32  # frames taken from a `video` folder or file (SSR's default window)

# Answer budgets: a cell is ~6 tokens, a grounded object ~45, VSI-Bench answers a few.
MAX_NEW_TOKENS = {TASK_COGMAP: 16, TASK_GROUNDING: 512, DETECT_ALL: 2048, TASK_VSIBENCH: 32}

# Shared with the other `ssr` commands: 1 = bad input, 2 = usage (argparse), 3 = the model failed.
EXIT_OK, EXIT_BAD_INPUT, EXIT_FAILED = 0, 1, 3


class EvalInputError(CliError, ValueError):
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

    vsibench: VSIBenchReport | None
    cogmap: CogMapReport | None
    grounding: dict[str, GroundingReport]  # per question type, plus "all"
    num_samples: int
    num_windows: int
    seconds: float
    counts: dict[str, int] = field(default_factory=dict)  # samples per task


# ---------------------------------------------------------------------------- reading


def read_samples(path: Path, root: Path | None = None, limit: int | None = None, num_frames: int = DEFAULT_NUM_FRAMES) -> list[EvalSample]:
    """Validated samples of a QA JSONL file (the first `limit` rows); raises `EvalInputError`."""
    if not path.is_file():
        raise EvalInputError(f"QA file {path} does not exist")
    root = root if root is not None else path.parent
    if not root.is_dir():
        raise EvalInputError(f"frame root {root} is not a directory")
    samples: list[EvalSample] = []
    seen: set[str] = set()
    for line_no, row in read_jsonl(str(path)):  # unreadable file or a bad line: CliError
        if limit is not None and len(samples) >= limit:
            break
        where = f"{path} line {line_no}"
        try:
            sample = _sample(row, root, num_frames)
        except (ValueError, TypeError, KeyError) as exc:
            raise EvalInputError(f"{where}: {exc}") from None
        if sample.id in seen:
            raise EvalInputError(f"{where}: duplicate id {sample.id!r}")
        seen.add(sample.id)
        samples.append(sample)
    if not samples:
        raise EvalInputError(f"{path} holds no samples")
    return samples


def _sample(row: dict[str, Any], root: Path, num_frames: int) -> EvalSample:
    if "id" not in row or isinstance(row["id"], bool) or not isinstance(row["id"], str | int):
        raise ValueError("missing or invalid 'id' (a string or an integer)")
    sid = str(row["id"])
    task = row.get("task") or (TASK_VSIBENCH if "question" in row else None)
    if task not in TASKS:
        raise ValueError(f"sample {sid!r}: task must be one of {', '.join(TASKS)}, got {task!r}")
    qtype = row.get("question_type")
    if "ground_truth" not in row:
        raise ValueError(f"sample {sid!r}: missing 'ground_truth'")
    truth = row["ground_truth"]
    options = row.get("options")
    prompt: Prompt
    if "messages" in row:
        prompt = _messages(row["messages"], sid)
    elif isinstance(row.get("question"), str) and row["question"].strip():
        if options is not None and not (isinstance(options, list) and all(isinstance(o, str) for o in options)):
            raise ValueError(f"sample {sid!r}: 'options' must be a list of strings")
        prompt = vsibench_prompt(row["question"], options or None)
    else:
        raise ValueError(f"sample {sid!r}: needs 'messages' or a non-empty 'question'")
    ground_truth: Any
    if task == TASK_VSIBENCH:
        ground_truth = VSIBenchQuestion.from_json({**row, "id": sid})
    elif task == TASK_COGMAP:
        ground_truth = _cell(truth, sid)
    else:
        ground_truth = _boxes(truth, sid)
    return EvalSample(sid, task, qtype, prompt, _frames(row, root, sid, num_frames), ground_truth)


def _messages(value: Any, sid: str) -> list[dict[str, str]]:
    ok = isinstance(value, list) and value and all(
        isinstance(m, dict) and m.get("role") in ("system", "user") and isinstance(m.get("content"), str)
        for m in value
    )
    if not ok or not any(m["role"] == "user" for m in value):
        raise ValueError(f"sample {sid!r}: 'messages' must be system/user messages with string content")
    return [{"role": m["role"], "content": m["content"]} for m in value]


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
        if not source or not all(isinstance(p, str) and p for p in source):
            raise ValueError(f"sample {sid!r}: frames must be a non-empty list of paths")
        paths = tuple(root / p for p in source)
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


def load_frames(paths: Sequence[Path], num_frames: int = DEFAULT_NUM_FRAMES) -> np.ndarray:
    """uint8 (N, H, W, 3) RGB frames (as training loads them); raises `EvalInputError`."""
    if len(paths) == 1 and paths[0].suffix.lower() in VIDEO_SUFFIXES:
        return _video_frames(paths[0], num_frames)
    from PIL import Image, UnidentifiedImageError

    frames = []
    for p in paths:
        try:
            with Image.open(p) as image:
                frames.append(np.asarray(image.convert("RGB")))
        except (OSError, UnidentifiedImageError) as exc:
            raise EvalInputError(f"cannot read frame {p}: {exc}") from None
    if len({f.shape for f in frames}) != 1:
        raise EvalInputError(f"frames of one window differ in size (first {paths[0]})")
    return np.stack(frames)


def _video_frames(path: Path, num_frames: int) -> np.ndarray:
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        if not capture.isOpened() or count <= 0:
            raise EvalInputError(f"cannot read video {path}")
        frames = []
        for index in np.unique(np.linspace(0, count - 1, min(num_frames, count)).round().astype(int)):
            capture.set(cv2.CAP_PROP_POS_FRAMES, int(index))
            ok, bgr = capture.read()
            if ok:
                frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    if not frames:
        raise EvalInputError(f"no frame could be decoded from {path}")
    return np.stack(frames)


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
) -> dict[str, str]:
    """Raw answer text per sample id; each window encoded once, its questions in one call.

    `max_new_tokens` caps every task's budget (quick runs). Generator exceptions propagate.
    """
    predictions: dict[str, str] = {}
    groups = group_by_window(samples)
    for n, (paths, members) in enumerate(groups.items(), start=1):
        start = time.perf_counter()
        window = generator.encode_window(load_frames(paths, num_frames))
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


def score(samples: Sequence[EvalSample], predictions: dict[str, str], seconds: float = 0.0) -> EvalReport:
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
    return EvalReport(
        vsibench=evaluate_vsibench([s.ground_truth for s in vsi], predictions) if vsi else None,
        cogmap=evaluate_cogmap([predictions[s.id] for s in cog], [s.ground_truth for s in cog]) if cog else None,
        grounding=grounding,
        num_samples=len(samples),
        num_windows=len(group_by_window(samples)),
        seconds=seconds,
        counts={t: len(v) for t, v in by_task.items() if v},
    )


def format_report(report: EvalReport) -> str:
    """The human-readable tables (scores x100 as the paper reports them)."""
    lines = [
        f"{report.num_samples} question(s) on {report.num_windows} window(s) in {report.seconds:.1f} s "
        + "(" + ", ".join(f"{t}: {n}" for t, n in report.counts.items()) + ")"
    ]
    if report.vsibench is not None:
        v = report.vsibench
        lines += ["", "VSI-Bench", f"  {'question type':<30} {'n':>5} {'unparsed':>8} {'score':>7}"]
        for qtype, value in v.per_question_type.items():
            lines.append(f"  {qtype:<30} {v.counts[qtype]:>5} {v.unparsed[qtype]:>8} {100 * value:>7.1f}")
        lines.append(f"  {'task':<30} {'':>5} {'':>8} {'score':>7}")
        lines += [f"  {task:<30} {'':>5} {'':>8} {100 * value:>7.1f}" for task, value in v.per_task.items()]
        if v.overall is not None:
            lines.append(f"  {'overall (mean of tasks)':<30} {'':>5} {'':>8} {100 * v.overall:>7.1f}")
        if v.missing_tasks:
            lines.append(f"  not in the data (overall leaves them out): {', '.join(v.missing_tasks)}")
    if report.grounding:
        lines += ["", "3D grounding (7-DoF)", f"  {'question type':<24} {'objects':>7} {'unparsed':>8} "
                  f"{'centre err m':>12} {'IoU':>6} {'Acc@.25':>7} {'Acc@.5':>7}"]
        for qtype, g in report.grounding.items():
            lines.append(
                f"  {qtype:<24} {g.n:>7} {g.n_unparsed:>8} {g.mean_center_error:>12.3f} "
                f"{100 * g.mean_iou:>6.1f} {100 * g.acc_025:>7.1f} {100 * g.acc_050:>7.1f}"
            )
    if report.cogmap is not None:
        c = report.cogmap
        lines += ["", "LocalCogMap (MultiQA cells)", f"  {'n':>5} {'unparsed':>8} {'mean cell error':>15} {'exact':>6}",
                  f"  {c.n:>5} {c.n_unparsed:>8} {c.mean_cell_error:>15.3f} {100 * c.exact_accuracy:>6.1f}"]
    return "\n".join(lines)


def write_predictions(path: Path, samples: Sequence[EvalSample], predictions: dict[str, str]) -> None:
    """`{"id", "prediction"}` per line, in input order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for s in samples:
            fh.write(json.dumps({"id": s.id, "prediction": predictions[s.id]}) + "\n")


# ---------------------------------------------------------------------------- command line

GeneratorFactory = Callable[[argparse.Namespace], WindowGenerator]


def load_checkpoint_generator(args: argparse.Namespace) -> WindowGenerator:
    """The SSR engine over `--checkpoint` (torch is imported only here)."""
    checkpoint = Path(args.checkpoint)
    if not checkpoint.is_dir():
        raise EvalInputError(f"checkpoint {checkpoint} is not a directory")
    from ssr_core.inference.generation import SSRGenerator

    try:
        return SSRGenerator.from_checkpoint(
            checkpoint, device=args.device, vggt_path=args.vggt_path, max_batch_size=args.batch_size
        )
    except (OSError, ValueError, KeyError) as exc:
        raise EvalInputError(f"cannot load checkpoint {checkpoint}: {type(exc).__name__}: {exc}") from None


def run_eval(args: argparse.Namespace, make_generator: GeneratorFactory = load_checkpoint_generator) -> int:
    """`ssr eval run`: exit 0 on success, 1 on bad input, 3 when the model fails."""
    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    try:
        for flag, value in (("--limit", args.limit), ("--num-frames", args.num_frames),
                            ("--batch-size", args.batch_size), ("--max-new-tokens", args.max_new_tokens)):
            if value is not None and value < 1:
                raise EvalInputError(f"{flag} must be >= 1, got {value}")
        samples = read_samples(Path(args.data), Path(args.root) if args.root else None, args.limit, args.num_frames)
        generator = make_generator(args)
        start = time.perf_counter()
        predictions = predict(samples, generator, args.num_frames, args.max_new_tokens, say)
        seconds = time.perf_counter() - start
    except CliError as exc:  # EvalInputError, or a bad JSONL line from read_jsonl
        say(f"ssr eval run: error: {exc}")
        return EXIT_BAD_INPUT
    except Exception as exc:  # the model or device failed: report it, not a traceback
        say(f"ssr eval run: the model failed: {type(exc).__name__}: {exc}")
        return EXIT_FAILED
    if args.out:
        write_predictions(Path(args.out), samples, predictions)
        say(f"predictions written to {args.out}")
    print(format_report(score(samples, predictions, seconds)))
    return EXIT_OK


def add_eval_run_command(subparsers: Any, make_generator: GeneratorFactory = load_checkpoint_generator) -> argparse.ArgumentParser:
    """Add `run` to the `ssr eval` sub-command group; the handler is `args.func(args) -> exit code`."""
    parser = subparsers.add_parser(
        "run",
        help="run a checkpoint over a QA file and print VSI-Bench, grounding and LocalCogMap scores",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--checkpoint", required=True, help="SSR checkpoint directory")
    parser.add_argument("--data", required=True, help="QA JSONL (training samples or VSI-Bench-style rows)")
    parser.add_argument("--out", help="write predictions JSONL ({id, prediction} per line) here")
    parser.add_argument("--root", help="folder frame paths are relative to (default: the QA file's folder)")
    parser.add_argument("--device", default="auto", choices=("auto", "cuda", "npu", "cpu"))
    parser.add_argument("--vggt-path", help="VGGT aggregator weights for SSR-3D (default: from the checkpoint)")
    parser.add_argument("--limit", type=int, help="only the first N samples")
    parser.add_argument("--num-frames", type=int, default=DEFAULT_NUM_FRAMES,
                        help="frames taken from a `video` folder or file (default %(default)s)")
    parser.add_argument("--batch-size", type=int, default=16, help="prompts decoded together (default %(default)s)")
    parser.add_argument("--max-new-tokens", type=int, help="cap every answer's token budget (quick runs)")
    parser.set_defaults(func=lambda args: run_eval(args, make_generator))
    return parser


def main(argv: Sequence[str] | None = None, make_generator: GeneratorFactory = load_checkpoint_generator) -> int:
    """`python -m ssr_core.evaluation.evaluate run ...` (the same command as `ssr eval run`)."""
    parser = argparse.ArgumentParser(prog="ssr eval")
    add_eval_run_command(parser.add_subparsers(dest="command", required=True), make_generator)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
