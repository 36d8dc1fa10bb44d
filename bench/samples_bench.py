"""Samples built per second by `ssr data build` at tiny scale on CPU.

Scenes are procedural rooms with projection visibility and placeholder frame files (rendering is
not what this measures: see `ssr data synth`); the timed part is the whole build: loading
scene.json, window sampling, canonical boxes, QA generation for the three families, mixing and
writing JSONL. Run: `python bench/samples_bench.py [--scenes 8 --frames 64 --windows 4]`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from ssr_core.data.samples import BuildConfig, build_samples
from ssr_core.data.scene_io import save_scene
from ssr_core.data.synthetic.dataset import room_scene
from ssr_core.data.synthetic.rooms import generate_room
from ssr_core.data.visibility import projected_visibility


def make_scenes(root: Path, count: int, frames: int) -> None:
    for k in range(count):
        room = generate_room(f"synth_{k:04d}", seed=k, num_frames=frames, width=320, height=240)
        scene = room_scene(room, np.zeros(0), [f"rgb/{f:06d}.png" for f in range(frames)], [], root / room.scene_id)
        scene.visibility = projected_visibility(scene.objects, scene.poses, scene.intrinsics, scene.image_size)
        (scene.root / "rgb").mkdir(parents=True)
        for p in scene.image_paths:
            (scene.root / p).write_bytes(b"")
        save_scene(scene, scene.root, source="synth", visibility_rule="bench: frustum")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=8)
    parser.add_argument("--frames", type=int, default=64, help="frames per scene")
    parser.add_argument("--window-frames", type=int, default=32)
    parser.add_argument("--windows", type=int, default=4, help="windows per scene")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scenes = Path(tmp) / "scenes"
        make_scenes(scenes, args.scenes, args.frames)
        config = BuildConfig(frames_per_window=args.window_frames, windows_per_scene=args.windows, val_fraction=0.25)
        rates = []
        for r in range(args.repeats):
            start = time.perf_counter()
            card = build_samples(scenes, Path(tmp) / f"out{r}", config, progress=False)
            elapsed = time.perf_counter() - start
            total = sum(sum(c.values()) for c in card.samples.values())
            generated = sum(sum(c.values()) for c in card.generated.values())
            rates.append(total / elapsed)
            print(f"run {r}: {total} samples written ({generated} generated before mixing), "
                  f"{sum(card.windows.values())} windows in {elapsed:.2f} s -> {total / elapsed:.0f} samples/s")
        print(f"median: {np.median(rates):.0f} samples/s ({args.scenes} scenes x {args.windows} windows of {args.window_frames} frames)")


if __name__ == "__main__":
    main()
