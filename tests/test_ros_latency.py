"""A slow model never slows the camera path: image callbacks stay under 5 ms at p99 while the
stand-in sleeps, every started window is processed or counted as skipped, and the ask queue
reports timeouts and overflow instead of blocking."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("rclpy", reason="needs rclpy (ROS 2)")
pytest.importorskip("ssr_msgs.msg", reason="needs the built ssr_msgs interface package (scripts/setup.sh)")

from ros_helpers import Probe, domain_id, image_msg, start_ssr_node, synth_scene, wait_for  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from ssr_msgs.srv import AskSpatial  # noqa: E402

from ssr_core.data.rosbag_io import START_NS  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]
RATE_HZ, SECONDS = 30.0, 6.0


def test_slow_model_keeps_image_callbacks_fast_and_counts_windows(tmp_path):
    domain = domain_id("latency")
    probe = Probe(domain)
    probe.collect_diagnostics()
    node = start_ssr_node(domain, tmp_path, {
        "model.kind": "ground_truth", "model.scene_dir": str(synth_scene()), "model.standin_latency": 0.25,
        "window.period": 0.3, "window.frames": 16, "window.min_frames": 4,
        "ask.queue_size": 1, "ask.timeout": 0.2,
        # best effort drops most 640x480 frames with Fast DDS' default 512 kB shared-memory segments
        "qos.image_reliability": "reliable",
    })
    try:
        probe.wait_stats(lambda s: s.get("lifecycle_state") == "active", 30, "ssr_node did not become active")
        pub = probe.node.create_publisher(Image, "/camera/image_raw", 10)
        wait_for(lambda: pub.get_subscription_count() > 0, 10, "ssr_node did not subscribe")
        frame = image_msg(640, 480)
        sent, start = 0, time.monotonic()
        asks = []
        while time.monotonic() - start < SECONDS:
            frame.header.stamp.sec, frame.header.stamp.nanosec = divmod(START_NS + sent * 33_333_333, 10**9)
            pub.publish(frame)
            sent += 1
            if not asks and int(probe.latest_stats().get("windows_processed", 0)) >= 1:
                # two questions at once on the latest window while windows keep running
                asks = [probe.call_async(AskSpatial, "/ssr_node/ask", AskSpatial.Request(question="How many?"))
                        for _ in range(2)]
            time.sleep(max(0.0, start + sent / RATE_HZ - time.monotonic()))
        wait_for(lambda: asks and all(a.done() for a in asks), 10, "asks not sent or got no reply")
        errors = sorted(a.result().error.split(":")[0] for a in asks)
        assert errors == ["queue full", "timeout"], [a.result().error for a in asks]

        stats = probe.wait_stats(
            lambda s: int(s["windows_started"]) == int(s["windows_processed"]) + int(s["windows_skipped"])
            and int(s["images_received"]) > 0.8 * sent, 15, "windows still in flight or frames lost")
        print(f"sent {sent}, received {stats['images_received']}, callback median "
              f"{stats['callback_ms_median']} ms, p99 {stats['callback_ms_p99']} ms, max {stats['callback_ms_max']} ms, "
              f"decode median {stats['decode_ms_median']} ms, dropped before decoding {stats['frames_dropped_ingest']}, "
              f"windows started {stats['windows_started']} processed {stats['windows_processed']} "
              f"skipped {stats['windows_skipped']}")
        assert float(stats["callback_ms_p99"]) < 5.0
        assert int(stats["windows_skipped"]) > 0  # the model was slower than the window period
        assert int(stats["windows_processed"]) >= 2 and stats["windows_failed"] == "0"
        assert node.alive
    finally:
        probe.close()
        assert node.stop() == 0, node.log()
