"""SSR model with tiny random configs: 2D parity with transformers, token alignment, shapes, checkpoints."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import Qwen2_5_VLForConditionalGeneration
from transformers.vision_utils import get_vision_position_ids, get_vision_window_index

from ssr_core.language.prompts import PROMPT_FORMAT_VERSION
from ssr_core.model.configuration_ssr import SSRConfig, vision_geometry
from ssr_core.model.modeling_ssr import (
    SPATIAL_BRANCH_WEIGHTS,
    SSRForConditionalGeneration,
    vggt_tokens_in_vit_order,
)
from ssr_core.model.position_ids import video_span_position_ids
from ssr_core.model.processing_ssr import SSRInputBuilder, preprocess_frames
from ssr_core.model.tiny import TINY_VGGT_CONFIG, build_tiny_ssr, build_tiny_tokenizer, tiny_qwen2_5_vl_config
from ssr_core.model.vggt import VGGTAggregator, VGGTConfig

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def _frames(n, h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_tokenizer()


def _prompt_ids(model, tokenizer, video, prompt="How far is the chair from the table?"):
    builder = SSRInputBuilder(tokenizer, model.ssr_config, model.config)
    prefix, suffix = builder.render(prompt)
    ids = builder.tokenize(prefix, video.video_grid_thw) + builder.tokenize(suffix)
    return torch.tensor([ids])


def test_ssr2d_reproduces_transformers_qwen(tmp_path, tokenizer):
    torch.manual_seed(0)
    Qwen2_5_VLForConditionalGeneration(tiny_qwen2_5_vl_config()).save_pretrained(tmp_path)
    reference = Qwen2_5_VLForConditionalGeneration.from_pretrained(tmp_path, dtype=torch.float32).eval()
    ssr = SSRForConditionalGeneration.from_pretrained(tmp_path).eval()  # plain Qwen folder -> SSR-2D
    assert ssr.ssr_config.variant == "2d" and ssr.spatial_branch is None
    # 4 frames of 84x112: T=2 groups, merged grid 3x4, several attention windows
    video = preprocess_frames(_frames(4, 84, 112), (84, 112), 4, ssr.geometry)
    input_ids = _prompt_ids(ssr, tokenizer, video)
    second_per_grid = torch.tensor([ssr.geometry.temporal_patch_size / ssr.ssr_config.video_fps])
    mm_token_type_ids = (input_ids == ssr.config.video_token_id).int() * 2
    with torch.no_grad():
        expected = reference(
            input_ids=input_ids,
            pixel_values_videos=video.pixel_values_videos,
            video_grid_thw=video.video_grid_thw,
            mm_token_type_ids=mm_token_type_ids,
            second_per_grid_ts=second_per_grid,
        ).logits
        got = ssr(
            input_ids, pixel_values_videos=video.pixel_values_videos, video_grid_thw=video.video_grid_thw
        ).logits
    assert (got - expected).abs().max().item() <= 1e-5
    # our explicit positions are the base's own here (both text-after rules agree for this grid)
    base_positions, _ = reference.model.get_rope_index(
        input_ids, mm_token_type_ids, video_grid_thw=video.video_grid_thw, second_per_grid_ts=second_per_grid
    )
    assert torch.equal(ssr.position_ids(input_ids, video.video_grid_thw)[0], base_positions)


def test_pixel_patches_follow_the_vit_position_order():
    """preprocess_frames puts patch (row, col) of frame pair t where the ViT's rotary ids say it is."""
    geo = vision_geometry(tiny_qwen2_5_vl_config())
    n, h, w = 4, 112, 168
    rows, cols = np.meshgrid(np.arange(h) // 14, np.arange(w) // 14, indexing="ij")
    frames = np.stack([np.stack([rows, cols, np.full_like(rows, 10 * f)], axis=-1) for f in range(n)]).astype(
        np.uint8
    )
    video = preprocess_frames(frames, (h, w), n, geo)
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1)
    patches = video.pixel_values_videos.view(-1, 3, 2 * 14 * 14)  # (C, tps, 14, 14) per patch
    pixels = ((patches * std + mean) * 255).round()
    positions = get_vision_position_ids(video.video_grid_thw, geo.merge_size)  # [N, 2] (row, col)
    t, gh, gw = video.video_grid_thw[0].tolist()
    assert torch.equal(pixels[:, 0].amin(-1), positions[:, 0].float())
    assert torch.equal(pixels[:, 1].amax(-1), positions[:, 1].float())
    frame_of_patch = torch.arange(t).repeat_interleave(gh * gw)
    assert torch.equal(pixels[:, 2, : 14 * 14].amax(-1), 20.0 * frame_of_patch)  # first frame of the pair
    assert torch.equal(pixels[:, 2, 14 * 14 :].amax(-1), 20.0 * frame_of_patch + 10)


