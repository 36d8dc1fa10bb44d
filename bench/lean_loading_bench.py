"""Host memory of loading full-size weights: one process in bf16, and 2-process FSDP training.

    python bench/lean_loading_bench.py write --size 3b --out /work/tmp_weights/3b   # random bf16 weights, once
    python bench/lean_loading_bench.py load --dir /work/tmp_weights/3b               # one process, bf16
    torchrun --nproc_per_node 2 bench/lean_loading_bench.py fsdp --dir /work/tmp_weights/3b   # CPU, gloo
    accelerate launch --config_file training/configs/accelerate/fsdp_8gpu.yaml \\
        bench/lean_loading_bench.py train --config ...                                    # GPUs

`write` lays out a Qwen2.5-VL-3B/7B-Instruct folder as the Hugging Face release does (hub key
names, safetensors shards of <= 2 GiB with model.safetensors.index.json, config, tokenizer),
generating one shard's random tensors at a time, so the model is never materialised. `load`
runs `SSRForConditionalGeneration.from_pretrained` in bf16 and reports the resident-set
high-water mark (VmHWM) against the bf16 weight bytes. `train` runs `training.train` and
prints each process's VmHWM at the end (one JSON line per process).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from full_size import peak_rss_bytes, qwen2_5_vl_config  # noqa: E402

SHARD_BYTES = 2 * 2**30


def hub_name(key: str) -> str:
    """transformers 5 module names -> the released checkpoints' key names."""
    for new, old in (("model.language_model.", "model."), ("model.visual.", "visual.")):
        if key.startswith(new):
            return old + key[len(new):]
    return key


def write(size: str, out: Path, seed: int = 0) -> dict:
    from safetensors.torch import save_file
    from transformers import Qwen2_5_VLForConditionalGeneration

    from ssr_core.model.tiny import build_tiny_tokenizer

    config = qwen2_5_vl_config(size)
    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration(config)
    shapes = {hub_name(k): tuple(v.shape) for k, v in model.state_dict().items()}
    if config.tie_word_embeddings:
        shapes.pop("lm_head.weight")
    out.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    shards: list[list[str]] = [[]]
    used = 0
    for name, shape in shapes.items():
        nbytes = 2 * int(torch.Size(shape).numel())
        if shards[-1] and used + nbytes > SHARD_BYTES:
            shards.append([])
            used = 0
        shards[-1].append(name)
        used += nbytes
    weight_map = {}
    total = 0
    for index, names in enumerate(shards, start=1):
        file = f"model-{index:05d}-of-{len(shards):05d}.safetensors"
        tensors = {}
        for name in names:
            t = torch.empty(shapes[name], dtype=torch.bfloat16)
            t.normal_(0.0, 0.02, generator=generator) if t.dim() > 1 else t.fill_(1.0)
            tensors[name] = t
            weight_map[name] = file
            total += t.numel() * 2
        save_file(tensors, str(out / file), metadata={"format": "pt"})
        del tensors
    (out / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=1)
    )
    config.dtype = torch.bfloat16
    config.save_pretrained(out)
    build_tiny_tokenizer().save_pretrained(out)
    return {"size": size, "files": len(shards), "weight_bytes": total, "peak_rss_bytes": peak_rss_bytes()}


def load(directory: Path) -> dict:
    from ssr_core.model.modeling_ssr import SSRForConditionalGeneration

    index = json.loads((directory / "model.safetensors.index.json").read_text())
    weight_bytes = int(index["metadata"]["total_size"])
    before = peak_rss_bytes()
    start = time.perf_counter()
    model = SSRForConditionalGeneration.from_pretrained(directory, dtype=torch.bfloat16)
    seconds = time.perf_counter() - start
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    after_load = peak_rss_bytes()
    with torch.no_grad():  # read every weight once, as the first forward would: all pages resident
        for param in model.parameters():
            torch.amax(param)
    peak = peak_rss_bytes()
    return {
        "dir": str(directory),
        "weight_bytes": weight_bytes,
        "rss_before_load_bytes": before,
        "peak_rss_after_load_bytes": after_load,
        "peak_rss_after_reading_all_weights_bytes": peak,
        "peak_over_weights": round(peak / weight_bytes, 3),
        "rss_now": rss_breakdown(),
        "load_seconds": round(seconds, 1),
    }


