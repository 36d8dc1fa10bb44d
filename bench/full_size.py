"""Real model sizes for the full-size benchmarks (random weights; nothing is downloaded).

Qwen2.5-VL-3B/7B-Instruct as in their published config.json (text and vision sizes, rope, tied
embeddings for 3B), with the special-token ids of the tiny byte tokenizer so that the project's
input builder and engine run on them; the ids are below the real vocabulary size, so the
embedding and head shapes are the real ones. VGGT-1B is `VGGTConfig()`'s default.
"""

from __future__ import annotations

import resource
from pathlib import Path

from transformers import Qwen2_5_VLConfig

from ssr_core.model.tiny import tiny_token_id, vision_token_ids

# Published Qwen2.5-VL-*-Instruct text sizes (config.json of the Hugging Face releases).
QWEN2_5_VL_TEXT = {
    "3b": {"vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 11008, "num_hidden_layers": 36,
           "num_attention_heads": 16, "num_key_value_heads": 2, "tie_word_embeddings": True},
    "7b": {"vocab_size": 152064, "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
           "num_attention_heads": 28, "num_key_value_heads": 4, "tie_word_embeddings": False},
}


def qwen2_5_vl_config(size: str) -> Qwen2_5_VLConfig:
    """Qwen2.5-VL-3B or -7B-Instruct sizes (the ViT is the same 32-block, 1280-wide one in both)."""
    text = QWEN2_5_VL_TEXT[size]
    return Qwen2_5_VLConfig(
        text_config={
            **{k: v for k, v in text.items() if k != "tie_word_embeddings"},
            "max_position_embeddings": 128000,
            "rms_norm_eps": 1e-6,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
            "bos_token_id": None,
            "eos_token_id": tiny_token_id("<|im_end|>"),
            "pad_token_id": tiny_token_id("<|endoftext|>"),
        },
        vision_config={
            "depth": 32,
            "hidden_size": 1280,
            "intermediate_size": 3420,
            "num_heads": 16,
            "out_hidden_size": text["hidden_size"],
            "window_size": 112,
            "fullatt_block_indexes": [7, 15, 23, 31],
            "tokens_per_second": 2,
        },
        tie_word_embeddings=bool(text["tie_word_embeddings"]),
        **vision_token_ids(tiny_token_id),
    )


def peak_rss_bytes() -> int:
    """This process's resident-set high-water mark (VmHWM), in bytes."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
