"""Bounded frame ring and uniform window sampling (pure Python + numpy, no rclpy).

The ring bounds memory whatever the camera rate: frames are already downscaled and the oldest is
evicted when full (counted as dropped if no window ever covered it). A window samples `frames`
images uniformly over either the frames received since the previous window or the last
`duration_s` seconds of stamps.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

MODES = ("since_last", "duration")


@dataclass(frozen=True)
class Frame:
    stamp_ns: int  # header stamp of the image
    image: np.ndarray  # (h, w, 3) uint8 RGB, already at model size; never mutated after add()
    frame_id: str  # camera optical frame of the image


@dataclass(frozen=True)
class Window:
    frames: np.ndarray  # (N, h, w, 3) uint8
    stamps_ns: tuple[int, ...]
    frame_id: str  # camera frame of the first frame
    candidates: int  # frames the sample was drawn from

    @property
    def first_stamp_ns(self) -> int:
        return self.stamps_ns[0]

    def starting_at(self, index: int) -> Window:
        """The window without its first `index` frames (their camera pose was not known)."""
        if index == 0:
            return self
        return Window(self.frames[index:], self.stamps_ns[index:], self.frame_id, self.candidates)


@dataclass(frozen=True)
class TooFewFrames:
    """Not enough frames for a window yet; reported, the frames stay buffered."""

    available: int
    required: int


def uniform_indices(n: int, k: int) -> np.ndarray:
    """k indices spread evenly over range(n), first and last included (all n when n <= k)."""
    if n <= k:
        return np.arange(n)
    return np.round(np.linspace(0, n - 1, k)).astype(np.int64)


class WindowBuffer:
    """Thread-safe frame ring; `add` is O(1) so image callbacks never wait on sampling for long."""

    def __init__(
        self,
        capacity: int,
        window_frames: int,
        min_frames: int,
        mode: str = "since_last",
        duration_s: float = 4.0,
    ):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if not 1 <= min_frames <= window_frames:
            raise ValueError(f"need 1 <= min_frames <= window_frames, got {min_frames}, {window_frames}")
        if capacity < window_frames:
            raise ValueError(f"capacity {capacity} < window_frames {window_frames}")
        self.window_frames = window_frames
        self.min_frames = min_frames
        self.mode = mode
        self.duration_ns = int(duration_s * 1e9)
        self._ring: deque[tuple[int, Frame]] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self._seq = 0  # sequence number of the newest frame
        self._covered = 0  # frames with seq <= this were candidates of some window
        self.received = 0
        self.dropped = 0

    def add(self, frame: Frame) -> None:
        with self._lock:
            if len(self._ring) == self._ring.maxlen and self._ring[0][0] > self._covered:
                self.dropped += 1
            self._seq += 1
            self.received += 1
            self._ring.append((self._seq, frame))

    def pending(self) -> int:
        """Frames received since the previous window (still in the ring)."""
        with self._lock:
            return sum(1 for seq, _ in self._ring if seq > self._covered)

    def take_window(self) -> Window | TooFewFrames:
        with self._lock:
            if self.mode == "since_last":
                candidates = [f for seq, f in self._ring if seq > self._covered]
            elif self._ring:
                newest = self._ring[-1][1].stamp_ns
                candidates = [f for _, f in self._ring if f.stamp_ns >= newest - self.duration_ns]
            else:
                candidates = []
            if candidates:  # a resolution change mid-stream: only frames shaped like the newest
                shape = candidates[-1].image.shape
                candidates = [f for f in candidates if f.image.shape == shape]
            if len(candidates) < self.min_frames:
                return TooFewFrames(len(candidates), self.min_frames)
            self._covered = self._seq
        chosen = [candidates[i] for i in uniform_indices(len(candidates), self.window_frames)]
        return Window(
            frames=np.stack([f.image for f in chosen]),
            stamps_ns=tuple(f.stamp_ns for f in chosen),
            frame_id=chosen[0].frame_id,
            candidates=len(candidates),
        )

    def clear(self) -> None:
        with self._lock:
            self._ring.clear()
            self._covered = self._seq
