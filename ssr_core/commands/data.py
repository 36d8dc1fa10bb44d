"""`ssr data ...` subcommands: synth, convert scannet|arkitscenes|scannetpp, build (import and mix:
`ssr_core.commands.importers`).

Wired into the `ssr` console script through `add_data_commands`; also runnable on its own as
`python -m ssr_core.commands data ...`. Heavy imports (MuJoCo, plyfile) happen inside the handlers.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ssr_core.commands.common import CliError, Subparsers, add_command, add_group
from ssr_core.commands.importers import register_import_commands

MAX_WINDOWS_PER_SCENE = 10_000


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _windows_per_scene(text: str) -> int:
    value = _positive(text)
    if value > MAX_WINDOWS_PER_SCENE:
        raise argparse.ArgumentTypeError(f"at most {MAX_WINDOWS_PER_SCENE} windows per scene, got {text}")
    return value


# Handlers let the library's documented errors (InputError: SynthesisError, ScanNetError,
# ARKitScenesError, SceneFormatError, BuildError) and OSError through: `run_parser` prints them
# as one line naming the file or value, exit status 1.


def _synth(args: argparse.Namespace) -> int:
    from ssr_core.data.synthetic.dataset import synthesize_dataset

    dirs = synthesize_dataset(args.out, args.scenes, args.seed, args.frames, args.width, args.height, args.bag,
                              segmentation=args.segmentation, workers=args.workers)
    print(f"wrote {len(dirs)} scenes to {args.out}")
    return 0


def _convert_scannet(args: argparse.Namespace) -> int:
    from ssr_core.data.converters.scannet import convert_scannet

    scene = convert_scannet(args.root, args.scene, args.out, args.frame_step, args.frames_dir)
    print(f"{scene.scene_id}: {scene.num_frames} frames, {len(scene.objects)} objects -> {scene.root}")
    return 0


def _convert_arkitscenes(args: argparse.Namespace) -> int:
    from ssr_core.data.converters.arkitscenes import convert_arkitscenes

    scene = convert_arkitscenes(args.root, args.scene, args.out, args.frame_step, tuple(args.up))
    print(f"{scene.scene_id}: {scene.num_frames} frames, {len(scene.objects)} objects -> {scene.root}")
    return 0


def _convert_scannetpp(args: argparse.Namespace) -> int:
    from ssr_core.data.converters.scannetpp import convert_scannetpp

    scene = convert_scannetpp(args.root, args.scene, args.out, args.frame_step)  # ScanNetPPError names the file
    print(f"{scene.scene_id}: {scene.num_frames} frames, {len(scene.objects)} objects -> {scene.root}")
    return 0


def _build(args: argparse.Namespace) -> int:
    from ssr_core.data.samples import BuildConfig, build_samples, parse_weights

    if not 0.0 <= args.val_fraction < 1.0:
        raise CliError(f"--val-fraction must be in [0, 1), got {args.val_fraction}")
    if not 0 <= args.seed < 2**32:
        raise CliError(f"--seed must be in [0, 2**32 - 1], got {args.seed}")
    config = BuildConfig(frames_per_window=args.frames, windows_per_scene=args.windows_per_scene,
                         val_fraction=args.val_fraction, weights=parse_weights(args.weights), seed=args.seed)
    card = build_samples(args.scenes, args.out, config)
    print(card.summary())
    print(f"wrote {Path(args.out) / 'train.jsonl'}, {Path(args.out) / 'val.jsonl'}, {Path(args.out) / 'data_card.json'}")
    return 0


def register(subparsers: Subparsers) -> None:
    """Add synth, convert and build to `subparsers` (of `ssr data` or `python -m ssr_core.commands data`)."""
    p = add_command(subparsers, "synth", _synth, "generate procedural rooms rendered with MuJoCo")
    p.add_argument("--out", required=True, help="output directory (one sub-directory per scene)")
    p.add_argument("--scenes", type=_positive, default=1, help="number of scenes")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (scene k uses (seed, k))")
    p.add_argument("--frames", type=_positive, default=64, help="frames per scene (10 Hz camera walk)")
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--bag", action="store_true", help="also write recording/ (rosbag2 MCAP)")
    p.add_argument("--segmentation", action="store_true", help="also write seg/ (uint8 object index + 1 per pixel)")
    p.add_argument("--workers", type=_positive, default=1, help="scenes rendered in parallel (processes); same files as 1")

    convert = add_group(subparsers, "convert", "convert a real dataset scene into the internal scene format")
    p = add_command(convert, "scannet", _convert_scannet, "convert one ScanNet v2 scan")
    p.add_argument("--root", required=True, help="ScanNet root (holding scans/<scene>) or the scan folder's parent")
    p.add_argument("--scene", required=True, help="scan id, e.g. scene0000_00")
    p.add_argument("--out", required=True, help="output directory; the scene goes to OUT/<scene>")
    p.add_argument("--frame-step", type=_positive, default=10, help="keep every N-th frame (ScanNet is 30 fps)")
    p.add_argument("--frames-dir", default=None, help="SensReader export (color/ pose/ intrinsic/ depth/); default <scan>/exported or <scan>")
    p = add_command(convert, "arkitscenes", _convert_arkitscenes, "convert one ARKitScenes 3DOD video")
    p.add_argument("--root", required=True, help="ARKitScenes download dir (3dod/<split>/<id>, <split>/<id> or <id>)")
    p.add_argument("--scene", required=True, help="video id, e.g. 41254925")
    p.add_argument("--out", required=True, help="output directory; the scene goes to OUT/arkitscenes_<id>")
    p.add_argument("--frame-step", type=_positive, default=1, help="keep every N-th frame (lowres_wide is 10 fps)")
    p.add_argument("--up", type=float, nargs=3, default=(0.0, 0.0, 1.0), metavar=("X", "Y", "Z"), help="world up vector")

    p = add_command(convert, "scannetpp", _convert_scannetpp, "convert one ScanNet++ scene (iPhone stream)")
    p.add_argument("--root", required=True, help="ScanNet++ root (holding data/<scene>) or the scene folder's parent")
    p.add_argument("--scene", required=True, help="scene id, e.g. 0a5c013435")
    p.add_argument("--out", required=True, help="output directory; the scene goes to OUT/<scene>")
    p.add_argument("--frame-step", type=_positive, default=10, help="keep every N-th extracted iPhone frame")
    p = add_command(subparsers, "build", _build, "sample windows and build train/val JSONL training samples")
    p.add_argument("--scenes", required=True, help="directory of scene directories (each with scene.json)")
    p.add_argument("--out", required=True, help="dataset root: train.jsonl, val.jsonl, data_card.json, <scene>/windows/")
    p.add_argument("--frames", type=_positive, default=32, help="frames per window")
    p.add_argument("--windows-per-scene", type=_windows_per_scene, default=4,
                   help="windows sampled per scene (capped at the distinct windows a scene has)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="fraction of scenes (not samples) in val")
    p.add_argument("--weights", default="cogmap=1,grounding=1,vsibench=1", help="task mix, TASK=W,...")
    p.add_argument("--seed", type=int, default=0)
    register_import_commands(subparsers)


def add_data_commands(subparsers: Subparsers) -> None:
    """`ssr data ...` for the `ssr` console script."""
    register(add_group(subparsers, "data", "synthetic scenes, dataset converters and training samples"))
