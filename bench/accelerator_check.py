"""One command for a GPU or Ascend NPU machine: every number BENCHMARKS.md lists as not measured.

    python bench/accelerator_check.py                   # on the accelerator machine, < 8 min on one H100
    python bench/accelerator_check.py --dry-run         # anywhere: tiny models on the CPU, checks it all starts

Needs only the repository and its Python packages (random weights, random frames; nothing is
downloaded). Runs, in this order, each section timed and guarded (a failing section is reported
and the next one runs):

1. VGGT-1B aggregator to layer 22 on 32 frames of 518x350 in bf16, with the attention kernel
   PyTorch's scaled_dot_product_attention picks (flash where available): weights float32 under
   autocast (the loader's default), and weights cast to bf16.
2. SSR-3D at Qwen2.5-VL-7B size (+ VGGT-1B), 32 frames of 336x448: window encode, prefix
   prefill, decode tokens/s at batch 1 and 20, the 20-query shared-prefix vs re-prefill
   comparison, peak accelerator memory (`bench/model_bench.py --config full`).
3. The tiny training recipe (shapes of training/configs/stage{1,2}_tiny.yaml) on the
   accelerator in bf16 mixed precision: optimiser steps/s and samples/s, stage 1 and stage 2.

Writes one markdown file (default `accelerator_check_<host>.md`) naming the machine (accelerator,
driver/runtime, torch, CPU) beside the targets. Without an accelerator it stops with
"no accelerator" (exit 2); `--dry-run` then runs every section with tiny models on the CPU so a
broken import or signature shows up before anyone books a GPU; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import model_bench  # noqa: E402
import vggt_bench  # noqa: E402

from ssr_core.inference.devices import resolve_device, resolve_dtype  # noqa: E402
from ssr_core.model.tiny import build_tiny_ssr, build_tiny_tokenizer  # noqa: E402

EXIT_NO_ACCELERATOR = 2
TARGETS = {
    "vggt": "VGGT aggregator, 32 frames, layer 22: <= 0.45 s",
    "engine": "encode + prefill per window <= 1.0 s; 20 queries <= 3 s; decode >= 70 % of the weight-bandwidth bound",
}


def find_accelerator() -> torch.device | None:
    device = resolve_device("auto")
    return None if device.type == "cpu" else device


def machine_description(device: torch.device) -> list[str]:
    lines = [f"- host: {socket.gethostname()}", f"- CPU: {platform.processor() or platform.machine()}, "
             f"{torch.get_num_threads()} torch threads", f"- torch {torch.__version__}, Python {platform.python_version()}"]
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        lines.append(f"- accelerator: {props.name}, {props.total_memory / 2**30:.0f} GiB, "
                     f"compute capability {props.major}.{props.minor}, CUDA runtime {torch.version.cuda}")
        lines.append(f"- flash SDPA enabled: {torch.backends.cuda.flash_sdp_enabled()}, "
                     f"memory-efficient SDPA enabled: {torch.backends.cuda.mem_efficient_sdp_enabled()}")
    elif device.type == "npu":
        lines.append(f"- accelerator: Ascend {torch.npu.get_device_name(device)}")  # type: ignore[attr-defined]
    else:
        lines.append("- accelerator: **none (dry run on the CPU with tiny models; the numbers mean nothing)**")
    return lines


def vggt_section(device: torch.device, dry_run: bool) -> list[str]:
    if dry_run:
        common = ["--config", "tiny", "--device", "cpu", "--frames", "4", "--size", "56x56", "--layer", "3",
                  "--iters", "1", "--warmup", "0"]
    else:
        common = ["--config", "full", "--device", str(device), "--dtype", "bfloat16", "--frames", "32",
                  "--size", "518x350", "--layer", "22", "--iters", "5", "--warmup", "2"]
    rows = ["| weights | mean | p50 | min | peak memory | output |", "|---|---|---|---|---|---|"]
    for cast in (False, True):
        r = vggt_bench.main(common + (["--cast-weights"] if cast else []))
        rows.append(f"| {r['weights']} ({r['dtype']}) | {r['mean_s']:.3f} s | {r['p50_s']:.3f} s | {r['min_s']:.3f} s "
                    f"| {r['peak_memory_mib']:.0f} MiB ({r['peak_memory_kind']}) | {r['output_shape']} |")
    return rows


def engine_section(device: torch.device, dry_run: bool) -> list[str]:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    if dry_run:
        model = build_tiny_ssr("3d", "interleaved", num_frames=4, image_size=(56, 56))
        frames = rng.integers(0, 256, (4, 48, 64, 3), dtype=np.uint8)
        n_queries = 4
    else:
        model = model_bench.build_full_ssr(device, resolve_dtype(device), image_size=(336, 448))
        frames = rng.integers(0, 256, (32, 480, 640, 3), dtype=np.uint8)
        n_queries = 20
    weight_bytes = sum(p.numel() * p.element_size() for n, p in model.base.model.language_model.named_parameters())
    weight_bytes += model.base.lm_head.weight.numel() * model.base.lm_head.weight.element_size()
    generator = model_bench.SSRGenerator(model, build_tiny_tokenizer(), max_batch_size=n_queries)
    rows = ["| measurement | value |", "|---|---|"]
    measured = model_bench.run(generator, frames, model_bench.queries(n_queries), 8)
    rows += [f"| {name} | {value} |" for name, value in measured]
    bandwidth = copy_bandwidth(device)
    rows.append(f"| LLM weight bytes read per decode step | {weight_bytes / 2**30:.2f} GiB |")
    rows.append(f"| measured device copy bandwidth (read + write) | {bandwidth / 1e9:.0f} GB/s |")
    batch1 = next(float(v.split()[0]) for k, v in measured if k.startswith("decode, batch 1"))
    bound = bandwidth / weight_bytes
    rows.append(f"| decode batch 1 vs weight-bandwidth bound ({bound:.1f} tok/s) | {100 * batch1 / bound:.0f} % |")
    return rows


def copy_bandwidth(device: torch.device, nbytes: int = 2**30) -> float:
    """Bytes moved per second (read + write) by a large on-device copy: the decode bound's bandwidth."""
    from ssr_core.inference.devices import synchronize

    nbytes = nbytes if device.type != "cpu" else 2**24
    source = torch.empty(nbytes, dtype=torch.uint8, device=device)
    target = torch.empty_like(source)
    target.copy_(source)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(5):
        target.copy_(source)
    synchronize(device)
    return 2 * 5 * nbytes / (time.perf_counter() - start)


