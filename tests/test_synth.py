"""Procedural rooms: plausible layout, no interpenetration, smooth camera walk, determinism."""

import hashlib

import numpy as np
import pytest

from ssr_core.data.annotations import OrientedObject
from ssr_core.data.geometry import boxes_overlap, points_in_polygon
from ssr_core.data.scene_io import load_scene
from ssr_core.data.synthetic.categories import CATEGORIES
from ssr_core.data.synthetic.dataset import synthesize_scene
from ssr_core.data.synthetic.rooms import generate_room

SEEDS = range(8)


@pytest.fixture(scope="module")
def rooms():
    return [generate_room(f"s{s}", s, num_frames=48, width=160, height=120) for s in SEEDS]


def _yawed(center, size, yaw):
    c, s = np.cos(yaw), np.sin(yaw)
    return OrientedObject("x", "x", np.asarray(center, float), np.asarray(size, float), np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]]))


def test_boxes_overlap_separating_axes():
    a = _yawed([0, 0, 0.5], [1, 1, 1], 0.0)
    assert not boxes_overlap(a, _yawed([0, 0, 1.25], [0.4, 0.4, 0.5], 0.3))  # standing on top: touching
    assert boxes_overlap(a, _yawed([0, 0, 1.2], [0.4, 0.4, 0.5], 0.3))
    assert boxes_overlap(a, _yawed([1.1, 0, 0.5], [1, 1, 1], np.pi / 4))  # corner pokes in
    assert not boxes_overlap(a, _yawed([1.3, 0, 0.5], [1, 1, 1], np.pi / 4))
    tilted = OrientedObject("t", "t", np.array([0.0, 0.0, 1.8]), np.ones(3), np.linalg.qr(np.arange(9.0).reshape(3, 3) + np.eye(3))[0])
    assert boxes_overlap(a, tilted) == (np.abs(tilted.rotation.T @ [0, 0, 1]).sum() / 2 + 0.5 > 1.3)


def test_layout_is_plausible_and_without_interpenetration(rooms):
    labels = set()
    for room in rooms:
        objs = [o.obj for o in room.objects]
        assert 5 <= len(objs) <= 30
        assert len({o.instance_id for o in objs}) == len(objs)
        for i in range(len(objs)):
            for j in range(i + 1, len(objs)):
                assert not boxes_overlap(objs[i], objs[j]), (room.scene_id, objs[i].instance_id, objs[j].instance_id)
        for so in room.objects:
            o = so.obj
            corners = o.center[:2] + np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * o.size[:2] / 2 @ o.rotation[:2, :2].T
            assert points_in_polygon(corners, room.floor_polygon).all()
            bottom = o.center[2] - o.size[2] / 2
            if so.host is None:
                assert abs(bottom) < 1e-9  # on the floor
            else:  # on its host's top
                host = room.objects[so.host].obj
                assert abs(bottom - (host.center[2] + host.size[2] / 2)) < 1e-9
            assert o.center[2] + o.size[2] / 2 < room.wall_height
            cat = so.category
            size = np.sort(o.size[:2]) if cat.round_base else o.size[:2]
            lo, hi = np.array(cat.size_min), np.array(cat.size_max)
            assert np.all(o.size[2] >= lo[2] - 1e-9) and np.all(o.size[2] <= hi[2] + 1e-9)
            assert np.all(size >= np.minimum(lo[:2], lo[::-1][1:]) - 1e-9)
            labels.add(o.label)
    assert len(labels) >= 15
    assert len(CATEGORIES) >= 15
    shapes = {len(r.floor_polygon) for r in rooms}
    assert shapes == {4, 6}  # rectangles and L-shapes


def test_camera_walk_is_smooth_and_in_free_space(rooms):
    for room in rooms:
        p = room.poses
        centres = p[:, :3, 3]
        assert np.all((centres[:, 2] >= 1.2) & (centres[:, 2] <= 1.7))
        assert points_in_polygon(centres[:, :2], room.floor_polygon).all()
        floor_boxes = [o.obj for o in room.objects if o.host is None]
        for box in floor_boxes:  # never inside furniture
            local = (centres[:, :2] - box.center[:2]) @ box.rotation[:2, :2]
            assert not np.any(np.all(np.abs(local) < box.size[:2] / 2, axis=1))
        forward, right = p[:, :3, 2], p[:, :3, 0]
        pitch = np.degrees(np.arcsin(forward[:, 2]))
        assert np.all((pitch > -30) & (pitch < 5))
        assert np.all(np.abs(np.degrees(np.arcsin(right[:, 2]))) < 5)  # gentle roll
        steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
        assert steps.max() < 0.35
        turn = np.degrees(np.arccos(np.clip(np.einsum("fij,fij->f", p[1:, :3, :3], p[:-1, :3, :3]) / 2 - 0.5, -1, 1)))
        assert turn.max() < 10
        for r in p[:, :3, :3]:
            np.testing.assert_allclose(r.T @ r, np.eye(3), atol=1e-9)
            assert np.linalg.det(r) > 0


def test_generate_room_is_deterministic():
    a, b = generate_room("x", 5, 16), generate_room("x", 5, 16)
    c = generate_room("x", 6, 16)
    np.testing.assert_array_equal(a.poses, b.poses)
    assert [o.obj.center.tolist() for o in a.objects] == [o.obj.center.tolist() for o in b.objects]
    assert not np.array_equal(a.poses, c.poses)


def _digest(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_synthesized_files_are_identical_for_one_seed(tmp_path):
    for out in ("a", "b"):
        synthesize_scene(tmp_path / out, "synth_0000", seed=11, num_frames=3, width=64, height=48, bag=True)
    a, b = _digest(tmp_path / "a" / "synth_0000"), _digest(tmp_path / "b" / "synth_0000")
    assert a == b
    assert {"scene.json", "rgb/000002.png", "depth/000002.png", "recording/recording.mcap"} <= set(a)
    scene = load_scene(tmp_path / "a" / "synth_0000")
    assert scene.num_frames == 3 and scene.image_size == (48, 64)
    np.testing.assert_allclose(scene.up, [0, 0, 1])
    assert scene.floor_polygon.shape[1] == 3 and scene.visibility.shape == (3, len(scene.objects))


def test_parallel_synthesis_writes_the_same_files(tmp_path):
    """`ssr data synth --workers 2` renders the same scenes, byte for byte, as one process."""
    from ssr_core.data.synthetic.dataset import synthesize_dataset

    kwargs = {"num_scenes": 3, "seed": 5, "num_frames": 3, "width": 64, "height": 48, "progress": False, "segmentation": True}
    serial = synthesize_dataset(tmp_path / "serial", **kwargs)
    parallel = synthesize_dataset(tmp_path / "parallel", workers=2, **kwargs)
    assert [p.name for p in parallel] == [p.name for p in serial] == ["synth_0000", "synth_0001", "synth_0002"]
    assert _digest(tmp_path / "parallel") == _digest(tmp_path / "serial")
