"""SSR-2D / SSR-3D around transformers' Qwen2.5-VL (paper section 3.1).

SSR-2D is the unmodified base model: ViT + merger give the visual tokens of a video.
SSR-3D adds a spatial branch fed with the same frames:

    frames [S,H,W,3] --ViT--> hidden [N, C_vit] (window order) --merger--> visual tokens [N/4, D]
                     --VGGT layer l--> [S, h*w, 2*C_g]
                        -> concat the 2 frames of each temporal patch   [T, h*w, 4*C_g]
                        -> reorder like the ViT tokens                  [N, 4*C_g]
                        -> MLP_trans                                    [N, C_vit]
                        -> + ViT hidden (eq. 3) -> MLP_3D (a fresh copy of the merger) -> spatial tokens [N/4, D]

with S = 2T frames, N = T*h*w patches (h, w = H/14, W/14: VGGT and the ViT share the 14-px grid)
and D the LLM width. Visual and spatial tokens are placed in the prompt's video span in the
layout chosen by `SSRConfig.insertion` with explicit M-RoPE positions (`position_ids.py`).

Temporal fusion choice: Qwen's ViT embeds two consecutive frames as one temporal patch, so
the VGGT tokens of those two frames are concatenated (not averaged) before MLP_trans; this
keeps both frames' geometry and lets MLP_trans learn the mix, as the ViT's Conv3d does.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLPatchMerger
from transformers.vision_utils import get_vision_window_index

from ssr_core.model.configuration_ssr import SSR_CONFIG_NAME, SSRConfig, VisionGeometry, vision_geometry
from ssr_core.model.position_ids import (
    Grid,
    arrange_video_tokens,
    build_position_ids,
    llm_grids,
    temporal_stride,
)
from ssr_core.model.vggt import VGGTAggregator, VGGTConfig, load_vggt_aggregator

SPATIAL_BRANCH_WEIGHTS = "ssr_3d_branch.safetensors"
VGGTImages = Tensor | Sequence[Tensor]  # [V, S, 3, H, W], or per video [S_v, 3, H, W]


def vggt_tokens_in_vit_order(
    features: Sequence[Tensor],
    video_grid_thw: Tensor,
    temporal_patch_size: int,
    merge_size: int,
    window_index: Tensor,
) -> Tensor:
    """VGGT patch tokens, per video [S, h*w, C] -> [N, tps*C], row k matching the ViT's k-th hidden state.

    The ViT holds its N = sum(T*h*w) patch tokens in window-attention order: processor order
    (t, h/m, w/m, m, m) regrouped by `window_index` over m x m merge units. VGGT tokens are
    row-major per frame; the `tps` frames of a temporal patch are concatenated channel-wise.
    """
    pieces = []
    for feats, (t, gh, gw) in zip(features, video_grid_thw.tolist()):
        s, hw, c = feats.shape
        if s != t * temporal_patch_size or hw != gh * gw:
            raise ValueError(f"VGGT features {tuple(feats.shape)} do not match the ViT grid {(t, gh, gw)}")
        x = feats.view(t, temporal_patch_size, gh, gw, c).permute(0, 2, 3, 1, 4)  # [T, gh, gw, tps, C]
        x = x.reshape(t, gh // merge_size, merge_size, gw // merge_size, merge_size, temporal_patch_size * c)
        pieces.append(x.permute(0, 1, 3, 2, 4, 5).reshape(t * gh * gw, temporal_patch_size * c))
    tokens = torch.cat(pieces)  # [N, tps*C] processor order
    units = tokens.view(-1, merge_size * merge_size, tokens.shape[-1])
    return units[window_index.to(tokens.device)].reshape(tokens.shape)


# --------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------


class SSRSpatialBranch(nn.Module):
    """MLP_trans (VGGT -> ViT width, eq. 2) and MLP_3D (merger-shaped projector, eq. 4)."""

    def __init__(self, vggt_embed_dim: int, geometry: VisionGeometry) -> None:
        super().__init__()
        in_dim = 2 * vggt_embed_dim * geometry.temporal_patch_size  # frame+global halves, tps frames
        hidden = geometry.hidden_size
        self.mlp_trans = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        self.mlp_3d = Qwen2_5_VLPatchMerger(
            dim=geometry.out_hidden_size, context_dim=hidden, spatial_merge_size=geometry.merge_size
        )

    def forward(self, vit_hidden: Tensor, vggt_tokens: Tensor) -> Tensor:
        """vit_hidden [N, C_vit], vggt_tokens [N, in_dim] (same order) -> spatial tokens [N/m^2, D]."""
        fused = vit_hidden + self.mlp_trans(vggt_tokens)  # eq. 3
        return self.mlp_3d(fused)


class SSRForConditionalGeneration(nn.Module):
    """Qwen2.5-VL plus (for variant "3d") the VGGT spatial branch.

    `base` is an unmodified `Qwen2_5_VLForConditionalGeneration`; `vggt` is any module with
    `spatial_features(images [V,S,3,H,W], layer) -> [V, S, h*w, 2*C]` (frozen, not saved here).
    """

    def __init__(
        self,
        base: Qwen2_5_VLForConditionalGeneration,
        ssr_config: SSRConfig,
        vggt: VGGTAggregator | None = None,
    ) -> None:
        super().__init__()
        self.base = base
        self.ssr_config = ssr_config
        self.geometry = vision_geometry(base.config)
        self.spatial_branch: SSRSpatialBranch | None = None
        if ssr_config.variant == "3d":
            branch = SSRSpatialBranch(ssr_config.vggt_embed_dim, self.geometry)
            self.spatial_branch = branch.to(device=base.device, dtype=base.dtype)
        self.vggt = vggt

    @property
    def config(self) -> Qwen2_5_VLConfig:
        return self.base.config

    @property
    def device(self) -> torch.device:
        return self.base.device

    @property
    def dtype(self) -> torch.dtype:
        return self.base.dtype

    def llm_grids(self, video_grid_thw: Tensor) -> list[Grid]:
        return llm_grids(video_grid_thw, self.geometry.merge_size)

    def encode_video(
        self, pixel_values_videos: Tensor, video_grid_thw: Tensor, vggt_images: VGGTImages | None = None
    ) -> Tensor:
        """Embeddings for all video spans [sum(video_token_count), D], videos concatenated, span order.

        vggt_images: [V, S, 3, H, W] in [0, 1], or one [S_v, 3, H, W] per video (frame counts may differ).
        """
        visual_model = self.base.model.visual
        vit = visual_model(
            pixel_values_videos.to(device=self.device, dtype=visual_model.dtype), grid_thw=video_grid_thw
        )
        grids = self.llm_grids(video_grid_thw)
        sizes = [t * h * w for t, h, w in grids]
        visual = vit.pooler_output.split(sizes)  # merged tokens, (t, i, j) raster order per video
        if self.spatial_branch is None:
            spatial: list[Tensor | None] = [None] * len(sizes)
        else:
            spatial = list(
                self.spatial_tokens(vit.last_hidden_state, video_grid_thw, vggt_images).split(sizes)
            )
        layout = self.ssr_config.layout
        return torch.cat([arrange_video_tokens(v, s, g, layout) for v, s, g in zip(visual, spatial, grids)])

    def spatial_tokens(
        self, vit_hidden: Tensor, video_grid_thw: Tensor, vggt_images: VGGTImages | None
    ) -> Tensor:
        """vit_hidden [N, C_vit] (the ViT's window order) -> spatial tokens [N/m^2, D] in raster order."""
        if self.spatial_branch is None:
            raise RuntimeError("spatial tokens need the 3D variant")
        if self.vggt is None:
            raise RuntimeError("SSR-3D needs VGGT: pass vggt=<path or module> or set SSRConfig.vggt_path")
        if vggt_images is None:
            raise ValueError("SSR-3D needs vggt_images ([V, S, 3, H, W] in [0, 1]) next to the pixel values")
        geo = self.geometry
        videos = [v.to(self.device) for v in vggt_images]  # [S_v, 3, H, W] each
        layer = self.ssr_config.spatial_layer
        if len({v.shape for v in videos}) == 1:  # one VGGT call; its global attention stays within a video
            features = list(self.vggt.spatial_features(torch.stack(videos), layer=layer))
        else:
            features = [self.vggt.spatial_features(v[None], layer=layer)[0] for v in videos]
        window_index, _ = get_vision_window_index(
            video_grid_thw, geo.merge_size, geo.window_size, geo.patch_size
        )
        window_index = window_index.to(self.device)
        aligned = vggt_tokens_in_vit_order(
            features, video_grid_thw, geo.temporal_patch_size, geo.merge_size, window_index
        )
        merged = self.spatial_branch(vit_hidden, aligned.to(vit_hidden.dtype))  # window order
        return merged[torch.argsort(window_index)]

    def embed_inputs(self, input_ids: Tensor, video_embeds: Tensor | None = None) -> Tensor:
        """Token embeddings [B, L, D] with the video placeholders replaced by `video_embeds`."""
        embeds = self.base.get_input_embeddings()(input_ids)
        mask = input_ids == self.config.video_token_id
        n_placeholders = int(mask.sum())
        n_embeds = 0 if video_embeds is None else video_embeds.shape[0]
        if n_placeholders != n_embeds:
            raise ValueError(f"{n_placeholders} video placeholder tokens but {n_embeds} video embeddings")
        if video_embeds is None:
            return embeds
        return embeds.masked_scatter(mask.unsqueeze(-1), video_embeds.to(embeds.dtype))

    def position_ids(
        self, input_ids: Tensor, video_grid_thw: Tensor | None, attention_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """M-RoPE positions [3, B, L] and next position [B] for prompts built for this model."""
        grids = [] if video_grid_thw is None else self.llm_grids(video_grid_thw)
        return build_position_ids(
            input_ids,
            self.config.video_token_id,
            grids,
            self.ssr_config.layout,
            temporal_stride(self.geometry, self.ssr_config.video_fps),
            attention_mask=attention_mask,
        )

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        pixel_values_videos: Tensor | None = None,
        video_grid_thw: Tensor | None = None,
        vggt_images: VGGTImages | None = None,
        labels: Tensor | None = None,
        past_key_values=None,
        use_cache: bool = False,
        logits_to_keep: int = 0,
    ) -> CausalLMOutputWithPast:
        """Full forward (training / reference). Loss as the base: labels -100 are ignored, shift inside."""
        video_embeds = None
        if pixel_values_videos is not None:
            if video_grid_thw is None:
                raise ValueError("pixel_values_videos needs video_grid_thw")
            video_embeds = self.encode_video(pixel_values_videos, video_grid_thw, vggt_images)
        inputs_embeds = self.embed_inputs(input_ids, video_embeds)
        if position_ids is None:
            if past_key_values is not None and past_key_values.get_seq_length() > 0:
                raise ValueError("pass position_ids explicitly when continuing from a cache")
            position_ids, _ = self.position_ids(input_ids, video_grid_thw, attention_mask)
        return self.base(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            labels=labels,
            past_key_values=past_key_values,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
        )

    # -- checkpoints -----------------------------------------------------------------------

    def save_pretrained(self, directory: str | os.PathLike[str]) -> None:
        """Folder = base in transformers format + ssr_config.json (+ ssr_3d_branch.safetensors for 3D)."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        self.base.save_pretrained(path)
        self.ssr_config.save(path)
        branch_file = path / SPATIAL_BRANCH_WEIGHTS
        if self.spatial_branch is None:
            branch_file.unlink(missing_ok=True)
        else:
            state = {k: v.detach().cpu().contiguous() for k, v in self.spatial_branch.state_dict().items()}
            save_file(state, str(branch_file))

    @classmethod
    def from_pretrained(
        cls,
        directory: str | os.PathLike[str],
        vggt: str | os.PathLike[str] | VGGTAggregator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> SSRForConditionalGeneration:
        """Load an SSR checkpoint, or a plain local Qwen2.5-VL folder (then SSR-2D).

        vggt: a VGGT module or weights path for SSR-3D; default `SSRConfig.vggt_path`.
        Keys are checked strictly: a base checkpoint with missing or unexpected weights raises
        `ValueError` (transformers would initialise missing ones at random); the spatial branch
        file is loaded with `strict=True`.
        """
        path = Path(directory)
        ssr_config = SSRConfig.load(path) if (path / SSR_CONFIG_NAME).is_file() else SSRConfig(variant="2d")
        loaded: Any = Qwen2_5_VLForConditionalGeneration.from_pretrained(
            path, local_files_only=True, dtype=dtype, output_loading_info=True
        )
        base: Qwen2_5_VLForConditionalGeneration = loaded[0]
        info: dict[str, Any] = loaded[1]
        # transformers only warns about missing keys and initialises them at random: refuse instead.
        problems = {kind: sorted(info[kind]) for kind in ("missing_keys", "unexpected_keys") if info[kind]}
        if problems:
            details = "; ".join(
                f"{kind.replace('_', ' ')}: {', '.join(keys[:10])}" for kind, keys in problems.items()
            )
            raise ValueError(f"{path}: the weights do not match the Qwen2.5-VL config ({details})")
        vggt_module = _resolve_vggt(vggt, ssr_config) if ssr_config.variant == "3d" else None
        model = cls(base, ssr_config, vggt_module)
        if model.spatial_branch is not None:
            model.spatial_branch.load_state_dict(load_file(str(path / SPATIAL_BRANCH_WEIGHTS)), strict=True)
        return model.to(device) if device is not None else model

    @classmethod
    def from_ssr2d(
        cls,
        path_or_model: str | os.PathLike[str] | SSRForConditionalGeneration,
        vggt: str | os.PathLike[str] | VGGTAggregator | None,
        *,
        spatial_layer: int = 22,
        insertion: str = "interleaved",
        vggt_config: dict | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> SSRForConditionalGeneration:
        """Stage-2 initialisation: SSR-2D weights, fresh MLP_trans / MLP_3D, VGGT from `vggt`.

        A model passed in hands its base module over (it is shared, not copied).
        """
        if isinstance(path_or_model, SSRForConditionalGeneration):
            two_d = path_or_model
        else:
            two_d = cls.from_pretrained(path_or_model, dtype=dtype)
        if two_d.ssr_config.variant != "2d":
            raise ValueError("from_ssr2d expects an SSR-2D model or checkpoint")
        ssr_config = replace(
            two_d.ssr_config,
            variant="3d",
            spatial_layer=spatial_layer,
            insertion=insertion,
            vggt_config=vggt_config,
            vggt_path=None,
            prompt_format_version=SSRConfig().prompt_format_version,  # stage 2 trains on today's prompts
        )
        return cls(two_d.base, ssr_config, _resolve_vggt(vggt, ssr_config))


def _resolve_vggt(
    vggt: str | os.PathLike[str] | VGGTAggregator | None, ssr_config: SSRConfig
) -> VGGTAggregator | None:
    """A VGGT module from a module, an explicit path, or the config's path (recorded in the config)."""
    if isinstance(vggt, VGGTAggregator):
        return vggt
    path = vggt if vggt is not None else ssr_config.vggt_path
    if path is None:
        return None
    ssr_config.vggt_path = str(path)
    config = VGGTConfig(**ssr_config.vggt_config) if ssr_config.vggt_config else None
    return load_vggt_aggregator(path, config)
