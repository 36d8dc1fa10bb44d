"""SSR engine benchmark: encode one window, answer 20 MultiQA-style queries.

Compares answering from one shared prefix KV cache (batched) with re-prefilling the whole prompt
(system + video + question) for every query, one by one. Frames are 336x448 as in the SSR
default, so the prefix (~6.4k tokens: 3072 visual + 3072 spatial) is as long as the real one. Both paths produce the same greedy
tokens; stop tokens are ignored so every query decodes exactly --new-tokens tokens.

    python bench/model_bench.py --threads 1     # CPU, tiny random SSR-3D (32 frames of 336x448)
    python bench/model_bench.py --config full   # Qwen2.5-VL-7B-sized SSR-3D + VGGT-1B, random weights, GPU

Prints a markdown table.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from full_size import qwen2_5_vl_config  # a sibling module: bench/ is on sys.path
from transformers import Qwen2_5_VLForConditionalGeneration

from ssr_core.inference.devices import (
    peak_memory_bytes,
    reset_peak_memory,
    resolve_device,
    resolve_dtype,
    synchronize,
)
from ssr_core.inference.generation import EncodedWindow, Prompt, SSRGenerator
from ssr_core.model.configuration_ssr import SSRConfig
from ssr_core.model.modeling_ssr import SSRForConditionalGeneration
from ssr_core.model.tiny import build_tiny_ssr, build_tiny_tokenizer
from ssr_core.model.vggt import VGGTAggregator, VGGTConfig

SYSTEM = (
    "You are given a video of an indoor scene. A local cognitive map is a 10x10 grid whose cells are "
    "[col, row]. The first anchor sits at [5, 5] and the second anchor on the same column above it. "
    "Answer with the target's cell as [col, row] and nothing else."
)
OBJECTS = ["chair", "table", "sofa", "lamp", "bed", "door", "window", "plant", "tv", "shelf"]


def queries(n: int = 20) -> list[Prompt]:
    """MultiQA: every query shares the system context (one prefix), the user text differs."""
    out: list[Prompt] = []
    for k in range(n):
        a, b, t = OBJECTS[k % 10], OBJECTS[(k + 3) % 10], OBJECTS[(k + 7) % 10]
        user = f"{a}_{k % 3} is at [5, 5] and {b}_{k % 2} is at [5, {2 + k % 3}]. Where is {t}_{k % 4}?"
        out.append([{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}])
    return out


def build_full_ssr(
    device: torch.device, dtype: torch.dtype, image_size: tuple[int, int]
) -> SSRForConditionalGeneration:
    """7B-sized SSR-3D (interleaved, VGGT layer 22) with random weights, built directly on `device`."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with device:
            base = Qwen2_5_VLForConditionalGeneration(qwen2_5_vl_config("7b")).eval()
    finally:
        torch.set_default_dtype(previous)
    with device:
        vggt = VGGTAggregator(VGGTConfig()).eval().requires_grad_(False)  # float32; autocast inside
    ssr_config = SSRConfig(variant="3d", num_frames=32, image_size=image_size, vggt_config=None)
    return SSRForConditionalGeneration(base, ssr_config, vggt).eval()


def timed(device: torch.device, fn: Callable[[], Any]) -> tuple[Any, float]:
    synchronize(device)
    start = time.perf_counter()
    result = fn()
    synchronize(device)
    return result, time.perf_counter() - start


def fresh(window: EncodedWindow) -> EncodedWindow:
    """The same encoded video without any prefix cache."""
    return EncodedWindow(window.video_embeds, window.video_grid_thw)


