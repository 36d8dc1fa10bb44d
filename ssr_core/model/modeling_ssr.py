"""SSR-2D / SSR-3D around transformers' Qwen2.5-VL or Qwen3-VL (paper section 3.1).

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

Qwen3-VL (the second base family, detected from config.json's model_type) is wrapped the same
way: its ViT uses 16-px patches, so VGGT gets each frame resized until its 14-px grid equals the
ViT's grid (`processing_ssr.preprocess_frames`); MLP_3D is a fresh copy of its merger; the 3D
branch adds to the ViT's last hidden state before merging, as above, while DeepStack's
multi-level ViT features are added to the decoder at the visual tokens only (they stay 2D).
Layout and positions: `position_ids.py`.

Temporal fusion choice: Qwen's ViT embeds two consecutive frames as one temporal patch, so
the VGGT tokens of those two frames are concatenated (not averaged) before MLP_trans; this
keeps both frames' geometry and lets MLP_trans learn the mix, as the ViT's Conv3d does.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from accelerate import init_empty_weights
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from transformers import (
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
)
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLPatchMerger
from transformers.models.qwen3_vl.configuration_qwen3_vl import Qwen3VLVisionConfig
from transformers.models.qwen3_vl.modeling_qwen3_vl import Qwen3VLVisionPatchMerger
from transformers.vision_utils import get_vision_window_index

from ssr_core.model.configuration_ssr import (
    DEFAULT_IMAGE_SIZE,
    QWEN2_5_VL,
    QWEN3_VL,
    SSR_CONFIG_NAME,
    BaseConfig,
    SSRConfig,
    VisionGeometry,
    model_family,
    text_config,
    vision_geometry,
)
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
BaseModel = Qwen2_5_VLForConditionalGeneration | Qwen3VLForConditionalGeneration
BASE_CLASSES: dict[str, type[BaseModel]] = {
    QWEN2_5_VL: Qwen2_5_VLForConditionalGeneration,
    QWEN3_VL: Qwen3VLForConditionalGeneration,
}
CONFIG_CLASSES: dict[str, type[BaseConfig]] = {QWEN2_5_VL: Qwen2_5_VLConfig, QWEN3_VL: Qwen3VLConfig}


@dataclass
class VideoFeatures:
    """What the LLM needs of the encoded videos.

    embeds: [sum(video_token_count), D], videos concatenated, span order.
    visual_mask: [sum(video_token_count)] bool, True on visual (ViT) tokens, False on spatial ones.
    deepstack: Qwen3-VL's multi-level ViT features, one [num_visual_tokens, D] per level, added to
        the first decoder layers' hidden states at the visual tokens only (they stay 2D); None for
        Qwen2.5-VL.
    """

    embeds: Tensor
    visual_mask: Tensor
    deepstack: list[Tensor] | None = None


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

    def __init__(self, vggt_embed_dim: int, geometry: VisionGeometry, base_config: BaseConfig) -> None:
        super().__init__()
        in_dim = 2 * vggt_embed_dim * geometry.temporal_patch_size  # frame+global halves, tps frames
        hidden = geometry.hidden_size
        self.mlp_trans = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        self.mlp_3d: nn.Module
        if geometry.family == QWEN3_VL:  # a fresh copy of that family's merger (the one DeepStack does not use)
            vision = base_config.vision_config
            if not isinstance(vision, Qwen3VLVisionConfig):
                raise TypeError("expected a Qwen3-VL vision config")
            self.mlp_3d = Qwen3VLVisionPatchMerger(config=vision, use_postshuffle_norm=False)
        else:
            self.mlp_3d = Qwen2_5_VLPatchMerger(
                dim=geometry.out_hidden_size, context_dim=hidden, spatial_merge_size=geometry.merge_size
            )

    def forward(self, vit_hidden: Tensor, vggt_tokens: Tensor) -> Tensor:
        """vit_hidden [N, C_vit], vggt_tokens [N, in_dim] (same order) -> spatial tokens [N/m^2, D]."""
        fused = vit_hidden + self.mlp_trans(vggt_tokens)  # eq. 3
        return self.mlp_3d(fused)


class SSRForConditionalGeneration(nn.Module):
    """Qwen2.5-VL or Qwen3-VL plus (for variant "3d") the VGGT spatial branch.

    `base` is an unmodified `Qwen2_5_VLForConditionalGeneration` or `Qwen3VLForConditionalGeneration`
    (the family comes from its config's model_type); `vggt` is any module with
    `spatial_features(images [V,S,3,H,W], layer) -> [V, S, h*w, 2*C]` (frozen, not saved here).
    """

    def __init__(
        self,
        base: BaseModel,
        ssr_config: SSRConfig,
        vggt: VGGTAggregator | None = None,
    ) -> None:
        super().__init__()
        self.base = base
        self.ssr_config = ssr_config
        self.geometry = vision_geometry(base.config)
        self.family = self.geometry.family
        if self.family == QWEN3_VL and ssr_config.insertion != "interleaved":
            raise ValueError("SSR on Qwen3-VL supports insertion 'interleaved' only (see position_ids.py)")
        self.spatial_branch: SSRSpatialBranch | None = None
        if ssr_config.variant == "3d":
            branch = SSRSpatialBranch(ssr_config.vggt_embed_dim, self.geometry, base.config)
            self.spatial_branch = branch.to(device=base.device, dtype=base.dtype)
        self.vggt = vggt

    @property
    def config(self) -> BaseConfig:
        return self.base.config

    @property
    def device(self) -> torch.device:
        return self.base.device

    @property
    def dtype(self) -> torch.dtype:
        return self.base.dtype

    # accelerate's FSDP preparation looks for these on the prepared module: it re-ties tied
    # embeddings (Qwen2.5-VL-3B) after moving the model to meta and groups them into one shard unit.
    def get_input_embeddings(self) -> nn.Module:
        return self.base.get_input_embeddings()

    def get_output_embeddings(self) -> nn.Module | None:
        return self.base.get_output_embeddings()

    def tie_weights(self, *args: Any, **kwargs: Any) -> None:
        self.base.tie_weights(*args, **kwargs)

    def llm_grids(self, video_grid_thw: Tensor) -> list[Grid]:
        return llm_grids(video_grid_thw, self.geometry.merge_size)

    def encode_video(
        self, pixel_values_videos: Tensor, video_grid_thw: Tensor, vggt_images: VGGTImages | None = None
    ) -> Tensor:
        """Embeddings for all video spans [sum(video_token_count), D], videos concatenated, span order.

        vggt_images: [V, S, 3, H, W] in [0, 1], or one [S_v, 3, H, W] per video (frame counts may differ).
        """
        return self.encode_video_features(pixel_values_videos, video_grid_thw, vggt_images).embeds

    def encode_video_features(
        self, pixel_values_videos: Tensor, video_grid_thw: Tensor, vggt_images: VGGTImages | None = None
    ) -> VideoFeatures:
        """`encode_video` plus which tokens are visual and (Qwen3-VL) the DeepStack features."""
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
        embeds = torch.cat([arrange_video_tokens(v, s, g, layout) for v, s, g in zip(visual, spatial, grids)])
        flags = [
            arrange_video_tokens(
                torch.ones(len(v), 1, dtype=torch.bool, device=v.device),
                None if s is None else torch.zeros(len(s), 1, dtype=torch.bool, device=v.device),
                g,
                layout,
            )
            for v, s, g in zip(visual, spatial, grids)
        ]
        deepstack = getattr(vit, "deepstack_features", None)
        return VideoFeatures(embeds, torch.cat(flags)[:, 0], list(deepstack) if deepstack else None)

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
        if self.family == QWEN3_VL:  # no window attention: the ViT keeps the processor's order
            window_index = torch.arange(vit_hidden.shape[0] // geo.merge_size**2, device=self.device)
        else:
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
        qwen3 = self.family == QWEN3_VL
        return build_position_ids(
            input_ids,
            self.config.video_token_id,
            grids,
            self.ssr_config.layout,
            0.0 if qwen3 else temporal_stride(self.geometry, self.ssr_config.video_fps),
            attention_mask=attention_mask,
            per_group=qwen3,
        )

    def language_forward(
        self,
        inputs_embeds: Tensor,
        position_ids: Tensor,
        attention_mask: Tensor | None = None,
        past_key_values: Any = None,
        use_cache: bool = False,
        input_ids: Tensor | None = None,
        video: VideoFeatures | None = None,
    ) -> Tensor:
        """Decoder hidden states [B, L, D]. For Qwen3-VL with `video`, its DeepStack features are
        added at the visual tokens of `input_ids` (never at spatial tokens), as the base model does."""
        kwargs: dict[str, Any] = {}
        if self.family == QWEN3_VL and video is not None and video.deepstack:
            if input_ids is None:
                raise ValueError("DeepStack needs input_ids to find the visual tokens")
            video_positions = input_ids == self.config.video_token_id
            visual_pos_masks = torch.zeros_like(video_positions)
            visual_pos_masks[video_positions] = video.visual_mask.to(input_ids.device)
            kwargs = {"visual_pos_masks": visual_pos_masks, "deepstack_visual_embeds": video.deepstack}
        return self.base.model.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            use_cache=use_cache,
            **kwargs,
        ).last_hidden_state

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
        video = None
        if pixel_values_videos is not None:
            if video_grid_thw is None:
                raise ValueError("pixel_values_videos needs video_grid_thw")
            video = self.encode_video_features(pixel_values_videos, video_grid_thw, vggt_images)
        inputs_embeds = self.embed_inputs(input_ids, None if video is None else video.embeds)
        if position_ids is None:
            if past_key_values is not None and past_key_values.get_seq_length() > 0:
                raise ValueError("pass position_ids explicitly when continuing from a cache")
            position_ids, _ = self.position_ids(input_ids, video_grid_thw, attention_mask)
        if self.family == QWEN3_VL:  # DeepStack needs the visual-token mask: run the decoder ourselves
            hidden = self.language_forward(
                inputs_embeds, position_ids, attention_mask, past_key_values, use_cache, input_ids, video
            )
            logits = self.base.lm_head(hidden[:, -logits_to_keep:] if logits_to_keep else hidden)
            loss = None
            if labels is not None:
                loss = self.base.loss_function(
                    logits=logits, labels=labels, vocab_size=text_config(self.config).vocab_size
                )
            return CausalLMOutputWithPast(loss=loss, logits=logits, past_key_values=past_key_values)
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
        read_weights: bool = True,
    ) -> SSRForConditionalGeneration:
        """Load an SSR checkpoint, or a plain local Qwen2.5-VL folder (then zero-shot SSR-2D).

        vggt: a VGGT module or weights path for SSR-3D; default `SSRConfig.vggt_path` (a relative
        one is relative to `directory`, so a checkpoint that carries its aggregator can be moved).
        Weights are read straight into `dtype` (transformers builds on the meta device and copies
        each memory-mapped safetensors tensor once), so host memory peaks near the weights' size
        in that dtype. Keys are checked strictly: a base checkpoint with missing or unexpected
        weights raises `ValueError` (transformers would initialise missing ones at random); the
        spatial branch file is loaded with `strict=True`.

        read_weights=False reads only the configs: the same modules with every parameter on the
        meta device (buffers real). FSDP's RAM-efficient loading builds this on every process but
        the first, which broadcasts the weights shard by shard (see training/train.py).
        """
        path = Path(directory)
        family = checkpoint_family(path)
        if is_ssr_checkpoint(path):
            ssr_config = SSRConfig.load(path)
        else:
            ssr_config = SSRConfig(variant="2d", zero_shot=True, image_size=DEFAULT_IMAGE_SIZE[family])
        if not read_weights:
            config = CONFIG_CLASSES[family].from_pretrained(path, local_files_only=True)
            with init_empty_weights(include_buffers=False):
                empty = BASE_CLASSES[family]._from_config(config, dtype=dtype)
            vggt_module = _resolve_vggt(vggt, ssr_config, dtype, read_weights=False)
            return cls(empty, ssr_config, vggt_module if ssr_config.variant == "3d" else None)
        loaded: Any = BASE_CLASSES[family].from_pretrained(
            path, local_files_only=True, dtype=dtype, output_loading_info=True
        )
        base: BaseModel = loaded[0]
        info: dict[str, Any] = loaded[1]
        # transformers only warns about missing keys and initialises them at random: refuse instead.
        problems = {kind: sorted(info[kind]) for kind in ("missing_keys", "unexpected_keys") if info[kind]}
        if problems:
            details = "; ".join(
                f"{kind.replace('_', ' ')}: {', '.join(keys[:10])}" for kind, keys in problems.items()
            )
            raise ValueError(f"{path}: the weights do not match the {family} config ({details})")
        vggt_module = _resolve_vggt(vggt, ssr_config, dtype, checkpoint_dir=path) if ssr_config.variant == "3d" else None
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
        read_weights: bool = True,
    ) -> SSRForConditionalGeneration:
        """Stage-2 initialisation: SSR-2D weights, fresh MLP_trans / MLP_3D, VGGT from `vggt`.

        A model passed in hands its base module over (it is shared, not copied).
        read_weights=False: meta parameters everywhere, as in `from_pretrained`.
        """
        if isinstance(path_or_model, SSRForConditionalGeneration):
            two_d = path_or_model
        else:
            two_d = cls.from_pretrained(path_or_model, dtype=dtype, read_weights=read_weights)
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
            zero_shot=False,  # built to be trained
        )
        return cls(two_d.base, ssr_config, _resolve_vggt(vggt, ssr_config, dtype, read_weights))


def checkpoint_family(directory: str | os.PathLike[str]) -> str:
    """The base family of a model folder, from its config.json's model_type."""
    import json

    config_file = Path(directory) / "config.json"
    if not config_file.is_file():
        raise ValueError(f"{directory} has no config.json: not a Qwen2.5-VL / Qwen3-VL model folder")
    return model_family(SimpleNamespace(model_type=json.loads(config_file.read_text()).get("model_type")))


def is_ssr_checkpoint(directory: str | os.PathLike[str]) -> bool:
    """True for a folder written by SSR (it has ssr_config.json); False for a plain base checkpoint."""
    return (Path(directory) / SSR_CONFIG_NAME).is_file()


def _resolve_vggt(
    vggt: str | os.PathLike[str] | VGGTAggregator | None,
    ssr_config: SSRConfig,
    dtype: torch.dtype | None = None,
    read_weights: bool = True,
    checkpoint_dir: Path | None = None,
) -> VGGTAggregator | None:
    """A VGGT module from a module, an explicit path, or the config's path (recorded in the config),
    in `dtype`; with read_weights=False an empty (meta) aggregator of the configured size.

    A relative `vggt_path` from the config is resolved against `checkpoint_dir` and stays
    relative in the config (a checkpoint folder that holds its aggregator is relocatable).
    """
    if isinstance(vggt, VGGTAggregator):
        return vggt
    if vggt is not None:
        ssr_config.vggt_path = str(vggt)
        path = Path(vggt)
    elif ssr_config.vggt_path is None:
        return None
    else:
        path = Path(ssr_config.vggt_path)
        if not path.is_absolute() and checkpoint_dir is not None:
            path = checkpoint_dir / path
    config = VGGTConfig(**ssr_config.vggt_config) if ssr_config.vggt_config else None
    if not read_weights:
        with init_empty_weights(include_buffers=False):
            empty = VGGTAggregator(config if config is not None else VGGTConfig())
        return empty.to(dtype=dtype).requires_grad_(False).eval()
    return load_vggt_aggregator(path, config, dtype=dtype)
