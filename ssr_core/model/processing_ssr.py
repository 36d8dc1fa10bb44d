"""SSR processing: frames and chat messages -> model inputs (the processor beside modeling_ssr).

`preprocess_frames` turns a window's uint8 frames into Qwen's pixel patches and VGGT's images
(same pixels, same 14-px grid); `SSRInputBuilder` renders chat messages with the chat template,
expands the video placeholder to the model's token layout, builds explicit M-RoPE positions and,
for training, labels on the answer tokens only. Inference (`ssr_core.inference.generation`) and
training (`training.dataset`) both build their inputs here, so they see the same layout.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from transformers.utils.constants import (
    IMAGENET_STANDARD_MEAN,
    IMAGENET_STANDARD_STD,
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
)

from ssr_core.language.prompts import Prompt
from ssr_core.model.configuration_ssr import QWEN3_VL, BaseConfig, SSRConfig, VisionGeometry, vision_geometry
from ssr_core.model.position_ids import (
    build_position_ids,
    group_timestamps,
    llm_grids,
    temporal_stride,
    video_token_count,
)

VGGT_PATCH = 14
# Pixel normalisation of each family's processor (Qwen2.5-VL: CLIP's; Qwen3-VL: 0.5 / 0.5).
PIXEL_MEAN_STD = {
    "qwen2_5_vl": (OPENAI_CLIP_MEAN, OPENAI_CLIP_STD),
    QWEN3_VL: (IMAGENET_STANDARD_MEAN, IMAGENET_STANDARD_STD),
}


@dataclass
class VideoInputs:
    """One preprocessed window (batch of one video)."""

    pixel_values_videos: Tensor  # [T*gh*gw, 3*tps*p*p] float32, Qwen's patch order (p = 14 or 16)
    video_grid_thw: Tensor  # [1, 3] long: (T, gh, gw) in ViT patches
    vggt_images: Tensor  # [1, S, 3, gh*14, gw*14] float32 in [0, 1], S = T*tps


def select_frames(num_available: int, num_frames: int) -> list[int]:
    """Uniformly pick `num_frames` frame indices; with fewer frames keep all, padded to an even count."""
    if num_available < 1:
        raise ValueError("a window needs at least one frame")
    if num_available > num_frames:
        return np.linspace(0, num_available - 1, num_frames).round().astype(int).tolist()
    indices = list(range(num_available))
    return indices + [indices[-1]] * (len(indices) % 2)


def preprocess_frames(
    frames: np.ndarray, image_size: tuple[int, int], num_frames: int, geometry: VisionGeometry
) -> VideoInputs:
    """uint8 frames [N, H0, W0, 3] -> pixel patches for the ViT and [0, 1] images for VGGT.

    Every frame is resized (bicubic, antialiased) to `image_size`. Qwen2.5-VL's 14-px patches
    equal VGGT's, so VGGT sees the same pixels. Qwen3-VL's patches are 16 px: VGGT gets the frame
    resized to (gh*14, gw*14), so its 14-px grid is the ViT's gh x gw grid (same field of view,
    lower resolution) and the tokens align one to one without resampling features. The patch
    order equals the Qwen processors': (t, gh/m, gw/m, m, m) over patches, (C, tps, p, p) inside.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [N, H, W, 3], got {frames.dtype} {frames.shape}")
    p, tps, m = geometry.patch_size, geometry.temporal_patch_size, geometry.merge_size
    height, width = image_size
    if height % (p * m) or width % (p * m):
        raise ValueError(f"image_size {image_size} must be multiples of {p * m}")
    picked = frames[select_frames(len(frames), num_frames)]
    if len(picked) % tps:
        picked = np.concatenate([picked, picked[-1:].repeat(tps - len(picked) % tps, axis=0)])
    # [S, 3, H0, W0] in [0, 1]
    images = torch.from_numpy(np.ascontiguousarray(picked)).permute(0, 3, 1, 2).float() / 255.0
    if images.shape[-2:] != (height, width):
        images = F.interpolate(
            images, size=(height, width), mode="bicubic", antialias=True, align_corners=False
        )
        images = images.clamp(0.0, 1.0)
    mean_std = PIXEL_MEAN_STD[geometry.family]
    mean = torch.tensor(mean_std[0]).view(1, 3, 1, 1)
    std = torch.tensor(mean_std[1]).view(1, 3, 1, 1)
    x = (images - mean) / std
    s = x.shape[0]
    t, gh, gw = s // tps, height // p, width // p
    x = x.view(t, tps, 3, gh // m, m, p, gw // m, m, p).permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
    pixel_values = x.reshape(t * gh * gw, 3 * tps * p * p)
    vggt_images = images
    if p != VGGT_PATCH:
        vggt_images = F.interpolate(
            images, size=(gh * VGGT_PATCH, gw * VGGT_PATCH), mode="bicubic", antialias=True, align_corners=False
        ).clamp(0.0, 1.0)
    return VideoInputs(pixel_values, torch.tensor([[t, gh, gw]]), vggt_images.unsqueeze(0))


IGNORE_INDEX = -100


class SSRInputBuilder:
    """Frames + chat messages -> token ids, placeholder expansion, positions and labels."""

    def __init__(
        self,
        tokenizer,
        ssr_config: SSRConfig,
        model_config: BaseConfig,
        chat_template: str | None = None,
    ):
        self.tokenizer = tokenizer
        self.ssr_config = ssr_config
        self.model_config = model_config
        self.geometry = vision_geometry(model_config)
        self.chat_template = chat_template or tokenizer.chat_template
        if not self.chat_template:
            raise ValueError("the tokenizer has no chat template; pass chat_template=...")
        self.video_token = "<|video_pad|>"
        self.vision_end = "<|vision_end|>"
        if tokenizer.convert_tokens_to_ids(self.video_token) != model_config.video_token_id:
            raise ValueError("tokenizer and model disagree on the <|video_pad|> id")

    def chat_messages(self, prompt: Prompt) -> list[dict]:
        """A user string or [{"role": "system"|"user", "content": str}] -> Qwen messages, video before the user text."""
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
        out: list[dict] = []
        has_user = False
        for message in messages:
            role, content = message.get("role"), message.get("content")
            if role not in ("system", "user") or not isinstance(content, str):
                raise ValueError(f"prompt messages must be system/user with string content, got {message!r}")
            if role == "user" and not has_user:
                out.append(
                    {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": content}]}
                )
                has_user = True
            else:
                out.append({"role": role, "content": content})
        if not has_user:
            raise ValueError("a prompt needs a user message")
        return out

    def render(self, prompt: Prompt) -> tuple[str, str]:
        """(prefix up to and including the video span, suffix through the assistant header)."""
        text = self.tokenizer.apply_chat_template(
            self.chat_messages(prompt),
            chat_template=self.chat_template,
            tokenize=False,
            add_generation_prompt=True,
        )
        if text.count(self.video_token) != 1:
            raise ValueError("the rendered prompt must hold exactly one video placeholder")
        cut = text.index(self.video_token) + len(self.video_token)
        if text.startswith(self.vision_end, cut):
            cut += len(self.vision_end)
        return text[:cut], text[cut:]

    def tokenize(self, text: str, video_grid_thw: Tensor | None = None) -> list[int]:
        """Token ids of `text`; its single video placeholder (if any) becomes the video span of
        `video_grid_thw` ([1, 3]) in this model's layout.

        Qwen2.5-VL: one run of `num_video_tokens` placeholders. Qwen3-VL: the placeholder and its
        <|vision_start|> / <|vision_end|> become, per temporal group, `<{seconds:.1f} seconds>`
        <|vision_start|> [group placeholders] <|vision_end|> (the Qwen3-VL processor's layout;
        seconds from `SSRConfig.video_fps`).
        """
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        video_id = self.model_config.video_token_id
        if video_id not in ids:
            return ids
        if video_grid_thw is None:
            raise ValueError("a prompt with a video placeholder needs the video's grid")
        at = ids.index(video_id)
        if self.geometry.family != QWEN3_VL:
            return ids[:at] + [video_id] * self.num_video_tokens(video_grid_thw) + ids[at + 1 :]
        start_id, end_id = self.model_config.vision_start_token_id, self.model_config.vision_end_token_id
        if at == 0 or at + 1 >= len(ids) or ids[at - 1] != start_id or ids[at + 1] != end_id:
            raise ValueError("Qwen3-VL prompts need <|vision_start|><|video_pad|><|vision_end|>")
        (grid,) = llm_grids(video_grid_thw, self.geometry.merge_size)
        per_group = video_token_count((1, grid[1], grid[2]), self.ssr_config.layout)
        span: list[int] = []
        times = group_timestamps(grid[0], self.geometry.temporal_patch_size, self.ssr_config.video_fps)
        for seconds in times:
            stamp = self.tokenizer(f"<{seconds:.1f} seconds>", add_special_tokens=False)["input_ids"]
            span += [*stamp, start_id, *([video_id] * per_group), end_id]
        return ids[: at - 1] + span + ids[at + 2 :]

    def video_inputs(self, frames: np.ndarray) -> VideoInputs:
        cfg = self.ssr_config
        return preprocess_frames(frames, cfg.image_size, cfg.num_frames, self.geometry)

    def num_video_tokens(self, video_grid_thw: Tensor) -> int:
        (grid,) = llm_grids(video_grid_thw, self.geometry.merge_size)
        return video_token_count(grid, self.ssr_config.layout)

    def position_ids(self, input_ids: Tensor, video_grid_thw: Tensor) -> Tensor:
        qwen3 = self.geometry.family == QWEN3_VL
        position_ids, _ = build_position_ids(
            input_ids,
            self.model_config.video_token_id,
            llm_grids(video_grid_thw, self.geometry.merge_size),
            self.ssr_config.layout,
            0.0 if qwen3 else temporal_stride(self.geometry, self.ssr_config.video_fps),
            per_group=qwen3,
        )
        return position_ids

    def build_training_inputs(self, frames: np.ndarray, messages: Prompt, answer: str) -> dict[str, Tensor]:
        """One supervised sample: the prompt as at inference, then the assistant turn as the template writes it.

        labels are -100 except on the assistant text after the generation header (the answer, its
        <|im_end|> and the template's trailing newline). Returns input_ids / attention_mask / labels
        [1, L], position_ids [3, 1, L], pixel_values_videos, video_grid_thw [1, 3], vggt_images.
        """
        video = self.video_inputs(frames)
        prefix, suffix = self.render(messages)
        chat = self.chat_messages(messages) + [{"role": "assistant", "content": answer}]
        full = self.tokenizer.apply_chat_template(chat, chat_template=self.chat_template, tokenize=False)
        if not full.startswith(prefix + suffix):
            raise ValueError("the chat template renders the assistant turn inconsistently with the prompt")
        prompt_ids = self.tokenize(prefix, video.video_grid_thw) + self.tokenize(suffix)
        answer_ids = self.tokenize(full[len(prefix + suffix) :])
        input_ids = torch.tensor([prompt_ids + answer_ids])
        labels = torch.tensor([[IGNORE_INDEX] * len(prompt_ids) + answer_ids])
        return {
            "input_ids": input_ids,
            "attention_mask": torch.ones_like(input_ids),
            "labels": labels,
            "position_ids": self.position_ids(input_ids, video.video_grid_thw),
            "pixel_values_videos": video.pixel_values_videos,
            "video_grid_thw": video.video_grid_thw,
            "vggt_images": video.vggt_images,
        }


def build_training_inputs(
    builder: SSRInputBuilder, frames: np.ndarray, messages: Prompt, answer: str
) -> dict[str, Tensor]:
    """See `SSRInputBuilder.build_training_inputs`."""
    return builder.build_training_inputs(frames, messages, answer)


def collate_training_inputs(samples: Sequence[Mapping[str, Tensor]], pad_token_id: int) -> dict[str, Any]:
    """Right-pad samples from `build_training_inputs` into a batch for `SSRForConditionalGeneration.forward`.

    Videos may differ in frame count: pixel patches are concatenated (Qwen's packed layout) and
    `vggt_images` becomes a list of [S_v, 3, H, W].
    """
    width = max(s["input_ids"].shape[1] for s in samples)

    def pad(key: str, value: int) -> Tensor:
        rows = [s[key] for s in samples]
        return torch.cat(
            [torch.nn.functional.pad(r, (0, width - r.shape[-1]), value=value) for r in rows], dim=-2
        )

    return {
        "input_ids": pad("input_ids", pad_token_id),
        "attention_mask": pad("attention_mask", 0),
        "labels": pad("labels", IGNORE_INDEX),
        "position_ids": pad("position_ids", 0),  # [3, B, L]
        "pixel_values_videos": torch.cat([s["pixel_values_videos"] for s in samples]),
        "video_grid_thw": torch.cat([s["video_grid_thw"] for s in samples]),
        "vggt_images": [s["vggt_images"][0] for s in samples],
    }
