"""Shared helpers for the ROS tests: isolated DDS domains, node processes, an in-test probe node.

Every test runs its nodes as real processes on its own ROS_DOMAIN_ID with discovery limited to
localhost, and talks to them through a `Probe` (an rclpy node in its own context, spun in a thread).
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "config" / "ssr_node.yaml"
RESERVED_DOMAINS = {61, 62}  # tests/test_interfaces.py
# Topic names of ssr_core.data recordings (rosbag_io), remapped onto ssr_node's relative names.
RECORDING_REMAPS = ("image:=/camera/image_raw", "camera_info:=/camera/camera_info", "camera_pose:=/camera_pose")


def domain_id(name: str) -> int:
    """A ROS_DOMAIN_ID in 1..100 from the test name, the pytest-xdist worker and this process id,
    so concurrent runs (other engineers, other workers) rarely meet on one domain."""
    key = f"{name}/{os.environ.get('PYTEST_XDIST_WORKER', '')}/{os.getpid()}"
    candidates = [d for d in range(1, 101) if d not in RESERVED_DOMAINS]
    return candidates[int(hashlib.sha256(key.encode()).hexdigest(), 16) % len(candidates)]


def ros_env(domain: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])))
    return env


@functools.cache
def synth_scene(frames: int = 48) -> Path:
    """One small synthetic scene with its rosbag2 recording, rendered once per test session."""
    from ssr_core.data.synthetic.dataset import synthesize_scene

    root = Path(tempfile.mkdtemp(prefix="ssr_ros_test_"))
    atexit.register(shutil.rmtree, root, True)
    synthesize_scene(root, "synth_0000", seed=3, num_frames=frames, width=320, height=240, bag=True)
    return root / "synth_0000"


class NodeProcess:
    """A node in its own process; output goes to a log file (a pipe could fill up and block it)."""

    def __init__(self, module: str, args: list[str], domain: int, log_path: Path):
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", module, *args], env=ros_env(domain),
                                     stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def stop(self, timeout: float = 10.0) -> int:
        if self.alive:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def ros_args(params: dict, remaps=RECORDING_REMAPS, params_file: Path | None = PARAMS) -> list[str]:
    args = ["--ros-args"]
    if params_file is not None:
        args += ["--params-file", str(params_file)]
    for name, value in params.items():
        args += ["-p", f"{name}:={value}"]
    for remap in remaps:
        args += ["-r", remap]
    return args


def start_ssr_node(domain: int, tmp: Path, params: dict, **kw) -> NodeProcess:
    return NodeProcess("ssr_ros.ssr_node", ros_args(params, **kw), domain, tmp / "ssr_node.log")


def start_replay(domain: int, tmp: Path, bag: Path, **params) -> NodeProcess:
    params = {"bag": str(bag), "wait_for_subscribers": 20.0, **params}
    return NodeProcess("ssr_ros.replay_node", ros_args(params, remaps=(), params_file=None), domain,
                       tmp / "replay.log")


class Probe:
    """A test-side node on `domain`: subscriptions that collect, service calls with timeouts."""

    def __init__(self, domain: int, name: str = "probe"):
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import MultiThreadedExecutor

        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=4, context=self.context)
        self.executor.add_node(self.node)
        self.received: dict[str, list] = {}
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # the context is shut down under it at close()
            pass

    def collect(self, topic: str, msg_type, qos=10) -> list:
        store = self.received.setdefault(topic, [])
        self.node.create_subscription(msg_type, topic, store.append, qos)
        return store

    def collect_diagnostics(self) -> list:
        from diagnostic_msgs.msg import DiagnosticArray

        return self.collect("/diagnostics", DiagnosticArray)

    def latest_stats(self, node_name: str = "ssr_node") -> dict[str, str]:
        for msg in reversed(self.received.get("/diagnostics", [])):
            for status in msg.status:
                if status.name.startswith(f"{node_name}:"):
                    return {kv.key: kv.value for kv in status.values}
        return {}

    def wait_stats(self, predicate, timeout: float, what: str, node_name: str = "ssr_node") -> dict[str, str]:
        wait_for(lambda: predicate(self.latest_stats(node_name)), timeout,
                 lambda: f"{what}; last diagnostics: {self.latest_stats(node_name)}")
        return self.latest_stats(node_name)

    def call(self, srv_type, name: str, request, timeout: float = 20.0):
        client = self.node.create_client(srv_type, name)
        try:
            assert client.wait_for_service(timeout_sec=timeout), f"service {name} not available"
            future = client.call_async(request)
            wait_for(future.done, timeout, f"no reply from {name}")
            return future.result()
        finally:
            self.node.destroy_client(client)

    def call_async(self, srv_type, name: str, request, timeout: float = 20.0):
        client = self.node.create_client(srv_type, name)
        assert client.wait_for_service(timeout_sec=timeout), f"service {name} not available"
        return client.call_async(request)

    def set_parameters(self, node: str, **values):
        """Set parameters through the node's parameter service; one SetParametersResult per value."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        request = SetParameters.Request(parameters=[Parameter(k, value=v).to_parameter_msg()
                                                    for k, v in values.items()])
        return self.call(SetParameters, f"{node}/set_parameters", request).results

    def lifecycle(self, node: str, transition: str | None = None) -> str:
        """Trigger `transition` (e.g. "configure") when given; return the state label after it."""
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState, GetState

        if transition is not None:
            self.call(ChangeState, f"{node}/change_state", ChangeState.Request(transition=Transition(label=transition)))
        return self.call(GetState, f"{node}/get_state", GetState.Request()).current_state.label

    def close(self) -> None:
        import rclpy

        self.executor.shutdown(timeout_sec=2)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=5)


def wait_for(predicate, timeout: float, message) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(message() if callable(message) else message)
        time.sleep(0.05)


def image_msg(width: int, height: int, encoding: str = "rgb8", stamp_ns: int = 0, frame_id: str = "camera_optical",
              seed: int = 0):
    """A valid Image of pseudo-random pixels (cheap: one tiled random row)."""
    import numpy as np
    from sensor_msgs.msg import Image

    from ssr_ros.outputs.messages import stamp_from_ns

    channels = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}[encoding]
    row = np.random.default_rng(seed).integers(0, 256, width * channels, dtype=np.uint8)
    msg = Image(height=height, width=width, encoding=encoding, step=width * channels)
    msg.header.stamp = stamp_from_ns(stamp_ns)
    msg.header.frame_id = frame_id
    msg.data = np.tile(row, height).tobytes()
    return msg
