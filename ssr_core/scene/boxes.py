"""7-DoF boxes ``[x, y, z, length, width, height, yaw]`` in a z-up frame.

Centre in metres; extents along the box's own x, y, z axes; yaw in radians about +z
(right-hand rule), wrapped to (-pi, pi]. Arrays are float64 with a trailing axis of 7.

Pairwise functions (`bev_iou`, `iou_3d`, `center_distance`) take ``a`` (7,) or (N, 7) and
``b`` (7,) or (M, 7) and return (N, M), dropping the axis of a 1-D argument (two single boxes
give a 0-d array), like ``np.dot``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

# Local corner signs (length, width) in counter-clockwise order seen from above (+z).
_BEV_SIGNS = np.array([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])  # (4, 2)
# Pairs of boxes processed at once by the IoU kernels (bounds memory to ~20 MB).
_IOU_CHUNK = 50_000


def wrap_angle(angle: ArrayLike) -> np.ndarray:
    """Wrap angles in radians to (-pi, pi]; pi maps to pi and -pi to pi."""
    a = np.asarray(angle, dtype=np.float64)
    w = a - 2.0 * np.pi * np.ceil((a - np.pi) / (2.0 * np.pi))
    # Guard the two ends against rounding in the line above.
    w = np.where(w > np.pi, w - 2.0 * np.pi, w)
    return np.where(w <= -np.pi, w + 2.0 * np.pi, w)


def rotation_z(yaw: ArrayLike) -> np.ndarray:
    """Rotations about +z: (...,) angles -> (..., 3, 3)."""
    t = np.asarray(yaw, dtype=np.float64)
    c, s = np.cos(t), np.sin(t)
    zero, one = np.zeros_like(t), np.ones_like(t)
    return np.stack([c, -s, zero, s, c, zero, zero, zero, one], axis=-1).reshape(t.shape + (3, 3))


def rotation_from_euler(euler: ArrayLike) -> np.ndarray:
    """Rotation matrices from ``[roll, pitch, yaw]`` (..., 3) -> (..., 3, 3).

    Convention: ``R = Rz(yaw) @ Ry(pitch) @ Rx(roll)``, i.e. intrinsic z-y'-x'' (yaw, then pitch,
    then roll about the moving axes), equal to extrinsic x-y-z; the ROS/aerospace convention and
    ``scipy.spatial.transform.Rotation.from_euler("ZYX", [yaw, pitch, roll])``.
    """
    e = np.asarray(euler, dtype=np.float64)
    if e.shape[-1:] != (3,):
        raise ValueError(f"euler must have a trailing axis of 3 (roll, pitch, yaw), got shape {e.shape}")
    cr, sr = np.cos(e[..., 0]), np.sin(e[..., 0])
    cp, sp = np.cos(e[..., 1]), np.sin(e[..., 1])
    cy, sy = np.cos(e[..., 2]), np.sin(e[..., 2])
    rows = [
        cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr,
        sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr,
        -sp, cp * sr, cp * cr,
    ]  # fmt: skip
    return np.stack(rows, axis=-1).reshape(e.shape[:-1] + (3, 3))


def box7_from_oriented(center: ArrayLike, size: ArrayLike, rotation: ArrayLike) -> np.ndarray:
    """Drop roll and pitch of oriented boxes given in a z-up frame, keeping their extents.

    center (..., 3), size (..., 3) extents along the box axes, rotation (..., 3, 3) frame-from-box
    (columns are the box axes) -> (..., 7).

    Rule: the box axis most aligned with +z (largest ``|axis . z|``, first index on ties) becomes
    the height axis; the next two axes in cyclic order give length and width, so a box whose
    x axis points up has ``length = size[1], width = size[2], height = size[0]``. Yaw is the angle
    of the rotation nearest (2-D polar decomposition) to the bird's-eye projections of the length
    axis and of the width axis (sign-flipped when the height axis points down, which keeps the
    pair right-handed); for a yaw-only rotation it is exactly that yaw. The projection never
    degenerates: the height axis has ``|axis . z| >= 1/sqrt(3)``.
    """
    c = np.asarray(center, dtype=np.float64)
    s = np.asarray(size, dtype=np.float64)
    r = np.asarray(rotation, dtype=np.float64)
    if c.shape[-1:] != (3,) or s.shape[-1:] != (3,) or r.shape[-2:] != (3, 3):
        raise ValueError(
            f"expected center (...,3), size (...,3), rotation (...,3,3); got {c.shape}, {s.shape}, {r.shape}"
        )
    axes = np.swapaxes(r, -1, -2)  # (..., 3 box axes, 3 components)
    up_dot = axes[..., 2]  # (..., 3)
    h = np.argmax(np.abs(up_dot), axis=-1)  # (...,)
    l_idx, w_idx = (h + 1) % 3, (h + 2) % 3
    ex = np.take_along_axis(axes, l_idx[..., None, None], axis=-2)[..., 0, :2]  # (..., 2)
    ey = np.take_along_axis(axes, w_idx[..., None, None], axis=-2)[..., 0, :2]
    sign = np.where(np.take_along_axis(up_dot, h[..., None], axis=-1)[..., 0] < 0.0, -1.0, 1.0)
    ey = ey * sign[..., None]
    yaw = np.arctan2(ex[..., 1] - ey[..., 0], ex[..., 0] + ey[..., 1])
    sizes = np.stack(
        [np.take_along_axis(s, i[..., None], axis=-1)[..., 0] for i in (l_idx, w_idx, h)], axis=-1
    )
    return np.concatenate([c, sizes, wrap_angle(yaw)[..., None]], axis=-1)


def box7_from_euler(center: ArrayLike, size: ArrayLike, euler: ArrayLike) -> np.ndarray:
    """`box7_from_oriented` for ``[roll, pitch, yaw]`` angles (see `rotation_from_euler`)."""
    return box7_from_oriented(center, size, rotation_from_euler(euler))


def box7_to_oriented(boxes: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(..., 7) -> centre (..., 3), size (..., 3), frame-from-box rotation (..., 3, 3)."""
    b = _check_boxes(boxes)
    return b[..., 0:3].copy(), b[..., 3:6].copy(), rotation_z(b[..., 6])


