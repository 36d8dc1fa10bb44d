"""ssr_node's persistent object map, with the node's callbacks called in this process (no executor,
no DDS timing): map topics after windows, the save/load/clear services, a restart (autosave on
cleanup, autoload on configure, same ids), a corrupt map file, ~/ask on the map, level-camera
windows kept out of the map, and bad map parameters.

Windows come from the ground-truth stand-in (true boxes of the synthetic scene) with the scene's
true camera poses on camera_pose, so two windows seeing one object fuse it into one map object.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

rclpy = pytest.importorskip("rclpy", reason="needs rclpy (ROS 2)")
pytest.importorskip("ssr_msgs.msg", reason="needs the built ssr_msgs interface package (scripts/setup.sh)")
pytest.importorskip("vision_msgs.msg", reason="needs vision_msgs (scripts/setup.sh builds the fallback)")

from geometry_msgs.msg import PoseStamped  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from ros_helpers import domain_id, image_msg, ros_args, synth_scene, wait_for  # noqa: E402
from ssr_msgs.srv import AskSpatial  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402

from ssr_core.data.rosbag_io import START_NS  # noqa: E402
from ssr_core.data.scene_io import load_scene  # noqa: E402
from ssr_ros.outputs.markers import label_color  # noqa: E402
from ssr_ros.outputs.messages import stamp_from_ns  # noqa: E402
from ssr_ros.ssr_node import SSRNode  # noqa: E402

pytestmark = pytest.mark.ros
SUCCESS = TransitionCallbackReturn.SUCCESS
FRAME_NS = 100_000_000  # the recording's 10 Hz
MAP_TOPICS = ("map", "map_markers", "map_scene_graph", "map_detections", "detections", "detections_3d", "tf")


@pytest.fixture
def make_node(monkeypatch):
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    created = []

    def make(**params) -> SSRNode:
        context = Context()
        rclpy.init(context=context, domain_id=domain_id(f"map_node/{len(created)}"))
        values = {"model.kind": "ground_truth", "model.scene_dir": str(synth_scene()), "autostart": False,
                  "window.frames": 8, "window.min_frames": 4, **params}
        node = SSRNode(context=context, cli_args=ros_args(values))
        created.append((node, context))
        return node

    yield make
    for node, context in created:
        node.destroy_node()
        rclpy.try_shutdown(context=context)


def _active(node: SSRNode) -> SSRNode:
    assert node.trigger_configure() == SUCCESS, node.stats()["error"]
    assert node.trigger_activate() == SUCCESS, node.stats()["error"]
    return node


def _capture(node: SSRNode, monkeypatch) -> dict[str, list]:
    """Every message the node publishes on its outputs, by publisher name (fresh after each activate)."""
    sent: dict[str, list] = {name: [] for name in MAP_TOPICS}
    for name, store in sent.items():
        if name in node._pubs:
            monkeypatch.setattr(node._pubs[name], "publish", store.append)
    return sent


def _true_pose(frame: int) -> PoseStamped:
    """The synthetic scene's true camera (odom = the scene's z-up world) at the frame's stamp."""
    T = load_scene(synth_scene()).poses[frame]
    msg = PoseStamped()
    msg.header.frame_id = "odom"
    msg.header.stamp = stamp_from_ns(START_NS + frame * FRAME_NS)
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in T[:3, 3])
    q = msg.pose.orientation
    q.x, q.y, q.z, q.w = (float(v) for v in Rotation.from_matrix(T[:3, :3]).as_quat())
    return msg


def _window(node: SSRNode, frames: range, with_poses: bool = True) -> None:
    """Feed `frames` (poses, then images) and process one window of them, synchronously."""
    for i in frames:
        if with_poses:
            node._on_camera_pose(_true_pose(i))
        node._ingest_image(image_msg(160, 120, stamp_ns=START_NS + i * FRAME_NS, seed=i))
    job = node._start_window()
    assert job is not None, node.stats()
    wait_for(lambda: node._last_finished_id >= job.window_id, 60, lambda: f"window {job.window_id}: {node.stats()}")
    assert node._last_window_id == job.window_id, f"window {job.window_id} failed: {node.stats()}"


def _ask_map(node: SSRNode, question: str, options=()) -> AskSpatial.Response:
    request = AskSpatial.Request(question=question, options=list(options), target=AskSpatial.Request.TARGET_MAP)
    return node._on_ask(request, AskSpatial.Response())


def _trigger(callback) -> Trigger.Response:
    return callback(Trigger.Request(), Trigger.Response())


def _ids(map_msg) -> list[str]:
    return [o.id for o in map_msg.objects]


