"""Where the canonical frame sits, and TF messages.

The canonical frame itself is defined by ssr_core.scene.canonical_frame (first camera pose + up
vector); the camera pose comes from ssr_ros.inputs.camera_pose (fallback order: tf2 lookup on
robots -> camera_pose topic history -> level-camera assumption relative to the camera frame). This
module places the frame and writes the transforms; the chosen source is kept by name for reports.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from geometry_msgs.msg import Quaternion, Transform, TransformStamped, Vector3
from scipy.spatial.transform import Rotation

from ssr_core.scene.canonical_frame import CanonicalFrame
from ssr_ros.inputs.camera_pose import WindowPose
from ssr_ros.outputs.messages import stamp_from_ns

# A level camera in OpenCV optical axes (x right, y down, z forward) has "up" along -y.
LEVEL_CAMERA_UP = np.array([0.0, -1.0, 0.0])


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


@dataclass(frozen=True)
class CanonicalPlacement:
    """The canonical frame of one window: `parent_from_canonical` in `parent` (the fixed frame, or
    the camera frame under the level-camera assumption), and which pose source decided it."""

    parent: str
    parent_from_canonical: np.ndarray  # (4, 4)
    source: str  # "tf", "camera_pose" or "level_camera"


def place_canonical(window_pose: WindowPose, camera_frame: str, fixed_frame: str, up: np.ndarray) -> CanonicalPlacement:
    """The canonical frame (ssr_core.scene.canonical_frame) on the window's first camera pose, in
    the fixed frame; without a pose, on the camera frame under the level-camera assumption."""
    if window_pose.pose is None:
        frame = CanonicalFrame.from_first_pose(np.eye(4), LEVEL_CAMERA_UP)
        return CanonicalPlacement(camera_frame, frame.world_from_canonical, "level_camera")
    frame = CanonicalFrame.from_first_pose(window_pose.pose, np.asarray(up, dtype=np.float64))
    return CanonicalPlacement(fixed_frame, frame.world_from_canonical, window_pose.source)


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
