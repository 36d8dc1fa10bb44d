"""Multi-window evaluation of the object map on a long synthetic camera walk.

The world: an L-shaped open space (two 5 m wide arms, 12 m long each) furnished with floor
furniture of the synthetic engine's categories, and a camera walking down both arms at the
engine's pace (0.5 m/s, 10 Hz) while looking around, so objects enter and leave view and some
are seen in one window only. Small items standing on furniture and small bins/boxes are left
out: with 0.15 m of centre noise per axis a 0.2 m vase has no meaningful 3-D IoU. The world is a
`SynthRoom`, so `ssr_core.data.synthetic.render.render_frames` can draw it for a model detector; the
stand-in evaluation needs no rendering.

Visibility: an object is visible in a frame when at least 3 of 27 points of its box project
into the image in front of the camera, within `VISIBLE_RANGE` metres, with the line of sight
inside the floor plan (the L's inner corner occludes). Windows are `window_frames` consecutive
frames every `stride` frames, annotated in their canonical frame (`annotate_window`).

Detections per window come from a detector callable: `ground_truth_detector` (the visible ground
truth with injected errors at stated rates) or a model's (`reasoner_detector` runs a
`SceneReasoner` on each window's frames, rendered by default). Metrics (final map against the world):
precision and recall (label-aware one-to-one matching by Hungarian assignment, 3-D IoU >= 0.25;
recall over the objects visible in at least `confirm_windows` windows, which the map can confirm),
duplicates, id switches on confirmed objects over the walk, and the median centre error of
matched map objects beside the median error of the single-window detections matched the same way.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.optimize import linear_sum_assignment

from ssr_core.data.annotations import OrientedObject, Scene, WindowAnnotation
from ssr_core.data.geometry import box_sample_points, boxes_overlap, points_in_polygon
from ssr_core.data.synthetic.categories import BY_LABEL, Category
from ssr_core.data.synthetic.rooms import (
    FRAME_RATE_HZ,
    UP,
    SynthObject,
    SynthRoom,
    camera_pose,
    intrinsics_for,
)
from ssr_core.data.windows import annotate_window
from ssr_core.inference.reasoner import SceneReasoner
from ssr_core.io import atomic_open
from ssr_core.mapping.object_map import MapConfig, ObjectMap, WindowDetections
from ssr_core.scene.boxes import iou_3d
from ssr_core.scene.canonical_frame import CanonicalFrame
from ssr_core.scene.objects import instance_id

MATCH_IOU = 0.25  # a map object matches a ground-truth object of its label at this 3-D IoU
VISIBLE_RANGE = 8.0  # m: farther objects count as not visible (a detector's range)
EYE_HEIGHT = 1.4  # m
HFOV_DEG = 70.0
IMAGE_SIZE = (240, 320)  # (height, width)
FLOOR_PLAN = np.array([[0, 0], [12, 0], [12, 5], [5, 5], [5, 12], [0, 12]], dtype=np.float64)
PATH = np.array([[10.5, 2.5], [2.5, 2.5], [2.5, 10.5]])  # down the middle of both arms
PATH_CLEARANCE = 0.9  # m between the walk and any object footprint
WALK_CATEGORIES = (
    "bed", "sofa", "armchair", "chair", "table", "coffee table", "desk", "cabinet", "bookshelf",
    "wardrobe", "nightstand", "dresser", "refrigerator", "tv stand", "plant", "floor lamp",
)  # fmt: skip


@dataclass(frozen=True)
class DetectionNoise:
    """Error rates of the ground-truth stand-in detector (per window, per detection)."""

    center_sigma: float = 0.15  # m, standard deviation per axis
    size_sigma: float = 0.10  # relative standard deviation per extent
    yaw_sigma: float = 0.2  # rad
    miss_rate: float = 0.10  # a visible object is not reported
    false_positive_rate: float = 0.05  # expected false boxes per visible object
    label_flip_rate: float = 0.02  # a reported object gets another label


@dataclass(frozen=True)
class CanonicalDetections:
    """A detector's output for one window, in the window's canonical frame."""

    boxes: np.ndarray  # (N, 7)
    labels: list[str]
    scores: np.ndarray  # (N,)


@dataclass
class WalkWindow:
    """One window of the walk: its frames, ground truth (canonical) and frame transform."""

    index: int
    frame_indices: np.ndarray  # (F,) into the walk's frames
    annotation: WindowAnnotation  # ground truth in the window's canonical frame
    fixed_from_canonical: np.ndarray  # (4, 4)
    stamp: float  # s, first frame


@dataclass
class Walk:
    """The world, its camera walk and its windows."""

    room: SynthRoom  # renderable with ssr_core.data.synthetic.render.render_frames
    scene: Scene  # world-frame ground truth with per-frame visibility
    windows: list[WalkWindow]
    frames: np.ndarray | None = field(default=None, repr=False)  # (F, H, W, 3) once rendered

    def window_counts(self) -> np.ndarray:
        """(M,) number of windows in which each object is visible."""
        return np.sum([[o.first_frame >= 0 for o in w.annotation.objects] for w in self.windows], axis=0)


Detector = Callable[[Walk, WalkWindow], CanonicalDetections]
FrameSource = Callable[[Walk, WalkWindow], np.ndarray]  # the window's frames, (F, H, W, 3) uint8 RGB


@dataclass
class MapEvaluation:
    """Metrics of one evaluation run (see the module docstring for definitions)."""

    windows: int
    objects: int  # ground-truth objects in the world
    seen: int  # visible in at least one window
    mappable: int  # visible in at least `confirm_windows` windows (recall's denominator)
    single_window: int  # visible in exactly one window
    confirmed: int  # confirmed map objects at the end
    tentative: int
    true_positives: int
    precision: float
    recall: float
    duplicates: int  # unmatched confirmed objects lying on an already matched object of their label
    duplicate_rate: float  # duplicates / confirmed
    id_switches: int  # times an object's matched confirmed id changed during the walk
    map_center_error: float  # m, median over matched map objects
    window_center_error: float  # m, median over matched single-window detections
    detections: int
    integrate_ms: float  # mean wall time of ObjectMap.integrate per window
    object_map: ObjectMap = field(repr=False)
    walk: Walk = field(repr=False)

    @property
    def error_ratio(self) -> float:
        return self.map_center_error / self.window_center_error if self.window_center_error > 0 else math.nan


# ---------------------------------------------------------------------------- world


def build_walk(seed: int = 0, window_frames: int = 32, stride: int = 16) -> Walk:
    """The L-shaped world, its camera walk and windows; identical output for identical arguments."""
    if window_frames < 1 or stride < 1:
        raise ValueError(f"window_frames and stride must be >= 1, got {window_frames} and {stride}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x3A9]))
    objects = _furnish(rng)
    poses = _camera_walk(rng)
    n = len(poses)
    height, width = IMAGE_SIZE
    k = intrinsics_for(width, height, HFOV_DEG)
    room = SynthRoom(
        scene_id=f"walk_{seed}",
        floor_polygon=FLOOR_PLAN.copy(),
        wall_height=2.7,
        wall_color=(0.88, 0.84, 0.74),
        floor_colors=((0.6, 0.45, 0.3), (0.51, 0.38, 0.26)),
        objects=objects,
        poses=poses,
        intrinsics=k,
        image_size=IMAGE_SIZE,
        timestamps=np.arange(n) / FRAME_RATE_HZ,
    )
    intrinsics = np.repeat(k[None], n, axis=0)
    scene = Scene(
        scene_id=room.scene_id,
        up=UP.copy(),
        intrinsics=intrinsics,
        poses=poses,
        image_size=IMAGE_SIZE,
        objects=[o.obj for o in objects],
        visibility=_visibility([o.obj for o in objects], poses, k),
        floor_polygon=np.column_stack([FLOOR_PLAN, np.zeros(len(FLOOR_PLAN))]),
        timestamps=room.timestamps,
    )
    windows = []
    for i, start in enumerate(range(0, n - window_frames + 1, stride)):
        idx = np.arange(start, start + window_frames)
        annotation = annotate_window(scene, idx)
        frame = CanonicalFrame.from_first_pose(poses[idx[0]], UP)
        windows.append(WalkWindow(i, idx, annotation, frame.world_from_canonical.copy(), float(room.timestamps[start])))
    return Walk(room, scene, windows)


def _rot_z(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    t = np.clip((points - a) @ ab / (ab @ ab), 0.0, 1.0)
    return np.linalg.norm(points - (a + t[:, None] * ab), axis=1)


def _placeable(obj: OrientedObject, placed: list[OrientedObject]) -> bool:
    half = obj.size[:2] / 2
    corners = obj.center[:2] + (np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * half) @ obj.rotation[:2, :2].T
    if not points_in_polygon(corners, FLOOR_PLAN).all():
        return False
    local = (FLOOR_PLAN - obj.center[:2]) @ obj.rotation[:2, :2]
    if np.any(np.all(np.abs(local) < half, axis=1)):  # the L's inner corner inside the footprint
        return False
    pts = np.vstack([corners, obj.center[:2]])
    if min(_segment_distance(pts, PATH[i], PATH[i + 1]).min() for i in range(len(PATH) - 1)) < PATH_CLEARANCE:
        return False
    radius = 0.5 * np.linalg.norm(obj.size)
    return not any(
        np.linalg.norm(obj.center - other.center) < radius + 0.5 * np.linalg.norm(other.size)
        and boxes_overlap(obj, other)
        for other in placed
    )  # bounding spheres first: the exact test is slow


def _furnish(rng: np.random.Generator) -> list[SynthObject]:
    """Floor furniture against the walls and free-standing beside the walk, no interpenetration."""
    cats = [BY_LABEL[label] for label in WALK_CATEGORIES]
    weights = np.array([c.weight for c in cats])
    placed: list[OrientedObject] = []
    chosen: list[Category] = []
    counts: dict[str, int] = {}
    edges = [(FLOOR_PLAN[i], FLOOR_PLAN[(i + 1) % len(FLOOR_PLAN)]) for i in range(len(FLOOR_PLAN))]
    lengths = np.array([np.linalg.norm(b - a) for a, b in edges])
    for _ in range(3000):
        if len(placed) >= 40:
            break
        cat = cats[int(rng.choice(len(cats), p=weights / weights.sum()))]
        if counts.get(cat.label, 0) >= 2 * cat.max_count:
            continue
        size = rng.uniform(cat.size_min, cat.size_max)
        if cat.round_base:
            size[1] = size[0]
        if cat.placement == "wall":
            a, b = edges[int(rng.choice(len(edges), p=lengths / lengths.sum()))]
            d = (b - a) / np.linalg.norm(b - a)
            t = rng.uniform(size[0] / 2 + 0.05, np.linalg.norm(b - a) - size[0] / 2 - 0.05)
            xy = a + d * t + np.array([-d[1], d[0]]) * (size[1] / 2 + 0.03)
            yaw = math.atan2(d[1], d[0]) + math.pi
        else:
            xy = rng.uniform(FLOOR_PLAN.min(axis=0), FLOOR_PLAN.max(axis=0))
            yaw = float(rng.uniform(-math.pi, math.pi))
        obj = OrientedObject("", cat.label, np.array([xy[0], xy[1], size[2] / 2]), size, _rot_z(yaw))
        if _placeable(obj, placed):
            placed.append(obj)
            chosen.append(cat)
            counts[cat.label] = counts.get(cat.label, 0) + 1
    out: list[SynthObject] = []
    numbering: dict[str, int] = {}
    for obj, cat in zip(placed, chosen):
        k = numbering.get(cat.label, 0)
        numbering[cat.label] = k + 1
        obj.instance_id = instance_id(cat.label, k)
        color = cat.colors[int(rng.integers(len(cat.colors)))]
        out.append(SynthObject(obj=obj, category=cat, color=color))
    return out


def _camera_walk(rng: np.random.Generator) -> np.ndarray:
    """(F, 4, 4) poses: turn on the spot from the east wall to the walk's heading, then walk both
    arms at 0.5 m/s looking left and right (sweep of +-55 degrees), eye height 1.4 m."""
    step = 0.5 / FRAME_RATE_HZ
    pts = [PATH[0]]
    for a, b in zip(PATH[:-1], PATH[1:]):
        n = int(round(np.linalg.norm(b - a) / step))
        pts += [a + (b - a) * (i / n) for i in range(1, n + 1)]
    walk_xy = np.array(pts)
    turn = 24  # frames turning on the spot at the start
    xy = np.vstack([np.repeat(walk_xy[:1], turn, axis=0), walk_xy])
    heading = np.arctan2(np.diff(xy[:, 1]), np.diff(xy[:, 0]))
    heading = np.unwrap(np.concatenate([heading, heading[-1:]]))
    heading[:turn] = np.linspace(0.0, heading[turn], turn)  # from facing east to the walk's heading
    heading[turn:] = gaussian_filter1d(heading[turn:], 6.0, mode="nearest")
    t = np.arange(len(xy))
    phase = rng.uniform(0, 2 * np.pi)
    sweep = np.deg2rad(55.0) * np.sin(2 * np.pi * t / 70.0 + phase) * np.clip((t - turn) / 20.0, 0.0, 1.0)
    yaw = heading + sweep
    return np.stack([
        camera_pose(np.array([x, y, EYE_HEIGHT]), float(w), np.deg2rad(-15.0), 0.0) for (x, y), w in zip(xy, yaw)
    ])


def _visibility(objects: Sequence[OrientedObject], poses: np.ndarray, k: np.ndarray) -> np.ndarray:
    """(F, M) bool by the module docstring's rule (frustum, range, walls of the floor plan)."""
    height, width = IMAGE_SIZE
    pts = np.stack([box_sample_points(o) for o in objects])  # (M, 27, 3)
    flat = pts.reshape(-1, 3)
    ts = np.linspace(0.05, 0.95, 10)
    vis = np.zeros((len(poses), len(objects)), dtype=bool)
    for f, pose in enumerate(poses):
        cam = (flat - pose[:3, 3]) @ pose[:3, :3]
        z = cam[:, 2]
        ok = (z > 0.1) & (np.linalg.norm(flat - pose[:3, 3], axis=1) <= VISIBLE_RANGE)
        uv = cam[:, :2] / np.where(z > 0.1, z, 1.0)[:, None] * k[[0, 1], [0, 1]] + k[[0, 1], [2, 2]]
        ok &= (uv[:, 0] >= -0.5) & (uv[:, 0] < width - 0.5) & (uv[:, 1] >= -0.5) & (uv[:, 1] < height - 0.5)
        idx = np.flatnonzero(ok)
        if idx.size:
            along = pose[:2, 3] + ts[None, :, None] * (flat[idx, None, :2] - pose[:2, 3])  # (P, T, 2)
            inside = points_in_polygon(along.reshape(-1, 2), FLOOR_PLAN).reshape(len(idx), len(ts)).all(axis=1)
            ok[idx] = inside
        vis[f] = ok.reshape(len(objects), 27).sum(axis=1) >= 3
    return vis


