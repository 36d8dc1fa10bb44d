"""Incremental scene-graph generation (paper Alg. 1, fixed and made O(N^2)).

Rules (ties are always broken by id, in Python string order):

* Fewer than 3 objects give no triplets.
* Seed: the most compact triplet, i.e. the smallest diameter (largest pairwise 3-D centre
  distance), among triplets with two members at least 1 cm apart in bird's-eye view. It satisfies
  Alg. 1's ``max dist <= delta`` whenever any triplet does; unlike Alg. 1, a scene with no such
  triplet still gets this seed (Alg. 1 would leave the graph empty). Its target is the member
  opposite its longest bird's-eye edge, so the seed is never clipped.
* Then, while objects remain outside: the outside object nearest to the graph (smallest 3-D
  distance to any in-graph object) becomes the target, anchored to the two in-graph objects
  minimising ``d(u, a) + d(u, b)``. When that pair cannot be encoded faithfully, because its
  bird's-eye centres are closer than 1 cm (objects stacked vertically) or because the target
  would be clipped, the next best pair among the target's 8 nearest in-graph objects is used
  (a clipped one only if no pair there avoids clipping; beyond the 8 only in the pathological
  case of no bird's-eye-separated pair among them).
* In every triplet, anchor1 is the anchor nearer (3-D) to the target and anchor2 the other one.

So every object is the target of exactly one triplet or a member of the seed, each triplet after
the seed adds exactly one new object anchored to two earlier ones: the graph is connected and
rigid (each position follows from two known ones). The first triplet is the seed.

Cost: the growth keeps, for every outside object, its two nearest in-graph objects and updates
them in O(N) per added object: O(N^2) overall. The seed search avoids O(N^3): in 3-D, among 13
points within distance r of a point p two are at most r apart (at most 12 directions can be
pairwise more than 60 degrees apart, the kissing number), so the smallest diameter D* is attained
by p and two of its 13 nearest neighbours for some p; a cKDTree query gives D* in O(N log N), and
one ball query of radius D* enumerates the (few) triplets of that diameter for the tie-break.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy.spatial import cKDTree

from ssr_core.scene.cogmap import MIN_ANCHOR_SEPARATION_M, DegenerateAnchorsError, LocalCogMap, encode_triplet

logger = logging.getLogger(__name__)

ANCHOR_CANDIDATES = 8  # in-graph objects searched for a replacement anchor pair
_KISSING_NEIGHBOURS = 13  # one more than the 3-D kissing number


MAX_COORDINATE = 1e6  # metres; far beyond any room, far below where squares overflow


def build_scene_graph(ids: Sequence[str], centers: ArrayLike, delta: float = 2.5) -> list[LocalCogMap]:
    """Triplets covering all objects: the seed first, then one triplet per added object.

    ids (N,) unique strings; centers (N, 3) canonical-frame box centres in metres; delta is
    Alg. 1's seed threshold in metres (a seed wider than delta is logged at INFO level).
    Raises ValueError on malformed input and `DegenerateAnchorsError` when no two objects are
    1 cm apart in bird's-eye view (no triplet can be drawn).
    """
    names = list(ids)
    c = np.asarray(centers, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] != 3 or c.shape[0] != len(names):
        raise ValueError(f"centers must be (N, 3) with N = len(ids) = {len(names)}, got shape {c.shape}")
    if not np.all(np.isfinite(c)) or (c.size and np.abs(c).max() > MAX_COORDINATE):
        # squared distances of larger coordinates overflow to inf and break the nearest-neighbour search
        raise ValueError(f"centers must be finite and within +-{MAX_COORDINATE:g} m")
    if not all(isinstance(i, str) for i in names) or len(set(names)) != len(names):
        raise ValueError("ids must be unique strings")
    if not delta > 0:
        raise ValueError(f"delta must be positive, got {delta}")
    n = len(names)
    if n < 3:
        return []
    # Work in id order so that "smaller index" means "smaller id" in every tie-break.
    order = sorted(range(n), key=names.__getitem__)
    names = [names[i] for i in order]
    c = c[order]
    xy = c[:, :2]

    seed = _seed(c)
    diameter = max(_dist(c[a], c[b]) for a, b in itertools.combinations(seed, 2))
    if diameter > delta:
        logger.info(
            "no triplet within delta=%.3f m; seeding with the most compact one (%.3f m)", delta, diameter
        )
    triplets = [_orient_seed(c, names, seed)]

    in_graph = np.zeros(n, dtype=bool)
    # Two nearest in-graph objects of every object, keyed by (distance, index).
    d1, d2 = np.full(n, np.inf), np.full(n, np.inf)
    b1, b2 = np.full(n, n), np.full(n, n)

    def add(s: int) -> None:
        nonlocal d1, d2, b1, b2
        in_graph[s] = True
        dv = _dist(c, c[s])
        first = (dv < d1) | ((dv == d1) & (s < b1))
        second = ~first & ((dv < d2) | ((dv == d2) & (s < b2)))
        d2 = np.where(first, d1, np.where(second, dv, d2))
        b2 = np.where(first, b1, np.where(second, s, b2))
        d1 = np.where(first, dv, d1)
        b1 = np.where(first, s, b1)

    for s in seed:
        add(s)
    for _ in range(n - 3):
        u = int(np.argmin(np.where(in_graph, np.inf, d1)))
        lcm = _encode(xy, names, int(b1[u]), int(b2[u]), u)
        if lcm is None or lcm.clipped:
            lcm = _next_best_pair(c, names, in_graph, u)
        triplets.append(lcm)
        add(u)
    return triplets


def _dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """3-D distance, written elementwise so that every call site gets bit-identical values."""
    dx, dy, dz = a[..., 0] - b[..., 0], a[..., 1] - b[..., 1], a[..., 2] - b[..., 2]
    return np.sqrt(dx * dx + dy * dy + dz * dz)


def _bev_far(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bird's-eye separation of at least 1 cm, computed as `encode_triplet` does."""
    return np.abs((b[..., 0] - a[..., 0]) + 1j * (b[..., 1] - a[..., 1])) >= MIN_ANCHOR_SEPARATION_M


