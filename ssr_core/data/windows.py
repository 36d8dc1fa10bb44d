"""Window sampler: pick frame windows of a scene and express their ground truth canonically.

A window is `num_frames` frames spread uniformly over a random contiguous span of the scene's
frames (at least half the scene, so a window sees a good part of the room, as a video clip
would). Its annotation lives in the canonical frame of its first frame (paper Sec. 3.3): origin
at the first camera, +x its optical axis on the ground, +z the scene's up vector.
"""

from __future__ import annotations

import numpy as np

from ssr_core.data.annotations import Scene, SceneObject, WindowAnnotation
from ssr_core.scene.canonical_frame import CanonicalFrame, VerticalOpticalAxisError


def window_frame_indices(total: int, num_frames: int, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Up to `count` distinct sorted index arrays; all frames once when the scene is too short.

    `count` is capped at the number of (span, start) choices there are, so a huge request ends
    after a bounded number of draws instead of searching for windows that do not exist.
    """
    if total <= num_frames:
        return [np.arange(total)]
    windows: dict[tuple[int, ...], np.ndarray] = {}
    min_span = max(num_frames, (total + 1) // 2)
    choices = sum(total - span + 1 for span in range(min_span, total + 1))
    count = min(count, choices)
    for _ in range(4 * count):
        if len(windows) == count:
            break
        span = int(rng.integers(min_span, total + 1))
        start = int(rng.integers(0, total - span + 1))
        idx = np.round(np.linspace(start, start + span - 1, num_frames)).astype(np.int64)
        windows.setdefault(tuple(idx), idx)
    return sorted(windows.values(), key=lambda a: tuple(a))


def annotate_window(scene: Scene, frame_indices: np.ndarray) -> WindowAnnotation:
    """Ground truth of a window in its canonical frame: 7-DoF boxes, visibility, floor outline.

    Raises `VerticalOpticalAxisError` when the first camera looks straight up or down.
    """
    idx = np.asarray(frame_indices, dtype=np.int64)
    frame = CanonicalFrame.from_first_pose(scene.poses[idx[0]], scene.up)
    if scene.objects:
        centers = np.stack([o.center for o in scene.objects])
        sizes = np.stack([o.size for o in scene.objects])
        rotations = np.stack([o.rotation for o in scene.objects])
        boxes = frame.oriented_boxes_to_canonical(centers, sizes, rotations)
    else:
        boxes = np.zeros((0, 7))
    visible = scene.visibility[idx]
    objects = []
    for i, obj in enumerate(scene.objects):
        frames = tuple(int(f) for f in np.flatnonzero(visible[:, i]))
        objects.append(SceneObject(
            instance_id=obj.instance_id,
            label=obj.label,
            box=boxes[i],
            first_frame=frames[0] if frames else -1,
            visible_frames=frames,
        ))
    floor = frame.points_to_canonical(scene.floor_polygon)[:, :2] if len(scene.floor_polygon) else np.zeros((0, 2))
    return WindowAnnotation(scene_id=scene.scene_id, frame_indices=idx, objects=objects, floor_polygon=floor)


def sample_windows(
    scene: Scene, num_frames: int = 32, count: int = 4, rng: np.random.Generator | None = None, min_visible: int = 3
) -> list[WindowAnnotation]:
    """Annotated windows of a scene; windows showing fewer than `min_visible` objects, or whose
    first camera looks vertically (no canonical +x), are dropped."""
    rng = rng or np.random.default_rng(0)
    windows = []
    for idx in window_frame_indices(scene.num_frames, num_frames, count, rng):
        try:
            window = annotate_window(scene, idx)
        except VerticalOpticalAxisError:
            continue
        if len(window.visible_objects()) >= min_visible:
            windows.append(window)
    return windows
