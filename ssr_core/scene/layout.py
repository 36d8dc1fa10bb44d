"""Least-squares layout recovery from LocalCogMap triplets.

In complex bird's-eye coordinates each triplet states ``t - a1 = z (a2 - a1)``, where
``z = (target_cell - anchor1_cell) / (anchor2_cell - anchor1_cell)`` is read off the grid: one
complex equation, linear in the unknown positions and invariant to similarity transforms. All
triplets are solved together with `scipy.sparse.linalg.lsqr`, so noisy or mutually inconsistent
triplets (e.g. model predictions) are reconciled and their residuals flag the outliers.

Gauge: with no known positions the layout is defined up to a similarity; it is fixed by placing
the first usable triplet's anchors at their own cells, so positions are in that triplet's grid
units (anchor1 at (5, 5), anchor2 at (5, 5 - k)). With known positions (e.g. box centres, metres)
those are held fixed and the rest is solved absolutely.

Objects are only placed when the triplets determine them: starting from the fixed ones, a
triplet with two placed members places the third (when its coefficient is non-zero). The others
are left out of `LayoutResult.positions`, and triplets touching them get a NaN residual.

Residuals are measured in each triplet's own grid cells,
``|(t - a1) / (a2 - a1) - z| * |anchor2_cell - anchor1_cell|``, which is what a model's cell
error is. That is the linear residual ``t - a1 - z (a2 - a1)`` scaled by
``|anchor2_cell - anchor1_cell| / |a2 - a1|``; the solve weights each equation by that scale,
with ``|a2 - a1|`` taken from the triplet-by-triplet placement and floored at a tenth of its
median (near-coincident anchors would dominate), in one linear solve. Re-weighting iteratively
from the solution is not done: cell residuals are scale-free, so such an iteration can shrink
parts of the layout towards a line to hide an outlier.
Objects whose target cell rounds onto an anchor's cell are placed on that anchor; a triplet
anchored on two coincident positions has no grid and gets a NaN residual.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike
from scipy.sparse.linalg import lsqr

from ssr_core.scene.cogmap import LocalCogMap, cell_ratio

_DEGENERATE = 1e-12  # coefficients and anchor separations (relative) below this count as zero


@dataclass
class LayoutResult:
    """Recovered bird's-eye positions and the per-triplet residuals (grid cells)."""

    positions: dict[str, np.ndarray]  # id -> (2,) bird's-eye xy
    residuals: np.ndarray  # (T,) per-triplet residual in grid cells; NaN where not evaluable


def recover_layout(
    triplets: Sequence[LocalCogMap],
    known_positions: Mapping[str, ArrayLike] | None = None,
) -> LayoutResult:
    """Bird's-eye positions of all objects the triplets determine (see the module docstring).

    known_positions: id -> (2,) xy (a (3,) centre's z is ignored), held fixed; None or empty
    means "up to a similarity" in the first usable triplet's grid units. Triplets whose anchor
    cells coincide carry no information: they are skipped and get a NaN residual.
    """
    members, ratios, spans, usable = [], [], [], []
    for lcm in triplets:
        members.append((lcm.target, lcm.anchor1, lcm.anchor2))
        ok = lcm.anchor1_cell != lcm.anchor2_cell
        usable.append(ok)
        ratios.append(cell_ratio(lcm.anchor1_cell, lcm.anchor2_cell, lcm.target_cell) if ok else 0j)
        spans.append(float(np.hypot(*np.subtract(lcm.anchor2_cell, lcm.anchor1_cell))))
    fixed: dict[str, complex] = {}
    if known_positions:
        for key, value in known_positions.items():
            p = np.asarray(value, dtype=np.float64)
            if p.shape not in ((2,), (3,)) or not np.all(np.isfinite(p[:2])):
                raise ValueError(f"known position of {key!r} must be a finite (2,) xy, got {value!r}")
            fixed[key] = complex(p[0], p[1])
    else:
        first = next((lcm for lcm, ok in zip(triplets, usable) if ok), None)
        if first is not None:
            fixed = {first.anchor1: complex(*first.anchor1_cell), first.anchor2: complex(*first.anchor2_cell)}
    keep = np.flatnonzero(usable)
    positions, sub_residuals = solve_ratio_layout(
        [members[i] for i in keep], [ratios[i] for i in keep], fixed, [spans[i] for i in keep]
    )
    residuals = np.full(len(triplets), np.nan)
    residuals[keep] = sub_residuals
    return LayoutResult(positions, residuals)