def _seed(c: np.ndarray) -> tuple[int, int, int]:
    """Indices (i < j < k) of the most compact encodable triplet, ties by index."""
    n = c.shape[0]
    if not any(_bev_far(c[i], c).any() for i in range(n)):  # stops at the first far pair
        raise DegenerateAnchorsError("no two objects are 1 cm apart in bird's-eye view")
    tree = cKDTree(c)
    k = min(n, _KISSING_NEIGHBOURS + 1)  # the query may or may not return the point itself
    _, nn = tree.query(c, k=k)  # (n, k)
    nn = nn.reshape(n, k)
    dp = _dist(c[:, None], c[nn])  # (n, k)
    dpq = _dist(c[nn][:, :, None], c[nn][:, None, :])  # (n, k, k)
    diam = np.maximum(np.maximum(dp[:, :, None], dp[:, None, :]), dpq)
    self_hit = nn == np.arange(n)[:, None]
    usable = ~self_hit[:, :, None] & ~self_hit[:, None, :] & np.triu(np.ones((k, k), dtype=bool), 1)
    radius = float(diam[usable].min())
    # D* ignores bird's-eye degeneracy; widen only when every triplet that compact is stacked.
    # This ends: an encodable triplet exists and a radius past the scene's diameter finds it.
    while (best := _best_within(c, tree, radius)) is None:
        radius = max(2.0 * radius, MIN_ANCHOR_SEPARATION_M)
    return best


