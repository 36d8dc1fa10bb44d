"""VGGT aggregator: an independent, checkpoint-compatible implementation.

SSR-3D reads the patch tokens of one intermediate layer of the VGGT-1B aggregator (the
alternating frame/global attention trunk; the camera/depth/point/track heads are not used).
This module re-implements that trunk from the architecture facts recorded with the test
fixtures (``tests/fixtures/vggt/README.md``), with module and parameter names equal
to the official state_dict keys without the ``aggregator.`` prefix, so that the released
``model.pt`` / ``model.safetensors`` loads strictly.

Layout of the computation (C = embed_dim, h = H/14, w = W/14, P = 5 + h*w):

    images [B,S,3,H,W] in [0,1]
      -> ImageNet normalisation                       [B*S,3,H,W]
      -> DINOv2 ViT-L/14 + 4 registers (patch_embed)  [B*S,h*w,C]   (final LayerNorm, patch tokens only)
      -> prepend camera token + 4 register tokens     [B*S,P,C]     (slot 0: first frame, slot 1: others)
      -> for i in 0..depth-1: frame block i (per frame), global block i (all frames of a sample)
      -> layer i output = cat(frame_i out, global_i out)  [B,S,P,2C]
"""

from __future__ import annotations

import contextlib
import os
import pickle
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssr_core.errors import InputError, weight_file_problem

