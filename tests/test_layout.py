"""Layout recovery: exactness, the grid-quantisation bound, gauges, residuals, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssr_core.scene.cogmap import LocalCogMap, cell_ratio, encode_triplet
from ssr_core.scene.layout import LayoutResult, align_similarity, recover_layout, solve_ratio_layout
from ssr_core.scene.scene_graph import build_scene_graph

FAST = settings(derandomize=True, deadline=None, max_examples=30)
HALF_DIAGONAL = math.sqrt(0.5)  # largest rounding error of a cell


def scene(seed: int, n: int) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    side = rng.uniform(1.0, 2.0) * np.sqrt(n)
    centers = np.column_stack([rng.uniform(0, side, (n, 2)), rng.uniform(0, 2.5, n)])
    return [f"obj_{i}" for i in range(n)], centers


def xy_of(ids: list[str], centers: np.ndarray) -> dict[str, complex]:
    return {i: complex(*c[:2]) for i, c in zip(ids, centers)}


def grid_k(lcm: LocalCogMap) -> int:
    return lcm.anchor1_cell[1] - lcm.anchor2_cell[1]


@FAST
@given(st.integers(0, 10_000), st.integers(3, 50))
def test_exact_ratios_give_the_exact_layout(seed, n):
    """Without quantisation there is no error: the grid is the only error source."""
    ids, centers = scene(seed, n)
    truth = xy_of(ids, centers)
    triplets = build_scene_graph(ids, centers)
    members = [(t.target, t.anchor1, t.anchor2) for t in triplets]
    ratios = [(truth[t] - truth[a]) / (truth[b] - truth[a]) for t, a, b in members]
    seed_anchors = {m: truth[m] for m in members[0][1:]}
    positions, residuals = solve_ratio_layout(members, ratios, seed_anchors)
    scale = np.abs(np.array(list(truth.values())) - np.mean(list(truth.values()))).max()
    for i in ids:
        assert abs(complex(*positions[i]) - truth[i]) <= 1e-9 * scale
    assert np.all(residuals < 1e-9)


@FAST
@given(st.integers(0, 10_000), st.integers(10, 50))
def test_ground_truth_triplets_error_is_bounded_by_grid_quantisation(seed, n):
    """Each triplet rounds its target by at most sqrt(2)/2 cell; with the seed anchors known the
    error of every object is at most that rounding propagated along the triplets that place it:
    |e_t| <= |1 - z| |e_a1| + |z| |e_a2| + sqrt(2)/2 |a2 - a1| / k."""
    ids, centers = scene(seed, n)
    truth = xy_of(ids, centers)
    triplets = build_scene_graph(ids, centers)
    first = triplets[0]
    known = {m: centers[ids.index(m)] for m in (first.anchor1, first.anchor2)}
    result = recover_layout(triplets, known)
    # A tree of triplets is solved exactly. A target rounded onto its anchor's cell is decoded
    # onto that anchor; a later triplet anchored on both has no grid then (NaN residual).
    for lcm, r in zip(triplets, result.residuals):
        sep = np.linalg.norm(result.positions[lcm.anchor2] - result.positions[lcm.anchor1])
        assert r < 1e-6 if sep > 1e-9 else np.isnan(r)
    bound = {m: 0.0 for m in known}
    for lcm in triplets:
        z = cell_ratio(lcm.anchor1_cell, lcm.anchor2_cell, lcm.target_cell)
        base = abs(truth[lcm.anchor2] - truth[lcm.anchor1])
        image = (
            5
            + 5j
            + grid_k(lcm)
            * -1j
            * (truth[lcm.target] - truth[lcm.anchor1])
            / (truth[lcm.anchor2] - truth[lcm.anchor1])
        )
        rounding = abs(image - complex(*lcm.target_cell))
        assert lcm.clipped or rounding <= HALF_DIAGONAL + 1e-9
        bound[lcm.target] = (
            abs(1 - z) * bound[lcm.anchor1]
            + abs(z) * bound[lcm.anchor2]
            + max(rounding, HALF_DIAGONAL) * base / grid_k(lcm)
        )
    for i in ids:
        err = abs(complex(*result.positions[i]) - truth[i])
        assert err <= bound[i] * (1 + 1e-9) + 1e-9
    # Without known positions the same layout comes out, up to a similarity (gauge independence).
    free = recover_layout(triplets)
    est = align_similarity(
        np.array([free.positions[i] for i in ids]), np.array([result.positions[i] for i in ids])
    )
    np.testing.assert_allclose(
        est, np.array([result.positions[i] for i in ids]), atol=1e-6 * np.ptp(centers[:, :2])
    )


def test_gauge_is_the_first_triplets_grid():
    ids, centers = scene(3, 12)
    triplets = build_scene_graph(ids, centers)
    result = recover_layout(triplets)
    first = triplets[0]
    np.testing.assert_allclose(result.positions[first.anchor1], first.anchor1_cell, atol=1e-12)
    np.testing.assert_allclose(result.positions[first.anchor2], first.anchor2_cell, atol=1e-12)
    np.testing.assert_allclose(result.positions[first.target], first.target_cell, atol=1e-9)
    assert isinstance(result, LayoutResult) and set(result.positions) == set(ids)


def test_residuals_with_all_positions_known_flag_a_corrupted_triplet():
    ids, centers = scene(5, 20)
    triplets = build_scene_graph(ids, centers)
    bad = 7
    lcm = triplets[bad]
    triplets[bad] = LocalCogMap(
        lcm.anchor1,
        lcm.anchor2,
        lcm.target,
        lcm.anchor1_cell,
        lcm.anchor2_cell,
        ((lcm.target_cell[0] + 5) % 10, lcm.target_cell[1]),
        False,
    )
    known = {i: c for i, c in zip(ids, centers)}
    result = recover_layout(triplets, known)
    for i in ids:
        np.testing.assert_array_equal(result.positions[i], centers[ids.index(i), :2])
    ok = np.delete(result.residuals, bad)
    assert np.all(ok <= HALF_DIAGONAL + 1e-9)  # true positions: quantisation only
    assert result.residuals[bad] >= 4.0


def test_redundant_triplets_are_reconciled_and_the_outlier_stands_out():
    ids, centers = scene(11, 15)
    truth = xy_of(ids, centers)
    triplets = build_scene_graph(ids, centers)
    # A second triplet for every added object, anchored to two other in-graph objects.
    placed = [triplets[0].anchor1, triplets[0].anchor2, triplets[0].target]
    extra = []
    for lcm in triplets[1:]:
        others = sorted(
            (m for m in placed if m not in (lcm.anchor1, lcm.anchor2)),
            key=lambda m: abs(truth[m] - truth[lcm.target]),
        )
        if len(others) >= 2:
            a, b = others[:2]
            pa, pb, pt = (centers[ids.index(m), :2] for m in (a, b, lcm.target))
            extra.append(encode_triplet(pa, pb, pt, a, b, lcm.target))
        placed.append(lcm.target)
    every = triplets + extra

    def error(layout: LayoutResult) -> float:
        est = align_similarity(np.array([layout.positions[i] for i in ids]), centers[:, :2])
        return float(np.linalg.norm(est - centers[:, :2], axis=1).max())

    assert error(recover_layout(every)) < 0.8 * error(recover_layout(triplets))  # redundancy helps
    outlier = len(triplets) + 3
    e = every[outlier]
    flipped = (9 - e.target_cell[0], 9 - e.target_cell[1])
    every[outlier] = LocalCogMap(
        e.anchor1, e.anchor2, e.target, e.anchor1_cell, e.anchor2_cell, flipped, False
    )
    residuals = recover_layout(every).residuals
    assert int(np.nanargmax(residuals)) == outlier
    assert residuals[outlier] > 4 * np.sort(residuals)[-2]


def test_over_determined_target_is_the_weighted_mean_in_cell_units():
    a, b, c = np.array([0.0, 0.0]), np.array([2.0, 0.0]), np.array([0.0, 1.0])
    t1 = LocalCogMap("a", "b", "t", (5, 5), (5, 3), (7, 3), False)  # says t = (2, 2) via (a, b)
    t2 = LocalCogMap("c", "b", "t", (5, 5), (5, 1), (6, 2), False)  # says something else via (c, b)
    known = {"a": a, "b": b, "c": c}
    result = recover_layout([t1, t2], known)
    preds, weights = [], []
    for lcm in (t1, t2):
        p1, p2 = complex(*known[lcm.anchor1]), complex(*known[lcm.anchor2])
        preds.append(p1 + cell_ratio(lcm.anchor1_cell, lcm.anchor2_cell, lcm.target_cell) * (p2 - p1))
        weights.append(abs(complex(*np.subtract(lcm.anchor2_cell, lcm.anchor1_cell))) / abs(p2 - p1))
    w2 = np.square(weights)
    expected = np.sum(w2 * np.array(preds)) / w2.sum()
    assert complex(*result.positions["t"]) == pytest.approx(expected, abs=1e-9)
    np.testing.assert_allclose(
        result.residuals, np.array(weights) * np.abs(expected - np.array(preds)), atol=1e-9
    )


def test_undetermined_and_degenerate_triplets():
    ok = LocalCogMap("a", "b", "c", (5, 5), (5, 3), (7, 3), False)
    loose = LocalCogMap("c", "d", "e", (5, 5), (5, 3), (2, 2), False)  # shares one object only
    flat = LocalCogMap("a", "b", "f", (5, 5), (5, 5), (2, 2), False)  # anchor cells coincide
    result = recover_layout([ok, loose, flat])
    assert set(result.positions) == {"a", "b", "c"}
    assert result.residuals[0] < 1e-9 and np.isnan(result.residuals[1]) and np.isnan(result.residuals[2])
    # Target on anchor 1: the other two members do not place anchor 2.
    on_anchor = LocalCogMap("a", "b", "c", (5, 5), (5, 3), (5, 5), False)
    assert set(recover_layout([on_anchor], {"a": [0, 0], "c": [0, 0]}).positions) == {"a", "c"}
    only = recover_layout([ok], {"a": [1.0, 2.0]})
    assert set(only.positions) == {"a"} and np.isnan(only.residuals[0])
    empty = recover_layout([])
    assert empty.positions == {} and empty.residuals.shape == (0,)
    with pytest.raises(ValueError):
        recover_layout([ok], {"a": [np.nan, 0.0], "b": [1.0, 0.0]})


@FAST
@given(st.integers(0, 1000), st.floats(-math.pi, math.pi), st.floats(0.1, 10.0))
def test_align_similarity_recovers_a_similarity(seed, angle, scale):
    pts = np.random.default_rng(seed).normal(size=(6, 2))
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    moved = scale * pts @ rot.T + [3.0, -1.0]
    np.testing.assert_allclose(align_similarity(pts, moved), moved, atol=1e-9)
    with pytest.raises(ValueError):
        align_similarity(pts, moved[:3])
