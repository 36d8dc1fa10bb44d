"""VGGT aggregator: checkpoint layout, strict loading and per-layer parity with the official code.

Reference vectors: tests/fixtures/vggt (outputs of the official VGGT code at commit
44b3afb on random weights; see its README). Error measure: max|ours - ref| / max|ref|.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from ssr_core.model.vggt import (
    DEFAULT_SPATIAL_LAYER,
    DinoVisionTransformer,
    VGGTAggregator,
    VGGTCheckpointError,
    VGGTConfig,
    load_vggt_aggregator,
)

FIXTURES = Path(__file__).parent / "fixtures" / "vggt"

TOL = 1e-5
TINY_DINO = VGGTConfig(
    img_size=56, embed_dim=128, depth=4, num_heads=2, patch_embed="dinov2_vits14_reg",
    dino_embed_dim=128, dino_depth=2, dino_num_heads=2,
)
TINY_CONV = VGGTConfig(img_size=56, embed_dim=64, depth=2, num_heads=4, patch_embed="conv")
VARIANTS = {
    "dino": (TINY_DINO, "tiny_aggregator"),
    "conv": (TINY_CONV, "tiny_aggregator_conv"),
}
CASES = [("dino", ""), ("dino", "square_"), ("dino", "tall_"), ("conv", "")]


def rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return ((ours.double() - ref.double()).abs().max() / ref.double().abs().max()).item()


@pytest.fixture(autouse=True)
def _single_thread() -> None:
    torch.set_num_threads(1)  # shared 2-core machine; also keeps reductions deterministic


@functools.cache
def tiny_model(variant: str) -> VGGTAggregator:
    config, stem = VARIANTS[variant]
    return load_vggt_aggregator(FIXTURES / f"{stem}.safetensors", config)


@functools.cache
def tiny_io(variant: str, f64: bool = False) -> dict[str, torch.Tensor]:
    stem = VARIANTS[variant][1] + ("_io_f64" if f64 else "_io")
    return load_file(str(FIXTURES / f"{stem}.safetensors"))


# ---------------------------------------------------------------------------- layout


def test_full_size_layout_matches_official_checkpoint() -> None:
    spec = json.loads((FIXTURES / "vggt_1b_state_dict_shapes.json").read_text())
    expected = [
        (key.removeprefix("aggregator."), tuple(shape))
        for key, shape, _ in spec["state_dict"]
        if key.startswith("aggregator.")
    ]
    with torch.device("meta"):  # no 3.6 GB allocation
        model = VGGTAggregator()
    ours = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    assert ours == expected  # same keys, shapes and order
    assert len(ours) == spec["num_aggregator_state_dict_entries"] == 1210
    assert sum(p.numel() for p in model.parameters()) == spec["aggregator_parameter_count"]
    assert model.patch_start_idx == spec["aggregator_patch_start_idx"] == 5
    assert DEFAULT_SPATIAL_LAYER == 22


@pytest.mark.parametrize("variant", ["dino", "conv"])
def test_tiny_layout_matches_fixture(variant: str) -> None:
    config, stem = VARIANTS[variant]
    spec = json.loads((FIXTURES / f"{stem}_io.json").read_text())
    with torch.device("meta"):
        model = VGGTAggregator(config)
    assert [(k, list(v.shape)) for k, v in model.state_dict().items()] == [
        (k, shape) for k, shape, _ in spec["state_dict"]
    ]


# ---------------------------------------------------------------------------- numerics


@pytest.mark.parametrize(("variant", "prefix"), CASES)
def test_layers_match_official(variant: str, prefix: str) -> None:
    model = tiny_model(variant)
    io, io64 = tiny_io(variant), tiny_io(variant, f64=True)
    images = io[prefix + "images"]
    with torch.no_grad():
        layers, patch_start_idx = model(images)
    assert patch_start_idx == 5 == 1 + model.config.num_register_tokens
    assert len(layers) == model.config.depth
    for i, layer in enumerate(layers):
        key = f"{prefix}layer_{i:02d}"
        assert layer.shape == io[key].shape
        assert rel_err(layer, io[key]) <= TOL, (key, rel_err(layer, io[key]))
        assert rel_err(layer, io64[key]) <= TOL, (key + " (f64)", rel_err(layer, io64[key]))


@pytest.mark.parametrize(("variant", "prefix"), CASES)
def test_intermediates_match_official(variant: str, prefix: str) -> None:
    model = tiny_model(variant)
    io = tiny_io(variant)
    images = io[prefix + "images"]
    B, S, _, H, W = images.shape
    with torch.no_grad():
        normalized = model.normalize(images)
        ours = {"normalized_images": normalized, "patch_embed_out": model.patch_embed(normalized)}
        if variant == "dino":
            dino = model.patch_embed
            assert isinstance(dino, DinoVisionTransformer)
            ours["dino_patch_embed_out"] = dino.patch_embed(normalized)
            ours["dino_pos_embed_interp"] = dino.interpolate_pos_encoding(H // 14, W // 14)
            ours["dino_block0_in"] = dino.prepare_tokens(normalized)
        tokens, pos = model.prepare_tokens(images)
        ours["agg_tokens_in"] = tokens
    for name, value in ours.items():
        ref = io[prefix + name]
        assert value.shape == ref.shape, name
        assert rel_err(value, ref) <= TOL, (name, rel_err(value, ref))
    if variant == "dino":  # torch's antialiased bicubic resize is exactly what DINOv2 ran
        assert rel_err(ours["dino_pos_embed_interp"], io[prefix + "dino_pos_embed_interp"]) < 1e-6
    assert torch.equal(pos.expand(B * S, -1, -1), io[prefix + "agg_pos"])


def test_last_layer_stops_early_and_spatial_features() -> None:
    model = tiny_model("dino")
    io = tiny_io("dino")
    images = io["images"]
    ran: list[int] = []
    hooks = [blk.register_forward_hook(lambda *_, i=i: ran.append(i)) for i, blk in enumerate(model.global_blocks)]
    try:
        with torch.no_grad():
            layers, _ = model(images, last_layer=1)
        assert ran == [0, 1] and len(layers) == 2
        ran.clear()
        feats = model.spatial_features(images, layer=2)
        assert ran == [0, 1, 2]
    finally:
        for h in hooks:
            h.remove()
    assert not feats.requires_grad
    assert feats.shape == (1, 3, 3 * 4, 2 * 128)
    assert rel_err(feats, io["layer_02"][:, :, 5:]) <= TOL
    assert rel_err(layers[1], io["layer_01"]) <= TOL
    # negative indices count from the end; [S,3,H,W] input gets a batch dimension
    assert torch.equal(model.spatial_features(images[0], layer=-1), model.spatial_features(images, layer=3))
    with pytest.raises(ValueError, match="out of range"):
        model.spatial_features(images)  # default layer 22 does not exist in a 4-block model


def test_half_precision_weights_run() -> None:
    model = load_vggt_aggregator(FIXTURES / "tiny_aggregator.safetensors", TINY_DINO, dtype=torch.bfloat16)
    io = tiny_io("dino")
    feats = model.spatial_features(io["images"], layer=3)
    assert feats.dtype == torch.bfloat16
    assert rel_err(feats, io["layer_03"][:, :, 5:]) < 0.05  # bf16 end to end (measured 2e-2)


def test_runs_under_autocast() -> None:
    """The accelerator path (float32 weights + autocast, float32 q/k from LayerNorm) on CPU."""
    model = tiny_model("dino")
    io = tiny_io("dino")
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        layers, _ = model(io["images"])
    assert layers[-1].dtype == torch.float32  # residual stream stays float32
    assert rel_err(layers[-1], io["layer_03"]) < 0.05


# ---------------------------------------------------------------------------- loading


def _tiny_state() -> dict[str, torch.Tensor]:
    return load_file(str(FIXTURES / "tiny_aggregator.safetensors"))


def _full_checkpoint(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    full = {f"aggregator.{k}": v for k, v in state.items()}
    for head in ("camera_head", "point_head", "depth_head", "track_head"):
        full[f"{head}.trunk.0.weight"] = torch.zeros(3, 2)
    return full


def test_load_full_checkpoint_pt_ignores_heads_and_freezes(tmp_path: Path) -> None:
    state = _tiny_state()
    torch.save(_full_checkpoint(state), tmp_path / "model.pt")
    model = load_vggt_aggregator(tmp_path, TINY_DINO)  # directory with model.pt
    assert not model.training
    assert all(not p.requires_grad for p in model.parameters())
    loaded = model.state_dict()
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], state[k]) for k in state)


def test_load_bare_safetensors_and_directory(tmp_path: Path) -> None:
    save_file(_tiny_state(), str(tmp_path / "model.safetensors"))
    a = load_vggt_aggregator(tmp_path / "model.safetensors", TINY_DINO)
    b = load_vggt_aggregator(tmp_path, TINY_DINO)
    assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())


def test_missing_key_is_reported(tmp_path: Path) -> None:
    full = _full_checkpoint(_tiny_state())
    del full["aggregator.frame_blocks.2.attn.q_norm.weight"]
    torch.save(full, tmp_path / "model.pt")
    with pytest.raises(VGGTCheckpointError, match=r"missing keys \(1\): frame_blocks\.2\.attn\.q_norm\.weight"):
        load_vggt_aggregator(tmp_path / "model.pt", TINY_DINO)


def test_wrong_shape_and_unexpected_key_are_reported(tmp_path: Path) -> None:
    state = _tiny_state()
    state["patch_embed.pos_embed"] = torch.zeros(1, 10, 128)
    state["global_blocks.9.norm1.weight"] = torch.zeros(128)
    save_file(state, str(tmp_path / "agg.safetensors"))
    with pytest.raises(VGGTCheckpointError) as err:
        load_vggt_aggregator(tmp_path / "agg.safetensors", TINY_DINO)
    message = str(err.value)
    assert "patch_embed.pos_embed: checkpoint (1, 10, 128) vs model (1, 17, 128)" in message
    assert "unexpected keys (1): global_blocks.9.norm1.weight" in message


def test_full_size_config_rejects_tiny_checkpoint(tmp_path: Path) -> None:
    save_file(_tiny_state(), str(tmp_path / "model.safetensors"))
    with pytest.raises(VGGTCheckpointError, match="shape mismatches"):
        load_vggt_aggregator(tmp_path)  # default VGGT-1B config, built on the meta device


class _Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("arbitrary code ran",))


def test_pickle_payload_is_refused(tmp_path: Path) -> None:
    torch.save({"camera_token": _Payload()}, tmp_path / "model.pt")
    with pytest.raises(VGGTCheckpointError, match="may be malicious") as info:  # never torch's weights_only=False advice
        load_vggt_aggregator(tmp_path / "model.pt", TINY_DINO)
    assert "weights_only" not in str(info.value)
