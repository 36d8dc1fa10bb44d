"""Sample builder: scenes -> windows -> QA items -> train/val JSONL plus a data card.

Splits are made by scene, never by sample: every window and question of a scene lands in the
same split, so validation never sees a room the model trained on. Task mixing keeps the three
families (LocalCogMap MultiQA, 7-DoF grounding, VSI-Bench-style) in the ratio of their weights
within each split, by keeping the largest subset that has exactly that ratio (a family with
weight 0 is dropped; a family with no items at all is left out of the ratio).
"""

from __future__ import annotations

import json
import math
import os
import zlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ssr_core.data import questions as qa
from ssr_core.data.annotations import Scene, WindowAnnotation
from ssr_core.data.scene_io import find_scenes, load_scene
from ssr_core.data.windows import sample_windows
from ssr_core.errors import InputError
from ssr_core.io import StagedFiles

TASKS = (qa.TASK_COGMAP, qa.TASK_GROUNDING, qa.TASK_VSIBENCH)
SPLITS = ("train", "val")
INDEX_FILES = ("train.jsonl", "val.jsonl", "data_card.json")  # committed last: they point at the rest


class BuildError(InputError):
    """A build that cannot produce a usable dataset (bad weights, no training sample)."""


@dataclass(frozen=True)
class BuildConfig:
    """Knobs of `build_samples` (the CLI flags of `ssr data build`)."""

    frames_per_window: int = 32
    windows_per_scene: int = 4
    val_fraction: float = 0.2
    weights: Mapping[str, float] = field(default_factory=lambda: {t: 1.0 for t in TASKS})
    seed: int = 0
    min_visible_objects: int = 3


@dataclass
class DataCard:
    """What a build produced: scenes, windows and samples per split, task and question type."""

    config: dict[str, Any]
    scenes: dict[str, list[str]]
    windows: dict[str, int]
    generated: dict[str, dict[str, int]]  # per split and task, before mixing
    samples: dict[str, dict[str, int]]  # per split and task, written
    question_types: dict[str, dict[str, int]]  # per split, "task/question_type" -> count

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        lines = [f"{'split':<6} {'scenes':>6} {'windows':>7} " + " ".join(f"{t:>10}" for t in TASKS) + f" {'total':>7}"]
        for s in SPLITS:
            counts = self.samples[s]
            lines.append(
                f"{s:<6} {len(self.scenes[s]):>6} {self.windows[s]:>7} "
                + " ".join(f"{counts.get(t, 0):>10}" for t in TASKS) + f" {sum(counts.values()):>7}"
            )
        for s in SPLITS:
            for qt, n in sorted(self.question_types[s].items()):
                lines.append(f"  {s}: {qt:<40} {n:>6}")
        return "\n".join(lines)


def parse_weights(text: str) -> dict[str, float]:
    """'cogmap=1,grounding=0.5' -> weights; unnamed tasks get 0 (dropped). `BuildError` for a
    weight that is not a finite number >= 0, or a mix that keeps no task at all."""
    weights = {t: 0.0 for t in TASKS}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep or name.strip() not in TASKS:
            raise BuildError(f"bad weight {part!r}: expected TASK=NUMBER with TASK one of {', '.join(TASKS)}")
        try:
            weight = float(value)
        except ValueError:
            raise BuildError(f"bad weight {part!r}: {value!r} is not a number") from None
        if not math.isfinite(weight) or weight < 0:
            raise BuildError(f"bad weight {part!r}: expected a finite number >= 0")
        weights[name.strip()] = weight
    check_weights(weights)
    return weights


def check_weights(weights: Mapping[str, float]) -> None:
    """A task mix must keep something: at least one finite positive weight, none negative or unknown."""
    unknown = sorted(set(weights) - set(TASKS))
    if unknown:
        raise BuildError(f"unknown tasks in the weights: {unknown}; known: {', '.join(TASKS)}")
    if any(not math.isfinite(w) or w < 0 for w in weights.values()):
        raise BuildError(f"task weights must be finite numbers >= 0, got {dict(weights)}")
    if not any(w > 0 for w in weights.values()):
        raise BuildError("the task mix keeps nothing: give at least one task a positive weight")


