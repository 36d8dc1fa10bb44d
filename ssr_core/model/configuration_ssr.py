"""`SSRConfig`: what an SSR checkpoint needs beyond the base Qwen2.5-VL config (`ssr_config.json`).

The base model's own hyper-parameters stay in the transformers `config.json` next to it; this
file records only the SSR choices: variant, VGGT layer and size, token insertion, frame count
and size, and the prompt-format version the checkpoint was trained with.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from transformers import PreTrainedConfig, Qwen2_5_VLConfig, Qwen3VLConfig
from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import (
    Qwen2_5_VLTextConfig,
    Qwen2_5_VLVisionConfig,
)
from transformers.models.qwen3_vl.configuration_qwen3_vl import Qwen3VLTextConfig, Qwen3VLVisionConfig

from ssr_core.io import atomic_write_text

SSR_CONFIG_NAME = "ssr_config.json"
# Base families, by the transformers `model_type` of their config.json.
QWEN2_5_VL, QWEN3_VL = "qwen2_5_vl", "qwen3_vl"
FAMILIES = (QWEN2_5_VL, QWEN3_VL)
BaseConfig = Qwen2_5_VLConfig | Qwen3VLConfig
# Frame size (H, W) giving both families the same 24x32 ViT grid (12x16 merged tokens a group)
# and VGGT the same 336x448 input: 14-px patches for Qwen2.5-VL, 16-px for Qwen3-VL.
DEFAULT_IMAGE_SIZE = {QWEN2_5_VL: (336, 448), QWEN3_VL: (384, 512)}
VARIANTS = ("2d", "3d")
INSERTIONS = ("interleaved", "sequential")


def _prompt_format_version() -> str:
    from ssr_core.language.prompts import PROMPT_FORMAT_VERSION

    return str(PROMPT_FORMAT_VERSION)


@dataclass
class SSRConfig:
    """SSR-specific settings.

    variant: "2d" (the base model alone) or "3d" (plus the VGGT spatial branch).
    spatial_layer: 0-based VGGT aggregator layer read by the 3D branch (22 = the paper's "23rd").
    insertion: "interleaved" (visual t, spatial t, visual t+1, ...) or "sequential" (all visual,
        then all spatial); only used by "3d".
    num_frames: frames per window fed to the model (even: Qwen groups frames in pairs).
    image_size: (height, width) every frame is resized to for the ViT; multiples of 2 x its patch
        size (28 for Qwen2.5-VL, 32 for Qwen3-VL) so the 2x2 merge is exact. VGGT sees the same
        frames at its 14-px grid of the same shape (the same pixels for Qwen2.5-VL).
    video_fps: sampling rate assumed for the temporal M-RoPE stride of the 2D layout
        (Qwen's `second_per_grid_ts = temporal_patch_size / fps`).
    vggt_config: VGGTConfig fields as a dict; None means the official VGGT-1B aggregator.
    vggt_path: where the VGGT weights live; may be None. A relative path is relative to the
        checkpoint folder (a shipped model keeps its aggregator inside the folder).
    zero_shot: True for a base model never trained for SSR (a plain instruct checkpoint run with
        SSR-2D prompts), so logs, diagnostics and outputs can say the answers are zero-shot.
    """

    variant: str = "3d"
    spatial_layer: int = 22
    insertion: str = "interleaved"
    num_frames: int = 32
    image_size: tuple[int, int] = (336, 448)
    video_fps: float = 2.0
    vggt_config: dict[str, Any] | None = None
    vggt_path: str | None = None
    prompt_format_version: str = field(default_factory=_prompt_format_version)
    zero_shot: bool = False

    def __post_init__(self) -> None:
        self.image_size = (int(self.image_size[0]), int(self.image_size[1]))
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.insertion not in INSERTIONS:
            raise ValueError(f"insertion must be one of {INSERTIONS}, got {self.insertion!r}")
        if self.num_frames < 2 or self.num_frames % 2:
            raise ValueError(f"num_frames must be even and >= 2, got {self.num_frames}")
        if any(s <= 0 or s % 28 and s % 32 for s in self.image_size):
            raise ValueError(f"image_size must be positive multiples of 28 (or 32 for Qwen3-VL), got {self.image_size}")

    @property
    def layout(self) -> str:
        """Token layout of the video span (see `position_ids.py`)."""
        return "visual" if self.variant == "2d" else self.insertion

    @property
    def vggt_embed_dim(self) -> int:
        return int((self.vggt_config or {}).get("embed_dim", 1024))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["image_size"] = list(self.image_size)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SSRConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown SSRConfig fields: {unknown}")
        return cls(**data)

    def save(self, directory: str | os.PathLike[str]) -> Path:
        path = Path(directory) / SSR_CONFIG_NAME
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> SSRConfig:
        return cls.from_dict(json.loads((Path(directory) / SSR_CONFIG_NAME).read_text()))


@dataclass(frozen=True)
class VisionGeometry:
    """The ViT sizes SSR relies on, as plain ints (transformers also allows non-square sizes; SSR does not).

    window_size is 0 for Qwen3-VL (no window attention: the ViT keeps the processor's order);
    tokens_per_second is Qwen2.5-VL's temporal M-RoPE rate (Qwen3-VL uses timestamps instead).
    """

    family: str
    patch_size: int
    temporal_patch_size: int
    merge_size: int
    window_size: int
    tokens_per_second: float
    hidden_size: int
    out_hidden_size: int


def _square(value: object, name: str) -> int:
    if not isinstance(value, int):
        raise ValueError(f"SSR needs an integer vision {name}, got {value!r}")
    return value


def model_family(config: object) -> str:
    """QWEN2_5_VL or QWEN3_VL from the config's model_type; anything else is refused."""
    family = getattr(config, "model_type", None)
    if family not in FAMILIES:
        raise ValueError(f"SSR supports the base families {FAMILIES}, got model_type {family!r}")
    return str(family)


def vision_geometry(config: PreTrainedConfig) -> VisionGeometry:
    vision = getattr(config, "vision_config", None)
    if isinstance(vision, Qwen2_5_VLVisionConfig):
        window_size, tokens_per_second = vision.window_size, float(vision.tokens_per_second)
    elif isinstance(vision, Qwen3VLVisionConfig):
        window_size, tokens_per_second = 0, 0.0
    else:
        raise TypeError("expected a Qwen2.5-VL or Qwen3-VL config with a vision_config")
    return VisionGeometry(
        family=model_family(config),
        patch_size=_square(vision.patch_size, "patch_size"),
        temporal_patch_size=_square(vision.temporal_patch_size, "temporal_patch_size"),
        merge_size=vision.spatial_merge_size,
        window_size=window_size,
        tokens_per_second=tokens_per_second,
        hidden_size=vision.hidden_size,
        out_hidden_size=vision.out_hidden_size,
    )


def text_config(config: PreTrainedConfig) -> Qwen2_5_VLTextConfig | Qwen3VLTextConfig:
    text = getattr(config, "text_config", None)
    if not isinstance(text, Qwen2_5_VLTextConfig | Qwen3VLTextConfig):
        raise TypeError("expected a Qwen2.5-VL or Qwen3-VL config with a text_config")
    return text
