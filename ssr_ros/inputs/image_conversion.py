"""sensor_msgs/Image -> RGB uint8 frames at the model's input size, without trusting the sender.

Cameras and bags send odd things (padded rows, truncated buffers, depth on the colour topic). Every
check lives here so the node can count each rejection by kind instead of crashing. cv_bridge is used
when installed (robots); the numpy path gives identical pixels where it is not (PyPI ROS).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# encoding -> (channels, channel order to take for RGB); mono is replicated.
COLOR_ENCODINGS: dict[str, tuple[int, tuple[int, ...]]] = {
    "rgb8": (3, (0, 1, 2)),
    "bgr8": (3, (2, 1, 0)),
    "rgba8": (4, (0, 1, 2)),
    "bgra8": (4, (2, 1, 0)),
    "mono8": (1, (0, 0, 0)),
}
# Depth arriving on the colour topic is a wiring mistake worth one warning, not an error.
DEPTH_ENCODINGS = frozenset({"16UC1", "32FC1", "mono16", "16SC1"})


@dataclass(frozen=True)
class Rejected:
    """Why a frame was not used. `kind` (counted per kind by the node): depth_encoding,
    unsupported_encoding, zero_size, wrong_step or short_data."""

    kind: str
    detail: str


def target_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    """(height, width) after downscaling so the longer side is at most `max_side` (never upscales)."""
    scale = min(1.0, max_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def validate(encoding: str, height: int, width: int, step: int, data_len: int) -> Rejected | None:
    """The reason this image cannot be decoded, or None when it can."""
    if encoding in DEPTH_ENCODINGS:
        return Rejected("depth_encoding", f"depth encoding {encoding!r} on the colour topic is ignored")
    if encoding not in COLOR_ENCODINGS:
        return Rejected("unsupported_encoding", f"unsupported encoding {encoding!r}")
    if height <= 0 or width <= 0:
        return Rejected("zero_size", f"image size {width}x{height}")
    row_bytes = width * COLOR_ENCODINGS[encoding][0]
    if step < row_bytes:
        return Rejected("wrong_step", f"step {step} < width*channels {row_bytes}")
    if data_len < step * height:
        return Rejected("short_data", f"data has {data_len} bytes, step*height needs {step * height}")
    return None


def _resize(image: np.ndarray, max_side: int | None) -> np.ndarray:
    if max_side is None:
        return np.ascontiguousarray(image)
    h, w = target_size(image.shape[0], image.shape[1], max_side)
    if (h, w) == image.shape[:2]:
        return np.ascontiguousarray(image)
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)


def decode_numpy(
    encoding: str, height: int, width: int, step: int, data, max_side: int | None = None
) -> np.ndarray | Rejected:
    """Decode raw Image fields to (h, w, 3) RGB uint8, downscaled with INTER_AREA.

    Resizing happens on the raw channels before the channel shuffle: both commute exactly and the
    shuffle is then done on the small image.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    rejected = validate(encoding, height, width, step, buf.size)
    if rejected is not None:
        return rejected
    channels, order = COLOR_ENCODINGS[encoding]
    rows = buf[: step * height].reshape(height, step)[:, : width * channels]
    small = _resize(rows.reshape(height, width, channels), max_side)
    if small.ndim == 2:  # cv2 drops a singleton channel axis
        small = small[:, :, None]
    if order == (0, 1, 2) and channels == 3:
        return small
    return np.ascontiguousarray(small[:, :, list(order)])


def _load_cv_bridge():
    try:
        from cv_bridge import CvBridge
    except ImportError:
        return None
    return CvBridge()


class ImageDecoder:
    """Decodes Image messages with cv_bridge when importable, else with `decode_numpy`."""

    def __init__(self, max_side: int | None, prefer_cv_bridge: bool = True):
        self.max_side = max_side
        self._bridge = _load_cv_bridge() if prefer_cv_bridge else None

    @property
    def backend(self) -> str:
        return "cv_bridge" if self._bridge is not None else "numpy"

    def decode(self, msg) -> np.ndarray | Rejected:
        rejected = validate(msg.encoding, msg.height, msg.width, msg.step, len(msg.data))
        if rejected is not None:
            return rejected
        # cv_bridge reads a row as step // pixel_bytes pixels: rows padded to a step that is not a
        # whole number of pixels (e.g. rgb8 rows aligned to 4 bytes) would come out sheared.
        if self._bridge is None or msg.step % COLOR_ENCODINGS[msg.encoding][0]:
            return decode_numpy(msg.encoding, msg.height, msg.width, msg.step, msg.data, self.max_side)
        rgb = self._bridge.imgmsg_to_cv2(msg, desired_encoding="rgb8")
        return _resize(rgb, self.max_side)