def split_scenes(scene_ids: list[str], val_fraction: float, seed: int) -> dict[str, str]:
    """scene id -> "train" | "val"; a shuffled round(fraction * n) scenes go to val, at least one
    when the fraction is positive and there are two or more scenes, never all of them."""
    ids = sorted(scene_ids)
    n_val = int(round(val_fraction * len(ids)))
    if val_fraction > 0 and len(ids) >= 2:
        n_val = min(max(n_val, 1), len(ids) - 1)
    order = np.random.default_rng(np.random.SeedSequence([seed, 0x5B1])).permutation(len(ids))
    val = {ids[i] for i in order[:n_val]}
    return {i: "val" if i in val else "train" for i in ids}


def mix_counts(available: Mapping[str, int], weights: Mapping[str, float]) -> dict[str, int]:
    """How many items of each task to keep so kept counts follow the weights' ratio."""
    active = {t: w for t, w in weights.items() if w > 0 and available.get(t, 0) > 0}
    if not active:
        return {t: 0 for t in available}
    total_w = sum(active.values())
    scale = min(available[t] / (w / total_w) for t, w in active.items())
    return {t: int(np.floor(scale * active[t] / total_w + 1e-9)) if t in active else 0 for t in available}


def _scene_seed(seed: int, scene_id: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(scene_id.encode())]))


def _frame_paths(scene: Scene, out_dir: Path, staged: StagedFiles) -> list[str]:
    """Frame paths relative to `out_dir`; scene folders outside it are linked in as `<scene_id>/<dir>`
    (links staged with the rest of the build; an existing correct link is kept)."""
    assert scene.root is not None
    scene_out = out_dir / scene.scene_id
    if scene.root.resolve() != scene_out.resolve():
        for top in sorted({Path(p).parts[0] for p in scene.image_paths}):
            target = scene.root.resolve() / top
            link = scene_out / top
            if link.is_symlink() and link.resolve() == target:
                continue
            if link.exists() and not link.is_symlink():
                raise BuildError(f"{link} exists and is not a link to the frames of {scene.root}; use another --out")
            staged.path(f"{scene.scene_id}/{top}", "scene folder").symlink_to(os.path.relpath(target, scene_out.resolve()))
    return [f"{scene.scene_id}/{p}" for p in scene.image_paths]


def _window_samples(scene: Scene, window: WindowAnnotation, w: int, split: str, frames: list[str],
                    rng: np.random.Generator) -> list[dict]:
    """Every QA item of one window as a sample dict (ids number items per task)."""
    families = {
        qa.TASK_COGMAP: qa.cogmap_items(window),
        qa.TASK_GROUNDING: qa.grounding_items(window, rng),
        qa.TASK_VSIBENCH: qa.vsibench_items(window, rng),
    }
    window_path = f"{scene.scene_id}/windows/w{w:02d}.json"
    window_frames = [frames[i] for i in window.frame_indices]
    out = []
    for task, items in families.items():
        for k, item in enumerate(items):
            out.append({
                "id": f"{scene.scene_id}_w{w:02d}_{task}_{k:04d}",
                "scene_id": scene.scene_id,
                "split": split,
                **item.to_json(),
                "frames": window_frames,
                "window": window_path,
            })
    return out


