"""Training configuration: explicit dataclasses loaded from YAML and validated before anything heavy runs.

A config file mirrors `TrainConfig`: top-level `stage`, `seed`, `output_dir` and one mapping per
section (`model`, `data`, `optim`, `train`, `checkpoint`, `log`). Unknown keys are errors, so a
typo never silently falls back to a default. Relative paths are resolved against the current
working directory (run from the repository root).
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ssr_core.errors import InputError

# Parameter groups the optimiser knows (see `training.train.parameter_groups`).
TRAINABLE_GROUPS = ("branch_3d", "merger", "vision", "language")
MIXED_PRECISION = ("auto", "bf16", "no")
LOAD_DTYPES = ("auto", "bfloat16", "float32")
LOSS_REDUCTIONS = ("token_mean", "sample_mean", "text")
TINY_BASE_NAMES = ("tiny", "tiny_qwen3_vl")  # model.base values naming a random tiny model, not a folder
DEVICES = ("auto", "cpu", "cuda", "npu")


MAX_SEED = 2**32 - 1  # numpy's and accelerate's seed range


class ConfigError(InputError):
    """The YAML does not describe a valid training run (reported as one line, exit status 1)."""


@dataclass
class ModelSection:
    """Which model to build.

    Stage 1 (SSR-2D): `base` is a local Qwen2.5-VL or Qwen3-VL folder (no downloads; the family
    comes from its config.json), or "tiny" / "tiny_qwen3_vl" (random tiny model of that family
    from `ssr_core.model.tiny.build_tiny_ssr`).
    Stage 2 (SSR-3D): `init_from` is the stage-1 output model folder (`<output_dir>/final`), `vggt`
    the VGGT aggregator weights (or "tiny" for the random tiny aggregator that `init_from` was
    built for) and `vggt_config` a JSON file of `VGGTConfig` fields for an aggregator that is not
    VGGT-1B (e.g. the small pretrained one of `training.geometry`); the 3D branch (MLP_trans,
    MLP_3D) starts fresh.
    `num_frames` / `image_size` set the window shape fed to the model in both stages.
    `dtype` is what the weights are read into: "auto" = bfloat16 when training in bf16 mixed
    precision (trainable parameters are then upcast to float32 master weights one tensor at a
    time, frozen ones stay bfloat16), float32 otherwise. "bfloat16" with mixed_precision "no"
    trains in pure bfloat16 (memory checks on CPU only).
    """

    base: str | None = None
    init_from: str | None = None
    vggt: str | None = None
    vggt_config: str | None = None
    spatial_layer: int = 22
    insertion: str = "interleaved"
    num_frames: int = 32
    image_size: tuple[int, int] = (336, 448)
    gradient_checkpointing: bool = False
    dtype: str = "auto"


@dataclass
class DataSection:
    """JSONL sample files (docs/ARCHITECTURE.md, "Training samples"); frame paths are relative to `root`.

    `blind`: every frame is replaced by a constant grey image (the blind baseline: same recipe,
    nothing to see).
    """

    train: str = ""
    val: str | None = None
    root: str | None = None  # default: the folder holding `train`
    blind: bool = False

    @property
    def root_dir(self) -> Path:
        return Path(self.root) if self.root else Path(self.train).parent


@dataclass
class OptimSection:
    """AdamW with one learning rate per parameter group; groups not listed are frozen.

    `lr` maps group names (`TRAINABLE_GROUPS`) to learning rates. VGGT is never trainable.
    Warm-up is `warmup_steps` if given, else `warmup_ratio` of the total optimiser steps; the
    schedule is transformers' cosine-with-warm-up (decays to 0 at the last step).
    `loss`: "token_mean" (the base model's loss: mean over the batch's answer tokens, so a long
    answer weighs as much as many short ones) or "sample_mean" (mean over each sample's answer
    tokens, then over samples: a one-token VSI answer weighs as much as a detect-all list) or
    "text" (a language-model warm-up: every text token of the prompt and the answer is a target,
    the vision placeholders and padding are not; mean per sample, then over samples).
    """

    lr: dict[str, float] = field(default_factory=dict)
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_steps: int | None = None
    warmup_ratio: float = 0.03
    max_grad_norm: float | None = 1.0
    loss: str = "token_mean"


@dataclass
class TrainSection:
    """Loop shape. `max_steps` (optimiser steps) overrides `epochs` when set.

    One optimiser step consumes `grad_accum` micro-batches of `batch_size` samples on every
    process; the micro-batch stream runs through the epochs without a break, so an optimiser
    step may straddle an epoch boundary. `mixed_precision` "auto" means bf16 on accelerators and
    float32 on CPU.
    """

    epochs: int = 1
    max_steps: int | None = None
    batch_size: int = 1
    grad_accum: int = 1
    mixed_precision: str = "auto"
    device: str = "auto"
    deterministic: bool = False
    num_workers: int = 0


@dataclass
class CheckpointSection:
    """Checkpoint every `every_steps` optimiser steps (and on SIGTERM), keep the newest `keep_last`.

    `resume`: "auto" (newest complete checkpoint in `<output_dir>/checkpoints`, if any), "none",
    or the path of one checkpoint folder.
    """

    every_steps: int = 500
    keep_last: int = 2
    resume: str = "auto"


@dataclass
class LogSection:
    """Scalars every `every_steps` steps to TensorBoard (`<output_dir>/logs`); sample ids per micro-batch."""

    every_steps: int = 10
    tensorboard: bool = True
    sample_ids: bool = True  # <output_dir>/sample_ids_rank<r>.jsonl: which samples each step used


@dataclass
class TrainConfig:
    stage: int
    output_dir: str
    seed: int = 0
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    train: TrainSection = field(default_factory=TrainSection)
    checkpoint: CheckpointSection = field(default_factory=CheckpointSection)
    log: LogSection = field(default_factory=LogSection)

    def validate(self) -> TrainConfig:
        """Raise `ConfigError` on any inconsistency; returns self for chaining."""
        m, o, t, c = self.model, self.optim, self.train, self.checkpoint
        if self.stage not in (1, 2):
            raise ConfigError(f"stage must be 1 or 2, got {self.stage}")
        if not self.output_dir:
            raise ConfigError("output_dir is required")
        if not 0 <= self.seed <= MAX_SEED:
            raise ConfigError(f"seed must be in [0, 2**32 - 1], got {self.seed}")
        if self.stage == 1:
            if not m.base:
                raise ConfigError("stage 1 needs model.base (a local Qwen2.5-VL / Qwen3-VL folder, 'tiny' or 'tiny_qwen3_vl')")
            if m.init_from or m.vggt or m.vggt_config:
                raise ConfigError("stage 1 trains SSR-2D: model.init_from, model.vggt and model.vggt_config must be unset")
            if "branch_3d" in o.lr:
                raise ConfigError("stage 1 (SSR-2D) has no branch_3d parameters")
        else:
            if m.base:
                raise ConfigError("stage 2 starts from the stage-1 model: set model.init_from, not model.base")
            if not m.init_from or not m.vggt:
                raise ConfigError("stage 2 needs model.init_from (stage-1 model folder) and model.vggt")
            if m.vggt == "tiny" and m.vggt_config:
                raise ConfigError("model.vggt 'tiny' brings its own config: leave model.vggt_config unset")
            if o.lr.get("branch_3d", 0.0) <= 0.0:
                raise ConfigError("stage 2 must train the fresh 3D branch: set optim.lr.branch_3d > 0")
        if m.insertion not in ("interleaved", "sequential"):
            raise ConfigError(f"model.insertion must be interleaved or sequential, got {m.insertion!r}")
        if m.spatial_layer < 0:
            raise ConfigError(f"model.spatial_layer must be >= 0, got {m.spatial_layer}")
        if m.dtype not in LOAD_DTYPES:
            raise ConfigError(f"model.dtype must be one of {LOAD_DTYPES}, got {m.dtype!r}")
        if m.num_frames < 2 or m.num_frames % 2:
            raise ConfigError(f"model.num_frames must be even and >= 2, got {m.num_frames}")
        if any(s <= 0 or s % 28 and s % 32 for s in m.image_size):  # 2 x the patch: 14 px Qwen2.5-VL, 16 px Qwen3-VL
            raise ConfigError(f"model.image_size must be positive multiples of 28 (32 for Qwen3-VL), got {m.image_size}")
        if not self.data.train:
            raise ConfigError("data.train (a JSONL file) is required")
        unknown = sorted(set(o.lr) - set(TRAINABLE_GROUPS))
        if unknown:
            raise ConfigError(f"optim.lr has unknown groups {unknown}; known: {TRAINABLE_GROUPS} (VGGT never trains)")
        if not any(v > 0 for v in o.lr.values()):
            raise ConfigError("optim.lr trains nothing: give at least one group a positive learning rate")
        if any(v < 0 for v in o.lr.values()):
            raise ConfigError("learning rates must be >= 0 (0 freezes the group)")
        if o.weight_decay < 0:
            raise ConfigError(f"optim.weight_decay must be >= 0, got {o.weight_decay}")
        if not all(0.0 <= b < 1.0 for b in o.betas):
            raise ConfigError(f"optim.betas must be in [0, 1), got {list(o.betas)}")
        if not o.eps > 0:
            raise ConfigError(f"optim.eps must be > 0, got {o.eps}")
        if o.max_grad_norm is not None and not o.max_grad_norm > 0:
            # torch would flip the gradients' sign for a negative norm (gradient ascent)
            raise ConfigError(f"optim.max_grad_norm must be > 0 (or null for no clipping), got {o.max_grad_norm}")
        if (o.warmup_steps is not None and o.warmup_steps < 0) or not 0.0 <= o.warmup_ratio < 1.0:
            raise ConfigError("warmup_steps must be >= 0 and warmup_ratio in [0, 1)")
        if o.loss not in LOSS_REDUCTIONS:
            raise ConfigError(f"optim.loss must be one of {LOSS_REDUCTIONS}, got {o.loss!r}")
        if t.epochs < 1 or (t.max_steps is not None and t.max_steps < 1):
            raise ConfigError("train.epochs and train.max_steps must be >= 1")
        if t.batch_size < 1 or t.grad_accum < 1 or t.num_workers < 0:
            raise ConfigError("train.batch_size and train.grad_accum must be >= 1, num_workers >= 0")
        if t.mixed_precision not in MIXED_PRECISION:
            raise ConfigError(f"train.mixed_precision must be one of {MIXED_PRECISION}")
        if t.device not in DEVICES:
            raise ConfigError(f"train.device must be one of {DEVICES}")
        if t.device == "cpu" and t.mixed_precision == "bf16":
            raise ConfigError("CPU runs train in float32: use mixed_precision auto or no")
        if c.every_steps < 1 or c.keep_last < 1:
            raise ConfigError("checkpoint.every_steps and checkpoint.keep_last must be >= 1")
        if self.log.every_steps < 1:
            raise ConfigError("log.every_steps must be >= 1")
        if c.resume not in ("auto", "none") and not c.resume:
            raise ConfigError("checkpoint.resume must be auto, none or a checkpoint folder")
        return self

    def check_inputs(self) -> TrainConfig:
        """Raise `ConfigError` unless every input the run reads exists and the output folder is usable.

        Separate from `validate` (which needs no file system) and run before any model is built:
        a missing `model.base` must not reach transformers, which would take it for a hub repo id.
        """
        m = self.model
        files = [("data.train", self.data.train)] + ([("data.val", self.data.val)] if self.data.val else [])
        for key, value in files:
            if not Path(value).is_file():
                raise ConfigError(f"{key}: no such file {value}")
        if self.data.root and not Path(self.data.root).is_dir():
            raise ConfigError(f"data.root: no such folder {self.data.root}")
        for key, folder in (("model.base", m.base), ("model.init_from", m.init_from)):
            if folder and folder not in TINY_BASE_NAMES and not (Path(folder) / "config.json").is_file():
                raise ConfigError(f"{key}: {folder} is not a local model folder (no config.json); nothing is downloaded")
        if m.vggt and m.vggt != "tiny" and not Path(m.vggt).exists():
            raise ConfigError(f"model.vggt: no such file or folder {m.vggt}")
        out = Path(self.output_dir)
        if out.exists() and not out.is_dir():
            raise ConfigError(f"output_dir: {out} exists and is not a folder")
        existing = next((p for p in (out, *out.parents) if p.exists()), Path("."))
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            raise ConfigError(f"output_dir: {out} cannot be created ({existing} is not a writable folder)")
        resume = self.checkpoint.resume
        if resume not in ("auto", "none") and not (Path(resume) / "trainer_state.json").is_file():
            raise ConfigError(f"checkpoint.resume: {resume} is not a checkpoint folder (no trainer_state.json)")
        return self


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """YAML value -> the annotated type (dataclasses recursively; PyYAML reads 1e-4 as a string)."""
    if isinstance(annotation, str):
        raise TypeError(f"unresolved annotation at {where}")
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        if value is None:
            raise ConfigError(f"{where} must not be null")
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(value, inner, where)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping")
        return _build(typing.cast(type, annotation), value, where)
    try:
        if origin is tuple:
            if not isinstance(value, list | tuple) or len(value) != len(args):
                raise ConfigError(f"{where} must be a list of {len(args)} values")
            return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        if origin is dict:
            if not isinstance(value, dict):
                raise ConfigError(f"{where} must be a mapping")
            return {str(k): _coerce(v, args[1], f"{where}.{k}") for k, v in value.items()}
        if annotation is bool:
            if not isinstance(value, bool):
                raise ConfigError(f"{where} must be true or false")
            return value
        if annotation is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{where} must be an integer")
            return value
        if annotation is float:
            # YAML 1.1 reads 1e-4 as a string; bools are not numbers (`lr: true` is a typo, not 1.0)
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise ConfigError(f"{where} must be a number, got {value!r}")
            number = float(value)
            if not math.isfinite(number):
                raise ConfigError(f"{where} must be a finite number, got {value!r}")
            return number
        if annotation is str:
            if not isinstance(value, str):
                raise ConfigError(f"{where} must be a string, got {value!r}")
            return value
    except (TypeError, ValueError, OverflowError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{where}: cannot read {value!r} as {getattr(annotation, '__name__', annotation)}") from None
    raise TypeError(f"unsupported annotation {annotation} at {where}")


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(map(str, set(data) - names))
    if unknown:
        raise ConfigError(f"unknown keys in {where or 'config'}: {unknown}")
    required = [f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [name for name in required if name not in data]
    if missing:
        raise ConfigError(f"{where or 'config'}: missing required keys {missing}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in data.items()}
    return cls(**kwargs)


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    return _build(TrainConfig, data, "").validate()


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a YAML config; `overrides` maps dotted keys ("train.max_steps") to values.

    Every problem (unreadable file, bad YAML, bad override, bad value) is a `ConfigError` naming the file.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read config {path}: {err}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {dotted}: {key} is not a section")
            node = child
        node[leaf] = value
    try:
        return config_from_dict(data)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """Plain YAML/JSON-friendly dict (tuples as lists), e.g. saved next to the run for provenance."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(config))
