"""Image decoding: the numpy path against hand-built arrays, every rejection kind, cv_bridge parity."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sensor_msgs.msg", reason="needs the ROS 2 message packages (sensor_msgs)")
from sensor_msgs.msg import Image  # noqa: E402

from ssr_ros.inputs.image_conversion import ImageDecoder, Rejected, decode_numpy, target_size  # noqa: E402

RGB = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)  # 2 rows, 3 columns


def _msg(encoding: str, pixels: np.ndarray, pad: int = 0, truncate: int = 0) -> Image:
    h, w = pixels.shape[:2]
    rows = pixels.reshape(h, -1)
    rows = np.concatenate([rows, np.full((h, pad), 255, np.uint8)], axis=1)
    data = rows.tobytes()
    return Image(height=h, width=w, encoding=encoding, step=rows.shape[1], data=data[: len(data) - truncate])


def _decode(msg: Image, max_side=None):
    return decode_numpy(msg.encoding, msg.height, msg.width, msg.step, msg.data, max_side)


@pytest.mark.parametrize(
    "encoding, pixels",
    [
        ("rgb8", RGB),
        ("bgr8", RGB[:, :, ::-1]),
        ("rgba8", np.dstack([RGB, np.full((2, 3), 7, np.uint8)])),
        ("bgra8", np.dstack([RGB[:, :, ::-1], np.full((2, 3), 7, np.uint8)])),
    ],
)
@pytest.mark.parametrize("pad", [0, 5])
def test_color_encodings_give_the_same_rgb(encoding, pixels, pad):
    out = _decode(_msg(encoding, pixels, pad=pad))
    assert out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, RGB)


def test_mono8_is_replicated():
    gray = np.array([[0, 10, 20], [30, 40, 250]], np.uint8)
    out = _decode(_msg("mono8", gray[:, :, None], pad=2))
    np.testing.assert_array_equal(out, np.repeat(gray[:, :, None], 3, axis=2))


def test_downscale_uses_inter_area_and_keeps_aspect():
    # 4x8 image of 2x2 blocks: INTER_AREA at half size averages each block exactly
    blocks = np.arange(8, dtype=np.uint8).reshape(2, 4) * 30
    big = np.repeat(np.repeat(blocks, 2, axis=0), 2, axis=1)
    bgr = np.dstack([big, big // 2, big // 3])[:, :, ::-1].copy()
    out = _decode(_msg("bgr8", bgr), max_side=4)
    assert out.shape == (2, 4, 3)
    np.testing.assert_array_equal(out, np.dstack([blocks, blocks // 2, blocks // 3]))
    assert target_size(720, 1280, 518) == (291, 518)
    assert target_size(100, 50, 518) == (100, 50)  # never upscales


@pytest.mark.parametrize(
    "msg, kind",
    [
        (_msg("16UC1", np.zeros((2, 3, 2), np.uint8)), "depth_encoding"),
        (_msg("32FC1", np.zeros((2, 3, 4), np.uint8)), "depth_encoding"),
        (_msg("yuv422", np.zeros((2, 3, 2), np.uint8)), "unsupported_encoding"),
        (Image(height=0, width=3, encoding="rgb8", step=9, data=b""), "zero_size"),
        (Image(height=2, width=3, encoding="rgb8", step=8, data=bytes(16)), "wrong_step"),
        (_msg("rgb8", RGB, truncate=1), "short_data"),
        (Image(height=2, width=3, encoding="rgb8", step=9, data=b""), "short_data"),
    ],
)
def test_bad_images_are_rejected_by_kind(msg, kind):
    out = _decode(msg)
    assert isinstance(out, Rejected) and out.kind == kind and out.detail


def test_decoder_uses_numpy_without_cv_bridge():
    decoder = ImageDecoder(max_side=None, prefer_cv_bridge=False)
    assert decoder.backend == "numpy"
    np.testing.assert_array_equal(decoder.decode(_msg("bgr8", RGB[:, :, ::-1])), RGB)


def test_rows_padded_to_a_partial_pixel_never_go_through_cv_bridge():
    """cv_bridge reshapes a row as step // pixel_bytes pixels, which shears such rows."""

    class Bridge:
        def imgmsg_to_cv2(self, msg, desired_encoding):
            assert msg.step % 3 == 0, "partial-pixel padding handed to cv_bridge"
            return _decode(msg)

    decoder = ImageDecoder(max_side=None, prefer_cv_bridge=False)
    decoder._bridge = Bridge()
    for pad in (0, 1, 3):
        np.testing.assert_array_equal(decoder.decode(_msg("rgb8", RGB, pad=pad)), RGB)
    assert decoder.decode(_msg("rgb8", RGB, truncate=1)).kind == "short_data"


def test_cv_bridge_matches_numpy_path():
    pytest.importorskip("cv_bridge", reason="cv_bridge is not installed (ROS from PyPI has none); "
                        "the numpy path is tested against hand-built arrays above")
    rng = np.random.default_rng(0)
    bridge, plain = ImageDecoder(max_side=64), ImageDecoder(max_side=64, prefer_cv_bridge=False)
    assert bridge.backend == "cv_bridge"
    for encoding, ch in [("rgb8", 3), ("bgr8", 3), ("rgba8", 4), ("bgra8", 4), ("mono8", 1)]:
        msg = _msg(encoding, rng.integers(0, 256, (90, 120, ch), dtype=np.uint8), pad=4)
        np.testing.assert_array_equal(bridge.decode(msg), plain.decode(msg))
