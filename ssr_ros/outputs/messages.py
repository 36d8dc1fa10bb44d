"""WindowPerception / SpatialAnswer -> ssr_msgs messages (no rclpy, only message classes).

The node stays a thin adapter: everything about how a perception maps onto message fields
(layout fallback for objects outside the graph, per-triplet inconsistency, option indices) is here
and unit-tested without DDS.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Time
from ssr_msgs.msg import BoundingBox7DoF, Detections7DoF, SceneGraph
from ssr_msgs.msg import LocalCogMap as LocalCogMapMsg
from std_msgs.msg import Header


def stamp_from_ns(ns: int) -> Time:
    return Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def ns_from_stamp(stamp: Time) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_from_seconds(seconds: float) -> int:
    """The object map keeps stamps as float seconds, exact to about 0.25 us at today's epoch:
    rounded to the microsecond, stamps that were whole microseconds come back exactly."""
    if not math.isfinite(seconds) or seconds <= 0:
        return 0
    return int(round(seconds * 1e6)) * 1000


def header(frame_id: str, stamp_ns: int) -> Header:
    return Header(frame_id=frame_id, stamp=stamp_from_ns(stamp_ns))


def box_msg(obj) -> BoundingBox7DoF:
    x, y, z, length, width, height, yaw = (float(v) for v in np.asarray(obj.box7, dtype=np.float64))
    return BoundingBox7DoF(
        instance_id=obj.instance_id, label=obj.label, x=x, y=y, z=z,
        length=length, width=width, height=height, yaw=yaw, score=float(obj.score),
    )


def detections_msg(perception, hdr: Header, num_frames: int, latency_s: float, pose_source: str = "",
                   frames_without_pose: int = 0, pose_note: str = "",
                   map_ids: Sequence[str] = ()) -> Detections7DoF:
    """`map_ids`: the persistent map id of each box, empty when the window was not integrated."""
    return Detections7DoF(
        header=hdr,
        window_id=int(perception.window_id),
        boxes=[box_msg(o) for o in perception.objects],
        num_frames=int(num_frames),
        latency=float(latency_s),
        pose_source=pose_source,
        frames_without_pose=int(frames_without_pose),
        pose_note=pose_note,
        map_ids=list(map_ids),
    )


def _cell(cell) -> list[int]:
    return [int(cell[0]), int(cell[1])]


def triplet_msgs(triplets, residuals, inconsistent) -> list[LocalCogMapMsg]:
    """Triplets in generation order; `inconsistent` holds the indices flagged against the layout."""
    flagged = set(int(i) for i in inconsistent)
    return [
        LocalCogMapMsg(
            anchor1=t.anchor1, anchor2=t.anchor2, target=t.target,
            anchor1_cell=_cell(t.anchor1_cell), anchor2_cell=_cell(t.anchor2_cell),
            target_cell=_cell(t.target_cell), clipped=bool(t.clipped),
            inconsistent=i in flagged,
            residual=float(residuals[i]) if i < len(residuals) else float("nan"),
        )
        for i, t in enumerate(triplets)
    ]


def scene_graph_msg(perception, hdr: Header) -> SceneGraph:
    """Objects the layout did not place (in no triplet) keep their box centre as layout position."""
    positions = perception.layout.positions if perception.layout is not None else {}
    residuals = perception.layout.residuals if perception.layout is not None else ()
    ids, labels, xs, ys = [], [], [], []
    for o in perception.objects:
        xy = positions.get(o.instance_id, np.asarray(o.box7)[:2])
        ids.append(o.instance_id)
        labels.append(o.label)
        xs.append(float(xy[0]))
        ys.append(float(xy[1]))
    return SceneGraph(
        header=hdr, window_id=int(perception.window_id), instance_ids=ids, labels=labels,
        layout_x=xs, layout_y=ys, triplets=triplet_msgs(perception.triplets, residuals, perception.inconsistent),
    )


def fill_ask_response(resp, answer, options: Sequence[str], window_id: int, latency_s: float):
    """Copy a SpatialAnswer (or a map's MapAnswer) into an AskSpatial response (for a choice its
    `value` is the letter, so only open questions carry a numeric value)."""
    resp.success = bool(answer.success)
    resp.answer = str(answer.answer or "")
    resp.error = "" if answer.success else str(answer.error or "the model's answer could not be parsed")
    resp.option_index = int(answer.option_index) if answer.success else -1
    value = answer.value
    numeric = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    resp.has_value = bool(numeric and not options)
    resp.value = float(value) if resp.has_value else float("nan")
    resp.window_id = int(window_id)
    resp.latency = float(latency_s)
    resp.object_ids = [str(i) for i in getattr(answer, "object_ids", ())] if answer.success else []
    return resp


def fail_ask_response(resp, error: str, window_id: int = 0, latency_s: float = 0.0):
    resp.success = False
    resp.answer = ""
    resp.error = error
    resp.option_index = -1
    resp.value = float("nan")
    resp.has_value = False
    resp.window_id = int(window_id)
    resp.latency = float(latency_s)
    resp.object_ids = []
    return resp
