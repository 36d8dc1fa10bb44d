"""ObjectMap: the robot's memory of objects across windows, in one fixed frame (map/odom).

Each window's perception (7-DoF boxes in the window's canonical frame, labels, scores, the
canonical-to-fixed transform, a stamp and, when known, the window's cameras) is integrated:

* Association, per window: a detection and a map object may pair only when their labels are
  equal and either their 3-D IoU is at least `MapConfig.gate_iou` or their centres are within
  `MapConfig.gate_distance` (small objects with noisy centres rarely overlap). Admissible pairs
  cost ``(1 - IoU) + distance / gate_distance``; `scipy.optimize.linear_sum_assignment` picks the
  cheapest one-to-one pairing. Unpaired detections start new objects.
* Fusion: running sums weighted by each observation's score, so an object seen n times has the
  score- and count-weighted mean centre and extents. A box equals itself turned by pi, and turned
  by pi/2 with length and width swapped; each observation is first rewritten in the equivalent
  form nearest the fused box (yaw difference, then extents), which removes the pi/2 and pi
  ambiguity of near-square footprints, and its yaw is averaged on the circle.
* Life cycle: an object is tentative until observed in `confirm_windows` windows. When a window
  brings cameras, an object it should have shown (centre inside the image, at a sane range, in a
  share of its frames) but did not detect gets a miss, lowering its confidence; after `miss_limit`
  misses in a row it is removed. Objects of one label whose fused boxes come to overlap are
  merged into the older one (its id stays).
* Ids: ``label_k`` (`ssr_core.scene.objects.instance_id`), given at creation from a per-label counter that
  never goes back, never changed and never reused.
* Memory: at most `max_objects`; beyond it the object to forget is a tentative one before any
  confirmed one, then the one seen longest ago, then the least confident, then the newest.
* Cost per window: O(M x N) for M map and N window objects (plus O(M x F) for F cameras).

Deterministic: the same windows in the same order give the same map, ids included. Saved as a
versioned JSON document written atomically (docs/MAP.md gives the format). Thread-safe: one lock
serialises the public methods, so a node may integrate and answer services from two threads.
"""

from __future__ import annotations

import heapq
import json
import math
import os
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import linear_sum_assignment

from ssr_core.errors import InputError
from ssr_core.mapping.map_object import MapObject
from ssr_core.mapping.questions import MapAnswer, answer_map_question
from ssr_core.scene.boxes import bev_corners, convex_intersection_area, wrap_angle
from ssr_core.scene.canonical_frame import CanonicalFrame
from ssr_core.scene.cogmap import DegenerateAnchorsError, LocalCogMap
from ssr_core.scene.layout import LayoutResult, recover_layout
from ssr_core.scene.objects import instance_id
from ssr_core.scene.scene_graph import build_scene_graph

FORMAT_NAME = "ssr_object_map"
MAX_UP_TILT_DEG = 10.0  # the canonical up axis (gravity) may lean this far from the fixed frame's +z
FORMAT_VERSION = 1
_INADMISSIBLE = 1e6  # assignment cost of a pair outside the gates


class MapConfigError(InputError):
    """A `MapConfig` value is out of range."""


class MapInputError(InputError):
    """A window given to `ObjectMap.integrate` is malformed; the map is left unchanged."""


class MapFileError(InputError):
    """A map file is unreadable, corrupt or from a newer format version; the map is left unchanged."""


@dataclass(frozen=True)
class MapConfig:
    """Parameters of the object map (the defaults suit room-scale indoor scenes; metres, seconds)."""

    gate_iou: float = 0.1  # a pair with 3-D IoU >= this may associate
    gate_distance: float = 0.6  # m; a pair with centres this close may associate without overlap
    confirm_windows: int = 2  # windows an object must be observed in before it is confirmed (N)
    miss_limit: int = 3  # consecutive expected-but-undetected windows that remove an object (K)
    merge_iou: float = 0.25  # same-label objects whose fused boxes overlap this much are one object
    merge_distance: float = 0.2  # m; same-label objects with centres this close are one object
    max_objects: int = 2000  # bound on map objects (tentative ones included)
    min_score: float = 0.0  # detections scoring below this are ignored
    view_min_range: float = 0.3  # m; nearer than this (camera depth) an object is not expected seen
    view_max_range: float = 5.0  # m; farther than this an object is not expected seen
    view_margin: float = 0.05  # the centre must be this share of the image size inside the border
    view_min_fraction: float = 0.3  # share of a window's frames that must show the object's centre

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise MapConfigError(f"MapConfig.{f.name} must be a finite number, got {value!r}")
        checks = [
            (0.0 <= self.gate_iou <= 1.0, "gate_iou must be in [0, 1]"),
            (self.gate_distance > 0, "gate_distance must be positive"),
            (isinstance(self.confirm_windows, int) and self.confirm_windows >= 1, "confirm_windows must be an integer >= 1"),
            (isinstance(self.miss_limit, int) and self.miss_limit >= 1, "miss_limit must be an integer >= 1"),
            (0.0 < self.merge_iou <= 1.0, "merge_iou must be in (0, 1]"),
            (self.merge_distance >= 0, "merge_distance must be >= 0"),
            (isinstance(self.max_objects, int) and self.max_objects >= 1, "max_objects must be an integer >= 1"),
            (0.0 <= self.min_score <= 1.0, "min_score must be in [0, 1]"),
            (0.0 <= self.view_min_range < self.view_max_range, "need 0 <= view_min_range < view_max_range"),
            (0.0 <= self.view_margin < 0.5, "view_margin must be in [0, 0.5)"),
            (0.0 < self.view_min_fraction <= 1.0, "view_min_fraction must be in (0, 1]"),
        ]
        for ok, message in checks:
            if not ok:
                raise MapConfigError(f"MapConfig: {message}")


