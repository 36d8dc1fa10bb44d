"""Synthetic dataset engine: lay out a room, render its camera walk, store it as a scene directory.

Per scene directory: `rgb/NNNNNN.png`, `depth/NNNNNN.png` (uint16 millimetres, 0 = no depth),
`scene.json` (see `scene_io`) and, on request, `seg/NNNNNN.png` (uint8 object index + 1, 0 = the
room shell; free labels for vision pretraining) and `recording/` (rosbag2 MCAP). Everything is a
function of (seed, scene index, frames, size): the same arguments give byte-identical files.

A scene folder is rendered under a temporary name and swapped in whole when complete
(`ssr_core.io.atomic_directory`): an interrupted or failed run (a full disk, a refused image
write) leaves the scenes written before it intact and no half-written scene behind.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ssr_core.data.annotations import Scene
from ssr_core.data.rosbag_io import write_recording
from ssr_core.data.scene_io import save_scene
from ssr_core.data.synthetic.render import render_frames
from ssr_core.data.synthetic.rooms import UP, SynthRoom, generate_room
from ssr_core.errors import InputError
from ssr_core.io import atomic_directory

PNG_FLAGS = [cv2.IMWRITE_PNG_COMPRESSION, 3]
MIN_SIZE, MAX_SIZE = 16, 4096  # pixels; MuJoCo's offscreen buffer is allocated at this size
MAX_SEED = 2**32 - 1
SEGMENTATION_DIR = "seg"
MAX_SEGMENTATION_OBJECTS = 254  # uint8 PNG: 0 is the room shell, 255 stays free


class SynthesisError(InputError):
    """Arguments the data engine cannot render (image size, seed, frame count)."""


def check_arguments(seed: int, num_frames: int, width: int, height: int) -> None:
    """Refuse what would crash deep inside MuJoCo or numpy, before anything is written."""
    if not (MIN_SIZE <= width <= MAX_SIZE and MIN_SIZE <= height <= MAX_SIZE):
        raise SynthesisError(f"width and height must be in [{MIN_SIZE}, {MAX_SIZE}] pixels, got {width}x{height}")
    if not 0 <= seed <= MAX_SEED:
        raise SynthesisError(f"seed must be in [0, 2**32 - 1], got {seed}")
    if num_frames < 1:
        raise SynthesisError(f"frames must be >= 1, got {num_frames}")


def _write_png(path: Path, image: np.ndarray) -> None:
    """cv2.imwrite reports a failed write (full disk, unwritable folder) only by returning False."""
    if not cv2.imwrite(str(path), image, PNG_FLAGS):
        raise OSError(f"could not write {path} (disk full or folder not writable?)")


def min_visible_pixels(height: int, width: int) -> int:
    """Segmentation pixels an object needs in a frame to count as visible (0.05 % of the image, >= 8)."""
    return max(8, int(round(0.0005 * height * width)))


def room_scene(room: SynthRoom, visibility: np.ndarray, image_paths: list[str], depth_paths: list[str], root: Path | None) -> Scene:
    """The `Scene` view of a rendered room."""
    n = len(room.poses)
    return Scene(
        scene_id=room.scene_id,
        up=UP.copy(),
        intrinsics=np.repeat(room.intrinsics[None], n, axis=0),
        poses=room.poses,
        image_size=room.image_size,
        objects=[o.obj for o in room.objects],
        visibility=visibility,
        floor_polygon=np.column_stack([room.floor_polygon, np.zeros(len(room.floor_polygon))]),
        timestamps=room.timestamps,
        image_paths=image_paths,
        depth_paths=depth_paths,
        root=root,
    )


def synthesize_scene(
    out_dir: str | Path, scene_id: str, seed: int, num_frames: int = 64, width: int = 320, height: int = 240,
    bag: bool = False, segmentation: bool = False,
) -> Scene:
    """Generate, render and save one synthetic scene into `out_dir/scene_id` (replacing it whole).

    `segmentation`: also write `seg/`, the segmentation render (uint8 object index + 1).
    """
    check_arguments(seed, num_frames, width, height)
    room = generate_room(scene_id, seed, num_frames, width, height)
    if segmentation and len(room.objects) > MAX_SEGMENTATION_OBJECTS:
        raise SynthesisError(f"{scene_id}: {len(room.objects)} objects do not fit a uint8 segmentation PNG")
    root = Path(out_dir) / scene_id
    with atomic_directory(root) as staging:
        (staging / "rgb").mkdir()
        (staging / "depth").mkdir()
        if segmentation:
            (staging / SEGMENTATION_DIR).mkdir()
        threshold = min_visible_pixels(height, width)
        visibility = np.zeros((num_frames, len(room.objects)), dtype=bool)
        image_paths, depth_paths = [], []
        for f, frame in enumerate(render_frames(room)):
            image_paths.append(f"rgb/{f:06d}.png")
            depth_paths.append(f"depth/{f:06d}.png")
            _write_png(staging / image_paths[-1], frame.rgb[..., ::-1])
            depth_mm = np.clip(np.round(frame.depth * 1000.0), 0, 65535).astype(np.uint16)
            _write_png(staging / depth_paths[-1], depth_mm)
            if segmentation:
                _write_png(staging / SEGMENTATION_DIR / f"{f:06d}.png", (frame.object_index + 1).astype(np.uint8))
            counts = np.bincount(frame.object_index[frame.object_index >= 0], minlength=len(room.objects))
            visibility[f] = counts >= threshold
        scene = room_scene(room, visibility, image_paths, depth_paths, staging)
        rule = f"segmentation: >= {threshold} pixels of the object in the frame's MuJoCo segmentation render"
        extra: dict[str, object] = {"seed": seed, "wall_height": room.wall_height, "frame_rate_hz": 10.0}
        if segmentation:
            extra["segmentation"] = f"{SEGMENTATION_DIR}/NNNNNN.png: uint8 object index + 1 per pixel, 0 = walls/floor/ceiling"
        save_scene(scene, staging, source="synth", visibility_rule=rule, extra=extra)
        if bag:
            write_recording(scene, staging / "recording")
    scene.root = root
    return scene


def scene_seed(seed: int, k: int) -> int:
    """Seed of scene k of `synthesize_dataset(seed=...)`, so a demo can tell which scenes training saw."""
    return int(np.random.SeedSequence([seed, k]).generate_state(1)[0])


def synthesize_dataset(
    out_dir: str | Path, num_scenes: int, seed: int, num_frames: int = 64, width: int = 320, height: int = 240,
    bag: bool = False, progress: bool = True, segmentation: bool = False, workers: int = 1,
) -> list[Path]:
    """`num_scenes` scenes `synth_0000`, ...; scene k uses seed (seed, k) so any one can be regenerated alone.

    `workers` > 1 renders scenes in that many processes (spawned: a forked MuJoCo/OpenGL context is
    not safe to reuse); each scene depends only on its own seed, so the files are the same as with one.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from functools import partial

    from tqdm import tqdm

    check_arguments(seed, num_frames, width, height)
    if num_scenes > 10_000:
        raise SynthesisError(f"at most 10000 scenes per call (ids synth_0000 ... synth_9999), got {num_scenes}")
    if workers < 1:
        raise SynthesisError(f"workers must be >= 1, got {workers}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise SynthesisError(f"--out {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)  # an unwritable --out fails here, before any rendering
    render = partial(_synthesize_kth, out, seed, num_frames, width, height, bag, segmentation)
    dirs: list[Path] = []
    # `with` closes the bar on an error or Ctrl-C too, so the one-line message starts on its own line
    with tqdm(total=num_scenes, desc="synth scenes", disable=not progress) as bar:
        if workers == 1:
            for k in range(num_scenes):
                dirs.append(render(k))
                bar.update()
            return dirs
        with ProcessPoolExecutor(min(workers, num_scenes), mp_context=multiprocessing.get_context("spawn")) as pool:
            for path in pool.map(render, range(num_scenes)):
                dirs.append(path)
                bar.update()
    return dirs


def _synthesize_kth(out: Path, seed: int, num_frames: int, width: int, height: int, bag: bool, segmentation: bool, k: int) -> Path:
    scene = synthesize_scene(out, f"synth_{k:04d}", scene_seed(seed, k), num_frames, width, height, bag, segmentation)
    return out / scene.scene_id
