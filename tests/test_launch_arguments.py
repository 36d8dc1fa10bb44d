"""The launch files' argument plumbing, without `launch` or `launch_ros` (absent from the PyPI
ROS): the files are imported against a recording stand-in of the few launch classes they use, and
their OpaqueFunctions are called with the argument values ros2 launch would hold. That the real
classes start what they are given is launch's business (test_ros_launch_demo.py runs the demo
graph where launch_testing exists)."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest
from ros_helpers import REPO

from ssr_ros import demo


class Recorded:
    """Any launch action or description: keeps what it was built with."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class LaunchConfiguration:
    def __init__(self, name: str):
        self.name = name

    def perform(self, context: dict[str, str]) -> str:
        return context[self.name]


@pytest.fixture
def load_launch_file(monkeypatch):
    """Import launch/NAME against the stand-in, with its share directory at the source tree."""
    stand_in = {
        "launch": {"LaunchDescription": Recorded},
        "launch.actions": {name: Recorded for name in
                           ("DeclareLaunchArgument", "IncludeLaunchDescription", "LogInfo", "OpaqueFunction")},
        "launch.conditions": {"IfCondition": Recorded},
        "launch.launch_description_sources": {"PythonLaunchDescriptionSource": Recorded},
        "launch.substitutions": {"LaunchConfiguration": LaunchConfiguration},
        "launch_ros": {},
        "launch_ros.actions": {"Node": Recorded},
    }
    for name, attributes in stand_in.items():
        module = types.ModuleType(name)
        module.__dict__.update(attributes)
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr("ament_index_python.packages.get_package_share_directory", lambda package: str(REPO))

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name.replace(".", "_"), REPO / "launch" / name)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


def context_with(module, **values: str) -> dict[str, str]:
    """Every declared argument's default, then `values`: what LaunchConfiguration reads."""
    (entities,) = module.generate_launch_description().args
    declared = [e for e in entities if e.args and isinstance(e.args[0], str)]
    context = {e.args[0]: e.kwargs["default_value"] for e in declared}
    unknown = set(values) - set(context)
    assert not unknown, f"not declared: {unknown}"
    return {**context, **values}


def started_ssr_node(load_launch_file, **arguments: str) -> Recorded:
    module = load_launch_file("ssr.launch.py")
    (node,) = module._ssr_node(context_with(module, **arguments))
    return node


def test_ssr_launch_overrides_only_the_given_parameters(load_launch_file):
    node = started_ssr_node(load_launch_file, checkpoint="/models/ssr3d", window_frames="8")
    params_file, overrides = node.kwargs["parameters"]
    assert params_file == str(REPO / "config" / "ssr_node.yaml")
    assert overrides == {"model.checkpoint": "/models/ssr3d", "window.frames": 8}  # an int parameter, not "8"
    assert started_ssr_node(load_launch_file).kwargs["parameters"][1] == {}  # empty: the file's values


def included_arguments(load_launch_file, tmp_path, **values: str) -> tuple[dict[str, str], str]:
    module = load_launch_file("demo.launch.py")
    log, include, replay = module._graph(context_with(module, scene_dir=str(tmp_path), **values))
    assert replay.kwargs["parameters"][0]["bag"] == str(tmp_path / "recording")
    arguments = dict(include.kwargs["launch_arguments"])
    ssr_launch = load_launch_file("ssr.launch.py")
    assert set(arguments) <= set(context_with(ssr_launch)), "demo.launch.py passes an argument ssr.launch.py lacks"
    return arguments, log.kwargs["msg"]


def test_demo_launch_runs_the_shipped_model_at_its_geometry(load_launch_file, tmp_path):
    arguments, log = included_arguments(load_launch_file, tmp_path)
    assert arguments["model_kind"] == "ssr" and Path(arguments["checkpoint"]) == demo.shipped_model()
    assert arguments["window_frames"] == "8" and arguments["scene_dir"] == str(tmp_path)
    assert "8-frame windows" in log and "NOT a trained model" not in log


def test_demo_launch_stand_in_says_so(load_launch_file, tmp_path):
    arguments, log = included_arguments(load_launch_file, tmp_path, model="ground_truth")
    assert (arguments["model_kind"], arguments["checkpoint"], arguments["window_frames"]) == (
        "ground_truth", "", str(demo.WINDOW_FRAMES))
    assert "NOT a trained model" in log


def test_demo_launch_rejects_a_folder_that_is_no_checkpoint(load_launch_file, tmp_path):
    with pytest.raises(ValueError, match="not an SSR checkpoint"):
        included_arguments(load_launch_file, tmp_path, checkpoint=str(tmp_path))
