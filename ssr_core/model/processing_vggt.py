"""VGGT image preprocessing, byte-compatible with the official ``load_and_preprocess_images``.

The aggregator normalises internally, so images leave here as float32 [N,3,H,W] in [0,1]
with H and W multiples of 14. Inputs are file paths or in-memory uint8 arrays (HxWx3 RGB or
HxWx4 RGBA, or a stacked (N,H,W,C) window). Resizing uses PIL bicubic, like the official
code; another resampler (cv2, torch) would differ by a few grey levels.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Literal, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

__all__ = [
    "VGGT_TARGET_SIZE",
    "load_and_preprocess_images",
    "preprocessed_size",
    "resize_for_patch_grid",
]

logger = logging.getLogger(__name__)

VGGT_TARGET_SIZE = 518
PATCH_SIZE = 14

ImageInput = Union[str, "os.PathLike[str]", np.ndarray]
Mode = Literal["crop", "pad"]


def _to_pil_rgb(image: ImageInput) -> Image.Image:
    """Open a path or wrap a uint8 array; RGBA is alpha-composited onto opaque white."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4):
            raise ValueError(
                f"expected a uint8 HxWx3 (RGB) or HxWx4 (RGBA) array, got {image.dtype} {image.shape}"
            )
        img = Image.fromarray(np.ascontiguousarray(image))  # uint8 HxWx3 -> RGB, HxWx4 -> RGBA
    else:
        img = Image.open(image)
        img.load()
    if img.mode == "RGBA":
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    return img.convert("RGB")


def _to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB -> float32 [3,H,W] = uint8 / 255 (what torchvision's ToTensor does)."""
    array = np.asarray(img, dtype=np.uint8)  # [H, W, 3]
    return torch.from_numpy(array.copy()).permute(2, 0, 1).to(torch.float32).div(255)


def _pad_centred(img: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pad [3,h,w] with white (1.0) to [3,height,width]; the smaller half goes top/left."""
    h_pad, w_pad = height - img.shape[1], width - img.shape[2]
    if h_pad <= 0 and w_pad <= 0:
        return img
    top, left = h_pad // 2, w_pad // 2
    return F.pad(img, (left, w_pad - left, top, h_pad - top), mode="constant", value=1.0)


def preprocessed_size(
    height: int, width: int, mode: Mode = "crop", target_size: int = VGGT_TARGET_SIZE
) -> tuple[int, int]:
    """(height, width) the official resize gives an image before crop/pad.

    crop: width -> target, height -> round(h * target / w / 14) * 14. pad: the longer side
    -> target (a square takes the width branch), the other side rounded the same way.
    Python's round() is round-half-to-even; the float expression order is the official one.
    """
    if mode == "pad" and height > width:
        new_height = target_size
        new_width = round(width * (new_height / height) / PATCH_SIZE) * PATCH_SIZE
    else:
        new_width = target_size
        new_height = round(height * (new_width / width) / PATCH_SIZE) * PATCH_SIZE
    return new_height, new_width


def _as_list(images: Sequence[ImageInput] | np.ndarray) -> list[ImageInput]:
    if isinstance(images, np.ndarray):
        if images.ndim == 3:
            return [images]
        if images.ndim == 4:
            return list(images)
        raise ValueError(f"expected an (H,W,C) image or (N,H,W,C) window, got shape {images.shape}")
    if isinstance(images, (str, os.PathLike)):
        return [images]
    return list(images)


def load_and_preprocess_images(
    images: Sequence[ImageInput] | np.ndarray,
    mode: Mode = "crop",
    target_size: int = VGGT_TARGET_SIZE,
) -> torch.Tensor:
    """Reproduce VGGT's ``load_and_preprocess_images``: float32 [N,3,H,W] in [0,1].

    crop (default): width 518, height rounded to a multiple of 14, centre-cropped to 518
    rows if taller. pad: longer side 518, then white padding to 518x518 (smaller half
    top/left). If the images end up with different sizes they are padded white, centred the
    same way, to the largest height and width (the official code prints a warning; we log one).
    """
    if mode not in ("crop", "pad"):
        raise ValueError(f"mode must be 'crop' or 'pad', got {mode!r}")
    inputs = _as_list(images)
    if not inputs:
        raise ValueError("at least one image is required")
    tensors = []
    for image in inputs:
        img = _to_pil_rgb(image)
        new_height, new_width = preprocessed_size(img.height, img.width, mode, target_size)
        img = img.resize((new_width, new_height), Image.Resampling.BICUBIC)
        tensor = _to_tensor(img)  # [3, new_height, new_width]
        if mode == "crop" and new_height > target_size:
            start = (new_height - target_size) // 2
            tensor = tensor[:, start : start + target_size, :]
        if mode == "pad":
            tensor = _pad_centred(tensor, target_size, target_size)
        tensors.append(tensor)
    shapes = {tuple(t.shape[1:]) for t in tensors}
    if len(shapes) > 1:
        max_h = max(s[0] for s in shapes)
        max_w = max(s[1] for s in shapes)
        logger.warning("images of different sizes %s padded white to %dx%d", sorted(shapes), max_h, max_w)
        tensors = [_pad_centred(t, max_h, max_w) for t in tensors]
    return torch.stack(tensors)


def resize_for_patch_grid(
    frames: Sequence[ImageInput] | np.ndarray,
    height: int,
    width: int,
    patch_size: int = PATCH_SIZE,
) -> torch.Tensor:
    """Resize every frame to exactly (height, width) with PIL bicubic: float32 [N,3,H,W] in [0,1].

    For SSR a window must be fed at a size on which VGGT's 14-px patch grid and the Qwen
    ViT's 14-px patch grid coincide, so the caller picks (height, width) (multiples of
    ``patch_size``) instead of VGGT's 518-wide rule. Loading/RGBA handling and the resampler
    are the same as in ``load_and_preprocess_images``; the aspect ratio is not preserved.
    """
    if height <= 0 or width <= 0 or height % patch_size or width % patch_size:
        raise ValueError(f"target size {height}x{width} must be positive multiples of {patch_size}")
    inputs = _as_list(frames)
    if not inputs:
        raise ValueError("at least one frame is required")
    out = []
    for frame in inputs:
        img = _to_pil_rgb(frame)
        if img.size != (width, height):
            img = img.resize((width, height), Image.Resampling.BICUBIC)
        out.append(_to_tensor(img))
    return torch.stack(out)
