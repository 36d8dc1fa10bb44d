"""Small geometric predicates the data engine needs: oriented-box overlap, polygons, projection.

These work on `OrientedObject` (9-DoF) boxes in any frame, so they serve the synthetic layout
(no interpenetration), the converters (visibility) and the tests alike.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import ConvexHull, QhullError

from ssr_core.data.annotations import OrientedObject

# Unit-cube corner signs, x fastest: (-,-,-), (+,-,-), (-,+,-), ...
_CORNER_SIGNS = np.array([[(i >> 0) & 1, (i >> 1) & 1, (i >> 2) & 1] for i in range(8)], dtype=np.float64) * 2 - 1


def box_corners(obj: OrientedObject) -> np.ndarray:
    """(8, 3) world corners of an oriented box."""
    return obj.center + (_CORNER_SIGNS * (obj.size / 2)) @ obj.rotation.T


def box_sample_points(obj: OrientedObject, steps: int = 3) -> np.ndarray:
    """(steps**3, 3) points on a regular grid spanning the box (corners, face and edge centres, centre)."""
    ticks = np.linspace(-0.5, 0.5, steps)
    grid = np.stack(np.meshgrid(ticks, ticks, ticks, indexing="ij"), axis=-1).reshape(-1, 3)
    return obj.center + (grid * obj.size) @ obj.rotation.T


def boxes_overlap(a: OrientedObject, b: OrientedObject, tolerance: float = 1e-3) -> bool:
    """True when two oriented boxes interpenetrate by more than `tolerance` metres.

    Separating-axis test over the 15 candidate axes; touching faces (a lamp standing on a
    table) are not an overlap.
    """
    axes = [a.rotation[:, i] for i in range(3)] + [b.rotation[:, i] for i in range(3)]
    axes += [np.cross(a.rotation[:, i], b.rotation[:, j]) for i in range(3) for j in range(3)]
    d = b.center - a.center
    for axis in axes:
        norm = np.linalg.norm(axis)
        if norm < 1e-9:  # parallel edges: covered by the face axes
            continue
        axis = axis / norm
        ra = np.sum(np.abs(a.rotation.T @ axis) * a.size / 2)
        rb = np.sum(np.abs(b.rotation.T @ axis) * b.size / 2)
        if abs(d @ axis) >= ra + rb - tolerance:
            return False
    return True


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """(N,) bool, even-odd rule; `polygon` is (K, 2), `points` (N, 2)."""
    x, y = points[:, 0:1], points[:, 1:2]
    x0, y0 = polygon[:, 0], polygon[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    crosses = (y0 > y) != (y1 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_at = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
    return np.sum(crosses & (x < x_at), axis=1) % 2 == 1


def polygon_area(polygon: np.ndarray) -> float:
    """Unsigned area of a simple (K, 2) polygon (shoelace)."""
    x, y = polygon[:, 0], polygon[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def project(points: np.ndarray, pose: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World points -> (N, 2) pixel coordinates and (N,) camera depth (OpenCV axes, camera-to-world pose)."""
    cam = (points - pose[:3, 3]) @ pose[:3, :3]
    z = cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = (cam @ K.T)[:, :2] / z[:, None]
    return uv, z


def ray_box_interval(origin: np.ndarray, directions: np.ndarray, obj: OrientedObject) -> tuple[np.ndarray, np.ndarray]:
    """Entry and exit ray parameters of (N, 3) rays through an oriented box (entry > exit: miss)."""
    o = obj.rotation.T @ (origin - obj.center)
    d = directions @ obj.rotation
    half = obj.size / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (-half - o) / d
        t2 = (half - o) / d
    lo = np.nanmax(np.minimum(t1, t2), axis=1)
    hi = np.nanmin(np.maximum(t1, t2), axis=1)
    return lo, hi


def floor_outline(points_xy: np.ndarray, floor_z: float) -> np.ndarray:
    """(K, 3) counter-clockwise convex hull of floor-plane points at height `floor_z`.

    Converters use it where a dataset has no room outline; it over-covers non-convex rooms.
    """
    points_xy = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    points_xy = points_xy[np.all(np.isfinite(points_xy), axis=1)]
    try:
        hull = ConvexHull(points_xy)  # 2-D hull vertices come counter-clockwise
    except (QhullError, ValueError):
        raise ValueError(f"cannot outline a floor from {len(points_xy)} points: need three not on one line") from None
    xy = points_xy[hull.vertices]
    return np.column_stack([xy, np.full(len(xy), floor_z)])