def test_map_topics_follow_the_windows(make_node, monkeypatch):
    node = _active(make_node(**{"map.publish_tf": True}))
    sent = _capture(node, monkeypatch)
    _window(node, range(0, 8))
    (first,) = sent["detections"]
    n = len(first.boxes)
    assert n > 0 and len(first.map_ids) == n and all(first.map_ids), first.map_ids
    (map1,) = sent["map"]
    assert map1.header.frame_id == "odom" and map1.objects == [] and map1.tentative == n  # confirm_windows 2
    assert map1.windows_integrated == 1 and map1.header.stamp == first.header.stamp

    (det3d,) = sent["detections_3d"]  # per window: the canonical frame, ids = the persistent map ids
    assert det3d.header.frame_id == "ssr_canonical" and det3d.header.stamp == first.header.stamp
    assert [d.id for d in det3d.detections] == list(first.map_ids)
    assert [d.results[0].hypothesis.class_id for d in det3d.detections] == [b.label for b in first.boxes]

    _window(node, range(8, 16))
    second, map2 = sent["detections"][-1], sent["map"][-1]
    again = set(first.map_ids) & set(second.map_ids)
    assert again and set(_ids(map2)) == again  # seen in both windows: confirmed, with its first id
    for obj in map2.objects:
        assert obj.observations == 2 and obj.box.instance_id == obj.id and obj.label == obj.box.label
        assert 0.0 < obj.confidence <= 1.0 and obj.first_seen == first.header.stamp
        assert obj.last_seen == second.header.stamp
    assert node.stats()["map_objects"] == str(len(map2.objects))

    markers = sent["map_markers"][-1].markers
    assert markers[0].action == Marker.DELETEALL and all(m.header.frame_id == "odom" for m in markers)
    cubes = {m.id: m for m in markers if m.ns == "boxes"}
    texts = {m.id: m.text for m in markers if m.ns == "labels"}
    assert sorted(texts.values()) == sorted(_ids(map2))
    for key, cube in cubes.items():  # colour follows the persistent id
        assert cube.color == label_color(texts[key])

    graph = sent["map_scene_graph"][-1]
    assert graph.header.frame_id == "odom" and graph.instance_ids == _ids(map2) and graph.window_id == 2
    map_det = sent["map_detections"][-1]
    assert map_det.header.frame_id == "odom" and [d.id for d in map_det.detections] == _ids(map2)
    assert [d.results[0].hypothesis.score for d in map_det.detections] == pytest.approx(
        [o.confidence for o in map2.objects])
    map_tf = sent["tf"][-1].transforms  # map.publish_tf: odom -> ssr_map/<id>
    assert [t.child_frame_id for t in map_tf] == [f"ssr_map/{i}" for i in _ids(map2)]
    assert all(t.header.frame_id == "odom" for t in map_tf)


def test_save_clear_load_services(make_node, monkeypatch, tmp_path):
    path = tmp_path / "maps" / "robot.json"  # the directory is created on save
    node = _active(make_node(**{"map.path": str(path), "map.confirm_windows": 1}))
    sent = _capture(node, monkeypatch)
    _window(node, range(0, 8))
    ids = _ids(sent["map"][-1])
    assert ids

    saved = _trigger(node._on_save_map)
    assert saved.success and str(path) in saved.message, saved.message
    assert [o["id"] for o in json.loads(path.read_text())["objects"]] == ids

    cleared = _trigger(node._on_clear_map)
    assert cleared.success and sent["map"][-1].objects == [] and node.stats()["map_objects"] == "0"
    assert sent["map_markers"][-1].markers[0].action == Marker.DELETEALL and len(sent["map_markers"][-1].markers) == 1

    loaded = _trigger(node._on_load_map)
    assert loaded.success, loaded.message
    assert _ids(sent["map"][-1]) == ids and sent["map"][-1].header.stamp == sent["detections"][-1].header.stamp

    node.set_parameters([Parameter("map.path", value=str(tmp_path / "missing.json"))])
    missing = _trigger(node._on_load_map)
    assert not missing.success and "missing.json" in missing.message and "unchanged" in missing.message
    assert _ids(sent["map"][-1]) == ids and node.stats()["map_error"]  # the map is kept, the error reported
    node.set_parameters([Parameter("map.path", value="")])
    assert "map.path is empty" in _trigger(node._on_save_map).message


def test_restart_keeps_the_map_and_its_ids(make_node, monkeypatch, tmp_path):
    path = tmp_path / "robot_map.json"
    first = _active(make_node(**{"map.path": str(path)}))
    sent = _capture(first, monkeypatch)
    _window(first, range(0, 8))
    _window(first, range(8, 16))
    before = sent["map"][-1]
    assert before.objects and not path.exists()
    assert first.trigger_deactivate() == SUCCESS and first.trigger_cleanup() == SUCCESS  # autosave
    assert path.exists() and first._map is None

    second = make_node(**{"map.path": str(path)})
    assert second.trigger_configure() == SUCCESS  # autoload
    assert second.stats()["map_objects"] == str(len(before.objects)) and second.stats()["map_error"] == ""
    sent = _capture(second, monkeypatch)
    assert second.trigger_activate() == SUCCESS
    (after,) = sent["map"]  # published on activate, before any window
    assert after.objects == before.objects and after.windows_integrated == 2 and after.header == before.header

    _window(second, range(16, 24))  # integration continues: objects seen again keep their ids
    continued = sent["detections"][-1]
    assert set(continued.map_ids) & set(_ids(before))
    assert sent["map"][-1].windows_integrated == 3


