"""ARKitScenes (3DOD) video -> internal `Scene` directory.

Layout as downloaded by ARKitScenes' `download_data.py 3dod`: `<split>/<video_id>/` holding
`<video_id>_3dod_annotation.json`, optionally `<video_id>_3dod_mesh.ply`, and
`<video_id>_frames/` with `lowres_wide/<video_id>_<t>.png` (RGB), `lowres_depth/` (uint16 mm, same
size), `lowres_wide_intrinsics/<video_id>_<t>.pincam` (`w h fx fy cx cy`) and `lowres_wide.traj`.

Conventions, from ARKitScenes' own loader (threedod/benchmark_scripts/utils/tenFpsDataLoader.py,
`TrajStringToMatrix`, and box_utils.py `compute_box_3d`):
- a .traj line is `t rx ry rz tx ty tz`, an angle-axis rotation and a translation that together
  map world to camera; the camera-to-world pose is its inverse. Camera axes are OpenCV's (the
  loader back-projects depth with a plain pinhole: x right, y down, z forward).
- `obbAligned.normalizedAxes` reshaped row-major to 3x3 holds the box axes as rows, so the
  world-from-box rotation is its transpose; `axesLengths[i]` is the full extent along axis i.
- the annotation/pose world is gravity-aligned with +z up (the benchmark boxes' heading is a
  rotation about z); `up` can be overridden.
A frame's pose is the trajectory sample nearest its timestamp, within 5 ms (frames without one
are skipped). The floor outline is the convex hull of the mesh's vertices (or, without a mesh, of
the boxes' and cameras' positions) at the lowest box bottom.

Every file is read inside `reading(path, ARKitScenesError)`: malformed content is an
`ARKitScenesError` naming the file. The scene folder is built under a temporary name and swapped
in whole (`ssr_core.io.atomic_directory`).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from plyfile import PlyData, PlyParseError
from scipy.spatial.transform import Rotation

from ssr_core.data.annotations import OrientedObject, Scene
from ssr_core.data.geometry import box_corners, floor_outline
from ssr_core.data.scene_io import copy_frames, save_scene
from ssr_core.data.visibility import projected_visibility, visibility_rule
from ssr_core.errors import InputError, reading
from ssr_core.io import atomic_directory, safe_name
from ssr_core.scene.objects import instance_id

POSE_TOLERANCE_S = 0.005


class ARKitScenesError(InputError):
    """An ARKitScenes video folder is missing a file or holds something unreadable."""


def locate(root: str | Path, video_id: str) -> Path:
    """The video folder: `root/<id>`, `root/<split>/<id>` or `root/3dod/<split>/<id>` (or root itself)."""
    root = Path(root)
    try:
        safe_name(video_id, "video id")
    except InputError as err:
        raise ARKitScenesError(str(err)) from None
    name = f"{video_id}_3dod_annotation.json"
    candidates = [root, root / video_id, *sorted(root.glob(f"*/{video_id}")), *sorted(root.glob(f"3dod/*/{video_id}"))]
    found = next((d for d in candidates if (d / name).is_file()), None)
    if found is None:
        raise ARKitScenesError(f"no {name} under {root} (looked in <root>, <root>/<id>, <root>/*/<id>, <root>/3dod/*/<id>)")
    return found


def read_trajectory(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(T,) timestamps and (T, 4, 4) camera-to-world poses from a .traj file."""
    stamps, poses = [], []
    with reading(path, ARKitScenesError):
        lines = path.read_text(encoding="utf-8").splitlines()
    for n, line in enumerate(lines):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) != 7:
            raise ARKitScenesError(f"{path}:{n + 1}: expected 7 columns, got {len(tokens)}")
        with reading(f"{path}:{n + 1}", ARKitScenesError):
            values = [float(t) for t in tokens]
        if not all(np.isfinite(values)):
            raise ARKitScenesError(f"{path}:{n + 1}: values must be finite")
        world_to_cam = np.eye(4)
        world_to_cam[:3, :3] = Rotation.from_rotvec(values[1:4]).as_matrix()
        world_to_cam[:3, 3] = values[4:7]
        stamps.append(values[0])
        poses.append(np.linalg.inv(world_to_cam))
    return np.asarray(stamps), np.asarray(poses).reshape(-1, 4, 4)


