"""ScanNet and ARKitScenes converters on hand-made fixtures in each dataset's own layout.

tests/fixtures/*/README.md describe the fixture scenes and where each object should be visible.
"""

from pathlib import Path

import numpy as np
import pytest

from ssr_core.data.converters.arkitscenes import ARKitScenesError, convert_arkitscenes, read_trajectory
from ssr_core.data.converters.scannet import ScanNetError, convert_scannet
from ssr_core.data.scene_io import load_scene

FIXTURES = Path(__file__).parent / "fixtures"


def _look(pos, yaw_deg, pitch_deg=-15.0):
    y, p = np.deg2rad(yaw_deg), np.deg2rad(pitch_deg)
    fwd = np.array([np.cos(p) * np.cos(y), np.cos(p) * np.sin(y), np.sin(p)])
    right = np.cross(fwd, [0, 0, 1.0])
    right /= np.linalg.norm(right)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, np.cross(fwd, right), fwd, pos
    return pose


def _visible(scene, frame):
    return {scene.objects[i].instance_id for i in np.flatnonzero(scene.visibility[frame])}


def test_scannet_fixture(tmp_path):
    scene = convert_scannet(FIXTURES / "scannet", "scene0000_00", tmp_path, frame_step=1)
    # Structural classes are dropped; boxes are the aligned min/max of each instance's vertices.
    boxes = {o.instance_id: (o.center, o.size) for o in scene.objects}
    assert sorted(boxes) == ["bookshelf_0", "chair_0", "table_0"]
    np.testing.assert_allclose(boxes["chair_0"][0], [1.25, 1.25, 0.45], atol=1e-5)
    np.testing.assert_allclose(boxes["chair_0"][1], [0.5, 0.5, 0.9], atol=1e-5)
    np.testing.assert_allclose(boxes["table_0"][0], [3.0, 1.9, 0.375], atol=1e-5)  # two segments
    assert all(np.array_equal(o.rotation, np.eye(3)) for o in scene.objects)
    # Frame 4's pose is -inf (invalid in ScanNet): skipped. Poses are axis-aligned too.
    assert scene.num_frames == 4
    np.testing.assert_allclose(scene.poses[0], _look([0.3, 1.25, 1.2], 0), atol=1e-5)
    np.testing.assert_allclose(scene.poses[3], _look([2.4, 1.25, 1.2], 180), atol=1e-5)
    np.testing.assert_allclose(scene.intrinsics[0], [[20, 0, 15.5], [0, 20, 11.5], [0, 0, 1]])
    assert scene.image_size == (24, 32)
    # Visibility: depth 5 m sees both objects ahead; depth 0.5 m hides everything; frame 2 has
    # no depth map (frustum only); frame 3 looks back at the shelf with the table behind it.
    assert _visible(scene, 0) == {"chair_0", "table_0"}
    assert _visible(scene, 1) == set()
    assert _visible(scene, 2) == {"chair_0", "table_0"}
    assert _visible(scene, 3) == {"chair_0", "bookshelf_0"}
    # Floor outline: hull of the floor-labelled vertices, in the aligned frame.
    assert {tuple(p) for p in np.round(scene.floor_polygon, 5)} == {(0, 0, 0), (4, 0, 0), (4, 3, 0), (0, 3, 0)}
    loaded = load_scene(tmp_path / "scene0000_00")
    assert loaded.image_paths == ["rgb/000000.jpg", "rgb/000001.jpg", "rgb/000002.jpg", "rgb/000003.jpg"]
    assert all((loaded.root / p).is_file() for p in loaded.image_paths)
    np.testing.assert_array_equal(loaded.visibility, scene.visibility)
    np.testing.assert_allclose(loaded.poses, scene.poses, atol=1e-8)


def test_scannet_missing_scene(tmp_path):
    with pytest.raises(ScanNetError):
        convert_scannet(FIXTURES / "scannet", "scene9999_00", tmp_path)


def test_arkitscenes_trajectory_is_world_to_camera():
    stamps, poses = read_trajectory(FIXTURES / "arkitscenes/3dod/Training/40753679/40753679_frames/lowres_wide.traj")
    assert len(stamps) == 6
    np.testing.assert_allclose(poses[1], _look([0, 0, 1.3], 0), atol=1e-6)  # inverse of the stored transform


def test_arkitscenes_fixture(tmp_path):
    scene = convert_arkitscenes(FIXTURES / "arkitscenes", "40753679", tmp_path)
    assert scene.scene_id == "arkitscenes_40753679"
    # The frame at t=6846.500 has no trajectory sample within 5 ms: skipped.
    assert scene.num_frames == 3
    np.testing.assert_allclose(scene.timestamps, [6845.704, 6845.804, 6845.904])
    np.testing.assert_allclose(scene.poses[0], _look([0, 0, 1.3], 0), atol=1e-6)
    np.testing.assert_allclose(scene.poses[2], _look([0, 0, 1.3], 180), atol=1e-6)
    sofa = scene.objects[0]
    assert (sofa.instance_id, sofa.label) == ("sofa_0", "sofa")
    yaw = np.deg2rad(30)
    np.testing.assert_allclose(sofa.rotation[:, 0], [np.cos(yaw), np.sin(yaw), 0], atol=1e-6)
    np.testing.assert_allclose(sofa.size, [2.0, 0.9, 0.8])
    assert _visible(scene, 0) == {"sofa_0", "table_0"}
    assert _visible(scene, 1) == set()  # depth 0.3 m in front of everything
    assert _visible(scene, 2) == {"chair_0"}
    loaded = load_scene(tmp_path / scene.scene_id)
    assert len(loaded.depth_paths) == 3 and all((loaded.root / p).is_file() for p in loaded.depth_paths)
    np.testing.assert_allclose(loaded.floor_polygon[:, 2], 0.0, atol=1e-9)  # lowest box bottom


def test_arkitscenes_missing_video(tmp_path):
    with pytest.raises(ARKitScenesError):
        convert_arkitscenes(FIXTURES / "arkitscenes", "123", tmp_path)


@pytest.mark.parametrize("up", [(0.0, 0.0, 0.0), (0.0, float("nan"), 1.0)])
def test_arkitscenes_refuses_a_bad_up_vector(tmp_path, up):
    with pytest.raises(ARKitScenesError, match="up must be"):
        convert_arkitscenes(FIXTURES / "arkitscenes", "40753679", tmp_path, up=up)
    assert not (tmp_path / "arkitscenes_40753679").exists()  # refused before anything is written
