"""7-DoF boxes -> vision_msgs/Detection3DArray, the standard 3D detection type (no rclpy).

Existing RViz plugins and perception tools read vision_msgs, so per-window detections and the
persistent map are also published in it: the box centre pose carries the yaw as a quaternion
about +z, `size` the extents along the box's own axes, one hypothesis (class id = label, score),
and `id` the object's persistent map id (per window: the id the map fused it into when the map is
on, else the window's instance id; map: the persistent id).
Where ROS has no vision_msgs (PyPI wheels), setup builds the fallback in fallback/vision_msgs
with the same field layout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import numpy as np
from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
from std_msgs.msg import Header
from vision_msgs.msg import (
    BoundingBox3D,
    Detection3D,
    Detection3DArray,
    ObjectHypothesis,
    ObjectHypothesisWithPose,
)


class LabelledBox(Protocol):
    """What a detection needs: an id, a label, a score and a 7-DoF box."""

    @property
    def instance_id(self) -> str: ...
    @property
    def label(self) -> str: ...
    @property
    def score(self) -> float: ...
    @property
    def box7(self) -> np.ndarray: ...


def yaw_quaternion(yaw: float) -> Quaternion:
    """Rotation by `yaw` about +z."""
    return Quaternion(x=0.0, y=0.0, z=math.sin(yaw / 2.0), w=math.cos(yaw / 2.0))


def box_pose(box7: np.ndarray) -> Pose:
    x, y, z, _, _, _, yaw = (float(v) for v in np.asarray(box7, dtype=np.float64).reshape(7))
    return Pose(position=Point(x=x, y=y, z=z), orientation=yaw_quaternion(yaw))


def detection3d(obj: LabelledBox, hdr: Header, object_id: str = "") -> Detection3D:
    """`object_id` overrides the box's own instance id when given (the persistent map id)."""
    pose = box_pose(obj.box7)
    length, width, height = (float(v) for v in np.asarray(obj.box7, dtype=np.float64)[3:6])
    hypothesis = ObjectHypothesisWithPose(hypothesis=ObjectHypothesis(class_id=obj.label, score=float(obj.score)))
    hypothesis.pose.pose = pose
    return Detection3D(
        header=hdr,
        results=[hypothesis],
        bbox=BoundingBox3D(center=pose, size=Vector3(x=length, y=width, z=height)),
        id=object_id or obj.instance_id,
    )


def detection3d_array(objects: Sequence[LabelledBox], hdr: Header, ids: Sequence[str] = ()) -> Detection3DArray:
    """Every object as one Detection3D, all in `hdr.frame_id`; `ids[i]`, when given and not empty,
    is object i's persistent id (a window's detections fused into the map)."""
    if ids and len(ids) != len(objects):
        raise ValueError(f"{len(ids)} ids for {len(objects)} objects")
    return Detection3DArray(header=hdr, detections=[
        detection3d(o, hdr, ids[i] if ids else "") for i, o in enumerate(objects)
    ])
