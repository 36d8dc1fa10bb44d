"""Time `ObjectMap.integrate` at 100 and 1,000 map objects, and save/load of 1,000 objects.

Run from the repository root: ``OMP_NUM_THREADS=1 python bench/map_bench.py``. Prints markdown
tables. The map: M confirmed objects on a jittered 2 m grid (furniture sizes, 16 labels, random
yaw). Each window: 30 detections (27 noisy re-observations of map objects near the camera, 3 new
objects) and 32 camera poses, so association, fusion, the miss test and the merge test all run;
windows follow each other on one map, which grows by the new objects (the table shows the final
size). One core (set OMP_NUM_THREADS=1).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ssr_core.mapping.object_map import MapConfig, ObjectMap, WindowDetections  # noqa: E402

LABELS = [f"label{i}" for i in range(16)]
DETECTIONS = 30
WINDOWS = 40
K = np.array([[160.0, 0.0, 159.5], [0.0, 160.0, 119.5], [0.0, 0.0, 1.0]])


def filled_map(m_objects: int, rng: np.random.Generator) -> tuple[ObjectMap, np.ndarray, list[str]]:
    side = int(np.ceil(np.sqrt(m_objects)))
    grid = np.stack(np.meshgrid(np.arange(side), np.arange(side), indexing="ij"), -1).reshape(-1, 2)[:m_objects]
    centres = np.column_stack([2.0 * grid + rng.uniform(-0.3, 0.3, grid.shape), np.full(m_objects, 0.5)])
    sizes = rng.uniform(0.4, 1.6, (m_objects, 3))
    boxes = np.column_stack([centres, sizes, rng.uniform(-np.pi, np.pi, m_objects)])
    labels = [LABELS[i] for i in rng.integers(len(LABELS), size=m_objects)]
    object_map = ObjectMap(MapConfig(max_objects=10 * m_objects))
    for stamp in (0.0, 1.0):  # twice: every object confirmed
        object_map.integrate(WindowDetections(stamp, np.eye(4), boxes, labels))
    return object_map, boxes, labels


def window(boxes: np.ndarray, labels: list[str], rng: np.random.Generator, stamp: float) -> WindowDetections:
    """27 re-observations around a random spot, 3 new objects, a camera sweeping over them."""
    spot = boxes[rng.integers(len(boxes)), :3]
    near = np.argsort(np.linalg.norm(boxes[:, :3] - spot, axis=1))[: DETECTIONS - 3]
    seen = boxes[near] + np.column_stack([rng.normal(0, 0.1, (len(near), 3)), np.zeros((len(near), 3)), rng.normal(0, 0.1, len(near))])
    new = np.column_stack([spot + rng.uniform(-3, 3, (3, 3)) * [1, 1, 0] + [0, 0, 0.0], rng.uniform(0.4, 1.6, (3, 3)), np.zeros(3)])
    poses = np.repeat(np.eye(4)[None], 32, axis=0)
    yaw = np.linspace(-0.6, 0.6, 32)
    forward = np.stack([np.cos(yaw), np.sin(yaw), np.zeros(32)], -1)
    right = np.stack([np.sin(yaw), -np.cos(yaw), np.zeros(32)], -1)
    poses[:, :3, 0], poses[:, :3, 1], poses[:, :3, 2] = right, [0.0, 0.0, -1.0], forward
    poses[:, :3, 3] = spot + [-4.0, 0.0, 1.0]
    return WindowDetections(
        stamp, np.eye(4), np.vstack([seen, new]), [labels[i] for i in near] + [LABELS[0]] * 3,
        camera_to_fixed=poses, intrinsics=K, image_size=(240, 320),
    )  # fmt: skip


def integrate_ms(m_objects: int) -> tuple[float, float, float, int]:
    """Wall-time median and p90 and CPU-time median of integrate over WINDOWS consecutive
    windows, and the final map size. CPU time (this thread's) is what the code costs; wall time
    adds whatever else the shared machine is running."""
    rng = np.random.default_rng(m_objects)
    object_map, boxes, labels = filled_map(m_objects, rng)
    windows = [window(boxes, labels, rng, 2.0 + i) for i in range(WINDOWS)]
    wall, cpu = [], []
    for w in windows:
        t0, c0 = time.perf_counter(), time.thread_time()
        object_map.integrate(w)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
    return (
        1000 * float(np.median(wall)), 1000 * float(np.percentile(wall, 90)), 1000 * float(np.median(cpu)),
        len(object_map),
    )  # fmt: skip


def save_load_ms(m_objects: int) -> tuple[float, float, int]:
    object_map, _, _ = filled_map(m_objects, np.random.default_rng(1))
    saves, loads = [], []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "map.json"
        for _ in range(5):
            t0 = time.perf_counter()
            object_map.save(path)
            saves.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            ObjectMap().load(path)
            loads.append(time.perf_counter() - t0)
        size = path.stat().st_size
    return 1000 * min(saves), 1000 * min(loads), size


def main() -> None:
    print("| map objects | detections / window | integrate median (wall) | p90 (wall) | median (CPU) |")
    print("|---|---|---|---|---|")
    for m in (100, 1000):
        median, p90, cpu, final = integrate_ms(m)
        print(f"| {m:,} (-> {final:,}) | {DETECTIONS} | {median:.2f} ms | {p90:.2f} ms | {cpu:.2f} ms |")
    save, load, size = save_load_ms(1000)
    print()
    print("| map objects | save (atomic, fsync) | load (parse + validate) | file |")
    print("|---|---|---|---|")
    print(f"| 1,000 | {save:.1f} ms | {load:.1f} ms | {size / 1024:.0f} KiB |")


if __name__ == "__main__":
    main()
