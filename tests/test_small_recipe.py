"""The small-SSR recipe's pieces (issue 10): tokenizer, pretraining targets and heads, blind data,
relocatable checkpoints with their aggregator, and the held-out report's scoring."""

import json
import shutil
from collections import Counter

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from ssr_core.model.configuration_ssr import vision_geometry
from ssr_core.model.modeling_ssr import SSRForConditionalGeneration
from ssr_core.model.processing_ssr import preprocess_frames
from ssr_core.model.tiny import QWEN_SPECIAL_TOKENS, build_tiny_ssr
from ssr_core.model.vggt import VGGTAggregator, VGGTConfig, load_vggt_aggregator
from training.dataset import BLIND_GREY, SampleDataset
from training.geometry import (
    METRICS_FILE,
    AggregatorHeads,
    merge_metrics,
    merged_targets,
    rotation_error_deg,
    rotation_from_6d,
)
from training.small import SMALL_VGGT_CONFIG, build_small_tokenizer, small_qwen2_5_vl_config

TEXTS = [
    "These are frames of a video.\nHow many chair(s) are in this room?",
    '[{"label": "chair", "bbox_7dof": [3.49, -1.65, -0.85, 0.49, 0.54, 0.92, 0.24]}]',
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n",
] * 20


def test_small_tokenizer_round_trips_and_splits_digits():
    tokenizer = build_small_tokenizer(TEXTS, vocab_size=400)
    for text in ("What is 12.75 m?", '{"bbox_7dof": [3.49, -1.65]}', "größe 40 cm"):
        ids = tokenizer(text)["input_ids"]
        assert tokenizer.decode(ids) == text
    assert [t for t in tokenizer.tokenize("2026") if t.strip("Ġ")] == ["2", "0", "2", "6"]
    config = small_qwen2_5_vl_config(tokenizer)
    assert config.video_token_id == tokenizer.convert_tokens_to_ids("<|video_pad|>")
    assert config.text_config.vocab_size == len(tokenizer)
    assert all(tokenizer.convert_tokens_to_ids(t) == i for i, t in enumerate(QWEN_SPECIAL_TOKENS))


def test_merged_targets_follow_the_vit_patch_order():
    """A label equal to each patch's own (frame, row, col) lands where the ViT's merger reads that patch."""
    geometry = vision_geometry(small_qwen2_5_vl_config())
    S, gh, gw = 4, 4, 6
    frame, row, col = np.meshgrid(np.arange(S), np.arange(gh), np.arange(gw), indexing="ij")
    labels = torch.from_numpy(np.stack([frame, row, col], -1)).float()[None]  # [1, S, gh, gw, 3]
    # Make pixels encode (frame, row, col) of their patch and read them back from Qwen's patch order.
    pixels = np.zeros((S, gh * 14, gw * 14, 3), dtype=np.uint8)
    for f in range(S):
        for r in range(gh):
            for c in range(gw):
                pixels[f, r * 14 : (r + 1) * 14, c * 14 : (c + 1) * 14] = (10 * f, 10 * r, 10 * c)
    video = preprocess_frames(pixels, (gh * 14, gw * 14), S, geometry)
    # Qwen patch vector layout: (C, tps, 14, 14); 4 consecutive patches form one merged token.
    patches = video.pixel_values_videos.view(-1, 4, 3, 2, 14, 14)  # [merged, m*m, C, tps, p, p]
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 1, 3, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 1, 3, 1)
    rgb = (patches[..., 0, 0] * std + mean) * 255 / 10  # [merged, m*m, C, tps]
    decoded = rgb.permute(0, 3, 1, 2).reshape(-1, 8, 3).round()  # [merged, tps*m*m, (f, r, c)]
    assert torch.equal(decoded, merged_targets(labels, geometry))


def test_geometry_parts_keep_each_others_metrics(tmp_path):
    """--parts vit and --parts aggregator (one per core) write into one geometry_metrics.json."""
    merge_metrics(tmp_path, {"train_scenes": 4}, {"load_s": 1.0})
    merge_metrics(tmp_path, {"aggregator": {"depth_abs_rel": 0.2}}, {"aggregator_train_s": 9.0})
    merge_metrics(tmp_path, {"vit": {"depth_abs_rel": 0.3}}, {"vit_train_s": 5.0})
    metrics = json.loads((tmp_path / METRICS_FILE).read_text())
    assert metrics["vit"] == {"depth_abs_rel": 0.3} and metrics["aggregator"] == {"depth_abs_rel": 0.2}
    assert metrics["timings"] == {"load_s": 1.0, "aggregator_train_s": 9.0, "vit_train_s": 5.0}


