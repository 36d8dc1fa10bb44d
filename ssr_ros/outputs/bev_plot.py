"""Bird's-eye PNG of one window: 7-DoF boxes and scene-graph edges in the canonical frame.

Drawn from the published messages (Detections7DoF + SceneGraph), so it shows exactly what the
graph carried. matplotlib with the Agg backend: no display needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ssr_core.scene.boxes import bev_corners


def write_bev_png(detections, scene_graph, path: str | Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 7))
    centres = {}
    for b in detections.boxes:
        box = np.array([b.x, b.y, b.z, b.length, b.width, b.height, b.yaw])
        corners = bev_corners(box)
        ax.fill(corners[:, 0], corners[:, 1], alpha=0.3)
        ax.plot(*np.vstack([corners, corners[:1]]).T, lw=1)
        ax.annotate(b.instance_id, (b.x, b.y), fontsize=8, ha="center", va="center")
        centres[b.instance_id] = (b.x, b.y)
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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
