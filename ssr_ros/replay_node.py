"""ssr_replay: publish a rosbag2 recording into the live graph at its recorded rate.

`ros2 bag play` is absent where ROS comes from PyPI, so this small publisher stands in for it. Records
are read with rosbags and decoded with rclpy's own message classes (a corrupt record is skipped and
logged instead of published). /tf is replayed like any topic. When looping, header stamps of each
pass are shifted by the recording's length so time never runs backwards for tf2 and ssr_node.
"""

from __future__ import annotations

import importlib
import threading
import time
from pathlib import Path
from typing import Any

import rclpy
from rcl_interfaces.msg import FloatingPointRange, ParameterDescriptor
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from rosbags.rosbag2 import Reader

from ssr_core.errors import InputError
from ssr_ros.node_cli import check_command_line, fail
from ssr_ros.outputs.messages import ns_from_stamp, stamp_from_ns


def message_class(msgtype: str):
    """'sensor_msgs/msg/Image' -> the rclpy class, or None when that package is not installed (or
    the name is not of that form, e.g. a ROS 1 'pkg/Type')."""
    parts = msgtype.split("/")
    if len(parts) != 3 or not all(p.isidentifier() for p in parts):
        return None
    package, kind, name = parts
    try:
        return getattr(importlib.import_module(f"{package}.{kind}"), name)
    except (ImportError, AttributeError, ValueError):
        return None


def shift_stamps(msg, offset_ns: int) -> None:
    """Move a message's header stamp (and a TFMessage's transform stamps) by offset_ns, in place."""
    headers = [t.header for t in msg.transforms] if hasattr(msg, "transforms") else []
    if hasattr(msg, "header"):
        headers.append(msg.header)
    for h in headers:
        h.stamp = stamp_from_ns(ns_from_stamp(h.stamp) + offset_ns)


def topic_qos(topic: str) -> QoSProfile:
    if topic == "/tf_static":
        return QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    return QoSProfile(depth=100 if topic == "/tf" else 10, reliability=ReliabilityPolicy.RELIABLE)


class ReplayError(InputError):
    """A recording that cannot be replayed, or a bad parameter; the message is the whole story."""


# name, default, description, (min, max) for floats
PARAMETERS: tuple[tuple[str, Any, str, tuple[float, float] | None], ...] = (
    ("bag", "", "rosbag2 directory (or .mcap / .db3 file) to replay", None),
    ("rate", 1.0, "playback speed factor", (0.01, 100.0)),
    ("loop", False, "start again at the end (stamps shifted per pass)", None),
    ("at_end", "exit", "exit | idle: what to do after the last message", None),
    ("topics", [""], "topics to replay; [''] = all", None),
    ("wait_for_subscribers", 0.0, "seconds to wait until every replayed topic but /tf has a subscriber "
     "before starting (0 = start at once); any subscriber counts, see start_delay", (0.0, 600.0)),
    ("start_delay", 0.0, "seconds to wait before the first message (after wait_for_subscribers)", (0.0, 600.0)),
)


def open_recording(bag: Path) -> Reader:
    """The opened rosbag2 reader, or ReplayError saying what is wrong with `bag`."""
    if not str(bag) or str(bag) == ".":
        raise ReplayError("no recording given: set -p bag:=<rosbag2 directory or .mcap/.db3 file>")
    if not bag.exists():
        raise ReplayError(f"{bag}: no such recording")
    try:
        reader = Reader(bag)
        reader.open()
    except Exception as exc:  # rosbags raises several types for a missing metadata.yaml, bad storage, ...
        raise ReplayError(f"{bag}: not a readable rosbag2 recording ({type(exc).__name__}: {exc})") from None
    return reader


