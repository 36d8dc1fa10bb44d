"""ScanNet (v2) scene -> internal `Scene` directory.

Reads a scan folder as released (`<id>.txt` meta with `axisAlignment`, `<id>_vh_clean_2.ply`,
`<id>_vh_clean_2.0.010000.segs.json`, `<id>.aggregation.json` or `<id>_vh_clean.aggregation.json`)
plus the frames exported by ScanNet's SensReader (`color/<i>.jpg`, `depth/<i>.png` in mm,
`pose/<i>.txt` camera-to-world 4x4, `intrinsic/intrinsic_color.txt` and `intrinsic_depth.txt`).

Everything is moved into the axis-aligned frame (`axisAlignment @ p`), where ScanNet's rooms are
z-up with walls along x and y. Each annotated instance's box is the min/max of its segments'
aligned mesh vertices, so boxes are axis-aligned (rotation = identity): the convention of
ScanNet detection benchmarks. Structural classes (wall, floor, ceiling) are not objects. The
floor outline is the convex hull of the floor-labelled vertices (all vertices if none).

Every file is read inside `reading(path, ScanNetError)`: malformed content (bad JSON, a broken
PLY header, text that is not UTF-8, a missing field) is a `ScanNetError` naming the file. The scene
folder is built under a temporary name and swapped in whole (`ssr_core.io.atomic_directory`).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from plyfile import PlyData, PlyParseError

from ssr_core.data.annotations import OrientedObject, Scene
from ssr_core.data.geometry import floor_outline
from ssr_core.data.scene_io import copy_frames, save_scene
from ssr_core.data.visibility import projected_visibility, visibility_rule
from ssr_core.errors import InputError, reading
from ssr_core.io import atomic_directory, safe_name
from ssr_core.scene.objects import instance_id

STRUCTURAL = frozenset({"wall", "floor", "ceiling"})
FPS = 30.0  # ScanNet's RGB-D streams


class ScanNetError(InputError):
    """A ScanNet scan folder is missing a file or holds something unreadable."""


@dataclass(frozen=True)
class ScanNetPaths:
    scan_dir: Path
    frames_dir: Path  # holds color/, pose/, intrinsic/ (and maybe depth/)


def locate(root: str | Path, scene_id: str, frames_dir: str | Path | None = None) -> ScanNetPaths:
    """Find the scan folder (`root/scans/<id>` or `root/<id>`) and the SensReader export
    (`frames_dir`, else `<scan>/exported` or the scan folder itself)."""
    root = Path(root)
    try:
        safe_name(scene_id, "scan id")
    except InputError as err:
        raise ScanNetError(str(err)) from None
    scan = next((d for d in (root / "scans" / scene_id, root / scene_id, root) if (d / f"{scene_id}.txt").is_file()), None)
    if scan is None:
        raise ScanNetError(f"no {scene_id}.txt under {root}, {root / 'scans' / scene_id} or {root / scene_id}")
    candidates = [Path(frames_dir)] if frames_dir else [scan / "exported", scan]
    frames = next((d for d in candidates if (d / "pose").is_dir()), None)
    if frames is None:
        raise ScanNetError(f"no SensReader export (pose/, color/, intrinsic/) in {', '.join(map(str, candidates))}")
    return ScanNetPaths(scan, frames)


def read_axis_alignment(meta_path: Path) -> np.ndarray:
    """4x4 `axisAlignment` from the scan's meta .txt (identity when absent, as in test scans)."""
    with reading(meta_path, ScanNetError):
        for line in meta_path.read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "axisAlignment":
                values = [float(v) for v in value.split()]
                matrix = np.asarray(values).reshape(4, 4) if len(values) == 16 else np.zeros((4, 4))
                rotation = matrix[:3, :3]
                if (not np.all(np.isfinite(matrix)) or np.abs(rotation.T @ rotation - np.eye(3)).max() > 1e-3
                        or np.abs(matrix[3] - [0, 0, 0, 1]).max() > 1e-6):
                    raise ScanNetError(f"{meta_path}: axisAlignment must be 16 numbers of a rigid transform")
                return matrix
    return np.eye(4)


