"""Parameter rules and the shipped YAML (no DDS): every spec documented, defaults valid, bad values explained."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from ssr_ros import node_params

YAML = Path(__file__).resolve().parents[1] / "config" / "ssr_node.yaml"


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def test_yaml_lists_exactly_the_specs_with_valid_values():
    doc = yaml.safe_load(YAML.read_text())
    values = _flatten(doc["/**"]["ros__parameters"])
    assert set(values) == set(node_params.SPEC_BY_NAME)
    for name, value in values.items():
        assert type(value) is type(node_params.SPEC_BY_NAME[name].default), name  # rclpy refuses int for a double
        assert node_params.check_value(name, value) is None, name
    assert node_params.check_update(values, {}) is None


def test_defaults_valid_and_described():
    assert node_params.check_update(node_params.defaults(), {}) is None
    assert all(s.description for s in node_params.SPECS)


@pytest.mark.parametrize(
    "updates, fragment",
    [
        ({"model.device": "gpu"}, "one of auto, cuda, npu, cpu"),
        ({"model.kind": "big"}, "model.kind must be one of"),
        ({"window.frames": 0}, "window.frames must be in [1, 256]"),
        ({"window.period": -1.0}, "window.period must be in"),
        ({"window.frames": "32"}, "must be int"),
        ({"frames.up_vector": [0.0, 0.0]}, "3 finite numbers"),
        ({"frames.up_vector": [0.0, 0.0, 0.0]}, "must not be zero"),
        ({"frames.canonical_frame": " "}, "must not be empty"),
        ({"frames.canonical_frame": "odom"}, "must differ"),
        ({"window.min_frames": 40}, "must not exceed window.frames"),
        ({"window.frames": 4}, "must not exceed window.frames"),  # default min_frames is 8
        ({"nope": 1}, "unknown parameter"),
        ({"map.gate_iou": 1.5}, "map.gate_iou must be in [0.0, 1.0]"),
        ({"map.confirm_windows": 0}, "map.confirm_windows must be in [1, 1000]"),
        ({"map.max_objects": 10.0}, "map.max_objects must be int"),
        ({"map.enabled": "yes"}, "map.enabled must be bool"),
        ({"map.view_min_range": 6.0}, "must be below map.view_max_range"),
        ({"map.view_max_range": 0.2}, "must be below map.view_max_range"),  # default min 0.3
        ({"map.frame_prefix": "ssr/"}, "must differ from frames.object_frame_prefix"),
    ],
)
def test_invalid_updates_have_reasons(updates, fragment):
    reason = node_params.check_update(node_params.defaults(), updates)
    assert reason is not None and fragment in reason


def test_atomic_cross_field_update_and_int_for_float():
    assert node_params.check_update(node_params.defaults(), {"window.frames": 4, "window.min_frames": 2}) is None
    assert node_params.check_value("window.period", 2) is None


def test_model_config_needs_paths():
    values = node_params.defaults()
    assert "model.checkpoint" in node_params.check_model_config(values)
    values["model.kind"] = "ground_truth"
    assert "model.scene_dir" in node_params.check_model_config(values)
    values["model.scene_dir"] = "/data/scene"
    assert node_params.check_model_config(values) is None
    values["model.kind"] = "tiny_random"
    assert node_params.check_model_config(values) is None


def test_every_parameter_is_documented():
    doc = (YAML.parents[1] / "docs" / "ROS.md").read_text()
    missing = [s.name for s in node_params.SPECS if f"| `{s.name}` |" not in doc]
    assert not missing, f"docs/ROS.md parameter table lacks {missing}"


def test_typed_params_have_one_field_per_spec():
    """NodeParams mirrors the spec table name for name, so no parameter is read by string key."""
    assert node_params.param_names() == [s.name for s in node_params.SPECS]
    params = node_params.NodeParams.from_values({**node_params.defaults(), "window.period": 3, "frames.up_vector": [0, 1, 0]})
    assert params.window.period == 3.0 and isinstance(params.window.period, float)
    assert params.frames.up_vector == (0.0, 1.0, 0.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.window.frames = 2  # type: ignore[misc]
