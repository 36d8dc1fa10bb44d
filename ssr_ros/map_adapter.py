"""ssr_node's persistent object map: which windows enter it, how a window becomes the map's input,
and the map file (autoload on configure, autosave on cleanup/shutdown, the save/load/clear services).

No rclpy, so the rules are unit-tested directly; the map itself is
ssr_core.mapping.ObjectMap (docs/MAP.md). The node calls `MapKeeper` from its model thread
(integrate) and from service callbacks (save, load, clear, snapshot); one lock keeps each of
those whole, so a save never records a half-integrated window as saved.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ssr_core.mapping.map_object import MapObject
from ssr_core.mapping.object_map import (
    IntegrationResult,
    MapConfig,
    MapFileError,
    MapInputError,
    ObjectMap,
    WindowDetections,
)
from ssr_core.scene.cogmap import LocalCogMap
from ssr_core.scene.layout import LayoutResult
from ssr_ros.node_params import MapParams
from ssr_ros.outputs.messages import ns_from_seconds

NOT_ANCHORED = "level_camera"  # placement source whose canonical frame hangs on the camera, not the fixed frame


def map_config(params: MapParams) -> MapConfig:
    """The map's MapConfig from the node's (already validated) map.* parameters."""
    return MapConfig(
        gate_iou=params.gate_iou, gate_distance=params.gate_distance, confirm_windows=params.confirm_windows,
        miss_limit=params.miss_limit, merge_iou=params.merge_iou, merge_distance=params.merge_distance,
        max_objects=params.max_objects, min_score=params.min_score, view_min_range=params.view_min_range,
        view_max_range=params.view_max_range, view_margin=params.view_margin,
        view_min_fraction=params.view_min_fraction,
    )


@dataclass(frozen=True)
class CameraModel:
    """Pinhole intrinsics with the image size they belong to (sensor_msgs/CameraInfo k, height, width)."""

    K: np.ndarray  # (3, 3)
    height: int
    width: int


def camera_model(k: Sequence[float], height: int, width: int) -> CameraModel | None:
    """CameraModel from CameraInfo fields; None when they cannot describe a camera (an uncalibrated
    camera publishes K = 0): the map then counts no misses."""
    K = np.asarray(k, dtype=np.float64)
    if K.shape != (9,) or not np.all(np.isfinite(K)) or height <= 0 or width <= 0:
        return None
    K = K.reshape(3, 3)
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        return None
    return CameraModel(K, int(height), int(width))


def window_detections(objects, source: str, fixed_from_canonical: np.ndarray, stamp_ns: int,
                      camera_poses: np.ndarray | None, camera: CameraModel | None) -> WindowDetections | None:
    """One window as the map's input; None for a level-camera window (its canonical frame is not
    anchored in the fixed frame, so its boxes would land at the wrong place).

    `objects` are the window's PerceivedObjects (box7 in the canonical frame, label, score);
    `camera_poses` (F, 4, 4) the frames' cameras in the fixed frame, used with `camera` only.
    """
    if source == NOT_ANCHORED:
        return None
    with_cameras = camera_poses is not None and camera is not None
    return WindowDetections(
        stamp=stamp_ns * 1e-9,
        fixed_from_canonical=fixed_from_canonical,
        boxes=np.array([np.asarray(o.box7, dtype=np.float64) for o in objects]).reshape(-1, 7),
        labels=[o.label for o in objects],
        scores=np.array([float(o.score) for o in objects], dtype=np.float64),
        camera_to_fixed=camera_poses if with_cameras else None,
        intrinsics=camera.K if with_cameras and camera is not None else None,
        image_size=(camera.height, camera.width) if with_cameras and camera is not None else None,
    )


@dataclass(frozen=True)
class MapSnapshot:
    """One consistent view of the map for publishing."""

    objects: list[MapObject]  # confirmed, oldest first
    tentative: int
    windows_integrated: int
    triplets: list[LocalCogMap]
    layout: LayoutResult
    stamp_ns: int  # latest window integrated (after a load: the newest last_seen); 0 if none


@dataclass(frozen=True)
class Outcome:
    """What a map service answers: std_srvs/Trigger's success and message."""

    success: bool
    message: str


