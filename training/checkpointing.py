"""Periodic checkpoints and exact resume.

A checkpoint folder `<output_dir>/checkpoints/step_XXXXXXXX/` holds accelerate's `save_state`
(model, optimizer, scheduler, every process's RNG states; FSDP/DeepSpeed-aware) plus
`trainer_state.json` (our position in the sample stream). It is written under a `.tmp` name and
renamed when complete, so a run killed while saving never leaves a half checkpoint that
`resume: auto` would pick. The output folder must be on a filesystem shared by all nodes.

Resuming refuses, with a `ResumeError` naming the file, a checkpoint whose trainer state or RNG
state is unreadable, tampered with or out of range: exact resume is a promise, so a checkpoint
that cannot keep it is never used silently.
"""

from __future__ import annotations

import json
import logging
import pickle
import shutil
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import load as accelerate_load
from accelerate.utils.constants import RNG_STATE_NAME

from ssr_core.errors import InputError, weight_file_problem
from ssr_core.io import atomic_write_json, replace_directory

log = logging.getLogger(__name__)

STATE_FILE = "trainer_state.json"
PREFIX = "step_"


class ResumeError(InputError):
    """The checkpoint cannot continue this run exactly: another run's sample order (different data,
    seed or batch shape), or a trainer/RNG/weight file that is unreadable, tampered with or out of range."""


# Errors the loaders raise on a truncated, corrupt or malicious file (torch's weights_only
# unpickler raises UnpicklingError; safetensors a SafetensorError, a subclass of Exception).
_LOAD_ERRORS: tuple[type[BaseException], ...] = (
    RuntimeError, ValueError, KeyError, TypeError, EOFError, OSError, pickle.UnpicklingError,
)
try:
    from safetensors import SafetensorError

    _LOAD_ERRORS += (SafetensorError,)
except ImportError:  # older safetensors
    pass
_RNG_ERRORS: tuple[type[BaseException], ...] = (*_LOAD_ERRORS, IndexError)


@dataclass
class TrainerState:
    """Where the run stands: the next micro-batch is micro-batch `position` of epoch `epoch`.

    Checkpoints are only taken right after an optimiser step, so no gradient is pending. The
    run-shape fields identify the sample order; resuming with other values is refused because
    the permutation / slicing would differ.
    """

    global_step: int
    epoch: int
    position: int
    seed: int
    num_samples: int
    batch_size: int
    grad_accum: int
    world_size: int
    total_steps: int = 0  # optimiser steps the LR schedule spans (0: not recorded)

    def check_compatible(self, other: TrainerState) -> None:
        for name in ("seed", "num_samples", "batch_size", "grad_accum", "world_size"):
            if getattr(self, name) != getattr(other, name):
                raise ResumeError(
                    f"checkpoint has {name}={getattr(self, name)} but this run has {getattr(other, name)}: "
                    "the sample order could not be continued exactly"
                )
        # Training longer (or shorter) than first planned is legitimate, but it changes the
        # schedule: say so rather than let the learning rate jump silently.
        if self.total_steps and other.total_steps and self.total_steps != other.total_steps:
            log.warning(
                "resuming a run planned for %d steps with %d steps: the cosine schedule is recomputed "
                "for the new length, so the learning rate changes at step %d",
                self.total_steps, other.total_steps, self.global_step,
            )


