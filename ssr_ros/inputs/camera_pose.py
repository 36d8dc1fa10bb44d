"""Camera poses at a window's frames: the camera_pose topic's history, and where a window starts.

A window's canonical frame sits on its first frame's camera, and every box the model predicts is
relative to that camera, so a pose from another time silently moves the whole window. Poses are
therefore interpolated between the two samples around a stamp, as tf2 does (slerp for rotation,
lerp for translation), never taken from the nearest sample and never extrapolated. When the first
frame's pose is not known, the window starts at the first frame whose pose is (those frames are
left out, so the model's canonical frame and the published one agree), and the gap is reported.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

PoseLookup = Callable[[int], "np.ndarray | None"]  # stamp (ns) -> fixed_from_camera (4, 4) or None


def matrix_from_pose(position, orientation) -> np.ndarray:
    """4x4 from a geometry_msgs position/translation (x, y, z) and quaternion (x, y, z, w)."""
    T = np.eye(4)
    T[:3, :3] = Rotation.from_quat([orientation.x, orientation.y, orientation.z, orientation.w]).as_matrix()
    T[:3, 3] = [position.x, position.y, position.z]
    return T


def pose_matrix_or_none(position, orientation) -> np.ndarray | None:
    """`matrix_from_pose` for untrusted input: None when a value is not finite or the quaternion is
    (near) zero; other quaternions are normalised."""
    values = np.array([position.x, position.y, position.z, orientation.x, orientation.y, orientation.z,
                       orientation.w], dtype=np.float64)
    if not np.all(np.isfinite(values)) or np.linalg.norm(values[3:]) < 1e-6:
        return None
    return matrix_from_pose(position, orientation)


def interpolate_pose(t0_ns: int, T0: np.ndarray, t1_ns: int, T1: np.ndarray, t_ns: int) -> np.ndarray:
    """Pose at t0 <= t <= t1: rotation slerped, translation lerped (tf2's rule)."""
    if t1_ns == t0_ns:
        return T0.copy()
    a = (t_ns - t0_ns) / (t1_ns - t0_ns)
    T = np.eye(4)
    T[:3, :3] = Slerp([0.0, 1.0], Rotation.from_matrix(np.stack([T0[:3, :3], T1[:3, :3]])))(a).as_matrix()
    T[:3, 3] = (1.0 - a) * T0[:3, 3] + a * T1[:3, 3]
    return T


class PoseHistory:
    """Time-indexed camera poses from a PoseStamped topic, kept sorted whatever their arrival order."""

    def __init__(self, keep_s: float):
        self.keep_ns = int(keep_s * 1e9)
        self._stamps: list[int] = []
        self._poses: list[np.ndarray] = []
        self._lock = threading.Lock()

    def add(self, stamp_ns: int, camera_to_fixed: np.ndarray) -> None:
        """Insert in stamp order (a repeated stamp replaces its pose); drop what is older than keep_s."""
        with self._lock:
            i = bisect.bisect_left(self._stamps, stamp_ns)
            if i < len(self._stamps) and self._stamps[i] == stamp_ns:
                self._poses[i] = camera_to_fixed
            else:
                self._stamps.insert(i, stamp_ns)
                self._poses.insert(i, camera_to_fixed)
            cut = bisect.bisect_left(self._stamps, self._stamps[-1] - self.keep_ns)
            del self._stamps[:cut], self._poses[:cut]

    def __len__(self) -> int:
        return len(self._stamps)

    def at(self, stamp_ns: int, max_age_s: float) -> np.ndarray | None:
        """The pose at `stamp_ns`: a sample at that stamp, or interpolated between the samples just
        before and just after it when both are at most `max_age_s` away; None otherwise."""
        max_age_ns = max_age_s * 1e9
        with self._lock:
            i = bisect.bisect_left(self._stamps, stamp_ns)
            if i < len(self._stamps) and self._stamps[i] == stamp_ns:
                return self._poses[i]
            if i == 0 or i == len(self._stamps):  # nothing on one side: tf2 would not extrapolate either
                return None
            t0, t1 = self._stamps[i - 1], self._stamps[i]
            if stamp_ns - t0 > max_age_ns or t1 - stamp_ns > max_age_ns:
                return None
            return interpolate_pose(t0, self._poses[i - 1], t1, self._poses[i], stamp_ns)


@dataclass(frozen=True)
class WindowPose:
    """Where a window starts and the camera pose there."""

    first_index: int  # frames before this one had no known pose and are left out of the window
    pose: np.ndarray | None  # fixed_from_camera at stamps[first_index]; None: no pose known
    source: str  # "tf", "camera_pose" or "level_camera" (no pose)
    note: str  # "" when the pose at the window's first stamp was known; otherwise what was done


def resolve_window_pose(stamps_ns: Sequence[int], sources: Sequence[tuple[str, PoseLookup]],
                        min_frames: int) -> WindowPose:
    """The first frame whose pose a source knows (sources in fallback order), as long as at least
    `min_frames` frames are left from it; otherwise no pose (level-camera placement), with a note
    when pose sources exist but knew none of the frames."""
    if not sources:
        return WindowPose(0, None, "level_camera", "")
    names = "/".join(name for name, _ in sources)
    for index, stamp in enumerate(stamps_ns[: max(0, len(stamps_ns) - min_frames + 1)]):
        for name, lookup in sources:
            pose = lookup(stamp)
            if pose is not None:
                note = "" if index == 0 else (
                    f"no camera pose ({names}) at the window's first {index} frame(s); the window starts at "
                    f"frame {index} (stamp {stamp} ns), the first whose pose is known")
                return WindowPose(index, pose, name, note)
    return WindowPose(0, None, "level_camera", (
        f"no camera pose ({names}) at any frame that could start the window (window.min_frames {min_frames}): "
        "canonical frame placed relative to the camera frame (level-camera assumption)"))


def frame_poses(stamps_ns: Sequence[int], lookup: PoseLookup) -> np.ndarray | None:
    """fixed_from_camera (F, 4, 4) at every stamp from one source, or None when any is unknown
    (the object map then counts no misses for the window rather than guess a camera)."""
    poses = []
    for stamp in stamps_ns:
        pose = lookup(stamp)
        if pose is None:
            return None
        poses.append(pose)
    return np.stack(poses) if poses else None
