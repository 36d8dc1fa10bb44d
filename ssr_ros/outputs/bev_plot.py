"""Bird's-eye PNG of one window: 7-DoF boxes and scene-graph edges in the canonical frame.

Drawn from the published messages (Detections7DoF + SceneGraph), so it shows exactly what the
graph carried; the ground truth, when given, is drawn underneath as dashed outlines so a reader
sees at a glance how far each predicted box is from the object it stands for. matplotlib with the
Agg backend: no display needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ssr_core.scene.boxes import bev_corners
from ssr_core.scene.objects import GroundedObject

PREDICTED_LABEL, TRUTH_LABEL = "predicted (solid)", "ground truth (dashed)"


def _closed(corners: np.ndarray) -> np.ndarray:
    return np.vstack([corners, corners[:1]]).T


def _draw_truth(ax, ground_truth: Sequence[GroundedObject]) -> None:
    """Outlines only, under the predictions, so a predicted box on top of its object stays visible."""
    for k, obj in enumerate(ground_truth):
        ax.plot(*_closed(bev_corners(obj.box)), ls="--", lw=1.2, color="0.25", zorder=1,
                label=TRUTH_LABEL if k == 0 else None)


def _draw_predictions(ax, detections) -> dict[str, tuple[float, float]]:
    centres = {}
    for k, b in enumerate(detections.boxes):
        corners = bev_corners(np.array([b.x, b.y, b.z, b.length, b.width, b.height, b.yaw]))
        (line,) = ax.plot(*_closed(corners), ls="-", lw=1.5, zorder=3, label=PREDICTED_LABEL if k == 0 else None)
        ax.fill(corners[:, 0], corners[:, 1], alpha=0.3, color=line.get_color(), zorder=2)
        ax.annotate(b.instance_id, (b.x, b.y), fontsize=8, ha="center", va="center", zorder=4)
        centres[b.instance_id] = (b.x, b.y)
    return centres


def bev_figure(detections, scene_graph, title: str = "", ground_truth: Sequence[GroundedObject] | None = None):
    """The matplotlib figure `write_bev_png` saves (separate so tests can inspect what was drawn)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 7))
    if ground_truth:
        _draw_truth(ax, ground_truth)
    centres = _draw_predictions(ax, detections)
    if scene_graph is not None:
        for t in scene_graph.triplets:
            for anchor in (t.anchor1, t.anchor2):
                if anchor in centres and t.target in centres:
                    (x0, y0), (x1, y1) = centres[anchor], centres[t.target]
                    ax.annotate("", (x1, y1), (x0, y0), arrowprops=dict(
                        arrowstyle="->", color="red" if t.inconsistent else "tab:blue", lw=0.8, alpha=0.7))
        ax.scatter(scene_graph.layout_x, scene_graph.layout_y, marker="x", color="k", s=20,
                   label="recovered layout")
    ax.scatter([0], [0], marker="^", color="k", s=60, label="first camera")
    ax.arrow(0, 0, 0.5, 0, width=0.02, color="k")
    ax.set_aspect("equal")
    ax.set_xlabel(f"x (m), {detections.header.frame_id}")
    ax.set_ylabel("y (m)")
    ax.set_title(title or f"window {detections.window_id}: {len(detections.boxes)} objects")
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def write_bev_png(detections, scene_graph, path: str | Path, title: str = "",
                  ground_truth: Sequence[GroundedObject] | None = None) -> Path:
    import matplotlib.pyplot as plt

    fig = bev_figure(detections, scene_graph, title, ground_truth)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