def build_samples(scenes_dir: str | Path, out_dir: str | Path, config: BuildConfig | None = None, progress: bool = True) -> DataCard:
    """Build train.jsonl, val.jsonl, per-window annotations and data_card.json under `out_dir`.

    Everything is written to a staging folder inside `out_dir` and moved in only when the whole
    build succeeded (`ssr_core.io.StagedFiles`), each scene's `windows/` folder replaced whole and
    the index files last: a build that fails or is interrupted leaves the previous dataset as it
    was, and no stale window file survives a rebuild.
    """
    config = config or BuildConfig()
    check_weights(config.weights)
    if config.frames_per_window < 1 or config.windows_per_scene < 1 or not 0.0 <= config.val_fraction < 1.0:
        raise BuildError("frames per window and windows per scene must be >= 1, the val fraction in [0, 1)")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise BuildError(f"--out {out_dir} exists and is not a folder")
    scene_dirs = find_scenes(scenes_dir)
    if not scene_dirs:
        raise FileNotFoundError(f"no scene.json found in {scenes_dir} or its sub-directories")
    scenes = [load_scene(d) for d in scene_dirs]
    ids = [s.scene_id for s in scenes]
    if len(set(ids)) != len(ids):
        twice = sorted({i for i in ids if ids.count(i) > 1})[0]
        raise BuildError(f"two scenes under {scenes_dir} have the scene_id {twice!r}")
    with StagedFiles(out_dir, last=INDEX_FILES) as staged:
        return _build(scenes, splits=split_scenes(ids, config.val_fraction, config.seed), scenes_dir=scenes_dir,
                      out_dir=out_dir, staged=staged, config=config, progress=progress)


def _build(scenes: list[Scene], splits: dict[str, str], scenes_dir: str | Path, out_dir: Path, staged: StagedFiles,
           config: BuildConfig, progress: bool) -> DataCard:
    pool: dict[str, list[dict]] = {s: [] for s in SPLITS}
    windows = dict.fromkeys(SPLITS, 0)
    bar = tqdm(scenes, desc="build samples", unit="scene", disable=not progress)
    for scene in bar:
        split = splits[scene.scene_id]
        rng = _scene_seed(config.seed, scene.scene_id)
        frames = _frame_paths(scene, out_dir, staged)
        staged.folder(f"{scene.scene_id}/windows", "scene folder")  # replaces the old windows/ whole
        for w, window in enumerate(sample_windows(scene, config.frames_per_window, config.windows_per_scene, rng, config.min_visible_objects)):
            # a plain write: the staged commit makes the build atomic, a per-file fsync would cost 15 %
            staged.path(f"{scene.scene_id}/windows/w{w:02d}.json").write_text(json.dumps(window.to_json(), indent=1))
            pool[split].extend(_window_samples(scene, window, w, split, frames, rng))
            windows[split] += 1
        bar.set_postfix(samples=sum(len(p) for p in pool.values()))
    generated, kept, qtypes = {}, {}, {}
    for split in SPLITS:
        by_task = {t: [i for i, s in enumerate(pool[split]) if s["task"] == t] for t in TASKS}
        generated[split] = {t: len(v) for t, v in by_task.items()}
        keep_n = mix_counts(generated[split], config.weights)
        rng = np.random.default_rng(np.random.SeedSequence([config.seed, SPLITS.index(split), 0x313]))
        keep = sorted(i for t in TASKS for i in rng.choice(by_task[t], size=keep_n[t], replace=False).tolist())
        chosen = [pool[split][i] for i in keep]
        if split == "train" and not chosen:
            raise BuildError(
                f"no training sample: {windows['train']} train windows show >= {config.min_visible_objects} "
                f"objects with the task mix {dict(config.weights)}; the previous dataset in {out_dir} is kept"
            )
        with open(staged.path(f"{split}.jsonl"), "w", encoding="utf-8") as fh:
            for sample in chosen:
                fh.write(json.dumps(sample) + "\n")
        kept[split] = dict(Counter(s["task"] for s in chosen))
        qtypes[split] = dict(Counter(f"{s['task']}/{s['question_type']}" for s in chosen))
    card = DataCard(
        config={**asdict(config), "weights": dict(config.weights), "scenes_dir": str(scenes_dir)},
        scenes={s: sorted(i for i, sp in splits.items() if sp == s) for s in SPLITS},
        windows=windows, generated=generated, samples=kept, question_types=qtypes,
    )
    staged.path("data_card.json").write_text(json.dumps(card.to_json(), indent=1))
    return card
