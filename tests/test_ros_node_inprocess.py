"""ssr_node's callbacks called directly in this process (no executor, no second process): untrusted
camera poses, the ~/ask queue limit while a first window is being perceived, a failed first window,
and failing configure/activate transitions; ssr_replay with nothing to replay. Deterministic:
nothing here depends on DDS timing."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

rclpy = pytest.importorskip("rclpy", reason="needs rclpy (ROS 2)")
pytest.importorskip("ssr_msgs.msg", reason="needs the built ssr_msgs interface package (scripts/setup.sh)")

from geometry_msgs.msg import PoseStamped  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from ros_helpers import domain_id, image_msg, ros_args, synth_scene, wait_for  # noqa: E402
from ssr_msgs.srv import AskSpatial  # noqa: E402

from ssr_core.data.rosbag_io import START_NS  # noqa: E402
from ssr_ros import ssr_node as ssr_node_module  # noqa: E402
from ssr_ros.inputs.camera_pose import matrix_from_pose  # noqa: E402
from ssr_ros.outputs.messages import ns_from_stamp, stamp_from_ns  # noqa: E402
from ssr_ros.replay_node import ReplayNode  # noqa: E402
from ssr_ros.ssr_node import SSRNode  # noqa: E402

pytestmark = pytest.mark.ros
SUCCESS = TransitionCallbackReturn.SUCCESS
QUESTION = "How many chair(s) are in this room?"


@pytest.fixture
def make_node(monkeypatch):
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    created = []

    def make(**params) -> SSRNode:
        context = Context()
        rclpy.init(context=context, domain_id=domain_id(f"inprocess/{len(created)}"))
        values = {"model.kind": "ground_truth", "model.scene_dir": str(synth_scene()), "autostart": False,
                  "window.frames": 8, "window.min_frames": 4, **params}
        node = SSRNode(context=context, cli_args=ros_args(values))
        created.append((node, context))
        return node

    yield make
    for node, context in created:
        node.destroy_node()  # stops the node's threads first
        rclpy.try_shutdown(context=context)


def _active(node: SSRNode) -> SSRNode:
    assert node.trigger_configure() == SUCCESS, node.stats()["error"]
    assert node.trigger_activate() == SUCCESS, node.stats()["error"]
    return node


def _feed(node: SSRNode, count: int, first: int = 0) -> None:
    """Frames as the ingest thread hands them over (decoded synchronously here), 10 Hz stamps."""
    for i in range(first, first + count):
        node._ingest_image(image_msg(160, 120, stamp_ns=START_NS + i * 100_000_000, seed=i))


def _pose(stamp_ns: int, position=(0.0, 0.0, 1.5), quaternion=(0.0, 0.0, 0.0, 1.0)) -> PoseStamped:
    msg = PoseStamped()
    msg.header.frame_id = "odom"
    msg.header.stamp = stamp_from_ns(stamp_ns)
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = position
    q = msg.pose.orientation
    q.x, q.y, q.z, q.w = quaternion
    return msg


def _ask(node: SSRNode, question: str = QUESTION) -> AskSpatial.Response:
    return node._on_ask(AskSpatial.Request(question=question), AskSpatial.Response())


def test_untrusted_camera_poses_are_ignored_not_raised(make_node):
    """An exception in a subscription callback ends the executor's spin, i.e. the node."""
    node = _active(make_node())
    node._on_camera_pose(_pose(START_NS, quaternion=(0.0, 0.0, 0.0, 0.0)))  # zero quaternion
    node._on_camera_pose(_pose(START_NS, position=(float("nan"), 0.0, 0.0)))
    node._on_camera_pose(_pose(START_NS, quaternion=(float("inf"), 0.0, 0.0, 1.0)))
    assert len(node._pose_history) == 0
    node._on_camera_pose(_pose(START_NS, quaternion=(0.0, 0.0, 0.0, 2.0)))  # not unit: normalised
    assert len(node._pose_history) == 1


