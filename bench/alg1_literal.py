"""Paper Alg. 1 transcribed literally: the baseline of `bench/scene_graph_bench.py`.

Kept as written: the seed loop walks all triplets in index order (O(N^3)) and stops at the first
whose pairwise distances are all <= delta; the anchor pair is a naive arg-min over all in-graph
pairs, recomputed at every step (O(N^3) overall). Where the paper is silent ("Pick u in V_out")
u is the outside object nearest to the graph, found by a naive scan, as in
`ssr_core.scene.scene_graph`; anchor1 is the nearer anchor. The paper's bug is kept too: without a
triplet within delta the graph stays empty (the paper would then take an arg-min over an empty
set; this returns the empty list). Numpy evaluates each step's distances, so the constant is fair
but the complexity is the paper's. Not for production use.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from ssr_core.scene.cogmap import LocalCogMap, encode_triplet


def alg1_literal(ids: Sequence[str], centers: ArrayLike, delta: float = 2.5) -> list[LocalCogMap]:
    """Alg. 1 of the paper; ids (N,), centers (N, 3)."""
    c = np.asarray(centers, dtype=np.float64)
    pts = [tuple(p) for p in c.tolist()]
    n = len(pts)
    triplets: list[LocalCogMap] = []
    v_in: list[int] = []
    for i, j, k in itertools.combinations(range(n), 3):  # lines 2-9
        if max(math.dist(pts[i], pts[j]), math.dist(pts[j], pts[k]), math.dist(pts[i], pts[k])) <= delta:
            triplets.append(_create(c, ids, k, i, j))  # CreateLocalCogMap(o_i, o_j, o_k)
            v_in = [i, j, k]
            break
    if not v_in:
        return triplets
    v_out = [m for m in range(n) if m not in set(v_in)]
    while v_out:  # lines 10-16
        d = np.linalg.norm(c[v_out][:, None, :] - c[v_in][None, :, :], axis=-1)  # (out, in)
        u = v_out[int(np.argmin(d.min(axis=1)))]
        du = np.linalg.norm(c[v_in] - c[u], axis=1)
        pair_cost = du[:, None] + du[None, :]
        np.fill_diagonal(pair_cost, np.inf)
        a, b = np.unravel_index(int(np.argmin(pair_cost)), pair_cost.shape)
        v1, v2 = (v_in[a], v_in[b]) if du[a] <= du[b] else (v_in[b], v_in[a])
        triplets.append(_create(c, ids, u, v1, v2))
        v_in.append(u)
        v_out.remove(u)
    return triplets


def _create(c: np.ndarray, ids: Sequence[str], target: int, anchor1: int, anchor2: int) -> LocalCogMap:
    return encode_triplet(
        c[anchor1, :2], c[anchor2, :2], c[target, :2], ids[anchor1], ids[anchor2], ids[target]
    )
