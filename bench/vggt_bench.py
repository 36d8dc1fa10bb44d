"""Latency / peak memory of the VGGT aggregator up to one layer (random weights).

What SSR pays per window: ``VGGTAggregator.spatial_features(images, layer)`` on S frames.
Target (issue 4): < 0.45 s on one H100 in bf16 for 32 frames at 518x350 up to layer 22.

    python bench/vggt_bench.py --config full --device cuda --dtype bfloat16 --frames 32 --size 518x350
    python bench/vggt_bench.py --config tiny --device cpu --frames 8 --size 112x84

``--size`` is WIDTHxHEIGHT (PIL order; 518x350 is VGGT's crop-mode landscape output).
bf16/fp16 keep float32 weights and run under autocast (the ``load_vggt_aggregator``
default); ``--cast-weights`` casts the weights instead. Peak memory is
``max_memory_allocated`` on CUDA/NPU and the process's max RSS on CPU (weights included).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ssr_core.inference.devices import (  # noqa: E402
    peak_memory_bytes,
    reset_peak_memory,
    resolve_device,
    resolve_dtype,
    synchronize,
)
from ssr_core.model.vggt import VGGTAggregator, VGGTConfig  # noqa: E402

CONFIGS = {
    "full": VGGTConfig(),
    "tiny": VGGTConfig(  # the tiny DINOv2 fixture configuration
        img_size=56, embed_dim=128, depth=4, num_heads=2, patch_embed="dinov2_vits14_reg",
        dino_embed_dim=128, dino_depth=2, dino_num_heads=2,
    ),
}


def parse_size(text: str) -> tuple[int, int]:
    """'518x350' -> (height 350, width 518)."""
    width, height = (int(v) for v in text.lower().split("x"))
    if width % 14 or height % 14:
        raise argparse.ArgumentTypeError(f"--size {text}: both sides must be multiples of 14")
    return height, width


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=sorted(CONFIGS), default="full")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:i] | npu[:i]")
    parser.add_argument("--dtype", default=None, help="float32 | bfloat16 | float16 (default: bf16 on accelerators)")
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--size", type=parse_size, default=(350, 518), help="WIDTHxHEIGHT, default 518x350")
    parser.add_argument("--layer", type=int, default=22)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    parser.add_argument("--cast-weights", action="store_true", help="cast weights to --dtype instead of autocast")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    dtype = resolve_dtype(device, args.dtype)
    config = CONFIGS[args.config]
    if device.type == "cpu" and dtype != torch.float32:
        args.cast_weights = True  # no autocast path on CPU: run the weights in that dtype
    torch.manual_seed(args.seed)

    t0 = time.perf_counter()
    with torch.device("meta"):
        model = VGGTAggregator(config)
    model.to_empty(device=device)
    model.reset_parameters()  # random weights: timing does not depend on values
    if args.cast_weights:
        model.to(dtype)
    model.requires_grad_(False).eval()
    build_s = time.perf_counter() - t0

    height, width = args.size
    images = torch.rand(args.batch, args.frames, 3, height, width, device=device)
    compute_dtype = None if dtype == torch.float32 and device.type == "cpu" else dtype

    def step() -> torch.Tensor:
        out = model.spatial_features(images, layer=args.layer, compute_dtype=compute_dtype)
        synchronize(device)
        return out

    for _ in range(args.warmup):
        step()
    reset_peak_memory(device)
    times = []
    for _ in range(args.iters):
        t = time.perf_counter()
        out = step()
        times.append(time.perf_counter() - t)
    peak = peak_memory_bytes(device)
    peak_kind = "max_memory_allocated"
    if peak is None:  # CPU: process max RSS (Linux reports KiB)
        peak, peak_kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "process_max_rss"

    result: dict[str, object] = {
        "config": args.config,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "threads": torch.get_num_threads(),
        "dtype": str(dtype).removeprefix("torch."),
        "weights": "cast" if args.cast_weights else "float32" + ("+autocast" if device.type != "cpu" else ""),
        "batch": args.batch,
        "frames": args.frames,
        "size_wh": [width, height],
        "tokens_per_frame": model.patch_start_idx + (height // 14) * (width // 14),
        "layer": args.layer,
        "output_shape": list(out.shape),
        "build_s": round(build_s, 3),
        "iters": args.iters,
        "mean_s": round(statistics.fmean(times), 4),
        "p50_s": round(statistics.median(times), 4),
        "min_s": round(min(times), 4),
        "peak_memory_mib": round(peak / 2**20, 1),
        "peak_memory_kind": peak_kind,
        "torch": torch.__version__,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
