"""Time what ssr_node adds per window for the object map, without DDS: building the map's messages
(~/map, ~/map_markers, ~/map_scene_graph, ~/map_detections and the per-object TF) from one
snapshot, at 100 and 1,000 confirmed objects, the scene graph and layout the map recomputes after
every change, and the serialised size of ~/map.

Run from the repository root with ssr_msgs and vision_msgs built (scripts/setup.sh):
``OMP_NUM_THREADS=1 python bench/ros_map_bench.py``. Prints a markdown table. The map: M objects
on a jittered 2 m grid (16 labels), each seen in two windows so all are confirmed; medians of 10
windows. Rclpy's Python message constructors dominate the message time (a Marker alone costs
about 0.03 ms).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rclpy.serialization import serialize_message  # noqa: E402

from ssr_core.mapping.object_map import MapConfig, WindowDetections  # noqa: E402
from ssr_ros.map_adapter import MapKeeper, MapSnapshot  # noqa: E402
from ssr_ros.outputs.map_messages import (  # noqa: E402
    map_detections_msg,
    map_scene_graph_msg,
    map_transforms,
    object_map_msg,
)
from ssr_ros.outputs.markers import map_markers  # noqa: E402
from ssr_ros.outputs.messages import header  # noqa: E402

LABELS = [f"label{i}" for i in range(16)]
REPEATS = 10
STAMP_NS = 1_767_225_600 * 10**9


def keeper_with(m_objects: int, rng: np.random.Generator) -> MapKeeper:
    side = int(np.ceil(np.sqrt(m_objects)))
    grid = np.stack(np.meshgrid(np.arange(side), np.arange(side), indexing="ij"), -1).reshape(-1, 2)[:m_objects]
    centres = np.column_stack([2.0 * grid + rng.uniform(-0.3, 0.3, grid.shape), np.full(m_objects, 0.5)])
    boxes = np.column_stack([centres, rng.uniform(0.4, 1.6, (m_objects, 3)), rng.uniform(-np.pi, np.pi, m_objects)])
    labels = [LABELS[i] for i in rng.integers(len(LABELS), size=m_objects)]
    keeper = MapKeeper(MapConfig(max_objects=10 * m_objects), "odom")
    for k in range(2):
        keeper.integrate(WindowDetections((STAMP_NS + k * 10**9) * 1e-9, np.eye(4), boxes, labels),
                         STAMP_NS + k * 10**9, "odom")
    return keeper


def changed_snapshot(keeper: MapKeeper, stamp_ns: int) -> tuple[MapSnapshot, float]:
    """A window without detections changes the map (its window count), so the snapshot recomputes
    the scene graph and layout, as after every window in the node. Returns it and its CPU seconds."""
    keeper.integrate(WindowDetections(stamp_ns * 1e-9, np.eye(4), np.zeros((0, 7)), []), stamp_ns, "odom")
    c0 = time.process_time()
    snap = keeper.snapshot()
    return snap, time.process_time() - c0


def messages(snap: MapSnapshot) -> int:
    """Every map message the node publishes; bytes of the serialised ~/map."""
    hdr = header("odom", snap.stamp_ns)
    objects_msg = object_map_msg(snap.objects, snap.tentative, snap.windows_integrated, hdr)
    map_markers(snap.objects, snap.triplets, hdr)
    map_scene_graph_msg(snap.objects, snap.triplets, snap.layout, hdr, 1)
    map_detections_msg(snap.objects, hdr)
    map_transforms(snap.objects, "odom", snap.stamp_ns, "ssr_map/")
    return len(serialize_message(objects_msg))


def main() -> None:
    rng = np.random.default_rng(0)
    print("| confirmed objects | scene graph + layout after a change (CPU) | map messages (CPU) | "
          "map messages (wall) | ~/map serialised |")
    print("|---|---|---|---|---|")
    for m in (100, 1000):
        keeper = keeper_with(m, rng)
        graph, cpus, walls, size = [], [], [], 0
        for k in range(REPEATS):
            snap, graph_s = changed_snapshot(keeper, STAMP_NS + (k + 2) * 10**9)
            c0, t0 = time.process_time(), time.perf_counter()
            size = messages(snap)
            cpus.append(time.process_time() - c0)
            walls.append(time.perf_counter() - t0)
            graph.append(graph_s)
        print(f"| {m:,} | {np.median(graph) * 1e3:.0f} ms | {np.median(cpus) * 1e3:.0f} ms | "
              f"{np.median(walls) * 1e3:.0f} ms (p90 {np.percentile(walls, 90) * 1e3:.0f}) | {size / 1024:.0f} KiB |")


if __name__ == "__main__":
    main()
