"""Procedural indoor rooms: floor plan, furniture layout and a camera walk, from one seed.

The room is built in a room-local frame (z up, floor at z = 0) and then placed in the world by
a random yaw and offset, so downstream code cannot rely on walls being aligned with world axes
or on the origin being a room corner. Only the geometry lives here; `render.py` draws it and
`synthesize_scene` ties layout, rendering and storage together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import distance_transform_edt, gaussian_filter1d

from ssr_core.data.annotations import OrientedObject
from ssr_core.data.geometry import boxes_overlap, points_in_polygon, polygon_area
from ssr_core.data.synthetic.categories import BY_LABEL, CATEGORIES, Category, Color
from ssr_core.scene.objects import instance_id

UP = np.array([0.0, 0.0, 1.0])
FRAME_RATE_HZ = 10.0
MIN_OBJECTS, MAX_OBJECTS = 5, 30
WALL_GAP = 0.03  # metres between a wall-placed object and its wall
GRID = 0.1  # metres per cell of the camera's free-space grid
CAMERA_CLEARANCE = 0.3  # metres the camera path keeps from walls and furniture
WALK_SPEED = 0.5  # metres per second at FRAME_RATE_HZ: a slow handheld walk
SWEEP_RATE_DEG = 4.0  # peak look-around turn per frame
BASE_TURN_DEG = 3.0  # peak turn per frame of the look direction before the sweep
WALL_COLORS: tuple[Color, ...] = ((0.92, 0.90, 0.85), (0.88, 0.84, 0.74), (0.80, 0.82, 0.84), (0.76, 0.82, 0.88), (0.80, 0.86, 0.78))


@dataclass
class SynthObject:
    """An object of a synthetic room with what the renderer needs beyond its box."""

    obj: OrientedObject
    category: Category
    color: Color
    host: int | None = None  # index of the object it stands on


@dataclass
class SynthRoom:
    """Geometry of one synthetic scene: room shell, objects and the camera walk (world frame)."""

    scene_id: str
    floor_polygon: np.ndarray  # (K, 2) world xy, counter-clockwise, floor at z = 0
    wall_height: float
    wall_color: Color
    floor_colors: tuple[Color, Color]
    objects: list[SynthObject]
    poses: np.ndarray  # (F, 4, 4) camera-to-world, OpenCV axes
    intrinsics: np.ndarray  # (3, 3)
    image_size: tuple[int, int]  # (height, width)
    timestamps: np.ndarray  # (F,) seconds


class LayoutError(RuntimeError):
    """No valid room could be generated for this seed within the retry budget."""


def _rot_z(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _jitter(color: Color, rng: np.random.Generator) -> Color:
    r, g, b = (float(c) for c in np.clip(np.asarray(color) + rng.normal(0, 0.03, 3), 0, 1))
    return (r, g, b)


def _floor_plan(rng: np.random.Generator) -> np.ndarray:
    """A rectangle or an L-shape (rectangle minus one corner), counter-clockwise, in metres."""
    w, d = rng.uniform(3.5, 7.0), rng.uniform(3.0, 6.0)
    if rng.random() < 0.5:
        return np.array([[0, 0], [w, 0], [w, d], [0, d]], dtype=np.float64)
    cw, cd = w * rng.uniform(0.3, 0.5), d * rng.uniform(0.3, 0.5)
    # Notch at the (w, d) corner, then rotate the outline so the notch lands on a random corner.
    poly = np.array([[0, 0], [w, 0], [w, d - cd], [w - cw, d - cd], [w - cw, d], [0, d]], dtype=np.float64)
    quarter = int(rng.integers(4))
    return (poly - [w / 2, d / 2]) @ _rot_z(quarter * np.pi / 2)[:2, :2].T + [w / 2, d / 2]


def _footprint(obj: OrientedObject) -> np.ndarray:
    """(4, 2) floor-plane corners of a yaw-only box."""
    half = obj.size[:2] / 2
    local = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * half
    return obj.center[:2] + local @ obj.rotation[:2, :2].T


def _inside_room(obj: OrientedObject, polygon: np.ndarray) -> bool:
    """Footprint inside the floor plan: corners inside, and no (reflex) room corner inside it."""
    corners = _footprint(obj)
    if not points_in_polygon(corners, polygon).all():
        return False
    local = (polygon - obj.center[:2]) @ obj.rotation[:2, :2]
    return not np.any(np.all(np.abs(local) < obj.size[:2] / 2 - 1e-6, axis=1))


def _sample_size(cat: Category, rng: np.random.Generator) -> np.ndarray:
    size = rng.uniform(cat.size_min, cat.size_max)
    if cat.round_base:
        size[1] = size[0]
    return size


def _against_wall(size: np.ndarray, polygon: np.ndarray, rng: np.random.Generator) -> OrientedObject | None:
    """Back (+y) against a random wall, somewhere along it."""
    i = int(rng.integers(len(polygon)))
    a, b = polygon[i], polygon[(i + 1) % len(polygon)]
    length = np.linalg.norm(b - a)
    if length < size[0] + 0.1:
        return None
    d = (b - a) / length
    inward = np.array([-d[1], d[0]])  # interior is on the left of a counter-clockwise outline
    t = rng.uniform(size[0] / 2 + 0.05, length - size[0] / 2 - 0.05)
    xy = a + d * t + inward * (size[1] / 2 + WALL_GAP)
    yaw = np.arctan2(d[1], d[0]) + np.pi  # x against the outline's direction puts +y at the wall
    return OrientedObject("", "", np.array([xy[0], xy[1], size[2] / 2]), size, _rot_z(yaw))


def _free_standing(size: np.ndarray, polygon: np.ndarray, rng: np.random.Generator) -> OrientedObject:
    lo, hi = polygon.min(axis=0), polygon.max(axis=0)
    xy = rng.uniform(lo, hi)
    yaw = rng.uniform(-np.pi, np.pi) if rng.random() < 0.5 else rng.integers(4) * np.pi / 2 + rng.normal(0, 0.05)
    return OrientedObject("", "", np.array([xy[0], xy[1], size[2] / 2]), size, _rot_z(yaw))


def _on_host(size: np.ndarray, host: OrientedObject, rng: np.random.Generator) -> OrientedObject | None:
    """Somewhere on the host's top face, facing the same way as the host."""
    room = host.size[:2] - size[:2] - 0.04
    if np.any(room < 0):
        return None
    local = np.append(rng.uniform(-room / 2, room / 2), host.size[2] / 2 + size[2] / 2)
    return OrientedObject("", "", host.center + host.rotation @ local, size, host.rotation.copy())


