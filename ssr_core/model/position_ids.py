"""Explicit M-RoPE position ids for SSR prompts (Qwen2.5-VL's 3-axis rotary positions).

A prompt is text with one placeholder span per video. The span holds, for a video whose merged
LLM grid is (T, h, w) (T temporal groups of two frames, h x w merged patches):

  layout "visual"      (SSR-2D): T*h*w visual tokens, group t at temporal index floor(t*stride),
                       exactly as the base model does (stride = tokens_per_second * seconds/group).
  layout "interleaved" (SSR-3D default): for each t, the h*w visual tokens of t at temporal index
                       2t, then the h*w spatial tokens of t at 2t+1.
  layout "sequential"  (SSR-3D ablation): all visual groups (temporal index t), then all spatial
                       groups (temporal index T+t).

Every token of the span has height index start+i and width index start+j from its grid cell
(i, j), and all temporal indices are offset by `start`, the position after the preceding text.
Text tokens carry the same value on all three axes and count up by one; text after a span
continues from the largest index used inside the span, plus one (Qwen's reference rule).

Qwen3-VL (family "qwen3_vl") writes a video as one span per temporal group, each preceded by its
timestamp text (`<1.2 seconds><|vision_start|>[group t]<|vision_end|>`), and positions every
h x w block like an image: temporal index p (constant), height p+i, width p+j, then p += max(h, w)
(transformers' `Qwen3VLModel.get_rope_index`). SSR-3D keeps that rule and puts the spatial block
of group t right after its visual block inside the same span, positioned as the next block (the
counterpart of Qwen2.5-VL's 2t / 2t+1 interleaving): a group's span is [visual t][spatial t].
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from ssr_core.model.configuration_ssr import VisionGeometry

LAYOUTS = ("visual", "interleaved", "sequential")
Grid = tuple[int, int, int]  # merged LLM grid (T, h, w)


def _check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")


def video_token_count(grid: Grid, layout: str) -> int:
    """Number of placeholder tokens a video of merged grid (T, h, w) occupies in the prompt."""
    _check_layout(layout)
    t, h, w = grid
    return t * h * w * (1 if layout == "visual" else 2)


def video_span_position_ids(
    grid: Grid, start: int, layout: str, temporal_stride: float = 1.0, device: torch.device | None = None
) -> Tensor:
    """[3, video_token_count] (temporal, height, width) indices of one video span starting at `start`."""
    _check_layout(layout)
    t, h, w = grid
    groups = torch.arange(t, device=device)
    if layout == "visual":
        temporal = (groups * temporal_stride).long()  # [T], floor like the base model
    elif layout == "interleaved":
        temporal = torch.stack((2 * groups, 2 * groups + 1), dim=1).reshape(-1)  # [2T]: 0,1,2,3,...
    else:
        temporal = torch.cat((groups, t + groups))  # [2T]: 0..T-1 (visual), T..2T-1 (spatial)
    blocks = temporal.numel()  # one h*w block per entry of `temporal`, in span order
    tt = temporal.view(blocks, 1, 1).expand(blocks, h, w)
    hh = torch.arange(h, device=device).view(1, h, 1).expand(blocks, h, w)
    ww = torch.arange(w, device=device).view(1, 1, w).expand(blocks, h, w)
    return torch.stack((tt, hh, ww)).reshape(3, -1) + start


def arrange_video_tokens(visual: Tensor, spatial: Tensor | None, grid: Grid, layout: str) -> Tensor:
    """Order one video's tokens as its span expects.

    visual, spatial: [T*h*w, D], each in (t, i, j) raster order. Returns [video_token_count, D].
    """
    _check_layout(layout)
    if layout == "visual":
        return visual
    if spatial is None or spatial.shape != visual.shape:
        raise ValueError(
            f"layout {layout!r} needs spatial tokens shaped like the visual ones {tuple(visual.shape)}"
        )
    if layout == "sequential":
        return torch.cat((visual, spatial))
    t = grid[0]
    d = visual.shape[-1]
    return torch.stack((visual.view(t, -1, d), spatial.view(t, -1, d)), dim=1).reshape(-1, d)


def group_span_position_ids(grid: Grid, start: int, layout: str, device: torch.device | None = None) -> Tensor:
    """Qwen3-VL: [3, blocks*h*w] positions of one temporal group's span (grid (1, h, w)) at `start`."""
    _check_layout(layout)
    _, h, w = grid
    blocks = 1 if layout == "visual" else 2
    hh = torch.arange(h, device=device).view(h, 1).expand(h, w).reshape(-1)
    ww = torch.arange(w, device=device).view(1, w).expand(h, w).reshape(-1)
    out = []
    for block in range(blocks):
        p = start + block * max(h, w)
        out.append(torch.stack((torch.full_like(hh, p), hh + p, ww + p)))
    return torch.cat(out, dim=1)


