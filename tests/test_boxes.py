"""7-DoF boxes: angle wrapping, conversion from oriented boxes, corners, IoU."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from ssr_core.scene.boxes import (
    bev_corners,
    bev_iou,
    box7_corners,
    box7_from_euler,
    box7_from_oriented,
    box7_to_oriented,
    center_distance,
    iou_3d,
    rotation_from_euler,
    rotation_z,
    wrap_angle,
)

FAST = settings(derandomize=True, deadline=None, max_examples=60)
angles = st.floats(-20.0, 20.0, allow_nan=False)
extents = st.floats(0.05, 4.0)
coords = st.floats(-5.0, 5.0)
boxes = st.tuples(coords, coords, coords, extents, extents, extents, angles).map(
    lambda b: np.array(b[:6] + (float(wrap_angle(b[6])),))
)
quaternions = st.tuples(*[st.floats(-1.0, 1.0)] * 4).filter(lambda q: np.linalg.norm(q) > 0.1)


def clip_polygon_area(p: np.ndarray, q: np.ndarray) -> float:
    """Independent oracle: scalar Sutherland-Hodgman clipping of p by convex ccw q, then shoelace."""
    poly = [tuple(v) for v in p]
    for i in range(len(q)):
        a, b = q[i], q[(i + 1) % len(q)]

        def side(v, a=a, b=b):
            return (b[0] - a[0]) * (v[1] - a[1]) - (b[1] - a[1]) * (v[0] - a[0])

        out = []
        for j in range(len(poly)):
            cur, nxt = poly[j], poly[(j + 1) % len(poly)]
            sc, sn = side(cur), side(nxt)
            if sc >= 0:
                out.append(cur)
            if (sc >= 0) != (sn >= 0):
                t = sc / (sc - sn)
                out.append((cur[0] + t * (nxt[0] - cur[0]), cur[1] + t * (nxt[1] - cur[1])))
        poly = out
        if not poly:
            return 0.0
    return 0.5 * abs(sum(poly[i][0] * poly[i - 1][1] - poly[i - 1][0] * poly[i][1] for i in range(len(poly))))


@FAST
@given(st.floats(-1e3, 1e3, allow_nan=False))
def test_wrap_angle_range_and_equivalence(a):
    w = float(wrap_angle(a))
    assert -math.pi < w <= math.pi
    assert math.isclose(math.cos(w), math.cos(a), abs_tol=1e-9)
    assert math.isclose(math.sin(w), math.sin(a), abs_tol=1e-9)


def test_wrap_angle_ends():
    np.testing.assert_allclose(
        wrap_angle([math.pi, -math.pi, 3 * math.pi, 0.0, -3 * math.pi / 2]),
        [math.pi, math.pi, math.pi, 0.0, math.pi / 2],
    )


@FAST
@given(st.tuples(angles, angles, angles))
def test_euler_convention_matches_scipy_zyx(e):
    roll, pitch, yaw = e
    expected = Rotation.from_euler("ZYX", [yaw, pitch, roll]).as_matrix()
    np.testing.assert_allclose(rotation_from_euler(e), expected, atol=1e-12)


@FAST
@given(boxes)
def test_yaw_only_oriented_box_round_trips(box):
    center, size, rot = box7_to_oriented(box)
    np.testing.assert_allclose(box7_from_oriented(center, size, rot), box, atol=1e-9)


@FAST
@given(quaternions, st.tuples(extents, extents, extents), angles)
def test_conversion_is_yaw_equivariant_and_keeps_extents(q, size, phi):
    rot = Rotation.from_quat(q).as_matrix()
    b0 = box7_from_oriented(np.zeros(3), size, rot)
    b1 = box7_from_oriented(np.zeros(3), size, rotation_z(phi) @ rot)
    np.testing.assert_allclose(b1[3:6], b0[3:6])
    assert sorted(b0[3:6]) == pytest.approx(sorted(size))
    assert abs(float(wrap_angle(b1[6] - b0[6] - phi))) < 1e-9


def test_height_axis_is_the_box_axis_most_aligned_with_up():
    # Box lying on its side: its own x axis points up, y along world +y, z along world -x.
    rot = Rotation.from_euler("y", -90, degrees=True).as_matrix()
    box = box7_from_oriented([1.0, 2.0, 3.0], [0.5, 2.0, 1.0], rot)
    np.testing.assert_allclose(box, [1.0, 2.0, 3.0, 2.0, 1.0, 0.5, math.pi / 2], atol=1e-12)
    # The 7-DoF box occupies the same space as the oriented one.
    oriented = np.array([1.0, 2.0, 3.0]) + (
        Rotation.from_matrix(rot).apply(
            np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1])).reshape(3, -1).T * [0.25, 1.0, 0.5]
        )
    )
    got = box7_corners(box)
    assert {tuple(np.round(p, 9)) for p in got} == {tuple(np.round(p, 9)) for p in oriented}


def test_upside_down_box_and_euler_helper():
    box = box7_from_euler([0, 0, 0], [3.0, 1.0, 2.0], [math.pi, 0.0, 0.3])  # upside down, then yawed
    np.testing.assert_allclose(box[3:6], [3.0, 1.0, 2.0])
    assert box[6] == pytest.approx(0.3)


def test_conversion_is_vectorised():
    rots = (
        Rotation.from_euler("zyx", np.random.default_rng(0).uniform(-0.3, 0.3, (4, 5, 3)))
        .as_matrix()
        .reshape(4, 5, 3, 3)
    )
    out = box7_from_oriented(np.zeros((4, 5, 3)), np.ones((4, 5, 3)), rots)
    assert out.shape == (4, 5, 7)


def test_corners_order_and_shape():
    box = np.array([1.0, 2.0, 1.0, 4.0, 2.0, 2.0, 0.0])
    expected_bev = [[3.0, 3.0], [-1.0, 3.0], [-1.0, 1.0], [3.0, 1.0]]
    np.testing.assert_allclose(bev_corners(box), expected_bev)
    c = box7_corners(box)
    np.testing.assert_allclose(c[:4, 2], 0.0)
    np.testing.assert_allclose(c[4:, 2], 2.0)
    assert box7_corners(np.zeros((3, 7))).shape == (3, 8, 3)


@FAST
@given(boxes, boxes)
def test_bev_intersection_matches_clipping_oracle(a, b):
    a[3:5] += 0.01
    b[3:5] += 0.01
    inter = float(bev_iou(a, b))
    area_a, area_b = a[3] * a[4], b[3] * b[4]
    oracle = clip_polygon_area(bev_corners(a), bev_corners(b))
    assert inter == pytest.approx(oracle / (area_a + area_b - oracle), abs=1e-9)


@FAST
@given(boxes, boxes, angles, coords, coords)
def test_iou_properties(a, b, phi, tx, ty):
    iou = float(iou_3d(a, b))
    assert 0.0 <= iou <= 1.0
    assert iou == pytest.approx(float(iou_3d(b, a)), abs=1e-12)
    assert float(iou_3d(a, a)) == pytest.approx(1.0, abs=1e-9)
    assert float(bev_iou(a, a)) == pytest.approx(1.0, abs=1e-9)
    assert iou <= float(bev_iou(a, b)) + 1e-12 or a[5] == b[5]

    def move(box):
        r = rotation_z(phi)[:2, :2]
        return np.concatenate([r @ box[:2] + [tx, ty], box[2:6], [float(wrap_angle(box[6] + phi))]])

    assert float(iou_3d(move(a), move(b))) == pytest.approx(iou, abs=1e-9)


def test_iou_known_values():
    a = np.array([0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0])
    assert float(bev_iou(a, a + [0.5, 0, 0, 0, 0, 0, 0])) == pytest.approx(1 / 3)
    assert float(iou_3d(a, a + [0.5, 0, 0.5, 0, 0, 0, 0])) == pytest.approx(0.25 / 1.75)
    octagon = 2 * (math.sqrt(2) - 1)  # unit square and the same square turned by 45 degrees
    assert float(bev_iou(a, a + [0, 0, 0, 0, 0, 0, math.pi / 4])) == pytest.approx(octagon / (2 - octagon))
    inner = np.array([0.1, 0.0, 0.0, 0.5, 0.5, 0.5, 0.3])
    assert float(iou_3d(a, inner)) == pytest.approx(0.125)
    assert float(iou_3d(a, a + [3.0, 0, 0, 0, 0, 0, 0])) == 0.0
    assert float(iou_3d(a, a + [0, 0, 1.0, 0, 0, 0, 0])) == 0.0  # touching faces
    flat = np.zeros(7)
    assert float(iou_3d(flat, flat)) == 0.0 and float(bev_iou(flat, flat)) == 0.0


def test_pairwise_shapes_and_centre_distance():
    rng = np.random.default_rng(1)
    a = np.column_stack([rng.uniform(-3, 3, (4, 3)), rng.uniform(0.2, 2, (4, 3)), rng.uniform(-3, 3, 4)])
    b = a[:3] + 0.1
    assert iou_3d(a, b).shape == (4, 3)
    assert bev_iou(a[0], b).shape == (3,)
    assert bev_iou(a, b[0]).shape == (4,)
    assert iou_3d(a[0], b[0]).shape == ()
    full = iou_3d(a, b)
    np.testing.assert_allclose(full[2], iou_3d(a[2], b))
    np.testing.assert_allclose(
        center_distance(a, b), np.linalg.norm(a[:, None, :3] - b[None, :, :3], axis=-1)
    )
    assert float(center_distance(a[0], a[0])) == 0.0
    with pytest.raises(ValueError):
        iou_3d(np.zeros(6), a)
