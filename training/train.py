"""Two-stage SSR training (paper section 4.2) with accelerate.

    accelerate launch -m training.train --config training/configs/stage1_tiny.yaml
    python -m training.train --config training/configs/stage1_tiny.yaml --set train.max_steps=5

Stage 1 trains SSR-2D (Qwen2.5-VL alone); stage 2 loads the stage-1 model into SSR-3D with a
fresh 3D branch (MLP_trans, MLP_3D) and a frozen VGGT. The config decides which parameter
groups train and at which learning rate (`parameter_groups`). The loss is the base model's
next-token loss on answer tokens only (the input builder masks everything else with -100); the
`text` loss of a warm-up run also predicts the prompt's text (`text_labels`).

SIGTERM: the current optimiser step finishes, a checkpoint is written and the process exits
with status 0; running the same command again resumes from it (`checkpoint.resume: auto`).
Test hook: SSR_TRAIN_SIGTERM_AT_STEP=k makes the process send itself SIGTERM after step k.

Exit statuses (`ssr_core.errors`): 1 for a bad config, sample file, scene or checkpoint (one line
on stderr, before any model is built where the config can tell), 3 when training diverges (a
non-finite loss or gradient stops the run; the last checkpoint is kept), 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import DistributedType, ProjectConfiguration, set_seed
from safetensors.torch import save as safetensors_bytes
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm
from transformers import AutoTokenizer, get_cosine_schedule_with_warmup

from ssr_core.data.sample_format import read_training_samples
from ssr_core.errors import ModelFailure, run_entry_point
from ssr_core.inference.devices import DeviceUnavailableError, resolve_device
from ssr_core.io import atomic_directory, atomic_write_bytes, atomic_write_text
from ssr_core.model.configuration_ssr import QWEN2_5_VL, QWEN3_VL
from ssr_core.model.modeling_ssr import SPATIAL_BRANCH_WEIGHTS, SSRForConditionalGeneration
from ssr_core.model.processing_ssr import IGNORE_INDEX, SSRInputBuilder
from ssr_core.model.tiny import TINY_VGGT_CONFIG, build_tiny_ssr, build_tiny_tokenizer
from training.checkpointing import (
    ResumeError,
    TrainerState,
    load_checkpoint,
    resolve_resume,
    save_checkpoint,
)
from training.config import (
    TRAINABLE_GROUPS,
    ConfigError,
    ModelSection,
    TrainConfig,
    config_to_dict,
    load_config,
)
from training.dataset import Collator, EpochBatchSampler, ResumedBatches, SampleDataset

SIGTERM_TEST_HOOK = "SSR_TRAIN_SIGTERM_AT_STEP"
TINY_BASES = {"tiny": QWEN2_5_VL, "tiny_qwen3_vl": QWEN3_VL}  # training.config.TINY_BASE_NAMES -> family
FINAL_DIR = "final"
TINY_VGGT_FILE = "tiny_vggt.safetensors"
TRAIN_LOG = "train_log.jsonl"  # step, seconds since start, loss, tokens/s, learning rates

# Parameter name prefix -> group, first match wins (names of SSRForConditionalGeneration).
GROUP_PREFIXES = (
    ("vggt.", "vggt"),
    ("spatial_branch.", "branch_3d"),
    ("base.model.visual.merger.", "merger"),
    ("base.model.visual.deepstack_merger_list.", "merger"),  # Qwen3-VL's DeepStack projectors
    ("base.model.visual.", "vision"),
    ("base.model.language_model.", "language"),
    ("base.lm_head.", "language"),
)


class NonFiniteLossError(ModelFailure):
    """The loss or the gradient norm became NaN/inf: the run diverged (exit status 3)."""


@dataclass
class TrainResult:
    """What a finished (or SIGTERM-stopped) run reports."""

    global_step: int
    steps_run: int  # optimiser steps taken by this process run (global_step minus the resumed step)
    loop_seconds: float  # wall time of the training loop (no model build, final save or validation)
    stopped_by_signal: bool
    final_model: Path | None  # None when stopped early
    last_loss: float | None
    val_loss: float | None


# --------------------------------------------------------------------------------------
# Model and parameter groups
# --------------------------------------------------------------------------------------


def _tiny_vggt_file(accelerator: Accelerator, output_dir: Path, seed: int) -> Path:
    """The random tiny VGGT of a tiny stage-2 run, written once so the final model can reload it."""
    from ssr_core.model.vggt import VGGTAggregator, VGGTConfig

    path = (output_dir / TINY_VGGT_FILE).resolve()
    if accelerator.is_main_process and not path.is_file():
        torch.manual_seed(seed)
        vggt = VGGTAggregator(VGGTConfig(**TINY_VGGT_CONFIG))
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, safetensors_bytes({k: v.contiguous() for k, v in vggt.state_dict().items()}))
    accelerator.wait_for_everyone()
    return path


def load_dtype(cfg: ModelSection, mixed_precision: str) -> torch.dtype:
    """The dtype weights are read into (`ModelSection.dtype`)."""
    if cfg.dtype == "auto":
        return torch.bfloat16 if mixed_precision == "bf16" else torch.float32
    return torch.bfloat16 if cfg.dtype == "bfloat16" else torch.float32


def reads_weights(accelerator: Accelerator) -> bool:
    """False on every process but the first under FSDP with `fsdp_cpu_ram_efficient_loading`:
    they build the model on the meta device and accelerate broadcasts process 0's weights into
    their shards at `prepare` (transformers 5 reads the files on every process otherwise).
    DeepSpeed ZeRO-3 with `zero3_init_flag` needs nothing here: transformers then partitions at
    construction and only process 0 copies checkpoint values."""
    plugin = accelerator.state.fsdp_plugin if accelerator.distributed_type == DistributedType.FSDP else None
    return accelerator.is_main_process or plugin is None or not plugin.cpu_ram_efficient_loading


def build_model(
    cfg: ModelSection,
    stage: int,
    seed: int,
    accelerator: Accelerator,
    output_dir: Path,
    dtype: torch.dtype = torch.float32,
) -> tuple[SSRForConditionalGeneration, Any]:
    """(model in `dtype`, tokenizer). Stage 1: SSR-2D from `base`; stage 2: SSR-3D from `init_from`
    (TrainConfig.validate has checked that the stage's paths are set)."""
    read = reads_weights(accelerator)
    if stage == 1:
        assert cfg.base is not None
        if cfg.base in TINY_BASES:
            model = build_tiny_ssr(
                "2d", num_frames=cfg.num_frames, image_size=cfg.image_size, seed=seed, family=TINY_BASES[cfg.base]
            )
            model.to(dtype)
            tokenizer = build_tiny_tokenizer()
        else:
            model = SSRForConditionalGeneration.from_pretrained(cfg.base, dtype=dtype, read_weights=read)
            tokenizer = AutoTokenizer.from_pretrained(cfg.base, local_files_only=True)
    else:
        assert cfg.init_from is not None and cfg.vggt is not None
        tiny = cfg.vggt == "tiny"
        vggt_path = _tiny_vggt_file(accelerator, output_dir, seed) if tiny else Path(cfg.vggt)
        vggt_config = dict(TINY_VGGT_CONFIG) if tiny else None
        if cfg.vggt_config:
            vggt_config = json.loads(Path(cfg.vggt_config).read_text())
        torch.manual_seed(seed)  # the fresh 3D branch's initialisation
        model = SSRForConditionalGeneration.from_ssr2d(
            cfg.init_from,
            vggt_path,
            spatial_layer=cfg.spatial_layer,
            insertion=cfg.insertion,
            vggt_config=vggt_config,
            dtype=dtype,
            read_weights=read,
        )
        tokenizer = AutoTokenizer.from_pretrained(cfg.init_from, local_files_only=True)
    # zero_shot=False: whatever this run saves has been trained for SSR.
    model.ssr_config = replace(
        model.ssr_config, num_frames=cfg.num_frames, image_size=cfg.image_size, zero_shot=False
    )
    if cfg.gradient_checkpointing:
        model.base.activation_checkpointing_enable({"use_reentrant": False})
    return model, tokenizer


def parameter_groups(model: nn.Module) -> dict[str, list[tuple[str, nn.Parameter]]]:
    """Every parameter in exactly one group (`TRAINABLE_GROUPS` or "vggt"); unknown names are an error."""
    groups: dict[str, list[tuple[str, nn.Parameter]]] = {}
    for name, param in model.named_parameters():
        group = next((g for prefix, g in GROUP_PREFIXES if name.startswith(prefix)), None)
        if group is None:
            raise ValueError(f"parameter {name!r} belongs to no training group; update GROUP_PREFIXES")
        groups.setdefault(group, []).append((name, param))
    return groups


def configure_trainable(model: nn.Module, lr: dict[str, float], weight_decay: float) -> list[dict]:
    """Freeze what the config does not train; return AdamW parameter groups (no decay on 1-D tensors)."""
    groups = parameter_groups(model)
    missing = sorted(g for g, v in lr.items() if v > 0 and g not in groups)
    if missing:
        raise ValueError(f"optim.lr trains groups this model does not have: {missing}")
    optim_groups = []
    for group in (*TRAINABLE_GROUPS, "vggt"):
        rate = lr.get(group, 0.0) if group != "vggt" else 0.0
        params = groups.get(group, [])
        for _, p in params:
            p.requires_grad_(rate > 0)
        if rate > 0:
            decay = [p for _, p in params if p.ndim >= 2]
            no_decay = [p for _, p in params if p.ndim < 2]
            optim_groups.append({"name": group, "params": decay, "lr": rate, "weight_decay": weight_decay})
            optim_groups.append({"name": f"{group}/no_decay", "params": no_decay, "lr": rate, "weight_decay": 0.0})
    assert_vggt_frozen(model)
    return [g for g in optim_groups if g["params"]]


def upcast_trainable(model: nn.Module) -> None:
    """float32 master weights for the trainable parameters, converted one tensor at a time (the
    peak stays one tensor above the final size); frozen ones keep the load dtype."""
    for param in model.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()


def keep_present_wrap_classes(accelerator: Accelerator, model: nn.Module) -> None:
    """Drop FSDP wrap classes the model does not contain (the shipped configs list VGGT's `Block`
    for stage 2; accelerate refuses a listed class that is absent, e.g. in stage 1)."""
    plugin = accelerator.state.fsdp_plugin
    listed = plugin.transformer_cls_names_to_wrap
    if not listed:
        return
    present = {type(m).__name__ for m in model.modules()}
    plugin.transformer_cls_names_to_wrap = [name for name in listed if name in present]


def assert_vggt_frozen(model: nn.Module) -> None:
    """VGGT is a fixed feature extractor in both stages (paper section 3.1)."""
    trainable = [n for n, p in model.named_parameters() if n.startswith("vggt.") and p.requires_grad]
    if trainable:
        raise AssertionError(f"VGGT parameters must stay frozen, found trainable: {trainable[:3]} ...")


def set_train_mode(model: nn.Module) -> None:
    """Train mode for everything except VGGT, which keeps its inference behaviour."""
    model.train()
    vggt = getattr(model, "vggt", None)
    if vggt is not None:
        vggt.eval()


def save_final_model(accelerator: Accelerator, model: nn.Module, tokenizer, path: Path) -> None:
    """SSR checkpoint folder (the format of `SSRForConditionalGeneration.save_pretrained`) plus tokenizer.

    The full state dict is gathered first (FSDP / DeepSpeed shard it), so all processes call this.
    VGGT is not stored: its weights path is recorded in ssr_config.json. The folder is written
    under a temporary name and swapped in whole: an earlier final model survives a failed save.
    """
    state = accelerator.get_state_dict(model)
    if not accelerator.is_main_process:
        return
    unwrapped = accelerator.unwrap_model(model)
    with atomic_directory(path) as staging:
        base = {k[len("base.") :]: v for k, v in state.items() if k.startswith("base.")}
        unwrapped.base.save_pretrained(staging, state_dict=base)
        unwrapped.ssr_config.save(staging)
        branch = {k[len("spatial_branch.") :]: v.contiguous() for k, v in state.items() if k.startswith("spatial_branch.")}
        if branch:
            atomic_write_bytes(staging / SPATIAL_BRANCH_WEIGHTS, safetensors_bytes(branch))
        tokenizer.save_pretrained(staging)


# --------------------------------------------------------------------------------------
# Run plumbing
# --------------------------------------------------------------------------------------


class StopRequest:
    """Remembers a SIGTERM so the loop can stop at the next optimiser-step boundary."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame) -> None:
        self.requested = True

    def restore(self) -> None:
        signal.signal(signal.SIGTERM, self._previous)


def _ignore_sigterm(worker_id: int) -> None:
    """DataLoader workers leave SIGTERM to the main process (a process-group kill must not crash the loader)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def epoch_loader(dataset, sampler: EpochBatchSampler, epoch: int, start: int, collator, num_workers: int, seed: int) -> DataLoader:
    """The micro-batches of `epoch` from `start` on. The loader draws its worker seed from its own
    generator, seeded by (seed, epoch), never from the global torch RNG: a resumed run creates a
    loader mid-epoch where the uninterrupted run did not, and must not shift the RNG stream."""
    return DataLoader(
        dataset,
        batch_sampler=ResumedBatches(sampler, epoch, start),
        collate_fn=collator,
        num_workers=num_workers,
        worker_init_fn=_ignore_sigterm,
        generator=torch.Generator().manual_seed(int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])),
    )


