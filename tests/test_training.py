"""Training: configs, sample order, parameter groups, and tiny end-to-end runs on CPU.

The slow tests train the tiny random SSR on a few synthetic scenes (data engine, 64x48 renders):
an overfit check, a SIGTERM-interrupted run resumed to the same weights and sample order as an
uninterrupted one, and a two-stage smoke run ending in `ssr_core.evaluation.evaluate`.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from training.checkpointing import (
    STATE_FILE,
    ResumeError,
    TrainerState,
    latest_checkpoint,
    list_checkpoints,
    read_trainer_state,
    resolve_resume,
)
from training.config import ConfigError, config_from_dict, load_config
from training.dataset import EpochBatchSampler, make_tiny_dataset
from training.train import SIGTERM_TEST_HOOK, configure_trainable, epoch_loader, parameter_groups, train

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "training" / "configs"
OVERFIT_MAX_STEPS = 60  # bound for the overfit test (it typically crosses 10 % near step 40)


pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.fixture(scope="module")
def samples_dir(tmp_path_factory) -> Path:
    """Three rendered scenes -> train/val samples; plus small subsets the runs use."""
    out = make_tiny_dataset(tmp_path_factory.mktemp("tiny_data"), num_scenes=3, seed=0, tasks=("vsibench",))
    train = (out / "train.jsonl").read_text().splitlines()
    val = (out / "val.jsonl").read_text().splitlines()
    assert len(train) >= 10 and len(val) >= 3
    (out / "train10.jsonl").write_text("\n".join(train[:10]) + "\n")
    (out / "val3.jsonl").write_text("\n".join(val[:3]) + "\n")
    fixed = []
    for i, line in enumerate(train[:8]):  # short distinct questions: the overfit test stays fast
        s = json.loads(line)
        question = f"{s['question_type']}? Sample {i}."
        fixed.append({"id": f"fixed_{i}", "frames": s["frames"], "messages": [{"role": "user", "content": question}], "answer": s["answer"]})
    (out / "fixed8.jsonl").write_text("".join(json.dumps(s) + "\n" for s in fixed))
    return out


def tiny_config(stage: int, output_dir: Path, train_file: Path, **sections) -> dict:
    """A tiny CPU run: tiny model, 4 frames of 56x56, deterministic."""
    model = {"base": "tiny"} if stage == 1 else {"init_from": None, "vggt": "tiny", "spatial_layer": 1}
    lr = {"language": 1e-3, "merger": 1e-3, "vision": 1e-3} if stage == 1 else {"branch_3d": 1e-3, "merger": 1e-4, "language": 1e-4}
    cfg = {
        "stage": stage,
        "seed": 0,
        "output_dir": str(output_dir),
        "model": {**model, "num_frames": 4, "image_size": [56, 56]},
        "data": {"train": str(train_file)},
        "optim": {"lr": lr, "warmup_steps": 2},
        "train": {"max_steps": 6, "batch_size": 2, "grad_accum": 2, "device": "cpu", "deterministic": True},
        "checkpoint": {"every_steps": 2, "keep_last": 2},
        "log": {"every_steps": 1},
    }
    for name, values in sections.items():
        cfg[name] = {**cfg[name], **values}
    return cfg


def logged_ids(output_dir: Path) -> list[str]:
    lines = (output_dir / "sample_ids_rank0.jsonl").read_text().splitlines()
    return [i for line in lines for i in json.loads(line)["ids"]]


def scalars(output_dir: Path, stage: int, tag: str) -> list[float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(output_dir / "logs" / f"stage{stage}"))
    events.Reload()
    return [e.value for e in events.Scalars(tag)]


# ---------------------------------------------------------------------------- fast checks


def test_shipped_configs_load():
    """Every training YAML validates; every accelerate YAML is readable by accelerate."""
    from accelerate.commands.config.config_args import load_config_from_file

    stages = {p.name: load_config(p).stage for p in CONFIGS.glob("*.yaml")}
    assert stages == {"stage1_tiny.yaml": 1, "stage2_tiny.yaml": 2, "stage1_7b.yaml": 1, "stage2_7b.yaml": 2,
                      "stage1_tiny_qwen3_vl.yaml": 1, "stage2_tiny_qwen3_vl.yaml": 2,
                      "stage1_8b_qwen3_vl.yaml": 1, "stage2_8b_qwen3_vl.yaml": 2,
                      "stage1_small.yaml": 1, "stage2_small.yaml": 2, "warmup_small.yaml": 1}
    assert load_config(CONFIGS / "stage2_8b_qwen3_vl.yaml").model.image_size == (384, 512)
    big = load_config(CONFIGS / "stage2_7b.yaml")
    assert big.model.num_frames == 32 and big.model.gradient_checkpointing and big.train.mixed_precision == "auto"
    kinds = {p.name: str(load_config_from_file(str(p)).distributed_type) for p in (CONFIGS / "accelerate").glob("*.yaml")}
    assert {"FSDP", "DEEPSPEED"} <= {k.split(".")[-1] for k in kinds.values()}
    zero = {yaml.safe_load((CONFIGS / "accelerate" / f"deepspeed_zero{s}.yaml").read_text())["deepspeed_config"]["zero_stage"] for s in (2, 3)}
    assert zero == {2, 3}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"model": {"base": "tiny", "num_frames": 3}}, "num_frames"),
        ({"optim": {"lr": {"vggt": 1e-4}}}, "unknown groups"),
        ({"optim": {"lr": {"branch_3d": 1e-4}}}, "no branch_3d"),
        ({"train": {"batch_size": 2, "typo": 1}}, "unknown keys"),
        ({"train": {"device": "cpu", "mixed_precision": "bf16"}}, "float32"),
        ({"stage": 2}, "init_from"),
    ],
)
def test_config_rejects_mistakes(change, message):
    cfg = {"stage": 1, "output_dir": "x", "model": {"base": "tiny"}, "data": {"train": "t.jsonl"}, "optim": {"lr": {"language": 1e-5}}}
    cfg.update(change)
    with pytest.raises(ConfigError, match=message):
        config_from_dict(cfg)


def test_yaml_float_strings_and_overrides(tmp_path):
    """PyYAML reads 1e-4 as a string; the loader coerces it. Dotted overrides reach nested keys."""
    path = tmp_path / "c.yaml"
    path.write_text("stage: 1\noutput_dir: o\nmodel: {base: tiny}\ndata: {train: t.jsonl}\noptim: {lr: {language: 1e-4}}\n")
    cfg = load_config(path, {"train.max_steps": 3, "model.image_size": [28, 56]})
    assert cfg.optim.lr == {"language": 1e-4} and cfg.train.max_steps == 3 and cfg.model.image_size == (28, 56)


@pytest.mark.parametrize("world", [1, 2, 3])
def test_sampler_covers_epochs_and_resumes_anywhere(world):
    """Each epoch is a seeded permutation split over processes; any (epoch, position) continues it exactly."""
    n, batch = 11, 2
    samplers = [EpochBatchSampler(n, batch, seed=5, world_size=world, rank=r) for r in range(world)]
    for epoch in range(3):
        per_rank = [list(s.batches(epoch)) for s in samplers]
        assert len({len(b) for b in per_rank}) == 1  # same number of micro-batches everywhere
        seen = [i for batches in zip(*per_rank) for b in batches for i in b]
        assert set(seen) == set(range(n)) and len(seen) == -(-n // world) * world
        for start in range(len(per_rank[0]) + 1):
            assert list(samplers[0].batches(epoch, start)) == per_rank[0][start:]
    assert samplers[0].permutation(0).tolist() != samplers[0].permutation(1).tolist()
    if world == 1:
        assert sorted(i for b in samplers[0].batches(0) for i in b) == list(range(n))


def test_epoch_loader_leaves_the_global_rng_alone():
    """A resumed run builds a loader mid-epoch; drawing its seed from torch's global RNG would shift
    every later random draw (dropout) against the uninterrupted run."""
    sampler = EpochBatchSampler(6, 2, seed=3)
    before = torch.random.get_rng_state()
    batches = list(epoch_loader(list(range(6)), sampler, 1, 1, list, num_workers=0, seed=3))
    assert torch.equal(torch.random.get_rng_state(), before)
    assert batches == list(sampler.batches(1, 1))


def test_sample_log_trim_survives_a_line_cut_by_a_hard_kill(tmp_path):
    from training.train import _trim_sample_log

    log = tmp_path / "sample_ids_rank0.jsonl"
    lines = [json.dumps({"step": k, "epoch": 0, "position": k, "ids": [f"s{k}"]}) for k in (1, 2, 3)]
    log.write_text("\n".join(lines) + "\n" + lines[0][:17])  # killed while writing the next line
    _trim_sample_log(log, 2)
    assert log.read_text().splitlines() == lines[:2]


def test_checkpoint_discovery_and_compatibility(tmp_path):
    """Only complete checkpoints count (newest by step, not by name); a different run shape is refused."""
    state = TrainerState(global_step=0, epoch=0, position=0, seed=0, num_samples=10, batch_size=2, grad_accum=2, world_size=1)
    for name in ("step_00000002", "step_00000010", "step_00000004", "step_00000012.tmp", "step_00000020"):
        folder = tmp_path / "checkpoints" / name
        folder.mkdir(parents=True)
        if name != "step_00000020":  # no trainer_state.json: interrupted while saving
            (folder / STATE_FILE).write_text(json.dumps({**state.__dict__, "global_step": int(name[5:13])}))
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000002", "step_00000004", "step_00000010"]
    assert resolve_resume("auto", tmp_path).name == "step_00000010"
    assert resolve_resume("auto", tmp_path / "fresh") is None
    with pytest.raises(ResumeError, match="new output_dir"):
        resolve_resume("none", tmp_path)
    with pytest.raises(ResumeError, match="not a complete checkpoint"):
        resolve_resume(str(tmp_path / "checkpoints" / "step_00000020"), tmp_path)
    read_trainer_state(latest_checkpoint(tmp_path)).check_compatible(state)
    with pytest.raises(ResumeError, match="batch_size"):
        read_trainer_state(latest_checkpoint(tmp_path)).check_compatible(TrainerState(**{**state.__dict__, "batch_size": 4}))


def test_parameter_groups_and_frozen_vggt():
    """Stage-2 groups cover every parameter; lr 0 / unlisted groups freeze; VGGT never trains."""
    from ssr_core.model.tiny import build_tiny_ssr

    model = build_tiny_ssr("3d", num_frames=4)
    groups = parameter_groups(model)
    assert set(groups) == {"branch_3d", "merger", "vision", "language", "vggt"}
    optim_groups = configure_trainable(model, {"branch_3d": 1e-3, "merger": 1e-4, "vision": 0.0}, weight_decay=0.1)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for g in ("branch_3d", "merger") for n, _ in groups[g]}
    in_optimizer = {id(p) for g in optim_groups for p in g["params"]}
    assert in_optimizer == {id(p) for n, p in model.named_parameters() if n in trainable}
    assert {g["name"] for g in optim_groups} == {"branch_3d", "branch_3d/no_decay", "merger", "merger/no_decay"}
    model.vggt.requires_grad_(True)
    configure_trainable(model, {"branch_3d": 1e-3}, weight_decay=0.0)  # re-freezes VGGT
    assert not any(p.requires_grad for p in model.vggt.parameters())
    with pytest.raises(ValueError, match="does not have"):
        configure_trainable(build_tiny_ssr("2d", num_frames=4), {"branch_3d": 1e-3}, weight_decay=0.0)


def test_gradient_checkpointing_keeps_gradients(samples_dir, tmp_path):
    """model.gradient_checkpointing recomputes activations; the gradients stay the same."""
    from accelerate import Accelerator

    from ssr_core.data.sample_format import read_training_samples as read_samples
    from ssr_core.model.processing_ssr import SSRInputBuilder
    from training.config import ModelSection
    from training.dataset import Collator, SampleDataset
    from training.train import build_model

    grads = []
    for checkpointing in (False, True):
        section = ModelSection(base="tiny", num_frames=4, image_size=(56, 56), gradient_checkpointing=checkpointing)
        model, tokenizer = build_model(section, 1, 0, Accelerator(cpu=True), tmp_path)
        dataset = SampleDataset(read_samples(samples_dir / "fixed8.jsonl"), samples_dir, SSRInputBuilder(tokenizer, model.ssr_config, model.config))
        batch = Collator(tokenizer.pad_token_id, with_vggt_images=False)([dataset[0], dataset[1]])
        batch.pop("sample_ids")
        model.train()
        model(**batch).loss.backward()
        assert model.base.is_activation_checkpointing == checkpointing
        grads.append({n: p.grad for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    assert all(torch.allclose(grads[0][n], grads[1][n], atol=1e-6) for n in grads[0])


# ---------------------------------------------------------------------------- tiny runs


def test_text_loss_covers_the_prompt_and_answer_but_not_vision_or_padding(samples_dir, tmp_path):
    """`optim.loss: text` (the small model's language warm-up): its labels are the real text tokens;
    a 2-step run with it trains and logs a finite loss."""
    from ssr_core.model.processing_ssr import IGNORE_INDEX, SSRInputBuilder, collate_training_inputs
    from ssr_core.model.tiny import build_tiny_ssr, build_tiny_tokenizer
    from training.train import text_labels

    model, tokenizer = build_tiny_ssr(variant="2d", num_frames=4, image_size=(56, 56)), build_tiny_tokenizer()
    builder = SSRInputBuilder(tokenizer, model.ssr_config, model.config)
    frames = np.zeros((4, 56, 56, 3), dtype=np.uint8)
    items = [builder.build_training_inputs(frames, "How many chairs are in the room?", "3"),
             builder.build_training_inputs(frames, "Which is closer to the door, the lamp or the sofa?", "lamp")]
    batch = collate_training_inputs(items, tokenizer.pad_token_id)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    labels = text_labels(ids, mask, (model.config.video_token_id, model.config.image_token_id))
    placeholder = ids == model.config.video_token_id
    assert placeholder.any() and (mask == 0).any()  # the first (shorter) sample is padded
    assert (labels[placeholder] == IGNORE_INDEX).all() and (labels[mask == 0] == IGNORE_INDEX).all()
    text = (mask == 1) & ~placeholder
    assert torch.equal(labels[text], ids[text])
    answer = batch["labels"] != IGNORE_INDEX  # every answer token stays a target, the prompt's text joins it
    assert torch.equal(labels[answer], batch["labels"][answer]) and text.sum() > 3 * answer.sum()

    cfg = tiny_config(1, tmp_path, samples_dir / "train10.jsonl", optim={"loss": "text"},
                      train={"max_steps": 2, "grad_accum": 1}, checkpoint={"every_steps": 1000})
    result = train(config_from_dict(cfg))
    assert result.global_step == 2 and math.isfinite(result.last_loss)


@pytest.fixture(scope="module")
def stage1_run(samples_dir, tmp_path_factory) -> Path:
    """Uninterrupted tiny stage 1: 6 steps x 2 micro-batches of 2 over 10 samples (crosses epochs)."""
    out = tmp_path_factory.mktemp("stage1")
    cfg = tiny_config(1, out, samples_dir / "train10.jsonl", data={"val": str(samples_dir / "val3.jsonl")})
    result = train(config_from_dict(cfg))
    assert result.global_step == 6 and not result.stopped_by_signal and result.val_loss is not None
    return out


@pytest.mark.slow
def test_overfit_eight_samples(samples_dir, tmp_path):
    """The answer-token loss on 8 fixed samples drops below 10 % of its start within OVERFIT_MAX_STEPS."""
    cfg = tiny_config(
        1,
        tmp_path,
        samples_dir / "fixed8.jsonl",
        optim={"lr": {"language": 1e-2, "merger": 1e-2, "vision": 1e-2}, "warmup_steps": 5},
        train={"max_steps": OVERFIT_MAX_STEPS, "batch_size": 8, "grad_accum": 1},
        checkpoint={"every_steps": 1000},
        log={"sample_ids": False},
    )
    train(config_from_dict(cfg))
    losses = scalars(tmp_path, 1, "train/loss")
    assert len(losses) == OVERFIT_MAX_STEPS
    below = [step for step, loss in enumerate(losses, 1) if loss < 0.1 * losses[0]]
    assert below, f"loss went {losses[0]:.3f} -> {min(losses):.3f}, never below 10 %"
    print(f"overfit: {losses[0]:.3f} -> below 10 % at step {below[0]}, final {losses[-1]:.3f}")


@pytest.mark.slow
def test_sigterm_resume_matches_uninterrupted(stage1_run, samples_dir, tmp_path):
    """A subprocess stopped by SIGTERM after step 3 and resumed ends with the uninterrupted run's weights and sample order."""
    cfg = tiny_config(1, tmp_path, samples_dir / "train10.jsonl", data={"val": str(samples_dir / "val3.jsonl")})
    config_file = tmp_path / "run.yaml"
    config_file.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, SIGTERM_TEST_HOOK: "3", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "training.train", "--config", str(config_file)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "SIGTERM: checkpoint saved at step 3" in proc.stdout
    assert not (tmp_path / "final").exists()
    stopped = latest_checkpoint(tmp_path)
    assert stopped is not None and read_trainer_state(stopped).global_step == 3
    position = read_trainer_state(stopped)
    assert (position.epoch, position.position) == (1, 1)  # 6 micro-batches done, epochs of 5

    result = train(config_from_dict(cfg))  # resume: auto
    assert result.global_step == 6 and not result.stopped_by_signal
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000004", "step_00000006"]

    expected, resumed = load_file(stage1_run / "final" / "model.safetensors"), load_file(tmp_path / "final" / "model.safetensors")
    assert expected.keys() == resumed.keys()
    worst = max(float((expected[k] - resumed[k]).abs().max()) for k in expected)
    assert worst <= 1e-6, f"weights differ by {worst}"
    assert logged_ids(tmp_path) == logged_ids(stage1_run)
    assert len(logged_ids(stage1_run)) == 6 * 2 * 2
    assert scalars(tmp_path, 1, "train/loss")[-1] == pytest.approx(scalars(stage1_run, 1, "train/loss")[-1], abs=1e-6)


@pytest.mark.slow
def test_sigterm_while_a_step_straddles_the_epoch_end(samples_dir, tmp_path, monkeypatch):
    """SIGTERM during the first half of an optimiser step whose second half lies in the next epoch:
    the step is finished there, checkpointed, and the run stops (10 samples, micro-batches of 2,
    two per step: step 3 is micro-batch 5 of epoch 0 plus micro-batch 1 of epoch 1)."""
    import signal

    import training.train as train_module
    from training.dataset import SampleDataset

    loaded = []

    class SignallingDataset(SampleDataset):
        def __getitem__(self, index):
            loaded.append(index)
            if len(loaded) == 9:  # first sample of micro-batch 5
                os.kill(os.getpid(), signal.SIGTERM)
            return super().__getitem__(index)

    monkeypatch.setattr(train_module, "SampleDataset", SignallingDataset)
    cfg = tiny_config(1, tmp_path, samples_dir / "train10.jsonl", checkpoint={"every_steps": 100}, log={"tensorboard": False})
    result = train(config_from_dict(cfg))
    assert result.stopped_by_signal and result.global_step == 3 and result.final_model is None
    state = read_trainer_state(latest_checkpoint(tmp_path))
    assert (state.global_step, state.epoch, state.position) == (3, 1, 1)
    assert len(loaded) == 3 * 2 * 2


@pytest.mark.slow
def test_two_stage_smoke(stage1_run, samples_dir, tmp_path):
    """Stage 2 from the stage-1 model (fresh 3D branch, frozen VGGT), checkpoint, resume, then evaluate."""
    from ssr_core.commands import evaluate as eval_command
    from ssr_core.model.modeling_ssr import SSRForConditionalGeneration

    out = tmp_path / "stage2"
    cfg = tiny_config(
        2, out, samples_dir / "train10.jsonl",
        model={"init_from": str(stage1_run / "final")}, train={"max_steps": 4}, data={"val": str(samples_dir / "val3.jsonl")},
    )
    os.environ[SIGTERM_TEST_HOOK] = "2"  # the handler catches it in this process too
    try:
        stopped = train(config_from_dict(cfg))
    finally:
        del os.environ[SIGTERM_TEST_HOOK]
    assert stopped.stopped_by_signal and stopped.global_step == 2 and stopped.final_model is None
    result = train(config_from_dict(cfg))
    assert result.global_step == 4 and result.val_loss is not None and math.isfinite(result.val_loss)

    model = SSRForConditionalGeneration.from_pretrained(result.final_model)
    assert model.ssr_config.variant == "3d" and model.vggt is not None
    assert not any(p.requires_grad for p in model.vggt.parameters())
    trained = load_file(latest_checkpoint(out) / "model.safetensors")  # accelerate's copy of the final weights
    assert trained.keys() == model.state_dict().keys()
    assert all(torch.equal(v, trained[k]) for k, v in model.state_dict().items())  # the final folder round-trips

    before, after = SSRForConditionalGeneration.from_pretrained(stage1_run / "final").state_dict(), model.state_dict()
    vision = [k for k in before if k.startswith("base.model.visual.") and ".merger." not in k]
    assert vision and all(torch.equal(before[k], after[k]) for k in vision)  # vision is not in the stage-2 lr map
    assert not all(torch.equal(before[k], after[k]) for k in before if k.startswith("base.model.language_model."))
    assert scalars(out, 2, "lr/branch_3d") and scalars(out, 2, "train/tokens_per_s")[-1] > 0

    code = eval_command.main([
        "run", "--checkpoint", str(result.final_model), "--data", str(samples_dir / "val3.jsonl"),
        "--device", "cpu", "--max-new-tokens", "4", "--out", str(tmp_path / "pred.jsonl"),
    ])
    assert code == 0
    assert len((tmp_path / "pred.jsonl").read_text().splitlines()) == 3


def test_resuming_with_another_schedule_length_is_allowed_but_warned(caplog):
    saved = TrainerState(global_step=4, epoch=0, position=4, seed=0, num_samples=10, batch_size=2, grad_accum=2,
                         world_size=1, total_steps=12)
    with caplog.at_level("WARNING", logger="training.checkpointing"):
        saved.check_compatible(TrainerState(**{**saved.__dict__, "total_steps": 12}))
        assert caplog.records == []
        saved.check_compatible(TrainerState(**{**saved.__dict__, "total_steps": 20}))
    (record,) = caplog.records
    assert "planned for 12 steps with 20 steps" in record.getMessage()
    legacy = TrainerState(**{**saved.__dict__, "total_steps": 0})  # written before the field existed
    legacy.check_compatible(TrainerState(**{**saved.__dict__, "total_steps": 20}))
    assert len(caplog.records) == 1
