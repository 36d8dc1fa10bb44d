"""Cost of reading and checking a scene.json (`ssr_core.data.scene_io.load_scene`).

`load_scene` checks every field (shapes, finite numbers, rigid poses, rotations, visibility
indices) and that every frame file exists; this measures what that costs for a long scene.
Run: `OMP_NUM_THREADS=1 python bench/scene_load_bench.py [--frames 1000 --repeats 5]`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from ssr_core.data.scene_io import load_scene, save_scene
from ssr_core.data.synthetic.dataset import room_scene
from ssr_core.data.synthetic.rooms import generate_room


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "scene"
        room = generate_room("scene", seed=1, num_frames=args.frames, width=160, height=120)
        visibility = np.zeros((args.frames, len(room.objects)), dtype=bool)
        scene = room_scene(room, visibility, [f"rgb/{f:06d}.png" for f in range(args.frames)], [], root)
        (root / "rgb").mkdir(parents=True)
        for p in scene.image_paths:
            (root / p).write_bytes(b"")
        save_scene(scene, root, source="synth", visibility_rule="bench")
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            load_scene(root)
            times.append(time.perf_counter() - start)
    print(f"load_scene: {args.frames} frames, {len(room.objects)} objects: median {np.median(times) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