def _mixed_precision(cfg: TrainConfig, device: torch.device) -> str:
    if cfg.train.mixed_precision == "auto":
        return "no" if device.type == "cpu" else "bf16"
    return cfg.train.mixed_precision


def _sample_log(output_dir: Path, rank: int) -> Path:
    return output_dir / f"sample_ids_rank{rank}.jsonl"


def _trim_sample_log(path: Path, up_to_step: int) -> None:
    """Keep the log lines of steps <= `up_to_step` (a resumed run rewrites what came after). A line
    cut short by a hard kill (SIGKILL, OOM, node loss) is dropped, not a reason to refuse resuming."""
    if not path.is_file():
        return

    def step(line: str) -> int | None:
        try:
            return int(json.loads(line)["step"])
        except (ValueError, KeyError, TypeError):
            return None

    kept = [line for line in path.read_text().splitlines() if (s := step(line)) is not None and s <= up_to_step]
    atomic_write_text(path, "".join(line + "\n" for line in kept))


def _flat_hparams(cfg: TrainConfig) -> dict:
    """Scalar-only view of the config for TensorBoard's hparams."""
    out: dict = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}{k}.", v)
        else:
            out[prefix[:-1]] = value if isinstance(value, int | float | str | bool) else str(value)

    walk("", config_to_dict(cfg))
    return out


