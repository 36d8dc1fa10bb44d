"""Where the canonical frame sits: camera pose sources, their fallback order, and TF messages.

The canonical frame itself is defined by ssr_core.scene.canonical_frame (first camera pose + up vector); this
module only finds the camera pose of a window's first frame and writes transforms. Fallback order:
tf2 lookup (robots) -> camera_pose topic history -> level-camera assumption relative to the
camera frame. The chosen source is returned by name so the node can report it.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from geometry_msgs.msg import Quaternion, Transform, TransformStamped, Vector3
from scipy.spatial.transform import Rotation

from ssr_core.scene.canonical_frame import CanonicalFrame
from ssr_ros.outputs.messages import stamp_from_ns

# A level camera in OpenCV optical axes (x right, y down, z forward) has "up" along -y.
LEVEL_CAMERA_UP = np.array([0.0, -1.0, 0.0])


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


def transform_msg(T: np.ndarray, parent: str, child: str, stamp_ns: int) -> TransformStamped:
    q = Rotation.from_matrix(T[:3, :3]).as_quat()
    msg = TransformStamped()
    msg.header.frame_id = parent
    msg.header.stamp = stamp_from_ns(stamp_ns)
    msg.child_frame_id = child
    msg.transform = Transform(
        translation=Vector3(x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3])),
        rotation=Quaternion(x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])),
    )
    return msg


class PoseHistory:
    """Time-indexed camera poses (from a PoseStamped topic); nearest-stamp lookup, bounded by age."""

    def __init__(self, keep_s: float):
        self.keep_ns = int(keep_s * 1e9)
        self._stamps: list[int] = []
        self._poses: list[np.ndarray] = []
        self._lock = threading.Lock()

    def add(self, stamp_ns: int, camera_to_fixed: np.ndarray) -> None:
        with self._lock:
            i = bisect.bisect(self._stamps, stamp_ns)
            self._stamps.insert(i, stamp_ns)
            self._poses.insert(i, camera_to_fixed)
            cut = bisect.bisect_left(self._stamps, self._stamps[-1] - self.keep_ns)
            del self._stamps[:cut], self._poses[:cut]

    def __len__(self) -> int:
        return len(self._stamps)

    def nearest(self, stamp_ns: int, max_age_s: float) -> np.ndarray | None:
        with self._lock:
            if not self._stamps:
                return None
            i = bisect.bisect_left(self._stamps, stamp_ns)
            best = min((j for j in (i - 1, i) if 0 <= j < len(self._stamps)),
                       key=lambda j: abs(self._stamps[j] - stamp_ns))
            if abs(self._stamps[best] - stamp_ns) > max_age_s * 1e9:
                return None
            return self._poses[best]


@dataclass(frozen=True)
class CanonicalPlacement:
    """The canonical frame of one window: `parent_from_canonical` in `parent` (the fixed frame, or
    the camera frame under the level-camera assumption), and which pose source decided it."""

    parent: str
    parent_from_canonical: np.ndarray  # (4, 4)
    source: str  # "tf", "camera_pose" or "level_camera"


def place_canonical(
    stamp_ns: int,
    camera_frame: str,
    fixed_frame: str,
    up: np.ndarray,
    tf_lookup: Callable[[int], np.ndarray | None] | None,
    history: PoseHistory | None,
    max_age_s: float,
) -> CanonicalPlacement:
    """Camera pose at `stamp_ns` by the fallback order, then the canonical frame from ssr_core.scene.canonical_frame.

    `tf_lookup(stamp_ns)` returns fixed_from_camera or None (absent tf2_ros, or no transform).
    """
    pose = tf_lookup(stamp_ns) if tf_lookup is not None else None
    source = "tf"
    if pose is None and history is not None:
        pose, source = history.nearest(stamp_ns, max_age_s), "camera_pose"
    if pose is None:
        frame = CanonicalFrame.from_first_pose(np.eye(4), LEVEL_CAMERA_UP)
        return CanonicalPlacement(camera_frame, frame.world_from_canonical, "level_camera")
    frame = CanonicalFrame.from_first_pose(pose, np.asarray(up, dtype=np.float64))
    return CanonicalPlacement(fixed_frame, frame.world_from_canonical, source)


def object_matrix(box7) -> np.ndarray:
    """canonical_from_object for a 7-DoF box: centre, yaw about the canonical +z."""
    x, y, z, _, _, _, yaw = (float(v) for v in box7)
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("z", yaw).as_matrix()
    T[:3, 3] = [x, y, z]
    return T


def window_transforms(
    placement: CanonicalPlacement,
    canonical_frame: str,
    stamp_ns: int,
    objects=(),
    object_prefix: str = "ssr/",
) -> list[TransformStamped]:
    """parent -> canonical, then canonical -> <prefix><instance_id> for each object given."""
    out = [transform_msg(placement.parent_from_canonical, placement.parent, canonical_frame, stamp_ns)]
    out += [
        transform_msg(object_matrix(o.box7), canonical_frame, f"{object_prefix}{o.instance_id}", stamp_ns)
        for o in objects
    ]
    return out
