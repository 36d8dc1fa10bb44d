"""Per-frame object visibility for recorded datasets, where no segmentation render exists.

Rule: an object is visible in a frame when at least `min_points` of 27 points spread over its box
(corners, edge and face centres, centre) project inside the image in front of the camera and,
when the frame has a depth map, are not hidden behind the observed surface (point depth <=
observed depth + `tolerance`; pixels without depth do not veto). Without depth this is a plain
frustum test and objects behind walls count as visible.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ssr_core.data.annotations import OrientedObject
from ssr_core.data.geometry import box_sample_points, project

MIN_POINTS = 3
DEPTH_TOLERANCE = 0.1  # metres
NEAR = 0.1  # metres: points closer to the camera than this do not count

# (depth in metres (H', W'), its intrinsics) for a frame, or None when the frame has no depth.
DepthSource = Callable[[int], tuple[np.ndarray, np.ndarray] | None]


def visible_points(points: np.ndarray, pose: np.ndarray, K: np.ndarray, image_size: tuple[int, int],
                   depth: tuple[np.ndarray, np.ndarray] | None, tolerance: float = DEPTH_TOLERANCE) -> np.ndarray:
    """(N,) bool: which world points pass the frustum test and, with depth, the occlusion test."""
    h, w = image_size
    uv, z = project(points, pose, K)
    ok = (z > NEAR) & np.all(np.isfinite(uv), axis=1)
    ok &= (uv[:, 0] >= -0.5) & (uv[:, 0] < w - 0.5) & (uv[:, 1] >= -0.5) & (uv[:, 1] < h - 0.5)
    if depth is not None and ok.any():
        dmap, dK = depth
        duv, dz = project(points[ok], pose, dK)
        col = np.clip(np.round(duv[:, 0]).astype(int), 0, dmap.shape[1] - 1)
        row = np.clip(np.round(duv[:, 1]).astype(int), 0, dmap.shape[0] - 1)
        observed = dmap[row, col]
        ok[np.flatnonzero(ok)] = (observed <= 0) | (dz <= observed + tolerance)
    return ok


def projected_visibility(objects: Sequence[OrientedObject], poses: np.ndarray, intrinsics: np.ndarray,
                         image_size: tuple[int, int], depth: DepthSource | None = None,
                         min_points: int = MIN_POINTS) -> np.ndarray:
    """(F, M) visibility of every object in every frame by the rule above."""
    vis = np.zeros((len(poses), len(objects)), dtype=bool)
    samples = [box_sample_points(o) for o in objects]
    for f, pose in enumerate(poses):
        d = depth(f) if depth is not None else None
        for i, pts in enumerate(samples):
            vis[f, i] = visible_points(pts, pose, intrinsics[f], image_size, d).sum() >= min_points
    return vis


def visibility_rule(with_depth: bool) -> str:
    """Text stored in scene.json saying how visibility was decided."""
    test = f"not behind the depth map by more than {DEPTH_TOLERANCE} m" if with_depth else "frustum only (no depth)"
    return f"projection: >= {MIN_POINTS} of 27 box points inside the image, in front of the camera, {test}"