class MapKeeper:
    """The node's ObjectMap, its file and its counters.

    A map file that fails to load is never overwritten as it is: before the first save to that
    path it is moved aside to `<path>.corrupt`, so a corrupt map can still be inspected by hand.
    """

    def __init__(self, config: MapConfig, frame: str):
        self.map = ObjectMap(config)
        self.frame = frame  # the fixed frame every map object is in (frames.fixed_frame at configure)
        self._lock = threading.Lock()
        self._dirty = False  # changed since the last load or save
        self._unreadable: set[str] = set()  # paths of existing files that failed to load
        self.stamp_ns = 0
        self.windows_not_anchored = 0
        self.windows_refused = 0
        self.error = ""  # the last file error (load, save), "" after a success

    # ------------------------------------------------------------ windows

    def integrate(self, window: WindowDetections | None, stamp_ns: int,
                  frame: str) -> tuple[IntegrationResult | None, str]:
        """(result, "") when integrated; (None, why not) for a level-camera window, a window placed
        in another fixed frame than the map's, or one the map refused (MapInputError, e.g. a fixed
        frame that is not z-up); the map is then unchanged."""
        if window is None:
            self.windows_not_anchored += 1
            return None, ("window not integrated into the map: its canonical frame is not anchored in the fixed "
                          "frame (pose source level_camera); publish camera poses (tf or camera_pose)")
        if frame != self.frame:
            self.windows_refused += 1
            return None, (f"window not integrated into the map: it is placed in {frame!r}, the map is in "
                          f"{self.frame!r} (frames.fixed_frame changed after configure; reconfigure the node)")
        with self._lock:
            try:
                result = self.map.integrate(window)
            except MapInputError as exc:
                self.windows_refused += 1
                return None, f"window not integrated into the map: {exc}"
            self._dirty = True
            self.stamp_ns = max(self.stamp_ns, stamp_ns)
        return result, ""

    def snapshot(self) -> MapSnapshot:
        with self._lock:
            everything = self.map.objects(include_tentative=True)
            confirmed = [o for o in everything if o.confirmed]
            return MapSnapshot(confirmed, len(everything) - len(confirmed), self.map.windows_integrated,
                               self.map.scene_graph(), self.map.layout(), self.stamp_ns)

    # ------------------------------------------------------------ file and services

    def autoload(self, path: str) -> Outcome | None:
        """Configure: load `path` when it exists. None without a path or file (a first run starts
        empty); a failure leaves the map empty and is reported, never raised."""
        if not path or not Path(path).exists():
            return None
        return self.load(path)

    def load(self, path: str) -> Outcome:
        if not path:
            return Outcome(False, "map.path is empty: set it to the map file to load")
        with self._lock:
            try:
                self.map.load(path)
            except MapFileError as exc:
                if Path(path).exists():
                    self._unreadable.add(os.path.abspath(path))
                self.error = str(exc)
                return Outcome(False, f"map not loaded, the current map is unchanged: {exc}")
            self._dirty = False
            self._unreadable.discard(os.path.abspath(path))
            self.error = ""
            self.stamp_ns = _newest_stamp_ns(self.map.objects(include_tentative=True))
            total, confirmed = len(self.map), len(self.map.confirmed_objects())
        return Outcome(True, f"loaded {confirmed} confirmed and {total - confirmed} tentative objects from {path}")

    def save(self, path: str) -> Outcome:
        if not path:
            return Outcome(False, "map.path is empty: set it to the file to save the map to")
        with self._lock:
            aside = ""
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                if os.path.abspath(path) in self._unreadable and Path(path).exists():
                    os.replace(path, path + ".corrupt")
                    aside = f" (the unreadable file there was kept as {path}.corrupt)"
                self.map.save(path)
            except OSError as exc:
                self.error = f"cannot save the map to {path}: {exc}"
                return Outcome(False, self.error)
            self._dirty = False
            self._unreadable.discard(os.path.abspath(path))
            self.error = ""
            total, confirmed = len(self.map), len(self.map.confirmed_objects())
        return Outcome(True, f"saved {confirmed} confirmed and {total - confirmed} tentative objects to {path}"
                       + aside)

    def autosave(self, path: str) -> Outcome | None:
        """Cleanup/shutdown: save when there is a path and the map changed since its last load or
        save (an untouched map leaves the file as it is). None when nothing was to be done."""
        with self._lock:
            if not path or not self._dirty:
                return None
        return self.save(path)

    def clear(self) -> Outcome:
        with self._lock:
            forgotten = len(self.map)
            self.map.clear()
            self._dirty = True
            self.stamp_ns = 0
        return Outcome(True, f"map cleared ({forgotten} objects forgotten; ids restart; the file is rewritten at "
                             "the next save)")

    def stats(self, path: str) -> dict[str, str]:
        """The map's /diagnostics keys."""
        total, confirmed = len(self.map), len(self.map.confirmed_objects())
        return {
            "map_objects": str(confirmed),
            "map_tentative": str(total - confirmed),
            "map_windows_integrated": str(self.map.windows_integrated),
            "map_windows_not_anchored": str(self.windows_not_anchored),
            "map_windows_refused": str(self.windows_refused),
            "map_path": path,
            "map_error": self.error,
        }


def _newest_stamp_ns(objects: Sequence[MapObject]) -> int:
    return ns_from_seconds(max((o.last_seen for o in objects), default=0.0))
