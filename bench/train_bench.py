"""Training throughput of the tiny configs on CPU: optimiser steps per second, stage 1 and stage 2.

What it measures: `training.train.train` on the tiny random SSR (4 frames of 56x56) over a tiny
rendered data set, float32 on CPU. The time is the training loop only (data loading, forward,
backward, optimiser, logging, and the one checkpoint at the last step); model construction,
the final model save and validation are excluded. The first `--warmup` steps are run and
discarded in a separate run, so one-off costs (allocator, thread pools) do not count.

    python bench/train_bench.py                      # both stages, 20 steps, 1 thread
    python bench/train_bench.py --steps 50 --batch-size 4 --tasks vsibench --threads 2
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.config import config_from_dict  # noqa: E402
from training.dataset import make_tiny_dataset, read_samples  # noqa: E402
from training.train import train  # noqa: E402


def run_stage(stage: int, samples: Path, out: Path, args: argparse.Namespace, steps: int, init_from: Path | None) -> dict:
    model = {"base": "tiny"} if stage == 1 else {"init_from": str(init_from), "vggt": "tiny", "spatial_layer": 1}
    lr = {"language": 1e-4, "merger": 1e-4, "vision": 1e-4} if stage == 1 else {"branch_3d": 1e-4, "merger": 1e-5, "language": 1e-5}
    cfg = config_from_dict({
        "stage": stage,
        "output_dir": str(out),
        "model": {**model, "num_frames": 4, "image_size": [56, 56]},
        "data": {"train": str(samples / "train.jsonl")},
        "optim": {"lr": lr, "warmup_steps": 0},
        "train": {"max_steps": steps, "batch_size": args.batch_size, "grad_accum": args.grad_accum, "device": "cpu"},
        "checkpoint": {"every_steps": 10**6, "resume": "none"},
        "log": {"every_steps": 10**6, "tensorboard": False, "sample_ids": False},
    })
    result = train(cfg)
    return {"steps": result.steps_run, "seconds": result.loop_seconds, "final": result.final_model}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="timed optimiser steps per stage")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps run first")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--tasks", default="cogmap,grounding,vsibench", help="sample families of the tiny data set")
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of the table")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        samples = make_tiny_dataset(root / "data", num_scenes=3, seed=0, tasks=args.tasks.split(","))
        stage1_final = None
        results = {}
        for stage in (1, 2):
            run_stage(stage, samples, root / f"warm{stage}", args, args.warmup, stage1_final)
            timed = run_stage(stage, samples, root / f"stage{stage}", args, args.steps, stage1_final)
            stage1_final = stage1_final or timed["final"]
            results[f"stage{stage}"] = {
                "steps": timed["steps"],
                "seconds": round(timed["seconds"], 3),
                "steps_per_s": round(timed["steps"] / timed["seconds"], 3),
                "samples_per_s": round(timed["steps"] * args.batch_size * args.grad_accum / timed["seconds"], 2),
            }
        num_samples = len(read_samples(samples / "train.jsonl"))

    report = {
        "batch_size": args.batch_size, "grad_accum": args.grad_accum, "threads": args.threads, "tasks": args.tasks,
        "train_samples": num_samples, "cpu": platform.processor() or platform.machine(), "torch": torch.__version__, **results,
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(f"tiny SSR training on CPU ({args.threads} thread(s), batch {args.batch_size} x accum {args.grad_accum}, "
              f"{num_samples} samples: {args.tasks})")
        for stage in ("stage1", "stage2"):
            r = results[stage]
            print(f"  {stage}: {r['steps_per_s']:.2f} steps/s, {r['samples_per_s']:.1f} samples/s ({r['steps']} steps in {r['seconds']:.2f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
