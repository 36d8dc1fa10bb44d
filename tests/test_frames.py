"""Canonical frame: definition, round trips, invariance, vertical optical axis error."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from ssr_core.scene.boxes import wrap_angle
from ssr_core.scene.canonical_frame import CanonicalFrame, FrameError, VerticalOpticalAxisError

FAST = settings(derandomize=True, deadline=None, max_examples=60)
unit = st.floats(-1.0, 1.0)
quaternions = st.tuples(unit, unit, unit, unit).filter(lambda q: np.linalg.norm(q) > 0.1)
vectors = st.tuples(*[st.floats(-10.0, 10.0)] * 3).map(np.array)


def pose(rotation: np.ndarray, translation) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = rotation
    m[:3, 3] = translation
    return m


def tilt_deg(rotation: np.ndarray, up: np.ndarray) -> float:
    return 90.0 - math.degrees(math.acos(min(1.0, abs(float(rotation[:, 2] @ up)))))


@FAST
@given(quaternions, vectors, quaternions, st.lists(vectors, min_size=1, max_size=5))
def test_frame_definition_and_point_round_trip(q_cam, t_cam, q_up, pts):
    up = Rotation.from_quat(q_up).apply([0.0, 0.0, 1.0])
    rot = Rotation.from_quat(q_cam).as_matrix()
    assume(90.0 - tilt_deg(rot, up) > 1.5)
    cam = pose(rot, t_cam)
    frame = CanonicalFrame.from_first_pose(cam, up)
    r = frame.world_from_canonical[:3, :3]
    np.testing.assert_allclose(r.T @ r, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)
    np.testing.assert_allclose(r[:, 2], up, atol=1e-12)  # +z is up
    np.testing.assert_allclose(frame.points_to_canonical(t_cam), 0.0, atol=1e-9)  # origin at the camera
    axis = frame.canonical_from_world[:3, :3] @ rot[:, 2]  # optical axis in canonical
    assert axis[1] == pytest.approx(0.0, abs=1e-9) and axis[0] > 0.0  # projects onto +x
    p = np.array(pts)
    np.testing.assert_allclose(frame.points_to_world(frame.points_to_canonical(p)), p, atol=1e-9)
    cam_c = frame.poses_to_canonical(cam)
    np.testing.assert_allclose(cam_c[:3, 3], 0.0, atol=1e-9)
    np.testing.assert_allclose(frame.poses_to_world(cam_c), cam, atol=1e-9)


@FAST
@given(quaternions, vectors, quaternions, vectors, vectors)
def test_canonical_coordinates_do_not_depend_on_the_world_frame(q_cam, t_cam, q_world, t_world, point):
    rot = Rotation.from_quat(q_cam).as_matrix()
    up = np.array([0.0, 0.0, 1.0])
    assume(90.0 - tilt_deg(rot, up) > 1.5)
    g = pose(Rotation.from_quat(q_world).as_matrix(), t_world)  # another world frame
    a = CanonicalFrame.from_first_pose(pose(rot, t_cam), up)
    b = CanonicalFrame.from_first_pose(g @ pose(rot, t_cam), g[:3, :3] @ up)
    moved = g[:3, :3] @ point + g[:3, 3]
    np.testing.assert_allclose(b.points_to_canonical(moved), a.points_to_canonical(point), atol=1e-8)


@FAST
@given(quaternions, vectors, st.floats(-math.pi, math.pi), vectors, st.tuples(*[st.floats(0.1, 3.0)] * 3))
def test_box_yaw_update_and_round_trip_in_a_z_up_world(q_cam, t_cam, yaw, center, size):
    rot = Rotation.from_quat(q_cam).as_matrix()
    assume(90.0 - tilt_deg(rot, np.array([0.0, 0.0, 1.0])) > 1.5)
    frame = CanonicalFrame.from_first_pose(pose(rot, t_cam), [0.0, 0.0, 1.0])
    x_axis = frame.world_from_canonical[:3, 0]
    frame_yaw = math.atan2(x_axis[1], x_axis[0])
    world_box = np.concatenate([center, size, [yaw]])
    box = frame.boxes_to_canonical(world_box)
    np.testing.assert_allclose(box[:3], frame.points_to_canonical(center), atol=1e-9)
    np.testing.assert_allclose(box[3:6], size)
    assert abs(float(wrap_angle(box[6] - (yaw - frame_yaw)))) < 1e-9
    back = frame.boxes_to_world(box)
    np.testing.assert_allclose(back[:6], world_box[:6], atol=1e-9)
    assert abs(float(wrap_angle(back[6] - yaw))) < 1e-9


def test_y_up_world_camera_looking_along_minus_z():
    # A y-up world (e.g. ARKit): camera at (1, 1.5, 2) looking along world -z, image y down.
    rot = np.column_stack([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])
    frame = CanonicalFrame.from_first_pose(pose(rot, [1.0, 1.5, 2.0]), [0.0, 1.0, 0.0])
    # canonical x = world -z, z = world y, y = z x x = world -x
    np.testing.assert_allclose(frame.points_to_canonical([1.0, 1.5, 0.0]), [2.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(frame.points_to_canonical([0.0, 2.5, 2.0]), [0.0, 1.0, 1.0], atol=1e-12)
    # An upright box in that world: its height (along world y) stays the height.
    box = frame.oriented_boxes_to_canonical([1.0, 0.5, 0.0], [2.0, 1.0, 0.5], np.eye(3))
    np.testing.assert_allclose(box[:3], [2.0, 0.0, -1.0], atol=1e-12)
    np.testing.assert_allclose(box[3:6], [0.5, 2.0, 1.0])  # cyclic rule: height axis y -> (z, x, y)


def test_from_window_uses_the_first_pose():
    poses = np.stack([pose(Rotation.from_euler("x", -90, degrees=True).as_matrix(), [0, 0, 1]), np.eye(4)])
    frame = CanonicalFrame.from_window(poses, [0.0, 0.0, 1.0])
    np.testing.assert_allclose(frame.world_from_canonical[:3, 3], [0.0, 0.0, 1.0])
    with pytest.raises(FrameError):
        CanonicalFrame.from_window(np.zeros((0, 4, 4)), [0.0, 0.0, 1.0])


@pytest.mark.parametrize("deg_from_vertical", [0.0, 0.5, 0.99])
@pytest.mark.parametrize("looking", ["down", "up"])
def test_vertical_optical_axis_is_an_error(deg_from_vertical, looking):
    # Identity rotation in a z-up world: the optical axis (camera z) points straight up.
    base = np.eye(3) if looking == "up" else Rotation.from_euler("x", 180, degrees=True).as_matrix()
    rot = Rotation.from_euler("x", deg_from_vertical, degrees=True).as_matrix() @ base
    with pytest.raises(VerticalOpticalAxisError, match="deg from vertical") as info:
        CanonicalFrame.from_first_pose(pose(rot, [0, 0, 0]), [0.0, 0.0, 1.0])
    assert isinstance(info.value, ValueError)


def test_slightly_tilted_axis_is_fine():
    rot = Rotation.from_euler("x", 180 + 1.5, degrees=True).as_matrix()
    frame = CanonicalFrame.from_first_pose(pose(rot, [0, 0, 0]), [0.0, 0.0, 1.0])
    np.testing.assert_allclose(frame.world_from_canonical[:3, 2], [0.0, 0.0, 1.0])


def test_invalid_inputs():
    with pytest.raises(FrameError):
        CanonicalFrame.from_first_pose(np.eye(3), [0.0, 0.0, 1.0])
    with pytest.raises(FrameError):
        CanonicalFrame.from_first_pose(np.eye(4), [0.0, 0.0, 0.0])
    with pytest.raises(FrameError):
        CanonicalFrame(np.diag([1.0, 1.0, -1.0, 1.0]))  # a reflection
    with pytest.raises(FrameError):
        CanonicalFrame(np.eye(4)).points_to_canonical(np.zeros((2, 2)))
    frame = CanonicalFrame(np.eye(4))
    assert not frame.world_from_canonical.flags.writeable
