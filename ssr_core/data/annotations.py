"""Scene and window annotations: the ground truth that QA generation and tests consume.

A `Scene` is what a dataset converter or the synthetic engine produces, in the dataset's own
world frame. A `WindowAnnotation` is one sampled window of a scene expressed in that window's
canonical frame (see `ssr_core.scene.canonical_frame`), which is what the model is trained to emit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ssr_core.io import atomic_write_text


@dataclass
class OrientedObject:
    """One annotated object in world coordinates (9-DoF oriented box)."""

    instance_id: str
    label: str
    center: np.ndarray  # (3,) metres, world frame
    size: np.ndarray  # (3,) extents along the box's own x, y, z axes, metres
    rotation: np.ndarray  # (3, 3) world-from-box rotation


@dataclass
class Scene:
    """A recorded or synthesised scene in its own world frame.

    `visibility[f, i]` is true when object `i` is visible in frame `f` (enough projected
    pixels and not occluded; the producer documents its rule).
    """

    scene_id: str
    up: np.ndarray  # (3,) world up vector (against gravity), unit length
    intrinsics: np.ndarray  # (F, 3, 3)
    poses: np.ndarray  # (F, 4, 4) camera-to-world, OpenCV camera axes
    image_size: tuple[int, int]  # (height, width) of the frames
    objects: list[OrientedObject]
    visibility: np.ndarray  # (F, M) bool
    floor_polygon: np.ndarray  # (K, 3) world points of the room's floor outline
    timestamps: np.ndarray | None = None  # (F,) seconds
    image_paths: list[str] = field(default_factory=list)  # per-frame RGB files, relative to `root`
    depth_paths: list[str] = field(default_factory=list)  # per-frame depth (metres, float32 .npy or 16-bit mm PNG)
    root: Path | None = None

    @property
    def num_frames(self) -> int:
        return int(self.poses.shape[0])

    def first_appearance(self) -> np.ndarray:
        """(M,) index of the first frame where each object is visible, -1 if never."""
        seen = self.visibility.any(axis=0)
        first = self.visibility.argmax(axis=0)
        return np.where(seen, first, -1)


@dataclass(frozen=True)
class SceneObject:
    """One object of a window, in the window's canonical frame."""

    instance_id: str
    label: str
    box: np.ndarray  # (7,) [x, y, z, l, w, h, yaw] canonical frame
    first_frame: int  # window-local index of first appearance, -1 if never seen in the window
    visible_frames: tuple[int, ...] = ()


@dataclass
class WindowAnnotation:
    """Ground truth of one window of frames, in the canonical frame of its first frame."""

    scene_id: str
    frame_indices: np.ndarray  # (N,) indices into the scene's frames
    objects: list[SceneObject]
    floor_polygon: np.ndarray  # (K, 2) canonical bird's-eye outline of the room
    room_height: float | None = None

    @property
    def num_frames(self) -> int:
        return int(len(self.frame_indices))

    def visible_objects(self) -> list[SceneObject]:
        """Objects seen in at least one frame of the window (the only ones questions may name)."""
        return [o for o in self.objects if o.first_frame >= 0]

    def to_json(self) -> dict:
        return {
            "scene_id": self.scene_id,
            "frame_indices": [int(i) for i in self.frame_indices],
            "objects": [
                {
                    "id": o.instance_id,
                    "label": o.label,
                    "box": [float(v) for v in o.box],
                    "first_frame": int(o.first_frame),
                    "visible_frames": [int(f) for f in o.visible_frames],
                }
                for o in self.objects
            ],
            "floor_polygon": np.asarray(self.floor_polygon, dtype=float).tolist(),
            "room_height": self.room_height,
        }

    @classmethod
    def from_json(cls, data: dict) -> WindowAnnotation:
        return cls(
            scene_id=str(data["scene_id"]),
            frame_indices=np.asarray(data["frame_indices"], dtype=np.int64),
            objects=[
                SceneObject(
                    instance_id=str(o["id"]),
                    label=str(o["label"]),
                    box=np.asarray(o["box"], dtype=np.float64),
                    first_frame=int(o["first_frame"]),
                    visible_frames=tuple(int(f) for f in o.get("visible_frames", ())),
                )
                for o in data["objects"]
            ],
            floor_polygon=np.asarray(data["floor_polygon"], dtype=np.float64).reshape(-1, 2),
            room_height=data.get("room_height"),
        )

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps(self.to_json(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> WindowAnnotation:
        return cls.from_json(json.loads(Path(path).read_text()))