def _answer_tokens(labels: torch.Tensor) -> torch.Tensor:
    """Tokens the loss covers (labels are shifted inside the model)."""
    return (labels[:, 1:] != IGNORE_INDEX).sum()


def _to_device(batch: dict, device: torch.device) -> dict:
    """Tensors and lists of tensors (`vggt_images` holds one tensor per video) to `device`."""
    return {k: [t.to(device) for t in v] if isinstance(v, list) else v.to(device) for k, v in batch.items()}


def sample_mean_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy averaged over each sample's answer tokens, then over samples.

    logits [B, L, V], labels [B, L] (IGNORE_INDEX outside the answers), shifted as the base model does.
    """
    shifted = labels[:, 1:]
    per_token = torch.nn.functional.cross_entropy(
        logits[:, :-1].float().transpose(1, 2), shifted, ignore_index=IGNORE_INDEX, reduction="none"
    )  # [B, L-1]
    counts = (shifted != IGNORE_INDEX).sum(dim=1).clamp(min=1)
    return (per_token.sum(dim=1) / counts).mean()


def text_labels(input_ids: torch.Tensor, attention_mask: torch.Tensor, placeholder_ids: Sequence[int]) -> torch.Tensor:
    """Labels for the `text` loss: every real token except the vision placeholders (their embeddings
    are replaced by visual features, so there is nothing to predict). [B, L] -> [B, L]."""
    ignored = (attention_mask == 0) | torch.isin(input_ids, torch.tensor(list(placeholder_ids), device=input_ids.device))
    return input_ids.masked_fill(ignored, IGNORE_INDEX)


@torch.no_grad()
def evaluate_loss(accelerator: Accelerator, model: nn.Module, loader: DataLoader) -> float:
    """Answer-token loss over a loader, weighted by answer tokens, averaged over processes."""
    model.eval()
    total = torch.zeros(2, dtype=torch.float32, device=accelerator.device)
    for batch in loader:
        batch.pop("sample_ids")
        batch = _to_device(batch, accelerator.device)
        loss = model(**batch).loss
        n = _answer_tokens(batch["labels"])
        total += torch.stack((loss.float() * n, n.float()))
    total = accelerator.reduce(total, "sum")
    set_train_mode(model)
    return float(total[0] / total[1].clamp(min=1))


def check_finite(what: str, value: float, step: int) -> None:
    """Stop a diverged run: a NaN/inf loss or gradient would otherwise poison every weight silently."""
    if not math.isfinite(value):
        raise NonFiniteLossError(
            f"the {what} became {value} at optimiser step {step + 1}; training stopped before the "
            "update (the last checkpoint is intact): lower optim.lr, set optim.max_grad_norm or check the data"
        )


def _prepare_deepspeed(accelerator: Accelerator, cfg: TrainConfig) -> None:
    """Our loader is not `prepare`d (we shard it ourselves), so DeepSpeed gets its batch shape from the config."""
    ds = accelerator.state.deepspeed_plugin.deepspeed_config
    ds["train_micro_batch_size_per_gpu"] = cfg.train.batch_size
    ds["gradient_clipping"] = cfg.optim.max_grad_norm or 0.0


# --------------------------------------------------------------------------------------
# Training loop
# --------------------------------------------------------------------------------------


def train(cfg: TrainConfig) -> TrainResult:
    """Run (or resume) one stage. Process-global torch settings are restored afterwards."""
    previous = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    if cfg.train.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)  # "where possible"
    try:
        return _train(cfg)
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])


def _train(cfg: TrainConfig) -> TrainResult:
    cfg.check_inputs()
    # Sample files are read before any model is built: a bad line costs a second, not a model load.
    train_samples = read_training_samples(cfg.data.train)
    val_samples = read_training_samples(cfg.data.val) if cfg.data.val else None
    output_dir = Path(cfg.output_dir)
    try:
        device = resolve_device(cfg.train.device)  # validates the choice; imports torch_npu for "npu"
    except DeviceUnavailableError as err:
        raise ConfigError(f"train.device {cfg.train.device!r}: {err}") from None
    accelerator = Accelerator(
        cpu=device.type == "cpu",
        mixed_precision=_mixed_precision(cfg, device),
        gradient_accumulation_steps=cfg.train.grad_accum,
        step_scheduler_with_optimizer=False,  # we step it once per optimiser step, not per process
        log_with="tensorboard" if cfg.log.tensorboard else None,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
    )
    set_seed(cfg.seed)
    if accelerator.is_main_process:
        try:
            output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(f"output_dir: cannot create {output_dir} ({err.strerror or err})") from None
        atomic_write_text(output_dir / "config.yaml", yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    accelerator.wait_for_everyone()

    mixed_precision = _mixed_precision(cfg, device)
    model, tokenizer = build_model(
        cfg.model, cfg.stage, cfg.seed, accelerator, output_dir, load_dtype(cfg.model, mixed_precision)
    )
    optim_groups = configure_trainable(model, cfg.optim.lr, cfg.optim.weight_decay)
    if mixed_precision == "bf16":
        upcast_trainable(model)
    if accelerator.distributed_type == DistributedType.FSDP:
        keep_present_wrap_classes(accelerator, model)
    optimizer = torch.optim.AdamW(optim_groups, betas=cfg.optim.betas, eps=cfg.optim.eps)

    builder = SSRInputBuilder(tokenizer, model.ssr_config, model.config)
    placeholder_ids = (model.config.video_token_id, model.config.image_token_id)
    collator = Collator(tokenizer.pad_token_id, with_vggt_images=model.ssr_config.variant == "3d")
    dataset = SampleDataset(train_samples, cfg.data.root_dir, builder, blind=cfg.data.blind)
    world, rank = accelerator.num_processes, accelerator.process_index
    sampler = EpochBatchSampler(len(dataset), cfg.train.batch_size, cfg.seed, world, rank)

    micro_total = sampler.batches_per_epoch * cfg.train.epochs
    total_steps = cfg.train.max_steps or max(1, micro_total // cfg.train.grad_accum)
    warmup = cfg.optim.warmup_steps if cfg.optim.warmup_steps is not None else round(cfg.optim.warmup_ratio * total_steps)
    scheduler = get_cosine_schedule_with_warmup(optimizer, warmup, total_steps)

    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        _prepare_deepspeed(accelerator, cfg)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)

    state = TrainerState(0, 0, 0, cfg.seed, len(dataset), cfg.train.batch_size, cfg.train.grad_accum, world,
                         total_steps=total_steps)
    checkpoint = resolve_resume(cfg.checkpoint.resume, output_dir)
    if checkpoint is not None:
        state = load_checkpoint(accelerator, checkpoint, state)
        if not 0 <= state.position < sampler.batches_per_epoch:  # else the epoch loop would never end
            raise ResumeError(
                f"{checkpoint}: trainer state position {state.position} is outside the "
                f"{sampler.batches_per_epoch} batches of an epoch; the checkpoint was edited or belongs to another run"
            )
        accelerator.print(f"resumed from {checkpoint} at step {state.global_step} (epoch {state.epoch}, batch {state.position})")
    log_path = _sample_log(output_dir, rank) if cfg.log.sample_ids else None
    if log_path is not None:
        _trim_sample_log(log_path, state.global_step)
    if cfg.log.tensorboard:
        accelerator.init_trackers(f"stage{cfg.stage}", config=_flat_hparams(cfg))

    stop = StopRequest()
    hook_step = int(os.environ.get(SIGTERM_TEST_HOOK, "0"))
    set_train_mode(model)
    bar = tqdm(total=total_steps, initial=state.global_step, desc=f"stage {cfg.stage}", disable=not accelerator.is_local_main_process)
    step_loss, step_tokens, step_start = 0.0, 0, time.perf_counter()
    first_step, loop_start = state.global_step, step_start
    last_loss: float | None = None
    stopped = False  # set only at an optimiser-step boundary, after the SIGTERM checkpoint
    try:
        # A SIGTERM is acted on only after a complete optimiser step: one that straddles the end of
        # an epoch is finished in the next epoch's loader, so the loop condition must not look at it.
        while state.global_step < total_steps and not stopped:
            loader = epoch_loader(dataset, sampler, state.epoch, state.position, collator,
                                  cfg.train.num_workers, cfg.seed)
            for batch in loader:
                ids = batch.pop("sample_ids")
                batch = _to_device(batch, accelerator.device)
                with accelerator.accumulate(model):
                    output = model(**batch)
                    if cfg.optim.loss == "token_mean":
                        loss = output.loss
                    elif cfg.optim.loss == "sample_mean":
                        loss = sample_mean_loss(output.logits, batch["labels"])
                    else:
                        labels = text_labels(batch["input_ids"], batch["attention_mask"], placeholder_ids)
                        loss = sample_mean_loss(output.logits, labels)
                    micro_loss = loss.item()
                    check_finite("loss", micro_loss, state.global_step)
                    accelerator.backward(loss)
                    if accelerator.sync_gradients:
                        # max_norm inf measures without clipping; None under DeepSpeed (it clips itself)
                        norm = accelerator.clip_grad_norm_(model.parameters(), cfg.optim.max_grad_norm or math.inf)
                        if norm is not None:
                            check_finite("gradient norm", float(norm), state.global_step)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                step_loss += micro_loss / cfg.train.grad_accum
                step_tokens += int(batch["attention_mask"].sum())
                if log_path is not None:
                    record = {"step": state.global_step + 1, "epoch": state.epoch, "position": state.position, "ids": ids}
                    with open(log_path, "a") as handle:
                        handle.write(json.dumps(record) + "\n")
                state.position += 1
                if state.position == sampler.batches_per_epoch:
                    state.epoch, state.position = state.epoch + 1, 0
                if not accelerator.sync_gradients:
                    continue

                scheduler.step()
                state.global_step += 1
                last_loss = step_loss
                bar.update(1)
                bar.set_postfix(loss=f"{step_loss:.4f}")
                if state.global_step % cfg.log.every_steps == 0 or state.global_step == total_steps:
                    elapsed = time.perf_counter() - step_start
                    stats = accelerator.reduce(torch.tensor([step_loss, step_tokens], device=accelerator.device), "sum")
                    metrics = {"train/loss": float(stats[0]) / world, "train/tokens_per_s": float(stats[1]) / max(elapsed, 1e-9)}
                    for group, rate in zip(optimizer.param_groups, scheduler.get_last_lr()):
                        if not group["name"].endswith("/no_decay"):
                            metrics[f"lr/{group['name']}"] = rate
                    accelerator.log(metrics, step=state.global_step)
                    if accelerator.is_main_process:  # plain-text curve beside TensorBoard (plots, wall times)
                        row = {"step": state.global_step, "seconds": round(time.perf_counter() - loop_start, 2), **metrics}
                        with open(output_dir / TRAIN_LOG, "a") as handle:
                            handle.write(json.dumps(row) + "\n")
                step_loss, step_tokens, step_start = 0.0, 0, time.perf_counter()

                if hook_step and state.global_step == hook_step:
                    os.kill(os.getpid(), signal.SIGTERM)
                stopping = stop.requested
                if world > 1:  # every process must agree, or the checkpoint collectives would hang
                    flag = torch.tensor(float(stopping), device=accelerator.device)
                    stopping = bool(accelerator.reduce(flag, "max") > 0)
                    stop.requested = stopping
                if stopping or state.global_step % cfg.checkpoint.every_steps == 0 or state.global_step == total_steps:
                    save_checkpoint(accelerator, output_dir, state, cfg.checkpoint.keep_last)
                stopped = stopping
                if stopping or state.global_step >= total_steps:
                    break
    finally:
        stop.restore()
        bar.close()
    timing = (state.global_step - first_step, time.perf_counter() - loop_start)

    if stopped and state.global_step < total_steps:
        accelerator.print(f"SIGTERM: checkpoint saved at step {state.global_step}; rerun the same command to resume")
        accelerator.end_training()
        return TrainResult(state.global_step, *timing, True, None, last_loss, None)

    final = output_dir / FINAL_DIR
    save_final_model(accelerator, model, tokenizer, final)
    val_loss = None
    if val_samples is not None:
        val = SampleDataset(val_samples, cfg.data.root_dir, builder, blind=cfg.data.blind)
        val_sampler = EpochBatchSampler(len(val), cfg.train.batch_size, cfg.seed, world, rank)
        val_loader = DataLoader(val, batch_sampler=ResumedBatches(val_sampler, 0, 0), collate_fn=collator)
        val_loss = evaluate_loss(accelerator, model, val_loader)
        accelerator.log({"val/loss": val_loss}, step=state.global_step)
        accelerator.print(f"val answer-token loss {val_loss:.4f}")
    accelerator.wait_for_everyone()
    accelerator.print(f"done: {state.global_step} steps, model in {final}")
    accelerator.end_training()
    return TrainResult(state.global_step, *timing, False, final, last_loss, val_loss)


def parse_overrides(items: Sequence[str]) -> dict:
    """["train.max_steps=5", ...] -> {"train.max_steps": 5} (values parsed as YAML)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not all(key.split(".")):
            raise ConfigError(f"--set expects SECTION.KEY=VALUE, got {item!r}")
        try:
            out[key] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML ({err})") from None
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m training.train`: 0 done (or stopped by SIGTERM with a checkpoint), 1 bad input,
    3 diverged, 130 interrupted (see `ssr_core.errors`)."""
    prog = "training.train"
    parser = argparse.ArgumentParser(prog=prog, description="Train SSR (stage 1: SSR-2D, stage 2: SSR-3D).")
    parser.add_argument("--config", required=True, help="YAML config (training/configs/*.yaml)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value, e.g. train.max_steps=10")
    args = parser.parse_args(argv)

    def run() -> int:
        train(load_config(args.config, parse_overrides(args.set)))
        return 0  # also after SIGTERM: the checkpoint is written and the same command resumes

    return run_entry_point(prog, run)  # SampleFormatError is an InputError


if __name__ == "__main__":
    raise SystemExit(main())
