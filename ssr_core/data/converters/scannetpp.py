"""ScanNet++ (v2) scene, iPhone stream -> internal `Scene` directory.

Reads a scene folder as released (`data/<scene_id>/`):

- `scans/mesh_aligned_0.05.ply` (vertices in the scan's aligned frame, z up),
  `scans/segments.json` (`segIndices`, one segment per vertex) and `scans/segments_anno.json`
  (`segGroups`: `id` / `objectId`, `label`, `segments`);
- `iphone/pose_intrinsic_imu.json`: per frame (`frame_000000`, ...) `aligned_pose` (4x4
  camera-to-world in the aligned frame, OpenCV camera axes: the toolkit back-projects depth with a
  plain pinhole), `intrinsic` (3x3, RGB resolution) and `timestamp`;
- `iphone/rgb/frame_<i>.jpg` and optionally `iphone/depth/frame_<i>.png` (uint16 mm, lower
  resolution, same aspect ratio), extracted from `rgb.mkv` / `depth.bin` by the toolkit's
  `iphone.prepare_iphone_data`.

Boxes follow the ScanNet converter's rule: the min/max of each annotated instance's aligned mesh
vertices (axis-aligned). Structural classes (wall, floor, ceiling) and the annotation tool's
`remove` / `split` marks are not objects; the floor outline is the convex hull of floor vertices
(all vertices if none). A segment group without label or segments, or with segments no vertex
has, is skipped and listed in `scene.json` `extra.skipped_annotations`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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

NOT_OBJECTS = frozenset({"wall", "floor", "ceiling", "remove", "split"})


class ScanNetPPError(InputError):
    """A ScanNet++ scene folder is missing a file or holds something unreadable."""


def locate(root: str | Path, scene_id: str) -> Path:
    """The scene folder: `root/data/<id>`, `root/<id>` or `root` itself."""
    root = Path(root)
    try:
        safe_name(scene_id, "scene id")
    except InputError as err:
        raise ScanNetPPError(str(err)) from None
    found = next((d for d in (root / "data" / scene_id, root / scene_id, root)
                  if (d / "scans" / "segments_anno.json").is_file()), None)
    if found is None:
        raise ScanNetPPError(f"no scans/segments_anno.json under {root / 'data' / scene_id}, {root / scene_id} or {root}")
    return found


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ScanNetPPError(f"cannot read {path}: {exc}") from None


def read_objects(scene_dir: Path) -> tuple[list[OrientedObject], np.ndarray, list[int], list[str]]:
    """Objects (axis-aligned boxes), floor vertices, their annotation ids and skipped groups."""
    mesh = scene_dir / "scans" / "mesh_aligned_0.05.ply"
    with reading(mesh, ScanNetPPError, also=(PlyParseError,)):
        vertex = PlyData.read(str(mesh))["vertex"]
        vertices = np.column_stack([vertex["x"], vertex["y"], vertex["z"]]).astype(np.float64)
        if not len(vertices) or not np.all(np.isfinite(vertices)):
            raise ScanNetPPError(f"{mesh}: the mesh needs vertices with finite coordinates")
    segments_file = scene_dir / "scans" / "segments.json"
    with reading(segments_file, ScanNetPPError):
        seg_of_vertex = np.asarray(_read_json(segments_file).get("segIndices", []))
        if seg_of_vertex.ndim != 1 or (seg_of_vertex.size and seg_of_vertex.dtype.kind not in "iu"):
            raise ScanNetPPError(f"{segments_file}: segIndices must be a list of integers")
    if len(seg_of_vertex) != len(vertices):
        raise ScanNetPPError(f"{scene_dir.name}: {len(seg_of_vertex)} segment indices for {len(vertices)} vertices")
    anno = scene_dir / "scans" / "segments_anno.json"
    with reading(anno, ScanNetPPError):
        groups = _read_json(anno).get("segGroups")
    if not isinstance(groups, list):
        raise ScanNetPPError(f"{scene_dir / 'scans' / 'segments_anno.json'}: no segGroups list")
    objects: list[OrientedObject] = []
    ids: list[int] = []
    skipped: list[str] = []
    counts: dict[str, int] = {}
    floor = np.zeros((0, 3))
    for k, group in enumerate(groups):
        label = group.get("label") if isinstance(group, dict) else None
        segments = group.get("segments") if isinstance(group, dict) else None
        if (not isinstance(label, str) or not label.strip() or not isinstance(segments, list) or not segments
                or not all(isinstance(i, int) and not isinstance(i, bool) for i in segments)):
            skipped.append(f"segGroups[{k}]: needs a label and a non-empty list of segment indices")
            continue
        label = label.strip().lower()
        points = vertices[np.isin(seg_of_vertex, segments)]
        if len(points) == 0:
            skipped.append(f"segGroups[{k}] ({label}): its segments hold no vertex")
            continue
        if label == "floor":
            floor = np.vstack([floor, points])
        if label in NOT_OBJECTS:
            continue
        lo, hi = points.min(axis=0), points.max(axis=0)
        if not np.all(hi - lo > 0):
            skipped.append(f"segGroups[{k}] ({label}): its vertices span no volume")
            continue
        n = counts.get(label, 0)
        counts[label] = n + 1
        objects.append(OrientedObject(instance_id(label, n), label, (lo + hi) / 2, hi - lo, np.eye(3)))
        with reading(anno, ScanNetPPError):
            ids.append(int(group.get("objectId", group.get("id", k))))
    return objects, (floor if len(floor) else vertices), ids, skipped


def convert_scannetpp(root: str | Path, scene_id: str, out_dir: str | Path, frame_step: int = 10) -> Scene:
    """Convert one ScanNet++ scene's iPhone stream into `out_dir/scene_id` (every `frame_step`-th
    frame with a finite pose and an extracted RGB image)."""
    scene_dir = locate(root, scene_id)
    objects, floor_pts, object_ids, skipped = read_objects(scene_dir)
    iphone = scene_dir / "iphone"
    frames = _read_json(iphone / "pose_intrinsic_imu.json")
    if not isinstance(frames, dict) or not frames:
        raise ScanNetPPError(f"{iphone / 'pose_intrinsic_imu.json'}: expected an object of frames")
    kept: list[str] = []
    poses: list[np.ndarray] = []
    intrinsics: list[np.ndarray] = []
    stamps: list[float] = []
    for name in sorted(frames)[:: max(1, frame_step)]:
        entry = frames[name]
        try:
            pose = np.asarray(entry["aligned_pose"], dtype=np.float64).reshape(4, 4)
            K = np.asarray(entry["intrinsic"], dtype=np.float64).reshape(3, 3)
            stamp = float(entry.get("timestamp", len(stamps)))
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
            continue  # a frame without a usable pose is skipped, like one with an infinite pose
        rigid = np.all(np.isfinite(pose)) and np.abs(pose[:3, :3].T @ pose[:3, :3] - np.eye(3)).max() < 1e-2
        usable_k = np.all(np.isfinite(K)) and K[0, 0] > 0 and K[1, 1] > 0
        if rigid and usable_k and np.isfinite(stamp) and (iphone / "rgb" / f"{name}.jpg").is_file():
            kept.append(name)
            poses.append(pose)
            intrinsics.append(K)
            stamps.append(stamp)
    if not kept:
        raise ScanNetPPError(
            f"{iphone / 'pose_intrinsic_imu.json'}: no frame with a valid pose, intrinsics and an extracted iphone/rgb image"
        )
    first = cv2.imread(str(iphone / "rgb" / f"{kept[0]}.jpg"), cv2.IMREAD_COLOR)
    if first is None:
        raise ScanNetPPError(f"{scene_id}: cannot read {iphone / 'rgb' / f'{kept[0]}.jpg'}")
    image_size = (int(first.shape[0]), int(first.shape[1]))
    pose_arr, K_arr = np.stack(poses), np.stack(intrinsics)
    has_depth = (iphone / "depth").is_dir()

    def depth(f: int) -> tuple[np.ndarray, np.ndarray] | None:
        mm = cv2.imread(str(iphone / "depth" / f"{kept[f]}.png"), cv2.IMREAD_UNCHANGED)
        if mm is None:
            return None
        K_depth = K_arr[f].copy()
        K_depth[:2] *= mm.shape[1] / image_size[1]  # same aspect ratio, lower resolution
        return mm.astype(np.float32) / 1000.0, K_depth

    visibility = projected_visibility(objects, pose_arr, K_arr, image_size, depth if has_depth else None)
    with reading(scene_dir / "scans" / "mesh_aligned_0.05.ply", ScanNetPPError):
        floor_polygon = floor_outline(floor_pts[:, :2], float(np.percentile(floor_pts[:, 2], 1)))
    out_scene = Path(out_dir) / scene_id
    with atomic_directory(out_scene) as staging:  # an earlier conversion survives a failed one
        image_paths = copy_frames([iphone / "rgb" / f"{name}.jpg" for name in kept], staging, "rgb")
        scene = Scene(
            scene_id=scene_id,
            up=np.array([0.0, 0.0, 1.0]),
            intrinsics=K_arr,
            poses=pose_arr,
            image_size=image_size,
            objects=objects,
            visibility=visibility,
            floor_polygon=floor_polygon,
            timestamps=np.asarray(stamps),
            image_paths=image_paths,
            depth_paths=[],
            root=out_scene,
        )
        extra = {
            "source_frames": kept,
            "box_rule": "axis-aligned min/max of aligned segment vertices",
            "scannetpp_object_ids": object_ids,
            "skipped_annotations": skipped,
        }
        save_scene(scene, staging, source="scannetpp", visibility_rule=visibility_rule(has_depth), extra=extra)
    return scene