def read_pincam(path: Path) -> tuple[np.ndarray, tuple[int, int]]:
    """3x3 K and (height, width) from a .pincam file (`w h fx fy cx cy`)."""
    with reading(path, ARKitScenesError):
        w, h, fx, fy, cx, cy = (float(v) for v in path.read_text(encoding="utf-8").split())
    if not (np.all(np.isfinite([w, h, fx, fy, cx, cy])) and w >= 1 and h >= 1 and fx > 0 and fy > 0
            and w == int(w) and h == int(h) and max(w, h) <= 1 << 16):
        raise ARKitScenesError(f"{path}: expected `w h fx fy cx cy` with a positive integer size and focal lengths")
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]]), (int(h), int(w))


def read_annotation(path: Path) -> list[OrientedObject]:
    """Oriented boxes of a 3DOD annotation file, ids `<label>_<k>` in file order."""
    counts: dict[str, int] = {}
    objects = []
    with reading(path, ARKitScenesError):
        data = json.loads(path.read_text(encoding="utf-8"))
        entries = data.get("data", [])
        if not isinstance(entries, list):
            raise ARKitScenesError(f"{path}: 'data' must be a list of annotations")
        for n, entry in enumerate(entries):
            obb = entry["segments"]["obbAligned"]
            label = str(entry["label"]).strip().lower()
            k = counts.get(label, 0)
            counts[label] = k + 1
            axes = np.asarray(obb["normalizedAxes"], dtype=np.float64).reshape(3, 3)
            obj = OrientedObject(
                instance_id=instance_id(label, k),
                label=label,
                center=np.asarray(obb["centroid"], dtype=np.float64).reshape(3),
                size=np.asarray(obb["axesLengths"], dtype=np.float64).reshape(3),
                rotation=axes.T,
            )
            finite = all(np.all(np.isfinite(a)) for a in (obj.center, obj.size, obj.rotation))
            if not finite or not np.all(obj.size > 0) or np.abs(axes @ axes.T - np.eye(3)).max() > 1e-3:
                raise ARKitScenesError(f"{path}: data[{n}] ({label!r}) needs finite values, positive axesLengths and orthonormal axes")
            objects.append(obj)
    return objects


def _stamp(frame: Path, prefix: str) -> float:
    """The timestamp in a frame's file name (`<video_id>_<t>.png`)."""
    try:
        stamp = float(frame.stem[len(prefix):])
    except ValueError:
        stamp = float("nan")
    if not np.isfinite(stamp):
        raise ARKitScenesError(f"{frame}: the name must be <video_id>_<timestamp>.png")
    return stamp


