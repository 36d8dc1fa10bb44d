"""LocalCogMap: the paper's figure, encode/decode properties, clipping, degenerate anchors, JSON."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ssr_core.scene.cogmap import (
    CogMapFormatError,
    DegenerateAnchorsError,
    LocalCogMap,
    cell_ratio,
    decode_target,
    encode_triplet,
)

FAST = settings(derandomize=True, deadline=None, max_examples=100)
points = st.tuples(st.floats(-20.0, 20.0), st.floats(-20.0, 20.0)).map(np.array)


def grid_image(a1: np.ndarray, a2: np.ndarray, t: np.ndarray, k: int) -> np.ndarray:
    """Target's unrounded cell at scale k, computed with matrices rather than complex numbers."""
    base = a2 - a1
    # Similarity sending base to (0, -k): rotation by the angle from base to -y, scale k/|base|.
    angle = -math.pi / 2 - math.atan2(base[1], base[0])
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return np.array([5.0, 5.0]) + (k / np.linalg.norm(base)) * (rot @ (t - a1))


def in_grid(p: np.ndarray) -> bool:
    return bool(np.all((p >= -0.5) & (p < 9.5)))


def test_paper_figure_decodes_at_k2():
    # Anchors 2 m apart along x; the paper's cells [5,5], [5,3] and target [7,3].
    t = decode_target([0.0, 0.0], [2.0, 0.0], [5, 5], [5, 3], [7, 3])
    np.testing.assert_allclose(t, [2.0, 2.0])


def test_paper_figure_geometry_encodes_at_k4():
    lcm = encode_triplet([0.0, 0.0], [2.0, 0.0], [2.0, 2.0], "table_0", "chair_0", "sofa_0")
    assert lcm == LocalCogMap("table_0", "chair_0", "sofa_0", (5, 5), (5, 1), (9, 1), False)
    np.testing.assert_allclose(
        decode_target([0, 0], [2, 0], lcm.anchor1_cell, lcm.anchor2_cell, lcm.target_cell), [2.0, 2.0]
    )


@FAST
@given(points, points, points)
def test_encode_decode_round_trip(a1, a2, t):
    assume(np.linalg.norm(a2 - a1) >= 0.01)
    lcm = encode_triplet(a1, a2, t, "a_0", "b_0", "c_0")
    k = lcm.anchor1_cell[1] - lcm.anchor2_cell[1]
    assert lcm.anchor1_cell == (5, 5) and lcm.anchor2_cell == (5, 5 - k) and 1 <= k <= 5
    assert all(0 <= v <= 9 for v in lcm.target_cell)
    decoded = decode_target(a1, a2, lcm.anchor1_cell, lcm.anchor2_cell, lcm.target_cell)
    cell = np.linalg.norm(a2 - a1) / k  # metres per cell
    image = grid_image(a1, a2, t, k)
    assert lcm.clipped == (not in_grid(image))
    if not lcm.clipped:
        assert np.linalg.norm(decoded - t) <= math.sqrt(0.5) * cell * (1 + 1e-9) + 1e-9
        assert np.abs(image - lcm.target_cell).max() <= 0.5 + 1e-9
        if k < 5:  # k is the largest scale that fits
            assert not in_grid(grid_image(a1, a2, t, k + 1)) or np.any(
                np.abs(grid_image(a1, a2, t, k + 1) - 9.5) < 1e-9
            )
    else:
        assert k == 1 and not in_grid(grid_image(a1, a2, t, 1))
    for anchor, cell_ in ((a1, lcm.anchor1_cell), (a2, lcm.anchor2_cell)):
        np.testing.assert_allclose(
            decode_target(a1, a2, lcm.anchor1_cell, lcm.anchor2_cell, cell_), anchor, atol=1e-9
        )


@FAST
@given(points, points, points, st.floats(-math.pi, math.pi), st.floats(0.1, 10.0), points)
def test_encoding_is_similarity_invariant(a1, a2, t, angle, scale, shift):
    assume(np.linalg.norm(a2 - a1) >= 0.05)
    k_cell = encode_triplet(a1, a2, t, "a_0", "b_0", "c_0")
    image = grid_image(a1, a2, t, k_cell.anchor1_cell[1] - k_cell.anchor2_cell[1])
    assume(np.all(np.abs(image - np.round(image - 0.5) - 0.5) > 1e-6))  # not on a rounding boundary
    assume(all(np.all(np.abs(grid_image(a1, a2, t, k) - 9.5) > 1e-6) for k in range(1, 6)))
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])

    def sim(p):
        return scale * rot @ p + shift

    assert encode_triplet(sim(a1), sim(a2), sim(t), "a_0", "b_0", "c_0") == k_cell


