"""Perception -> messages, markers, canonical-frame placement and TF (no DDS)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("ssr_msgs.msg", reason="needs the built ssr_msgs interface package (scripts/setup.sh)")
from ssr_msgs.srv import AskSpatial  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402

from ssr_core.inference.reasoner import SpatialAnswer  # noqa: E402
from ssr_core.scene.canonical_frame import CanonicalFrame  # noqa: E402
from ssr_core.scene.cogmap import LocalCogMap  # noqa: E402
from ssr_ros.inputs.camera_pose import (  # noqa: E402
    PoseHistory,
    WindowPose,
    matrix_from_pose,
    resolve_window_pose,
)
from ssr_ros.outputs.markers import window_markers  # noqa: E402
from ssr_ros.outputs.messages import (  # noqa: E402
    detections_msg,
    fail_ask_response,
    fill_ask_response,
    header,
    ns_from_stamp,
    scene_graph_msg,
)
from ssr_ros.outputs.tf_publishing import (  # noqa: E402
    place_canonical,
    transform_msg,
    window_transforms,
)


def _perception():
    objects = [
        SimpleNamespace(instance_id="chair_0", label="chair", box7=np.array([1.0, 0.5, 0.4, 0.5, 0.6, 0.8, 0.3]),
                        score=1.0),
        SimpleNamespace(instance_id="table_0", label="table", box7=np.array([2.0, -1.0, 0.4, 1.2, 0.8, 0.75, -1.0]),
                        score=0.5),
        SimpleNamespace(instance_id="lamp_0", label="lamp", box7=np.array([0.5, 2.0, 1.0, 0.3, 0.3, 1.5, 0.0]),
                        score=1.0),
        SimpleNamespace(instance_id="cup_0", label="cup", box7=np.array([3.0, 3.0, 0.8, 0.1, 0.1, 0.1, 0.0]),
                        score=1.0),
    ]
    triplets = [LocalCogMap("chair_0", "table_0", "lamp_0", (5, 5), (5, 2), (3, 8), False)]
    layout = SimpleNamespace(positions={"chair_0": np.array([1.0, 0.5]), "table_0": np.array([2.0, -1.0]),
                                        "lamp_0": np.array([0.6, 2.1])}, residuals=np.array([0.25]))
    return SimpleNamespace(window_id=7, objects=objects, triplets=triplets, layout=layout, inconsistent=[0],
                           failures=[], timings={})


def test_detections_and_scene_graph():
    p = _perception()
    hdr = header("ssr_canonical", 12_000_000_345)
    det = detections_msg(p, hdr, num_frames=32, latency_s=0.5)
    assert det.header.frame_id == "ssr_canonical" and ns_from_stamp(det.header.stamp) == 12_000_000_345
    assert det.window_id == 7 and det.num_frames == 32 and det.latency == pytest.approx(0.5)
    b = det.boxes[1]
    assert (b.instance_id, b.label) == ("table_0", "table")
    assert [b.x, b.y, b.z, b.length, b.width, b.height, b.yaw] == pytest.approx([2.0, -1.0, 0.4, 1.2, 0.8, 0.75, -1.0])
    assert b.score == pytest.approx(0.5)
    sg = scene_graph_msg(p, hdr)
    assert sg.instance_ids == ["chair_0", "table_0", "lamp_0", "cup_0"]
    assert list(sg.layout_x) == pytest.approx([1.0, 2.0, 0.6, 3.0])  # cup_0 is in no triplet: box centre
    t = sg.triplets[0]
    assert (t.anchor1, t.anchor2, t.target) == ("chair_0", "table_0", "lamp_0")
    assert list(t.anchor2_cell) == [5, 2] and list(t.target_cell) == [3, 8]
    assert t.inconsistent and t.residual == pytest.approx(0.25) and not t.clipped


def test_ask_responses():
    options = ["A. the chair", "B. the table"]
    answer = SpatialAnswer(True, "the table", "B", "", 0.1, option_index=1, window_id=3)
    r = fill_ask_response(AskSpatial.Response(), answer, options, window_id=3, latency_s=0.2)
    assert r.success and r.option_index == 1 and not r.has_value and math.isnan(r.value) and r.window_id == 3
    answer = SpatialAnswer(True, "2.5", 2.5, "", 0.1, window_id=3)
    r = fill_ask_response(AskSpatial.Response(), answer, [], window_id=3, latency_s=0.2)
    assert r.has_value and r.value == 2.5 and r.option_index == -1
    failed = SpatialAnswer(False, "blah", None, "", 0.1)
    r = fill_ask_response(AskSpatial.Response(), failed, [], 3, 0.2)
    assert not r.success and r.error
    r = fail_ask_response(AskSpatial.Response(), "queue full", 4)
    assert not r.success and r.error == "queue full" and r.option_index == -1


def test_markers_delete_all_first_then_boxes_labels_edges():
    arr = window_markers(_perception(), header("ssr_canonical", 5))
    kinds = [(m.ns, m.type, m.action) for m in arr.markers]
    assert kinds[0][2] == Marker.DELETEALL
    assert kinds.count(("boxes", Marker.CUBE, Marker.ADD)) == 4
    assert kinds.count(("labels", Marker.TEXT_VIEW_FACING, Marker.ADD)) == 4
    cube = arr.markers[1]
    assert (cube.scale.x, cube.scale.y, cube.scale.z) == pytest.approx((0.5, 0.6, 0.8))
    assert 2 * math.atan2(cube.pose.orientation.z, cube.pose.orientation.w) == pytest.approx(0.3)
    edges = arr.markers[-1]
    assert edges.type == Marker.LINE_LIST and len(edges.points) == 4  # anchor1->target, anchor2->target
    assert (edges.points[1].x, edges.points[1].y) == pytest.approx((0.5, 2.0))
    assert edges.colors[0].r == pytest.approx(1.0)  # inconsistent triplet drawn red


def _pose(yaw_deg: float, tilt_deg: float, t) -> np.ndarray:
    """camera-to-world: a camera looking along world +x rotated by yaw, pitched down by tilt."""
    y, p = np.radians(yaw_deg), np.radians(tilt_deg)
    forward = np.array([np.cos(p) * np.cos(y), np.cos(p) * np.sin(y), -np.sin(p)])
    right = np.array([np.sin(y), -np.cos(y), 0.0])
    down = np.cross(forward, right)
    T = np.eye(4)
    T[:3, :3] = np.stack([right, down, forward], axis=1)
    T[:3, 3] = t
    return T


def _moving(t_s: float) -> np.ndarray:
    """A level camera driving along +x at 0.5 m/s while turning left at 0.3 rad/s."""
    return _pose(np.degrees(0.3 * t_s), 0.0, [0.5 * t_s, 0.0, 1.2])


def test_pose_history_interpolates_between_bracketing_samples_only():
    h = PoseHistory(keep_s=1.0)
    for i in range(30):
        h.add(i * 100_000_000, _moving(i * 0.1))
    assert len(h) == 11  # only the last second is kept
    np.testing.assert_allclose(h.at(2_700_000_000, 0.1), _moving(2.7), atol=1e-12)  # a sample's own stamp
    mid = h.at(2_740_000_000, 0.1)  # 40 % of the way from 2.7 s to 2.8 s, as tf2 interpolates
    np.testing.assert_allclose(mid[:3, 3], 0.6 * _moving(2.7)[:3, 3] + 0.4 * _moving(2.8)[:3, 3], atol=1e-12)
    np.testing.assert_allclose(mid[:3, :3], _moving(2.74)[:3, :3], atol=1e-9)  # slerp of a constant turn
    assert h.at(5_000_000_000, 10.0) is None  # after the newest sample: never extrapolated
    assert h.at(1_850_000_000, 10.0) is None  # before the oldest kept sample


def test_pose_history_refuses_gaps_longer_than_max_age_and_sorts_out_of_order_samples():
    h = PoseHistory(keep_s=10.0)
    for t in (0.0, 0.5):
        h.add(int(t * 1e9), _moving(t))
    assert h.at(250_000_000, 0.2) is None  # samples 0.25 s away on each side
    assert h.at(250_000_000, 0.3) is not None
    shuffled = PoseHistory(keep_s=10.0)
    for i in (3, 0, 2, 1, 3):  # out of order, and a repeated stamp
        shuffled.add(i * 100_000_000, _moving(i * 0.1))
    assert len(shuffled) == 4
    np.testing.assert_allclose(shuffled.at(150_000_000, 0.1)[:3, 3], _moving(0.15)[:3, 3], atol=1e-12)


def test_window_starts_at_the_first_frame_whose_pose_is_known():
    stamps = [i * 100_000_000 for i in range(8)]
    known = {s: _moving(s / 1e9) for s in stamps[2:]}
    pose = resolve_window_pose(stamps, [("camera_pose", known.get)], min_frames=4)
    assert pose.first_index == 2 and pose.source == "camera_pose" and "first 2 frame(s)" in pose.note
    np.testing.assert_allclose(pose.pose, _moving(0.2))
    # tf first, then camera_pose; the first frame known to either wins, with no note
    pose = resolve_window_pose(stamps, [("tf", lambda s: None), ("camera_pose", lambda s: _moving(0.0))], 4)
    assert (pose.first_index, pose.source, pose.note) == (0, "camera_pose", "")
    # too few frames would be left: no pose at all, reported
    pose = resolve_window_pose(stamps, [("camera_pose", {stamps[6]: _moving(0.6)}.get)], min_frames=4)
    assert pose.pose is None and pose.source == "level_camera" and "level-camera" in pose.note
    # no pose source configured: the level camera is the plan, not a gap
    assert resolve_window_pose(stamps, [], 4) == WindowPose(0, None, "level_camera", "")


def test_canonical_placement_math():
    pose = _pose(30.0, 20.0, [1.0, 2.0, 1.5])
    up = np.array([0.0, 0.0, 1.0])
    expected = CanonicalFrame.from_first_pose(pose, up).world_from_canonical

    p = place_canonical(WindowPose(0, pose, "tf", ""), "cam", "odom", up)
    assert p.source == "tf" and p.parent == "odom"
    np.testing.assert_allclose(p.parent_from_canonical, expected)

    p = place_canonical(WindowPose(0, None, "level_camera", ""), "cam", "odom", up)
    assert p.source == "level_camera" and p.parent == "cam"
    # level camera: canonical +x = optical axis (camera z), +z = camera -y, origin at the camera
    columns = np.stack([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], axis=1).astype(float)
    np.testing.assert_allclose(p.parent_from_canonical[:3, :3], columns, atol=1e-12)
    np.testing.assert_allclose(p.parent_from_canonical[:3, 3], 0.0)


def test_transforms_round_trip_and_object_frames():
    T = _pose(-75.0, 10.0, [0.3, -2.0, 1.2])
    msg = transform_msg(T, "odom", "ssr_canonical", 1_500_000_000)
    assert msg.header.frame_id == "odom" and msg.child_frame_id == "ssr_canonical"
    np.testing.assert_allclose(matrix_from_pose(msg.transform.translation, msg.transform.rotation), T, atol=1e-12)
    placement = place_canonical(WindowPose(0, T, "tf", ""), "cam", "odom", np.array([0.0, 0.0, 1.0]))
    tfs = window_transforms(placement, "ssr_canonical", 7, _perception().objects, "ssr/")
    assert [t.child_frame_id for t in tfs] == ["ssr_canonical", "ssr/chair_0", "ssr/table_0", "ssr/lamp_0", "ssr/cup_0"]
    chair = tfs[1].transform
    assert tfs[1].header.frame_id == "ssr_canonical"
    assert (chair.translation.x, chair.translation.y, chair.translation.z) == pytest.approx((1.0, 0.5, 0.4))
    assert 2 * math.atan2(chair.rotation.z, chair.rotation.w) == pytest.approx(0.3)


def test_replay_helpers_shift_stamps_and_find_types():
    from geometry_msgs.msg import TransformStamped
    from sensor_msgs.msg import Image
    from tf2_msgs.msg import TFMessage

    from ssr_ros.replay_node import message_class, shift_stamps

    assert message_class("sensor_msgs/msg/Image") is Image
    assert message_class("no_such_pkg/msg/Thing") is None
    for malformed in ("sensor_msgs/Image", "sensor_msgs/msg/Image/x", "", "os.path/msg/x"):
        assert message_class(malformed) is None, malformed
    image = Image(header=header("cam", 1_900_000_000))
    shift_stamps(image, 200_000_000)
    assert ns_from_stamp(image.header.stamp) == 2_100_000_000
    tf = TFMessage(transforms=[TransformStamped(header=header("odom", 5)), TransformStamped(header=header("odom", 7))])
    shift_stamps(tf, 10)
    assert [ns_from_stamp(t.header.stamp) for t in tf.transforms] == [15, 17]