def _row_position_ids(
    ids: Tensor, video_token_id: int, grids: Iterator[Grid], layout: str, temporal_stride: float,
    per_group: bool = False,
) -> tuple[Tensor, int]:
    """[L] token ids of one unpadded sequence -> ([3, L] positions, next free position).

    per_group (Qwen3-VL): every run of video tokens is one temporal group; `grids` yields (1, h, w).
    """
    is_video = (ids == video_token_id).tolist()
    chunks: list[Tensor] = []
    next_pos = 0
    i, length = 0, len(is_video)
    while i < length:
        if is_video[i]:
            grid = next(grids, None)
            if grid is None:
                raise ValueError("more video placeholder spans than video grids")
            n = video_token_count(grid, layout)
            if i + n > length or not all(is_video[i : i + n]):
                raise ValueError(f"video span at {i} is shorter than the {n} tokens grid {grid} needs")
            if per_group:
                span = group_span_position_ids(grid, next_pos, layout, device=ids.device)
            else:
                span = video_span_position_ids(grid, next_pos, layout, temporal_stride, device=ids.device)
            next_pos = int(span.max()) + 1
            i += n
        else:
            j = i
            while j < length and not is_video[j]:
                j += 1
            span = torch.arange(next_pos, next_pos + j - i, device=ids.device).expand(3, -1)
            next_pos += j - i
            i = j
        chunks.append(span)
    if not chunks:
        return torch.zeros(3, 0, dtype=torch.long, device=ids.device), 0
    return torch.cat(chunks, dim=1), next_pos


def build_position_ids(
    input_ids: Tensor,
    video_token_id: int,
    grids: Sequence[Grid],
    layout: str,
    temporal_stride: float = 1.0,
    attention_mask: Tensor | None = None,
    per_group: bool = False,
) -> tuple[Tensor, Tensor]:
    """M-RoPE positions of a (padded) batch.

    input_ids: [B, L]; grids: merged (T, h, w) of every video in order of appearance across the
    batch; attention_mask: [B, L] with 0 on padding (padding may be on either side; it gets 0).
    per_group: Qwen3-VL's layout (one span per temporal group, see the module docstring).
    Returns position_ids [3, B, L] and next_position [B] (where the first generated token goes).
    """
    batch, length = input_ids.shape
    position_ids = torch.zeros(3, batch, length, dtype=torch.long, device=input_ids.device)
    next_position = torch.zeros(batch, dtype=torch.long, device=input_ids.device)
    if per_group:
        grids = [(1, h, w) for t, h, w in grids for _ in range(t)]
    grid_iter = iter(grids)
    for b in range(batch):
        keep = attention_mask[b].bool() if attention_mask is not None else slice(None)
        pos, nxt = _row_position_ids(
            input_ids[b][keep], video_token_id, grid_iter, layout, temporal_stride, per_group
        )
        position_ids[:, b, keep] = pos
        next_position[b] = nxt
    if next(grid_iter, None) is not None:
        raise ValueError("more video grids than video placeholder spans")
    return position_ids, next_position


def llm_grids(video_grid_thw: Tensor, spatial_merge_size: int) -> list[Grid]:
    """Patch grids [V, 3] -> merged LLM grids (T, h, w)."""
    m = spatial_merge_size
    return [(t, h // m, w // m) for t, h, w in video_grid_thw.tolist()]


def group_timestamps(num_groups: int, temporal_patch_size: int, video_fps: float) -> list[float]:
    """Qwen3-VL: seconds of each temporal group, the mean of its frames' times at `video_fps`."""
    return [(g * temporal_patch_size + (temporal_patch_size - 1) / 2) / video_fps for g in range(num_groups)]


def temporal_stride(geometry: VisionGeometry, video_fps: float) -> float:
    """M-RoPE temporal step between frame groups in the 2D layout (Qwen: tokens_per_second * s/group)."""
    return geometry.tokens_per_second * geometry.temporal_patch_size / video_fps
