"""Canonical frame of a window (paper Sec. 3.3).

Origin at the optical centre of the window's first camera; +z up (against gravity); +x the first
camera's optical axis projected on the ground plane; +y = z x x. It is built from the first
camera-to-world pose (OpenCV camera axes: x right, y down, z forward) in any world frame and that
world's up vector, and maps points, poses and boxes between the world and canonical frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from ssr_core.scene.boxes import box7_from_oriented, box7_to_oriented

# An optical axis closer than this to vertical has no usable ground projection.
MIN_AXIS_TILT_DEG = 1.0


class FrameError(ValueError):
    """Invalid input for a canonical frame (bad shapes, non-finite values, non-rigid transform)."""


class VerticalOpticalAxisError(FrameError):
    """The first camera looks within 1 degree of straight up or down: +x is undefined."""


@dataclass(frozen=True, eq=False)
class CanonicalFrame:
    """A window's canonical frame, held as the rigid transform ``world_from_canonical`` (4, 4)."""

    world_from_canonical: np.ndarray  # (4, 4) rotation columns are the canonical axes in world

    def __post_init__(self) -> None:
        m = np.array(self.world_from_canonical, dtype=np.float64)
        if m.shape != (4, 4) or not np.all(np.isfinite(m)):
            raise FrameError(f"world_from_canonical must be a finite (4, 4) matrix, got shape {m.shape}")
        r = m[:3, :3]
        if (
            not np.allclose(r.T @ r, np.eye(3), atol=1e-6)
            or np.linalg.det(r) < 0
            or not np.allclose(m[3], [0.0, 0.0, 0.0, 1.0])
        ):
            raise FrameError("world_from_canonical must be a rigid transform (rotation with det +1)")
        m.flags.writeable = False
        object.__setattr__(self, "world_from_canonical", m)

    @classmethod
    def from_first_pose(cls, camera_to_world: ArrayLike, up: ArrayLike) -> CanonicalFrame:
        """Frame of a window from its first camera-to-world pose (4, 4) and the world's up (3,).

        Raises `VerticalOpticalAxisError` when the optical axis is within 1 degree of vertical.
        """
        pose = np.asarray(camera_to_world, dtype=np.float64)
        u = np.asarray(up, dtype=np.float64)
        if pose.shape != (4, 4) or u.shape != (3,):
            raise FrameError(f"expected a (4, 4) pose and a (3,) up vector, got {pose.shape} and {u.shape}")
        if not (np.all(np.isfinite(pose)) and np.all(np.isfinite(u))) or np.linalg.norm(u) == 0.0:
            raise FrameError("pose and up vector must be finite and up non-zero")
        z = u / np.linalg.norm(u)
        optical = pose[:3, 2]
        norm = np.linalg.norm(optical)
        if norm == 0.0:
            raise FrameError("camera pose has a zero optical axis (third rotation column)")
        horizontal = optical / norm - np.dot(optical / norm, z) * z
        tilt = np.degrees(np.arcsin(min(1.0, float(np.linalg.norm(horizontal)))))
        if tilt < MIN_AXIS_TILT_DEG:
            raise VerticalOpticalAxisError(
                f"first camera's optical axis is {tilt:.3f} deg from vertical (< {MIN_AXIS_TILT_DEG} deg): "
                "its projection on the ground plane, the canonical +x, is undefined"
            )
        x = horizontal / np.linalg.norm(horizontal)
        m = np.eye(4)
        m[:3, :3] = np.stack([x, np.cross(z, x), z], axis=1)
        m[:3, 3] = pose[:3, 3]
        return cls(m)

    @classmethod
    def from_window(cls, poses: ArrayLike, up: ArrayLike) -> CanonicalFrame:
        """Frame of a window from all its camera-to-world poses (N, 4, 4); uses the first."""
        p = np.asarray(poses, dtype=np.float64)
        if p.ndim != 3 or p.shape[0] == 0:
            raise FrameError(f"expected (N, 4, 4) poses with N >= 1, got shape {p.shape}")
        return cls.from_first_pose(p[0], up)

    @property
    def canonical_from_world(self) -> np.ndarray:
        """(4, 4) inverse of ``world_from_canonical`` (rigid, so transposed rotation)."""
        r, t = self.world_from_canonical[:3, :3], self.world_from_canonical[:3, 3]
        m = np.eye(4)
        m[:3, :3] = r.T
        m[:3, 3] = -r.T @ t
        return m

    def points_to_canonical(self, points: ArrayLike) -> np.ndarray:
        """World points (..., 3) -> canonical (..., 3)."""
        return _apply(self.canonical_from_world, points)

    def points_to_world(self, points: ArrayLike) -> np.ndarray:
        """Canonical points (..., 3) -> world (..., 3)."""
        return _apply(self.world_from_canonical, points)

    def poses_to_canonical(self, poses: ArrayLike) -> np.ndarray:
        """Camera-to-world poses (..., 4, 4) -> camera-to-canonical (..., 4, 4)."""
        return self.canonical_from_world @ _poses(poses)

    def poses_to_world(self, poses: ArrayLike) -> np.ndarray:
        """Camera-to-canonical poses (..., 4, 4) -> camera-to-world (..., 4, 4)."""
        return self.world_from_canonical @ _poses(poses)

    def oriented_boxes_to_canonical(
        self, center: ArrayLike, size: ArrayLike, rotation: ArrayLike
    ) -> np.ndarray:
        """World oriented boxes (centre (..., 3), size (..., 3), world-from-box rotation (..., 3, 3))
        -> canonical 7-DoF boxes (..., 7), dropping roll and pitch (see `box7_from_oriented`)."""
        r = self.canonical_from_world[:3, :3] @ np.asarray(rotation, dtype=np.float64)
        return box7_from_oriented(self.points_to_canonical(center), size, r)

    def boxes_to_canonical(self, boxes: ArrayLike) -> np.ndarray:
        """World 7-DoF boxes (..., 7) -> canonical (..., 7), yaw updated.

        A world 7-DoF box has its yaw about the world's z axis; when the world's up is not +z use
        `oriented_boxes_to_canonical` instead (this method would re-project the tilted box).
        """
        center, size, rot = box7_to_oriented(boxes)
        return self.oriented_boxes_to_canonical(center, size, rot)

    def boxes_to_world(self, boxes: ArrayLike) -> np.ndarray:
        """Canonical 7-DoF boxes (..., 7) -> world 7-DoF boxes (..., 7), yaw about world z.

        Exact when the world's up is +z; otherwise roll and pitch relative to world z are dropped
        (use `box7_to_oriented` and transform centre and rotation to keep them).
        """
        center, size, rot = box7_to_oriented(boxes)
        r = self.world_from_canonical[:3, :3] @ rot
        return box7_from_oriented(self.points_to_world(center), size, r)


def _apply(transform: np.ndarray, points: ArrayLike) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64)
    if p.shape[-1:] != (3,):
        raise FrameError(f"points must have a trailing axis of 3, got shape {p.shape}")
    return p @ transform[:3, :3].T + transform[:3, 3]


def _poses(poses: ArrayLike) -> np.ndarray:
    p = np.asarray(poses, dtype=np.float64)
    if p.shape[-2:] != (4, 4):
        raise FrameError(f"poses must be (..., 4, 4), got shape {p.shape}")
    return p
