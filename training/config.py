"""Training configuration: explicit dataclasses loaded from YAML and validated before anything heavy runs.

A config file mirrors `TrainConfig`: top-level `stage`, `seed`, `output_dir` and one mapping per
section (`model`, `data`, `optim`, `train`, `checkpoint`, `log`). Unknown keys are errors, so a
typo never silently falls back to a default. Relative paths are resolved against the current
working directory (run from the repository root).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# Parameter groups the optimiser knows (see `training.train.parameter_groups`).
TRAINABLE_GROUPS = ("branch_3d", "merger", "vision", "language")
MIXED_PRECISION = ("auto", "bf16", "no")
LOAD_DTYPES = ("auto", "bfloat16", "float32")
DEVICES = ("auto", "cpu", "cuda", "npu")


class ConfigError(ValueError):
    """The YAML does not describe a valid training run."""


@dataclass
class ModelSection:
    """Which model to build.

    Stage 1 (SSR-2D): `base` is a local Qwen2.5-VL or Qwen3-VL folder (no downloads; the family
    comes from its config.json), or "tiny" / "tiny_qwen3_vl" (random tiny model of that family
    from `ssr_core.model.tiny.build_tiny_ssr`).
    Stage 2 (SSR-3D): `init_from` is the stage-1 output model folder (`<output_dir>/final`), `vggt`
    the VGGT aggregator weights (or "tiny" for the random tiny aggregator that `init_from` was
    built for); the 3D branch (MLP_trans, MLP_3D) starts fresh.
    `num_frames` / `image_size` set the window shape fed to the model in both stages.
    `dtype` is what the weights are read into: "auto" = bfloat16 when training in bf16 mixed
    precision (trainable parameters are then upcast to float32 master weights one tensor at a
    time, frozen ones stay bfloat16), float32 otherwise. "bfloat16" with mixed_precision "no"
    trains in pure bfloat16 (memory checks on CPU only).
    """

    base: str | None = None
    init_from: str | None = None
    vggt: str | None = None
    spatial_layer: int = 22
    insertion: str = "interleaved"
    num_frames: int = 32
    image_size: tuple[int, int] = (336, 448)
    gradient_checkpointing: bool = False
    dtype: str = "auto"


@dataclass
class DataSection:
    """JSONL sample files (docs/ARCHITECTURE.md, "Training samples"); frame paths are relative to `root`."""

    train: str = ""
    val: str | None = None
    root: str | None = None  # default: the folder holding `train`

    @property
    def root_dir(self) -> Path:
        return Path(self.root) if self.root else Path(self.train).parent


@dataclass
class OptimSection:
    """AdamW with one learning rate per parameter group; groups not listed are frozen.

    `lr` maps group names (`TRAINABLE_GROUPS`) to learning rates. VGGT is never trainable.
    Warm-up is `warmup_steps` if given, else `warmup_ratio` of the total optimiser steps; the
    schedule is transformers' cosine-with-warm-up (decays to 0 at the last step).
    """

    lr: dict[str, float] = field(default_factory=dict)
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_steps: int | None = None
    warmup_ratio: float = 0.03
    max_grad_norm: float | None = 1.0


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
        if self.stage == 1:
            if not m.base:
                raise ConfigError("stage 1 needs model.base (a local Qwen2.5-VL / Qwen3-VL folder, 'tiny' or 'tiny_qwen3_vl')")
            if m.init_from or m.vggt:
                raise ConfigError("stage 1 trains SSR-2D: model.init_from and model.vggt must be unset")
            if "branch_3d" in o.lr:
                raise ConfigError("stage 1 (SSR-2D) has no branch_3d parameters")
        else:
            if m.base:
                raise ConfigError("stage 2 starts from the stage-1 model: set model.init_from, not model.base")
            if not m.init_from or not m.vggt:
                raise ConfigError("stage 2 needs model.init_from (stage-1 model folder) and model.vggt")
            if o.lr.get("branch_3d", 0.0) <= 0.0:
                raise ConfigError("stage 2 must train the fresh 3D branch: set optim.lr.branch_3d > 0")
        if m.insertion not in ("interleaved", "sequential"):
            raise ConfigError(f"model.insertion must be interleaved or sequential, got {m.insertion!r}")
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
        if (o.warmup_steps is not None and o.warmup_steps < 0) or not 0.0 <= o.warmup_ratio < 1.0:
            raise ConfigError("warmup_steps must be >= 0 and warmup_ratio in [0, 1)")
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
            return float(value)
        if annotation is str:
            return str(value)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{where}: cannot read {value!r} as {annotation}") from exc
    raise TypeError(f"unsupported annotation {annotation} at {where}")


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown keys in {where or 'config'}: {unknown}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise ConfigError(f"{where or 'config'}: {exc}") from exc


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    return _build(TrainConfig, data, "").validate()


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a YAML config; `overrides` maps dotted keys ("train.max_steps") to values."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return config_from_dict(data)


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """Plain YAML/JSON-friendly dict (tuples as lists), e.g. saved next to the run for provenance."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(config))