__all__ = [
    "DEFAULT_SPATIAL_LAYER",
    "VGGTCheckpointError",
    "VGGTConfig",
    "VGGTAggregator",
    "extract_aggregator_state_dict",
    "load_vggt_aggregator",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DINO_LN_EPS = 1e-6  # DINOv2 blocks and final norm: partial(nn.LayerNorm, eps=1e-6)
AGG_LN_EPS = 1e-5  # aggregator blocks and q/k norms: nn.LayerNorm default
DINO_LAYERSCALE_INIT = 1.0  # what the official Aggregator passes to DINOv2 (random init only)
AGG_LAYERSCALE_INIT = 0.01

#: 0-based aggregator layer whose patch tokens SSR reads; see ``VGGTAggregator.spatial_features``.
DEFAULT_SPATIAL_LAYER = 22

AGGREGATOR_PREFIX = "aggregator."
HEAD_PREFIXES = ("camera_head.", "point_head.", "depth_head.", "track_head.")
_DINO_NAMES = ("dinov2_vits14_reg", "dinov2_vitb14_reg", "dinov2_vitl14_reg")


@dataclass
class VGGTConfig:
    """Aggregator hyper-parameters. Defaults are the official VGGT-1B aggregator.

    ``patch_embed`` is ``"conv"`` (plain 14x14 conv) or a DINOv2 name; for a DINOv2 name the
    ViT size comes from the ``dino_*`` fields (the name only records the official choice), so
    the test fixtures can use a tiny DINOv2 under the official name. The official code builds
    the DINOv2 with ``embed_dim`` channels, so ``dino_embed_dim`` must equal ``embed_dim``.
    Fixed as in the released model: aa_order (frame, global), aa_block_size 1, all biases on.
    """

    img_size: int = 518
    patch_size: int = 14
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    num_register_tokens: int = 4
    patch_embed: str = "dinov2_vitl14_reg"
    dino_embed_dim: int = 1024
    dino_depth: int = 24
    dino_num_heads: int = 16
    rope_freq: float = 100.0
    qk_norm: bool = True

    def __post_init__(self) -> None:
        if self.patch_embed != "conv" and self.patch_embed not in _DINO_NAMES:
            raise ValueError(
                f"patch_embed must be 'conv' or one of {_DINO_NAMES} (the SwiGLU ViT-g variant is not "
                f"supported), got {self.patch_embed!r}"
            )
        if self.uses_dino and self.dino_embed_dim != self.embed_dim:
            raise ValueError(f"dino_embed_dim ({self.dino_embed_dim}) must equal embed_dim ({self.embed_dim})")
        if self.embed_dim % self.num_heads or (self.embed_dim // self.num_heads) % 4:
            raise ValueError("embed_dim / num_heads must be an integer divisible by 4 (2-D RoPE halves)")
        if self.img_size % self.patch_size:
            raise ValueError("img_size must be a multiple of patch_size")

    @property
    def uses_dino(self) -> bool:
        return self.patch_embed != "conv"

    @property
    def patch_start_idx(self) -> int:
        """Index of the first patch token: camera token + register tokens come first."""
        return 1 + self.num_register_tokens

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads


class VGGTCheckpointError(InputError):
    """The checkpoint is unreadable, refused (not plain tensors), holds non-finite or non-real
    values, or does not hold exactly the aggregator parameters the config asks for."""


# --------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------


class PatchEmbed(nn.Module):
    """Non-overlapping patchifier: [N,3,H,W] -> [N, (H/p)*(W/p), C], patches row-major."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        _, _, H, W = x.shape
        if H % self.patch_size or W % self.patch_size:
            raise ValueError(f"image size {H}x{W} is not a multiple of the patch size {self.patch_size}")
        x = self.proj(x)  # [N, C, h, w]
        return x.flatten(2).transpose(1, 2)  # [N, h*w, C]


class LayerScale(nn.Module):
    """Per-channel residual-branch scale (``gamma``), as in DINOv2/CaiT."""

    def __init__(self, dim: int, init_values: float) -> None:
        super().__init__()
        self.init_values = init_values
        self.gamma = nn.Parameter(torch.full((dim,), init_values))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


class Mlp(nn.Module):
    """fc1 -> exact (erf) GELU -> fc2."""

    def __init__(self, dim: int, hidden_dim: int, bias: bool = True) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim, bias=bias)
        self.act = nn.GELU()  # approximate="none": tanh GELU is off by ~1e-4 on the fixtures
        self.fc2 = nn.Linear(hidden_dim, dim, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


def rope_2d_tables(positions: Tensor, head_dim: int, base: float) -> tuple[Tensor, Tensor]:
    """cos/sin tables [N, head_dim] (float32) for 2-D RoPE at integer (row, col) positions [N, 2].

    The first half of a head is rotated by the row, the second half by the column; inside a
    half of size D there are D/2 frequencies base^(-2j/D) laid out as concatenated halves
    (rotate-half convention, not interleaved). Angles are formed in float32 like the official
    code (position * inv_freq, one rounding).
    """
    half = head_dim // 2
    inv_freq = 1.0 / (base ** (torch.arange(0, half, 2, device=positions.device).float() / half))  # [half/2]
    tables = []
    for axis in (0, 1):
        angles = positions[:, axis].float()[:, None] * inv_freq[None, :]  # [N, half/2]
        tables.append(torch.cat((angles, angles), dim=-1))  # [N, half]
    angles = torch.cat(tables, dim=-1)  # [N, head_dim]: row half | column half
    return angles.cos(), angles.sin()


def apply_rope_2d(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate x [..., N, head_dim] with tables [N, head_dim]; rotate-half inside each half."""
    x1, x2, x3, x4 = x.chunk(4, dim=-1)  # row half = (x1, x2), column half = (x3, x4)
    rotated = torch.cat((-x2, x1, -x4, x3), dim=-1)
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)


class Attention(nn.Module):
    """Multi-head self-attention with optional per-head q/k LayerNorm and 2-D RoPE.

    qkv's 3*C outputs are ordered [q | k | v], each head-major; softmax scale 1/sqrt(head_dim).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        qk_norm: bool = False,
        norm_eps: float = AGG_LN_EPS,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.q_norm: nn.Module = nn.LayerNorm(self.head_dim, eps=norm_eps) if qk_norm else nn.Identity()
        self.k_norm: nn.Module = nn.LayerNorm(self.head_dim, eps=norm_eps) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim, bias=proj_bias)

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor] | None = None) -> Tensor:
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each [B, heads, N, head_dim]
        q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            q = apply_rope_2d(q, *rope)
            k = apply_rope_2d(k, *rope)
        if q.dtype != v.dtype:  # autocast: LayerNorm returns float32 while v is half precision
            q, k = q.to(v.dtype), k.to(v.dtype)
        x = F.scaled_dot_product_attention(q, k, v)  # [B, heads, N, head_dim]
        x = x.transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


class Block(nn.Module):
    """Pre-norm transformer block: x + ls1(attn(norm1 x)), then + ls2(mlp(norm2 x))."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float,
        qk_norm: bool,
        norm_eps: float,
        init_values: float,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qk_norm=qk_norm, norm_eps=norm_eps)
        self.ls1 = LayerScale(dim, init_values)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim, init_values)

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor] | None = None) -> Tensor:
        x = x + self.ls1(self.attn(self.norm1(x), rope))
        return x + self.ls2(self.mlp(self.norm2(x)))