def test_rotation_helpers():
    identity = rotation_from_6d(torch.tensor([[1.0, 0, 0, 0, 1, 0]]))
    assert torch.allclose(identity, torch.eye(3)[None])
    angle = torch.tensor(0.3)
    rz = torch.tensor([[torch.cos(angle), -torch.sin(angle), 0], [torch.sin(angle), torch.cos(angle), 0], [0, 0, 1]])
    assert torch.isclose(rotation_error_deg(rz, torch.eye(3)), torch.rad2deg(angle), atol=1e-3)
    assert torch.allclose(rotation_from_6d(rz[:, :2].T.reshape(6)), rz, atol=1e-6)


def test_aggregator_heads_shapes():
    torch.manual_seed(0)
    agg = VGGTAggregator(VGGTConfig(**SMALL_VGGT_CONFIG)).eval()
    heads = AggregatorHeads(agg.config.embed_dim, agg.patch_start_idx)
    layer = agg(torch.rand(2, 4, 3, 28, 42))[0][-1]
    depth, trans, rot = heads(layer)
    assert depth.shape == (2, 4, 6) and trans.shape == (2, 4, 3) and rot.shape == (2, 4, 3, 3)
    torch.nn.init.zeros_(heads.pose[-1].weight)
    torch.nn.init.zeros_(heads.pose[-1].bias)
    assert torch.allclose(heads(layer)[2], torch.eye(3).expand(2, 4, 3, 3))  # a zero output is "no motion"


class _EchoBuilder:
    def build_training_inputs(self, frames, messages, answer):
        return {"labels": torch.ones(1), "frames": frames}


def test_blind_dataset_shows_constant_frames(tmp_path):
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 255, (28, 28, 3), dtype=np.uint8)).save(tmp_path / "f.png")
    sample = {"id": "s", "frames": ["f.png", "f.png"], "messages": [], "answer": "1"}
    seen = SampleDataset([sample], tmp_path, _EchoBuilder())[0]["frames"]
    blind = SampleDataset([sample], tmp_path, _EchoBuilder(), blind=True)[0]["frames"]
    assert blind.shape == seen.shape and (blind == BLIND_GREY).all() and not (seen == BLIND_GREY).all()


def test_checkpoint_with_its_aggregator_is_relocatable(tmp_path):
    model = build_tiny_ssr(variant="3d", num_frames=4, image_size=(56, 56))
    folder = tmp_path / "a" / "ssr3d"
    model.save_pretrained(folder)
    (folder / "aggregator").mkdir()
    save_file(dict(model.vggt.state_dict()), str(folder / "aggregator" / "model.safetensors"))
    config = json.loads((folder / "ssr_config.json").read_text())
    config["vggt_path"] = "aggregator/model.safetensors"
    (folder / "ssr_config.json").write_text(json.dumps(config))
    moved = tmp_path / "b" / "elsewhere"
    shutil.move(str(tmp_path / "a"), str(moved))
    loaded = SSRForConditionalGeneration.from_pretrained(moved / "ssr3d")
    assert loaded.ssr_config.vggt_path == "aggregator/model.safetensors"
    for key, value in model.vggt.state_dict().items():
        assert torch.equal(loaded.vggt.state_dict()[key], value)
    loaded.save_pretrained(tmp_path / "resaved")  # the relative path survives a re-save
    assert json.loads((tmp_path / "resaved" / "ssr_config.json").read_text())["vggt_path"] == "aggregator/model.safetensors"


def test_small_aggregator_loads_through_the_vggt_loader(tmp_path):
    agg = VGGTAggregator(VGGTConfig(**SMALL_VGGT_CONFIG))
    save_file({k: v.contiguous() for k, v in agg.state_dict().items()}, str(tmp_path / "model.safetensors"))
    loaded = load_vggt_aggregator(tmp_path, VGGTConfig(**SMALL_VGGT_CONFIG))
    assert not any(p.requires_grad for p in loaded.parameters())


