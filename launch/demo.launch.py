"""The demo graph: ssr_replay publishes a synthetic recording into ssr_node (ground-truth stand-in).

    ros2 launch ssr_ros demo.launch.py rviz:=true
    ros2 launch ssr_ros demo.launch.py scene_dir:=/data/synth_0003   # a scene with recording/

Without scene_dir a small scene is rendered first (ssr_core.data, MuJoCo; ~10 s) into `out`.
The stand-in answers from the scene's ground truth: NOT a trained model. On machines without
`launch`, `ssr_demo` runs the same nodes in one process and prints the results.
"""

from __future__ import annotations

import os
from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, LogInfo, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

SHARE = get_package_share_directory("ssr_ros")


def _graph(context):
    scene_dir = LaunchConfiguration("scene_dir").perform(context)
    if not scene_dir:
        from ssr_core.data.synthetic.dataset import synthesize_scene
        from ssr_ros.demo import DEMO_FRAMES, DEMO_HEIGHT, DEMO_SEED, DEMO_WIDTH, demo_scene_id

        out = Path(LaunchConfiguration("out").perform(context)) / "data"
        scene_id = demo_scene_id(DEMO_SEED, DEMO_FRAMES, DEMO_WIDTH, DEMO_HEIGHT)
        scene_dir = str(out / scene_id)
        if not (Path(scene_dir) / "recording").exists():  # the scene `ssr_demo` renders
            synthesize_scene(out, scene_id, seed=DEMO_SEED, num_frames=DEMO_FRAMES, width=DEMO_WIDTH,
                             height=DEMO_HEIGHT, bag=True)
    from ssr_core.data import rosbag_io

    return [
        LogInfo(msg="ssr demo: ground-truth stand-in, NOT a trained model; scene " + scene_dir),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(os.path.join(SHARE, "launch", "ssr.launch.py")),
            launch_arguments={
                "image": rosbag_io.IMAGE_TOPIC, "camera_info": rosbag_io.INFO_TOPIC,
                "camera_pose": rosbag_io.POSE_TOPIC, "model_kind": "ground_truth", "scene_dir": scene_dir,
                "rviz": LaunchConfiguration("rviz").perform(context),
            }.items(),
        ),
        Node(package="ssr_ros", executable="ssr_replay", name="ssr_replay", output="screen",
             parameters=[{"bag": os.path.join(scene_dir, "recording"),
                          "rate": float(LaunchConfiguration("rate").perform(context)),
                          "wait_for_subscribers": 30.0, "at_end": "idle"}]),
    ]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument("scene_dir", default_value="", description="scene with recording/ (empty: render one)"),
        DeclareLaunchArgument("out", default_value="/tmp/ssr_demo", description="where a rendered scene goes"),
        DeclareLaunchArgument("rate", default_value="1.0", description="replay speed factor"),
        DeclareLaunchArgument("rviz", default_value="false", description="also start RViz"),
        OpaqueFunction(function=_graph),
    ])