def test_untouched_map_is_not_rewritten_and_shutdown_saves(make_node, tmp_path):
    path = tmp_path / "map.json"
    node = _active(make_node(**{"map.path": str(path), "map.confirm_windows": 1}))
    assert node.trigger_deactivate() == SUCCESS and node.trigger_cleanup() == SUCCESS
    assert not path.exists()  # nothing integrated: no file written
    _active(node)
    _window(node, range(0, 8))
    assert node.trigger_shutdown() == SUCCESS
    assert json.loads(path.read_text())["windows_integrated"] == 1


def test_corrupt_map_file_leaves_an_empty_map_and_is_kept_aside(make_node, tmp_path):
    path = tmp_path / "map.json"
    path.write_text('{"format": "ssr_object_map", "version": 1, "objects": [')  # truncated
    node = make_node(**{"map.path": str(path), "map.confirm_windows": 1})
    assert node.trigger_configure() == SUCCESS, node.stats()["error"]  # never a failed configure
    stats = node.stats()
    assert stats["map_objects"] == "0" and "corrupt or truncated" in stats["map_error"], stats
    assert node.trigger_activate() == SUCCESS
    _window(node, range(0, 8))
    assert node.trigger_deactivate() == SUCCESS and node.trigger_cleanup() == SUCCESS
    assert Path(f"{path}.corrupt").read_text().endswith('"objects": [')  # the unreadable file is not lost
    assert json.loads(path.read_text())["windows_integrated"] == 1


def test_ask_the_map(make_node, monkeypatch):
    node = _active(make_node(**{"map.confirm_windows": 1}))
    sent = _capture(node, monkeypatch)
    _window(node, range(0, 8))
    objects = sent["map"][-1].objects
    label = objects[0].label
    count = sum(o.label == label for o in objects)
    reply = _ask_map(node, f"How many {label}(s) are in this room?")
    assert reply.success and reply.has_value and reply.value == count and reply.answer == str(count), reply.error
    assert reply.window_id == 0 and sorted(reply.object_ids) == sorted(o.id for o in objects if o.label == label)

    where = _ask_map(node, f"Where is the {objects[0].id}, and when was it last seen?")
    assert where.success and json.loads(where.answer)["bbox_7dof"][0] == pytest.approx(objects[0].box.x, abs=0.01)
    assert where.value == pytest.approx(1e-9 * (objects[0].last_seen.sec * 10**9 + objects[0].last_seen.nanosec))

    unknown = _ask_map(node, "How far is the unicorn from the rainbow (in meters)?")
    assert not unknown.success and unknown.error and unknown.object_ids == []
    odd = node._on_ask(AskSpatial.Request(question="How many chair(s) are in this room?", target=7),
                       AskSpatial.Response())
    assert not odd.success and odd.error.startswith("unknown target 7")
    assert node.stats()["asks_ok"] == "2" and node.stats()["asks_failed"] == "2"


def test_map_disabled_and_level_camera_windows(make_node, monkeypatch):
    off = _active(make_node(**{"map.enabled": False}))
    sent = _capture(off, monkeypatch)
    _window(off, range(0, 8))
    assert sent["detections"][-1].map_ids == [] and "map" not in off._pubs and sent["detections_3d"]
    assert _ask_map(off, "How many chair(s) are in this room?").error == "map disabled (map.enabled is false)"
    assert not _trigger(off._on_save_map).success

    level = _active(make_node(**{"topics.camera_pose": "''"}))  # no pose: canonical frame on the camera
    sent = _capture(level, monkeypatch)
    _window(level, range(0, 8), with_poses=False)
    assert sent["detections"][-1].pose_source == "level_camera" and sent["detections"][-1].map_ids == []
    stats = level.stats()
    assert stats["map_windows_not_anchored"] == "1" and stats["map_windows_integrated"] == "0"
    assert sent["map"] == []


@pytest.mark.parametrize("name, value, fragment", [  # rclpy checks types and ranges, node_params the rest
    ("map.gate_iou", 1.5, "map.gate_iou out of range"),
    ("map.confirm_windows", 0, "map.confirm_windows out of range"),
    ("map.max_objects", 2.5, "Wrong parameter type"),
    ("map.view_min_range", 6.0, "map.view_min_range (6.0) must be below map.view_max_range (5.0)"),
    ("map.frame_prefix", "ssr/", "must differ from frames.object_frame_prefix"),
])
def test_bad_map_parameters_are_refused(make_node, name, value, fragment):
    node = make_node()
    (result,) = node.set_parameters([Parameter(name, value=value)])
    assert not result.successful and fragment in result.reason, result.reason


def test_bad_start_up_map_parameter_refuses_configure(make_node):
    node = make_node(**{"map.miss_limit": 0})
    assert node.trigger_configure() != SUCCESS
    assert "map.miss_limit" in node.stats()["error"]
    (result,) = node.set_parameters([Parameter("map.miss_limit", value=2)])
    assert result.successful and node.trigger_configure() == SUCCESS
    assert np.isclose(node._map.map.config.miss_limit, 2)
