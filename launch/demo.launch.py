"""The demo graph: ssr_replay publishes a synthetic recording into ssr_node running the shipped model.

    ros2 launch ssr_ros demo.launch.py rviz:=true                  # the shipped small SSR-3D
    ros2 launch ssr_ros demo.launch.py model:=ground_truth         # the ground-truth stand-in
    ros2 launch ssr_ros demo.launch.py checkpoint:=/models/ssr3d scene_dir:=/data/synth_0003

`model` and `checkpoint` mean what `ssr_demo --model/--checkpoint` mean (ssr_ros.demo.resolve_model):
by default the small SSR-3D trained here (models/ssr3d_small; CPU, ~4 s a window), shown windows of
its own 8 frames of 168x112. Without scene_dir a held-out scene is rendered first at the model's
frame size (ssr_core.data, MuJoCo; ~10 s) into `out`. On machines without `launch`, `ssr_demo` runs
the same nodes in one process, asks a question and scores the boxes against the ground truth.
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
    from ssr_core.data import rosbag_io
    from ssr_ros.demo import DEMO_FRAMES, DEMO_SEED, demo_scene_id, resolve_model

    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    model = resolve_model(arg("model"), arg("checkpoint"))
    scene_dir = arg("scene_dir")
    if not scene_dir:
        from ssr_core.data.synthetic.dataset import synthesize_scene

        out = Path(arg("out")) / "data"
        scene_id = demo_scene_id(DEMO_SEED, DEMO_FRAMES, model.width, model.height)
        scene_dir = str(out / scene_id)
        if not (Path(scene_dir) / "recording").exists():  # the scene `ssr_demo` renders
            synthesize_scene(out, scene_id, seed=DEMO_SEED, num_frames=DEMO_FRAMES, width=model.width,
                             height=model.height, bag=True)
    what = (f"SSR checkpoint {model.checkpoint}" if model.kind == "ssr"
            else f"{model.kind} (NOT a trained model)")
    return [
        LogInfo(msg=f"ssr demo: {what}, {model.window_frames}-frame windows; scene {scene_dir}"),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(os.path.join(SHARE, "launch", "ssr.launch.py")),
            launch_arguments={
                "image": rosbag_io.IMAGE_TOPIC, "camera_info": rosbag_io.INFO_TOPIC,
                "camera_pose": rosbag_io.POSE_TOPIC, "model_kind": model.kind, "checkpoint": model.checkpoint,
                "scene_dir": scene_dir, "window_frames": str(model.window_frames), "device": arg("device"),
                "rviz": arg("rviz"),
            }.items(),
        ),
        Node(package="ssr_ros", executable="ssr_replay", name="ssr_replay", output="screen",
             parameters=[{"bag": os.path.join(scene_dir, "recording"), "rate": float(arg("rate")),
                          "wait_for_subscribers": 30.0, "at_end": "idle"}]),
    ]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument("model", default_value="auto",
                              description="auto | ssr | ground_truth | tiny_random (auto: checkpoint, else the "
                                          "shipped small SSR-3D, else the ground-truth stand-in)"),
        DeclareLaunchArgument("checkpoint", default_value="", description="SSR checkpoint (empty: the shipped one)"),
        DeclareLaunchArgument("device", default_value="", description="auto | cuda | npu | cpu (empty: params file)"),
        DeclareLaunchArgument("scene_dir", default_value="", description="scene with recording/ (empty: render one)"),
        DeclareLaunchArgument("out", default_value="/tmp/ssr_demo", description="where a rendered scene goes"),
        DeclareLaunchArgument("rate", default_value="1.0", description="replay speed factor"),
        DeclareLaunchArgument("rviz", default_value="false", description="also start RViz"),
        OpaqueFunction(function=_graph),
    ])
