"""On-disk scene format (`scene.json` beside the frames) shared by the synthetic engine and converters.

One format for every source means the window sampler and the sample builder never care where a
scene came from. Paths inside are relative to the scene directory so a dataset can be moved.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ssr_core.data.annotations import OrientedObject, Scene

SCENE_FORMAT = "ssr-scene/1"
SCENE_FILE = "scene.json"


class SceneFormatError(ValueError):
    """A scene.json that is missing, of another format, or inconsistent."""


def _floats(a: np.ndarray) -> list:
    return np.round(np.asarray(a, dtype=np.float64), 9).tolist()


def scene_to_json(scene: Scene, source: str, visibility_rule: str, extra: dict[str, Any] | None = None) -> dict:
    """Serialise a scene; `visibility_rule` documents how `scene.visibility` was decided."""
    return {
        "format": SCENE_FORMAT,
        "scene_id": scene.scene_id,
        "source": source,
        "up": _floats(scene.up),
        "image_size": [int(scene.image_size[0]), int(scene.image_size[1])],
        "intrinsics": _floats(scene.intrinsics),
        "poses": _floats(scene.poses),
        "timestamps": None if scene.timestamps is None else _floats(scene.timestamps),
        "image_paths": list(scene.image_paths),
        "depth_paths": list(scene.depth_paths),
        "floor_polygon": _floats(scene.floor_polygon),
        "objects": [
            {
                "id": o.instance_id,
                "label": o.label,
                "center": _floats(o.center),
                "size": _floats(o.size),
                "rotation": _floats(o.rotation),
            }
            for o in scene.objects
        ],
        "visibility": {
            "rule": visibility_rule,
            "frames": [np.flatnonzero(row).tolist() for row in scene.visibility],
        },
        "extra": extra or {},
    }


def save_scene(scene: Scene, scene_dir: str | Path, source: str, visibility_rule: str, extra: dict | None = None) -> Path:
    """Write `scene.json` into `scene_dir` (frames are expected to be there already)."""
    path = Path(scene_dir) / SCENE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(scene_to_json(scene, source, visibility_rule, extra), indent=1))
    return path


def load_scene(scene_dir: str | Path) -> Scene:
    """Read a scene directory written by `save_scene`; `Scene.root` is set to that directory."""
    root = Path(scene_dir)
    path = root / SCENE_FILE
    if not path.is_file():
        raise SceneFormatError(f"no {SCENE_FILE} in {root}")
    data = json.loads(path.read_text())
    if data.get("format") != SCENE_FORMAT:
        raise SceneFormatError(f"{path}: format {data.get('format')!r}, expected {SCENE_FORMAT!r}")
    objects = [
        OrientedObject(
            instance_id=str(o["id"]),
            label=str(o["label"]),
            center=np.asarray(o["center"], dtype=np.float64),
            size=np.asarray(o["size"], dtype=np.float64),
            rotation=np.asarray(o["rotation"], dtype=np.float64).reshape(3, 3),
        )
        for o in data["objects"]
    ]
    poses = np.asarray(data["poses"], dtype=np.float64).reshape(-1, 4, 4)
    visibility = np.zeros((len(poses), len(objects)), dtype=bool)
    rows = data["visibility"]["frames"]
    if len(rows) != len(poses):
        raise SceneFormatError(f"{path}: {len(rows)} visibility rows for {len(poses)} frames")
    for f, visible in enumerate(rows):
        visibility[f, visible] = True
    timestamps = data.get("timestamps")
    return Scene(
        scene_id=str(data["scene_id"]),
        up=np.asarray(data["up"], dtype=np.float64),
        intrinsics=np.asarray(data["intrinsics"], dtype=np.float64).reshape(-1, 3, 3),
        poses=poses,
        image_size=(int(data["image_size"][0]), int(data["image_size"][1])),
        objects=objects,
        visibility=visibility,
        floor_polygon=np.asarray(data["floor_polygon"], dtype=np.float64).reshape(-1, 3),
        timestamps=None if timestamps is None else np.asarray(timestamps, dtype=np.float64),
        image_paths=[str(p) for p in data["image_paths"]],
        depth_paths=[str(p) for p in data["depth_paths"]],
        root=root,
    )


def find_scenes(root: str | Path) -> list[Path]:
    """Scene directories under `root` (a scene directory itself, or its children), sorted by name."""
    root = Path(root)
    if (root / SCENE_FILE).is_file():
        return [root]
    return sorted(p.parent for p in root.glob(f"*/{SCENE_FILE}"))


def copy_frames(sources: list[Path], scene_dir: Path, subdir: str) -> list[str]:
    """Copy frame files into `scene_dir/subdir` as 000000.ext, ...; returns their relative paths.

    Converted scenes are self-contained (like synthetic ones), so the sample builder never needs
    the original dataset again.
    """
    (scene_dir / subdir).mkdir(parents=True, exist_ok=True)
    paths = []
    for k, src in enumerate(sources):
        rel = f"{subdir}/{k:06d}{src.suffix.lower()}"
        shutil.copyfile(src, scene_dir / rel)
        paths.append(rel)
    return paths
