"""The `ssr` command line: one argparse parser, subcommands contributed by each area.

Adding a subcommand: write a builder `def add_x_command(subparsers) -> None` that calls
`add_command(subparsers, "x", handler, "help")` and adds its arguments (or any builder that
adds a parser with the argparse idiom `set_defaults(func=handler)`), then list the builder in
`COMMANDS` (top level, e.g. `ssr data ...`) or `EVAL_COMMANDS` (`ssr eval ...`). Handlers take
the parsed `argparse.Namespace` and return the exit code; they raise `CliError` for bad user
input, which `main` prints as one line on stderr (exit 1) instead of a traceback. Keep heavy
imports (torch, MuJoCo) inside handlers so `ssr --help` and light commands stay fast.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ssr_core.commands.benchmark import add_vsibench_run_command
from ssr_core.commands.common import Builder, CliError, Subparsers, add_command, add_group, run_parser
from ssr_core.commands.data import add_data_commands
from ssr_core.commands.evaluate import add_eval_run_command
from ssr_core.commands.map import add_map_eval_command
from ssr_core.data.sample_format import read_jsonl, read_records

if TYPE_CHECKING:
    from ssr_core.evaluation.metrics import VSIBenchQuestion

# ---------------------------------------------------------------------------- input helpers


def read_json(path: str) -> Any:
    """Parsed JSON of a file; `CliError` when it cannot be read or is not JSON."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise CliError(f"cannot read {path}: {err}") from None
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as err:
        raise CliError(f"{path} is not valid JSON: {err}") from None


# ---------------------------------------------------------------------------- ssr scene-graph


