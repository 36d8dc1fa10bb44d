"""SSRGenerator with a tiny random SSR-3D: shared-prefix batches equal one-by-one full prompts."""

import dataclasses
import logging

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from ssr_core.inference.generation import SSRGenerator
from ssr_core.language.prompts import Prompt
from ssr_core.model.processing_ssr import build_training_inputs, collate_training_inputs
from ssr_core.model.tiny import build_tiny_ssr, build_tiny_tokenizer

SYSTEM = "You reason about a 10x10 cognitive map. Answer with a cell [col, row]."
PROMPTS: list[Prompt] = [
    "How many chairs are in the room?",
    [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "chair_0 is at [5, 5], table_0 at [5, 3]. Where is lamp_1?"},
    ],
    "What is the distance between the sofa and the door?",
    [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Where is bed_2?"}],
    "Which object is closest to the window?",
    [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "sofa_0 at [5, 5], tv_0 at [5, 2]: where is plant_0?"},
    ],
]
LIMITS = [6, 9, 0, 4, 12, 7]


pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.fixture(scope="module")
def tiny():
    model = build_tiny_ssr(variant="3d", insertion="interleaved", num_frames=32, image_size=(56, 56))
    tokenizer = build_tiny_tokenizer()
    frames = np.random.default_rng(1).integers(0, 256, (32, 64, 64, 3), dtype=np.uint8)
    return model, tokenizer, frames


def _one_by_one(generator, frames, prompt, limit):
    """Reference: the whole prompt (prefix + question + answer so far) re-run every step, no cache, batch 1.

    The video is encoded once (what `forward` would recompute identically each step).
    """
    builder, model = generator.inputs, generator.model
    video = builder.video_inputs(frames)
    with torch.no_grad():
        video_embeds = model.encode_video(video.pixel_values_videos, video.video_grid_thw, video.vggt_images)
    prefix, suffix = builder.render(prompt)
    ids = builder.tokenize(prefix, video.video_grid_thw) + builder.tokenize(suffix)
    out: list[int] = []
    while len(out) < limit:
        input_ids = torch.tensor([ids])
        with torch.no_grad():
            logits = model.base(
                inputs_embeds=model.embed_inputs(input_ids, video_embeds),
                position_ids=model.position_ids(input_ids, video.video_grid_thw)[0],
            ).logits[0, -1]
        token = int(logits.argmax())
        if token in generator.stop_ids:
            break
        out.append(token)
        ids.append(token)
    return out


def test_shared_prefix_batches_equal_one_by_one(tiny):
    model, tokenizer, frames = tiny
    generator = SSRGenerator(model, tokenizer, max_batch_size=2)
    window = generator.encode_window(frames)
    assert window.video_embeds is not None and tuple(window.video_embeds.shape) == (128, 64)
    batched = generator.generate_ids(window, PROMPTS, LIMITS)
    assert len(window.prefixes) == 2  # default system and SYSTEM: two shared prefixes
    reference = [_one_by_one(generator, frames, p, n) for p, n in zip(PROMPTS, LIMITS)]
    assert batched == reference
    assert all(len(a) <= n for a, n in zip(batched, LIMITS)) and batched[2] == []
    assert sum(len(a) > 0 for a in batched) >= 3  # the comparison is not vacuous


def test_generate_strings_and_release(tiny):
    model, tokenizer, frames = tiny
    generator = SSRGenerator(model, tokenizer)
    window = generator.encode_window(frames)
    ids = generator.generate_ids(window, PROMPTS[:2], 5)
    texts = generator.generate(window, PROMPTS[:2], [5, 5])
    assert texts == [tokenizer.decode(t, skip_special_tokens=True) for t in ids]
    with pytest.raises(ValueError, match="limits"):
        generator.generate(window, PROMPTS[:2], [5])
    with pytest.raises(ValueError, match="max_batch_size"):
        SSRGenerator(model, tokenizer, max_batch_size=0)
    generator.release(window)
    with pytest.raises(ValueError, match="released"):
        generator.generate(window, PROMPTS[:1], [3])


def test_prompt_rendering(tiny):
    model, tokenizer, _ = tiny
    builder = SSRGenerator(model, tokenizer).inputs
    prefix, suffix = builder.render("Where is the chair?")
    assert prefix.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n")
    assert prefix.endswith("<|vision_start|><|video_pad|><|vision_end|>")
    assert suffix == "Where is the chair?<|im_end|>\n<|im_start|>assistant\n"
    prefix2, _ = builder.render(PROMPTS[1])
    assert prefix2.startswith(f"<|im_start|>system\n{SYSTEM}<|im_end|>")
    with pytest.raises(ValueError):
        builder.render([{"role": "assistant", "content": "hi"}])
    with pytest.raises(ValueError):
        builder.render([{"role": "system", "content": "only a system message"}])


