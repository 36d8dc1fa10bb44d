"""ssr_ros: the ROS 2 package (ament_python) that ships ssr_core, ssr_ros and training.

`pip install -e .` (bare machine, see scripts/setup.sh) and `colcon build` (robot) both use it.
"""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "ssr_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    description="SSR (Structured Scene Reasoning) for ROS 2: 7-DoF boxes, LocalCogMap scene graphs, spatial QA",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["ssr_core", "ssr_core.*", "ssr_ros", "ssr_ros.*", "training", "training.*"]),
    package_data={"training": ["configs/*.yaml", "configs/accelerate/*.yaml", "configs/data/*.yaml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
        (f"share/{PACKAGE}/rviz", glob("rviz/*.rviz")),
        (f"share/{PACKAGE}/models/ssr3d_small", glob("models/ssr3d_small/*.*")),
        (f"share/{PACKAGE}/models/ssr3d_small/aggregator", glob("models/ssr3d_small/aggregator/*")),
    ],
    # Heavy dependencies (torch, transformers, ROS) come from requirements.txt or the robot's
    # ROS install, so that `colcon build` never pulls a second torch next to a vendor build.
    install_requires=["numpy", "scipy"],
    zip_safe=True,
    entry_points={
        "console_scripts": [
            "ssr = ssr_core.commands.main:main",
            "ssr_node = ssr_ros.ssr_node:main",
            "ssr_replay = ssr_ros.replay_node:main",
            "ssr_demo = ssr_ros.demo:main",
        ],
    },
)