# ---------------------------------------------------------------------------- detectors


def ground_truth_detector(noise: DetectionNoise | None = None, seed: int = 0) -> Detector:
    """The visible ground truth of each window with errors injected at `noise`'s rates.

    Deterministic: window i draws from its own generator seeded by (seed, i), whatever order
    windows are asked in. Scores are 1 (the model gives no confidences either).
    """
    noise = noise or DetectionNoise()
    labels_pool = list(WALK_CATEGORIES)

    def detect(walk: Walk, window: WalkWindow) -> CanonicalDetections:
        rng = np.random.default_rng(np.random.SeedSequence([seed, window.index, 0x5D]))
        visible = sorted(window.annotation.visible_objects(), key=lambda o: (o.first_frame, o.instance_id))
        boxes, labels = [], []
        for obj in visible:
            if rng.random() < noise.miss_rate:
                continue
            box = np.asarray(obj.box, dtype=np.float64).copy()
            box[:3] += rng.normal(0.0, noise.center_sigma, 3)
            box[3:6] *= np.clip(1.0 + rng.normal(0.0, noise.size_sigma, 3), 0.2, None)
            box[6] += rng.normal(0.0, noise.yaw_sigma)
            label = obj.label
            if rng.random() < noise.label_flip_rate:
                label = labels_pool[int(rng.choice([i for i, lab in enumerate(labels_pool) if lab != obj.label]))]
            boxes.append(box)
            labels.append(label)
        for _ in range(int(rng.binomial(len(visible), noise.false_positive_rate))):
            cat = BY_LABEL[labels_pool[int(rng.integers(len(labels_pool)))]]
            size = rng.uniform(cat.size_min, cat.size_max)
            distance = rng.uniform(1.0, 5.0)
            bearing = rng.uniform(-np.deg2rad(HFOV_DEG) / 2, np.deg2rad(HFOV_DEG) / 2)
            centre = [distance * math.cos(bearing), distance * math.sin(bearing), size[2] / 2 - EYE_HEIGHT]
            boxes.append(np.array([*centre, *size, rng.uniform(-math.pi, math.pi)]))
            labels.append(cat.label)
        array = np.array(boxes).reshape(-1, 7)
        return CanonicalDetections(array, labels, np.ones(len(labels)))

    return detect