def _finite(value: Any) -> bool:
    """A JSON number (not a bool) that fits a finite float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond float range
        return False


def _scene_objects(path: str) -> tuple[list[str], np.ndarray]:
    """Ids and (N, 7) boxes of a `{"objects": [{"id", "label", "box"}, ...]}` file."""
    from ssr_core.scene.scene_graph import MAX_COORDINATE

    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("objects"), list):
        raise CliError(f'{path}: expected {{"objects": [{{"id", "label", "box"}}, ...]}}')
    ids: list[str] = []
    boxes = []
    for i, item in enumerate(data["objects"]):
        where = f"{path}: objects[{i}]"
        if not isinstance(item, dict):
            raise CliError(f"{where} is not an object")
        for key in ("id", "label", "box"):
            if key not in item:
                raise CliError(f"{where} has no {key!r}")
        if not isinstance(item["id"], str) or not item["id"]:
            raise CliError(f"{where}.id must be a non-empty string")
        if not isinstance(item["label"], str):
            raise CliError(f"{where}.label must be a string")
        box = item["box"]
        if not isinstance(box, list) or len(box) != 7 or not all(_finite(v) for v in box):
            raise CliError(f"{where}.box must be 7 finite numbers [x, y, z, l, w, h, yaw]")
        if not all(abs(v) <= MAX_COORDINATE for v in box[:6]):
            raise CliError(f"{where}.box: centre and size must be within +-{MAX_COORDINATE:g} m")
        if not all(v > 0 for v in box[3:6]):
            raise CliError(f"{where}.box sizes l, w, h must be positive")
        if item["id"] in ids:
            raise CliError(f"{path}: duplicate id {item['id']!r}")
        ids.append(item["id"])
        boxes.append(box)
    return ids, np.array(boxes, dtype=np.float64).reshape(-1, 7)


def run_scene_graph(args: argparse.Namespace) -> int:
    """Print the LocalCogMap triplets of a set of boxes and the layout they recover."""
    from ssr_core.scene.cogmap import DegenerateAnchorsError
    from ssr_core.scene.layout import recover_layout
    from ssr_core.scene.scene_graph import build_scene_graph

    if not args.delta > 0:
        raise CliError(f"--delta must be positive, got {args.delta}")
    ids, boxes = _scene_objects(args.boxes)
    try:
        triplets = build_scene_graph(ids, boxes[:, :3], delta=args.delta)
    except DegenerateAnchorsError as err:
        raise CliError(f"{args.boxes}: {err}") from None
    layout: dict[str, list[float]] = {}
    if triplets:
        xy = dict(zip(ids, boxes[:, :2]))
        seed = triplets[0]
        known = {seed.anchor1: xy[seed.anchor1], seed.anchor2: xy[seed.anchor2]}
        positions = recover_layout(triplets, known_positions=known).positions
        layout = {i: [float(v) for v in positions[i]] for i in ids if i in positions}
    result = {"triplets": [t.to_dict() for t in triplets], "layout": layout}
    print(json.dumps(result))
    return 0


def add_scene_graph_command(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "scene-graph",
        run_scene_graph,
        "LocalCogMap triplets of 7-DoF boxes (canonical frame) and the layout recovered from them, as JSON",
    )
    parser.add_argument(
        "boxes", metavar="BOXES.json", help='{"objects": [{"id", "label", "box": [7 numbers]}]}'
    )
    parser.add_argument("--delta", type=float, default=2.5, help="scene-graph seed threshold in metres")


# ---------------------------------------------------------------------------- ssr eval vsibench


def _vsibench_questions(path: str) -> list[VSIBenchQuestion]:
    from ssr_core.evaluation.metrics import VSIBenchQuestion
    from ssr_core.evaluation.vsibench import check_official

    def question(row: dict[str, Any]) -> VSIBenchQuestion:
        parsed = VSIBenchQuestion.from_json(row)
        check_official(parsed)
        return parsed

    return read_records(path, question, lambda q: q.id, "questions", CliError)


def _predictions(path: str, known_ids: set[str], gt_path: str) -> dict[str, str]:
    predictions: dict[str, str] = {}
    for number, row in read_jsonl(path):
        for key in ("id", "prediction"):
            if key not in row:
                raise CliError(f"{path} line {number}: missing field {key!r}")
        qid = row["id"]
        if isinstance(qid, bool) or not isinstance(qid, str | int):
            raise CliError(f"{path} line {number}: field 'id' must be a string or an integer")
        if not isinstance(row["prediction"], str):
            raise CliError(f"{path} line {number}: field 'prediction' must be the model's text (a string)")
        qid = str(qid)
        if qid in predictions:
            raise CliError(f"{path} line {number}: duplicate id {qid!r}")
        if qid not in known_ids:
            raise CliError(f"{path} line {number}: id {qid!r} is not in {gt_path}")
        predictions[qid] = row["prediction"]
    missing = sorted(known_ids - predictions.keys())
    if missing:
        raise CliError(
            f"{path}: no prediction for {len(missing)} question(s) of {gt_path}, first {missing[0]!r}"
        )
    return predictions


def run_eval_vsibench(args: argparse.Namespace) -> int:
    """Score raw model answers against VSI-Bench ground truth; print the report as JSON."""
    from ssr_core.evaluation.vsibench import score_predictions

    questions = _vsibench_questions(args.gt)
    predictions = _predictions(args.pred, {q.id for q in questions}, args.gt)
    print(json.dumps(score_predictions(questions, predictions, lenient=args.lenient).to_json()))
    return 0


def add_vsibench_command(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "vsibench",
        run_eval_vsibench,
        "VSI-Bench scores of raw predictions as the released benchmark code computes them, as JSON",
    )
    parser.add_argument(
        "--lenient",
        action="store_true",
        help="also report the project's lenient answer parser, in a separate 'lenient_parser' entry "
        "(never part of the official score)",
    )
    parser.add_argument("--pred", required=True, metavar="PRED.jsonl", help='rows {"id", "prediction"}')
    parser.add_argument(
        "--gt",
        required=True,
        metavar="GT.jsonl",
        help='rows {"id", "question_type", "ground_truth", "options"}',
    )


# ---------------------------------------------------------------------------- command lists


# `ssr eval ...` subcommands.
EVAL_COMMANDS: list[Builder] = [add_vsibench_command, add_eval_run_command, add_vsibench_run_command, add_map_eval_command]


def add_eval_commands(subparsers: Subparsers) -> None:
    group = add_group(subparsers, "eval", "evaluate model predictions")
    for build in EVAL_COMMANDS:
        build(group)


# Top-level subcommands.
COMMANDS: list[Builder] = [add_scene_graph_command, add_eval_commands, add_data_commands]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ssr", description="SSR structured scene reasoning tools")
    parser.set_defaults(prog="ssr")  # error prefix for subcommands not built with `add_command`
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for build in COMMANDS:
        build(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `ssr` console script; returns the exit status."""
    return run_parser(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
