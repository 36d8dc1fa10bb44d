"""Bad inputs each get their reported outcome and ssr_node keeps running: rejected images (per kind,
logged once), invalid parameters at runtime and at start-up, every ~/ask error, lifecycle moves."""

from __future__ import annotations

import time

import pytest
import yaml

pytest.importorskip("rclpy", reason="needs rclpy (ROS 2)")
pytest.importorskip("ssr_msgs.msg", reason="needs the built ssr_msgs interface package (scripts/setup.sh)")

from ros_helpers import PARAMS, Probe, domain_id, image_msg, start_ssr_node, synth_scene, wait_for  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from ssr_msgs.msg import Detections7DoF  # noqa: E402
from ssr_msgs.srv import AskSpatial  # noqa: E402

from ssr_core.data.rosbag_io import START_NS  # noqa: E402

pytestmark = pytest.mark.ros
ASK = "/ssr_node/ask"

BAD_IMAGES = {
    "depth_encoding": [Image(height=4, width=4, encoding="16UC1", step=8, data=bytes(32)),
                       Image(height=4, width=4, encoding="32FC1", step=16, data=bytes(64))],
    "unsupported_encoding": [Image(height=4, width=4, encoding="yuv422", step=8, data=bytes(32))],
    "zero_size": [Image(height=0, width=4, encoding="rgb8", step=12, data=b"")],
    "wrong_step": [Image(height=4, width=4, encoding="rgb8", step=10, data=bytes(40))],
    "short_data": [Image(height=4, width=4, encoding="rgb8", step=12, data=bytes(47))],
}


def _ask(probe: Probe, question: str = "How many chair(s) are in this room?", window_id: int = 0):
    return probe.call(AskSpatial, ASK, AskSpatial.Request(question=question, window_id=window_id))


def _stream(pub, count: int, first: int, encoding: str = "rgb8") -> None:
    for i in range(first, first + count):  # stamps of the recording's frames (10 Hz)
        pub.publish(image_msg(160, 120, encoding, START_NS + i * 100_000_000, seed=i))
        time.sleep(0.02)


def test_bad_images_params_asks_and_lifecycle(tmp_path):
    domain = domain_id("robustness")
    probe = Probe(domain)
    probe.collect_diagnostics()
    detections = probe.collect("/ssr_node/detections", Detections7DoF)
    node = start_ssr_node(domain, tmp_path, {
        "model.kind": "ground_truth", "model.scene_dir": str(synth_scene()), "window.period": 0.3,
        "window.frames": 8, "window.min_frames": 4, "qos.image_reliability": "reliable",
        "qos.image_depth": 100,  # no rejected image may be overwritten unread when this machine is busy
    })
    try:
        probe.wait_stats(lambda s: s.get("lifecycle_state") == "active", 30, "ssr_node did not become active")
        assert "no window yet" in _ask(probe).error
        assert "question too long" in _ask(probe, "x" * 501).error
        assert "empty question" in _ask(probe, "  ").error
        assert "unknown window 99" in _ask(probe, window_id=99).error

        pub = probe.node.create_publisher(Image, "/camera/image_raw", 50)
        wait_for(lambda: pub.get_subscription_count() > 0, 10, "ssr_node did not subscribe")
        for _ in range(2):
            for msgs in BAD_IMAGES.values():
                for m in msgs:
                    pub.publish(m)
        expected = {f"rejected_{k}": str(2 * len(v)) for k, v in BAD_IMAGES.items()}
        probe.wait_stats(lambda s: all(s.get(k) == v for k, v in expected.items()), 10, "rejections not counted")
        log = node.log()
        for kind in BAD_IMAGES:
            assert log.count(f"image rejected ({kind})") == 1, log  # reported once per kind

        _stream(pub, 6, 0, "bgr8")
        _stream(pub, 6, 6, "mono8")
        wait_for(lambda: detections, 10, lambda: f"no detections after bad images:\n{node.log()}")
        answer = _ask(probe)
        assert answer.success and answer.window_id >= 1, answer.error

        # runtime parameter changes: refused with a reason, node unaffected
        refused = {
            "model.device": "gpu", "window.frames": 0, "window.min_frames": 64,
            "frames.up_vector": [0.0, 0.0, 0.0], "topics.image": "other",
        }
        for name, value in refused.items():
            (result,) = probe.set_parameters("/ssr_node", **{name: value})
            assert not result.successful and result.reason, (name, result)
        (result,) = probe.set_parameters("/ssr_node", **{"model.device": "gpu"})
        assert "one of auto, cuda, npu, cpu" in result.reason
        (ok,) = probe.set_parameters("/ssr_node", **{"ask.timeout": 10.0})
        assert ok.successful
        seen = len(detections)
        _stream(pub, 8, 12, "rgba8")
        wait_for(lambda: len(detections) > seen, 10, "no detections after invalid parameters")

        # lifecycle: deactivate frees windows, cleanup drops the model; both come back
        assert probe.lifecycle("/ssr_node", "deactivate") == "inactive"
        assert "not active" in _ask(probe).error
        assert probe.lifecycle("/ssr_node", "cleanup") == "unconfigured"
        assert "model not loaded" in _ask(probe).error
        assert probe.lifecycle("/ssr_node", "configure") == "inactive"
        assert probe.lifecycle("/ssr_node", "activate") == "active"
        seen = len(detections)
        _stream(pub, 8, 20, "rgb8")
        wait_for(lambda: len(detections) > seen, 10, "no detections after re-activation")
        assert node.alive
    finally:
        probe.close()
        assert node.stop() == 0, node.log()


def test_invalid_startup_values_leave_the_node_unconfigured(tmp_path):
    config = yaml.safe_load(PARAMS.read_text())
    values = config["/**"]["ros__parameters"]
    values["window"]["period"] = -1.0
    values["window"]["frames"] = "many"
    values["model"]["device"] = "gpu"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    domain = domain_id("startup")
    probe = Probe(domain)
    probe.collect_diagnostics()
    node = start_ssr_node(domain, tmp_path, {"model.kind": "ground_truth", "model.scene_dir": str(synth_scene())},
                          params_file=bad)
    try:
        stats = probe.wait_stats(lambda s: s.get("lifecycle_state") == "unconfigured" and s.get("error"), 30,
                                 "no start-up error reported")
        for name in ("window.period", "window.frames", "model.device"):
            assert name in stats["error"] and name in node.log()
        assert "model not loaded" in _ask(probe).error
        assert probe.lifecycle("/ssr_node", "configure") == "unconfigured"  # still refused
        results = probe.set_parameters("/ssr_node", **{"window.period": 1.0, "window.frames": 16,
                                                       "model.device": "cpu"})
        assert all(r.successful for r in results), results
        assert probe.lifecycle("/ssr_node", "configure") == "inactive"
        assert probe.lifecycle("/ssr_node", "activate") == "active"
        assert node.alive
    finally:
        probe.close()
        assert node.stop() == 0, node.log()