def rendered_frames(walk: Walk, window: WalkWindow) -> np.ndarray:
    """The window's frames, rendered with MuJoCo (`ssr_core.data.synthetic.render`) on first use
    for the whole walk (340 frames at 320x240) and kept on the `Walk`."""
    if walk.frames is None:
        from ssr_core.data.synthetic.render import render_frames

        walk.frames = np.stack([frame.rgb for frame in render_frames(walk.room)])
    return walk.frames[window.frame_indices]


def reasoner_detector(reasoner: SceneReasoner, frames: FrameSource = rendered_frames) -> Detector:
    """A model's detections: `reasoner.perceive` on each window's frames (window id = index + 1),
    its objects' canonical boxes, labels and self-consistency scores, exactly what the node
    integrates. `frames` defaults to rendering the walk."""

    def detect(walk: Walk, window: WalkWindow) -> CanonicalDetections:
        perception = reasoner.perceive(frames(walk, window), window.index + 1)
        objects = perception.objects
        return CanonicalDetections(
            np.array([o.box7 for o in objects], dtype=np.float64).reshape(-1, 7),
            [o.label for o in objects],
            np.array([o.score for o in objects], dtype=np.float64),
        )

    return detect


# ---------------------------------------------------------------------------- evaluation


def match_boxes(
    boxes: np.ndarray, labels: Sequence[str], gt_boxes: np.ndarray, gt_labels: Sequence[str], min_iou: float = MATCH_IOU
) -> list[tuple[int, int]]:
    """Label-aware one-to-one (prediction, ground truth) pairs with 3-D IoU >= min_iou, by
    Hungarian assignment maximising the total IoU."""
    if len(boxes) == 0 or len(gt_boxes) == 0:
        return []
    iou = np.atleast_2d(iou_3d(boxes, gt_boxes))
    ok = (np.array(labels, dtype=object)[:, None] == np.array(gt_labels, dtype=object)[None, :]) & (iou >= min_iou)
    rows, cols = linear_sum_assignment(np.where(ok, -iou, 1.0))
    return [(int(i), int(j)) for i, j in zip(rows, cols) if ok[i, j]]