def solve_ratio_layout(
    members: Sequence[tuple[str, str, str]],
    ratios: Sequence[complex],
    fixed: Mapping[str, complex],
    spans: Sequence[float] | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Solve ``t - a1 = z (a2 - a1)`` for (target, anchor1, anchor2) ``members`` and ratios z.

    fixed: id -> finite complex position held fixed. spans (T,) scale each residual (default 1; the
    anchor-cell separation for grid triplets). Returns id -> (2,) positions of the determined
    objects and the (T,) residuals ``span * |(t - a1) / (a2 - a1) - z|`` (NaN: not evaluable).
    """
    t_count = len(members)
    z = np.asarray(ratios, dtype=np.complex128).reshape(t_count)
    span = np.ones(t_count) if spans is None else np.asarray(spans, dtype=np.float64).reshape(t_count)
    names = list(dict.fromkeys([m for trip in members for m in trip] + list(fixed)))
    index = {name: i for i, name in enumerate(names)}
    tri = np.array([[index[m] for m in trip] for trip in members], dtype=np.intp).reshape(t_count, 3)
    coef = np.stack([np.ones_like(z), z - 1.0, -z], axis=1)  # (T, 3) for (t, a1, a2)

    pos = np.full(len(names), np.nan + 0j)
    for name, value in fixed.items():
        pos[index[name]] = value
    # Place objects one triplet at a time: the exact solution of a tree of triplets (as built by
    # `build_scene_graph`) and the warm start of the least-squares solve otherwise.
    for m, k in _propagate(len(names), tri, np.abs(coef) > _DEGENERATE, [index[f] for f in fixed]):
        j = int(np.flatnonzero(tri[k] == m)[0])
        others = [i for i in range(3) if i != j]
        pos[m] = -(coef[k, others] * pos[tri[k, others]]).sum() / coef[k, j]
    placed = ~np.isnan(pos)
    free_mask = placed.copy()
    free_mask[[index[f] for f in fixed]] = False
    free = np.flatnonzero(free_mask)
    rows = np.flatnonzero(placed[tri].all(axis=1) & free_mask[tri].any(axis=1))
    if free.size:
        col = np.full(len(names), -1)
        col[free] = np.arange(free.size)
        is_free = col[tri[rows]] >= 0  # (R, 3)
        known = np.where(is_free, 0.0, pos[tri[rows]])
        sep = np.abs(pos[tri[rows, 2]] - pos[tri[rows, 1]])  # from the triplet-by-triplet placement
        scale = float(np.abs(pos[placed] - pos[placed].mean()).max())
        weight = span[rows] / np.maximum(sep, max(0.1 * float(np.median(sep)), _DEGENERATE * scale, 1e-300))
        r_idx = np.repeat(np.arange(rows.size), 3).reshape(-1, 3)[is_free]
        a = sp.csr_matrix(
            ((coef[rows] * weight[:, None])[is_free], (r_idx, col[tri[rows]][is_free])),
            shape=(rows.size, free.size),
        )
        b = -weight * (coef[rows] * known).sum(axis=1)
        pos[free] = lsqr(
            a, b, x0=pos[free], atol=1e-15, btol=1e-15, conlim=1e15, iter_lim=20 * free.size + 100
        )[0]

    residuals = np.full(t_count, np.nan)
    done = np.flatnonzero(placed[tri].all(axis=1))
    if done.size:
        p = pos[tri[done]]
        sep = p[:, 2] - p[:, 1]
        scale = np.abs(pos[placed] - pos[placed].mean()).max()
        ok = np.abs(sep) > _DEGENERATE * scale
        safe = np.where(ok, sep, 1.0)
        residuals[done] = np.where(ok, span[done] * np.abs((p[:, 0] - p[:, 1]) / safe - z[done]), np.nan)
    positions = {names[i]: np.array([pos[i].real, pos[i].imag]) for i in np.flatnonzero(placed)}
    return positions, residuals


def align_similarity(source: ArrayLike, target: ArrayLike) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; no reflection) of
    ``source`` (N, 2) onto ``target`` (N, 2); returns the aligned source (N, 2)."""
    s = np.asarray(source, dtype=np.float64)
    d = np.asarray(target, dtype=np.float64)
    if s.shape != d.shape or s.ndim != 2 or s.shape[1] != 2:
        raise ValueError(f"expected two (N, 2) arrays, got {s.shape} and {d.shape}")
    sc = s[:, 0] + 1j * s[:, 1]
    dc = d[:, 0] + 1j * d[:, 1]
    sc0, dc0 = sc - sc.mean(), dc - dc.mean()
    norm = float(np.sum(np.abs(sc0) ** 2))
    beta = np.sum(np.conj(sc0) * dc0) / norm if norm > 0 else 0.0
    out = dc.mean() + beta * sc0
    return np.stack([out.real, out.imag], axis=1)


def _propagate(n: int, tri: np.ndarray, nonzero: np.ndarray, seeds: list[int]) -> list[tuple[int, int]]:
    """(object, triplet) in placement order: objects placed from `seeds` by triplets with two
    placed members whose coefficient of the third is non-zero."""
    placed = np.zeros(n, dtype=bool)
    order: list[tuple[int, int]] = []
    incident: list[list[int]] = [[] for _ in range(n)]
    for k, trip in enumerate(tri):
        for m in set(trip.tolist()):
            incident[m].append(k)
    queue = list(dict.fromkeys(seeds))
    placed[queue] = True
    while queue:
        for k in incident[queue.pop()]:
            missing = [j for j in range(3) if not placed[tri[k, j]]]
            if len(missing) == 1 and nonzero[k, missing[0]]:
                m = int(tri[k, missing[0]])
                placed[m] = True
                queue.append(m)
                order.append((m, k))
    return order