@dataclass(frozen=True)
class WindowDetections:
    """One window's perception, as `ObjectMap.integrate` takes it.

    Boxes are in the window's canonical frame (what the reasoner outputs); `fixed_from_canonical`
    is the rigid (4, 4) transform from that frame to the map's fixed frame (z up). The cameras are
    optional: without them the window can confirm objects but can never count a miss.
    """

    stamp: float  # seconds on the fixed frame's clock (e.g. the window's first frame)
    fixed_from_canonical: ArrayLike  # (4, 4) rigid
    boxes: ArrayLike  # (N, 7) [x, y, z, l, w, h, yaw], canonical frame
    labels: Sequence[str]  # (N,)
    scores: ArrayLike | None = None  # (N,) in [0, 1]; None: all 1
    camera_to_fixed: ArrayLike | None = None  # (F, 4, 4) camera poses, OpenCV axes (x right, y down, z forward)
    intrinsics: ArrayLike | None = None  # (F, 3, 3) or one (3, 3) for all frames
    image_size: tuple[int, int] | None = None  # (height, width) in pixels of the intrinsics


@dataclass
class IntegrationResult:
    """What one `ObjectMap.integrate` call did, for logs, diagnostics and per-window messages."""

    detection_ids: list[str]  # (N,) map id each detection was fused into ("" if below min_score)
    created: list[str] = field(default_factory=list)
    confirmed: list[str] = field(default_factory=list)  # became confirmed in this window
    missed: list[str] = field(default_factory=list)  # expected in the window, not detected
    removed: list[str] = field(default_factory=list)  # dropped after `miss_limit` misses
    merged: list[tuple[str, str]] = field(default_factory=list)  # (absorbed id, kept id)
    evicted: list[str] = field(default_factory=list)  # forgotten to stay within `max_objects`


@dataclass
class _Track:
    """Mutable fusion state of one map object; `box` caches the fused box."""

    key: int  # creation order: smaller is older
    object_id: str
    label: str
    weight: float  # sum of observation weights (scores)
    centre_sum: np.ndarray  # (3,) sum of weight * centre
    size_sum: np.ndarray  # (3,) sum of weight * aligned extents
    yaw_sum: np.ndarray  # (2,) sum of weight * (cos, sin) of aligned yaw
    score_sum: float
    observations: int
    misses: int
    recent_misses: int  # misses since the last detection
    first_seen: float
    last_seen: float
    confirmed: bool
    last_window: int  # index of the latest window that detected it
    box: np.ndarray = field(default_factory=lambda: np.zeros(7))

    def refresh(self) -> None:
        yaw = math.atan2(self.yaw_sum[1], self.yaw_sum[0])  # in [-pi, pi]
        self.box = np.concatenate([self.centre_sum / self.weight, self.size_sum / self.weight, [yaw if yaw > -math.pi else math.pi]])

    @property
    def confidence(self) -> float:
        return self.score_sum / max(self.observations + self.misses, 1)

    def snapshot(self) -> MapObject:
        box = self.box.copy()
        box.flags.writeable = False
        return MapObject(
            self.object_id, self.label, box, self.confidence, self.observations, self.misses,
            self.first_seen, self.last_seen, self.confirmed,
        )  # fmt: skip


def paired_iou_3d(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """3-D IoU of row-aligned box pairs (P, 7) x (P, 7) -> (P,), one vectorised kernel call
    (`iou_3d` computes all N x M pairs; association only needs the gated few)."""
    if len(a) == 0:
        return np.zeros(0)
    inter_bev = convex_intersection_area(bev_corners(a), bev_corners(b))
    top = np.minimum(a[:, 2] + 0.5 * a[:, 5], b[:, 2] + 0.5 * b[:, 5])
    bottom = np.maximum(a[:, 2] - 0.5 * a[:, 5], b[:, 2] - 0.5 * b[:, 5])
    inter = inter_bev * np.clip(top - bottom, 0.0, None)
    union = np.prod(a[:, 3:6], axis=1) + np.prod(b[:, 3:6], axis=1) - inter
    return np.clip(np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0), 0.0, 1.0)


