"""7-DoF boxes as vision_msgs/Detection3DArray: pose, yaw quaternion, size, class, score, id."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("vision_msgs.msg", reason="needs vision_msgs (or the fallback built by scripts/setup.sh)")
from ssr_core.scene.boxes import wrap_angle  # noqa: E402
from ssr_ros.outputs.messages import header  # noqa: E402
from ssr_ros.outputs.vision_messages import detection3d_array  # noqa: E402


def obj(box, label="chair", instance_id="chair_0", score=0.8):
    return SimpleNamespace(instance_id=instance_id, label=label, score=score, box7=np.asarray(box, dtype=np.float64))


def test_fields_follow_the_box() -> None:
    msg = detection3d_array([obj([1.0, -2.0, 0.4, 0.6, 0.5, 0.9, 0.3]), obj([0, 0, 1, 2, 1, 1, 0], "tv stand", "tv_stand_0", 0.5)],
                            header("map", 1_500_000_000))
    assert msg.header.frame_id == "map" and msg.header.stamp.sec == 1 and msg.header.stamp.nanosec == 500_000_000
    first = msg.detections[0]
    assert first.header.frame_id == "map"
    assert (first.bbox.center.position.x, first.bbox.center.position.y, first.bbox.center.position.z) == (1.0, -2.0, 0.4)
    assert (first.bbox.size.x, first.bbox.size.y, first.bbox.size.z) == pytest.approx((0.6, 0.5, 0.9))
    assert first.id == "chair_0"
    assert [(r.hypothesis.class_id, r.hypothesis.score) for r in first.results] == [("chair", 0.8)]
    assert first.results[0].pose.pose == first.bbox.center
    assert msg.detections[1].id == "tv_stand_0" and msg.detections[1].results[0].hypothesis.class_id == "tv stand"


def test_empty_input_gives_an_empty_array() -> None:
    assert detection3d_array([], header("odom", 0)).detections == []


@given(st.floats(-10 * math.pi, 10 * math.pi, allow_nan=False))
def test_quaternion_is_a_unit_rotation_about_z_by_the_yaw(yaw: float) -> None:
    q = detection3d_array([obj([0, 0, 0, 1, 1, 1, yaw])], header("map", 0)).detections[0].bbox.center.orientation
    assert q.x == 0.0 and q.y == 0.0
    assert q.z**2 + q.w**2 == pytest.approx(1.0)
    assert math.isclose(float(wrap_angle(2.0 * math.atan2(q.z, q.w))), float(wrap_angle(yaw)), abs_tol=1e-9) or (
        abs(abs(float(wrap_angle(yaw))) - math.pi) < 1e-9
    )


def test_persistent_ids_replace_window_ids_where_given() -> None:
    objects = [obj([0, 0, 0, 1, 1, 1, 0]), obj([1, 0, 0, 1, 1, 1, 0], instance_id="chair_1")]
    msg = detection3d_array(objects, header("ssr_canonical", 0), ["chair_7", ""])
    assert [d.id for d in msg.detections] == ["chair_7", "chair_1"]  # "" (not fused): the window id
    with pytest.raises(ValueError):
        detection3d_array(objects, header("ssr_canonical", 0), ["chair_7"])
