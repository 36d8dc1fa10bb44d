"""Launch ssr_node with the shared parameter file, camera remappings and an optional namespace.

    ros2 launch ssr_ros ssr.launch.py image:=/camera/color/image_raw \
        camera_info:=/camera/color/camera_info checkpoint:=/models/ssr-3d vggt_path:=/models/vggt.pt

Model arguments left empty keep the parameter file's values. Without `launch` installed, run
`ssr_node --ros-args --params-file config/ssr_node.yaml -r image:=...` (or `ssr_demo`); see docs/ROS.md.
"""

from __future__ import annotations

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

SHARE = get_package_share_directory("ssr_ros")

ARGUMENTS = [
    ("namespace", "", "namespace of ssr_node"),
    ("params_file", os.path.join(SHARE, "config", "ssr_node.yaml"), "ssr_node parameter file"),
    ("image", "/camera/image_raw", "colour image topic (sensor_msgs/Image)"),
    ("camera_info", "/camera/camera_info", "camera info topic"),
    ("camera_pose", "/camera_pose", "camera pose topic (geometry_msgs/PoseStamped), used without tf2"),
    ("model_kind", "", "ssr | base | tiny_random | ground_truth (empty: from params_file)"),
    ("checkpoint", "", "SSR checkpoint directory (empty: from params_file)"),
    ("vggt_path", "", "VGGT aggregator weights (empty: from params_file)"),
    ("scene_dir", "", "scene directory for the ground-truth stand-in (empty: from params_file)"),
    ("device", "", "auto | cuda | npu | cpu (empty: from params_file)"),
    ("fixed_frame", "", "gravity-aligned fixed frame of the canonical frames and the map (empty: from params_file)"),
    ("map_path", "", "object map file, loaded at configure and saved at shutdown (empty: from params_file)"),
    ("window_frames", "", "frames per window; a checkpoint's num_frames (empty: from params_file)"),
    ("log_level", "info", "ssr_node log level"),
    ("rviz", "false", "also start RViz with rviz/ssr.rviz"),
]
# launch argument -> parameter it overrides when non-empty
OVERRIDES = {"model_kind": "model.kind", "checkpoint": "model.checkpoint", "vggt_path": "model.vggt_path",
             "scene_dir": "model.scene_dir", "device": "model.device", "fixed_frame": "frames.fixed_frame",
             "map_path": "map.path", "window_frames": "window.frames"}


def _ssr_node(context):
    from ssr_ros.node_params import defaults

    value = {name: LaunchConfiguration(name).perform(context) for name, _, _ in ARGUMENTS}
    kinds = defaults()  # each parameter's declared type: a launch argument is text
    overrides = {param: type(kinds[param])(value[arg]) for arg, param in OVERRIDES.items() if value[arg]}
    return [Node(
        package="ssr_ros", executable="ssr_node", name="ssr_node", namespace=value["namespace"],
        parameters=[value["params_file"], overrides],
        remappings=[("image", value["image"]), ("camera_info", value["camera_info"]),
                    ("camera_pose", value["camera_pose"])],
        arguments=["--ros-args", "--log-level", value["log_level"]],
        output="screen",
    )]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        *(DeclareLaunchArgument(name, default_value=default, description=text) for name, default, text in ARGUMENTS),
        OpaqueFunction(function=_ssr_node),
        Node(package="rviz2", executable="rviz2", arguments=["-d", os.path.join(SHARE, "rviz", "ssr.rviz")],
             condition=IfCondition(LaunchConfiguration("rviz")), output="screen"),
    ])
