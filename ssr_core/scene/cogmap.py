"""LocalCogMap: one (anchor1, anchor2, target) triplet drawn on a 10 x 10 grid (paper Sec. 3.2).

Cells are integer ``(col, row)`` in 0..9, col along grid-x and row along grid-y; the grid frame is
right-handed like the bird's-eye (canonical x-y) plane. Anchor 1 sits at (5, 5), anchor 2 at
(5, 5 - k). The similarity transform (rotation, uniform scale, translation; no reflection) that
maps the anchors' bird's-eye centres there maps the target's centre, rounded half-up to the
nearest cell. k is the largest integer in 1..5 whose target image rounds into the grid, i.e. lies
in [-0.5, 9.5)^2; if none does, k = 1 and the rounded target is clamped into 0..9 per coordinate
and flagged ``clipped``.

Points are handled as complex numbers ``x + iy`` (bird's-eye) and ``col + i row`` (grid), where
a similarity without reflection is ``p -> c + z p``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

GRID_SIZE = 10
ANCHOR1_CELL = (5, 5)
MAX_SCALE = 5  # largest k: anchor 2 at (5, 0)
MIN_ANCHOR_SEPARATION_M = 0.01  # anchors closer than this (bird's-eye) define no grid

Cell = tuple[int, int]


class DegenerateAnchorsError(ValueError):
    """The two anchors (their bird's-eye centres, or their cells) are too close to define a grid."""


class CogMapFormatError(ValueError):
    """A LocalCogMap field or its JSON form is malformed (wrong type, cell outside the grid...)."""


@dataclass(frozen=True)
class LocalCogMap:
    """One triplet: object ids and their grid cells ``(col, row)``.

    JSON form (`to_dict`/`from_dict`): ``{"anchor1": id, "anchor2": id, "target": id,
    "anchor1_cell": [5, 5], "anchor2_cell": [5, r], "target_cell": [c, r], "clipped": false}``.
    """

    anchor1: str
    anchor2: str
    target: str
    anchor1_cell: Cell  # always (5, 5) when produced by encode_triplet
    anchor2_cell: Cell  # (5, 5 - k), k in 1..5
    target_cell: Cell  # (col, row), 0..9
    clipped: bool

    def __post_init__(self) -> None:
        ids = (self.anchor1, self.anchor2, self.target)
        if not all(isinstance(i, str) and i for i in ids):
            raise CogMapFormatError(f"ids must be non-empty strings, got {ids!r}")
        if len(set(ids)) != 3:
            raise CogMapFormatError(f"anchor1, anchor2 and target must be distinct, got {ids!r}")
        for name in ("anchor1_cell", "anchor2_cell", "target_cell"):
            object.__setattr__(self, name, _cell(getattr(self, name), name))
        if not isinstance(self.clipped, bool | np.bool_):
            raise CogMapFormatError(f"clipped must be a bool, got {self.clipped!r}")
        object.__setattr__(self, "clipped", bool(self.clipped))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (cells as 2-element lists)."""
        return {
            "anchor1": self.anchor1,
            "anchor2": self.anchor2,
            "target": self.target,
            "anchor1_cell": list(self.anchor1_cell),
            "anchor2_cell": list(self.anchor2_cell),
            "target_cell": list(self.target_cell),
            "clipped": self.clipped,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LocalCogMap:
        """Inverse of `to_dict`; raises `CogMapFormatError` on missing keys or bad values."""
        if not isinstance(data, Mapping):
            raise CogMapFormatError(f"expected a mapping, got {type(data).__name__}")
        keys = ("anchor1", "anchor2", "target", "anchor1_cell", "anchor2_cell", "target_cell", "clipped")
        missing = [k for k in keys if k not in data]
        if missing:
            raise CogMapFormatError(f"missing keys {missing}")
        return cls(**{k: data[k] for k in keys})


def encode_triplet(
    anchor1_xy: ArrayLike,
    anchor2_xy: ArrayLike,
    target_xy: ArrayLike,
    anchor1: str,
    anchor2: str,
    target: str,
) -> LocalCogMap:
    """Draw a triplet on the grid from bird's-eye centres ((2,) xy; a (3,) centre's z is ignored).

    Raises `DegenerateAnchorsError` when the anchors are closer than 1 cm.
    """
    a1, a2, t = _xy(anchor1_xy), _xy(anchor2_xy), _xy(target_xy)
    base = a2 - a1
    if abs(base) < MIN_ANCHOR_SEPARATION_M:
        raise DegenerateAnchorsError(
            f"anchors {anchor1!r} and {anchor2!r} are {100 * abs(base):.2f} cm apart in bird's-eye view (< 1 cm)"
        )
    c1 = complex(*ANCHOR1_CELL)
    unit = -1j * (t - a1) / base  # target image offset from anchor 1 at k = 1, in cells
    k = next((k for k in range(MAX_SCALE, 0, -1) if _in_grid(c1 + k * unit)), None)
    clipped = k is None
    image = c1 + (k or 1) * unit
    col = min(max(_round_half_up(image.real), 0), GRID_SIZE - 1)
    row = min(max(_round_half_up(image.imag), 0), GRID_SIZE - 1)
    return LocalCogMap(
        anchor1=anchor1,
        anchor2=anchor2,
        target=target,
        anchor1_cell=ANCHOR1_CELL,
        anchor2_cell=(ANCHOR1_CELL[0], ANCHOR1_CELL[1] - (k or 1)),
        target_cell=(col, row),
        clipped=clipped,
    )


def cell_ratio(anchor1_cell: ArrayLike, anchor2_cell: ArrayLike, target_cell: ArrayLike) -> complex:
    """The complex z with ``target - anchor1 = z (anchor2 - anchor1)``, read off the grid.

    Similarity-invariant, so it holds in the bird's-eye plane too. Raises
    `DegenerateAnchorsError` when the anchor cells coincide.
    """
    c1, c2, ct = _xy(anchor1_cell), _xy(anchor2_cell), _xy(target_cell)
    if c1 == c2:
        raise DegenerateAnchorsError(f"anchor cells coincide at {anchor1_cell!r}")
    return (ct - c1) / (c2 - c1)


def decode_target(
    anchor1_xy: ArrayLike,
    anchor2_xy: ArrayLike,
    anchor1_cell: ArrayLike,
    anchor2_cell: ArrayLike,
    target_cell: ArrayLike,
) -> np.ndarray:
    """Bird's-eye position (2,) of a target cell, given the anchors' centres and cells (any k).

    Raises `DegenerateAnchorsError` when the anchors are closer than 1 cm or their cells coincide.
    """
    a1, a2 = _xy(anchor1_xy), _xy(anchor2_xy)
    if abs(a2 - a1) < MIN_ANCHOR_SEPARATION_M:
        raise DegenerateAnchorsError(
            f"anchors are {100 * abs(a2 - a1):.2f} cm apart in bird's-eye view (< 1 cm)"
        )
    t = a1 + cell_ratio(anchor1_cell, anchor2_cell, target_cell) * (a2 - a1)
    return np.array([t.real, t.imag])


def _in_grid(p: complex) -> bool:
    lo, hi = -0.5, GRID_SIZE - 0.5
    return lo <= p.real < hi and lo <= p.imag < hi


def _round_half_up(v: float) -> int:
    return math.floor(v + 0.5)


def _xy(p: ArrayLike) -> complex:
    a = np.asarray(p, dtype=np.float64)
    if a.shape not in ((2,), (3,)):
        raise ValueError(f"expected a (2,) point (or (3,), z ignored), got {p!r}")
    x, y = float(a[0]), float(a[1])
    if not (math.isfinite(x) and math.isfinite(y)):
        raise ValueError(f"point must be finite, got {p!r}")
    return complex(x, y)


def _is_int(v: Any) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_)


def _cell(value: Any, name: str) -> Cell:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, tuple | list) and len(value) == 2:
        col, row = value
        if _is_int(col) and _is_int(row) and 0 <= col < GRID_SIZE and 0 <= row < GRID_SIZE:
            return int(col), int(row)
    raise CogMapFormatError(f"{name} must be two integers (col, row) in 0..{GRID_SIZE - 1}, got {value!r}")


def cell_error(pred: Sequence[int], gt: Sequence[int]) -> float:
    """Euclidean distance between two cells, in grid units."""
    return float(np.hypot(pred[0] - gt[0], pred[1] - gt[1]))
