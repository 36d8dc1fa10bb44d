"""launch_testing check of launch/demo.launch.py: ssr_replay plays a synthetic recording into ssr_node
and windows are perceived. Skipped where launch_testing is absent (ROS 2 from PyPI); there the same
graph is tested through `ssr_demo` (test_ros_demo.py)."""

from __future__ import annotations

import os
import unittest

import pytest

pytest.importorskip("launch_testing", reason="launch_testing is not installed (ROS 2 from PyPI has none); "
                    "the same graph is tested through ssr_demo in tests/test_ros_demo.py")
pytest.importorskip("launch_ros", reason="launch_ros is not installed")

import launch_testing.actions  # noqa: E402
from ament_index_python.packages import get_package_share_directory  # noqa: E402
from launch import LaunchDescription  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from ros_helpers import domain_id, synth_scene  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]


@pytest.mark.launch_test
def generate_test_description():
    os.environ.update(ROS_DOMAIN_ID=str(domain_id("launch_demo")), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    path = os.path.join(get_package_share_directory("ssr_ros"), "launch", "demo.launch.py")
    arguments = {"scene_dir": str(synth_scene()), "rate": "2.0"}
    included = IncludeLaunchDescription(PythonLaunchDescriptionSource(path), launch_arguments=arguments.items())
    return LaunchDescription([included, launch_testing.actions.ReadyToTest()])


class TestLaunch(unittest.TestCase):
    def test_replay_feeds_windows(self, proc_output):
        proc_output.assertWaitFor("active: image topic /camera/image_raw", timeout=60)
        proc_output.assertWaitFor("replay finished", timeout=90)
        proc_output.assertWaitFor("objects,", timeout=30)  # a window summary line of ssr_node
