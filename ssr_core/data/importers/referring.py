"""Referring expressions over ScanNet (ScanRefer, Multi3DRefer, ReferIt3D Nr3D / Sr3D) -> 7-DoF
grounding samples in each window's canonical frame.

Released formats read:

- ScanRefer: a JSON list of `{"scene_id", "object_id", "object_name", "ann_id", "description", ...}`;
- Multi3DRefer: a JSON list of `{"scene_id", "object_ids": [...], "object_name", "ann_id",
  "description", "eval_type", ...}` (rows with no target, `eval_type` "zero", give no box and are
  skipped with that reason);
- ReferIt3D: `nr3d.csv` / `sr3d*.csv` with columns `scan_id`, `target_id`, `utterance` (others ignored).

Object ids are ScanNet aggregation `objectId`s. Scenes must be converted first with `ssr data
convert scannet`, which records each object's `objectId` (`scene.json` `extra.scannet_object_ids`);
the boxes are the converter's. Each scene is cut into windows by the project's window sampler,
and a referral becomes one sample per window in which every target is visible (in at least one
frame of the window), its boxes expressed in that window's canonical frame.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ssr_core.data.annotations import Scene
from ssr_core.data.importers.card import SAMPLES_FILE, ImportCard, link_media
from ssr_core.data.questions import TASK_GROUNDING
from ssr_core.data.scene_io import load_scene
from ssr_core.data.windows import sample_windows
from ssr_core.errors import InputError
from ssr_core.io import atomic_open, safe_name
from ssr_core.language.prompts import format_grounding_answer, grounding_messages, question_text
from ssr_core.scene.objects import GroundedObject

FORMATS = ("scanrefer", "multi3drefer", "nr3d", "sr3d")
SCENES_LINK = "scenes"
SINGLE, MULTIPLE = "grounding_description", "grounding_description_all"  # question types (template families)


class ReferringImportError(InputError):
    """The annotation file or the scenes folder cannot be used at all."""


@dataclass(frozen=True)
class Referral:
    where: str  # file and row, for messages
    key: str  # unique within the file: the sample ids build on it
    scene_id: str
    object_ids: tuple[int, ...]
    description: str


def _object_id(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("object id must be an integer")
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ValueError(f"object id {value!r} is not an integer") from None
    if number < 0:
        raise ValueError(f"object id {number} is negative")
    return number


def _text(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"missing or empty {key!r}")
    return " ".join(value.split())


def read_referrals(path: Path, kind: str) -> Iterator[Referral | tuple[str, str]]:
    """Referrals of one file, or (where, reason) for a malformed row."""
    if kind not in FORMATS:
        raise ReferringImportError(f"unknown format {kind!r}; one of {', '.join(FORMATS)}")
    if kind in ("nr3d", "sr3d"):
        try:
            with open(path, newline="", encoding="utf-8") as fh:
                reader = csv.DictReader(fh)
                missing = {"scan_id", "target_id", "utterance"} - set(reader.fieldnames or ())
                if missing:
                    raise ReferringImportError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
                for number, row in enumerate(reader, start=2):  # line 1 is the header
                    where = f"{path} line {number}"
                    try:
                        yield Referral(where, f"l{number}", _text(row, "scan_id"), (_object_id(row["target_id"]),),
                                       _text(row, "utterance"))
                    except ValueError as exc:
                        yield where, str(exc)
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise ReferringImportError(f"cannot read {path}: {exc}") from None
        return
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ReferringImportError(f"cannot read {path} as JSON: {exc}") from None
    if not isinstance(data, list):
        raise ReferringImportError(f"{path}: expected a JSON list of annotations")
    for number, row in enumerate(data, start=1):
        where = f"{path} row {number}"
        try:
            if not isinstance(row, dict):
                raise ValueError("not a JSON object")
            if kind == "scanrefer":
                ids: tuple[int, ...] = (_object_id(row.get("object_id")),)
            else:
                raw = row.get("object_ids")
                if not isinstance(raw, list):
                    raise ValueError("'object_ids' must be a list")
                if not raw:
                    raise ValueError("no target: the description refers to no object")
                ids = tuple(_object_id(v) for v in raw)
            yield Referral(where, f"r{number}", _text(row, "scene_id"), ids, _text(row, "description"))
        except ValueError as exc:
            yield where, str(exc)


def _object_index(scene_dir: Path) -> dict[int, int]:
    extra = json.loads((scene_dir / "scene.json").read_text(encoding="utf-8")).get("extra", {})
    ids = extra.get("scannet_object_ids")
    if not isinstance(ids, list):
        raise ValueError("scene has no ScanNet object ids: convert it again with `ssr data convert scannet`")
    return {int(object_id): index for index, object_id in enumerate(ids)}


def _window_sample(kind: str, referral: Referral, scene: Scene, window_index: int, frames: list[str],
                   boxes: list[GroundedObject]) -> dict[str, Any]:
    many = len(boxes) > 1 or kind == "multi3drefer"
    family = MULTIPLE if many else SINGLE
    return {
        "id": f"{kind}_{scene.scene_id}_{referral.key}_w{window_index:02d}",
        "task": TASK_GROUNDING,
        "question_type": family,
        "messages": grounding_messages(question_text(family, description=referral.description)),
        "answer": format_grounding_answer(boxes, as_list=many),
        "options": None,
        "ground_truth": [{"label": b.label, "bbox_7dof": [float(v) for v in b.box]} for b in boxes],
        "frames": frames,
        "scene_id": scene.scene_id,
        "split": "train",
        "source": kind,
        "window": f"windows/{scene.scene_id}_w{window_index:02d}.json",
    }


def import_referring(
    annotations: str | Path,
    kind: str,
    scenes_dir: str | Path,
    out_dir: str | Path,
    frames_per_window: int = 32,
    windows_per_scene: int = 4,
    seed: int = 0,
) -> ImportCard:
    """Write `samples.jsonl`, the window annotations and `data_card.json` under `out_dir`."""
    annotations, scenes_dir, out_dir = Path(annotations), Path(scenes_dir), Path(out_dir)
    if not scenes_dir.is_dir():
        raise ReferringImportError(f"scenes folder {scenes_dir} is not a directory")
    card = ImportCard(kind, [str(annotations)])
    by_scene: dict[str, list[Referral]] = {}
    for item in read_referrals(annotations, kind):
        card.rows_read += 1
        if isinstance(item, tuple):
            card.skip(*item)
        else:
            by_scene.setdefault(item.scene_id, []).append(item)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "windows").mkdir(exist_ok=True)
    link_media(out_dir, SCENES_LINK, scenes_dir)
    with atomic_open(out_dir / SAMPLES_FILE) as out:  # a failed import keeps the previous file
        for scene_id in sorted(by_scene):
            referrals = by_scene[scene_id]
            scene_dir = scenes_dir / scene_id
            try:
                safe_name(scene_id, "scene id")  # it names window files: no path may leave out_dir
                if not (scene_dir / "scene.json").is_file():
                    raise ValueError(f"scene {scene_id} is not converted under {scenes_dir}")
                scene = load_scene(scene_dir)
                index = _object_index(scene_dir)
            except (ValueError, OSError) as exc:
                for r in referrals:
                    card.skip(r.where, str(exc))
                continue
            rng = np.random.default_rng(np.random.SeedSequence([seed, *scene_id.encode()]))
            windows = sample_windows(scene, frames_per_window, windows_per_scene, rng, min_visible=1)
            for w, window in enumerate(windows):
                window.save(out_dir / "windows" / f"{scene_id}_w{w:02d}.json")
            for referral in referrals:
                unknown = [i for i in referral.object_ids if i not in index]
                if unknown:
                    card.skip(referral.where, f"object id {unknown[0]} is not an object of {scene_id}")
                    continue
                targets = [index[i] for i in referral.object_ids]
                written = 0
                for w, window in enumerate(windows):
                    if not all(window.objects[t].visible_frames for t in targets):
                        continue
                    frames = [f"{SCENES_LINK}/{scene_id}/{scene.image_paths[i]}" for i in window.frame_indices]
                    boxes = [GroundedObject(window.objects[t].label, window.objects[t].box) for t in targets]
                    sample = _window_sample(kind, referral, scene, w, frames, boxes)
                    out.write(json.dumps(sample) + "\n")
                    card.add(sample)
                    written += 1
                if written:
                    card.scenes.add(scene_id)
                else:
                    card.skip(referral.where, "not visible: no window shows every target")
    card.write(out_dir)
    return card
