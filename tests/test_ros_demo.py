"""The demo graph through the `ssr_demo` entry point (what launch/demo.launch.py starts, for machines
without `launch`), plus static checks of the launch files and the RViz config."""

from __future__ import annotations

import py_compile
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from ros_helpers import REPO, domain_id, ros_env

DEMO_LIMIT_S = 180.0  # the demo must finish in under 3 minutes on 2 cores


@pytest.mark.parametrize("name", ["ssr.launch.py", "demo.launch.py"])
def test_launch_files_compile(name, tmp_path):
    py_compile.compile(str(REPO / "launch" / name), cfile=str(tmp_path / "x.pyc"), doraise=True)


def test_rviz_config_shows_markers_tf_and_image():
    displays = yaml.safe_load((REPO / "rviz" / "ssr.rviz").read_text())["Visualization Manager"]["Displays"]
    by_class = {d["Class"].split("/")[-1]: d for d in displays}
    marker_topics = {d["Topic"]["Value"]: d for d in displays if d["Class"].endswith("MarkerArray")}
    assert set(marker_topics) == {"/ssr_node/markers", "/ssr_node/map_markers"}
    assert marker_topics["/ssr_node/map_markers"]["Topic"]["Durability Policy"] == "Transient Local"  # latched map
    assert by_class["Image"]["Topic"]["Value"] == "/camera/image_raw" and "TF" in by_class


@pytest.mark.ros
@pytest.mark.slow
def test_ssr_demo_end_to_end(tmp_path: Path):
    pytest.importorskip("ssr_msgs.msg", reason="needs the built ssr_msgs interface package (scripts/setup.sh)")
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "ssr_ros.demo", "--out", str(tmp_path / "out")],
                          env=ros_env(domain_id("demo")), cwd=REPO, capture_output=True, text=True,
                          timeout=DEMO_LIMIT_S + 30)
    elapsed = time.monotonic() - t0
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert elapsed < DEMO_LIMIT_S
    assert "ground-truth stand-in" in out and "NOT a trained model" in out
    assert "Detections7DoF (window 1, 32 frames" in out and "SceneGraph:" in out
    answer = next(line for line in out.splitlines() if line.startswith("A: "))
    value, truth = answer[3:].split("  (")[0], answer.split("ground truth: ")[1].rstrip(")")
    assert value == truth, answer  # the stand-in answers the generated question with its ground truth
    png = tmp_path / "out" / "bev.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
