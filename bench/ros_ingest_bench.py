"""Camera ingest under load: 1280x720 rgb8 at 30 Hz into ssr_node while a slow model runs.

Starts ssr_node (ground-truth stand-in sleeping `--latency` s per model call, on a tiny rendered
scene) in its own process, publishes synthetic frames from this one for `--seconds`, samples the
node's RSS, and reports frames sent vs received, image-callback and decode times (the node's
/diagnostics), window counts and memory.

    python bench/ros_ingest_bench.py --seconds 60
    python bench/ros_ingest_bench.py --seconds 60 --reliability reliable
    python bench/ros_ingest_bench.py --seconds 60 --large-shm   # Fast DDS 32 MB shared-memory segments

Fast DDS' default shared-memory segment is 512 kB: best-effort frames larger than that travel as
UDP fragments and most are lost; `--large-shm` uses config/fastdds_large_shm.xml (larger segments, see docs/ROS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
LARGE_SHM_PROFILE = REPO / "config" / "fastdds_large_shm.xml"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--rate", type=float, default=30.0)
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--latency", type=float, default=0.5, help="stand-in sleep per model call (s)")
    p.add_argument("--reliability", choices=("best_effort", "reliable"), default="best_effort")
    p.add_argument("--large-shm", action="store_true", help="Fast DDS profile with 32 MB SHM segments")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ssr_ingest_bench_"))
    domain = random.choice([d for d in range(1, 101) if d not in (61, 62)])
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    if args.large_shm:
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(LARGE_SHM_PROFILE)
    os.environ.update({k: env[k] for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE")})
    if args.large_shm:
        os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = env["FASTDDS_DEFAULT_PROFILES_FILE"]
    sys.path.insert(0, str(REPO))
    from ssr_core.data.synthetic.dataset import synthesize_scene

    synthesize_scene(work, "scene", seed=1, num_frames=16, width=160, height=120, bag=True)
    log = open(work / "ssr_node.log", "w")
    node = subprocess.Popen(
        [sys.executable, "-m", "ssr_ros.ssr_node", "--ros-args", "--params-file", str(REPO / "config" / "ssr_node.yaml"),
         "-p", "model.kind:=ground_truth", "-p", f"model.scene_dir:={work / 'scene'}",
         "-p", f"model.standin_latency:={float(args.latency)}", "-p", f"qos.image_reliability:={args.reliability}",
         "-r", "image:=/camera/image_raw"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)

    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image

    rclpy.init()
    client = rclpy.create_node("ingest_bench")
    stats: dict[str, str] = {}

    def on_diag(msg):
        for status in msg.status:
            if status.name.startswith("ssr_node:"):
                stats.clear()
                stats.update({kv.key: kv.value for kv in status.values})

    client.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
    pub = client.create_publisher(Image, "/camera/image_raw", 10)
    executor = SingleThreadedExecutor()
    executor.add_node(client)
    threading.Thread(target=executor.spin, daemon=True).start()
    try:
        deadline = time.monotonic() + 60
        while stats.get("lifecycle_state") != "active" or pub.get_subscription_count() == 0:
            if time.monotonic() > deadline or node.poll() is not None:
                raise SystemExit(f"ssr_node did not start:\n{(work / 'ssr_node.log').read_text()}")
            time.sleep(0.1)
        rng = np.random.default_rng(0)
        frame = Image(height=args.height, width=args.width, encoding="rgb8", step=3 * args.width)
        frame.header.frame_id = "camera_optical"
        frame.data = rng.integers(0, 256, 3 * args.width * args.height, dtype=np.uint8).tobytes()
        rss = [rss_mb(node.pid)]
        sent, start, next_rss = 0, time.monotonic(), 1.0
        while (elapsed := time.monotonic() - start) < args.seconds:
            frame.header.stamp = client.get_clock().now().to_msg()
            pub.publish(frame)
            sent += 1
            if elapsed >= next_rss:
                rss.append(rss_mb(node.pid))
                next_rss += 1.0
            time.sleep(max(0.0, start + sent / args.rate - time.monotonic()))
        time.sleep(3.0)  # last windows and a fresh diagnostics message
        rss.append(rss_mb(node.pid))
        result = {
            "seconds": args.seconds, "rate_hz": args.rate, "size": f"{args.width}x{args.height}",
            "reliability": args.reliability, "large_shm": args.large_shm, "standin_latency_s": args.latency,
            "frames_sent": sent, "frames_received": int(stats["images_received"]),
            "frames_buffered": int(stats["frames_buffered"]),
            "frames_dropped_before_decoding": int(stats["frames_dropped_ingest"]),
            "callback_ms_median": float(stats["callback_ms_median"]), "callback_ms_p99": float(stats["callback_ms_p99"]),
            "callback_ms_max": float(stats["callback_ms_max"]),
            "decode_ms_median": float(stats["decode_ms_median"]), "decode_ms_p99": float(stats["decode_ms_p99"]),
            "windows_started": int(stats["windows_started"]), "windows_processed": int(stats["windows_processed"]),
            "windows_skipped": int(stats["windows_skipped"]),
            "rss_mb_start": round(rss[0], 1), "rss_mb_half": round(rss[len(rss) // 2], 1),
            "rss_mb_max": round(max(rss), 1), "rss_mb_end": round(rss[-1], 1),
        }
        width = max(map(len, result))
        for key, value in result.items():
            print(f"{key:<{width}}  {value}")
        if args.json:
            args.json.write_text(json.dumps(result, indent=1))
    finally:
        node.send_signal(signal.SIGINT)
        try:
            node.wait(10)
        except subprocess.TimeoutExpired:
            node.kill()
        executor.shutdown()
        rclpy.try_shutdown()
        log.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