def test_training_inputs_and_batched_loss(tiny):
    model, tokenizer, frames = tiny
    builder = SSRGenerator(model, tokenizer).inputs
    first = build_training_inputs(builder, frames, PROMPTS[1], "[7, 3]")
    second = build_training_inputs(builder, frames[:16], "How many chairs?", "4")
    labels = first["labels"][0]
    supervised = labels[labels != -100].tolist()
    assert tokenizer.decode(supervised) == "[7, 3]<|im_end|>\n"
    assert torch.equal(first["input_ids"][0, -len(supervised) :], torch.tensor(supervised))
    assert (labels[: -len(supervised)] == -100).all()
    batch = collate_training_inputs([first, second], tokenizer.pad_token_id)
    width = batch["input_ids"].shape[1]
    assert batch["position_ids"].shape == (3, 2, width) and batch["video_grid_thw"].tolist() == [
        [16, 4, 4],
        [8, 4, 4],
    ]
    with torch.no_grad():
        out = model(**batch)
        alone = model(**second)
    assert out.loss is not None and torch.isfinite(out.loss)
    n = second["input_ids"].shape[1]  # right padding leaves the real tokens' logits unchanged
    assert torch.allclose(out.logits[1, :n], alone.logits[0], atol=1e-5)


def test_from_checkpoint_round_trip(tiny, tmp_path):
    model, tokenizer, frames = tiny
    assert model.vggt is not None
    vggt_file = tmp_path / "vggt.safetensors"
    save_file(dict(model.vggt.state_dict()), str(vggt_file))
    model.save_pretrained(tmp_path / "ckpt")
    tokenizer.save_pretrained(tmp_path / "ckpt")
    loaded = SSRGenerator.from_checkpoint(tmp_path / "ckpt", device="cpu", vggt_path=vggt_file)
    assert loaded.model.dtype == torch.float32
    original = SSRGenerator(model, tokenizer)
    prompts, limits = PROMPTS[:3], [4, 4, 4]
    expected = original.generate(original.encode_window(frames), prompts, limits)
    assert loaded.generate(loaded.encode_window(frames), prompts, limits) == expected


def test_ssr2d_generator_and_prefill():
    model = build_tiny_ssr(variant="2d", num_frames=8, image_size=(56, 84))
    generator = SSRGenerator(model, build_tiny_tokenizer(), max_batch_size=4)
    frames = np.random.default_rng(2).integers(0, 256, (10, 50, 70, 3), dtype=np.uint8)
    window = generator.encode_window(frames)
    assert window.video_embeds is not None and tuple(window.video_embeds.shape) == (4 * 2 * 3, 64)
    generator.prefill(window, PROMPTS[:2])
    assert len(window.prefixes) == 2
    batched = generator.generate_ids(window, PROMPTS[:4], [5, 6, 7, 8])
    assert batched == [_one_by_one(generator, frames, p, n) for p, n in zip(PROMPTS[:4], [5, 6, 7, 8])]


def test_a_checkpoint_of_another_prompt_format_is_reported(tiny, caplog):
    model, tokenizer, _ = tiny
    with caplog.at_level(logging.WARNING, logger="ssr_core.inference.generation"):
        SSRGenerator(model, tokenizer)
    assert caplog.records == []
    stale = build_tiny_ssr(variant="2d", num_frames=4)
    stale.ssr_config = dataclasses.replace(stale.ssr_config, prompt_format_version="0")
    with caplog.at_level(logging.WARNING, logger="ssr_core.inference.generation"):
        SSRGenerator(stale, tokenizer)
    assert "prompt format '0'" in caplog.text


def test_a_checkpoint_of_a_compatible_prompt_format_loads_quietly(tiny, caplog):
    # Format 2 only adds texts to format 1, so a format-1 checkpoint reads today's prompts as trained.
    _, tokenizer, _ = tiny
    older = build_tiny_ssr(variant="2d", num_frames=4)
    older.ssr_config = dataclasses.replace(older.ssr_config, prompt_format_version="1")
    with caplog.at_level(logging.WARNING, logger="ssr_core.inference.generation"):
        SSRGenerator(older, tokenizer)
    assert caplog.records == []
