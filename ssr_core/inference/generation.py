"""Inference engine: encode a window once, prefill its shared visual prefix once, answer many prompts.

A prompt renders (chat template) as

    prefix = <|im_start|>system ... <|im_end|> <|im_start|>user <|vision_start|> [video span] <|vision_end|>
    suffix = question <|im_end|> <|im_start|>assistant\n

Prompts that share a system context share the prefix, so its KV cache is computed once per
window and copied to the batch of suffixes. Suffixes are left-padded between prefix and
question (masked out), and their M-RoPE positions continue from the prefix's next position,
which is larger than the prefix length (the video span packs many tokens per temporal index):
the offset `next_position - prefix_length` is Qwen's `rope_deltas`. Positions are always
passed explicitly, so the base model's own `rope_deltas` state is never consulted.

`SSRInputBuilder` is the one place that turns frames + chat messages into model inputs; the
training code uses it through `build_training_inputs` / `collate_training_inputs`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor
from transformers import AutoTokenizer, DynamicCache

from ssr_core.errors import InputError
from ssr_core.inference.devices import resolve_device, resolve_dtype
from ssr_core.language.prompts import PROMPT_FORMAT_VERSION, Prompt, prompt_format_compatible
from ssr_core.model.configuration_ssr import text_config
from ssr_core.model.modeling_ssr import SSRForConditionalGeneration, VideoFeatures, is_ssr_checkpoint
from ssr_core.model.processing_ssr import SSRInputBuilder

log = logging.getLogger(__name__)

# "ssr": a checkpoint trained by this project (has ssr_config.json).
# "base": a plain instruct checkpoint as downloaded (no ssr_config.json), run zero-shot with the
#         SSR-2D prompts and parsers; its answers and boxes are only as good as the base model's.
MODEL_KINDS = ("ssr", "base")


class ModelKindError(InputError):
    """The folder does not hold the kind of model asked for (the message says which kind it is)."""


def check_model_kind(directory: str | os.PathLike[str], kind: str) -> None:
    """Refuse a trained checkpoint passed as "base" and a plain base model passed as "ssr"."""
    if kind not in MODEL_KINDS:
        raise ModelKindError(f"model kind must be one of {MODEL_KINDS}, got {kind!r}")
    trained = is_ssr_checkpoint(directory)
    if kind == "ssr" and not trained:
        raise ModelKindError(
            f"{directory} has no ssr_config.json: it is a plain base model, not an SSR checkpoint; "
            "use model kind 'base' to run it zero-shot"
        )
    if kind == "base" and trained:
        raise ModelKindError(f"{directory} is an SSR checkpoint (it has ssr_config.json); use model kind 'ssr'")

@dataclass
class PrefixCache:
    cache: DynamicCache  # batch 1, prefix keys/values of every layer
    length: int  # prefix tokens
    next_position: int  # M-RoPE position of the first token after the prefix


@dataclass
class EncodedWindow:
    """Opaque window state: the video span embeddings and the prefix caches built from them."""

    video_embeds: Tensor | None  # [num_video_tokens, D]; None once released
    video_grid_thw: Tensor  # [1, 3]
    prefixes: dict[str, PrefixCache] = field(default_factory=dict)
    features: VideoFeatures | None = None  # visual-token mask and (Qwen3-VL) DeepStack features


class SSRGenerator:
    """`WindowGenerator` over an SSR model: encode_window / generate / release, greedy decoding."""

    def __init__(
        self,
        model: SSRForConditionalGeneration,
        tokenizer,
        chat_template: str | None = None,
        max_batch_size: int = 16,
    ):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        trained_on = model.ssr_config.prompt_format_version
        if self.zero_shot:
            log.warning(
                "zero-shot: the model was never trained for SSR; it answers SSR-2D prompts as a plain "
                "base model, so formats may not be followed and boxes are only as good as its 3D grounding"
            )
        elif not prompt_format_compatible(trained_on):
            log.warning(
                "the model was trained with prompt format %r but this code writes format %r: "
                "answers may not follow the expected formats",
                trained_on,
                PROMPT_FORMAT_VERSION,
            )
        self.inputs = SSRInputBuilder(tokenizer, model.ssr_config, model.config, chat_template)
        self.max_batch_size = max_batch_size
        text = text_config(model.config)
        eos = text.eos_token_id
        candidates = {tokenizer.eos_token_id, *(eos if isinstance(eos, list) else [eos])}
        candidates |= {tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")}
        self.stop_ids = {i for i in candidates if isinstance(i, int) and 0 <= i < text.vocab_size}
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else min(self.stop_ids)

    @property
    def zero_shot(self) -> bool:
        """True when the model is an untrained base model (its answers are zero-shot)."""
        return self.model.ssr_config.zero_shot

    @classmethod
    def from_checkpoint(
        cls,
        directory: str | os.PathLike[str],
        device: str = "auto",
        dtype: str | torch.dtype | None = None,
        vggt_path: str | os.PathLike[str] | None = None,
        max_batch_size: int = 16,
        kind: str = "ssr",
    ) -> SSRGenerator:
        """Load a model folder (model + tokenizer) onto `device` (bf16 on accelerators).

        kind: "ssr" for a trained SSR checkpoint, "base" for a plain instruct checkpoint run
        zero-shot (`MODEL_KINDS`); a folder of the other kind raises `ModelKindError`.
        """
        check_model_kind(directory, kind)
        dev = resolve_device(device)
        model = SSRForConditionalGeneration.from_pretrained(
            directory, vggt=vggt_path, dtype=resolve_dtype(dev, dtype)
        )
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
        return cls(model.to(dev), tokenizer, max_batch_size=max_batch_size)

    @torch.inference_mode()
    def encode_window(self, frames: np.ndarray) -> EncodedWindow:
        """uint8 frames [N, H, W, 3] -> ViT (+ VGGT + fusion) video embeddings, computed once."""
        video = self.inputs.video_inputs(frames)
        features = self.model.encode_video_features(
            video.pixel_values_videos, video.video_grid_thw.to(self.model.device), video.vggt_images
        )
        return EncodedWindow(features.embeds, video.video_grid_thw, features=features)

    def generate(
        self, window: EncodedWindow, prompts: Sequence[Prompt], max_new_tokens: Sequence[int] | int
    ) -> list[str]:
        """Greedy answers, one per prompt, without special tokens."""
        ids = self.generate_ids(window, prompts, max_new_tokens)
        return [self.tokenizer.decode(t, skip_special_tokens=True) for t in ids]

    def release(self, window: EncodedWindow) -> None:
        window.prefixes.clear()
        window.video_embeds = None
        window.features = None

    @torch.inference_mode()
    def prefill(self, window: EncodedWindow, prompts: Sequence[Prompt]) -> None:
        """Build the shared prefix caches these prompts will use (e.g. right after encode, off the query path)."""
        for prompt in prompts:
            self._prefix(window, self.inputs.render(prompt)[0])

    @torch.inference_mode()
    def generate_ids(
        self, window: EncodedWindow, prompts: Sequence[Prompt], max_new_tokens: Sequence[int] | int
    ) -> list[list[int]]:
        """Generated token ids per prompt (stop token excluded), batched per shared prefix."""
        limits = [max_new_tokens] * len(prompts) if isinstance(max_new_tokens, int) else list(max_new_tokens)
        if len(limits) != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {len(limits)} token limits")
        groups: dict[str, list[tuple[int, list[int]]]] = {}
        for index, prompt in enumerate(prompts):
            prefix_text, suffix_text = self.inputs.render(prompt)
            if limits[index] > 0:
                groups.setdefault(prefix_text, []).append((index, self.inputs.tokenize(suffix_text)))
        results: list[list[int]] = [[] for _ in prompts]
        for prefix_text, items in groups.items():
            prefix = self._prefix(window, prefix_text)
            items.sort(key=lambda item: len(item[1]))  # similar lengths together: less padding
            for start in range(0, len(items), self.max_batch_size):
                chunk = items[start : start + self.max_batch_size]
                answers = self._decode(prefix, [s for _, s in chunk], [limits[i] for i, _ in chunk])
                for (index, _), answer in zip(chunk, answers):
                    results[index] = answer
        return results

    def _prefix(self, window: EncodedWindow, prefix_text: str) -> PrefixCache:
        """Prefill (once per window and prefix text) the prefix with the video embeddings in place."""
        if window.video_embeds is None:
            raise ValueError("this window was released")
        if prefix_text in window.prefixes:
            return window.prefixes[prefix_text]
        input_ids = torch.tensor([self.inputs.tokenize(prefix_text, window.video_grid_thw)])
        position_ids, next_position = self.model.position_ids(input_ids, window.video_grid_thw)
        device = self.model.device
        input_ids = input_ids.to(device)
        cache = DynamicCache(config=self.model.config)
        self.model.language_forward(
            self.model.embed_inputs(input_ids, window.video_embeds),
            position_ids.to(device),
            past_key_values=cache,
            use_cache=True,
            input_ids=input_ids,
            video=window.features,
        )
        prefix = PrefixCache(cache, input_ids.shape[1], int(next_position[0]))
        window.prefixes[prefix_text] = prefix
        return prefix

    def _decode(self, prefix: PrefixCache, suffixes: list[list[int]], limits: list[int]) -> list[list[int]]:
        """Greedy-decode a batch of suffixes after a shared prefix; each stops at a stop id or its limit."""
        device = self.model.device
        batch, width = len(suffixes), max(len(s) for s in suffixes)
        input_ids = torch.full((batch, width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros(batch, prefix.length + width, dtype=torch.long)
        attention_mask[:, : prefix.length] = 1
        position_ids = torch.zeros(3, batch, width, dtype=torch.long)
        for row, suffix in enumerate(suffixes):  # left-pad: [prefix][pad ...][suffix]
            n = len(suffix)
            input_ids[row, width - n :] = torch.tensor(suffix)
            attention_mask[row, prefix.length + width - n :] = 1
            position_ids[:, row, width - n :] = prefix.next_position + torch.arange(n)
        next_position = (prefix.next_position + torch.tensor([len(s) for s in suffixes])).to(device)
        attention_mask = attention_mask.to(device)
        cache = DynamicCache(
            [(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1)) for k, v, _ in prefix.cache],
            config=self.model.config,
        )
        logits = self._next_logits(input_ids.to(device), attention_mask, position_ids.to(device), cache)
        outputs: list[list[int]] = [[] for _ in suffixes]
        active = list(range(batch))
        while True:
            tokens = logits.argmax(-1)  # [active]
            keep = []
            for row, (seq, token) in enumerate(zip(active, tokens.tolist())):
                if token in self.stop_ids:
                    continue
                outputs[seq].append(token)
                if len(outputs[seq]) < limits[seq]:
                    keep.append(row)
            if not keep:
                return outputs
            if len(keep) < len(active):
                rows = torch.tensor(keep, device=device)
                cache.batch_select_indices(rows)
                attention_mask, next_position, tokens = (
                    attention_mask[rows],
                    next_position[rows],
                    tokens[rows],
                )
                active = [active[r] for r in keep]
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones(len(active), 1)], dim=1)
            step_positions = next_position.view(1, -1, 1).expand(3, -1, 1)
            logits = self._next_logits(tokens.view(-1, 1), attention_mask, step_positions, cache)
            next_position = next_position + 1

    def _next_logits(
        self, input_ids: Tensor, attention_mask: Tensor, position_ids: Tensor, cache: DynamicCache
    ) -> Tensor:
        """[B, q] new tokens -> next-token logits [B, V] at the last position (cache grows by q)."""
        base = self.model.base
        hidden = base.model.language_model(
            inputs_embeds=base.get_input_embeddings()(input_ids),
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=cache,
            use_cache=True,
        ).last_hidden_state
        return base.lm_head(hidden[:, -1]).float()
