"""Separate-process peers for the ssr_msgs interface tests (run as `python interface_peers.py MODE`).

Each mode prints one JSON line on success so the test can compare what crossed DDS.
"""

from __future__ import annotations

import json
import math
import sys
import time

import rclpy
from rclpy.node import Node
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy
from ssr_msgs.msg import BoundingBox7DoF, Detections7DoF, LocalCogMap, SceneGraph
from ssr_msgs.srv import AskSpatial

QOS = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE, durability=QoSDurabilityPolicy.VOLATILE)
TIMEOUT_S = 30.0


def sample_detections() -> Detections7DoF:
    msg = Detections7DoF()
    msg.header.frame_id = "ssr_canonical"
    msg.header.stamp.sec, msg.header.stamp.nanosec = 12, 345
    msg.window_id = 7
    msg.num_frames = 32
    for i, label in enumerate(["chair", "table"]):
        box = BoundingBox7DoF(instance_id=f"{label}_0", label=label, score=0.5 + i * 0.25)
        box.x, box.y, box.z = 1.0 + i, -2.0, 0.4
        box.length, box.width, box.height, box.yaw = 0.5, 0.6, 0.9 + i, -math.pi / 3
        msg.boxes.append(box)
    return msg


def sample_scene_graph() -> SceneGraph:
    msg = SceneGraph()
    msg.header.frame_id = "ssr_canonical"
    msg.window_id = 7
    msg.instance_ids = ["chair_0", "table_0", "lamp_0"]
    msg.labels = ["chair", "table", "lamp"]
    msg.layout_x, msg.layout_y = [0.0, 1.0, 2.5], [0.0, 0.5, -1.0]
    msg.triplets = [
        LocalCogMap(anchor1="chair_0", anchor2="table_0", target="lamp_0", anchor1_cell=[5, 5],
                    anchor2_cell=[5, 1], target_cell=[9, 1], clipped=False, inconsistent=True, residual=0.25)
    ]
    return msg


def detections_to_json(msg: Detections7DoF) -> dict:
    return {
        "frame_id": msg.header.frame_id, "stamp": [msg.header.stamp.sec, msg.header.stamp.nanosec],
        "window_id": msg.window_id, "num_frames": msg.num_frames,
        "boxes": [[b.instance_id, b.label, b.x, b.y, b.z, b.length, b.width, b.height, b.yaw, round(b.score, 6)]
                  for b in msg.boxes],
    }


def scene_graph_to_json(msg: SceneGraph) -> dict:
    return {
        "window_id": msg.window_id, "ids": list(msg.instance_ids), "labels": list(msg.labels),
        "x": list(msg.layout_x), "y": list(msg.layout_y),
        "triplets": [[t.anchor1, t.anchor2, t.target, t.anchor1_cell.tolist(), t.anchor2_cell.tolist(),
                      t.target_cell.tolist(), t.clipped, t.inconsistent, round(t.residual, 6)] for t in msg.triplets],
    }


def publish(node: Node) -> None:
    det_pub = node.create_publisher(Detections7DoF, "ssr/detections", QOS)
    graph_pub = node.create_publisher(SceneGraph, "ssr/scene_graph", QOS)
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        det_pub.publish(sample_detections())
        graph_pub.publish(sample_scene_graph())
        rclpy.spin_once(node, timeout_sec=0.1)


def subscribe(node: Node) -> None:
    received: dict[str, dict] = {}
    node.create_subscription(Detections7DoF, "ssr/detections",
                             lambda m: received.setdefault("detections", detections_to_json(m)), QOS)
    node.create_subscription(SceneGraph, "ssr/scene_graph",
                             lambda m: received.setdefault("scene_graph", scene_graph_to_json(m)), QOS)
    deadline = time.monotonic() + TIMEOUT_S
    while len(received) < 2 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    if len(received) < 2:
        sys.exit(f"timed out; received only {sorted(received)}")
    print(json.dumps(received), flush=True)


def serve(node: Node) -> None:
    def answer(request: AskSpatial.Request, response: AskSpatial.Response) -> AskSpatial.Response:
        response.window_id = request.window_id or 3
        if not request.question:
            response.success, response.error = False, "empty question"
            return response
        response.success = True
        if request.options:
            response.option_index = len(request.options) - 1
            response.answer = request.options[-1]
            response.value, response.has_value = math.nan, False
        else:
            response.option_index = -1
            response.answer, response.value, response.has_value = "2.5", 2.5, True
        response.latency = 0.01
        return response

    node.create_service(AskSpatial, "ssr/ask", answer)
    print(json.dumps({"ready": True}), flush=True)
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)


def call(node: Node) -> None:
    client = node.create_client(AskSpatial, "ssr/ask")
    if not client.wait_for_service(timeout_sec=TIMEOUT_S):
        sys.exit("service not available")
    results = []
    for question, options, window_id in [("How far is the lamp from the chair?", [], 0),
                                         ("Which is closer?", ["A. table", "B. lamp"], 5), ("", [], 0)]:
        future = client.call_async(AskSpatial.Request(question=question, options=options, window_id=window_id))
        rclpy.spin_until_future_complete(node, future, timeout_sec=TIMEOUT_S)
        r = future.result()
        if r is None:
            sys.exit("no response")
        results.append([r.success, r.answer, r.error, r.option_index, None if math.isnan(r.value) else r.value,
                        r.has_value, r.window_id])
    print(json.dumps(results), flush=True)


def main() -> None:
    mode = sys.argv[1]
    rclpy.init()
    node = Node(f"ssr_interface_peer_{mode}")
    try:
        {"publish": publish, "subscribe": subscribe, "serve": serve, "call": call}[mode](node)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