class DinoVisionTransformer(nn.Module):
    """DINOv2 ViT/14 with register tokens, used as VGGT's patch embedder (no RoPE, no qk-norm).

    Parameter names follow the official DINOv2 module (``cls_token``, ``pos_embed``,
    ``register_tokens``, ``mask_token``, ``patch_embed.proj``, ``blocks.N``, ``norm``).
    ``mask_token`` is unused at inference but is part of the checkpoint.
    """

    def __init__(
        self,
        img_size: int,
        patch_size: int,
        embed_dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float,
        num_register_tokens: int,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.num_register_tokens = num_register_tokens
        self.grid = img_size // patch_size  # pos_embed is stored for a grid x grid layout
        # Registration order = official state_dict order.
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid * self.grid, embed_dim))
        self.register_tokens = nn.Parameter(torch.zeros(1, num_register_tokens, embed_dim))
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim))
        self.patch_embed = PatchEmbed(patch_size, 3, embed_dim)
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, qk_norm=False, norm_eps=DINO_LN_EPS,
                  init_values=DINO_LAYERSCALE_INIT)
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=DINO_LN_EPS)

    def interpolate_pos_encoding(self, h: int, w: int) -> Tensor:
        """Position embedding for an h x w patch grid: [1, 1 + h*w, C], float32.

        The stored grid x grid patch part is resized with separable antialiased bicubic
        (PIL-style, a=-0.5) to exactly (h, w) in float32, as DINOv2 does with
        interpolate_antialias=True and interpolate_offset=0 (an explicit output size, no
        scale factor). The cls entry is kept; the stored grid is returned unchanged.
        """
        pos = self.pos_embed.float()
        if (h, w) == (self.grid, self.grid):
            return pos
        cls_pos, patch_pos = pos[:, :1], pos[:, 1:]
        C = pos.shape[-1]
        patch_pos = patch_pos.reshape(1, self.grid, self.grid, C).permute(0, 3, 1, 2)  # [1, C, g, g]
        patch_pos = F.interpolate(patch_pos, size=(h, w), mode="bicubic", antialias=True)  # [1, C, h, w]
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, h * w, C)
        return torch.cat((cls_pos, patch_pos), dim=1)

    def prepare_tokens(self, x: Tensor) -> Tensor:
        """[N,3,H,W] normalised images -> tokens entering block 0: [N, 1 + R + h*w, C]."""
        N, _, H, W = x.shape
        tokens = self.patch_embed(x)  # [N, h*w, C]
        tokens = torch.cat((self.cls_token.expand(N, -1, -1), tokens), dim=1)  # [N, 1+h*w, C]
        pos = self.interpolate_pos_encoding(H // self.patch_size, W // self.patch_size)
        tokens = tokens + pos.to(tokens.dtype)
        # Registers go after cls and get no position embedding.
        return torch.cat((tokens[:, :1], self.register_tokens.expand(N, -1, -1), tokens[:, 1:]), dim=1)

    def forward(self, x: Tensor) -> Tensor:
        """[N,3,H,W] -> final-LayerNorm patch tokens [N, h*w, C] (cls and registers dropped)."""
        tokens = self.prepare_tokens(x)
        for block in self.blocks:
            tokens = block(tokens)
        tokens = self.norm(tokens)
        return tokens[:, 1 + self.num_register_tokens :]


# --------------------------------------------------------------------------------------
# Aggregator
# --------------------------------------------------------------------------------------


class VGGTAggregator(nn.Module):
    """VGGT's alternating-attention aggregator (state_dict keys = official keys minus ``aggregator.``).

    Per frame the token sequence is [camera, R registers, h*w patches] (``patch_start_idx`` =
    1 + R = 5). Camera/register parameters have two slots: slot 0 for the first frame of each
    sequence, slot 1 for all other frames. Frame block i attends within each frame, global
    block i over all S*P tokens of a sample; both share the per-frame RoPE positions
    (patch (r, c) -> (r+1, c+1), special tokens (0, 0)), so frames are told apart only by the
    camera/register slot. Layer i's output is cat(frame_i out, global_i out) on channels.
    """

    def __init__(self, config: VGGTConfig | None = None) -> None:
        super().__init__()
        self.config = config = config if config is not None else VGGTConfig()
        C, R = config.embed_dim, config.num_register_tokens
        self.patch_size = config.patch_size
        self.patch_start_idx = config.patch_start_idx
        self.camera_token = nn.Parameter(torch.zeros(1, 2, 1, C))  # [1, slot, 1, C]
        self.register_token = nn.Parameter(torch.zeros(1, 2, R, C))  # [1, slot, R, C]
        self.patch_embed: nn.Module
        if config.uses_dino:
            self.patch_embed = DinoVisionTransformer(
                config.img_size, config.patch_size, config.dino_embed_dim, config.dino_depth,
                config.dino_num_heads, config.mlp_ratio, R,
            )
        else:
            self.patch_embed = PatchEmbed(config.patch_size, 3, C)

        def make_block() -> Block:
            return Block(C, config.num_heads, config.mlp_ratio, config.qk_norm, AGG_LN_EPS, AGG_LAYERSCALE_INIT)

        self.frame_blocks = nn.ModuleList(make_block() for _ in range(config.depth))
        self.global_blocks = nn.ModuleList(make_block() for _ in range(config.depth))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Random init in the spirit of the official one (random-weight benchmarks; also after ``to_empty``)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.LayerNorm, nn.Conv2d)):
                m.reset_parameters()
            elif isinstance(m, LayerScale):
                m.gamma.fill_(m.init_values)
        nn.init.normal_(self.camera_token, std=1e-6)
        nn.init.normal_(self.register_token, std=1e-6)
        if isinstance(self.patch_embed, DinoVisionTransformer):
            nn.init.trunc_normal_(self.patch_embed.pos_embed, std=0.02)
            nn.init.normal_(self.patch_embed.cls_token, std=1e-6)
            nn.init.normal_(self.patch_embed.register_tokens, std=1e-6)
            nn.init.zeros_(self.patch_embed.mask_token)

    # -- pieces of the forward pass (public so the parity tests can check intermediates) --

    def normalize(self, images: Tensor) -> Tensor:
        """[B,S,3,H,W] in [0,1] -> ImageNet-normalised [B*S,3,H,W]."""
        B, S, C_in, H, W = images.shape
        mean = torch.tensor(IMAGENET_MEAN, device=images.device, dtype=images.dtype).view(1, 1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=images.device, dtype=images.dtype).view(1, 1, 3, 1, 1)
        return ((images - mean) / std).view(B * S, C_in, H, W)

    def positions(self, h: int, w: int, device: torch.device | None = None) -> Tensor:
        """RoPE (row, col) positions of one frame's tokens: [P, 2] int64, specials at (0, 0)."""
        rows = torch.arange(1, h + 1, device=device).repeat_interleave(w)
        cols = torch.arange(1, w + 1, device=device).repeat(h)
        special = torch.zeros(self.patch_start_idx, 2, dtype=torch.long, device=device)
        return torch.cat((special, torch.stack((rows, cols), dim=-1)), dim=0)

    def _special_tokens(self, param: Tensor, B: int, S: int) -> Tensor:
        """[1, 2, n, C] -> [B*S, n, C]: slot 0 for frame 0 of each sequence, slot 1 for the rest."""
        first = param[:, :1].expand(B, 1, *param.shape[2:])
        others = param[:, 1:].expand(B, S - 1, *param.shape[2:])
        return torch.cat((first, others), dim=1).reshape(B * S, *param.shape[2:])

    def prepare_tokens(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """images [B,S,3,H,W] -> (tokens entering frame block 0 [B*S, P, C], positions [P, 2])."""
        B, S, _, H, W = images.shape
        if H % self.patch_size or W % self.patch_size:
            raise ValueError(f"image size {H}x{W} is not a multiple of the patch size {self.patch_size}")
        # Normalise in the input precision, then feed the weights' dtype (a no-op for float32
        # weights, which under autocast stay float32 and let autocast pick the compute type).
        normalized = self.normalize(images).to(self.camera_token.dtype)
        patch_tokens = self.patch_embed(normalized)  # [B*S, h*w, C]
        tokens = torch.cat(
            (
                self._special_tokens(self.camera_token, B, S),  # [B*S, 1, C]
                self._special_tokens(self.register_token, B, S),  # [B*S, R, C]
                patch_tokens,
            ),
            dim=1,
        )
        pos = self.positions(H // self.patch_size, W // self.patch_size, device=images.device)
        return tokens, pos

    def _layer_index(self, layer: int | None) -> int:
        depth = self.config.depth
        if layer is None:
            return depth - 1
        index = layer + depth if layer < 0 else layer
        if not 0 <= index < depth:
            raise ValueError(f"layer {layer} out of range for an aggregator of depth {depth}")
        return index

    def _run(self, images: Tensor, last_layer: int, keep: set[int]) -> dict[int, Tensor]:
        """Run frame/global blocks 0..last_layer; return {i: [B,S,P,2C]} for i in keep."""
        if images.dim() == 4:  # [S,3,H,W], as the official model accepts
            images = images.unsqueeze(0)
        if images.dim() != 5 or images.shape[2] != 3:
            raise ValueError(f"expected images [B,S,3,H,W], got {tuple(images.shape)}")
        B, S = images.shape[:2]
        tokens, pos = self.prepare_tokens(images)  # [B*S, P, C], [P, 2]
        P, C = tokens.shape[1:]
        cos, sin = rope_2d_tables(pos, self.config.head_dim, self.config.rope_freq)  # [P, hd] each
        frame_rope = (cos, sin)
        global_rope = (cos.repeat(S, 1), sin.repeat(S, 1))  # [S*P, hd]: no frame index in positions
        outputs: dict[int, Tensor] = {}
        for i in range(last_layer + 1):
            tokens = self.frame_blocks[i](tokens.reshape(B * S, P, C), frame_rope)  # [B*S, P, C]
            frame_out = tokens
            tokens = self.global_blocks[i](tokens.reshape(B, S * P, C), global_rope)  # [B, S*P, C]
            if i in keep:
                outputs[i] = torch.cat((frame_out.reshape(B, S, P, C), tokens.reshape(B, S, P, C)), dim=-1)
        return outputs

    def forward(self, images: Tensor, last_layer: int | None = None) -> tuple[list[Tensor], int]:
        """images [B,S,3,H,W] in [0,1] -> ([layer_0 .. layer_last] each [B,S,P,2C], patch_start_idx).

        ``last_layer`` (default: the last block; negative values count from the end) stops the
        computation early; later blocks are not run.
        """
        last = self._layer_index(last_layer)
        outputs = self._run(images, last, keep=set(range(last + 1)))
        return [outputs[i] for i in range(last + 1)], self.patch_start_idx

    def spatial_features(
        self,
        images: Tensor,
        layer: int = DEFAULT_SPATIAL_LAYER,
        compute_dtype: torch.dtype | None = None,
    ) -> Tensor:
        """Patch tokens of one aggregator layer: [B, S, h*w, 2*embed_dim], without gradients.

        Only frame/global blocks 0..layer run, and only that layer's output is kept.

        Which layer: the SSR paper takes VGGT features from "the 23rd layer". Counting blocks
        from 1 that is 0-based index 22 (the second-to-last of 24); read as a 0-based index it
        would be 23, the last layer (the one VGGT's camera head reads). We default to 22, which
        is also what the peer methods VG-LLM and Spa3R use (they read ``outputs[-2]``); pass
        ``layer=23`` (or ``-1``) for the last layer. Negative indices count from the end.

        Precision: float32 on CPU. On an accelerator with float32 weights the blocks run under
        ``torch.autocast`` in ``compute_dtype`` (default bfloat16, or float16 on CUDA devices
        without bf16 support); if the weights were cast to a half type it runs in that type.
        The positional-embedding resize always runs in float32. Output dtype is whatever the
        residual stream ends in (float32 under autocast).
        """
        index = self._layer_index(layer)
        device = self.camera_token.device
        images = images.to(device=device, dtype=torch.float32)
        with torch.no_grad(), self._precision_context(device, compute_dtype):
            out = self._run(images, index, keep={index})[index]
        return out[:, :, self.patch_start_idx :]

    def _precision_context(
        self, device: torch.device, compute_dtype: torch.dtype | None
    ) -> contextlib.AbstractContextManager[object]:
        if device.type == "cpu" or self.camera_token.dtype != torch.float32:
            return contextlib.nullcontext()
        if compute_dtype is None:
            compute_dtype = torch.bfloat16
            if device.type == "cuda" and not torch.cuda.is_bf16_supported():
                compute_dtype = torch.float16
        if compute_dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=compute_dtype)


# --------------------------------------------------------------------------------------
# Checkpoint loading
# --------------------------------------------------------------------------------------


def _format_list(items: list[str], limit: int = 20) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... and {len(items) - limit} more" if len(items) > limit else "")


def extract_aggregator_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Aggregator entries of a checkpoint, keys without ``aggregator.``.

    A full VGGT checkpoint is recognised by its ``aggregator.`` keys; its head keys
    (camera/point/depth/track) are dropped and any other key is kept (and then reported as
    unexpected). A checkpoint without ``aggregator.`` keys is taken as a bare aggregator one.
    """
    if not any(k.startswith(AGGREGATOR_PREFIX) for k in state_dict):
        return dict(state_dict)
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if key.startswith(AGGREGATOR_PREFIX):
            out[key[len(AGGREGATOR_PREFIX) :]] = value
        elif not key.startswith(HEAD_PREFIXES):
            out[key] = value  # not aggregator, not a known head: unexpected
    return out


def _resolve_checkpoint_file(path: Path) -> Path:
    if path.is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"no VGGT checkpoint at {path}")
    for name in ("model.safetensors", "model.pt"):
        if (path / name).is_file():
            return path / name
    candidates = sorted(p for p in path.iterdir() if p.suffix in (".safetensors", ".pt", ".pth", ".bin"))
    if len(candidates) != 1:
        raise FileNotFoundError(
            f"expected model.safetensors, model.pt or a single checkpoint file in {path}, "
            f"found {[p.name for p in candidates]}"
        )
    return candidates[0]


# What torch.load / safetensors raise on a truncated, corrupt or malicious file.
_READ_ERRORS: tuple[type[BaseException], ...] = (
    pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, KeyError, TypeError, AttributeError, IndexError,
)


def _read_checkpoint(file: Path, dtype: torch.dtype | None = None) -> dict[str, Tensor]:
    """Every tensor of `file`; `VGGTCheckpointError` naming the file for anything unreadable or refused
    (never torch's advice to retry with weights_only=False, which would run the file's code).

    Floating tensors come back in `dtype`, converted one at a time (safetensors: as each is read;
    a memory-mapped model.pt: after the checks), so no float32 copy of the whole file is held."""
    from safetensors import SafetensorError

    errors: tuple[type[BaseException], ...] = (*_READ_ERRORS, SafetensorError)
    try:
        obj = _load_file(file, dtype)
    except errors as err:
        raise VGGTCheckpointError(f"{file}: {weight_file_problem(err)}") from None
    if isinstance(obj, Mapping) and not any(isinstance(v, Tensor) for v in obj.values()):
        for wrapper in ("model", "state_dict"):
            if isinstance(obj.get(wrapper), Mapping):
                obj = obj[wrapper]
                break
    if not isinstance(obj, Mapping):
        raise VGGTCheckpointError(f"{file} does not contain a state_dict (got {type(obj).__name__})")
    bad = [str(k) for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        raise VGGTCheckpointError(f"{file}: state_dict entries that are not tensors: {_format_list(bad)}")
    unusable = [k for k, v in obj.items() if v.is_complex() or not (v.is_floating_point() or k.endswith("num_batches_tracked"))]
    if unusable:
        raise VGGTCheckpointError(f"{file}: entries that are not real floating-point tensors: {_format_list(unusable)}")
    non_finite = [k for k, v in obj.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if non_finite:
        raise VGGTCheckpointError(f"{file}: entries with NaN or infinite values: {_format_list(non_finite)}")
    return {k: v if k.startswith(HEAD_PREFIXES) else _cast(v, dtype) for k, v in obj.items()}


def _cast(tensor: Tensor, dtype: torch.dtype | None) -> Tensor:
    return tensor.to(dtype) if dtype is not None and tensor.is_floating_point() else tensor


def _load_file(file: Path, dtype: torch.dtype | None = None) -> object:
    if file.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(file), framework="pt") as f:  # read only the aggregator tensors
            keys = [k for k in f.keys() if not k.startswith(HEAD_PREFIXES)]
            return {k: _cast(f.get_tensor(k), dtype) for k in keys}
    try:  # weights_only: never unpickle arbitrary objects; mmap: do not hold the 5 GB file twice
        return torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    except (RuntimeError, OSError):  # legacy (non-zip) serialisation, or a truncated file, cannot be memory-mapped
        return torch.load(file, map_location="cpu", weights_only=True)


def check_aggregator_state_dict(model: nn.Module, state_dict: Mapping[str, Tensor]) -> None:
    """Raise VGGTCheckpointError listing missing / unexpected keys and shape mismatches."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {expected[k]}"
        for k, v in state_dict.items()
        if k in expected and tuple(v.shape) != expected[k]
    ]
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {_format_list(missing)}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {_format_list(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatches ({len(mismatched)}): {_format_list(mismatched)}")
    if problems:
        raise VGGTCheckpointError("checkpoint does not match the VGGT aggregator config: " + "; ".join(problems))


def load_vggt_aggregator(
    path: str | os.PathLike[str],
    config: VGGTConfig | None = None,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> VGGTAggregator:
    """Load the aggregator of an official VGGT checkpoint, frozen and in eval mode.

    ``path``: a ``model.pt`` state_dict (read with ``torch.load(weights_only=True)``; no
    arbitrary pickle), a ``.safetensors`` file, or a directory holding either. Full-model
    checkpoints (``aggregator.``-prefixed, heads ignored) and bare aggregator state_dicts are
    accepted. Keys and shapes must match ``config`` (default: VGGT-1B) exactly; otherwise a
    ``VGGTCheckpointError`` lists the offenders. The returned module has ``requires_grad=False``
    on every parameter (SSR uses VGGT as a frozen feature extractor), is in ``eval()`` mode and
    lives on ``device`` (default CPU) in ``dtype`` (default float32; the accelerator path of
    ``spatial_features`` then uses autocast).

    Memory: the file is memory-mapped and each tensor is converted to ``dtype`` as it is read,
    so the host never holds a float32 copy of a model loaded in bfloat16; a ``model.pt`` already
    in ``dtype`` stays file-backed (the page cache), not copied.
    """
    config = config if config is not None else VGGTConfig()
    target = dtype if dtype is not None else torch.float32
    raw = _read_checkpoint(_resolve_checkpoint_file(Path(path)), target)
    state_dict = extract_aggregator_state_dict(raw)
    with torch.device("meta"):  # no 3.6 GB random init: parameters come from the checkpoint
        model = VGGTAggregator(config)
    check_aggregator_state_dict(model, state_dict)
    model.load_state_dict(state_dict, strict=True, assign=True)
    model.to(device=device if device is not None else "cpu", dtype=target)
    model.requires_grad_(False)
    return model.eval()


def iter_aggregator_shapes(config: VGGTConfig | None = None) -> Iterator[tuple[str, tuple[int, ...]]]:
    """(key, shape) of every aggregator state_dict entry for ``config``, without allocating."""
    with torch.device("meta"):
        model = VGGTAggregator(config)
    for key, value in model.state_dict().items():
        yield key, tuple(value.shape)