def equivalent_forms(boxes: ArrayLike) -> np.ndarray:
    """(..., 7) boxes -> (..., 4, 7): each box written with yaw + k pi/2, k = 0..3 (length and
    width swapped for odd k). All four describe the same solid."""
    b = np.asarray(boxes, dtype=np.float64)
    forms = np.repeat(b[..., None, :], 4, axis=-2)
    forms[..., 1::2, 3] = b[..., None, 4]
    forms[..., 1::2, 4] = b[..., None, 3]
    forms[..., 6] = wrap_angle(b[..., None, 6] + np.arange(4) * (np.pi / 2))
    return forms


def align_to(boxes: ArrayLike, references: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """The equivalent form of each box (..., 7) nearest its reference (..., 7), and its k (...,)
    (see `equivalent_forms`).

    Nearest: smallest ``|yaw difference| / (pi/4) + |log length ratio| + |log width ratio|``; a
    near-square footprint is matched by yaw alone, an elongated one keeps its length axis.
    The returned yaw is within pi of the reference's yaw (not wrapped), for averaging.
    """
    ref = np.asarray(references, dtype=np.float64)[..., None, :]  # (..., 1, 7)
    forms = equivalent_forms(boxes)  # (..., 4, 7)
    dyaw = wrap_angle(forms[..., 6] - ref[..., 6])
    cost = (
        np.abs(dyaw) / (np.pi / 4)
        + np.abs(np.log(forms[..., 3] / ref[..., 3]))
        + np.abs(np.log(forms[..., 4] / ref[..., 4]))
    )
    k = np.argmin(cost, axis=-1)  # first minimum: k = 0 wins ties
    aligned = np.take_along_axis(forms, k[..., None, None], axis=-2)[..., 0, :].copy()
    aligned[..., 6] = ref[..., 0, 6] + np.take_along_axis(dyaw, k[..., None], axis=-1)[..., 0]
    return aligned, k


class ObjectMap:
    """Persistent object map in a fixed frame (see the module docstring for the rules)."""

    def __init__(self, config: MapConfig | None = None):
        self.config = config or MapConfig()
        self._lock = threading.RLock()
        self._reset()

    def _reset(self) -> None:
        self._tracks: dict[int, _Track] = {}  # key -> track, in creation order
        self._next_key = 0
        self._label_counts: dict[str, int] = {}  # id prefix -> next k
        self._label_codes: dict[str, int] = {}  # label -> code (not saved)
        # Cache of `_arrays`: tracks, boxes (M, 7), codes (M,), keys (M,), key -> row.
        self._rows: tuple[list[_Track], np.ndarray, np.ndarray, np.ndarray, dict[int, int]] | None = None
        self._windows = 0
        self._version = 0  # bumped by every change; keys the scene-graph cache
        self._graph_cache: tuple[int, list[LocalCogMap], LayoutResult] | None = None

    # ------------------------------------------------------------------ queries

    def __len__(self) -> int:
        with self._lock:
            return len(self._tracks)

    @property
    def windows_integrated(self) -> int:
        with self._lock:
            return self._windows

    def objects(self, include_tentative: bool = False) -> list[MapObject]:
        """Map objects in creation order (oldest first); confirmed ones only by default."""
        with self._lock:
            return [t.snapshot() for t in self._tracks.values() if include_tentative or t.confirmed]

    def confirmed_objects(self) -> list[MapObject]:
        """Confirmed objects in creation order: what the map publishes."""
        return self.objects(include_tentative=False)

    def get(self, object_id: str) -> MapObject | None:
        """The object with this id (tentative or confirmed), None when absent."""
        with self._lock:
            for t in self._tracks.values():
                if t.object_id == object_id:
                    return t.snapshot()
            return None

    def scene_graph(self) -> list[LocalCogMap]:
        """Scene graph (incremental Alg. 1, `build_scene_graph`) over the confirmed objects' fixed-
        frame centres; [] with fewer than three, or when all stand on one bird's-eye spot."""
        return self._graph()[0]

    def layout(self) -> LayoutResult:
        """Bird's-eye layout recovered from `scene_graph` with the confirmed centres held fixed."""
        return self._graph()[1]

    def _graph(self) -> tuple[list[LocalCogMap], LayoutResult]:
        with self._lock:
            if self._graph_cache is None or self._graph_cache[0] != self._version:
                confirmed = [t for t in self._tracks.values() if t.confirmed]
                triplets: list[LocalCogMap] = []
                if len(confirmed) >= 3:
                    try:
                        triplets = build_scene_graph(
                            [t.object_id for t in confirmed], np.stack([t.box[:3] for t in confirmed])
                        )
                    except DegenerateAnchorsError:
                        triplets = []
                known = {t.object_id: t.box[:2] for t in confirmed}
                layout = recover_layout(triplets, known) if triplets else LayoutResult(known, np.zeros(0))
                self._graph_cache = (self._version, triplets, layout)
            return self._graph_cache[1], self._graph_cache[2]

    # ------------------------------------------------------------------ integration

    def integrate(self, window: WindowDetections) -> IntegrationResult:
        """Fuse one window into the map. Raises `MapInputError` (map unchanged) on bad input."""
        boxes, labels, scores, cameras = _validated(window)
        with self._lock:
            return self._integrate(float(window.stamp), boxes, labels, scores, cameras)

    def _integrate(
        self,
        stamp: float,
        boxes: np.ndarray,
        labels: list[str],
        scores: np.ndarray,
        cameras: tuple[np.ndarray, np.ndarray, tuple[int, int]] | None,
    ) -> IntegrationResult:
        cfg = self.config
        window_index = self._windows
        self._windows += 1
        self._version += 1
        keep = np.flatnonzero(scores >= cfg.min_score) if cfg.min_score > 0 else np.arange(len(labels))
        tracks, map_boxes, map_codes, _ = self._arrays()
        confirmed_before = {t.key for t in tracks if t.confirmed}
        det_codes = np.array([self._code(labels[i]) for i in keep], dtype=np.int64)
        det_to_track = self._associate(boxes[keep], det_codes, map_boxes, map_codes)
        result = IntegrationResult(detection_ids=[""] * len(labels))
        touched: list[_Track] = []
        assigned: dict[int, _Track] = {}
        pairs = [(int(det), det_to_track[local]) for local, det in enumerate(keep) if det_to_track[local] >= 0]
        aligned = {}
        if pairs:
            rows = [d for d, _ in pairs]
            forms, _ = align_to(boxes[rows], np.stack([tracks[j].box for _, j in pairs]))
            aligned = dict(zip(rows, forms))
        for local, det in enumerate(keep):
            j = det_to_track[local]
            if j >= 0:
                track = tracks[j]
                self._observe(track, aligned[int(det)], float(scores[det]), stamp, window_index)
                self._row_changed(track)
            else:
                track = self._new_track(boxes[det], labels[det], float(scores[det]), stamp, window_index)
                self._row_added(track)
                result.created.append(track.object_id)
            touched.append(track)
            assigned[int(det)] = track
        observed = {id(t) for t in touched}
        if cameras is not None and tracks:
            unseen = [t for t in tracks if id(t) not in observed]
            if unseen:
                expected = _expected_visible(np.stack([t.box[:3] for t in unseen]), *cameras, cfg)
                for t in (t for t, e in zip(unseen, expected) if e):
                    t.misses += 1
                    t.recent_misses += 1
                    result.missed.append(t.object_id)
                    if t.recent_misses >= cfg.miss_limit:
                        self._removed(t)
                        result.removed.append(t.object_id)
        for t in touched:
            t.confirmed = t.confirmed or t.observations >= cfg.confirm_windows
        survivor = self._merge_overlapping(touched, window_index, result)
        result.evicted = self._evict()
        for row, track in assigned.items():
            kept = survivor.get(track.key, track)
            result.detection_ids[row] = kept.object_id if kept.key in self._tracks else ""
        result.confirmed = [
            t.object_id for t in self._tracks.values() if t.confirmed and t.key not in confirmed_before
        ]
        return result

    def _associate(
        self, boxes: np.ndarray, det_codes: np.ndarray, map_boxes: np.ndarray, map_codes: np.ndarray
    ) -> list[int]:
        """Map row per detection (-1: none), by one assignment over gated, same-label pairs.

        boxes (N, 7) and det_codes (N,) label codes of the detections; map_boxes (M, 7), map_codes (M,).
        """
        n, m = len(det_codes), len(map_codes)
        if n == 0 or m == 0:
            return [-1] * n
        cfg = self.config
        region = _in_region(boxes, map_boxes, cfg.gate_distance)  # (R,) map rows near the window
        dist = np.linalg.norm(boxes[:, None, :3] - map_boxes[None, region, :3], axis=-1)  # (N, R)
        reach = _radius(boxes)[:, None] + _radius(map_boxes[region])[None, :]
        near = (det_codes[:, None] == map_codes[None, region]) & (dist <= np.maximum(reach, cfg.gate_distance))
        keep = np.flatnonzero(near.any(axis=0))  # map objects some detection may pair with
        if keep.size == 0:
            return [-1] * n
        cols, dist, near = region[keep], dist[:, keep], near[:, keep]
        iou = np.zeros((n, cols.size))
        pi, pj = np.nonzero(near)
        iou[pi, pj] = paired_iou_3d(boxes[pi], map_boxes[cols[pj]])
        ok = near & ((iou >= cfg.gate_iou) | (dist <= cfg.gate_distance))
        cost = np.where(ok, (1.0 - iou) + dist / cfg.gate_distance, _INADMISSIBLE)
        rows, picked = linear_sum_assignment(cost)
        out = [-1] * n
        for i, c in zip(rows, picked):
            if ok[i, c]:
                out[int(i)] = int(cols[c])
        return out

    def _observe(self, track: _Track, aligned: np.ndarray, score: float, stamp: float, window_index: int) -> None:
        """Add one observation already aligned to the track's box (`align_to`)."""
        w = max(score, 1e-3)  # a zero score still counts as a (light) observation
        track.weight += w
        track.centre_sum += w * aligned[:3]
        track.size_sum += w * aligned[3:6]
        track.yaw_sum += w * np.array([math.cos(aligned[6]), math.sin(aligned[6])])
        track.score_sum += score
        if track.last_window != window_index:
            track.observations += 1
        track.recent_misses = 0
        track.first_seen = min(track.first_seen, stamp)
        track.last_seen = max(track.last_seen, stamp)
        track.last_window = window_index
        track.refresh()

    def _new_track(self, box: np.ndarray, label: str, score: float, stamp: float, window_index: int) -> _Track:
        prefix = instance_id(label, 0)[:-2]
        k = self._label_counts.get(prefix, 0)
        self._label_counts[prefix] = k + 1
        w = max(score, 1e-3)
        track = _Track(
            key=self._next_key,
            object_id=f"{prefix}_{k}",
            label=label,
            weight=w,
            centre_sum=w * box[:3],
            size_sum=w * box[3:6],
            yaw_sum=w * np.array([math.cos(box[6]), math.sin(box[6])]),
            score_sum=score,
            observations=1,
            misses=0,
            recent_misses=0,
            first_seen=stamp,
            last_seen=stamp,
            confirmed=self.config.confirm_windows <= 1,
            last_window=window_index,
        )
        track.refresh()
        self._next_key += 1
        self._tracks[track.key] = track
        return track

    def _merge_overlapping(
        self, touched: list[_Track], window_index: int, result: IntegrationResult
    ) -> dict[int, _Track]:
        """Merge same-label objects overlapping a touched one; returns absorbed key -> survivor.

        One vectorised test of the touched objects against the map per merge (merges are rare),
        so O(M x N); pairs are merged in (touched key, other key) order, deterministically.
        """
        cfg = self.config
        survivor: dict[int, _Track] = {}
        current = sorted({t.key: t for t in touched}.values(), key=lambda t: t.key)
        while current:
            tracks, all_boxes, all_codes, all_keys = self._arrays()
            own = np.stack([t.box for t in current])  # (T, 7)
            region = _in_region(own, all_boxes, cfg.merge_distance)  # (R,) rows near the touched ones
            boxes, codes, keys = all_boxes[region], all_codes[region], all_keys[region]
            same = (np.array([self._code(t.label) for t in current])[:, None] == codes[None, :]) & (
                np.array([t.key for t in current])[:, None] != keys[None, :]
            )
            dist = np.linalg.norm(own[:, None, :3] - boxes[None, :, :3], axis=-1)  # (T, R)
            reach = _radius(own)[:, None] + _radius(boxes)[None, :]
            hit = same & (dist <= cfg.merge_distance)
            ti, mi = np.nonzero(same & ~hit & (dist <= reach))
            if ti.size:
                hit[ti, mi] = paired_iou_3d(own[ti], boxes[mi]) >= cfg.merge_iou
            if not hit.any():
                break
            t_idx, m_idx = np.argwhere(hit)[0]  # row-major: first touched key, then first other key
            a, b = current[int(t_idx)], tracks[int(region[m_idx])]
            older, newer = (a, b) if a.key < b.key else (b, a)
            self._absorb(older, newer, window_index)
            result.merged.append((newer.object_id, older.object_id))
            for key, kept in list(survivor.items()):
                if kept is newer:
                    survivor[key] = older
            survivor[newer.key] = older
            current = sorted({t.key: t for t in (older if t is newer else t for t in current)}.values(), key=lambda t: t.key)
        return survivor

    def _arrays(self) -> tuple[list[_Track], np.ndarray, np.ndarray, np.ndarray]:
        """Tracks in key order with their fused boxes (M, 7), label codes (M,) and keys (M,).

        Cached between windows: observations update their row, new objects append one, and only
        a removal (miss limit, merge, eviction, load) rebuilds the arrays.
        """
        if self._rows is None:
            tracks = list(self._tracks.values())
            boxes = np.stack([t.box for t in tracks]) if tracks else np.zeros((0, 7))
            codes = np.array([self._code(t.label) for t in tracks], dtype=np.int64)
            keys = np.array([t.key for t in tracks], dtype=np.int64)
            self._rows = (tracks, boxes, codes, keys, {t.key: i for i, t in enumerate(tracks)})
        return self._rows[:4]

    def _row_changed(self, track: _Track) -> None:
        if self._rows is not None:
            self._rows[1][self._rows[4][track.key]] = track.box

    def _row_added(self, track: _Track) -> None:
        if self._rows is not None:
            tracks, boxes, codes, keys, row_of = self._rows
            row_of[track.key] = len(tracks)
            self._rows = (
                tracks + [track], np.vstack([boxes, track.box[None]]),
                np.append(codes, self._code(track.label)), np.append(keys, track.key), row_of,
            )  # fmt: skip

    def _removed(self, track: _Track) -> None:
        del self._tracks[track.key]
        self._rows = None

    def _code(self, label: str) -> int:
        """Small integer per label, so label tests are integer comparisons."""
        return self._label_codes.setdefault(label, len(self._label_codes))

    def _absorb(self, older: _Track, newer: _Track, window_index: int) -> None:
        """Fold `newer`'s observations into `older` (whose id and key stay) and drop `newer`."""
        k = int(align_to(newer.box, older.box)[1])
        size_sum = newer.size_sum.copy()
        if k % 2:
            size_sum[[0, 1]] = size_sum[[1, 0]]
        c, s = math.cos(k * math.pi / 2), math.sin(k * math.pi / 2)
        yaw_sum = np.array([c * newer.yaw_sum[0] - s * newer.yaw_sum[1], s * newer.yaw_sum[0] + c * newer.yaw_sum[1]])
        both_now = older.last_window == newer.last_window == window_index
        older.weight += newer.weight
        older.centre_sum = older.centre_sum + newer.centre_sum
        older.size_sum = older.size_sum + size_sum
        older.yaw_sum = older.yaw_sum + yaw_sum
        older.score_sum += newer.score_sum
        older.observations += newer.observations - (1 if both_now else 0)
        older.misses += newer.misses
        older.recent_misses = min(older.recent_misses, newer.recent_misses)
        older.first_seen = min(older.first_seen, newer.first_seen)
        older.last_seen = max(older.last_seen, newer.last_seen)
        older.last_window = max(older.last_window, newer.last_window)
        older.confirmed = older.confirmed or newer.confirmed or older.observations >= self.config.confirm_windows
        older.refresh()
        self._removed(newer)

    def _evict(self) -> list[str]:
        excess = len(self._tracks) - self.config.max_objects
        if excess <= 0:
            return []
        victims = heapq.nsmallest(
            excess,
            self._tracks.values(),
            key=lambda t: (t.confirmed, t.last_seen, t.confidence, -t.key),
        )
        for t in victims:
            self._removed(t)
        return [t.object_id for t in victims]

    def clear(self) -> None:
        """Forget every object; id counters restart (a cleared map is a new map)."""
        with self._lock:
            self._reset()

    # ------------------------------------------------------------------ persistence

    def to_json(self) -> dict[str, Any]:
        """The versioned JSON document (see docs/MAP.md, "File format")."""
        with self._lock:
            return {
                "format": FORMAT_NAME,
                "version": FORMAT_VERSION,
                "config": asdict(self.config),
                "windows_integrated": self._windows,
                "next_key": self._next_key,
                "label_counts": dict(self._label_counts),
                "objects": [_track_json(t) for t in self._tracks.values()],
            }

    def load_json(self, document: Any, source: str = "map document") -> None:
        """Replace the map's content with a `to_json` document (the map's config stays).

        Raises `MapFileError` (map unchanged) when the document is malformed or newer.
        """
        state = _parse_document(document, source)
        with self._lock:
            self._reset()
            self._tracks, self._next_key, self._label_counts, self._windows = state
            self._version += 1
            self._evict()

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the map atomically: a temporary file in the same directory, fsync, rename.

        A crash leaves either the old file or the new one, never a torn one. OSError propagates.
        """
        target = Path(path)
        text = json.dumps(self.to_json(), allow_nan=False, separators=(",", ":"))
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        try:  # make the rename itself durable
            dir_fd = os.open(target.parent, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(dir_fd)
        except OSError:
            pass
        finally:
            os.close(dir_fd)

    def load(self, path: str | os.PathLike[str]) -> None:
        """Replace the map's content with a saved map. Raises `MapFileError` (map unchanged) when
        the file cannot be read, is not valid JSON, is malformed or has a newer format version."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise MapFileError(f"{path}: cannot read the map file: {exc}") from exc
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MapFileError(f"{path}: not a JSON map file (corrupt or truncated): {exc}") from exc
        self.load_json(document, str(path))

    def ask(self, question: str, options: Sequence[str] = ()) -> MapAnswer:
        """Answer a spatial question from the map's geometry; never raises (see
        `ssr_core.mapping.questions` and docs/MAP.md for the questions it recognises)."""
        return answer_map_question(self, question, options)


# ---------------------------------------------------------------------------- helpers


def _validated(
    window: WindowDetections,
) -> tuple[np.ndarray, list[str], np.ndarray, tuple[np.ndarray, np.ndarray, tuple[int, int]] | None]:
    """Fixed-frame boxes (N, 7), labels, scores (N,) and the cameras, or `MapInputError`."""
    if not isinstance(window, WindowDetections):
        raise MapInputError(f"expected WindowDetections, got {type(window).__name__}")
    try:
        stamp = float(window.stamp)
    except (TypeError, ValueError) as exc:
        raise MapInputError(f"stamp must be a number of seconds, got {window.stamp!r}") from exc
    if not math.isfinite(stamp):
        raise MapInputError(f"stamp must be finite, got {stamp}")
    try:
        frame = CanonicalFrame(np.asarray(window.fixed_from_canonical, dtype=np.float64))
    except (ValueError, TypeError) as exc:
        raise MapInputError(f"fixed_from_canonical: {exc}") from exc
    tilt = math.degrees(math.acos(min(1.0, float(frame.world_from_canonical[2, 2]))))
    if tilt > MAX_UP_TILT_DEG:
        raise MapInputError(
            f"fixed_from_canonical tilts the canonical up axis {tilt:.1f} deg from the fixed frame's +z "
            f"(> {MAX_UP_TILT_DEG} deg): the fixed frame must be z-up (REP 103: map, odom)"
        )
    boxes = _array(window.boxes, "boxes")
    if boxes.size == 0:
        boxes = boxes.reshape(0, 7)
    if boxes.ndim != 2 or boxes.shape[1] != 7:
        raise MapInputError(f"boxes must be (N, 7), got shape {boxes.shape}")
    if not np.all(boxes[:, 3:6] > 0):
        raise MapInputError("box extents (l, w, h) must be positive")
    labels = list(window.labels)
    if len(labels) != len(boxes):
        raise MapInputError(f"{len(boxes)} boxes but {len(labels)} labels")
    if not all(isinstance(lab, str) and lab.strip() for lab in labels):
        raise MapInputError("labels must be non-empty strings")
    labels = [lab.strip() for lab in labels]
    if window.scores is None:
        scores = np.ones(len(labels))
    else:
        scores = _array(window.scores, "scores").reshape(-1)
        if scores.shape != (len(labels),) or np.any((scores < 0) | (scores > 1)):
            raise MapInputError(f"scores must be {len(labels)} numbers in [0, 1]")
    cameras = None
    if window.camera_to_fixed is not None:
        poses = _array(window.camera_to_fixed, "camera_to_fixed")
        if poses.ndim != 3 or poses.shape[1:] != (4, 4) or len(poses) == 0:
            raise MapInputError(f"camera_to_fixed must be (F, 4, 4) with F >= 1, got shape {poses.shape}")
        if window.intrinsics is None or window.image_size is None:
            raise MapInputError("camera_to_fixed needs intrinsics and image_size")
        k = _array(window.intrinsics, "intrinsics")
        if k.shape == (3, 3):
            k = np.repeat(k[None], len(poses), axis=0)
        if k.shape != (len(poses), 3, 3) or not np.all(k[:, [0, 1], [0, 1]] > 0):
            raise MapInputError(f"intrinsics must be (3, 3) or ({len(poses)}, 3, 3) with positive focal lengths")
        try:
            height, width = (int(v) for v in window.image_size)
        except (TypeError, ValueError) as exc:
            raise MapInputError(f"image_size must be (height, width), got {window.image_size!r}") from exc
        if height <= 0 or width <= 0:
            raise MapInputError(f"image_size must be positive, got {window.image_size!r}")
        cameras = (poses, k, (height, width))
    fixed = frame.boxes_to_world(boxes) if len(boxes) else boxes
    return fixed, labels, scores, cameras


def _array(value: Any, name: str) -> np.ndarray:
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise MapInputError(f"{name} must be numeric: {exc}") from exc
    if not np.all(np.isfinite(a)):
        raise MapInputError(f"{name} must be finite")
    return a


def _radius(boxes: np.ndarray) -> np.ndarray:
    """(K, 7) -> (K,) radius of each box's bounding sphere: farther centres cannot overlap."""
    return 0.5 * np.sqrt(np.sum(boxes[:, 3:6] ** 2, axis=1))


def _in_region(boxes: np.ndarray, others: np.ndarray, gate: float) -> np.ndarray:
    """Rows of `others` (M, 7) whose centre lies in the axis-aligned region of `boxes` (N, 7) widened
    by every distance at which a pair could still pass a gate or overlap: an O(M) pre-filter."""
    if len(others) == 0:
        return np.zeros(0, dtype=np.intp)
    margin = max(gate, float(_radius(boxes).max()) + float(_radius(others).max()))
    lo, hi = boxes[:, :3].min(axis=0) - margin, boxes[:, :3].max(axis=0) + margin
    centres = others[:, :3]
    return np.flatnonzero(np.all((centres >= lo) & (centres <= hi), axis=1))


def _expected_visible(
    centres: np.ndarray, poses: np.ndarray, intrinsics: np.ndarray, image_size: tuple[int, int], cfg: MapConfig
) -> np.ndarray:
    """(M,) bool: centre (M, 3) inside the shrunk image at a sane depth in enough of the frames."""
    out = np.zeros(len(centres), dtype=bool)
    # Only objects within range of the cameras' bounding sphere can be in view.
    middle = poses[:, :3, 3].mean(axis=0)
    spread = float(np.linalg.norm(poses[:, :3, 3] - middle, axis=1).max())
    near = np.flatnonzero(np.linalg.norm(centres - middle, axis=1) <= cfg.view_max_range + spread)
    if near.size:
        out[near] = _in_view(centres[near], poses, intrinsics, image_size, cfg)
    return out


def _in_view(
    centres: np.ndarray, poses: np.ndarray, intrinsics: np.ndarray, image_size: tuple[int, int], cfg: MapConfig
) -> np.ndarray:
    height, width = image_size
    rel = centres[None, :, :] - poses[:, None, :3, 3]  # (F, M, 3)
    cam = rel @ poses[:, :3, :3]  # (F, M, 3) camera coordinates
    z = cam[..., 2]
    safe = np.where(z > 1e-9, z, 1.0)
    u = intrinsics[:, None, 0, 0] * cam[..., 0] / safe + intrinsics[:, None, 0, 2]
    v = intrinsics[:, None, 1, 1] * cam[..., 1] / safe + intrinsics[:, None, 1, 2]
    mu, mv = cfg.view_margin * width, cfg.view_margin * height
    inside = (
        (z >= cfg.view_min_range) & (z <= cfg.view_max_range)
        & (u >= mu - 0.5) & (u <= width - 0.5 - mu) & (v >= mv - 0.5) & (v <= height - 0.5 - mv)
    )  # fmt: skip
    return inside.mean(axis=0) >= cfg.view_min_fraction


def _track_json(t: _Track) -> dict[str, Any]:
    return {
        "id": t.object_id,
        "label": t.label,
        "box": [float(v) for v in t.box],
        "confirmed": t.confirmed,
        "confidence": t.confidence,
        "observations": t.observations,
        "misses": t.misses,
        "recent_misses": t.recent_misses,
        "first_seen": t.first_seen,
        "last_seen": t.last_seen,
        "key": t.key,
        "last_window": t.last_window,
        "fusion": {
            "weight": t.weight,
            "centre_sum": [float(v) for v in t.centre_sum],
            "size_sum": [float(v) for v in t.size_sum],
            "yaw_sum": [float(v) for v in t.yaw_sum],
            "score_sum": t.score_sum,
        },
    }


def _parse_document(
    document: Any, source: str
) -> tuple[dict[int, _Track], int, dict[str, int], int]:
    """Validate a map document fully before anything is replaced."""

    def bad(message: str) -> MapFileError:
        return MapFileError(f"{source}: {message}")

    if not isinstance(document, dict) or document.get("format") != FORMAT_NAME:
        raise bad(f"not an object map (expected \"format\": \"{FORMAT_NAME}\")")
    version = document.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise bad(f"invalid format version {version!r}")
    if version > FORMAT_VERSION:
        raise bad(f"format version {version} is newer than this software reads ({FORMAT_VERSION}); upgrade ssr")
    try:
        tracks: dict[int, _Track] = {}
        for i, o in enumerate(document["objects"]):
            fusion = o["fusion"]
            track = _Track(
                key=_int(o["key"]),
                object_id=_str(o["id"]),
                label=_str(o["label"]),
                weight=_float(fusion["weight"]),
                centre_sum=_vector(fusion["centre_sum"], 3),
                size_sum=_vector(fusion["size_sum"], 3),
                yaw_sum=_vector(fusion["yaw_sum"], 2),
                score_sum=_float(fusion["score_sum"]),
                observations=_int(o["observations"]),
                misses=_int(o["misses"]),
                recent_misses=_int(o["recent_misses"]),
                first_seen=_float(o["first_seen"]),
                last_seen=_float(o["last_seen"]),
                confirmed=_bool(o["confirmed"]),
                last_window=_int(o["last_window"]),
            )
            if track.weight <= 0 or np.any(track.size_sum <= 0) or not np.any(track.yaw_sum):
                raise ValueError(f"object {i}: non-positive weight or extents, or zero yaw sum")
            if track.key in tracks or any(t.object_id == track.object_id for t in tracks.values()):
                raise ValueError(f"object {i}: duplicate key or id {track.object_id!r}")
            track.refresh()
            tracks[track.key] = track
        next_key = _int(document["next_key"])
        counts = {_str(k): _int(v) for k, v in dict(document["label_counts"]).items()}
        windows = _int(document["windows_integrated"])
        if tracks and next_key <= max(tracks):
            raise ValueError("next_key must exceed every object key")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise bad(f"malformed map document: {type(exc).__name__}: {exc}") from exc
    return dict(sorted(tracks.items())), next_key, counts, windows


def _float(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ValueError(f"expected a finite number, got {v!r}")
    return float(v)


def _int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError(f"expected a non-negative integer, got {v!r}")
    return v


def _str(v: Any) -> str:
    if not isinstance(v, str) or not v:
        raise ValueError(f"expected a non-empty string, got {v!r}")
    return v


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"expected true or false, got {v!r}")
    return v


def _vector(v: Any, n: int) -> np.ndarray:
    if not isinstance(v, list) or len(v) != n:
        raise ValueError(f"expected a list of {n} numbers, got {v!r}")
    return np.array([_float(x) for x in v])
