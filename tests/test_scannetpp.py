"""ScanNet++ converter on a scene hand-made in the released layout (data/<id>/scans, iphone/)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from plyfile import PlyData, PlyElement

from ssr_core.data.converters.scannetpp import ScanNetPPError, convert_scannetpp
from ssr_core.data.scene_io import load_scene

K = [[20.0, 0.0, 15.5], [0.0, 20.0, 11.5], [0.0, 0.0, 1.0]]


def corners(lo, hi) -> list[list[float]]:
    return [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]


def camera(position, forward) -> list[list[float]]:
    """Camera-to-world, OpenCV axes (x right, y down, z forward), level camera."""
    z = np.asarray(forward, float) / np.linalg.norm(forward)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    m = np.eye(4)
    m[:3, :3] = np.column_stack([x, np.cross(z, x), z])
    m[:3, 3] = position
    return m.tolist()


@pytest.fixture
def scannetpp(tmp_path: Path) -> Path:
    scene = tmp_path / "scannetpp" / "data" / "0a5c013435"
    (scene / "scans").mkdir(parents=True)
    chair = corners((1.0, 1.0, 0.0), (1.5, 1.5, 0.9))
    table = corners((2.5, 1.5, 0.0), (3.5, 2.3, 0.75))
    floor = corners((0.0, 0.0, 0.0), (4.0, 3.0, 0.0))
    junk = corners((0.2, 0.2, 0.0), (0.3, 0.3, 0.1))
    vertices = chair + table[:4] + table[4:] + floor + junk
    segments = [1] * 8 + [2] * 4 + [3] * 4 + [4] * 8 + [5] * 8
    data = np.array([tuple(v) for v in vertices], dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    PlyData([PlyElement.describe(data, "vertex")], text=True).write(str(scene / "scans" / "mesh_aligned_0.05.ply"))
    (scene / "scans" / "segments.json").write_text(json.dumps({"segIndices": segments}))
    (scene / "scans" / "segments_anno.json").write_text(json.dumps({"segGroups": [
        {"id": 0, "objectId": 0, "label": "chair", "segments": [1]},
        {"id": 1, "objectId": 1, "label": "Table", "segments": [2, 3]},
        {"id": 2, "objectId": 2, "label": "floor", "segments": [4]},
        {"id": 3, "objectId": 3, "label": "REMOVE", "segments": [5]},
        {"id": 4, "objectId": 4, "segments": [1]},  # no label
        {"id": 5, "objectId": 5, "label": "lamp", "segments": [99]},  # no vertex
    ]}))
    iphone = scene / "iphone"
    (iphone / "rgb").mkdir(parents=True)
    (iphone / "depth").mkdir()
    frames = {
        "frame_000000": camera((0.3, 1.25, 1.2), (1.0, 0.0, -0.3)),
        "frame_000001": camera((0.3, 1.25, 1.2), (-1.0, 0.0, 0.0)),  # looks at the wall behind
        "frame_000002": [[float("nan")] * 4] * 4,  # invalid pose
        "frame_000003": camera((3.0, 0.3, 1.2), (-1.0, 0.7, -0.3)),
    }
    entries = {}
    for t, (name, pose) in enumerate(frames.items()):
        entries[name] = {"timestamp": 0.1 * t, "intrinsic": K, "aligned_pose": pose, "imu": {}}
        cv2.imwrite(str(iphone / "rgb" / f"{name}.jpg"), np.full((24, 32, 3), 100, np.uint8))
        cv2.imwrite(str(iphone / "depth" / f"{name}.png"), np.full((12, 16), 8000, np.uint16))  # 8 m: no occluder
    (iphone / "pose_intrinsic_imu.json").write_text(json.dumps(entries))
    return tmp_path / "scannetpp"


def test_scannetpp_scene(scannetpp: Path, tmp_path: Path) -> None:
    scene = convert_scannetpp(scannetpp, "0a5c013435", tmp_path / "out", frame_step=1)
    assert [o.instance_id for o in scene.objects] == ["chair_0", "table_0"]
    np.testing.assert_allclose(scene.objects[0].center, [1.25, 1.25, 0.45], atol=1e-6)
    np.testing.assert_allclose(scene.objects[1].size, [1.0, 0.8, 0.75], atol=1e-6)
    assert scene.num_frames == 3  # the NaN pose is skipped
    assert scene.visibility.tolist() == [[True, True], [False, False], [True, True]]
    saved = json.loads((tmp_path / "out" / "0a5c013435" / "scene.json").read_text())
    assert saved["source"] == "scannetpp" and saved["extra"]["scannetpp_object_ids"] == [0, 1]
    assert saved["extra"]["source_frames"] == ["frame_000000", "frame_000001", "frame_000003"]
    assert [s.split(":")[0] for s in saved["extra"]["skipped_annotations"]] == ["segGroups[4]", "segGroups[5] (lamp)"]
    assert "depth" in saved["visibility"]["rule"]
    reloaded = load_scene(tmp_path / "out" / "0a5c013435")
    assert (reloaded.root / reloaded.image_paths[0]).is_file()


def test_scannetpp_missing_scene(scannetpp: Path, tmp_path: Path) -> None:
    with pytest.raises(ScanNetPPError, match="segments_anno.json"):
        convert_scannetpp(scannetpp, "ffffffffff", tmp_path)
    (scannetpp / "data" / "0a5c013435" / "iphone" / "pose_intrinsic_imu.json").write_text("{")
    with pytest.raises(ScanNetPPError, match="cannot read"):
        convert_scannetpp(scannetpp, "0a5c013435", tmp_path)
