"""The object map through real processes and DDS: a replayed recording builds a map in `odom` that
matches the scene's ground truth, the map is asked over ~/ask, Ctrl-C (SIGINT) saves it to
map.path, and a restarted ssr_node publishes the same map (same ids) before any window."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="needs rclpy (ROS 2)")
pytest.importorskip("ssr_msgs.msg", reason="needs the built ssr_msgs interface package (scripts/setup.sh)")
pytest.importorskip("vision_msgs.msg", reason="needs vision_msgs (scripts/setup.sh builds the fallback)")

from rclpy.qos import DurabilityPolicy, QoSProfile  # noqa: E402
from ros_helpers import Probe, domain_id, start_replay, start_ssr_node, synth_scene, wait_for  # noqa: E402
from ssr_msgs.msg import ObjectMap  # noqa: E402
from ssr_msgs.srv import AskSpatial  # noqa: E402
from vision_msgs.msg import Detection3DArray  # noqa: E402

from ssr_core.data.scene_io import load_scene  # noqa: E402
from ssr_core.scene.boxes import box7_from_oriented  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]
LATCHED = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def test_map_from_a_replay_survives_a_restart(tmp_path):
    scene_dir = synth_scene()
    truth = [(o.label, box7_from_oriented(o.center, o.size, o.rotation)) for o in load_scene(scene_dir).objects]
    path = tmp_path / "robot_map.json"
    params = {"model.kind": "ground_truth", "model.scene_dir": str(scene_dir), "window.period": 0.8,
              "window.frames": 16, "window.min_frames": 4, "map.path": str(path)}
    domain = domain_id("map_pipeline")
    probe = Probe(domain)
    maps = probe.collect("/ssr_node/map", ObjectMap, qos=LATCHED)
    map_detections = probe.collect("/ssr_node/map_detections", Detection3DArray, qos=LATCHED)
    probe.collect_diagnostics()
    node = start_ssr_node(domain, tmp_path, params)
    restarted = replay = None
    try:
        probe.wait_stats(lambda s: s.get("lifecycle_state") == "active", 30, "ssr_node did not become active")
        replay = start_replay(domain, tmp_path, scene_dir / "recording", rate=2.0)
        wait_for(lambda: not replay.alive, 60, lambda: f"replay did not finish:\n{replay.log()}")
        wait_for(lambda: maps and maps[-1].objects, 20, lambda: f"no confirmed map object:\n{node.log()}")
        wait_for(lambda: probe.latest_stats().get("windows_processed") == probe.latest_stats().get(
            "windows_started"), 20, "windows still running")
        built = maps[-1]
        assert built.header.frame_id == "odom" and built.windows_integrated >= 2
        for obj in built.objects:  # the stand-in's boxes are exact: the fused map sits on the truth
            best = min((box for label, box in truth if label == obj.label),
                       key=lambda box: np.linalg.norm(box[:3] - [obj.box.x, obj.box.y, obj.box.z]))
            assert np.linalg.norm(best[:3] - [obj.box.x, obj.box.y, obj.box.z]) < 0.01, (obj.id, best)
        wait_for(lambda: map_detections and len(map_detections[-1].detections) == len(maps[-1].objects), 5,
                 "no map detections")
        label = built.objects[0].label
        reply = probe.call(AskSpatial, "/ssr_node/ask", AskSpatial.Request(
            question=f"How many {label}(s) are in this room?", target=AskSpatial.Request.TARGET_MAP))
        assert reply.success and reply.value == sum(o.label == label for o in maps[-1].objects), reply.error
    finally:
        if replay is not None:
            replay.stop()
        assert node.stop() == 0, node.log()  # SIGINT: destroying the node saves the map
    try:
        saved = json.loads(path.read_text())
        final_ids = [o.id for o in maps[-1].objects]
        assert [o["id"] for o in saved["objects"] if o["confirmed"]] == final_ids
        maps.clear()
        restarted = start_ssr_node(domain, tmp_path, params)
        wait_for(lambda: maps, 30, lambda: f"the restarted node published no map:\n{restarted.log()}")
        assert [o.id for o in maps[-1].objects] == final_ids  # loaded at configure, latched at activate
        assert maps[-1].windows_integrated == saved["windows_integrated"]
    finally:
        probe.close()
        if restarted is not None:
            assert restarted.stop() == 0, restarted.log()