def evaluate_walk(
    seed: int = 0,
    noise: DetectionNoise | None = None,
    config: MapConfig | None = None,
    detector: Detector | None = None,
    window_frames: int = 32,
    stride: int = 16,
    use_cameras: bool = True,
) -> MapEvaluation:
    """Integrate every window of the walk into a fresh map and score the result.

    `detector` defaults to `ground_truth_detector(noise, seed)`; `use_cameras=False` integrates
    without camera poses (no misses can be counted).
    """
    config = config or MapConfig()
    walk = build_walk(seed, window_frames, stride)
    detect = detector or ground_truth_detector(noise, seed)
    world = walk.scene.objects
    gt_boxes = np.stack([CanonicalFrame(np.eye(4)).oriented_boxes_to_canonical(o.center, o.size, o.rotation) for o in world])
    gt_labels = [o.label for o in world]
    counts = walk.window_counts()
    object_map = ObjectMap(config)
    window_errors: list[float] = []
    matched_id: dict[int, str] = {}
    id_switches = 0
    detections = 0
    elapsed = 0.0
    height, width = IMAGE_SIZE
    for window in walk.windows:
        found = detect(walk, window)
        detections += len(found.labels)
        frame = CanonicalFrame(window.fixed_from_canonical)
        if len(found.labels):
            fixed = frame.boxes_to_world(found.boxes)
            for i, j in match_boxes(fixed, found.labels, gt_boxes, gt_labels):
                window_errors.append(float(np.linalg.norm(fixed[i, :3] - gt_boxes[j, :3])))
        cams = walk.scene.poses[window.frame_indices] if use_cameras else None
        start = time.perf_counter()
        object_map.integrate(
            WindowDetections(
                stamp=window.stamp,
                fixed_from_canonical=window.fixed_from_canonical,
                boxes=found.boxes,
                labels=found.labels,
                scores=found.scores,
                camera_to_fixed=cams,
                intrinsics=walk.room.intrinsics if use_cameras else None,
                image_size=(height, width) if use_cameras else None,
            )
        )
        elapsed += time.perf_counter() - start
        confirmed = object_map.confirmed_objects()
        if confirmed:
            boxes = np.stack([o.box for o in confirmed])
            for i, j in match_boxes(boxes, [o.label for o in confirmed], gt_boxes, gt_labels):
                if j in matched_id and matched_id[j] != confirmed[i].object_id:
                    id_switches += 1
                matched_id[j] = confirmed[i].object_id
    confirmed = object_map.confirmed_objects()
    boxes = np.stack([o.box for o in confirmed]) if confirmed else np.zeros((0, 7))
    labels = [o.label for o in confirmed]
    pairs = match_boxes(boxes, labels, gt_boxes, gt_labels)
    mappable = counts >= config.confirm_windows
    matched_gt = {j for _, j in pairs}
    matched_map = {i for i, _ in pairs}
    duplicates = 0
    for i in set(range(len(confirmed))) - matched_map:
        for j in matched_gt:
            if labels[i] == gt_labels[j] and (
                float(iou_3d(boxes[i], gt_boxes[j])) > 0 or np.linalg.norm(boxes[i, :3] - gt_boxes[j, :3]) <= config.gate_distance
            ):
                duplicates += 1
                break
    map_errors = [float(np.linalg.norm(boxes[i, :3] - gt_boxes[j, :3])) for i, j in pairs]
    n_conf = len(confirmed)
    return MapEvaluation(
        windows=len(walk.windows),
        objects=len(world),
        seen=int(np.sum(counts >= 1)),
        mappable=int(mappable.sum()),
        single_window=int(np.sum(counts == 1)),
        confirmed=n_conf,
        tentative=len(object_map) - n_conf,
        true_positives=len(pairs),
        precision=len(pairs) / n_conf if n_conf else math.nan,
        recall=sum(1 for j in matched_gt if mappable[j]) / int(mappable.sum()) if mappable.any() else math.nan,
        duplicates=duplicates,
        duplicate_rate=duplicates / n_conf if n_conf else 0.0,
        id_switches=id_switches,
        map_center_error=float(np.median(map_errors)) if map_errors else math.nan,
        window_center_error=float(np.median(window_errors)) if window_errors else math.nan,
        detections=detections,
        integrate_ms=1000.0 * elapsed / max(len(walk.windows), 1),
        object_map=object_map,
        walk=walk,
    )