@FAST
@given(points, points, *[st.tuples(st.integers(0, 9), st.integers(0, 9))] * 3)
def test_decode_with_any_cells_is_the_similarity_through_the_anchors(a1, a2, c1, c2, ct):
    assume(np.linalg.norm(a2 - a1) >= 0.01 and c1 != c2)
    t = decode_target(a1, a2, c1, c2, ct)
    # Same complex ratio in the plane as on the grid: no reflection, uniform scale.
    z_world = complex(*(t - a1)) / complex(*(a2 - a1))
    assert z_world == pytest.approx(cell_ratio(c1, c2, ct), abs=1e-9)


def test_rounding_is_half_up():
    # 1 cell per metre at k = 5: the target image lands exactly on (5.5, 4.5).
    lcm = encode_triplet([0.0, 0.0], [5.0, 0.0], [0.5, 0.5], "a_0", "b_0", "c_0")
    assert lcm.anchor2_cell == (5, 0) and lcm.target_cell == (6, 5)
    # An image at column 9.5 would round out of the grid, so k drops to 4.
    lcm = encode_triplet([0.0, 0.0], [5.0, 0.0], [0.0, 4.5], "a_0", "b_0", "c_0")
    assert lcm.anchor2_cell == (5, 1) and lcm.target_cell == (9, 5) and not lcm.clipped


def test_clipped_target_is_clamped_and_flagged():
    lcm = encode_triplet([0.0, 0.0], [0.1, 0.0], [0.0, -5.0], "a_0", "b_0", "c_0")
    assert lcm.clipped and lcm.anchor2_cell == (5, 4)
    assert lcm.target_cell == (0, 5)  # image (-45, 5) clamped to column 0
    far = encode_triplet([0.0, 0.0], [0.1, 0.0], [30.0, 30.0], "a_0", "b_0", "c_0")
    assert far.clipped and far.target_cell == (9, 0)


def test_degenerate_anchors():
    with pytest.raises(DegenerateAnchorsError, match="cm apart"):
        encode_triplet([1.0, 1.0], [1.005, 1.0], [2.0, 2.0], "a_0", "b_0", "c_0")
    assert issubclass(DegenerateAnchorsError, ValueError)
    lcm = encode_triplet([1.0, 1.0, 0.2], [1.0, 1.015, 1.5], [1.0, 1.0, 3.0], "a_0", "b_0", "c_0")  # (3,) ok
    assert lcm.target_cell == (5, 5)
    with pytest.raises(DegenerateAnchorsError):
        decode_target([0, 0], [0, 0.001], [5, 5], [5, 3], [7, 3])
    with pytest.raises(DegenerateAnchorsError, match="coincide"):
        decode_target([0, 0], [1, 0], [5, 5], [5, 5], [7, 3])
    with pytest.raises(ValueError):
        encode_triplet([np.nan, 0.0], [1.0, 0.0], [0.0, 1.0], "a_0", "b_0", "c_0")


def test_json_round_trip_matches_the_contract():
    lcm = encode_triplet([0.0, 0.0], [2.0, 0.0], [2.0, 2.0], "table_0", "chair_0", "sofa_0")
    d = lcm.to_dict()
    assert d == {
        "anchor1": "table_0",
        "anchor2": "chair_0",
        "target": "sofa_0",
        "anchor1_cell": [5, 5],
        "anchor2_cell": [5, 1],
        "target_cell": [9, 1],
        "clipped": False,
    }
    assert LocalCogMap.from_dict(json.loads(json.dumps(d))) == lcm
    # numpy cells and flags, as arrays produce them, are normalised to plain ints and bools.
    lcm = LocalCogMap("a", "b", "c", np.array([5, 5]), [5, 4], (np.int64(1), 2), np.bool_(True))  # type: ignore[arg-type]
    assert lcm.anchor1_cell == (5, 5) and lcm.target_cell == (1, 2) and lcm.clipped is True


@pytest.mark.parametrize(
    "change",
    [
        {"target_cell": [10, 1]},
        {"target_cell": [1.0, 1]},
        {"target_cell": [True, 1]},
        {"target_cell": "[1, 1]"},
        {"target_cell": [1, 2, 3]},
        {"anchor2": "table_0"},
        {"anchor1": 3},
        {"anchor1": ""},
        {"clipped": "no"},
    ],
)
def test_from_dict_rejects_malformed_fields(change):
    d = {
        "anchor1": "table_0",
        "anchor2": "chair_0",
        "target": "sofa_0",
        "anchor1_cell": [5, 5],
        "anchor2_cell": [5, 1],
        "target_cell": [9, 1],
        "clipped": False,
    }
    with pytest.raises(CogMapFormatError):
        LocalCogMap.from_dict({**d, **change})
    with pytest.raises(CogMapFormatError, match="missing"):
        LocalCogMap.from_dict({k: v for k, v in d.items() if k != "clipped"})
    with pytest.raises(CogMapFormatError):
        LocalCogMap.from_dict([("anchor1", "x")])  # type: ignore[arg-type]