def test_report_scores_and_frequency_baseline(tmp_path):
    from ssr_core.evaluation.evaluate import read_samples
    from training.report_small import aggregate, bootstrap_differences, frequency_predictions, per_question

    (tmp_path / "f.png").write_bytes(b"")
    rows = []
    for i, (gt, qtype) in enumerate([(3, "object_counting"), (3, "object_counting"), (5, "object_counting"),
                                     ("A", "object_rel_distance"), ("B", "object_rel_distance")]):
        row = {"id": f"q{i}", "task": "vsibench", "question_type": qtype, "ground_truth": gt, "frames": ["f.png"],
               "messages": [{"role": "user", "content": "?"}], "answer": str(gt)}
        if qtype == "object_rel_distance":
            row["options"] = ["A. chair", "B. table"]
        rows.append(row)
    (tmp_path / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    samples = read_samples(tmp_path / "qa.jsonl")
    freq = frequency_predictions(samples)
    assert freq["q2"] == "3" and freq["q3"] in ("A", "B")
    perfect = per_question(samples, {r["id"]: str(r["ground_truth"]) for r in rows})
    assert aggregate(samples, perfect)["vsi_overall"] == 1.0
    diffs = bootstrap_differences(samples, perfect, per_question(samples, freq), draws=50)
    assert diffs["vsi_overall"]["difference"] > 0 and diffs["vsi_overall"]["ci95"][0] >= 0


def test_total_variation_of_answer_distributions():
    from training.report_small import max_total_variation

    same = {"a": torch.tensor([0.5, 0.5, 0.0]), "b": torch.tensor([0.5, 0.5, 0.0])}
    assert max_total_variation(same) == 0.0
    apart = {**same, "c": torch.tensor([0.0, 0.5, 0.5])}
    assert max_total_variation(apart) == pytest.approx(0.5)
    assert max_total_variation({"only": torch.tensor([1.0])}) == 0.0


@pytest.mark.slow
def test_probe_reads_answer_starts_of_distinct_questions(tmp_path):
    """`report_small probe` on a tiny checkpoint: one distribution per distinct question, summing to 1."""
    from ssr_core.model.tiny import build_tiny_tokenizer
    from training.dataset import make_tiny_dataset
    from training.report_small import answer_start_distributions

    samples = make_tiny_dataset(tmp_path / "data", num_scenes=2, tasks=("vsibench",))
    rows = [json.loads(line) for line in (samples / "train.jsonl").open()]
    question_type = Counter(r["question_type"] for r in rows).most_common(1)[0][0]
    checkpoint = tmp_path / "tiny"
    build_tiny_ssr(variant="2d", num_frames=4, image_size=(56, 56)).save_pretrained(checkpoint)
    build_tiny_tokenizer().save_pretrained(checkpoint)
    dists, _ = answer_start_distributions(checkpoint, samples / "train.jsonl", question_type, limit=3, blind=True)
    distinct = {r["messages"][-1]["content"] for r in rows if r["question_type"] == question_type}
    assert len(dists) == min(3, len(distinct))
    for probs in dists.values():
        assert torch.isclose(probs.sum(), torch.tensor(1.0), atol=1e-4)
    per_window, _ = answer_start_distributions(checkpoint, samples / "train.jsonl", question_type, limit=3, blind=True,
                                               across="windows")
    same, _ = answer_start_distributions(checkpoint, samples / "train.jsonl", question_type, limit=3, blind=False,
                                         same_frames=True)
    assert list(same) == list(dists)
    windows = [key.split(": ")[0] for key in per_window]
    assert len(windows) == len(set(windows)) == min(3, len({r["window"] for r in rows if r["question_type"] == question_type}))


def test_sample_mean_loss_weighs_every_sample_equally():
    from training.train import sample_mean_loss

    torch.manual_seed(0)
    logits = torch.randn(2, 6, 7, requires_grad=True)
    labels = torch.tensor([[-100, -100, 1, 2, 3, 4], [-100, -100, -100, -100, 5, -100]])
    per_sample = [
        torch.nn.functional.cross_entropy(logits[b, :-1], labels[b, 1:], ignore_index=-100) for b in range(2)
    ]
    loss = sample_mean_loss(logits, labels)
    assert torch.isclose(loss, (per_sample[0] + per_sample[1]) / 2)
    loss.backward()
    assert logits.grad is not None


@pytest.mark.slow
def test_copy_probe_finds_every_repeated_label(tmp_path):
    """`report_small copy` on a tiny checkpoint: one probability per "id (label)" of the cognitive-map
    prompts read, each in [0, 1], with the label's frequency among them beside it."""
    import re

    from ssr_core.model.tiny import build_tiny_tokenizer
    from training.dataset import make_tiny_dataset
    from training.report_small import copy_probabilities

    samples = make_tiny_dataset(tmp_path / "data", num_scenes=2, tasks=("cogmap",))
    rows = [json.loads(line) for line in (samples / "train.jsonl").open()][:3]
    checkpoint = tmp_path / "tiny"
    build_tiny_ssr(variant="2d", num_frames=4, image_size=(56, 56)).save_pretrained(checkpoint)
    build_tiny_tokenizer().save_pretrained(checkpoint)
    copied, frequency = copy_probabilities(checkpoint, samples / "train.jsonl", limit=3, blind=True)
    labels = [label for r in rows for label in re.findall(r"\w+ \(([^)]+)\)", r["messages"][-1]["content"])]
    assert len(copied) == len(frequency) == len(labels) > 0
    assert all(0.0 <= p <= 1.0 for p in copied) and all(0.0 < f <= 1.0 for f in frequency)


def test_shipping_refuses_a_model_not_above_blind_and_writes_a_model_card(tmp_path):
    """training.ship_small: a model whose SSR-3D − blind interval reaches 0 is refused; a shipped folder
    is relocatable (its aggregator beside it) and gets a card with the held-out table."""
    from training.ship_small import NotBetterThanBlind, check_beats_blind, model_card, package

    def results(low: float) -> dict:
        return {"differences": {"SSR-3D − blind": {"vsi_overall": {"difference": low + 0.05, "ci95": [low, low + 0.1]}}}}

    for refused in ({}, results(-0.02), results(0.0)):
        with pytest.raises(NotBetterThanBlind):
            check_beats_blind(refused)
    difference = check_beats_blind(results(0.03))

    model = build_tiny_ssr(variant="3d", num_frames=4, image_size=(56, 56))
    model.save_pretrained(tmp_path / "final")
    (tmp_path / "agg").mkdir()
    save_file(dict(model.vggt.state_dict()), str(tmp_path / "agg" / "model.safetensors"))
    (tmp_path / "agg" / "vggt_config.json").write_text("{}")
    package(tmp_path / "final", tmp_path / "agg", tmp_path / "shipped")
    assert json.loads((tmp_path / "shipped" / "ssr_config.json").read_text())["vggt_path"] == "aggregator/model.safetensors"
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "results.md").write_text("| metric | SSR-3D |\n|---|---:|\n| **VSI overall** | 50.0 |\n")

    def scores(overall: float, per_task: dict, acc: float, cells: float) -> dict:
        return {"vsi_overall": overall, "vsi_per_task": per_task, "detect_all_acc_025": acc,
                "detect_all_matched_fraction": 0.5, "cogmap_median_cell_error": cells}

    (tmp_path / "results" / "results.json").write_text(json.dumps({"results": {
        "SSR-3D": scores(0.5, {"object_counting": 0.9, "room_size_estimation": 0.4}, 0.1, 3.0),
        "frequency": scores(0.45, {"object_counting": 0.8, "room_size_estimation": 0.6}, 0.0, 4.0)}}))
    card = model_card(tmp_path / "shipped", tmp_path / "results", difference, "- It reads the category.\n")
    assert "| **VSI overall** | 50.0 |" in card and "+8.0 points" in card and "[3.0, 13.0]" in card
    caveats = card.split("## Caveats")[1]
    assert "below the frequency baseline on room_size_estimation." in caveats  # computed, not typed in
    assert "Acc@0.25 10.0 %" in caveats and "median cell error 3.00 (frequency baseline 4.00)" in caveats
    assert caveats.rstrip().endswith("- It reads the category.")
    assert f"prompt format version {model.ssr_config.prompt_format_version}" in card