def write_samples(root: Path, count: int = 16) -> Path:
    """Training samples over random 64x48 frames (the sample format of docs/ARCHITECTURE.md)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    rows = []
    for i in range(count):
        frames = []
        for k in range(4):
            name = f"frames/{i:03d}_{k}.png"
            (root / "frames").mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(root / name)
            frames.append(name)
        question = f"How many chairs are in room {i}? Answer with a number."
        rows.append({"id": f"s{i}", "frames": frames, "messages": [{"role": "user", "content": question}],
                     "answer": str(i % 5)})
    path = root / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def training_section(device: torch.device, dry_run: bool, steps: int) -> list[str]:
    from training.config import config_from_dict
    from training.train import train

    steps = 2 if dry_run else steps
    rows = ["| stage | steps/s | samples/s | steps timed |", "|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        train_file = write_samples(root / "data")
        init_from = None
        for stage in (1, 2):
            model = {"base": "tiny"} if stage == 1 else {"init_from": str(init_from), "vggt": "tiny", "spatial_layer": 1}
            lr = ({"language": 1e-4, "merger": 1e-4, "vision": 1e-4} if stage == 1
                  else {"branch_3d": 1e-4, "merger": 1e-5, "language": 1e-5})
            for run in ("warm", "timed"):
                cfg = config_from_dict({
                    "stage": stage, "output_dir": str(root / f"{run}{stage}"),
                    "model": {**model, "num_frames": 4, "image_size": [56, 56]},
                    "data": {"train": str(train_file)},
                    "optim": {"lr": lr, "warmup_steps": 0},
                    "train": {"max_steps": 2 if run == "warm" else steps, "batch_size": 2, "grad_accum": 1,
                              "device": "cpu" if dry_run else "auto", "num_workers": 0},
                    "checkpoint": {"every_steps": 10**6, "resume": "none"},
                    "log": {"every_steps": 10**6, "tensorboard": False, "sample_ids": False},
                })
                result = train(cfg)
            init_from = init_from or result.final_model
            rate = result.steps_run / max(result.loop_seconds, 1e-9)
            rows.append(f"| {stage} | {rate:.2f} | {2 * rate:.1f} | {result.steps_run} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="no accelerator needed: tiny models on the CPU")
    parser.add_argument("--out", type=Path, default=None, help="markdown results file")
    parser.add_argument("--train-steps", type=int, default=50, help="timed optimiser steps per training stage")
    parser.add_argument("--budget-s", type=float, default=450.0,
                        help="skip the sections not yet started once this many seconds have passed")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    device = find_accelerator()
    if device is None and not args.dry_run:
        print("accelerator_check: no accelerator (no CUDA GPU or Ascend NPU visible to torch); "
              "nothing measured. Use --dry-run to check the script on the CPU.", file=sys.stderr)
        return EXIT_NO_ACCELERATOR
    dry_run = args.dry_run or device is None
    if dry_run:
        print("accelerator_check: no accelerator in use: dry run with tiny models on the CPU", file=sys.stderr)
    device = torch.device("cpu") if dry_run else device
    assert device is not None
    out = args.out or Path(f"accelerator_check_{socket.gethostname()}{'_dry_run' if dry_run else ''}.md")

    sections: list[tuple[str, Callable[[], list[str]]]] = [
        (f"VGGT-1B aggregator, 32 frames, layer 22 — target: {TARGETS['vggt']}", lambda: vggt_section(device, dry_run)),
        (f"SSR-3D, Qwen2.5-VL-7B size, 32 frames of 336x448 — targets: {TARGETS['engine']}",
         lambda: engine_section(device, dry_run)),
        ("Training, tiny recipe (4 frames of 56x56, batch 2), bf16 mixed precision",
         lambda: training_section(device, dry_run, args.train_steps)),
    ]
    lines = ["# Accelerator check" + (" (DRY RUN: no accelerator, tiny models, numbers meaningless)" if dry_run else ""),
             "", *machine_description(device), ""]
    failed = 0
    for title, run in sections:
        tick = time.perf_counter()
        if tick - start > args.budget_s:
            failed += 1
            lines += [f"## {title}", "", f"skipped: the {args.budget_s:.0f} s budget was used up", ""]
            continue
        try:
            body = run()
        except Exception:  # report and go on: one broken section must not cost the others
            failed += 1
            body = ["```", traceback.format_exc().rstrip(), "```"]
        lines += [f"## {title}", "", *body, "", f"({time.perf_counter() - tick:.1f} s)", ""]
        out.write_text("\n".join(lines) + "\n")  # partial results survive a kill
        if device.type == "cuda":
            torch.cuda.empty_cache()
    lines.append(f"Total: {time.perf_counter() - start:.1f} s; sections failed: {failed}")
    out.write_text("\n".join(lines) + "\n")
    print(f"accelerator_check: results in {out} ({failed} section(s) failed)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
