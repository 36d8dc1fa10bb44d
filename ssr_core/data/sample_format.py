"""The training-sample format and its one reader (docs/FORMATS.md, "Training samples").

A sample file is JSONL, one sample a line, written by `ssr_core.data.samples` (and the importers)
and read here by training (`training.dataset`), evaluation (`ssr eval run`) and every command
that takes samples. Keys:

    id            str | int, unique in the file
    task          "cogmap" | "grounding" | "vsibench"
    question_type str | null (VSI-Bench question type, grounding referral kind)
    frames        [path, ...] relative to the dataset root (the window's frames, in time order)
    messages      [{"role": "system" | "user", "content": str}, ...] (the user question last)
    answer        str: the target text (training only)
    options       [str, ...] | null (multiple choice)
    ground_truth  what metrics compare with: [col, row], a list of {label, bbox_7dof}, a number or a letter
    scene_id, split, window, source   provenance (optional; `source` names the imported set)

Frames are loaded by `load_frames` only: images of any size PIL reads, or one video file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ssr_core.errors import InputError

TASKS = ("cogmap", "grounding", "vsibench")
TRAINING_KEYS = ("id", "frames", "messages", "answer")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")

T = TypeVar("T")


class SampleFormatError(InputError):
    """A sample file or one of its lines does not follow the format (the message names file and line)."""


def read_jsonl(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line; `SampleFormatError` naming the first bad line."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise SampleFormatError(f"cannot read {path}: {err}") from None
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (ValueError, RecursionError) as err:
            raise SampleFormatError(f"{path} line {number}: not valid JSON ({err})") from None
        if not isinstance(row, dict):
            raise SampleFormatError(f"{path} line {number}: expected a JSON object")
        rows.append((number, row))
    return rows


def sample_id(row: dict[str, Any]) -> str:
    """The row's id as text; `ValueError` when missing or not a string/integer."""
    value = row.get("id")
    if value is None or isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError("missing or invalid 'id' (a string or an integer)")
    return str(value)


def check_messages(value: Any) -> list[dict[str, str]]:
    """System/user chat messages with string content, at least one from the user."""
    ok = isinstance(value, list) and value and all(
        isinstance(m, dict) and m.get("role") in ("system", "user") and isinstance(m.get("content"), str)
        for m in value
    )
    if not ok or not any(m["role"] == "user" for m in value):
        raise ValueError("'messages' must be system/user messages with string content")
    return [{"role": m["role"], "content": m["content"]} for m in value]


def check_frame_list(value: Any) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(p, str) and p for p in value):
        raise ValueError("'frames' must be a non-empty list of paths")
    return list(value)


def read_records(
    path: str | Path,
    parse: Callable[[dict[str, Any]], T],
    record_id: Callable[[T], str],
    what: str,
    error: type[InputError] = SampleFormatError,
    limit: int | None = None,
) -> list[T]:
    """`parse` of every row (the first `limit`), ids unique, at least one; each bad row is `error`
    naming the file and line. The one row loop of every sample and question file."""
    records: list[T] = []
    seen: set[str] = set()
    for number, row in read_jsonl(path):
        if limit is not None and len(records) >= limit:
            break
        where = f"{path} line {number}"
        try:
            record = parse(row)
        except (ValueError, TypeError, KeyError, OverflowError) as err:
            raise error(f"{where}: {err}") from None
        rid = record_id(record)
        if rid in seen:
            raise error(f"{where}: duplicate id {rid!r}")
        seen.add(rid)
        records.append(record)
    if not records:
        raise error(f"{path} holds no {what}")
    return records


def check_training_sample(row: dict[str, Any]) -> dict[str, Any]:
    """The row itself when it holds what training needs; `ValueError` saying what is missing."""
    missing = [k for k in TRAINING_KEYS if k not in row]
    if missing:
        raise ValueError(f"missing keys {missing}")
    sample_id(row)
    check_frame_list(row["frames"])
    check_messages(row["messages"])
    if not isinstance(row["answer"], str) or not row["answer"]:
        raise ValueError("'answer' must be a non-empty string")
    return row


def read_training_samples(path: str | Path) -> list[dict[str, Any]]:
    """Every sample of a file, checked for what training needs; ids unique (runs log and compare them)."""
    return read_records(path, check_training_sample, sample_id, "samples")


def load_frames(paths: Sequence[Path], num_frames: int = 32) -> np.ndarray:
    """uint8 (N, H, W, 3) RGB frames of image files, or `num_frames` uniform frames of one video file."""
    if len(paths) == 1 and paths[0].suffix.lower() in VIDEO_SUFFIXES:
        return _video_frames(paths[0], num_frames)
    from PIL import Image, UnidentifiedImageError

    frames = []
    for p in paths:
        try:
            with Image.open(p) as image:
                frames.append(np.asarray(image.convert("RGB")))
        except (OSError, UnidentifiedImageError) as exc:
            raise SampleFormatError(f"cannot read frame {p}: {exc}") from None
    if len({f.shape for f in frames}) != 1:
        raise SampleFormatError(f"frames of one window differ in size (first {paths[0]})")
    return np.stack(frames)


def _video_frames(path: Path, num_frames: int) -> np.ndarray:
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        if not capture.isOpened() or count <= 0:
            raise SampleFormatError(f"cannot read video {path}")
        frames = []
        for index in np.unique(np.linspace(0, count - 1, min(num_frames, count)).round().astype(int)):
            capture.set(cv2.CAP_PROP_POS_FRAMES, int(index))
            ok, bgr = capture.read()
            if ok:
                frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    if not frames:
        raise SampleFormatError(f"no frame could be decoded from {path}")
    return np.stack(frames)