def test_vggt_tokens_align_with_vit_window_order():
    geo = vision_geometry(tiny_qwen2_5_vl_config())
    t, gh, gw = 2, 8, 12  # merged 4x6 -> 2x3 attention windows of 2x2 merged tokens
    grid = torch.tensor([[t, gh, gw]])
    rows, cols = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
    features = torch.stack(
        [torch.stack([torch.full_like(rows, f), rows, cols], dim=-1).view(gh * gw, 3) for f in range(2 * t)]
    ).unsqueeze(0)  # [1, S, h*w, 3] = (frame, row, col)
    window_index, _ = get_vision_window_index(grid, 2, geo.window_size, geo.patch_size)
    assert not torch.equal(window_index, torch.arange(len(window_index)))  # the reordering is exercised
    aligned = vggt_tokens_in_vit_order(list(features), grid, 2, 2, window_index)  # [N, 6]

    # the ViT's own view of each hidden-state row: (row, col) from its rotary ids, window-permuted
    def to_window_order(x):
        return x.view(-1, 4, x.shape[-1])[window_index].view(x.shape)

    vit_rc = to_window_order(get_vision_position_ids(grid, 2))
    vit_t = to_window_order(torch.arange(t).repeat_interleave(gh * gw).view(-1, 1))[:, 0]
    assert torch.equal(aligned[:, 1:3], vit_rc) and torch.equal(aligned[:, 4:6], vit_rc)
    assert torch.equal(aligned[:, 0], 2 * vit_t) and torch.equal(aligned[:, 3], 2 * vit_t + 1)


def test_vit_hidden_states_are_in_window_order():
    """The tensor the 3D branch adds to is the merger input, in window order (undone by argsort)."""
    model = build_tiny_ssr(variant="2d")
    video = preprocess_frames(_frames(4, 112, 168), (112, 168), 4, model.geometry)
    visual = model.base.model.visual
    geo = model.geometry
    with torch.no_grad():
        out = visual(video.pixel_values_videos, grid_thw=video.video_grid_thw)
        window_index, _ = get_vision_window_index(
            video.video_grid_thw, geo.merge_size, geo.window_size, geo.patch_size
        )
        remerged = visual.merger(out.last_hidden_state)[torch.argsort(window_index)]
    assert torch.allclose(remerged, out.pooler_output, atol=1e-6)


@pytest.mark.parametrize("insertion", ["interleaved", "sequential"])
def test_ssr3d_shapes_at_32_frames(insertion, tokenizer):
    model = build_tiny_ssr(variant="3d", insertion=insertion)
    video = preprocess_frames(_frames(40, 60, 80), (56, 56), 32, model.geometry)
    assert video.video_grid_thw.tolist() == [[16, 4, 4]]
    assert tuple(video.pixel_values_videos.shape) == (16 * 16, 3 * 2 * 14 * 14)
    assert tuple(video.vggt_images.shape) == (1, 32, 3, 56, 56)
    embeds = model.encode_video(video.pixel_values_videos, video.video_grid_thw, video.vggt_images)
    assert tuple(embeds.shape) == (16 * 4 * 2, 64)  # 64 visual + 64 spatial tokens
    with torch.no_grad():  # the visual tokens are the unmodified 2D ones, placed per the layout
        visual = model.base.model.visual(
            video.pixel_values_videos, grid_thw=video.video_grid_thw
        ).pooler_output
    layout = (
        embeds.view(16, 2, 4, 64) if insertion == "interleaved" else embeds.view(2, 16, 4, 64).transpose(0, 1)
    )
    assert torch.allclose(layout[:, 0].reshape(-1, 64), visual, atol=1e-6)
    assert not torch.allclose(layout[:, 1].reshape(-1, 64), visual, atol=1e-3)

    input_ids = _prompt_ids(model, tokenizer, video)
    labels = input_ids.clone()
    out = model(
        input_ids,
        pixel_values_videos=video.pixel_values_videos,
        video_grid_thw=video.video_grid_thw,
        vggt_images=video.vggt_images,
        labels=labels,
    )
    assert tuple(out.logits.shape) == (1, input_ids.shape[1], 272)
    assert out.loss is not None and model.spatial_branch is not None and model.vggt is not None
    out.loss.backward()
    assert model.spatial_branch.mlp_trans[0].weight.grad is not None
    assert model.spatial_branch.mlp_3d.mlp[2].weight.grad is not None
    assert all(p.grad is None for p in model.vggt.parameters())
    positions, nxt = model.position_ids(input_ids, video.video_grid_thw)
    start = int((input_ids[0] == model.config.video_token_id).nonzero()[0])
    span = positions[:, 0, start : start + 128]
    assert torch.equal(span, video_span_position_ids((16, 2, 2), start, insertion))
    assert int(span[0].max()) == start + 31  # temporal indices cover [start, start + 2T)