def run(
    generator: SSRGenerator, frames: np.ndarray, prompts: Sequence[Prompt], new_tokens: int
) -> list[tuple[str, str]]:
    device = generator.model.device
    limits = [new_tokens] * len(prompts)
    generator.stop_ids = set()  # fixed-length decoding: identical work on both paths
    warm = generator.encode_window(frames)  # warm-up (allocator, kernels)
    generator.generate_ids(warm, prompts[:2], [2, 2])
    generator.release(warm)

    reset_peak_memory(device)
    window, t_encode = timed(device, lambda: generator.encode_window(frames))
    assert window.video_embeds is not None
    n_video = window.video_embeds.shape[0]
    prefix_window = fresh(window)
    _, t_prefill = timed(device, lambda: generator.prefill(prefix_window, prompts[:1]))
    prefix_len = next(iter(prefix_window.prefixes.values())).length
    _, t_decode1 = timed(device, lambda: generator.generate_ids(prefix_window, prompts[:1], [new_tokens]))

    shared_window = fresh(window)
    shared, t_shared = timed(device, lambda: generator.generate_ids(shared_window, prompts, limits))

    def one_by_one() -> list[list[int]]:
        return [generator.generate_ids(fresh(window), [p], [new_tokens])[0] for p in prompts]

    unshared, t_unshared = timed(device, one_by_one)
    assert shared == unshared, "shared-prefix answers differ from one-by-one answers"
    peak = peak_memory_bytes(device)

    n = len(prompts)
    batched_decode = n * new_tokens / max(t_shared - t_prefill, 1e-9)
    rows = [
        ("device", str(device)),
        ("video tokens (visual + spatial)", f"{n_video}"),
        ("prefix tokens (system + video)", f"{prefix_len}"),
        ("window encode (ViT + VGGT + fusion)", f"{t_encode * 1e3:.1f} ms"),
        ("prefix prefill", f"{t_prefill * 1e3:.1f} ms"),
        (f"decode, batch 1 ({new_tokens} tokens after cached prefix)", f"{new_tokens / t_decode1:.1f} tok/s"),
        (f"decode, batch {n} (shared prefix, excl. prefill)", f"{batched_decode:.1f} tok/s"),
        (f"{n} queries, shared prefix (prefill once + batched)", f"{t_shared * 1e3:.1f} ms"),
        (f"{n} queries, re-prefill each (one by one)", f"{t_unshared * 1e3:.1f} ms"),
        ("speed-up shared vs re-prefill (queries only)", f"{t_unshared / t_shared:.1f}x"),
        ("speed-up incl. window encode", f"{(t_encode + t_unshared) / (t_encode + t_shared):.1f}x"),
        ("peak accelerator memory", "n/a (CPU)" if peak is None else f"{peak / 2**30:.2f} GiB"),
    ]
    generator.release(window)
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", choices=("tiny", "full"), default="tiny")
    parser.add_argument("--device", default=None, help="default: cpu for tiny, auto for full")
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument(
        "--new-tokens", type=int, default=8, help="per query; a cell answer is ~7 Qwen tokens"
    )
    parser.add_argument(
        "--image-size", type=int, nargs=2, default=(336, 448), help="frame H W (SSRConfig default)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tokenizer = build_tiny_tokenizer()
    rng = np.random.default_rng(0)
    if args.config == "tiny":
        device = resolve_device(args.device or "cpu")
        model = build_tiny_ssr("3d", "interleaved", num_frames=32, image_size=tuple(args.image_size)).to(
            device
        )
        frames = rng.integers(0, 256, (32, 240, 320, 3), dtype=np.uint8)
    else:
        device = resolve_device(args.device or "auto")
        if device.type == "cpu":
            raise SystemExit("--config full needs a GPU or NPU (7B + VGGT-1B with random weights)")
        model = build_full_ssr(device, resolve_dtype(device), image_size=tuple(args.image_size))
        frames = rng.integers(0, 256, (32, 480, 640, 3), dtype=np.uint8)
    generator = SSRGenerator(model, tokenizer, max_batch_size=args.queries)
    rows = run(generator, frames, queries(args.queries), args.new_tokens)
    print(f"| SSR-3D ({args.config}, random weights) | value |")
    print("|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