def rss_breakdown() -> dict[str, int]:
    """RssAnon (private memory) and RssFile (memory-mapped file pages, reclaimable) in bytes."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key = line.split(":")[0]
        if key in ("RssAnon", "RssFile"):
            fields[key] = int(line.split()[1]) * 1024
    return fields


def train(argv: list[str]) -> dict:
    """`training.train.main(argv)`, with the VmHWM recorded after `accelerator.prepare` (model
    loaded and sharded) and before the final model save (which gathers the full weights on
    process 0), besides the end."""
    import os

    from accelerate import Accelerator

    import training.train as training_module

    marks: dict[str, int] = {}
    prepare, save_final = Accelerator.prepare, training_module.save_final_model

    def prepare_and_mark(self, *args, **kwargs):
        out = prepare(self, *args, **kwargs)
        marks["peak_rss_after_prepare_bytes"] = peak_rss_bytes()
        return out

    def save_and_mark(*args, **kwargs):
        marks["peak_rss_before_final_save_bytes"] = peak_rss_bytes()
        return save_final(*args, **kwargs)

    Accelerator.prepare = prepare_and_mark
    training_module.save_final_model = save_and_mark
    start = time.perf_counter()
    training_module.main(argv)
    return {
        "rank": int(os.environ.get("RANK", "0")),
        **marks,
        "peak_rss_bytes": peak_rss_bytes(),
        "seconds": round(time.perf_counter() - start, 1),
    }


def fsdp(directory: Path, accelerate_config: Path, steps: int) -> dict:
    """One process of `torchrun --nproc_per_node N ... fsdp`: the shipped FSDP2 config's loading
    on CPU/gloo. accelerate (1.15) enables FSDP only on accelerators (on CPU it falls back to
    MULTI_CPU data parallel), so this drives the same pieces `accelerator.prepare` runs under that
    config: `build_model`'s choice (process 0 reads the weights, the others build on meta),
    then accelerate's own `fsdp2_prepare_model` with the config's FSDP plugin (wrap classes,
    `cpu_ram_efficient_loading`: broadcast from process 0 into the shards). Then `steps` training
    steps of the merger (AdamW) on a 2-frame 56x56 sample. Process 0 prints every process's marks."""
    from types import SimpleNamespace

    import numpy as np
    import torch.distributed as dist
    import yaml
    from accelerate.utils import FullyShardedDataParallelPlugin
    from accelerate.utils.fsdp_utils import fsdp2_prepare_model
    from transformers import AutoTokenizer

    from ssr_core.model.modeling_ssr import SSRForConditionalGeneration
    from ssr_core.model.processing_ssr import SSRInputBuilder
    from training.train import keep_present_wrap_classes

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    fsdp_config = yaml.safe_load(accelerate_config.read_text())["fsdp_config"]
    plugin = FullyShardedDataParallelPlugin(
        fsdp_version=fsdp_config["fsdp_version"],
        auto_wrap_policy=fsdp_config["fsdp_auto_wrap_policy"].lower(),
        transformer_cls_names_to_wrap=fsdp_config["fsdp_transformer_layer_cls_to_wrap"].split(","),
        reshard_after_forward=fsdp_config["fsdp_reshard_after_forward"],
        cpu_ram_efficient_loading=fsdp_config["fsdp_cpu_ram_efficient_loading"],
    )
    shim = SimpleNamespace(state=SimpleNamespace(fsdp_plugin=plugin), mixed_precision="no",
                           is_main_process=rank == 0, device=torch.device("cpu"), parallelism_config=None)
    marks: dict[str, object] = {"rank": rank, "reads_weights": rank == 0 or not plugin.cpu_ram_efficient_loading}
    start = time.perf_counter()
    model = SSRForConditionalGeneration.from_pretrained(
        directory, dtype=torch.bfloat16, read_weights=bool(marks["reads_weights"])
    )
    marks["peak_rss_after_build_bytes"] = peak_rss_bytes()
    model.requires_grad_(False)
    model.base.model.visual.merger.requires_grad_(True)
    keep_present_wrap_classes(shim, model)
    model = fsdp2_prepare_model(shim, model)
    marks["peak_rss_after_shard_bytes"] = peak_rss_bytes()
    marks["load_and_shard_seconds"] = round(time.perf_counter() - start, 1)
    local = sum(p.to_local().numel() * p.element_size() for p in model.parameters())
    marks["local_shard_bytes"] = local

    tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    builder = SSRInputBuilder(tokenizer, model.ssr_config, model.config)
    model.ssr_config.num_frames, model.ssr_config.image_size = 2, (56, 56)
    frames = np.random.default_rng(0).integers(0, 256, (2, 56, 56, 3), dtype=np.uint8)
    batch = builder.build_training_inputs(frames, "How many chairs are in the room?", "3")
    batch.pop("vggt_images")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    losses = []
    step_start = time.perf_counter()
    for _ in range(steps):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(round(float(loss.detach()), 4))
    marks["step_seconds"] = round((time.perf_counter() - step_start) / max(steps, 1), 1)
    marks["losses"] = losses
    marks["peak_rss_bytes"] = peak_rss_bytes()
    every: list[dict | None] = [None] * dist.get_world_size()
    dist.gather_object(marks, every if rank == 0 else None, dst=0)  # one line from process 0, not interleaved
    dist.barrier()  # a sender may leave gather before process 0 has received; tearing gloo down then aborts it
    dist.destroy_process_group()
    return {"processes": every} if rank == 0 else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("write")
    w.add_argument("--size", choices=("3b", "7b"), required=True)
    w.add_argument("--out", type=Path, required=True)
    ld = sub.add_parser("load")
    ld.add_argument("--dir", type=Path, required=True)
    sub.add_parser("train").add_argument("rest", nargs=argparse.REMAINDER)
    fs = sub.add_parser("fsdp")
    fs.add_argument("--dir", type=Path, required=True)
    fs.add_argument("--accelerate-config", type=Path,
                    default=Path(__file__).resolve().parents[1] / "training/configs/accelerate/fsdp_8gpu.yaml")
    fs.add_argument("--steps", type=int, default=2)
    args, extra = parser.parse_known_args()
    if args.command == "write":
        result = write(args.size, args.out)
    elif args.command == "load":
        result = load(args.dir)
    elif args.command == "fsdp":
        result = fsdp(args.dir, args.accelerate_config, args.steps)
        if not result:
            return
    else:
        result = train(extra + args.rest)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
