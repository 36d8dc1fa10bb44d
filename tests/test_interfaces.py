"""ssr_msgs across real DDS: messages between two processes, a service called from a third."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros
PEERS = Path(__file__).with_name("interface_peers.py")


def _env(domain_id: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(ROS_DOMAIN_ID=str(domain_id), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1")
    return env


def _start(mode: str, domain_id: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(PEERS), mode], env=_env(domain_id),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen, timeout: float = 60) -> list:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"peer failed ({proc.returncode}): {err[-2000:]}"
    return json.loads(out.strip().splitlines()[-1])


def test_detections_and_scene_graph_cross_processes():
    pytest.importorskip("ssr_msgs.msg", reason="ssr_msgs not built: run scripts/setup.sh")
    publisher = _start("publish", 61)
    try:
        received = _finish(_start("subscribe", 61))
    finally:
        publisher.kill()
        publisher.communicate()
    det = received["detections"]
    assert det["frame_id"] == "ssr_canonical" and det["stamp"] == [12, 345]
    assert det["window_id"] == 7 and det["num_frames"] == 32
    assert det["boxes"] == [
        ["chair_0", "chair", 1.0, -2.0, 0.4, 0.5, 0.6, 0.9, -math.pi / 3, 0.5],
        ["table_0", "table", 2.0, -2.0, 0.4, 0.5, 0.6, 1.9, -math.pi / 3, 0.75],
    ]
    graph = received["scene_graph"]
    assert graph["ids"] == ["chair_0", "table_0", "lamp_0"] and graph["labels"] == ["chair", "table", "lamp"]
    assert graph["x"] == [0.0, 1.0, 2.5] and graph["y"] == [0.0, 0.5, -1.0]
    assert graph["triplets"] == [["chair_0", "table_0", "lamp_0", [5, 5], [5, 1], [9, 1], False, True, 0.25]]


def test_ask_spatial_service_from_another_process():
    pytest.importorskip("ssr_msgs.srv", reason="ssr_msgs not built: run scripts/setup.sh")
    server = _start("serve", 62)
    try:
        assert server.stdout is not None and json.loads(server.stdout.readline()) == {"ready": True}
        open_q, choice, empty = _finish(_start("call", 62))
    finally:
        server.kill()
        server.communicate()
    assert open_q == [True, "2.5", "", -1, 2.5, True, 3]
    assert choice == [True, "B. lamp", "", 1, None, False, 5]
    assert empty == [False, "", "empty question", 0, 0.0, False, 3]
