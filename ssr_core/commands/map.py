"""`ssr eval map`: the persistent object map on a rendered multi-window walk, scored against the world.

Per-window detections come from the ground truth with injected errors at the stated rates
(default: 0.15 m centre noise per axis, 10 % size, 0.2 rad yaw, 10 % misses, 5 % false positives,
2 % label flips), or from a model (`--checkpoint`, loaded as by `ssr eval run`; the walk is rendered). Prints map
precision/recall (3D IoU >= 0.25, label-aware), duplicate rate, id switches and the map's median
centre error beside the single-window error of the same detections; `--png` draws the map.
"""

from __future__ import annotations

import argparse
import math

from ssr_core.commands.common import CliError, Subparsers, add_command, add_model_arguments


def _rate(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise argparse.ArgumentTypeError(f"expected a rate in [0, 1], got {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value >= 0.0):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text}")
    return value


def _run(args: argparse.Namespace) -> int:
    from ssr_core.mapping.evaluation import (
        DetectionNoise,
        evaluate_walk,
        format_map_evaluation,
        plot_map,
        reasoner_detector,
    )

    if args.seed < 0:
        raise CliError(f"--seed must be >= 0, got {args.seed}")
    noise = DetectionNoise(args.center_noise, args.size_noise, args.yaw_noise, args.miss_rate,
                           args.false_positive_rate, args.label_flip_rate)
    detector = None
    if args.checkpoint:
        from ssr_core.commands.evaluate import load_checkpoint_generator
        from ssr_core.inference.reasoner import SceneReasoner

        detector = reasoner_detector(SceneReasoner(load_checkpoint_generator(args)))
    result = evaluate_walk(seed=args.seed, noise=noise, detector=detector)
    print(format_map_evaluation(result))
    if args.png:
        print(f"map drawn to {plot_map(result, args.png)}")
    return 0


def add_map_eval_command(subparsers: Subparsers) -> None:
    parser = add_command(subparsers, "map", _run, "object map over a multi-window walk: precision, recall, duplicates, id switches, centre error")
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--seed", type=int, default=0, help="walk and noise seed (default %(default)s)")
    add_model_arguments(parser, required=False)  # with --checkpoint: detect with it on the rendered walk
    parser.set_defaults(batch_size=16)  # prompts decoded together by load_checkpoint_generator
    parser.add_argument("--center-noise", type=_non_negative, default=0.15, help="m, per axis")
    parser.add_argument("--size-noise", type=_non_negative, default=0.10, help="relative")
    parser.add_argument("--yaw-noise", type=_non_negative, default=0.2, help="rad")
    parser.add_argument("--miss-rate", type=_rate, default=0.10)
    parser.add_argument("--false-positive-rate", type=_rate, default=0.05)
    parser.add_argument("--label-flip-rate", type=_rate, default=0.02)
    parser.add_argument("--png", help="write the bird's-eye map here")
