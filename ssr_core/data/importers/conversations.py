"""Conversation-style video / multi-image QA (VSI-590K, SPAR-7M, ViCA, VLM-3R data) -> samples.

These sets ship LLaVA-style rows, as a JSON list or JSONL:

    {"id": ..., "video": "rel/path.mp4"            (or "image": path | [paths], "images": [paths]),
     "conversations": [{"from": "human", "value": "<video>\\nQuestion"}, {"from": "gpt", "value": "Answer"},
                       ... more turns ...],
     "question_type": ... (optional)}

Media paths are resolved under `media_root`. Every human turn followed by a gpt turn becomes one
sample (the question without its media placeholder, the answer as the target), task `vsibench`
(spatial QA), `question_type` from the row when it has one. Frames follow the window rules of
the project: a video is referenced as one file (the loader takes `frames_per_window` uniform
frames of it); an image list longer than `frames_per_window` keeps that many, spread uniformly
and in order. The output folder links `media_root` as `media/`, so frame paths stay relative.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from ssr_core.data.importers.card import SAMPLES_FILE, ImportCard, link_media
from ssr_core.data.questions import TASK_VSIBENCH
from ssr_core.data.sample_format import VIDEO_SUFFIXES
from ssr_core.errors import InputError
from ssr_core.io import atomic_open

MEDIA_LINK = "media"
_PLACEHOLDER = re.compile(r"<\|?(?:image|video)(?:_\d+)?\|?>\s*")
_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}


class ConversationImportError(InputError):
    """The annotation file cannot be read at all (a single bad row is skipped instead)."""


def read_rows(path: Path) -> Iterator[tuple[int, Any]]:
    """(row number, row): list position for a JSON list, line number for JSONL; a line that is
    not JSON is yielded as None."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConversationImportError(f"cannot read {path}: {exc}") from None
    if path.suffix.lower() == ".jsonl":
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    yield number, json.loads(line)
                except ValueError:
                    yield number, None
        return
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConversationImportError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, list):
        raise ConversationImportError(f"{path}: expected a JSON list of conversation rows")
    yield from enumerate(data, start=1)


def uniform_subset(paths: list[str], count: int) -> list[str]:
    """At most `count` of `paths`, spread uniformly, first and last kept, order preserved."""
    if len(paths) <= count:
        return paths
    return [paths[i] for i in np.unique(np.linspace(0, len(paths) - 1, count).round().astype(int))]


def _media(row: dict[str, Any], media_root: Path, frames_per_window: int) -> list[str]:
    paths: list[str]
    if isinstance(row.get("video"), str):
        paths = [row["video"]]
    else:
        images = row.get("images", row.get("image"))
        listed = [images] if isinstance(images, str) else images
        if not isinstance(listed, list) or not listed or not all(isinstance(p, str) and p for p in listed):
            raise ValueError("no media: needs 'video' (a path) or 'image' / 'images' (paths)")
        paths = uniform_subset(listed, frames_per_window)
    for p in paths:
        parts = PurePosixPath(p).parts
        if PurePosixPath(p).is_absolute() or ".." in parts:
            raise ValueError(f"media path {p!r} leaves the media root")
        if not (media_root / p).is_file():
            raise ValueError(f"media missing: {media_root / p}")
    return [f"{MEDIA_LINK}/{p}" for p in paths]


def scene_of(frames: list[str]) -> str:
    """The scene a sample shows: a video's file stem (VSI-590K names videos by scan), else the
    folder of its images (SPAR-7M keeps a scan's images together)."""
    first = PurePosixPath(frames[0])
    return first.stem if len(frames) == 1 and first.suffix.lower() in VIDEO_SUFFIXES else first.parent.name


def _turns(conversations: Any) -> list[tuple[str, str]]:
    """(question, answer) pairs of a conversation; `ValueError` when it is malformed."""
    if not isinstance(conversations, list) or not conversations:
        raise ValueError("'conversations' must be a non-empty list")
    turns = []
    pending: str | None = None
    for k, message in enumerate(conversations):
        if not isinstance(message, dict) or not isinstance(message.get("value"), str):
            raise ValueError(f"conversations[{k}] needs 'from' and a string 'value'")
        role = _ROLES.get(str(message.get("from")).lower())
        if role is None:
            raise ValueError(f"conversations[{k}]: unknown speaker {message.get('from')!r}")
        if role == "user":
            pending = _PLACEHOLDER.sub("", message["value"]).strip()
        elif pending:
            answer = message["value"].strip()
            if answer:
                turns.append((pending, answer))
            pending = None
    if not turns:
        raise ValueError("no question followed by a non-empty answer")
    return turns


def import_conversations(
    annotations: str | Path,
    media_root: str | Path,
    out_dir: str | Path,
    source: str,
    frames_per_window: int = 32,
    split: str = "train",
) -> ImportCard:
    """Write `samples.jsonl` and `data_card.json` under `out_dir`; returns the card."""
    annotations, media_root, out_dir = Path(annotations), Path(media_root), Path(out_dir)
    if not media_root.is_dir():
        raise ConversationImportError(f"media root {media_root} is not a directory")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", source):
        raise ConversationImportError(f"source name {source!r} must be letters, digits, '_', '-', '.'")
    out_dir.mkdir(parents=True, exist_ok=True)
    link_media(out_dir, MEDIA_LINK, media_root)
    card = ImportCard(source, [str(annotations)])
    seen: set[str] = set()
    with atomic_open(out_dir / SAMPLES_FILE) as out:  # a failed import keeps the previous file
        for number, row in read_rows(annotations):
            card.rows_read += 1
            where = f"{annotations} row {number}"
            try:
                if not isinstance(row, dict):
                    raise ValueError("not a JSON object")
                row_id = row.get("id", number)
                if isinstance(row_id, bool) or not isinstance(row_id, str | int):
                    raise ValueError("'id' must be a string or an integer")
                if str(row_id) in seen:
                    raise ValueError(f"duplicate id {row_id!r}")
                frames = _media(row, media_root, frames_per_window)
                turns = _turns(row.get("conversations"))
                qtype = row.get("question_type")
                if qtype is not None and not isinstance(qtype, str):
                    raise ValueError("'question_type' must be a string")
            except ValueError as exc:
                card.skip(where, str(exc))
                continue
            seen.add(str(row_id))
            scene = scene_of(frames)
            card.scenes.add(scene)
            for turn, (question, answer) in enumerate(turns):
                sample = {
                    "id": f"{source}_{row_id}_t{turn}",
                    "task": TASK_VSIBENCH,
                    "question_type": qtype,
                    "messages": [{"role": "user", "content": question}],
                    "answer": answer,
                    "options": None,
                    "ground_truth": answer,
                    "frames": frames,
                    "scene_id": scene,
                    "split": split,
                    "source": source,
                }
                out.write(json.dumps(sample) + "\n")
                card.add(sample)
    card.write(out_dir)
    return card