class ReplayNode(Node):
    def __init__(self, node_name: str = "ssr_replay", **kwargs):
        super().__init__(node_name, **kwargs)
        for name, default, text, bounds in PARAMETERS:
            descriptor = ParameterDescriptor(description=text, read_only=True)
            if bounds is not None:
                descriptor.floating_point_range = [FloatingPointRange(from_value=bounds[0], to_value=bounds[1])]
            self.declare_parameter(name, default, descriptor)
        self.bag = Path(self.get_parameter("bag").value)
        self.rate = self.get_parameter("rate").value
        self.loop = self.get_parameter("loop").value
        self.at_end = self.get_parameter("at_end").value
        if self.at_end not in ("exit", "idle"):
            raise ReplayError(f"at_end must be exit or idle, got {self.at_end!r}")
        wanted = {t for t in self.get_parameter("topics").value if t}
        self.finished = threading.Event()
        self.published = 0
        self.published_by_topic: dict[str, int] = {}
        self.skipped = 0
        self._undecodable: set[str] = set()  # topics already warned about
        self._stop = threading.Event()
        self._reader = open_recording(self.bag)
        self._pubs: dict[str, tuple[type, Publisher]] = {}
        for conn in self._reader.connections:
            if wanted and conn.topic not in wanted or conn.topic in self._pubs:
                continue
            cls = message_class(conn.msgtype)
            if cls is None:
                self.get_logger().warning(f"{conn.topic}: type {conn.msgtype} is not installed; not replayed")
                continue
            self._pubs[conn.topic] = (cls, self.create_publisher(cls, conn.topic, topic_qos(conn.topic)))
        self._connections = [c for c in self._reader.connections if c.topic in self._pubs]
        self._span_ns = max(1, self._reader.end_time - self._reader.start_time)
        self.get_logger().info(f"replaying {self.bag} ({self._reader.message_count} messages, "
                               f"{self._span_ns / 1e9:.1f}s) at x{self.rate}: {', '.join(sorted(self._pubs))}")
        self._thread = threading.Thread(target=self._run, name="ssr-replay", daemon=True)
        self._thread.start()

    def _wait_for_subscribers(self) -> None:
        timeout = self.get_parameter("wait_for_subscribers").value
        deadline = time.monotonic() + timeout
        waiting = [pub for topic, (_, pub) in self._pubs.items() if topic not in ("/tf", "/tf_static")]
        while timeout and time.monotonic() < deadline and not self._stop.is_set():
            if all(pub.get_subscription_count() > 0 for pub in waiting):
                return
            time.sleep(0.05)
        if timeout and not self._stop.is_set():
            self.get_logger().warning(f"not every topic has a subscriber after {timeout}s; starting anyway")

    def _run(self) -> None:
        try:
            self._wait_for_subscribers()
            self._stop.wait(self.get_parameter("start_delay").value)
            passes = 0
            if not self._connections:  # looping over nothing would spin a core
                self.get_logger().warning("no topic of the recording can be replayed (filter, or types not installed)")
            while self._connections and not self._stop.is_set():
                self._play(offset_ns=passes * self._span_ns + passes * 1_000_000)
                passes += 1
                if not self.loop:
                    break
            self.get_logger().info(f"replay finished: {self.published} messages published, "
                                   f"{self.skipped} skipped")
        finally:
            self._reader.close()
            self.finished.set()

    def _play(self, offset_ns: int) -> None:
        start_wall, start_bag = time.monotonic(), self._reader.start_time
        for conn, stamp, raw in self._reader.messages(connections=self._connections):
            due = start_wall + (stamp - start_bag) / 1e9 / self.rate
            if self._stop.wait(max(0.0, due - time.monotonic())):
                return
            cls, pub = self._pubs[conn.topic]
            try:
                msg: Any = deserialize_message(bytes(raw), cls)
            except Exception as exc:  # a corrupt record (or another definition of the type) must not end the replay
                self.skipped += 1
                if conn.topic not in self._undecodable:  # once per topic: a whole topic may be unreadable
                    self._undecodable.add(conn.topic)
                    self.get_logger().warning(f"{conn.topic}: record at {stamp} not decodable ({exc}); skipped "
                                              "(further ones on this topic are only counted)")
                continue
            if offset_ns:
                shift_stamps(msg, offset_ns)
            pub.publish(msg)
            self.published += 1
            self.published_by_topic[conn.topic] = self.published_by_topic.get(conn.topic, 0) + 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def main(args=None) -> None:
    argv = check_command_line(
        "ssr_replay", "Publish a rosbag2 recording into the live graph at its recorded rate (stands in for "
        "`ros2 bag play`). Example: ssr_replay --ros-args -p bag:=recording -p rate:=1.0",
        [(name, default, text) for name, default, text, _ in PARAMETERS], args)
    try:
        rclpy.init(args=argv)
    except RuntimeError as exc:  # rclpy's RCLError: malformed --ros-args
        fail("ssr_replay", f"bad ROS arguments: {str(exc).split(', at ')[0]}")
    try:
        node = ReplayNode()
    except (ReplayError, ParameterException) as exc:  # bad bag or parameter: one line, not a traceback
        rclpy.try_shutdown()
        fail("ssr_replay", str(exc))
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while rclpy.ok() and not (node.finished.is_set() and node.at_end == "exit"):
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.stop()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