def test_save_load_round_trip(tmp_path, tokenizer):
    model = build_tiny_ssr(variant="3d", num_frames=4, image_size=(56, 56))
    assert model.vggt is not None
    vggt_file = tmp_path / "vggt" / "model.safetensors"
    vggt_file.parent.mkdir()
    save_file(dict(model.vggt.state_dict()), str(vggt_file))
    ckpt = tmp_path / "ssr"
    model.save_pretrained(ckpt)
    assert {"config.json", "model.safetensors", "ssr_config.json", SPATIAL_BRANCH_WEIGHTS} <= {
        p.name for p in ckpt.iterdir()
    }
    saved = json.loads((ckpt / "ssr_config.json").read_text())
    assert saved["variant"] == "3d" and saved["insertion"] == "interleaved" and saved["num_frames"] == 4
    assert saved["image_size"] == [56, 56] and saved["spatial_layer"] == 1 and saved["vggt_path"] is None
    assert isinstance(saved["prompt_format_version"], str)

    loaded = SSRForConditionalGeneration.from_pretrained(ckpt, vggt=vggt_file).eval()
    assert loaded.ssr_config.vggt_path == str(vggt_file)
    video = preprocess_frames(_frames(4, 56, 56), (56, 56), 4, model.geometry)
    inputs = {
        "input_ids": _prompt_ids(model, tokenizer, video),
        "pixel_values_videos": video.pixel_values_videos,
        "video_grid_thw": video.video_grid_thw,
        "vggt_images": video.vggt_images,
    }
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, loaded(**inputs).logits)
    # the recorded VGGT path is used when none is given
    loaded.save_pretrained(ckpt)
    again = SSRForConditionalGeneration.from_pretrained(ckpt).eval()
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, again(**inputs).logits)


def test_checkpoint_with_missing_or_unexpected_weights_is_refused(tmp_path):
    build_tiny_ssr(variant="2d").save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    state = load_file(str(weights))
    dropped = next(k for k in state if "layers.1.mlp" in k)
    save_file({k: v for k, v in state.items() if k != dropped}, str(weights), metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"missing keys: \S*" + dropped.split(".", 1)[1].replace(".", r"\.")):
        SSRForConditionalGeneration.from_pretrained(tmp_path)
    save_file({**state, "model.extra.weight": torch.zeros(2)}, str(weights), metadata={"format": "pt"})
    with pytest.raises(ValueError, match="unexpected keys"):
        SSRForConditionalGeneration.from_pretrained(tmp_path)
    save_file(state, str(weights), metadata={"format": "pt"})
    assert SSRForConditionalGeneration.from_pretrained(tmp_path).ssr_config.variant == "2d"


def test_from_ssr2d_keeps_base_and_adds_fresh_branch(tmp_path):
    two_d = build_tiny_ssr(variant="2d")
    two_d.ssr_config.prompt_format_version = "0"  # stage 1 trained on older prompts
    two_d.save_pretrained(tmp_path)
    assert not (tmp_path / SPATIAL_BRANCH_WEIGHTS).exists()
    vggt = VGGTAggregator(VGGTConfig(**TINY_VGGT_CONFIG)).eval()
    three_d = SSRForConditionalGeneration.from_ssr2d(
        tmp_path, vggt, spatial_layer=1, insertion="sequential", vggt_config=dict(TINY_VGGT_CONFIG)
    )
    assert three_d.ssr_config.variant == "3d" and three_d.ssr_config.insertion == "sequential"
    assert three_d.ssr_config.prompt_format_version == PROMPT_FORMAT_VERSION  # what stage 2 trains on
    assert three_d.vggt is vggt and three_d.spatial_branch is not None
    for (name, a), (_, b) in zip(two_d.base.state_dict().items(), three_d.base.state_dict().items()):
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match="SSR-2D"):
        SSRForConditionalGeneration.from_ssr2d(three_d, vggt)


def test_config_validation():
    with pytest.raises(ValueError):
        SSRConfig(image_size=(50, 56))
    with pytest.raises(ValueError):
        SSRConfig(num_frames=3)
    with pytest.raises(ValueError):
        SSRConfig(insertion="mixed")
    with pytest.raises(ValueError, match="unknown"):
        SSRConfig.from_dict({"variant": "2d", "colour": 1})
