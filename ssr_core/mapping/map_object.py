"""`MapObject`: the snapshot of one object of the map, shared by the map and its questions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class MapObject:
    """A snapshot of one map object (fixed frame); compare fields, not objects (the box is an array)."""

    object_id: str  # `label_k`, stable for the object's whole life
    label: str
    box: np.ndarray  # (7,) fused [x, y, z, l, w, h, yaw] in the fixed frame
    confidence: float  # score-weighted share of the windows that should have shown it and did
    observations: int  # windows it was detected in
    misses: int  # windows that should have shown it and did not (in total)
    first_seen: float  # stamp of the first window that detected it
    last_seen: float  # stamp of the latest window that detected it
    confirmed: bool  # observed in at least `confirm_windows` windows