def format_map_evaluation(result: MapEvaluation) -> str:
    """Human-readable report of `evaluate_walk` (what the `ssr` command prints)."""
    lines = [
        f"walk: {result.windows} windows, {result.objects} objects ({result.seen} seen, "
        f"{result.mappable} in >= 2 windows, {result.single_window} in one window only), {result.detections} detections",
        f"map: {result.confirmed} confirmed, {result.tentative} tentative",
        f"precision {result.precision:.3f}  recall {result.recall:.3f}  (3D IoU >= {MATCH_IOU}, label-aware)",
        f"duplicates {result.duplicates} ({100 * result.duplicate_rate:.1f} %)  id switches {result.id_switches}",
        f"median centre error: map {result.map_center_error:.3f} m, single window {result.window_center_error:.3f} m "
        f"(ratio {result.error_ratio:.2f})",
        f"integrate: {result.integrate_ms:.2f} ms per window",
    ]
    return "\n".join(lines)


def plot_map(result: MapEvaluation, path: str | Path) -> Path:
    """Bird's-eye PNG: ground truth (grey), confirmed map boxes (coloured by id), tentative ones
    (dashed), the camera trajectory and the map's scene-graph edges."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Polygon

    from ssr_core.scene.boxes import bev_corners

    walk, object_map = result.walk, result.object_map
    fig, ax = plt.subplots(figsize=(8, 8), dpi=100)
    ax.add_patch(Polygon(FLOOR_PLAN, closed=True, fill=False, edgecolor="black", linewidth=1.5))
    for o in walk.scene.objects:
        box = CanonicalFrame(np.eye(4)).oriented_boxes_to_canonical(o.center, o.size, o.rotation)
        ax.add_patch(Polygon(bev_corners(box), closed=True, facecolor="0.85", edgecolor="0.5", linewidth=0.8))
    cmap = plt.get_cmap("tab20")
    confirmed = object_map.confirmed_objects()
    centres = {o.object_id: o.box[:2] for o in confirmed}
    for lcm in object_map.scene_graph():
        for a, b in ((lcm.anchor1, lcm.target), (lcm.anchor2, lcm.target), (lcm.anchor1, lcm.anchor2)):
            ax.plot(*np.stack([centres[a], centres[b]]).T, color="tab:purple", linewidth=0.5, alpha=0.5)
    for n, fused in enumerate(object_map.objects(include_tentative=True)):
        style = "-" if fused.confirmed else "--"
        color = cmap(n % 20) if fused.confirmed else "0.3"
        patch = Polygon(bev_corners(fused.box), closed=True, fill=False, edgecolor=color, linestyle=style, linewidth=1.2)
        ax.add_patch(patch)
        if fused.confirmed:
            ax.annotate(fused.object_id, (float(fused.box[0]), float(fused.box[1])), fontsize=5, ha="center", va="center")
    xy = walk.scene.poses[:, :2, 3]
    ax.plot(xy[:, 0], xy[:, 1], color="tab:red", linewidth=1.0, label="camera")
    for w in walk.windows:
        pose = walk.scene.poses[w.frame_indices[0]]
        ax.arrow(pose[0, 3], pose[1, 3], 0.4 * pose[0, 2], 0.4 * pose[1, 2], color="tab:red", width=0.02)
    ax.set_aspect("equal")
    ax.set_xlim(FLOOR_PLAN[:, 0].min() - 0.5, FLOOR_PLAN[:, 0].max() + 0.5)
    ax.set_ylim(FLOOR_PLAN[:, 1].min() - 0.5, FLOOR_PLAN[:, 1].max() + 0.5)
    ax.set_title(
        f"object map: P {result.precision:.2f} R {result.recall:.2f}, {result.confirmed} confirmed "
        f"(grey: ground truth, dashed: tentative, purple: scene graph)",
        fontsize=8,
    )
    out = Path(path)
    try:
        with atomic_open(out, "wb") as handle:  # an earlier picture survives a failed save
            fig.savefig(handle, format=out.suffix.lstrip(".").lower() or "png")
    finally:
        plt.close(fig)
    return out
