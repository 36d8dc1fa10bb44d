"""Tiny random Qwen2.5-VL / Qwen3-VL / SSR models and a byte-level tokenizer, built offline (no downloads).

For tests, benchmarks, the demo's `tiny_random` model kind and the tiny training configs: the
real architecture at a few hundred thousand parameters, with Qwen's special tokens and chat
template so every text path is the production one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

import torch
from transformers import (
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
)

from ssr_core.model.configuration_ssr import QWEN2_5_VL, QWEN3_VL, SSRConfig
from ssr_core.model.modeling_ssr import SSRForConditionalGeneration
from ssr_core.model.vggt import VGGTAggregator, VGGTConfig

QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
TINY_BYTE_VOCAB = 256  # byte-level alphabet; the special tokens follow in QWEN_SPECIAL_TOKENS order

# Qwen2.5-VL's chat format (system default, <|im_start|>role ... <|im_end|>, vision placeholders),
# written for the tiny tokenizer; real checkpoints bring their own template.
QWEN_VL_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}"
    "{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_token_id(token: str) -> int:
    return TINY_BYTE_VOCAB + QWEN_SPECIAL_TOKENS.index(token)


class VisionTokenIds(TypedDict):
    image_token_id: int
    video_token_id: int
    vision_start_token_id: int
    vision_end_token_id: int


def vision_token_ids(token_id: Callable[[str], int]) -> VisionTokenIds:
    """The Qwen-VL config's vision special-token ids, from a tokenizer's token -> id lookup."""
    return {
        "image_token_id": token_id("<|image_pad|>"),
        "video_token_id": token_id("<|video_pad|>"),
        "vision_start_token_id": token_id("<|vision_start|>"),
        "vision_end_token_id": token_id("<|vision_end|>"),
    }


def build_tiny_tokenizer():
    """Byte-level BPE (no merges) over the 256 bytes plus Qwen's special tokens, with the chat template.

    Save it with `.save_pretrained(dir)`; `AutoTokenizer.from_pretrained(dir)` reloads it offline.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    backend = Tokenizer(models.BPE(vocab={ch: i for i, ch in enumerate(alphabet)}, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in QWEN_SPECIAL_TOKENS])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>", model_max_length=32768
    )
    tokenizer.chat_template = QWEN_VL_CHAT_TEMPLATE
    return tokenizer


def tiny_qwen2_5_vl_config() -> Qwen2_5_VLConfig:
    """A few-hundred-kB Qwen2.5-VL: ViT depth 2 / width 32 (window 2x2 merged tokens), LLM 2 layers / width 64."""
    return Qwen2_5_VLConfig(
        text_config={
            "vocab_size": 272,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
            "bos_token_id": None,
            "eos_token_id": tiny_token_id("<|im_end|>"),
            "pad_token_id": tiny_token_id("<|endoftext|>"),
        },
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": 64,
            "fullatt_block_indexes": [1],
            "window_size": 56,
            "tokens_per_second": 2,
        },
        **vision_token_ids(tiny_token_id),
    )


def tiny_qwen3_vl_config() -> Qwen3VLConfig:
    """A few-hundred-kB Qwen3-VL: ViT depth 2 / width 32 / 16-px patches (DeepStack at block 0),
    LLM 2 layers / width 64 with interleaved M-RoPE; same tokens as the Qwen2.5-VL tiny model."""
    return Qwen3VLConfig(
        text_config={
            "vocab_size": 272,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "max_position_embeddings": 4096,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 10000.0,
                "mrope_section": [2, 3, 3],
                "mrope_interleaved": True,
            },
            "bos_token_id": None,
            "eos_token_id": tiny_token_id("<|im_end|>"),
            "pad_token_id": tiny_token_id("<|endoftext|>"),
        },
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": 64,
            "patch_size": 16,
            "num_position_embeddings": 16,
            "deepstack_visual_indexes": [0],
        },
        **vision_token_ids(tiny_token_id),
    )


TINY_BASES = {QWEN2_5_VL: (Qwen2_5_VLForConditionalGeneration, tiny_qwen2_5_vl_config),
              QWEN3_VL: (Qwen3VLForConditionalGeneration, tiny_qwen3_vl_config)}
TINY_IMAGE_SIZE = {QWEN2_5_VL: (56, 56), QWEN3_VL: (64, 64)}  # one 2x2 merged grid per group, VGGT at 56x56


TINY_VGGT_CONFIG: dict[str, Any] = {
    "embed_dim": 16,
    "depth": 2,
    "num_heads": 2,
    "patch_embed": "conv",
    "num_register_tokens": 1,
}


def build_tiny_ssr(
    variant: str = "3d",
    insertion: str = "interleaved",
    num_frames: int = 32,
    image_size: tuple[int, int] | None = None,
    seed: int = 0,
    family: str = QWEN2_5_VL,
) -> SSRForConditionalGeneration:
    """Random tiny SSR (float32, eval mode) with a tiny random VGGT aggregator (layer 1 of 2).

    family: "qwen2_5_vl" or "qwen3_vl"; image_size defaults to `TINY_IMAGE_SIZE[family]`.
    """
    torch.manual_seed(seed)
    model_class, make_config = TINY_BASES[family]
    base = model_class(make_config()).eval()
    image_size = image_size if image_size is not None else TINY_IMAGE_SIZE[family]
    ssr_config = SSRConfig(
        variant=variant,
        insertion=insertion,
        spatial_layer=1,
        num_frames=num_frames,
        image_size=image_size,
        vggt_config=dict(TINY_VGGT_CONFIG) if variant == "3d" else None,
    )
    vggt = (
        VGGTAggregator(VGGTConfig(**TINY_VGGT_CONFIG)).eval().requires_grad_(False)
        if variant == "3d"
        else None
    )
    return SSRForConditionalGeneration(base, ssr_config, vggt).eval()


def save_tiny_base_model(directory: str | os.PathLike[str], seed: int = 0, family: str = QWEN2_5_VL) -> Path:
    """A plain tiny random Qwen2.5-VL (or Qwen3-VL) instruct folder (config, weights, tokenizer; no
    ssr_config.json), laid out like a downloaded base checkpoint: the "base" kind's stand-in in tests."""
    torch.manual_seed(seed)
    path = Path(directory)
    model_class, make_config = TINY_BASES[family]
    model_class(make_config()).save_pretrained(path)
    build_tiny_tokenizer().save_pretrained(path)
    return path