def _transform(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ m[:3, :3].T + m[:3, 3]


def read_instances(
    scan_dir: Path, scene_id: str, alignment: np.ndarray
) -> tuple[list[tuple[str, np.ndarray, int]], np.ndarray]:
    """[(label, aligned vertices, ScanNet objectId)] in aggregation order, and the floor's vertices.

    The objectId is what referring-expression datasets (ScanRefer, ReferIt3D, Multi3DRefer) cite.
    Instances without volume (all vertices in a plane or a point) have no box and are left out.
    """
    ply_path = scan_dir / f"{scene_id}_vh_clean_2.ply"
    with reading(ply_path, ScanNetError, also=(PlyParseError,)):
        v = PlyData.read(str(ply_path))["vertex"]
        vertices = _transform(alignment, np.column_stack([v["x"], v["y"], v["z"]]).astype(np.float64))
        if not len(vertices) or not np.all(np.isfinite(vertices)):
            raise ScanNetError(f"{ply_path}: the mesh needs vertices with finite coordinates")
    segs_path = scan_dir / f"{scene_id}_vh_clean_2.0.010000.segs.json"
    with reading(segs_path, ScanNetError):
        seg_of_vertex = np.asarray(json.loads(segs_path.read_text(encoding="utf-8"))["segIndices"])
        if seg_of_vertex.ndim != 1 or (seg_of_vertex.size and seg_of_vertex.dtype.kind not in "iu"):
            raise ScanNetError(f"{segs_path}: segIndices must be a list of integers")
    if len(seg_of_vertex) != len(vertices):
        raise ScanNetError(f"{segs_path}: {len(seg_of_vertex)} segment indices for {len(vertices)} vertices in {ply_path.name}")
    agg_path = next((p for p in (scan_dir / f"{scene_id}.aggregation.json", scan_dir / f"{scene_id}_vh_clean.aggregation.json") if p.is_file()), None)
    if agg_path is None:
        raise ScanNetError(f"{scene_id}: no .aggregation.json or _vh_clean.aggregation.json in {scan_dir}")
    instances, floor = [], np.zeros((0, 3))
    with reading(agg_path, ScanNetError):
        groups = json.loads(agg_path.read_text(encoding="utf-8"))["segGroups"]
        if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
            raise ScanNetError(f"{agg_path}: segGroups must be a list of objects")
        groups = sorted(groups, key=lambda g: int(g.get("objectId", g.get("id", 0))))
        for group in groups:
            label = str(group["label"]).strip().lower()
            segments = np.asarray(group["segments"])
            if segments.ndim != 1 or (segments.size and segments.dtype.kind not in "iu"):
                raise ScanNetError(f"{agg_path}: segGroup {label!r} segments must be a list of integers")
            pts = vertices[np.isin(seg_of_vertex, segments)]
            if len(pts) == 0:
                continue
            if label == "floor":
                floor = np.vstack([floor, pts])
            if label not in STRUCTURAL and np.all(np.ptp(pts, axis=0) > 0):
                instances.append((label, pts, int(group.get("objectId", group.get("id", 0)))))
    return instances, (floor if len(floor) else vertices)


def _objects(instances: list[tuple[str, np.ndarray, int]]) -> list[OrientedObject]:
    counts: dict[str, int] = {}
    objects = []
    for label, pts, _ in instances:
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        k = counts.get(label, 0)
        counts[label] = k + 1
        objects.append(OrientedObject(instance_id(label, k), label, (lo + hi) / 2, hi - lo, np.eye(3)))
    return objects


def _read_matrix(path: Path) -> np.ndarray:
    """A 4x4 matrix text file (SensReader's pose/ and intrinsic/ files); -inf marks invalid poses."""
    with reading(path, ScanNetError):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an empty file: numpy warns, then reshape refuses it
            return np.loadtxt(path, dtype=np.float64).reshape(4, 4)


def _intrinsics(path: Path) -> np.ndarray:
    K = _read_matrix(path)[:3, :3]
    if not np.all(np.isfinite(K)) or not (K[0, 0] > 0 and K[1, 1] > 0):
        raise ScanNetError(f"{path}: intrinsics need finite values and positive focal lengths")
    return K


def convert_scannet(root: str | Path, scene_id: str, out_dir: str | Path, frame_step: int = 10,
                    frames_dir: str | Path | None = None) -> Scene:
    """Convert one ScanNet scan into `out_dir/scene_id` (every `frame_step`-th frame; frames with
    an invalid (-inf) pose are skipped)."""
    paths = locate(root, scene_id, frames_dir)
    alignment = read_axis_alignment(paths.scan_dir / f"{scene_id}.txt")
    instances, floor_pts = read_instances(paths.scan_dir, scene_id, alignment)
    objects = _objects(instances)

    numbered = (p.stem for p in (paths.frames_dir / "pose").glob("*.txt") if p.stem.isdigit())
    frame_ids = sorted(map(int, numbered))[::max(1, frame_step)]
    K_color = _intrinsics(paths.frames_dir / "intrinsic" / "intrinsic_color.txt")
    depth_K_path = paths.frames_dir / "intrinsic" / "intrinsic_depth.txt"
    has_depth = (paths.frames_dir / "depth").is_dir() and depth_K_path.is_file()
    K_depth = _intrinsics(depth_K_path) if has_depth else None
    kept, poses = [], []
    for i in frame_ids:
        pose = _read_matrix(paths.frames_dir / "pose" / f"{i}.txt")
        if np.all(np.isfinite(pose)) and (paths.frames_dir / "color" / f"{i}.jpg").is_file():
            if np.abs(pose[:3, :3].T @ pose[:3, :3] - np.eye(3)).max() > 1e-2:
                raise ScanNetError(f"{paths.frames_dir / 'pose' / f'{i}.txt'}: not a rigid camera pose")
            kept.append(i)
            poses.append(alignment @ pose)
    if not kept:
        raise ScanNetError(f"{scene_id}: no frame with a valid pose and a colour image")
    first = cv2.imread(str(paths.frames_dir / "color" / f"{kept[0]}.jpg"), cv2.IMREAD_COLOR)
    if first is None:
        raise ScanNetError(f"{scene_id}: cannot read colour frame {kept[0]}")
    image_size = (int(first.shape[0]), int(first.shape[1]))
    pose_arr = np.stack(poses)
    intrinsics = np.repeat(K_color[None], len(kept), axis=0)

    def depth(f: int) -> tuple[np.ndarray, np.ndarray] | None:
        path = paths.frames_dir / "depth" / f"{kept[f]}.png"
        mm = cv2.imread(str(path), cv2.IMREAD_UNCHANGED) if path.is_file() else None
        return None if mm is None or K_depth is None else (mm.astype(np.float32) / 1000.0, K_depth)

    visibility = projected_visibility(objects, pose_arr, intrinsics, image_size, depth if has_depth else None)
    with reading(paths.scan_dir / f"{scene_id}_vh_clean_2.ply", ScanNetError):
        floor_polygon = floor_outline(floor_pts[:, :2], float(np.percentile(floor_pts[:, 2], 1)))
    scene_dir = Path(out_dir) / scene_id
    with atomic_directory(scene_dir) as staging:
        image_paths = copy_frames([paths.frames_dir / "color" / f"{i}.jpg" for i in kept], staging, "rgb")
        scene = Scene(
            scene_id=scene_id,
            up=np.array([0.0, 0.0, 1.0]),
            intrinsics=intrinsics,
            poses=pose_arr,
            image_size=image_size,
            objects=objects,
            visibility=visibility,
            floor_polygon=floor_polygon,
            timestamps=np.asarray(kept, dtype=np.float64) / FPS,
            image_paths=image_paths,
            depth_paths=[],
            root=scene_dir,
        )
        extra = {
            "source_frames": kept,
            "axis_alignment": alignment.tolist(),
            "box_rule": "axis-aligned min/max of aligned segment vertices",
            "scannet_object_ids": [object_id for _, _, object_id in instances],  # per object, in order
        }
        save_scene(scene, staging, source="scannet", visibility_rule=visibility_rule(has_depth), extra=extra)
    return scene