def checkpoints_dir(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = checkpoints_dir(output_dir)
    if not root.is_dir():
        return []
    done = [p for p in root.iterdir() if p.name.startswith(PREFIX) and p.name[len(PREFIX) :].isdigit()]
    return sorted((p for p in done if (p / STATE_FILE).is_file()), key=lambda p: int(p.name[len(PREFIX) :]))


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    found = list_checkpoints(output_dir)
    return found[-1] if found else None


def save_checkpoint(accelerator: Accelerator, output_dir: str | Path, state: TrainerState, keep_last: int) -> Path:
    """Write a checkpoint of the current step (all processes call this) and drop the oldest beyond `keep_last`."""
    final = checkpoints_dir(output_dir) / f"{PREFIX}{state.global_step:08d}"
    tmp = final.with_name(final.name + ".tmp")
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        atomic_write_json(tmp / STATE_FILE, asdict(state), indent=1)
        replace_directory(tmp, final)
        for old in list_checkpoints(output_dir)[:-keep_last]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def read_trainer_state(checkpoint: str | Path) -> TrainerState:
    """The checkpoint's trainer state; `ResumeError` unless it is a JSON object of non-negative integers."""
    path = Path(checkpoint) / STATE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
        raise ResumeError(f"{path}: unreadable trainer state ({err})") from None
    names = [f.name for f in fields(TrainerState)]
    if not isinstance(data, dict) or not set(names[:-1]) <= set(data) or not set(data) <= set(names):
        raise ResumeError(f"{path}: expected a JSON object with the keys {names}")
    bad = [k for k, v in data.items() if isinstance(v, bool) or not isinstance(v, int) or v < 0]
    if bad:
        raise ResumeError(f"{path}: {bad} must be non-negative integers")
    return TrainerState(**data)


def check_rng_state(checkpoint: str | Path, process_index: int) -> None:
    """Refuse a missing or damaged RNG state file: accelerate would skip it with a log line and the
    resumed run would silently draw other random numbers than the uninterrupted one."""
    path = Path(checkpoint) / f"{RNG_STATE_NAME}_{process_index}.pkl"
    if not path.is_file():
        raise ResumeError(f"{path}: missing RNG state; this checkpoint cannot be resumed exactly")
    try:
        states = accelerate_load(path)
        random_state = states["random_state"]
        np_state = states["numpy_random_seed"]
        torch_state = states["torch_manual_seed"]
        ok = (
            isinstance(random_state, tuple)
            and isinstance(np_state, tuple)
            and isinstance(torch_state, torch.Tensor)
            and torch_state.dtype == torch.uint8
        )
        if ok:  # the setters validate the contents; try them on throw-away generators
            import random as _random

            _random.Random().setstate(random_state)
            np.random.RandomState().set_state(np_state)
            torch.Generator().set_state(torch_state)
    except _RNG_ERRORS as err:
        raise ResumeError(f"{path}: unreadable RNG state ({type(err).__name__}); this checkpoint cannot be resumed exactly") from None
    if not ok:
        raise ResumeError(f"{path}: RNG state has unexpected contents; this checkpoint cannot be resumed exactly")


def load_checkpoint(accelerator: Accelerator, checkpoint: str | Path, expected: TrainerState) -> TrainerState:
    """Restore model/optimizer/scheduler/RNG from `checkpoint`; return its trainer state after checking it fits."""
    state = read_trainer_state(checkpoint)
    state.check_compatible(expected)
    check_rng_state(checkpoint, accelerator.process_index)
    try:
        accelerator.load_state(str(checkpoint))
    except _LOAD_ERRORS as err:
        raise ResumeError(f"{checkpoint}: a weight or optimizer file cannot be used: {weight_file_problem(err)}") from None
    state.total_steps = expected.total_steps  # later checkpoints record the schedule now in force
    return state


def resolve_resume(resume: str, output_dir: str | Path) -> Path | None:
    """The checkpoint to resume from for `checkpoint.resume` ("auto" | "none" | a folder)."""
    if resume == "none":
        if latest_checkpoint(output_dir) is not None:  # their steps would mix with the new run's in `auto`/pruning
            raise ResumeError(f"{checkpoints_dir(output_dir)} holds an earlier run's checkpoints; use a new output_dir")
        return None
    if resume == "auto":
        return latest_checkpoint(output_dir)
    path = Path(resume)
    if not (path / STATE_FILE).is_file():
        raise ResumeError(f"{path} is not a complete checkpoint (no {STATE_FILE})")
    return path
