"""The persistent object map -> messages (no rclpy): ~/map (ssr_msgs/ObjectMap), ~/map_scene_graph
(ssr_msgs/SceneGraph), ~/map_detections (vision_msgs/Detection3DArray) and per-object TF frames.

Every map message is in the fixed frame and stamped with the latest window integrated; ids are
the map's persistent ids (`label_k`, kept across restarts).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from geometry_msgs.msg import Transform, TransformStamped, Vector3
from ssr_msgs.msg import BoundingBox7DoF, SceneGraph
from ssr_msgs.msg import MapObject as MapObjectMsg
from ssr_msgs.msg import ObjectMap as ObjectMapMsg
from std_msgs.msg import Header
from vision_msgs.msg import Detection3DArray

from ssr_core.mapping.map_object import MapObject
from ssr_ros.outputs.messages import ns_from_seconds, stamp_from_ns, triplet_msgs
from ssr_ros.outputs.vision_messages import detection3d_array, yaw_quaternion


def map_object_msg(obj: MapObject) -> MapObjectMsg:
    x, y, z, length, width, height, yaw = (float(v) for v in np.asarray(obj.box, dtype=np.float64))
    return MapObjectMsg(
        id=obj.object_id, label=obj.label,
        box=BoundingBox7DoF(instance_id=obj.object_id, label=obj.label, x=x, y=y, z=z, length=length,
                            width=width, height=height, yaw=yaw, score=float(obj.confidence)),
        confidence=float(obj.confidence), observations=int(obj.observations), misses=int(obj.misses),
        first_seen=stamp_from_ns(ns_from_seconds(obj.first_seen)),
        last_seen=stamp_from_ns(ns_from_seconds(obj.last_seen)),
    )


def object_map_msg(objects: Sequence[MapObject], tentative: int, windows_integrated: int,
                   hdr: Header) -> ObjectMapMsg:
    return ObjectMapMsg(header=hdr, windows_integrated=int(windows_integrated), tentative=int(tentative),
                        objects=[map_object_msg(o) for o in objects])


def map_scene_graph_msg(objects: Sequence[MapObject], triplets, layout, hdr: Header, window_id: int) -> SceneGraph:
    """The map's scene graph (Alg. 1 over the confirmed objects) in the window message's shape;
    `window_id` is the node's latest window integrated. Objects in no triplet keep their centre."""
    positions = layout.positions if layout is not None else {}
    xy = [np.asarray(positions.get(o.object_id, o.box[:2]), dtype=np.float64) for o in objects]
    residuals = layout.residuals if layout is not None else ()
    return SceneGraph(
        header=hdr, window_id=int(window_id), instance_ids=[o.object_id for o in objects],
        labels=[o.label for o in objects], layout_x=[float(p[0]) for p in xy], layout_y=[float(p[1]) for p in xy],
        triplets=triplet_msgs(triplets, residuals, ()),
    )


@dataclass(frozen=True)
class _MapBox:
    """A map object in the shape vision_messages.detection3d reads."""

    instance_id: str
    label: str
    score: float
    box7: np.ndarray


def map_detections_msg(objects: Sequence[MapObject], hdr: Header) -> Detection3DArray:
    """Confirmed objects as vision_msgs: id = persistent id, score = confidence."""
    return detection3d_array([_MapBox(o.object_id, o.label, float(o.confidence), o.box) for o in objects], hdr)


def map_transforms(objects: Sequence[MapObject], fixed_frame: str, stamp_ns: int,
                   prefix: str) -> list[TransformStamped]:
    """fixed_frame -> <prefix><id> per confirmed object (centre, yaw about +z; the quaternion is
    written from the yaw directly: a rotation-matrix round trip costs 0.1 ms per object)."""
    hdr = Header(frame_id=fixed_frame, stamp=stamp_from_ns(stamp_ns))
    out = []
    for o in objects:
        x, y, z = (float(v) for v in o.box[:3])
        out.append(TransformStamped(header=hdr, child_frame_id=f"{prefix}{o.object_id}", transform=Transform(
            translation=Vector3(x=x, y=y, z=z), rotation=yaw_quaternion(float(o.box[6])))))
    return out
