"""On-disk scene format (`scene.json` beside the frames) shared by the synthetic engine and converters.

One format for every source means the window sampler and the sample builder never care where a
scene came from. Paths inside are relative to the scene directory so a dataset can be moved.

The file is checked completely where it is read (`load_scene`): every field's type, shape and
range (finite numbers, positive box sizes, a rotation matrix, visibility indices in range), a
`scene_id` that is a plain folder name, and frame files that exist inside the scene folder. Any
problem is a `SceneFormatError` naming the file and the field, never a KeyError deep in a builder.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ssr_core.data.annotations import OrientedObject, Scene, WindowAnnotation
from ssr_core.errors import InputError
from ssr_core.io import UnsafePathError, atomic_write_json, safe_name

SCENE_FORMAT = "ssr-scene/1"
SCENE_FILE = "scene.json"
ROTATION_TOLERANCE = 1e-3  # |R^T R - I| and |det R - 1|: rounding of 9 decimals is far below it
MAX_MAGNITUDE = 1e6  # metres (and pixels): a room is far smaller, and squares stay far from overflow
POSE_TOLERANCE = 1e-2  # looser: recorded camera poses (ScanNet, ARKit) carry sensor-fusion noise


class SceneFormatError(InputError):
    """A scene.json (or window file) that is missing, of another format, or inconsistent."""


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
    """Write `scene.json` into `scene_dir` atomically (frames are expected to be there already).

    The scene is checked as `load_scene` would (files aside), so no writer can produce a file
    the readers refuse.
    """
    path = Path(scene_dir) / SCENE_FILE
    data = scene_to_json(scene, source, visibility_rule, extra)
    scene_from_json(data, path, check_files=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, data, indent=1)
    return path


def read_json_file(path: Path) -> Any:
    """Parsed JSON of `path`; `SceneFormatError` naming the file for anything unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SceneFormatError(f"{path}: cannot read ({err})") from None
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as err:
        raise SceneFormatError(f"{path}: not valid JSON ({err})") from None


def load_scene(scene_dir: str | Path, check_files: bool = True) -> Scene:
    """Read and check a scene directory written by `save_scene`; `Scene.root` is that directory.

    `check_files=False` skips the frame-file existence check, for readers that take the frames
    from elsewhere (the ground-truth model replays them from the scene's recording).
    """
    root = Path(scene_dir)
    path = root / SCENE_FILE
    if not path.is_file():
        raise SceneFormatError(f"no {SCENE_FILE} in {root}")
    return scene_from_json(read_json_file(path), path, check_files)


