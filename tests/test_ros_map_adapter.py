"""The node's map adapter and map messages without DDS: which windows enter the map, CameraInfo
intrinsics, the map file's life (autoload, save, autosave only after a change, a corrupt file kept
aside, clear), and the map's ObjectMap / SceneGraph / Detection3DArray / marker / TF messages."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import numpy as np
import pytest

pytest.importorskip("ssr_msgs.msg", reason="needs the built ssr_msgs interface package (scripts/setup.sh)")
pytest.importorskip("vision_msgs.msg", reason="needs vision_msgs (scripts/setup.sh builds the fallback)")

from visualization_msgs.msg import Marker  # noqa: E402

from ssr_core.mapping.object_map import MapConfig  # noqa: E402
from ssr_ros.map_adapter import MapKeeper, camera_model, map_config, window_detections  # noqa: E402
from ssr_ros.node_params import NodeParams, defaults  # noqa: E402
from ssr_ros.outputs.map_messages import (  # noqa: E402
    map_detections_msg,
    map_scene_graph_msg,
    map_transforms,
    object_map_msg,
)
from ssr_ros.outputs.markers import label_color, map_markers  # noqa: E402
from ssr_ros.outputs.messages import header, ns_from_seconds, stamp_from_ns  # noqa: E402

STAMP_NS = 1_767_225_600_123_456_000


@dataclass(frozen=True)
class Perceived:  # the fields of ssr_core's PerceivedObject the map reads
    instance_id: str
    label: str
    box7: np.ndarray
    score: float = 1.0


WINDOW = [
    Perceived("chair_0", "chair", np.array([2.0, 0.5, 0.45, 0.5, 0.5, 0.9, 0.1])),
    Perceived("table_0", "table", np.array([3.0, -1.0, 0.4, 1.2, 0.8, 0.8, 0.0]), 0.8),
    Perceived("sofa_0", "sofa", np.array([4.0, 1.5, 0.4, 2.0, 0.9, 0.8, 1.5])),
]


def _keeper(**config) -> MapKeeper:
    return MapKeeper(MapConfig(confirm_windows=1, **config), "odom")


def _integrate(keeper: MapKeeper, objects=WINDOW, stamp_ns: int = STAMP_NS, shift=(0.0, 0.0)):
    fixed_from_canonical = np.eye(4)
    fixed_from_canonical[:2, 3] = shift
    window = window_detections(objects, "camera_pose", fixed_from_canonical, stamp_ns, None, None)
    return keeper.integrate(window, stamp_ns, "odom")


def test_map_config_follows_the_parameters():
    params = NodeParams.from_values({**defaults(), "map.gate_iou": 0.3, "map.max_objects": 50}).map
    config = map_config(params)
    assert config.gate_iou == 0.3 and config.max_objects == 50 and config.confirm_windows == 2
    assert map_config(NodeParams.from_values(defaults()).map) == MapConfig()  # the same defaults as ssr_core


def test_camera_model_from_camera_info():
    K = [500.0, 0.0, 160.0, 0.0, 500.0, 120.0, 0.0, 0.0, 1.0]
    camera = camera_model(K, 240, 320)
    assert camera is not None and camera.K.shape == (3, 3) and (camera.height, camera.width) == (240, 320)
    assert camera_model([0.0] * 9, 240, 320) is None  # an uncalibrated camera
    assert camera_model(K[:4], 240, 320) is None
    assert camera_model(K, 0, 320) is None
    assert camera_model([float("nan")] + K[1:], 240, 320) is None


def test_window_detections_only_for_windows_in_the_fixed_frame():
    assert window_detections(WINDOW, "level_camera", np.eye(4), STAMP_NS, None, None) is None
    camera = camera_model([500.0, 0, 160, 0, 500, 120, 0, 0, 1], 240, 320)
    poses = np.stack([np.eye(4)] * 4)
    window = window_detections(WINDOW, "tf", np.eye(4), STAMP_NS, poses, camera)
    assert window is not None and window.stamp == pytest.approx(STAMP_NS * 1e-9)
    assert np.asarray(window.boxes).shape == (3, 7) and list(window.labels) == ["chair", "table", "sofa"]
    assert list(window.scores) == [1.0, 0.8, 1.0] and window.image_size == (240, 320)
    no_intrinsics = window_detections(WINDOW, "tf", np.eye(4), STAMP_NS, poses, None)
    assert no_intrinsics.camera_to_fixed is None and no_intrinsics.intrinsics is None  # confirms, never misses
    empty = window_detections([], "camera_pose", np.eye(4), STAMP_NS, None, None)
    assert np.asarray(empty.boxes).shape == (0, 7)


def test_not_anchored_and_refused_windows_leave_the_map_unchanged():
    keeper = _keeper()
    result, why = keeper.integrate(None, STAMP_NS, "odom")
    assert result is None and "level_camera" in why and keeper.windows_not_anchored == 1
    tilted = np.eye(4)
    tilted[:3, :3] = [[1, 0, 0], [0, 0, -1], [0, 1, 0]]  # canonical up along the fixed frame's -y
    result, why = keeper.integrate(window_detections(WINDOW, "tf", tilted, STAMP_NS, None, None), STAMP_NS, "odom")
    assert result is None and "not integrated" in why and keeper.windows_refused == 1
    result, why = keeper.integrate(window_detections(WINDOW, "tf", np.eye(4), STAMP_NS, None, None), STAMP_NS, "map")
    assert result is None and "the map is in 'odom'" in why and keeper.windows_refused == 2
    assert len(keeper.map) == 0 and keeper.stamp_ns == 0 and keeper.autosave("/nowhere/map.json") is None


def test_save_autosave_load_and_clear(tmp_path):
    path = str(tmp_path / "sub" / "map.json")
    keeper = _keeper()
    assert keeper.autoload(path) is None  # a first run: no file yet, nothing to report
    result, _ = _integrate(keeper)
    assert result.detection_ids == ["chair_0", "table_0", "sofa_0"]
    assert not keeper.save("").success
    saved = keeper.save(path)
    assert saved.success and "3 confirmed" in saved.message
    assert keeper.autosave(path) is None  # unchanged since the save
    _integrate(keeper, stamp_ns=STAMP_NS + 10**9)
    assert keeper.autosave(path).success
    assert json.loads((tmp_path / "sub" / "map.json").read_text())["windows_integrated"] == 2

    other = _keeper()
    loaded = other.autoload(path)
    assert loaded.success and other.stamp_ns == STAMP_NS + 10**9
    assert [o.object_id for o in other.snapshot().objects] == ["chair_0", "table_0", "sofa_0"]
    assert other.autosave(path) is None  # loaded and untouched: the file is left as it is

    cleared = other.clear()
    assert cleared.success and len(other.map) == 0 and other.stamp_ns == 0
    assert other.autosave(path).success  # a cleared map is a change: saved empty
    assert json.loads((tmp_path / "sub" / "map.json").read_text())["objects"] == []


def test_failed_load_keeps_the_map_and_the_corrupt_file(tmp_path):
    path = tmp_path / "map.json"
    keeper = _keeper()
    _integrate(keeper)
    path.write_text("{ not json")
    failed = keeper.load(str(path))
    assert not failed.success and "unchanged" in failed.message and "corrupt" in keeper.error
    assert len(keeper.map) == 3 and keeper.stats(str(path))["map_error"] == keeper.error
    assert not keeper.load(str(tmp_path / "absent.json")).success
    saved = keeper.save(str(path))
    assert saved.success and "map.json.corrupt" in saved.message and keeper.error == ""
    assert (tmp_path / "map.json.corrupt").read_text() == "{ not json"
    assert keeper.save(str(path)).message.count("corrupt") == 0  # moved aside once only


def test_save_error_is_reported_not_raised(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    keeper = _keeper()
    outcome = keeper.save(str(blocker / "map.json"))  # a file where the directory should be
    assert not outcome.success and outcome.message.startswith("cannot save the map to") and keeper.error


def test_stats_keys():
    keeper = MapKeeper(MapConfig(confirm_windows=2), "odom")
    _integrate(keeper)
    stats = keeper.stats("/maps/a.json")
    assert stats == {"map_objects": "0", "map_tentative": "3", "map_windows_integrated": "1",
                     "map_windows_not_anchored": "0", "map_windows_refused": "0", "map_path": "/maps/a.json",
                     "map_error": ""}


def test_map_messages():
    keeper = _keeper()
    _integrate(keeper)
    _integrate(keeper, stamp_ns=STAMP_NS + 2 * 10**9, shift=(0.05, 0.0))
    snap = keeper.snapshot()
    hdr = header("odom", snap.stamp_ns)
    msg = object_map_msg(snap.objects, snap.tentative, snap.windows_integrated, hdr)
    assert msg.header.frame_id == "odom" and msg.windows_integrated == 2 and msg.tentative == 0
    chair = msg.objects[0]
    assert (chair.id, chair.label, chair.box.instance_id, chair.observations, chair.misses) == (
        "chair_0", "chair", "chair_0", 2, 0)
    assert chair.box.x == pytest.approx(2.025) and chair.box.yaw == pytest.approx(0.1)
    assert chair.box.score == pytest.approx(chair.confidence) and chair.confidence == pytest.approx(1.0)
    assert chair.first_seen == stamp_from_ns(STAMP_NS) and chair.last_seen == stamp_from_ns(STAMP_NS + 2 * 10**9)

    graph = map_scene_graph_msg(snap.objects, snap.triplets, snap.layout, hdr, 7)
    assert graph.instance_ids == ["chair_0", "table_0", "sofa_0"] and graph.window_id == 7
    assert len(graph.triplets) == len(snap.triplets) >= 1 and graph.triplets[0].anchor1 in graph.instance_ids

    detections = map_detections_msg(snap.objects, hdr)
    assert [d.id for d in detections.detections] == ["chair_0", "table_0", "sofa_0"]
    table = detections.detections[1]
    assert table.header.frame_id == "odom" and table.results[0].hypothesis.class_id == "table"
    assert table.results[0].hypothesis.score == pytest.approx(0.8) and table.bbox.size.x == pytest.approx(1.2)

    transforms = map_transforms(snap.objects, "odom", snap.stamp_ns, "ssr_map/")
    assert [t.child_frame_id for t in transforms] == ["ssr_map/chair_0", "ssr_map/table_0", "ssr_map/sofa_0"]
    assert transforms[0].transform.translation.x == pytest.approx(2.025)


def test_map_markers_keep_a_colour_per_id():
    keeper = _keeper()
    _integrate(keeper)
    snap = keeper.snapshot()
    markers = map_markers(snap.objects, snap.triplets, header("odom", snap.stamp_ns)).markers
    assert markers[0].action == Marker.DELETEALL
    cubes = [m for m in markers if m.ns == "boxes"]
    assert [m.color for m in cubes] == [label_color(o.object_id) for o in snap.objects]
    assert [m.text for m in markers if m.ns == "labels"] == ["chair_0", "table_0", "sofa_0"]
    assert [m for m in markers if m.ns == "graph"][0].points  # the map scene graph's edges
    second_chair = replace(WINDOW[0], box7=WINDOW[0].box7 + [3.0, 3.0, 0, 0, 0, 0, 0])
    _integrate(keeper, objects=[second_chair], stamp_ns=STAMP_NS + 10**9)
    later = map_markers(keeper.snapshot().objects, [], header("odom", STAMP_NS)).markers
    by_text = {m.id: m.text for m in later if m.ns == "labels"}
    colours = {by_text[m.id]: m.color for m in later if m.ns == "boxes"}
    assert colours["chair_0"] == cubes[0].color and colours["chair_1"] != colours["chair_0"]


def test_map_stamps_to_the_microsecond():
    assert ns_from_seconds(STAMP_NS * 1e-9) == STAMP_NS
    assert ns_from_seconds(0.0) == 0 and ns_from_seconds(float("nan")) == 0
