"""ssr_node and ssr_replay command lines: --help prints usage (and starts nothing), bad arguments and
bad recordings end in one line on stderr with exit status 1, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("rclpy", reason="needs rclpy (ROS 2)")

from ros_helpers import REPO, domain_id, ros_env  # noqa: E402

pytestmark = pytest.mark.ros
MAIN = {"ssr_node": "from ssr_ros.ssr_node import main; main()",
        "ssr_replay": "from ssr_ros.replay_node import main; main()"}


def _run(executable: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", MAIN[executable], *args], cwd=REPO, capture_output=True,
                          text=True, timeout=60, env=ros_env(domain_id(f"cli/{executable}")))


@pytest.mark.parametrize("executable, parameter", [("ssr_node", "window.frames"), ("ssr_replay", "bag")])
def test_help_prints_usage_and_parameters(executable, parameter):
    run = _run(executable, "--help")
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"usage: {executable}") and parameter in run.stdout and "--ros-args" in run.stdout
    assert "configured" not in run.stdout + run.stderr  # no node was started


@pytest.mark.parametrize("executable, args, message", [
    ("ssr_node", ["--frames", "8"], "ssr_node: error: unrecognized arguments: --frames 8"),
    ("ssr_node", ["--ros-args", "-p", "model.kind"], "ssr_node: error: bad ROS arguments"),
    ("ssr_replay", [], "ssr_replay: error: no recording given"),
    ("ssr_replay", ["--ros-args", "-p", "bag:=/no/such/recording"], "/no/such/recording: no such recording"),
    ("ssr_replay", ["--ros-args", "-p", f"bag:={REPO / 'tests'}"], "not a readable rosbag2 recording"),
    ("ssr_replay", ["--ros-args", "-p", f"bag:={REPO / 'tests'}", "-p", "rate:=1000.0"], "rate out of range"),
])
def test_bad_arguments_are_one_line_errors(executable, args, message):
    run = _run(executable, *args)
    assert run.returncode == 1, run.stderr
    ours = [line for line in run.stderr.splitlines() if line.startswith(f"{executable}: ")]
    assert len(ours) == 1 and message in ours[0], run.stderr
    assert "Traceback" not in run.stderr
