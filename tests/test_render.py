"""MuJoCo rendering agrees with the scene geometry, and window boxes reproject where visible."""

import numpy as np
import pytest

from ssr_core.data.annotations import OrientedObject
from ssr_core.data.geometry import project, ray_box_interval
from ssr_core.data.synthetic.categories import BY_LABEL
from ssr_core.data.synthetic.dataset import min_visible_pixels, room_scene
from ssr_core.data.synthetic.render import render_frames
from ssr_core.data.synthetic.rooms import SynthObject, SynthRoom, camera_pose, generate_room, intrinsics_for
from ssr_core.data.windows import sample_windows
from ssr_core.scene.boxes import box7_corners
from ssr_core.scene.canonical_frame import CanonicalFrame

W, H = 160, 120


@pytest.fixture(scope="module")
def rendered():
    room = generate_room("render_test", seed=3, num_frames=5, width=W, height=H)
    return room, list(render_frames(room))


def _rays(K, pose):
    v, u = np.mgrid[0:H, 0:W]
    cam = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones((H, W))], -1).reshape(-1, 3)
    return cam @ pose[:3, :3].T  # ray parameter t is then the z-depth


def test_depth_at_box_face_centre_matches_distance():
    """A lone box 2.5 m ahead: depth at the projected centre of its front face is the distance."""
    # Yawed +90 deg so the cabinet's -y front faces the camera at the origin (face plane x = 2.5).
    yaw90 = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    cabinet = OrientedObject("cabinet_0", "cabinet", np.array([2.7, 0.0, 0.5]), np.array([1.0, 0.4, 1.0]), yaw90)
    pose = camera_pose(np.array([0.0, 0.0, 0.5]), yaw=0.0, pitch=0.0, roll=0.0)
    room = SynthRoom(
        scene_id="one_box", floor_polygon=np.array([[-1.0, -3.0], [6.0, -3.0], [6.0, 3.0], [-1.0, 3.0]]),
        wall_height=2.6, wall_color=(0.9, 0.9, 0.9), floor_colors=((0.5, 0.4, 0.3), (0.4, 0.3, 0.2)),
        objects=[SynthObject(cabinet, BY_LABEL["cabinet"], (0.6, 0.4, 0.3))], poses=pose[None],
        intrinsics=intrinsics_for(W, H, 70.0), image_size=(H, W), timestamps=np.zeros(1),
    )
    frame = next(render_frames(room))
    uv, z = project(np.array([[2.5, 0.0, 0.5]]), pose, room.intrinsics)
    col, row = np.round(uv[0]).astype(int)
    assert frame.object_index[row, col] == 0
    # The door panels sit 6-20 mm behind the face plane; the handles are on it.
    assert abs(frame.depth[row, col] - z[0]) < 0.03
    # Above the cabinet and below the ceiling the centre column sees the far wall (x = 6).
    assert frame.object_index[28, W // 2] == -1
    assert abs(frame.depth[28, W // 2] - 6.0) < 0.03


def test_rendered_depth_lies_inside_each_objects_box(rendered):
    room, frames = rendered
    checked = 0
    for pose, frame in zip(room.poses, frames):
        rays = _rays(room.intrinsics, pose)
        for i in np.unique(frame.object_index[frame.object_index >= 0]):
            mask = (frame.object_index == i).ravel()
            if mask.sum() < 20:
                continue
            enter, leave = ray_box_interval(pose[:3, 3], rays[mask], room.objects[i].obj)
            depth = frame.depth.ravel()[mask]
            inside = (depth >= enter - 0.02) & (depth <= leave + 0.02)
            assert inside.mean() > 0.97, room.objects[i].obj.instance_id
            checked += 1
    assert checked >= 5


def test_window_boxes_reproject_where_visible(rendered):
    """Canonical 7-DoF boxes + canonical poses cover each object's segmentation pixels."""
    room, frames = rendered
    threshold = min_visible_pixels(H, W)
    visibility = np.stack([
        np.bincount(f.object_index[f.object_index >= 0], minlength=len(room.objects)) >= threshold for f in frames
    ])
    scene = room_scene(room, visibility, [], [], None)
    windows = sample_windows(scene, num_frames=4, count=2, rng=np.random.default_rng(0), min_visible=1)
    assert windows
    checked = 0
    for window in windows:
        canonical = CanonicalFrame.from_first_pose(scene.poses[window.frame_indices[0]], scene.up)
        poses = canonical.poses_to_canonical(scene.poses[window.frame_indices])
        index = {o.obj.instance_id: i for i, o in enumerate(room.objects)}
        for obj in window.visible_objects():
            corners = box7_corners(obj.box)
            for local in obj.visible_frames:
                seg = frames[window.frame_indices[local]].object_index == index[obj.instance_id]
                assert seg.sum() >= threshold
                uv, z = project(corners, poses[local], room.intrinsics)
                if np.any(z <= 0.05):  # box straddles the camera plane: no finite 2-D hull
                    continue
                rows, cols = np.nonzero(seg)
                assert cols.min() >= uv[:, 0].min() - 2 and cols.max() <= uv[:, 0].max() + 2
                assert rows.min() >= uv[:, 1].min() - 2 and rows.max() <= uv[:, 1].max() + 2
                checked += 1
    assert checked >= 5
