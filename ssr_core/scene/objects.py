"""Objects of a structured scene: a labelled 7-DoF box, and the ids objects are named by."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

_NOT_ID_CHARS = re.compile(r"[^A-Za-z0-9_]+")


@dataclass(frozen=True, eq=False)
class GroundedObject:
    """A labelled 7-DoF box: one object of a grounding answer, a detection or a ground truth."""

    label: str
    box: np.ndarray  # (7,) [x, y, z, l, w, h, yaw], yaw wrapped to (-pi, pi]


def instance_id(label: str, index: int) -> str:
    """`<label>_<index>` with every run of characters outside [A-Za-z0-9_] turned into `_`.

    Ids name TF frames (`ssr/<id>`) and appear in prompts, so they must be free of spaces and
    slashes whatever label a dataset or the model uses ("tv stand" -> "tv_stand_0").
    """
    return f"{_NOT_ID_CHARS.sub('_', label.strip()) or 'object'}_{index}"