class _Fields:
    """Typed access to one JSON object; every failure names the file and the field."""

    def __init__(self, path: Path, data: Any, where: str = "") -> None:
        self.path, self.where = path, where
        if not isinstance(data, dict):
            raise self.error(where or "top level", "must be a JSON object")
        self.data = data

    def error(self, key: str, problem: str) -> SceneFormatError:
        return SceneFormatError(f"{self.path}: {self.where}{key} {problem}")

    def get(self, key: str, optional: bool = False) -> Any:
        if key not in self.data:
            if optional:
                return None
            raise self.error(key, "is missing")
        return self.data[key]

    def string(self, key: str) -> str:
        value = self.get(key)
        if not isinstance(value, str):
            raise self.error(key, f"must be a string, got {type(value).__name__}")
        return value

    def array(self, key: str, shape: Sequence[int], optional: bool = False, limit: float | None = MAX_MAGNITUDE) -> np.ndarray | None:
        """Finite float64 array of `shape` (-1: any length) from nested lists of JSON numbers, each
        of magnitude <= `limit` (squares and products of larger ones overflow downstream)."""
        value = self.get(key, optional)
        if value is None and optional:
            return None
        try:
            raw = np.array(value)
        except (ValueError, TypeError, RecursionError):  # ragged nesting
            raise self.error(key, "must be a regular array of numbers") from None
        if raw.size and (raw.dtype.kind not in "iuf" or not _only_numbers(value)):  # strings, bools, huge ints
            raise self.error(key, "must hold numbers only")
        if raw.size == 0 and len(shape) > 1:
            raw = raw.reshape((0, *shape[1:])) if shape[0] == -1 and raw.shape == (0,) else raw
        if raw.ndim != len(shape) or any(want not in (-1, got) for want, got in zip(shape, raw.shape)):
            wanted = "x".join("N" if n == -1 else str(n) for n in shape)
            raise self.error(key, f"must have shape {wanted}, got {'x'.join(map(str, raw.shape)) or 'a scalar'}")
        arr = raw.astype(np.float64)
        if not np.all(np.isfinite(arr)):
            raise self.error(key, "must hold finite numbers (no NaN or infinity)")
        if limit is not None and arr.size and np.abs(arr).max() > limit:
            raise self.error(key, f"holds a value beyond +-{limit:g}")
        return arr

    def relative_files(self, key: str, root: Path, count: int, check_files: bool) -> list[str]:
        """`count` frame paths (or none), each inside `root` and, when checked, an existing file."""
        value = self.get(key)
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.error(key, "must be a list of relative file paths")
        if len(value) not in (0, count) or (key == "image_paths" and len(value) != count):
            raise self.error(key, f"has {len(value)} entries for {count} frames")
        for rel in value:
            # lexical: a frame folder may be a symlink to another disk, but no name may climb out
            if Path(rel).is_absolute() or "\x00" in rel:
                raise self.error(key, f"entry {rel!r} must be relative to the scene folder")
            if ".." in Path(rel).parts:
                raise self.error(key, f"entry {rel!r} leads outside the scene folder")
            if check_files and not (root / rel).is_file():
                raise self.error(key, f"names a missing frame file {rel}")
        return list(value)


def _only_numbers(value: Any) -> bool:
    """True when every leaf of nested lists is a JSON number (numpy would read True as 1.0)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, bool) or not isinstance(item, int | float):
            return False
    return True


def scene_from_json(data: Any, path: Path, check_files: bool = True) -> Scene:
    """Check a parsed scene.json completely and build the `Scene` (root: the file's folder)."""
    root = path.parent
    f = _Fields(path, data)
    if f.get("format", optional=True) != SCENE_FORMAT:
        raise SceneFormatError(f"{path}: format {data.get('format')!r}, expected {SCENE_FORMAT!r}")
    try:
        scene_id = safe_name(f.get("scene_id"), "scene_id")
    except UnsafePathError as err:
        raise SceneFormatError(f"{path}: {err}") from None
    poses = f.array("poses", (-1, 4, 4))
    assert poses is not None
    n = len(poses)
    if n == 0:
        raise f.error("poses", "must hold at least one frame")
    rotations = poses[:, :3, :3]
    if (np.abs(np.einsum("fji,fjk->fik", rotations, rotations) - np.eye(3)).max() > POSE_TOLERANCE
            or np.abs(poses[:, 3] - [0.0, 0.0, 0.0, 1.0]).max() > POSE_TOLERANCE):
        raise f.error("poses", "must be rigid camera-to-world transforms (rotation, translation, last row 0 0 0 1)")
    intrinsics = f.array("intrinsics", (n, 3, 3))
    up = f.array("up", (3,))
    assert intrinsics is not None and up is not None
    if not (np.all(intrinsics[:, 0, 0] > 0) and np.all(intrinsics[:, 1, 1] > 0)):
        raise f.error("intrinsics", "must have positive focal lengths fx, fy")
    if np.linalg.norm(up) < 1e-9:
        raise f.error("up", "must not be the zero vector")
    size = f.get("image_size")
    if (not isinstance(size, list) or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 1 << 16 for v in size)):
        raise f.error("image_size", f"must be [height, width], two positive integers, got {size!r}")
    timestamps = f.array("timestamps", (n,), optional=True, limit=None)
    floor = f.array("floor_polygon", (-1, 3))
    assert floor is not None
    image_paths = f.relative_files("image_paths", root, n, check_files)
    depth_paths = f.relative_files("depth_paths", root, n, check_files)
    raw_objects = f.get("objects")
    if not isinstance(raw_objects, list):
        raise f.error("objects", "must be a list")
    objects = [_object(path, i, item) for i, item in enumerate(raw_objects)]
    ids = [o.instance_id for o in objects]
    if len(set(ids)) != len(ids):
        raise f.error("objects", f"repeat an id ({sorted(i for i in set(ids) if ids.count(i) > 1)[0]!r})")
    visibility = _visibility(path, f.get("visibility"), n, len(objects))
    extra = f.get("extra", optional=True)
    if extra is not None and not isinstance(extra, dict):
        raise f.error("extra", "must be a JSON object")
    return Scene(
        scene_id=scene_id,
        up=up,
        intrinsics=intrinsics,
        poses=poses,
        image_size=(int(size[0]), int(size[1])),
        objects=objects,
        visibility=visibility,
        floor_polygon=floor,
        timestamps=timestamps,
        image_paths=image_paths,
        depth_paths=depth_paths,
        root=root,
    )


