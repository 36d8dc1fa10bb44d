"""Qwen3-VL as the second base family: SSR-2D reproduces transformers' Qwen3-VL, SSR-3D runs,
round-trips through save/load, and the engine's shared prefix equals full forwards."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from test_training import samples_dir, scalars, tiny_config  # noqa: F401  (samples_dir: fixture)
from transformers import Qwen3VLForConditionalGeneration

from ssr_core.inference.generation import SSRGenerator
from ssr_core.model.configuration_ssr import QWEN3_VL
from ssr_core.model.modeling_ssr import SSRForConditionalGeneration
from ssr_core.model.processing_ssr import SSRInputBuilder, preprocess_frames
from ssr_core.model.tiny import build_tiny_ssr, build_tiny_tokenizer, tiny_qwen3_vl_config

pytestmark = pytest.mark.usefixtures("torch_single_thread")
PROMPT = "How far is the chair from the table?"


def _frames(n, h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def _prompt_ids(model, video, prompt=PROMPT):
    builder = SSRInputBuilder(build_tiny_tokenizer(), model.ssr_config, model.config)
    prefix, suffix = builder.render(prompt)
    return torch.tensor([builder.tokenize(prefix, video.video_grid_thw) + builder.tokenize(suffix)])


def test_ssr2d_reproduces_transformers_qwen3_vl(tmp_path):
    torch.manual_seed(0)
    Qwen3VLForConditionalGeneration(tiny_qwen3_vl_config()).save_pretrained(tmp_path)
    reference = Qwen3VLForConditionalGeneration.from_pretrained(tmp_path, dtype=torch.float32).eval()
    ssr = SSRForConditionalGeneration.from_pretrained(tmp_path).eval()  # plain folder -> SSR-2D
    assert ssr.family == QWEN3_VL and ssr.spatial_branch is None and ssr.ssr_config.image_size == (384, 512)
    # 4 frames of 64x96: T=2 groups, 16-px grid 4x6, merged 2x3, one timestamped span per group
    video = preprocess_frames(_frames(4, 64, 96), (64, 96), 4, ssr.geometry)
    assert video.vggt_images.shape == (1, 4, 3, 56, 84)  # VGGT's 14-px grid = the ViT's 4x6 grid
    input_ids = _prompt_ids(ssr, video)
    text = build_tiny_tokenizer().decode(input_ids[0])
    assert "<0.2 seconds><|vision_start|>" in text and "<1.2 seconds><|vision_start|>" in text
    mm_token_type_ids = (input_ids == ssr.config.video_token_id).int() * 2
    with torch.no_grad():
        expected = reference(
            input_ids=input_ids,
            pixel_values_videos=video.pixel_values_videos,
            video_grid_thw=video.video_grid_thw,
            mm_token_type_ids=mm_token_type_ids,
        ).logits
        got = ssr(input_ids, pixel_values_videos=video.pixel_values_videos, video_grid_thw=video.video_grid_thw).logits
    assert (got - expected).abs().max().item() <= 1e-5
    base_positions, _ = reference.model.get_rope_index(input_ids, mm_token_type_ids, video_grid_thw=video.video_grid_thw)
    assert torch.equal(ssr.position_ids(input_ids, video.video_grid_thw)[0], base_positions)


def test_ssr3d_on_qwen3_vl_round_trips_through_save_and_load(tmp_path):
    model = build_tiny_ssr("3d", num_frames=4, family=QWEN3_VL)
    video = preprocess_frames(_frames(4, 64, 64), model.ssr_config.image_size, 4, model.geometry)
    features = model.encode_video_features(video.pixel_values_videos, video.video_grid_thw, video.vggt_images)
    # per group: 2x2 visual then 2x2 spatial tokens; DeepStack features only for the visual ones
    assert features.embeds.shape == (16, 64) and features.visual_mask.tolist() == ([True] * 4 + [False] * 4) * 2
    assert features.deepstack is not None and [f.shape for f in features.deepstack] == [(8, 64)]
    vggt_file = tmp_path / "vggt.safetensors"
    assert model.vggt is not None
    save_file(dict(model.vggt.state_dict()), str(vggt_file))
    model.save_pretrained(tmp_path / "ckpt")
    loaded = SSRForConditionalGeneration.from_pretrained(tmp_path / "ckpt", vggt=vggt_file).eval()
    assert loaded.family == QWEN3_VL and loaded.spatial_branch is not None
    inputs = {"input_ids": _prompt_ids(model, video), "pixel_values_videos": video.pixel_values_videos,
              "video_grid_thw": video.video_grid_thw, "vggt_images": video.vggt_images}
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, loaded(**inputs).logits)


def test_shared_prefix_engine_matches_full_forwards_on_qwen3_vl():
    model = build_tiny_ssr("3d", num_frames=4, family=QWEN3_VL)
    generator = SSRGenerator(model, build_tiny_tokenizer())
    generator.stop_ids = set()
    frames = _frames(4, 48, 64)
    prompts = [PROMPT, "Which object is closest to the door?", [{"role": "system", "content": "Be brief."},
                                                                   {"role": "user", "content": "Where is bed_2?"}]]
    window = generator.encode_window(frames)
    batched = generator.generate_ids(window, prompts, [5, 3, 4])
    video = generator.inputs.video_inputs(frames)
    for prompt, limit, got in zip(prompts, [5, 3, 4], batched):
        ids = _prompt_ids(model, video, prompt)[0].tolist()
        out: list[int] = []
        while len(out) < limit:
            with torch.no_grad():
                logits = model(torch.tensor([ids + out]), pixel_values_videos=video.pixel_values_videos,
                               video_grid_thw=video.video_grid_thw, vggt_images=video.vggt_images).logits
            out.append(int(logits[0, -1].argmax()))
        assert got == out


@pytest.mark.slow
def test_tiny_recipe_trains_ssr3d_on_qwen3_vl(samples_dir, tmp_path):  # noqa: F811
    """Stage 1 (SSR-2D) then stage 2 (SSR-3D) of the tiny recipe on Qwen3-VL: the loss falls in both,
    and the final SSR-3D folder loads back as a Qwen3-VL SSR-3D model."""
    from training.config import config_from_dict
    from training.train import train

    runs = {}
    for stage in (1, 2):
        model = {"base": "tiny_qwen3_vl"} if stage == 1 else {"init_from": str(runs[1] / "final")}
        lr = {"language": 1e-2, "merger": 1e-2, "vision": 1e-2} if stage == 1 else {"branch_3d": 1e-2, "merger": 1e-3, "language": 1e-3}
        out = tmp_path / f"stage{stage}"
        cfg = tiny_config(stage, out, samples_dir / "fixed8.jsonl", model={**model, "image_size": [64, 64]},
                          optim={"lr": lr, "warmup_steps": 2},
                          train={"max_steps": 12, "batch_size": 8, "grad_accum": 1},
                          checkpoint={"every_steps": 1000}, log={"sample_ids": False})
        result = train(config_from_dict(cfg))
        losses = scalars(out, stage, "train/loss")
        falls_to = 0.8 if stage == 1 else 0.99  # stage 2 starts from the overfit stage-1 model
        assert len(losses) == 12 and sum(losses[-3:]) < falls_to * sum(losses[:3]), losses
        runs[stage] = out
    final = SSRForConditionalGeneration.from_pretrained(result.final_model)
    assert final.family == QWEN3_VL and final.ssr_config.variant == "3d" and not final.ssr_config.zero_shot