def test_queue_limit_covers_asks_waiting_for_the_first_window(make_node):
    node = _active(make_node(**{"model.standin_latency": 1.0, "ask.queue_size": 1, "ask.timeout": 120.0}))
    _feed(node, 8)
    first = {}
    thread = threading.Thread(target=lambda: first.setdefault("reply", _ask(node)))
    thread.start()
    try:
        wait_for(lambda: node._worker.submitted == 1, 30, "the first question did not start a window")
        second = _ask(node)  # the first is still waiting for its window (seconds of stand-in latency)
        assert second.error.startswith("queue full"), second.error
    finally:
        thread.join(120)
    assert first["reply"].success, first["reply"].error
    assert node.stats()["asks_ok"] == "1" and node.stats()["asks_failed"] == "1"


def test_failed_first_window_ends_the_wait_with_its_reason(make_node):
    node = _active(make_node(**{"ask.timeout": 60.0}))
    # the camera looks straight down at the window's first stamp: no canonical +x, the window fails
    node._on_camera_pose(_pose(START_NS, quaternion=(1.0, 0.0, 0.0, 0.0)))
    _feed(node, 8)
    reply = _ask(node)
    assert not reply.success and reply.error.startswith("no window yet: window 1 failed"), reply.error
    stats = node.stats()
    assert stats["windows_failed"] == "1" and stats["windows_started"] == "1"


def test_rclpy_parameters_are_left_to_rclpy(make_node):
    from rclpy.parameter import Parameter

    node = make_node()
    (result,) = node.set_parameters([Parameter("use_sim_time", value=True)])
    assert result.successful, result.reason
    (result,) = node.set_parameters([Parameter("frames.up_vector", value=[0.0, 0.0, 0.0])])  # ours still checked
    assert not result.successful and "must not be zero" in result.reason


def test_failed_activate_is_reported_and_leaves_nothing_running(make_node):
    node = make_node(**{"topics.image": "not a topic name"})
    assert node.trigger_configure() == SUCCESS
    assert node.trigger_activate() != SUCCESS
    stats = node.stats()
    assert stats["lifecycle_state"] == "inactive" and stats["error"].startswith("activate failed"), stats
    assert node._subs == [] and node._window_timer is None and not node._active
    assert "not active" in _ask(node).error


