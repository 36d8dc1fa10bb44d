"""A replayed synthetic recording through ssr_node (ground-truth stand-in, real parsing path):
detections, scene graph, markers and TF arrive, and the boxes carried through the published TF
into the fixed frame match the scene's world-frame ground truth."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="needs rclpy (ROS 2)")
pytest.importorskip("ssr_msgs.msg", reason="needs the built ssr_msgs interface package (scripts/setup.sh)")

from ros_helpers import Probe, domain_id, start_replay, start_ssr_node, synth_scene, wait_for  # noqa: E402
from ssr_msgs.msg import Detections7DoF, SceneGraph  # noqa: E402
from ssr_msgs.srv import AskSpatial  # noqa: E402
from tf2_msgs.msg import TFMessage  # noqa: E402
from visualization_msgs.msg import Marker, MarkerArray  # noqa: E402

from ssr_core.data.scene_io import load_scene  # noqa: E402
from ssr_core.scene.boxes import box7_from_oriented, rotation_z, wrap_angle  # noqa: E402
from ssr_ros.inputs.camera_pose import matrix_from_pose  # noqa: E402
from ssr_ros.outputs.messages import ns_from_stamp  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def _transforms(tf_msgs: list, child: str) -> dict[int, np.ndarray]:
    out = {}
    for msg in tf_msgs:
        for t in msg.transforms:
            if t.child_frame_id == child:
                out[ns_from_stamp(t.header.stamp)] = (t.header.frame_id,
                                                      matrix_from_pose(t.transform.translation, t.transform.rotation))
    return out


def test_replayed_recording_matches_ground_truth_through_tf(tmp_path):
    scene_dir = synth_scene()
    scene = load_scene(scene_dir)
    truth = [(o.label, box7_from_oriented(o.center, o.size, o.rotation)) for o in scene.objects]
    domain = domain_id("pipeline")
    probe = Probe(domain)
    detections = probe.collect("/ssr_node/detections", Detections7DoF)
    graphs = probe.collect("/ssr_node/scene_graph", SceneGraph)
    markers = probe.collect("/ssr_node/markers", MarkerArray)
    tf = probe.collect("/tf", TFMessage, qos=100)
    probe.collect_diagnostics()
    node = start_ssr_node(domain, tmp_path, {
        "model.kind": "ground_truth", "model.scene_dir": str(scene_dir), "window.period": 0.8,
        "window.frames": 16, "window.min_frames": 4, "frames.publish_object_tf": True,
    })
    replay = None
    try:
        probe.wait_stats(lambda s: s.get("lifecycle_state") == "active", 30, "ssr_node did not become active")
        replay = start_replay(domain, tmp_path, scene_dir / "recording", rate=2.0)
        wait_for(lambda: not replay.alive, 60, lambda: f"replay did not finish:\n{replay.log()}")
        assert replay.proc.returncode == 0, replay.log()
        wait_for(lambda: len(detections) >= 2, 20, lambda: f"too few detections:\n{node.log()}")

        canonical = _transforms(tf, "ssr_canonical")
        checked = 0
        for det in detections:
            stamp = ns_from_stamp(det.header.stamp)
            assert det.header.frame_id == "ssr_canonical" and det.num_frames >= 4
            wait_for(lambda stamp=stamp: stamp in _transforms(tf, "ssr_canonical"), 5, "no TF for the window")
            canonical = _transforms(tf, "ssr_canonical")
            parent, world_from_canonical = canonical[stamp]
            assert parent == "odom"
            assert len(det.boxes) >= 3
            for b in det.boxes:
                r = world_from_canonical[:3, :3] @ rotation_z(b.yaw)
                centre = world_from_canonical[:3, :3] @ [b.x, b.y, b.z] + world_from_canonical[:3, 3]
                world = box7_from_oriented(centre, [b.length, b.width, b.height], r)
                candidates = [box for label, box in truth if label == b.label]
                best = min(candidates, key=lambda box: np.linalg.norm(box[:3] - world[:3]))
                assert np.linalg.norm(best[:3] - world[:3]) < 0.01, (b.instance_id, best, world)
                np.testing.assert_allclose(world[3:6], best[3:6], atol=0.01)
                assert abs(wrap_angle(world[6] - best[6])) < 0.01, (b.instance_id, best[6], world[6])
                objects = _transforms(tf, f"ssr/{b.instance_id}")
                assert objects[stamp][0] == "ssr_canonical"
                np.testing.assert_allclose(objects[stamp][1][:3, 3], [b.x, b.y, b.z], atol=1e-9)
                checked += 1
            graph = next(g for g in graphs if g.window_id == det.window_id)
            assert list(graph.instance_ids) == [b.instance_id for b in det.boxes]
            assert ns_from_stamp(graph.header.stamp) == stamp and graph.triplets
            array = next(m for m in markers if ns_from_stamp(m.markers[0].header.stamp) == stamp)
            assert array.markers[0].action == Marker.DELETEALL
            assert sum(m.type == Marker.CUBE for m in array.markers) == len(det.boxes)
            assert sum(m.type == Marker.LINE_LIST for m in array.markers) == 1
        assert checked >= 6

        latest = detections[-1].window_id  # the replay goes on: a later window may finish during the call
        answer = probe.call(AskSpatial, "/ssr_node/ask", AskSpatial.Request(question="How many chair(s) are in this room?"))
        assert answer.success, answer.error
        assert answer.window_id >= latest and answer.answer

        stats = probe.wait_stats(lambda s: s.get("windows_processed") == str(len(detections)), 5, "diagnostics lag")
        assert stats["pose_source"] == ("tf" if importlib.util.find_spec("tf2_ros") else "camera_pose")
        assert int(stats["windows_started"]) == int(stats["windows_processed"]) + int(stats["windows_skipped"])
        assert stats["frames_rejected"] == "0" and stats["model_trained"] == "false"
        assert node.alive
    finally:
        if replay is not None:
            replay.stop()
        probe.close()
        assert node.stop() == 0, node.log()