def _chairs_around(table: OrientedObject, polygon: np.ndarray, placed: list[OrientedObject],
                   rng: np.random.Generator) -> list[OrientedObject]:
    """Up to four chairs facing a table from its sides (their -y front towards the table)."""
    chairs: list[OrientedObject] = []
    for side in rng.permutation(4)[: int(rng.integers(1, 5))]:
        size = _sample_size(BY_LABEL["chair"], rng)
        outward = table.rotation[:2, :2] @ [(1, 0), (0, 1), (-1, 0), (0, -1)][side]
        reach = table.size[side % 2] / 2 + size[1] / 2 + 0.05
        xy = table.center[:2] + outward * reach
        yaw = np.arctan2(outward[1], outward[0]) - np.pi / 2  # chair +y (its back) points away
        chair = OrientedObject("", "", np.array([xy[0], xy[1], size[2] / 2]), size, _rot_z(yaw + rng.normal(0, 0.1)))
        if _inside_room(chair, polygon) and not any(boxes_overlap(chair, o) for o in placed + chairs):
            chairs.append(chair)
    return chairs


def _layout(polygon: np.ndarray, wall_height: float, rng: np.random.Generator) -> list[tuple[OrientedObject, Category, int | None]]:
    """Place objects one by one, rejecting any that leaves the room or interpenetrates another."""
    target = int(rng.integers(MIN_OBJECTS, MAX_OBJECTS + 1))
    floor_budget = 0.4 * polygon_area(polygon)
    placed: list[tuple[OrientedObject, Category, int | None]] = []
    counts: dict[str, int] = {}
    used_floor = 0.0
    for _ in range(target * 40):
        if len(placed) >= target:
            break
        hosts = [i for i, (_, c, _) in enumerate(placed) if c.supports]
        options = [
            c for c in CATEGORIES
            if counts.get(c.label, 0) < c.max_count
            and (c.placement != "on" or any(placed[i][1].label in c.hosts for i in hosts))
        ]
        weights = np.array([c.weight for c in options])
        cat = options[int(rng.choice(len(options), p=weights / weights.sum()))]
        size = _sample_size(cat, rng)
        host: int | None = None
        if cat.placement == "on":
            host = int(rng.choice([i for i in hosts if placed[i][1].label in cat.hosts]))
            obj = _on_host(size, placed[host][0], rng)
        elif cat.placement == "wall":
            obj = _against_wall(size, polygon, rng)
        else:
            obj = _free_standing(size, polygon, rng)
        if obj is None or obj.center[2] + obj.size[2] / 2 > wall_height - 0.2:
            continue
        area = float(np.prod(size[:2]))
        if host is None and used_floor + area > floor_budget:
            continue
        boxes = [p[0] for p in placed]
        if not _inside_room(obj, polygon) or any(boxes_overlap(obj, b) for b in boxes):
            continue
        placed.append((obj, cat, host))
        counts[cat.label] = counts.get(cat.label, 0) + 1
        used_floor += area if host is None else 0.0
        if cat.label == "table" and counts.get("chair", 0) == 0:
            for chair in _chairs_around(obj, polygon, boxes + [obj], rng)[: target - len(placed)]:
                placed.append((chair, BY_LABEL["chair"], None))
                counts["chair"] = counts.get("chair", 0) + 1
    return placed