def test_failed_configure_releases_the_loaded_model(make_node, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no ingest thread for you")

    monkeypatch.setattr(ssr_node_module, "FrameIngest", broken)
    node = make_node()
    assert node.trigger_configure() != SUCCESS
    assert node._model is None and node._pubs == {}
    stats = node.stats()
    assert stats["lifecycle_state"] == "unconfigured" and "no ingest thread" in stats["error"]
    monkeypatch.undo()
    assert node.trigger_configure() == SUCCESS


def test_replay_with_nothing_to_replay_ends_even_when_looping(monkeypatch):
    """(rosbags reads every connection when given none: the replay must not ask it to.)"""
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    errors = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    context = Context()
    rclpy.init(context=context, domain_id=domain_id("inprocess/replay"))
    node = ReplayNode(context=context, cli_args=ros_args(
        {"bag": str(synth_scene() / "recording"), "loop": True, "topics": "[/not_in_the_bag]"},
        remaps=(), params_file=None))
    try:
        assert node.finished.wait(30), "the replay thread loops over an empty selection"
        assert node.published == 0 and not errors, errors
    finally:
        node.stop()
        node.destroy_node()
        rclpy.try_shutdown(context=context)


@pytest.mark.parametrize("frame_id, expect_tf", [("camera_optical", True), ("", False)])
def test_level_camera_tf_needs_a_camera_frame_name(make_node, monkeypatch, frame_id, expect_tf):
    """Without a camera pose the canonical frame hangs off the camera frame; with no name for it, no TF."""
    node = _active(make_node(**{"topics.camera_pose": "''", "frames.camera_frame": "''"}))  # YAML empty strings
    sent = []
    monkeypatch.setattr(node._pubs["tf"], "publish", sent.append)
    for i in range(8):
        node._ingest_image(image_msg(160, 120, stamp_ns=START_NS + i * 100_000_000, frame_id=frame_id, seed=i))
    reply = _ask(node)
    assert reply.success, reply.error
    assert node.stats()["windows_processed"] == "1"
    if expect_tf:
        (message,) = sent
        assert message.transforms[0].header.frame_id == "camera_optical"
        assert message.transforms[0].child_frame_id == "ssr_canonical"
    else:
        assert sent == []


def test_camera_pose_is_subscribed_reliably_with_depth_50(make_node):
    from rclpy.qos import ReliabilityPolicy

    node = _active(make_node())
    (pose_sub,) = [s for s in node._subs if s.topic_name.endswith("camera_pose")]
    assert pose_sub.qos_profile.reliability == ReliabilityPolicy.RELIABLE
    assert pose_sub.qos_profile.depth == 50


def _true_camera(t_s: float) -> np.ndarray:
    """Ground-truth camera: level, driving along +x at 0.5 m/s while turning left at 0.3 rad/s."""
    yaw = 0.3 * t_s
    forward, right = np.array([np.cos(yaw), np.sin(yaw), 0.0]), np.array([np.sin(yaw), -np.cos(yaw), 0.0])
    T = np.eye(4)
    T[:3, :3] = np.stack([right, np.cross(forward, right), forward], axis=1)  # optical axes x right, y down, z fwd
    T[:3, 3] = [0.5 * t_s, 0.0, 1.2]
    return T


def _true_pose_msg(frame: int) -> PoseStamped:
    T = _true_camera(frame * 0.1)
    return _pose(START_NS + frame * 100_000_000, tuple(T[:3, 3]), tuple(Rotation.from_matrix(T[:3, :3]).as_quat()))


@pytest.mark.parametrize("pose_frames, started_at", [
    (range(8), 0),                   # every pose: the window starts at its first frame
    ([6, 2, 0, 7, 1, 3, 5, 4], 0),   # out of order: sorted on arrival, same result
    ([-1, *range(1, 8)], 0),         # frame 0's pose dropped mid-stream: interpolated between -1 and 1
    (range(1, 8), 1),                # the window's first pose dropped, nothing before it
    ([-3, *range(3, 8)], 3),         # a 0.6 s gap (> pose.max_age 0.2 s) around frames 0-2
])
def test_canonical_frame_sits_on_the_true_first_camera_or_the_gap_is_reported(make_node, monkeypatch,
                                                                              pose_frames, started_at):
    node = _active(make_node())
    sent_tf, sent_detections = [], []
    monkeypatch.setattr(node._pubs["tf"], "publish", sent_tf.append)
    monkeypatch.setattr(node._pubs["detections"], "publish", sent_detections.append)
    for frame in pose_frames:
        node._on_camera_pose(_true_pose_msg(frame))
    _feed(node, 8)
    _ask(node)
    assert node.stats()["windows_processed"] == "1", node.stats()
    (detections,) = sent_detections
    (tf,) = sent_tf
    canonical = tf.transforms[0]
    assert canonical.header.frame_id == "odom" and detections.pose_source == "camera_pose"
    first_stamp = START_NS + started_at * 100_000_000
    assert ns_from_stamp(detections.header.stamp) == ns_from_stamp(canonical.header.stamp) == first_stamp
    assert detections.num_frames == 8 - started_at and detections.frames_without_pose == started_at
    origin = matrix_from_pose(canonical.transform.translation, canonical.transform.rotation)[:3, 3]
    assert np.linalg.norm(origin - _true_camera(started_at * 0.1)[:3, 3]) < 0.01  # within 1 cm
    stats = node.stats()
    if started_at:  # the gap is reported in the window's message and in /diagnostics
        assert f"first {started_at} frame(s)" in detections.pose_note
        assert stats["windows_pose_gap"] == "1" and stats["last_pose_note"] == detections.pose_note
    else:
        assert detections.pose_note == "" and stats["windows_pose_gap"] == "0"


def test_no_pose_for_the_window_is_reported_not_hidden(make_node, monkeypatch):
    node = _active(make_node())
    sent_detections = []
    monkeypatch.setattr(node._pubs["detections"], "publish", sent_detections.append)
    node._on_camera_pose(_true_pose_msg(30))  # long after the window: never used for it
    _feed(node, 8)
    _ask(node)
    (detections,) = sent_detections
    assert detections.pose_source == "level_camera" and detections.frames_without_pose == 0
    assert "level-camera" in detections.pose_note and detections.num_frames == 8
