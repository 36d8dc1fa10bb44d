"""Full-size smoke test on the CPU: SSR-3D at the real Qwen2.5-VL-3B/7B size plus the VGGT-1B
aggregator, random bf16 weights, one short window encoded, prefilled and decoded.

    python bench/full_size_smoke.py --size 3b            # ~10 GB of host memory
    python bench/full_size_smoke.py --size 7b            # ~19 GB

Checks, at the real size: video embeddings [visual + spatial tokens, D] in bf16, VGGT layer-22
features [S, h*w, 2*1024], the interleaved M-RoPE layout of the prompt's video span (visual
block of group t at temporal index 2t, its spatial block at 2t+1, grid rows/columns on the other
two axes, text continuing after the span's largest index), prefix-cache length, and that decoding
yields the requested number of tokens. Prints times per stage and the peak RSS (VmHWM).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from full_size import peak_rss_bytes, qwen2_5_vl_config  # noqa: E402
from transformers import Qwen2_5_VLForConditionalGeneration  # noqa: E402

from ssr_core.inference.generation import SSRGenerator  # noqa: E402
from ssr_core.model.configuration_ssr import SSRConfig, text_config  # noqa: E402
from ssr_core.model.modeling_ssr import SSRForConditionalGeneration  # noqa: E402
from ssr_core.model.position_ids import video_span_position_ids  # noqa: E402
from ssr_core.model.tiny import build_tiny_tokenizer  # noqa: E402
from ssr_core.model.vggt import VGGTAggregator, VGGTConfig  # noqa: E402

PROMPT = "Where is the chair relative to the table?"


def build(size: str, frames: int, image_size: tuple[int, int]) -> SSRForConditionalGeneration:
    """Random bf16 weights created in bf16 (never a float32 copy of the model)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        base = Qwen2_5_VLForConditionalGeneration(qwen2_5_vl_config(size)).eval()
        vggt = VGGTAggregator(VGGTConfig()).eval().requires_grad_(False)
    finally:
        torch.set_default_dtype(previous)
    config = SSRConfig(variant="3d", insertion="interleaved", num_frames=frames, image_size=image_size)
    return SSRForConditionalGeneration(base, config, vggt).eval()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=("3b", "7b"), default="3b")
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--image-size", type=int, nargs=2, default=(112, 112), help="H W, multiples of 28")
    parser.add_argument("--new-tokens", type=int, default=4)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    times: dict[str, float] = {}

    tick = time.perf_counter()
    model = build(args.size, args.frames, tuple(args.image_size))
    times["build"] = time.perf_counter() - tick
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}, "every weight must be bf16"
    generator = SSRGenerator(model, build_tiny_tokenizer())
    generator.stop_ids = set()  # random weights: decode exactly --new-tokens tokens
    frames = np.random.default_rng(0).integers(0, 256, (args.frames, 240, 320, 3), dtype=np.uint8)

    tick = time.perf_counter()
    assert model.vggt is not None
    with torch.inference_mode():
        video = generator.inputs.video_inputs(frames)
        features = model.vggt.spatial_features(video.vggt_images, layer=model.ssr_config.spatial_layer)
    times["vggt_layer_22"] = time.perf_counter() - tick
    t, gh, gw = video.video_grid_thw[0].tolist()
    assert features.shape == (1, args.frames, gh * gw, 2 * 1024) and features.dtype == torch.bfloat16

    tick = time.perf_counter()
    window = generator.encode_window(frames)
    times["encode (ViT + VGGT + fusion)"] = time.perf_counter() - tick
    m = model.geometry.merge_size
    h, w = gh // m, gw // m
    hidden = text_config(model.config).hidden_size
    assert window.video_embeds is not None
    assert window.video_embeds.shape == (2 * t * h * w, hidden), window.video_embeds.shape
    assert window.video_embeds.dtype == torch.bfloat16

    prefix_text, _ = generator.inputs.render(PROMPT)
    ids = torch.tensor([generator.inputs.tokenize(prefix_text, window.video_grid_thw)])
    positions, next_position = model.position_ids(ids, window.video_grid_thw)
    start = int((ids[0] == model.config.video_token_id).nonzero()[0])
    span = positions[:, 0, start : start + 2 * t * h * w]
    expected = video_span_position_ids((t, h, w), start, "interleaved")
    assert torch.equal(span, expected), "video span positions are not the interleaved layout"
    assert span[0].view(2 * t, h * w)[:, 0].tolist() == [start + k for k in range(2 * t)]
    assert int(next_position[0]) == ids.shape[1] - (start + 2 * t * h * w) + int(span.max()) + 1

    tick = time.perf_counter()
    generator.prefill(window, [PROMPT])
    times["prefill"] = time.perf_counter() - tick
    assert window.prefixes[prefix_text].length == ids.shape[1]

    tick = time.perf_counter()
    (tokens,) = generator.generate_ids(window, [PROMPT], [args.new_tokens])
    times[f"decode {args.new_tokens} tokens"] = time.perf_counter() - tick
    assert len(tokens) == args.new_tokens

    result = {
        "size": args.size,
        "frames": f"{args.frames} x {args.image_size[0]}x{args.image_size[1]}",
        "video tokens (visual + spatial)": 2 * t * h * w,
        "prefix tokens": ids.shape[1],
        "parameters (base + branch + VGGT)": sum(p.numel() for p in model.parameters()),
        "seconds": {k: round(v, 1) for k, v in times.items()},
        "peak_rss_gib": round(peak_rss_bytes() / 2**30, 2),
        "checks": "shapes, bf16 dtypes, interleaved M-RoPE span, prefix length, token count: passed",
    }
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