def _object(path: Path, i: int, item: Any) -> OrientedObject:
    f = _Fields(path, item, f"objects[{i}].")
    instance_id, label = f.string("id"), f.string("label")
    if not instance_id:
        raise f.error("id", "must not be empty")
    center, size, rotation = f.array("center", (3,)), f.array("size", (3,)), f.array("rotation", (3, 3))
    assert center is not None and size is not None and rotation is not None
    if not np.all(size > 0):
        raise f.error("size", f"must be three positive extents, got {size.tolist()}")
    if (np.abs(rotation.T @ rotation - np.eye(3)).max() > ROTATION_TOLERANCE
            or abs(np.linalg.det(rotation) - 1.0) > ROTATION_TOLERANCE):
        raise f.error("rotation", "must be a rotation matrix (orthonormal, determinant 1)")
    return OrientedObject(instance_id=instance_id, label=label, center=center, size=size, rotation=rotation)


def _visibility(path: Path, value: Any, frames: int, objects: int) -> np.ndarray:
    f = _Fields(path, value, "visibility.")
    rows = f.get("frames")
    if not isinstance(rows, list) or len(rows) != frames:
        count = len(rows) if isinstance(rows, list) else type(rows).__name__
        raise f.error("frames", f"must be a list of one row per frame: {count} rows for {frames} frames")
    visibility = np.zeros((frames, objects), dtype=bool)
    for k, row in enumerate(rows):
        if not isinstance(row, list) or not all(
            isinstance(j, int) and not isinstance(j, bool) and 0 <= j < objects for j in row
        ):
            raise f.error(f"frames[{k}]", f"must list object indices in [0, {objects})")
        visibility[k, row] = True
    return visibility


def load_window(path: str | Path, scene: Scene) -> WindowAnnotation:
    """A window file of `scene` (`<scene_id>/windows/wNN.json`), refused when it does not fit the
    scene: another scene id, or frame indices beyond the scene's frames mean a stale file left by
    an earlier build of another version of the scene."""
    path = Path(path)
    data = read_json_file(path)
    try:
        window = WindowAnnotation.from_json(data)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as err:
        raise SceneFormatError(f"{path}: not a window file ({type(err).__name__}: {err})") from None
    idx = window.frame_indices
    if window.scene_id != scene.scene_id or idx.ndim != 1 or not len(idx) or idx.min() < 0 or idx.max() >= scene.num_frames:
        raise SceneFormatError(
            f"{path}: stale window file (scene {window.scene_id!r}, frames up to {int(idx.max()) if idx.size else -1}) "
            f"for scene {scene.scene_id!r} with {scene.num_frames} frames; rebuild the dataset"
        )
    return window


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
