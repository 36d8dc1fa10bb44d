"""Scene-graph generation: invariants, an O(N^3) reference of the documented rules, edge cases."""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssr_core.scene.cogmap import DegenerateAnchorsError, LocalCogMap, encode_triplet
from ssr_core.scene.scene_graph import ANCHOR_CANDIDATES, build_scene_graph

FAST = settings(derandomize=True, deadline=None, max_examples=60)
# Half-metre lattice points: exact distances, so plenty of exact ties and stacked objects.
lattice_scenes = st.lists(st.tuples(*[st.integers(0, 4)] * 3), min_size=0, max_size=11).map(
    lambda pts: 0.5 * np.array(pts, dtype=np.float64).reshape(-1, 3)
)


def random_scene(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    side = 1.5 * np.sqrt(n)
    return np.column_stack([rng.uniform(0, side, (n, 2)), rng.uniform(0, 2.5, n)])


def names(n: int, seed: int = 0) -> list[str]:
    """Ids whose string order differs from their index order."""
    perm = np.random.default_rng(seed).permutation(n)
    return [f"obj_{int(p)}" for p in perm]


def bev_far(a: np.ndarray, b: np.ndarray) -> bool:
    return abs(complex(*(b[:2] - a[:2]))) >= 0.01


def reference(ids: list[str], centers: np.ndarray) -> list[LocalCogMap]:
    """The documented rules, brute force and written independently of the module."""
    if len(ids) < 3:
        return []
    order = sorted(range(len(ids)), key=ids.__getitem__)
    c = centers[order]
    nm = [ids[i] for i in order]

    def d(i: int, j: int) -> float:
        return float(np.sqrt(((c[i] - c[j]) ** 2).sum()))

    def enc(a: int, b: int, t: int) -> LocalCogMap | None:
        if not bev_far(c[a], c[b]):
            return None
        return encode_triplet(c[a, :2], c[b, :2], c[t, :2], nm[a], nm[b], nm[t])

    candidates = [
        (max(d(i, j), d(j, k), d(i, k)), i, j, k)
        for i, j, k in itertools.combinations(range(len(nm)), 3)
        if bev_far(c[i], c[j]) or bev_far(c[j], c[k]) or bev_far(c[i], c[k])
    ]
    if not candidates:
        raise DegenerateAnchorsError("stacked")
    seed = min(candidates)[1:]
    t = max(seed, key=lambda m: (float(np.hypot(*np.subtract(*[c[o, :2] for o in seed if o != m]))), -m))
    a, b = sorted((o for o in seed if o != t), key=lambda o: (d(o, t), o))
    first = enc(a, b, t)
    assert first is not None
    out = [first]
    graph = list(seed)
    while len(graph) < len(nm):
        u = min((min(d(o, g) for g in graph), o) for o in range(len(nm)) if o not in graph)[1]
        ranked = sorted(graph, key=lambda g: (d(u, g), g))
        lcm = enc(ranked[0], ranked[1], u)
        if lcm is None or lcm.clipped:
            lcm = None
            for pool in (ranked[:ANCHOR_CANDIDATES], ranked):
                pairs = sorted(
                    itertools.combinations(range(len(pool)), 2),
                    key=lambda p: (d(u, pool[p[0]]) + d(u, pool[p[1]]), p),
                )
                encoded = [e for e in (enc(pool[p], pool[q], u) for p, q in pairs) if e is not None]
                lcm = next((e for e in encoded if not e.clipped), encoded[0] if encoded else None)
                if lcm is not None:
                    break
        assert lcm is not None
        out.append(lcm)
        graph.append(u)
    return out


def check_invariants(ids: list[str], centers: np.ndarray, triplets: list[LocalCogMap]) -> None:
    pos = {i: centers[k] for k, i in enumerate(ids)}
    assert len(triplets) == max(len(ids) - 2, 0)
    if not triplets:
        return
    seed = triplets[0]
    in_graph = {seed.anchor1, seed.anchor2, seed.target}
    assert len(in_graph) == 3
    for lcm in triplets[1:]:
        assert lcm.target not in in_graph  # exactly one new object, anchored to two known ones
        assert lcm.anchor1 in in_graph and lcm.anchor2 in in_graph
        in_graph.add(lcm.target)
    assert in_graph == set(ids)  # connected, covers everything once
    for lcm in triplets:
        a1, a2, t = pos[lcm.anchor1], pos[lcm.anchor2], pos[lcm.target]
        assert bev_far(a1, a2)
        assert (np.linalg.norm(a1 - t), lcm.anchor1) <= (np.linalg.norm(a2 - t), lcm.anchor2)
    assert not seed.clipped


@FAST
@given(lattice_scenes)
def test_lattice_scenes_follow_the_reference(centers):
    ids = names(len(centers), seed=len(centers))
    try:
        expected = reference(ids, centers)
    except DegenerateAnchorsError:
        with pytest.raises(DegenerateAnchorsError):
            build_scene_graph(ids, centers)
        return
    got = build_scene_graph(ids, centers)
    assert got == expected
    check_invariants(ids, centers, got)


@settings(derandomize=True, deadline=None, max_examples=25)
@given(st.integers(0, 10_000), st.integers(3, 30))
def test_random_scenes_follow_the_reference_and_input_order_does_not_matter(seed, n):
    centers = random_scene(seed, n)
    ids = names(n, seed)
    got = build_scene_graph(ids, centers)
    assert got == reference(ids, centers)
    check_invariants(ids, centers, got)
    perm = np.random.default_rng(seed + 1).permutation(n)
    assert build_scene_graph([ids[i] for i in perm], centers[perm]) == got


def test_large_scene_invariants():
    centers = random_scene(7, 2000)
    ids = names(2000)
    check_invariants(ids, centers, build_scene_graph(ids, centers))


@pytest.mark.parametrize("n", [0, 1, 2])
def test_fewer_than_three_objects_give_no_triplets(n):
    assert build_scene_graph([f"o_{i}" for i in range(n)], np.zeros((n, 3))) == []


def test_no_triplet_within_delta_still_seeds_with_the_most_compact(caplog):
    centers = np.array([[0.0, 0, 0], [10, 0, 0], [0, 12, 0], [30, 30, 0], [9, 9, 0]])
    ids = ["a_0", "b_0", "c_0", "d_0", "e_0"]
    with caplog.at_level(logging.INFO, logger="ssr_core.scene.scene_graph"):
        triplets = build_scene_graph(ids, centers, delta=2.5)
    assert "no triplet within delta" in caplog.text
    assert {triplets[0].anchor1, triplets[0].anchor2, triplets[0].target} == {"a_0", "b_0", "e_0"}
    check_invariants(ids, centers, triplets)


def test_ties_are_broken_by_id():
    # Square: all four triplets have the same diameter (the diagonal) -> the three smallest ids.
    centers = np.array([[0.0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]])
    ids = ["d_0", "a_0", "c_0", "b_0"]
    seed, last = build_scene_graph(ids, centers)
    assert {seed.anchor1, seed.anchor2, seed.target} == {"a_0", "b_0", "c_0"}
    # a=(1,0), b=(0,1), c=(1,1): the longest edge is a-b, so c is the target; a and b are both
    # 1 m from it, a has the smaller id.
    assert (seed.anchor1, seed.anchor2, seed.target) == ("a_0", "b_0", "c_0")
    # d=(0,0) is 1 m from a and b, sqrt(2) from c.
    assert (last.anchor1, last.anchor2, last.target) == ("a_0", "b_0", "d_0")


def test_stacked_anchors_are_replaced_by_the_next_best_pair():
    ids = ["table_0", "cup_0", "lamp_0", "chair_0"]
    centers = np.array([[0.0, 0.0, 0.4], [0.0, 0.0, 0.8], [0.6, 0.0, 0.4], [-0.5, 0.5, 0.6]])
    triplets = build_scene_graph(ids, centers)
    chair = triplets[-1]
    assert chair.target == "chair_0"
    # cup and table are the chair's two nearest (0.735 m each) but share a bird's-eye position.
    assert {chair.anchor1, chair.anchor2} in ({"cup_0", "lamp_0"}, {"table_0", "lamp_0"})
    assert chair.anchor1 == "cup_0"  # nearer anchor first, ties by id
    check_invariants(ids, centers, triplets)


def test_pairs_that_would_clip_are_avoided():
    # The sofa's two nearest objects are 5 cm apart in bird's-eye view: anchoring on them clips.
    ids = ["desk_0", "monitor_0", "chair_0", "sofa_0"]
    centers = np.array([[0.0, 0.0, 0.4], [0.05, 0.0, 0.9], [0.0, -0.8, 0.4], [1.2, 0.6, 0.4]])
    sofa = build_scene_graph(ids, centers)[-1]
    assert sofa.target == "sofa_0" and not sofa.clipped
    assert encode_triplet(
        centers[0, :2], centers[1, :2], centers[3, :2], "desk_0", "monitor_0", "sofa_0"
    ).clipped
    assert "chair_0" in (sofa.anchor1, sofa.anchor2)


def test_all_objects_stacked_is_an_error():
    centers = np.array([[1.0, 1.0, 0.0], [1.0, 1.004, 1.0], [1.003, 1.0, 2.0], [1.0, 1.0, 3.0]])
    with pytest.raises(DegenerateAnchorsError):
        build_scene_graph(["a_0", "b_0", "c_0", "d_0"], centers)


def test_invalid_input():
    with pytest.raises(ValueError):
        build_scene_graph(["a", "b"], np.zeros((3, 3)))
    with pytest.raises(ValueError):
        build_scene_graph(["a", "a", "b"], np.eye(3))
    with pytest.raises(ValueError):
        build_scene_graph(["a", "b", "c"], np.full((3, 3), np.nan))
    with pytest.raises(ValueError):
        build_scene_graph(["a", "b", "c"], np.eye(3), delta=0.0)


def test_clipped_pair_is_kept_when_no_pair_fits():
    # A far object next to a tight cluster: every anchor pair clips, so the best one is used.
    ids = ["a_0", "b_0", "c_0", "far_0"]
    centers = np.array([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0.0, 0.1, 0.0], [5.0, 0.2, 0.0]])
    far = build_scene_graph(ids, centers)[-1]
    assert far.target == "far_0" and far.clipped
    assert (far.anchor1, far.anchor2) == ("b_0", "c_0")  # its two nearest
    assert far == reference(ids, centers)[-1]


def test_whole_graph_is_searched_when_the_nearest_are_all_stacked():
    # A column of ten stacked objects, one object beside it (in the seed) and u farther away:
    # u's nearest in-graph objects are all in the column; only the side object pairs with them.
    column = [[0.0, 0.0, 0.1 * i] for i in range(10)]
    centers = np.array(column + [[0.3, 0.0, 0.45], [-0.5, 0.0, 0.45]])
    ids = [f"col_{i}" for i in range(10)] + ["side_0", "u_0"]
    triplets = build_scene_graph(ids, centers)
    last = triplets[-1]
    assert last.target == "u_0" and "side_0" in (last.anchor1, last.anchor2) and not last.clipped
    assert triplets == reference(ids, centers)
    check_invariants(ids, centers, triplets)
