"""JSONL training samples -> model tensors, and the deterministic, resumable sample order.

Tensors come from the model's own input builder (`ssr_core.model.processing_ssr.SSRInputBuilder`), so training
sees exactly the prompt layout that inference uses and the loss covers only the answer tokens.

The order is a seeded permutation per epoch (`EpochBatchSampler`): given (seed, epoch) it is a
pure function, so a resumed run only needs (epoch, micro-batches consumed) to continue where the
interrupted one stopped, with nothing repeated or skipped.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from torch import Tensor
from torch.utils.data import Dataset

from ssr_core.data.sample_format import SampleFormatError, load_frames
from ssr_core.model.processing_ssr import IGNORE_INDEX, collate_training_inputs


def make_tiny_dataset(
    out_dir: str | Path, num_scenes: int = 3, seed: int = 0, tasks: Sequence[str] = ("cogmap", "grounding", "vsibench")
) -> Path:
    """Tiny synthetic data set for the tiny configs, tests and the benchmark: `<out_dir>/samples/{train,val}.jsonl`.

    Uses the data engine (MuJoCo renders of procedural rooms) at 64x48 px, 8 frames a scene and
    one 4-frame window per scene; a few seconds on one CPU core. `tasks` picks the sample
    families (VSI-Bench-style prompts are the shortest, which keeps tiny CPU runs fast).
    """
    from ssr_core.data.samples import TASKS, BuildConfig, build_samples
    from ssr_core.data.synthetic.dataset import synthesize_dataset

    out = Path(out_dir)
    synthesize_dataset(out / "scenes", num_scenes, seed=seed, num_frames=8, width=64, height=48, progress=False)
    weights = {t: float(t in tasks) for t in TASKS}
    config = BuildConfig(frames_per_window=4, windows_per_scene=1, weights=weights, seed=seed)
    build_samples(out / "scenes", out / "samples", config, progress=False)
    return out / "samples"


class InputBuilder(Protocol):
    """What the dataset needs from the model side (`ssr_core.model.processing_ssr.SSRInputBuilder` provides it)."""

    def build_training_inputs(self, frames: np.ndarray, messages: Any, answer: str) -> dict[str, Tensor]: ...


class SampleDataset(Dataset):
    """Sample i -> the builder's tensors for one sample plus its `sample_id`."""

    def __init__(self, samples: Sequence[Mapping[str, Any]], root: str | Path, builder: InputBuilder):
        self.samples = list(samples)
        self.root = Path(root)
        self.builder = builder

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.samples[index]
        frames = load_frames([self.root / p for p in sample["frames"]])
        inputs = self.builder.build_training_inputs(frames, sample["messages"], sample["answer"])
        if not (inputs["labels"] != IGNORE_INDEX).any():
            raise SampleFormatError(f"sample {sample['id']!r} has no answer tokens to train on")
        inputs["sample_id"] = sample["id"]
        return inputs


class Collator:
    """Right-pads dataset items into one batch (the model's collator) and keeps the sample ids.

    `with_vggt_images=False` (SSR-2D) drops the VGGT copy of the frames, which SSR-2D never reads.
    """

    def __init__(self, pad_token_id: int, with_vggt_images: bool):
        self.pad_token_id = pad_token_id
        self.with_vggt_images = with_vggt_images

    def __call__(self, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
        batch = collate_training_inputs(items, self.pad_token_id)
        if not self.with_vggt_images:
            del batch["vggt_images"]
        batch["sample_ids"] = [item["sample_id"] for item in items]
        return batch


class EpochBatchSampler:
    """Micro-batches of sample indices for one process, in a seeded per-epoch order.

    Epoch e uses `numpy.random.default_rng([seed, e]).permutation(n)`. With `world_size` > 1 the
    permutation is padded (wrapping around to its start) to a multiple of `world_size` so every
    process gets the same number of micro-batches; a single process sees each sample exactly once
    per epoch. The permutation is cut into global batches of `batch_size * world_size`; process
    `rank` takes the rank-th equal slice of each, so the last (shorter) batch is split evenly too.
    """

    def __init__(self, num_samples: int, batch_size: int, seed: int, world_size: int = 1, rank: int = 0):
        if num_samples < 1 or batch_size < 1 or not 0 <= rank < world_size:
            raise ValueError("need num_samples >= 1, batch_size >= 1 and 0 <= rank < world_size")
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.seed = seed
        self.world_size = world_size
        self.rank = rank
        self.padded = -(-num_samples // world_size) * world_size
        global_batch = batch_size * world_size
        self.batches_per_epoch = -(-self.padded // global_batch)

    def permutation(self, epoch: int) -> np.ndarray:
        order = np.random.default_rng([self.seed, epoch]).permutation(self.num_samples)
        return np.resize(order, self.padded)  # np.resize repeats from the start

    def batches(self, epoch: int, start: int = 0) -> Iterator[list[int]]:
        """This process's micro-batches of `epoch`, from micro-batch `start` on."""
        order = self.permutation(epoch)
        global_batch = self.batch_size * self.world_size
        for b in range(start, self.batches_per_epoch):
            chunk = order[b * global_batch : (b + 1) * global_batch]
            share = len(chunk) // self.world_size
            yield chunk[self.rank * share : (self.rank + 1) * share].tolist()


class ResumedBatches:
    """A `batch_sampler` for torch's DataLoader: one epoch of `EpochBatchSampler`, from `start`."""

    def __init__(self, sampler: EpochBatchSampler, epoch: int, start: int):
        self.sampler, self.epoch, self.start = sampler, epoch, start

    def __iter__(self) -> Iterator[list[int]]:
        return self.sampler.batches(self.epoch, self.start)

    def __len__(self) -> int:
        return self.sampler.batches_per_epoch - self.start
