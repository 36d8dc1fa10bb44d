"""VGGT preprocessing against the official ``load_and_preprocess_images`` outputs.

Reference: tests/fixtures/vggt/preprocess_expected.npz, produced with Pillow 13.0.0.
Bicubic resampling is Pillow's own C code, so byte equality is only promised for that
Pillow version; with another one we accept differences of at most 2 grey levels (the
resampler's fixed-point rounding is the only thing that may change between releases).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

import numpy as np
import PIL
import pytest
import torch
from PIL import Image

from ssr_core.model.processing_vggt import (
    load_and_preprocess_images,
    preprocessed_size,
    resize_for_patch_grid,
)

FIXTURE = Path(__file__).parent / "fixtures" / "vggt" / "preprocess_expected.npz"

FIXTURE_PILLOW = "13.0.0"
MAX_GREY_LEVELS = 0 if PIL.__version__ == FIXTURE_PILLOW else 2

INPUTS = {
    "landscape_640x427.png": "input_landscape_640x427",
    "portrait_360x480.png": "input_portrait_360x480",
    "rgba_300x200.png": "input_rgba_300x200",
}
CASES: dict[str, tuple[list[str], Literal["crop", "pad"]]] = {
    "crop_landscape": (["landscape_640x427.png"], "crop"),
    "crop_portrait": (["portrait_360x480.png"], "crop"),
    "crop_rgba": (["rgba_300x200.png"], "crop"),
    "pad_landscape": (["landscape_640x427.png"], "pad"),
    "pad_portrait": (["portrait_360x480.png"], "pad"),
    "crop_mixed_batch": (["landscape_640x427.png", "portrait_360x480.png"], "crop"),
}


@functools.cache
def fixture() -> dict[str, np.ndarray]:
    with np.load(FIXTURE) as data:
        return {k: data[k] for k in data.files}


def assert_matches(out: torch.Tensor, expected_u8: np.ndarray) -> None:
    assert out.dtype == torch.float32
    assert tuple(out.shape) == expected_u8.shape
    expected = torch.from_numpy(expected_u8).to(torch.float32) / 255  # exactly the official values
    if MAX_GREY_LEVELS == 0:
        assert torch.equal(out, expected)
    else:
        assert (out * 255 - expected * 255).abs().max().item() <= MAX_GREY_LEVELS + 1e-3


@pytest.mark.parametrize("case", list(CASES))
def test_in_memory_arrays_match_official(case: str) -> None:
    names, mode = CASES[case]
    arrays = [fixture()[INPUTS[n]] for n in names]
    assert_matches(load_and_preprocess_images(arrays, mode=mode), fixture()[case])


@pytest.mark.parametrize("case", list(CASES))
def test_png_files_match_official(case: str, tmp_path: Path) -> None:
    names, mode = CASES[case]
    paths = []
    for name in names:
        Image.fromarray(fixture()[INPUTS[name]]).save(tmp_path / name)  # lossless, RGBA kept
        paths.append(tmp_path / name)
    assert_matches(load_and_preprocess_images(paths, mode=mode), fixture()[case])


def test_sizes_follow_official_rounding() -> None:
    assert preprocessed_size(427, 640) == (350, 518)
    assert preprocessed_size(480, 360) == (686, 518)  # then centre-cropped to 518 rows
    assert preprocessed_size(480, 360, mode="pad") == (518, 392)
    assert preprocessed_size(100, 100, mode="pad") == (518, 518)
    # round-half-to-even: 518*7/518/14 = 0.5 -> 0, 518*21/518/14 = 1.5 -> 2
    assert preprocessed_size(7, 518) == (0, 518)
    assert preprocessed_size(21, 518) == (28, 518)


def test_stacked_window_and_bad_inputs() -> None:
    window = np.stack([fixture()["input_landscape_640x427"]] * 2)  # (N, H, W, 3)
    out = load_and_preprocess_images(window)
    assert out.shape == (2, 3, 350, 518)
    assert torch.equal(out[0], out[1])
    with pytest.raises(ValueError, match="uint8"):
        load_and_preprocess_images([np.zeros((10, 10, 3), dtype=np.float32)])
    with pytest.raises(ValueError, match="mode"):
        load_and_preprocess_images(window, mode="stretch")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one"):
        load_and_preprocess_images([])


def test_resize_for_patch_grid() -> None:
    rgb = fixture()["input_landscape_640x427"]
    rgba = fixture()["input_rgba_300x200"]
    out = resize_for_patch_grid([rgb, rgba], height=308, width=448)
    assert out.shape == (2, 3, 308, 448) and out.dtype == torch.float32
    ref = np.asarray(Image.fromarray(rgb).resize((448, 308), Image.Resampling.BICUBIC))
    assert torch.equal(out[0], torch.from_numpy(ref.copy()).permute(2, 0, 1).float() / 255)
    # RGBA is composited onto white like the official loader
    white = resize_for_patch_grid(np.full((28, 28, 4), [0, 0, 0, 0], dtype=np.uint8), 28, 28)
    assert torch.equal(white, torch.ones(1, 3, 28, 28))
    with pytest.raises(ValueError, match="multiples of 14"):
        resize_for_patch_grid([rgb], height=300, width=448)