def _clearance_map(polygon: np.ndarray, floor_boxes: list[OrientedObject]) -> tuple[np.ndarray, np.ndarray]:
    """Distance (m) from each grid cell centre to the nearest wall or furniture; and the cell centres."""
    lo = polygon.min(axis=0) - GRID
    shape = np.ceil((polygon.max(axis=0) + GRID - lo) / GRID).astype(int)
    ij = np.stack(np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij"), axis=-1).reshape(-1, 2)
    centres = lo + (ij + 0.5) * GRID
    blocked = ~points_in_polygon(centres, polygon)
    for box in floor_boxes:
        local = (centres - box.center[:2]) @ box.rotation[:2, :2]
        blocked |= np.all(np.abs(local) <= box.size[:2] / 2, axis=1)
    clearance = distance_transform_edt(~blocked.reshape(shape)) * GRID
    return clearance, centres.reshape(*shape, 2)


def _segment_clear(a: np.ndarray, b: np.ndarray, clearance: np.ndarray, lo: np.ndarray, need: float) -> bool:
    n = max(2, int(np.linalg.norm(b - a) / 0.05))
    pts = a + np.linspace(0, 1, n)[:, None] * (b - a)
    idx = np.floor((pts - lo) / GRID).astype(int)
    return bool(np.all(clearance[idx[:, 0], idx[:, 1]] >= need))


def _chaikin(points: np.ndarray, iterations: int = 4) -> np.ndarray:
    """Corner cutting: a smooth curve close to the polyline, with the same end points."""
    for _ in range(iterations):
        q = 0.75 * points[:-1] + 0.25 * points[1:]
        r = 0.25 * points[:-1] + 0.75 * points[1:]
        points = np.vstack([points[:1], np.stack([q, r], axis=1).reshape(-1, 2), points[-1:]])
    return points


def _resample(path: np.ndarray, n: int, max_length: float) -> np.ndarray:
    """`n` points at equal arc length along the first `max_length` metres of a polyline."""
    seg = np.linalg.norm(np.diff(path, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    if s[-1] < 1e-9:
        return np.repeat(path[:1], n, axis=0)
    t = np.linspace(0, min(s[-1], max_length), n)
    return np.stack([np.interp(t, s, path[:, k]) for k in range(2)], axis=1)


def _walk(polygon: np.ndarray, floor_boxes: list[OrientedObject], n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 2) smooth camera positions through free space (waypoints joined by clear straight
    segments, then corner-cut); falls back to standing at the most open spot."""
    clearance, centres = _clearance_map(polygon, floor_boxes)
    lo = centres[0, 0] - GRID / 2
    free = centres[clearance >= CAMERA_CLEARANCE + 0.15]
    if len(free) == 0:
        free = centres[clearance >= CAMERA_CLEARANCE]
    if len(free) == 0:
        raise LayoutError("no free floor space for the camera")
    for tries in range(200):
        count = 4 if tries < 100 else 2
        pick = free[rng.choice(len(free), size=min(count, len(free)), replace=False)]
        order = [0]
        while len(order) < len(pick):  # nearest-neighbour tour: no criss-crossing the room
            rest = [i for i in range(len(pick)) if i not in order]
            order.append(min(rest, key=lambda i: np.linalg.norm(pick[i] - pick[order[-1]])))
        way = pick[order]
        if np.sum(np.linalg.norm(np.diff(way, axis=0), axis=1)) < 1.0:
            continue
        if not all(_segment_clear(way[i], way[i + 1], clearance, lo, CAMERA_CLEARANCE) for i in range(len(way) - 1)):
            continue
        path = _resample(_chaikin(way), n, WALK_SPEED / FRAME_RATE_HZ * (n - 1))
        if all(_segment_clear(path[i], path[i + 1], clearance, lo, CAMERA_CLEARANCE - GRID) for i in range(n - 1)):
            return path
    best = centres.reshape(-1, 2)[int(np.argmax(clearance))]
    return np.repeat(best[None], n, axis=0)


def camera_pose(position: np.ndarray, yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Camera-to-world pose (OpenCV axes) looking along `yaw` about +z, `pitch` up, then `roll`."""
    forward = np.array([np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), np.sin(pitch)])
    right = np.cross(forward, UP)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    c, s = np.cos(roll), np.sin(roll)
    pose = np.eye(4)
    pose[:3, 0] = c * right + s * down
    pose[:3, 1] = -s * right + c * down
    pose[:3, 2] = forward
    pose[:3, 3] = position
    return pose


def _slow_down(angles: np.ndarray, max_step: float) -> np.ndarray:
    """Smooth an unwrapped angle sequence until no frame-to-frame change exceeds `max_step`."""
    sigma = 2.0
    smooth = gaussian_filter1d(angles, sigma, mode="nearest")
    while len(angles) > 1 and np.abs(np.diff(smooth)).max() > max_step and sigma < 4 * len(angles):
        sigma *= 1.5
        smooth = gaussian_filter1d(angles, sigma, mode="nearest")
    return smooth


def _look_targets(objects: list[OrientedObject], xy: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 3) point the camera looks at: it pans at a steady angular pace through the centres of
    3-6 objects that are neighbours in bearing from the walk's middle (preferring objects over
    1.2 m away, which fill less of the view), so the video sweeps one way across the room."""
    centres = np.array([o.center for o in objects])
    mid = xy.mean(axis=0)
    far = np.linalg.norm(centres[:, :2] - mid, axis=1) > 1.2
    if far.sum() >= 3:
        centres = centres[far]
    bearing = np.arctan2(centres[:, 1] - mid[1], centres[:, 0] - mid[0])
    order = np.argsort(bearing)
    k = min(len(order), int(rng.integers(3, 7)))
    pick = np.roll(order, -int(rng.integers(len(order))))[:k]
    if rng.random() < 0.5:
        pick = pick[::-1]
    pan = np.concatenate([[0.0], np.cumsum(np.abs(np.diff(np.unwrap(bearing[pick])))) + 1e-6 * np.arange(1, k)])
    s = np.linspace(0.0, pan[-1], n)
    return np.stack([np.interp(s, pan, centres[pick, c]) for c in range(3)], axis=1)


def _camera_walk(polygon: np.ndarray, objects: list[OrientedObject], floor_boxes: list[OrientedObject], n: int,
                 rng: np.random.Generator) -> np.ndarray:
    """(n, 4, 4) poses: eye height 1.3-1.6 m, looking at objects with a slight left-right sweep,
    gentle downward pitch and roll, all smooth in time."""
    xy = _walk(polygon, floor_boxes, n, rng)
    t = np.linspace(0.0, 1.0, n)
    height = rng.uniform(1.3, 1.6) + 0.03 * np.sin(2 * np.pi * rng.uniform(2, 4) * t)
    target = _look_targets(objects, xy, n, rng)
    to = target[:, :2] - xy
    yaw = _slow_down(np.unwrap(np.arctan2(to[:, 1], to[:, 0])), np.deg2rad(BASE_TURN_DEG))
    cycles = rng.uniform(0.7, 1.5)
    amplitude = min(np.deg2rad(rng.uniform(5, 15)), np.deg2rad(SWEEP_RATE_DEG) * (n - 1) / (2 * np.pi * cycles))
    yaw = yaw + amplitude * np.sin(2 * np.pi * cycles * t + rng.uniform(0, 2 * np.pi))
    down = np.arctan2(target[:, 2] - height, np.maximum(np.linalg.norm(to, axis=1), 0.5))
    pitch = _slow_down(np.clip(down, np.deg2rad(-25), np.deg2rad(-5)), np.deg2rad(1.0))
    roll = np.deg2rad(rng.uniform(1, 3) * np.sin(2 * np.pi * rng.uniform(0.5, 1.5) * t + rng.uniform(0, 2 * np.pi)))
    return np.stack([
        camera_pose(np.array([xy[i, 0], xy[i, 1], height[i]]), yaw[i], pitch[i], roll[i]) for i in range(n)
    ])


def intrinsics_for(width: int, height: int, hfov_deg: float) -> np.ndarray:
    """Square-pixel pinhole K with the principal point at the image centre (pixel centres at integers)."""
    f = (width / 2) / np.tan(np.deg2rad(hfov_deg) / 2)
    return np.array([[f, 0.0, (width - 1) / 2], [0.0, f, (height - 1) / 2], [0.0, 0.0, 1.0]])


def generate_room(scene_id: str, seed: int, num_frames: int = 64, width: int = 320, height: int = 240) -> SynthRoom:
    """Lay out one room and its camera walk; identical output for identical arguments."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x55AA]))
    for _ in range(50):
        polygon = _floor_plan(rng)
        wall_height = float(rng.uniform(2.5, 3.0))
        placed = _layout(polygon, wall_height, rng)
        if len(placed) < MIN_OBJECTS:
            continue
        try:
            poses = _camera_walk(polygon, [o for o, _, _ in placed], [o for o, _, h in placed if h is None], num_frames, rng)
        except LayoutError:
            continue
        break
    else:
        raise LayoutError(f"could not lay out scene {scene_id} from seed {seed}")
    # Place the room in the world at a random heading and offset (z stays up).
    world = np.eye(4)
    world[:3, :3] = _rot_z(rng.uniform(-np.pi, np.pi))
    world[:2, 3] = rng.uniform(-5, 5, size=2)
    polygon_w = polygon @ world[:2, :2].T + world[:2, 3]
    counts: dict[str, int] = {}
    objects = []
    for obj, cat, host in placed:
        k = counts.get(cat.label, 0)
        counts[cat.label] = k + 1
        color = cat.colors[int(rng.integers(len(cat.colors)))]
        objects.append(SynthObject(
            obj=OrientedObject(
                instance_id=instance_id(cat.label, k),
                label=cat.label,
                center=world[:3, :3] @ obj.center + world[:3, 3],
                size=obj.size.copy(),
                rotation=world[:3, :3] @ obj.rotation,
            ),
            category=cat,
            color=_jitter(color, rng),
            host=host,
        ))
    r, g, b = WALL_COLORS[int(rng.integers(len(WALL_COLORS)))]
    wr, wg, wb = (float(c) for c in rng.uniform([0.45, 0.30, 0.18], [0.75, 0.58, 0.40]))
    return SynthRoom(
        scene_id=scene_id,
        floor_polygon=polygon_w,
        wall_height=wall_height,
        wall_color=(r, g, b),
        floor_colors=((wr, wg, wb), (0.85 * wr, 0.85 * wg, 0.85 * wb)),
        objects=objects,
        poses=np.einsum("ij,fjk->fik", world, poses),
        intrinsics=intrinsics_for(width, height, float(rng.uniform(60, 75))),
        image_size=(height, width),
        timestamps=np.arange(num_frames) / FRAME_RATE_HZ,
    )