def bev_corners(boxes: ArrayLike) -> np.ndarray:
    """Bird's-eye corners (..., 4, 2), counter-clockwise seen from above, starting at (+l/2, +w/2)."""
    b = _check_boxes(boxes)
    local = _BEV_SIGNS * (0.5 * b[..., None, 3:5])  # (..., 4, 2)
    c, s = np.cos(b[..., 6])[..., None], np.sin(b[..., 6])[..., None]
    x = c * local[..., 0] - s * local[..., 1] + b[..., None, 0]
    y = s * local[..., 0] + c * local[..., 1] + b[..., None, 1]
    return np.stack([x, y], axis=-1)


def box7_corners(boxes: ArrayLike) -> np.ndarray:
    """Corners (..., 8, 3): the bottom face then the top face, each ordered as `bev_corners`."""
    b = _check_boxes(boxes)
    xy = bev_corners(b)  # (..., 4, 2)
    z0 = (b[..., 2] - 0.5 * b[..., 5])[..., None, None] * np.ones(xy.shape[:-1] + (1,))
    z1 = z0 + b[..., 5][..., None, None]
    return np.concatenate([np.concatenate([xy, z0], -1), np.concatenate([xy, z1], -1)], axis=-2)


def center_distance(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Pairwise 3-D distance between box centres, (N, M) (see the module docstring for shapes)."""
    (pa, sa), (pb, sb) = _as_2d(a), _as_2d(b)
    d = np.linalg.norm(pa[:, None, :3] - pb[None, :, :3], axis=-1)
    return _squeeze(d, sa, sb)


def bev_iou(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Pairwise bird's-eye IoU of the rotated footprints, (N, M); 0 where the union is empty."""
    (pa, sa), (pb, sb) = _as_2d(a), _as_2d(b)
    inter = _pairwise_bev_intersection(pa, pb)
    area_a = (pa[:, 3] * pa[:, 4])[:, None]
    area_b = (pb[:, 3] * pb[:, 4])[None, :]
    return _squeeze(_ratio(inter, area_a + area_b - inter), sa, sb)


def iou_3d(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Pairwise 3-D IoU of yaw-only boxes, (N, M): footprint intersection x height overlap.

    Exact for 7-DoF boxes because both are prisms along z. 0 where the union is empty.
    """
    (pa, sa), (pb, sb) = _as_2d(a), _as_2d(b)
    inter_bev = _pairwise_bev_intersection(pa, pb)
    top = np.minimum((pa[:, 2] + 0.5 * pa[:, 5])[:, None], (pb[:, 2] + 0.5 * pb[:, 5])[None, :])
    bottom = np.maximum((pa[:, 2] - 0.5 * pa[:, 5])[:, None], (pb[:, 2] - 0.5 * pb[:, 5])[None, :])
    inter = inter_bev * np.clip(top - bottom, 0.0, None)
    vol_a = np.prod(pa[:, 3:6], axis=1)[:, None]
    vol_b = np.prod(pb[:, 3:6], axis=1)[None, :]
    return _squeeze(_ratio(inter, vol_a + vol_b - inter), sa, sb)


def convex_intersection_area(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Area of the intersection of convex counter-clockwise quadrilaterals, (K, 4, 2) x2 -> (K,).

    Written by hand rather than with shapely (not a dependency) or
    ``scipy.spatial.HalfspaceIntersection`` (one Qhull call per pair, needs an interior point and
    fails on empty or degenerate intersections): this kernel is vectorised over all pairs. The
    intersection polygon's vertices are the corners of each quad inside the other plus the
    edge-edge crossings; sorted by angle about their mean they are its boundary, and the
    shoelace formula gives the area. Geometry is normalised per pair, so tolerances are relative.
    """
    k = p.shape[0]
    origin = p.mean(axis=1, keepdims=True)  # (K, 1, 2)
    scale = np.maximum(np.abs(np.concatenate([p, q], axis=1) - origin).max(axis=(1, 2)), 1e-300)
    p = (p - origin) / scale[:, None, None]
    q = (q - origin) / scale[:, None, None]
    eps = 1e-9

    def inside(pts: np.ndarray, poly: np.ndarray) -> np.ndarray:
        # pts (K, 4, 2) against every edge of poly (K, 4, 2) -> (K, 4) bool
        e0, e1 = poly, np.roll(poly, -1, axis=1)
        edge = (e1 - e0)[:, None, :, :]  # (K, 1, 4, 2)
        rel = pts[:, :, None, :] - e0[:, None, :, :]  # (K, 4, 4, 2)
        cross = edge[..., 0] * rel[..., 1] - edge[..., 1] * rel[..., 0]
        return np.all(cross >= -eps, axis=2)

    r = (np.roll(p, -1, axis=1) - p)[:, :, None, :]  # (K, 4, 1, 2) edges of p
    s = (np.roll(q, -1, axis=1) - q)[:, None, :, :]  # (K, 1, 4, 2) edges of q
    qp = q[:, None, :, :] - p[:, :, None, :]  # (K, 4, 4, 2)
    denom = r[..., 0] * s[..., 1] - r[..., 1] * s[..., 0]  # (K, 4, 4)
    ok = np.abs(denom) > 1e-12
    safe = np.where(ok, denom, 1.0)
    t = (qp[..., 0] * s[..., 1] - qp[..., 1] * s[..., 0]) / safe
    u = (qp[..., 0] * r[..., 1] - qp[..., 1] * r[..., 0]) / safe
    ok &= (t >= -eps) & (t <= 1 + eps) & (u >= -eps) & (u <= 1 + eps)
    crossings = (p[:, :, None, :] + t[..., None] * r).reshape(k, 16, 2)

    pts = np.concatenate([p, q, crossings], axis=1)  # (K, 24, 2)
    valid = np.concatenate([inside(p, q), inside(q, p), ok.reshape(k, 16)], axis=1)  # (K, 24)
    n = valid.sum(axis=1)
    mean = (pts * valid[..., None]).sum(axis=1) / np.maximum(n, 1)[:, None]
    angle = np.arctan2(pts[..., 1] - mean[:, None, 1], pts[..., 0] - mean[:, None, 0])
    order = np.argsort(np.where(valid, angle, np.inf), axis=1, kind="stable")
    pts = np.take_along_axis(pts, order[..., None], axis=1)
    # Pad with the last valid vertex: the padding adds zero-area terms and the closing edge.
    last = np.take_along_axis(pts, np.maximum(n - 1, 0)[:, None, None], axis=1)
    pts = np.where((np.arange(24)[None, :] < n[:, None])[..., None], pts, last)
    nxt = np.roll(pts, -1, axis=1)
    area = 0.5 * np.abs((pts[..., 0] * nxt[..., 1] - pts[..., 1] * nxt[..., 0]).sum(axis=1))
    return np.where(n >= 3, area, 0.0) * scale**2


def _pairwise_bev_intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 7), (M, 7) -> (N, M) footprint intersection areas, chunked over pairs."""
    ca, cb = bev_corners(a), bev_corners(b)  # (N, 4, 2), (M, 4, 2)
    ia = np.repeat(np.arange(len(a)), len(b))  # (N*M,) pair -> row of a
    ib = np.tile(np.arange(len(b)), len(a))  # (N*M,) pair -> row of b
    out = np.zeros(ia.shape[0])
    # Pairs whose bounding circles are apart cannot intersect: skip them.
    radius_a = 0.5 * np.hypot(a[:, 3], a[:, 4])
    radius_b = 0.5 * np.hypot(b[:, 3], b[:, 4])
    near = np.hypot(a[ia, 0] - b[ib, 0], a[ia, 1] - b[ib, 1]) <= radius_a[ia] + radius_b[ib]
    idx = np.flatnonzero(near)
    for start in range(0, idx.shape[0], _IOU_CHUNK):
        sel = idx[start : start + _IOU_CHUNK]
        out[sel] = convex_intersection_area(ca[ia[sel]], cb[ib[sel]])
    return out.reshape(len(a), len(b))


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """IoU from intersection and union, clipped to [0, 1] against rounding; 0 for an empty union."""
    return np.clip(np.where(den > 0.0, num / np.where(den > 0.0, den, 1.0), 0.0), 0.0, 1.0)


def _check_boxes(boxes: ArrayLike) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64)
    if b.shape[-1:] != (7,):
        raise ValueError(f"7-DoF boxes must have a trailing axis of 7, got shape {b.shape}")
    return b


def _as_2d(boxes: ArrayLike) -> tuple[np.ndarray, bool]:
    b = _check_boxes(boxes)
    if b.ndim not in (1, 2):
        raise ValueError(f"expected (7,) or (N, 7) boxes, got shape {b.shape}")
    return np.atleast_2d(b), b.ndim == 1


def _squeeze(m: np.ndarray, single_a: bool, single_b: bool) -> np.ndarray:
    if single_a:
        m = m[0]
    if single_b:
        m = m[..., 0]
    return m