def _best_within(c: np.ndarray, tree: cKDTree, radius: float) -> tuple[int, int, int] | None:
    """Smallest (diameter, i, j, k) over encodable triplets of diameter <= radius, or None."""
    query_r = radius * (1.0 + 1e-9) + 1e-12  # the tree's arithmetic may differ in the last bits
    counts = tree.query_ball_point(c, query_r, return_length=True)
    best: tuple[float, int, int, int] | None = None
    for i in np.flatnonzero(counts >= 3):
        nb = np.array(sorted(j for j in tree.query_ball_point(c[i], query_r) if j > i), dtype=np.intp)
        nb = nb[_dist(c[nb], c[i]) <= radius] if nb.size else nb
        if nb.size < 2:
            continue
        di = _dist(c[nb], c[i])
        dd = np.maximum(np.maximum(di[:, None], di[None, :]), _dist(c[nb][:, None], c[nb][None, :]))
        far_i = _bev_far(c[i], c[nb])
        ok = np.triu(dd <= radius, 1) & (
            far_i[:, None] | far_i[None, :] | _bev_far(c[nb][:, None], c[nb][None, :])
        )
        if not ok.any():
            continue
        jj, kk = np.nonzero(ok)  # row-major: (j, k) ascending for equal diameters
        m = int(np.argmin(dd[jj, kk]))
        cand = (float(dd[jj[m], kk[m]]), int(i), int(nb[jj[m]]), int(nb[kk[m]]))
        if best is None or cand < best:
            best = cand
    return None if best is None else best[1:]


def _orient_seed(c: np.ndarray, names: list[str], seed: tuple[int, int, int]) -> LocalCogMap:
    """Seed target = member opposite the longest bird's-eye edge (ties: smaller target index).

    Then the target lies no farther (bird's-eye) from either anchor than the anchors from each
    other, so it always fits the grid at k >= 1.
    """

    def base_length(t: int) -> float:
        a, b = (m for m in seed if m != t)
        return float(np.hypot(*(c[a, :2] - c[b, :2])))

    t = max(seed, key=lambda m: (base_length(m), -m))
    a, b = (m for m in seed if m != t)
    if (_dist(c[b], c[t]), b) < (_dist(c[a], c[t]), a):
        a, b = b, a
    return encode_triplet(c[a, :2], c[b, :2], c[t, :2], names[a], names[b], names[t])


def _encode(xy: np.ndarray, names: list[str], a: int, b: int, t: int) -> LocalCogMap | None:
    try:
        return encode_triplet(xy[a], xy[b], xy[t], names[a], names[b], names[t])
    except DegenerateAnchorsError:
        return None


def _next_best_pair(c: np.ndarray, names: list[str], in_graph: np.ndarray, u: int) -> LocalCogMap:
    """Best faithful anchor pair for target u when its two nearest in-graph objects are not."""
    idx = np.flatnonzero(in_graph)
    du = _dist(c[idx], c[u])
    if idx.size > ANCHOR_CANDIDATES:
        cut = np.partition(du, ANCHOR_CANDIDATES - 1)[ANCHOR_CANDIDATES - 1]
        keep = du <= cut
        idx, du = idx[keep], du[keep]
    ranked = np.lexsort((idx, du))  # by (distance, index)
    xy = c[:, :2]
    fallback = None
    for candidates in (ranked[:ANCHOR_CANDIDATES], None):
        if candidates is None:  # every nearby pair is stacked: search the whole graph
            idx = np.flatnonzero(in_graph)
            du = _dist(c[idx], c[u])
            candidates = np.lexsort((idx, du))
        pairs = sorted(
            itertools.combinations(range(len(candidates)), 2),
            key=lambda p: (du[candidates[p[0]]] + du[candidates[p[1]]], p),
        )
        for p, q in pairs:
            lcm = _encode(xy, names, int(idx[candidates[p]]), int(idx[candidates[q]]), u)
            if lcm is not None and not lcm.clipped:
                return lcm
            if lcm is not None and fallback is None:
                fallback = lcm
        if fallback is not None:
            return fallback
    raise AssertionError("unreachable: the seed holds a bird's-eye-separated pair")
