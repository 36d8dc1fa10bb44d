"""The small SSR trained on one CPU core (issue 10): model sizes, tokenizer and stage 1's base folder.

* `small_qwen2_5_vl_config()`: a Qwen2.5-VL of ~5 M parameters (ViT 128 x 4, LLM 256 x 4).
* `build_small_tokenizer(texts)`: a byte-level BPE learnt on the training prompts and answers, digits
  always single tokens (as Qwen2's own tokenizer does). The project's prompts are long and fixed;
  the byte tokenizer of the tiny test model spells them out in ~1,000 tokens, this one in a few
  hundred, so the same CPU time trains on several times more samples.
* `SMALL_VGGT_CONFIG`: a 4-layer, 128-wide VGGT aggregator (conv patchifier instead of DINOv2) with
  the official state-dict layout, so it loads through `load_vggt_aggregator` like VGGT-1B.
* `write_base_folder`: a plain Qwen2.5-VL folder (random LLM, the pretrained ViT) plus tokenizer,
  what `model.base` of the small stage-1 config points to.

    python -m training.small --samples DATA/train.jsonl --out BASE_RANDOM_VIT
    python -m training.small --tokenizer BASE_RANDOM_VIT --visual GEOM/vit/visual.safetensors --out BASE
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from transformers import PreTrainedTokenizerFast, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

from ssr_core.model.tiny import QWEN_SPECIAL_TOKENS, QWEN_VL_CHAT_TEMPLATE, vision_token_ids

#: Aggregator of the small SSR-3D: same modules as VGGT-1B, 4 frame/global block pairs of width 128.
SMALL_VGGT_CONFIG: dict[str, Any] = {
    "embed_dim": 128,
    "depth": 4,
    "num_heads": 4,
    "patch_embed": "conv",
    "num_register_tokens": 4,
}
#: The layer SSR-3D reads: the last one, where the depth and pose heads were trained.
SMALL_SPATIAL_LAYER = 3
VGGT_CONFIG_FILE = "vggt_config.json"
VGGT_WEIGHTS_FILE = "model.safetensors"
VISUAL_WEIGHTS_FILE = "visual.safetensors"
SMALL_VOCAB_SIZE = 1024


def build_small_tokenizer(texts: Iterable[str], vocab_size: int = SMALL_VOCAB_SIZE) -> PreTrainedTokenizerFast:
    """Byte-level BPE learnt on `texts`; Qwen's special tokens come first, every digit is its own token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(QWEN_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>", model_max_length=32768
    )
    tokenizer.chat_template = QWEN_VL_CHAT_TEMPLATE
    return tokenizer


def sample_texts(samples_jsonl: str | Path) -> Iterator[str]:
    """Every prompt, answer and chat-template piece of a training-sample file."""
    yield "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<|im_start|>assistant\n"
    with open(samples_jsonl) as f:
        for line in f:
            row = json.loads(line)
            for message in row["messages"]:
                content = message["content"]
                yield content if isinstance(content, str) else json.dumps(content)
            yield row["answer"]


def small_qwen2_5_vl_config(tokenizer: PreTrainedTokenizerFast | None = None) -> Qwen2_5_VLConfig:
    """ViT depth 4 / width 128 (windows of 2x2 merged tokens, last block global), LLM 4 layers / width 256.

    Token ids come from `tokenizer`; without one (ViT-only use) they are placeholders.
    """

    def token(name: str) -> int:
        return int(tokenizer.convert_tokens_to_ids(name)) if tokenizer is not None else QWEN_SPECIAL_TOKENS.index(name)  # type: ignore[arg-type]

    return Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer) if tokenizer is not None else SMALL_VOCAB_SIZE,
            "hidden_size": 256,
            "intermediate_size": 768,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 8192,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [8, 12, 12]},
            "bos_token_id": None,
            "eos_token_id": token("<|im_end|>"),
            "pad_token_id": token("<|endoftext|>"),
            "tie_word_embeddings": True,
        },
        vision_config={
            "depth": 4,
            "hidden_size": 128,
            "intermediate_size": 384,
            "num_heads": 4,
            "out_hidden_size": 256,
            "fullatt_block_indexes": [3],
            "window_size": 56,
            "tokens_per_second": 2,
        },
        **vision_token_ids(token),
        tie_word_embeddings=True,
    )


def write_base_folder(
    out_dir: str | Path, tokenizer: PreTrainedTokenizerFast, visual_state: dict[str, torch.Tensor] | None = None, seed: int = 0
) -> Path:
    """A Qwen2.5-VL folder (config, weights, tokenizer): random LLM, `visual_state` loaded into the ViT + merger."""
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(small_qwen2_5_vl_config(tokenizer))
    if visual_state is not None:
        model.model.visual.load_state_dict(visual_state, strict=True)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def save_vggt_config(directory: str | Path, config: dict[str, Any]) -> Path:
    path = Path(directory) / VGGT_CONFIG_FILE
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="write the small SSR's stage-1 base folder")
    parser.add_argument("--samples", default=None, help="training samples JSONL the tokenizer is learnt on")
    parser.add_argument("--tokenizer", default=None, help="reuse the tokenizer of this folder instead of learning one")
    parser.add_argument("--visual", default=None, help="pretrained ViT+merger weights (training.geometry's vit/visual.safetensors); default random")
    parser.add_argument("--out", required=True)
    parser.add_argument("--vocab-size", type=int, default=SMALL_VOCAB_SIZE)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if (args.samples is None) == (args.tokenizer is None):
        parser.error("give exactly one of --samples and --tokenizer")
    if args.tokenizer:
        tokenizer = PreTrainedTokenizerFast.from_pretrained(args.tokenizer, local_files_only=True)
    else:
        tokenizer = build_small_tokenizer(sample_texts(args.samples), args.vocab_size)
    visual = load_file(args.visual) if args.visual else None
    out = write_base_folder(args.out, tokenizer, visual, args.seed)
    print(f"wrote {out} (vocabulary {len(tokenizer)}, ViT {'pretrained' if visual else 'random'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
