"""Lean loading: weights read straight into the target dtype, an empty (meta) model for the
processes that receive FSDP shards, VGGT converted tensor by tensor, bf16 loads upcast only the
trainable parameters, and FSDP wrap classes the model lacks are dropped."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import save_file

from ssr_core.model.modeling_ssr import SSRForConditionalGeneration
from ssr_core.model.tiny import TINY_VGGT_CONFIG, build_tiny_ssr, save_tiny_base_model
from ssr_core.model.vggt import VGGTAggregator, VGGTConfig, load_vggt_aggregator
from training.train import keep_present_wrap_classes, upcast_trainable

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def test_base_weights_are_read_in_the_target_dtype(tmp_path):
    save_tiny_base_model(tmp_path)
    model = SSRForConditionalGeneration.from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}


def test_non_reading_process_builds_an_empty_model_with_real_buffers(tmp_path):
    reference = build_tiny_ssr("3d", num_frames=2)
    vggt_file = tmp_path / "vggt.safetensors"
    save_file({k: v.contiguous() for k, v in reference.vggt.state_dict().items()}, str(vggt_file))
    reference.save_pretrained(tmp_path / "ckpt")
    empty = SSRForConditionalGeneration.from_pretrained(tmp_path / "ckpt", vggt=vggt_file, read_weights=False)
    assert all(p.is_meta for p in empty.parameters())
    names = {n for n, _ in empty.named_parameters()}
    assert names == {n for n, _ in reference.named_parameters()}
    buffers = dict(empty.named_buffers())  # rotary frequencies are computed, not read: must be real
    assert buffers and not any(b.is_meta for b in buffers.values())
    for name, buffer in reference.named_buffers():
        torch.testing.assert_close(buffers[name], buffer)
    assert not any(p.requires_grad for p in empty.vggt.parameters())


def test_vggt_is_converted_tensor_by_tensor_to_the_requested_dtype(tmp_path):
    config = VGGTConfig(**TINY_VGGT_CONFIG)
    reference = VGGTAggregator(config)
    state = {f"aggregator.{k}": v.contiguous() for k, v in reference.state_dict().items()}
    state["camera_head.weight"] = torch.zeros(2)
    torch.save(state, tmp_path / "model.pt")
    save_file(state, str(tmp_path / "model.safetensors"))
    for name in ("model.pt", "model.safetensors"):
        loaded = load_vggt_aggregator(tmp_path / name, config, dtype=torch.bfloat16)
        assert {p.dtype for p in loaded.parameters()} == {torch.bfloat16}
        for key, value in reference.state_dict().items():
            torch.testing.assert_close(loaded.state_dict()[key], value.to(torch.bfloat16))


def test_bf16_load_upcasts_only_trainable_parameters():
    model = build_tiny_ssr("2d", num_frames=2).to(torch.bfloat16)
    model.base.model.visual.requires_grad_(False)
    upcast_trainable(model)
    dtypes = {n: p.dtype for n, p in model.named_parameters()}
    assert all(d == torch.bfloat16 for n, d in dtypes.items() if n.startswith("base.model.visual."))
    assert all(d == torch.float32 for n, d in dtypes.items() if not n.startswith("base.model.visual."))


def test_fsdp_wrap_classes_absent_from_the_model_are_dropped():
    plugin = SimpleNamespace(transformer_cls_names_to_wrap=["Qwen2_5_VLDecoderLayer", "Qwen2_5_VLVisionBlock", "Block"])
    accelerator = SimpleNamespace(state=SimpleNamespace(fsdp_plugin=plugin))
    keep_present_wrap_classes(accelerator, build_tiny_ssr("2d", num_frames=2))  # type: ignore[arg-type]
    assert plugin.transformer_cls_names_to_wrap == ["Qwen2_5_VLDecoderLayer", "Qwen2_5_VLVisionBlock"]
    keep_present_wrap_classes(accelerator, build_tiny_ssr("3d", num_frames=2))  # type: ignore[arg-type]
    assert plugin.transformer_cls_names_to_wrap == ["Qwen2_5_VLDecoderLayer", "Qwen2_5_VLVisionBlock"]


@pytest.mark.slow
def test_two_process_fsdp_loading_reads_weights_once_and_matches_one_process(tmp_path):
    """bench/lean_loading_bench.py fsdp under torchrun (gloo, CPU): process 1 builds on meta, receives
    its shards from process 0, and the first loss equals the unsharded model's."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    import numpy as np
    from transformers import AutoTokenizer

    from ssr_core.model.processing_ssr import SSRInputBuilder

    folder = save_tiny_base_model(tmp_path / "base")
    bench = Path(__file__).resolve().parents[1] / "bench" / "lean_loading_bench.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(bench),
         "fsdp", "--dir", str(folder), "--steps", "1"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    (line,) = [line for line in run.stdout.splitlines() if line.startswith("{")]
    ranks = {r["rank"]: r for r in json.loads(line)["processes"]}
    assert ranks[0]["reads_weights"] and not ranks[1]["reads_weights"]
    assert ranks[0]["losses"] == ranks[1]["losses"]
    model = SSRForConditionalGeneration.from_pretrained(folder, dtype=torch.bfloat16)
    model.ssr_config.num_frames, model.ssr_config.image_size = 2, (56, 56)
    builder = SSRInputBuilder(AutoTokenizer.from_pretrained(folder), model.ssr_config, model.config)
    frames = np.random.default_rng(0).integers(0, 256, (2, 56, 56, 3), dtype=np.uint8)
    batch = builder.build_training_inputs(frames, "How many chairs are in the room?", "3")
    batch.pop("vggt_images")
    with torch.no_grad():
        assert abs(float(model(**batch).loss) - ranks[0]["losses"][0]) < 1e-3