def convert_arkitscenes(root: str | Path, video_id: str, out_dir: str | Path, frame_step: int = 1,
                        up: tuple[float, float, float] = (0.0, 0.0, 1.0)) -> Scene:
    """Convert one 3DOD video into `out_dir/arkitscenes_<video_id>` (every `frame_step`-th frame)."""
    up_vec = np.asarray(up, dtype=np.float64).reshape(-1)
    if up_vec.shape != (3,) or not np.all(np.isfinite(up_vec)) or np.linalg.norm(up_vec) < 1e-9:
        raise ARKitScenesError(f"up must be 3 finite numbers, not all zero; got {list(up)}")
    up_vec = up_vec / np.linalg.norm(up_vec)
    video = locate(root, video_id)
    frames_dir = video / f"{video_id}_frames"
    objects = read_annotation(video / f"{video_id}_3dod_annotation.json")
    traj_t, traj_poses = read_trajectory(frames_dir / "lowres_wide.traj")
    if len(traj_t) == 0:
        raise ARKitScenesError(f"{frames_dir / 'lowres_wide.traj'}: empty trajectory")
    prefix = f"{video_id}_"
    images = sorted(frames_dir.glob(f"lowres_wide/{prefix}*.png"), key=lambda p: _stamp(p, prefix))
    kept: list[tuple[Path, float, np.ndarray, np.ndarray]] = []
    image_size: tuple[int, int] | None = None
    for path in images[::max(1, frame_step)]:
        stamp = _stamp(path, prefix)
        j = int(np.argmin(np.abs(traj_t - stamp)))
        pincam = frames_dir / "lowres_wide_intrinsics" / f"{path.stem}.pincam"
        if abs(traj_t[j] - stamp) > POSE_TOLERANCE_S or not pincam.is_file():
            continue
        K, size = read_pincam(pincam)
        if image_size not in (None, size):
            raise ARKitScenesError(f"{video_id}: frame {path.name} is {size}, earlier frames {image_size}")
        image_size = size
        kept.append((path, stamp, traj_poses[j], K))
    if not kept or image_size is None:
        raise ARKitScenesError(
            f"{video_id}: no frame in {frames_dir / 'lowres_wide'} has a pose in lowres_wide.traj within "
            f"{POSE_TOLERANCE_S}s and a .pincam file"
        )
    poses = np.stack([k[2] for k in kept])
    intrinsics = np.stack([k[3] for k in kept])
    depth_files = [frames_dir / "lowres_depth" / k[0].name for k in kept]
    has_depth = all(p.is_file() for p in depth_files)

    def depth(f: int) -> tuple[np.ndarray, np.ndarray] | None:
        mm = cv2.imread(str(depth_files[f]), cv2.IMREAD_UNCHANGED)
        if mm is None:
            return None
        scale = np.diag([mm.shape[1] / image_size[1], mm.shape[0] / image_size[0], 1.0])
        return mm.astype(np.float32) / 1000.0, scale @ intrinsics[f]

    visibility = projected_visibility(objects, poses, intrinsics, image_size, depth if has_depth else None)
    mesh = video / f"{video_id}_3dod_mesh.ply"
    with reading(mesh if mesh.is_file() else video / f"{video_id}_3dod_annotation.json", ARKitScenesError, also=(PlyParseError,)):
        floor_polygon = _floor(mesh, objects, poses, up_vec)
    scene_id = f"arkitscenes_{video_id}"
    scene_dir = Path(out_dir) / scene_id
    with atomic_directory(scene_dir) as staging:
        scene = Scene(
            scene_id=scene_id,
            up=up_vec,
            intrinsics=intrinsics,
            poses=poses,
            image_size=image_size,
            objects=objects,
            visibility=visibility,
            floor_polygon=floor_polygon,
            timestamps=np.asarray([k[1] for k in kept]),
            image_paths=copy_frames([k[0] for k in kept], staging, "rgb"),
            depth_paths=copy_frames(depth_files, staging, "depth") if has_depth else [],
            root=scene_dir,
        )
        extra = {"video_id": video_id, "source_frames": [k[0].name for k in kept]}
        save_scene(scene, staging, source="arkitscenes", visibility_rule=visibility_rule(has_depth), extra=extra)
    return scene


def _floor(mesh: Path, objects: list[OrientedObject], poses: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Convex hull outline in the plane perpendicular to `up`, at the lowest box bottom."""
    if mesh.is_file():
        v = PlyData.read(str(mesh))["vertex"]
        points = np.column_stack([v["x"], v["y"], v["z"]]).astype(np.float64)
    else:
        points = np.vstack([poses[:, :3, 3], *(box_corners(o) for o in objects)])
    corners = np.vstack([box_corners(o) for o in objects]) if objects else points
    floor_h = float((corners @ up).min())
    # A basis of the floor plane; with up = +z this is plain x, y.
    ref = np.eye(3)[int(np.argmin(np.abs(up)))]
    e1 = ref - (ref @ up) * up
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(up, e1)
    hull = floor_outline(np.column_stack([points @ e1, points @ e2]), 0.0)
    return hull[:, :1] * e1 + hull[:, 1:2] * e2 + floor_h * up
