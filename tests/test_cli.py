"""The `ssr` command line: outputs, one-line errors for every bad input, subcommand registration."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ssr_core.commands import main as cli
from ssr_core.scene.cogmap import decode_target

BOXES = {
    "objects": [
        {"id": "chair_0", "label": "chair", "box": [1.0, 0.0, 0.4, 0.5, 0.5, 0.8, 0.0]},
        {"id": "table_0", "label": "table", "box": [2.0, 1.0, 0.4, 1.2, 0.8, 0.75, 0.3]},
        {"id": "sofa_0", "label": "sofa", "box": [0.0, 2.2, 0.4, 2.0, 0.9, 0.8, 1.57]},
        {"id": "tv_0", "label": "tv", "box": [3.1, 3.3, 1.0, 1.0, 0.1, 0.6, 0.0]},
        {"id": "lamp_0", "label": "lamp", "box": [-1.3, -0.7, 0.9, 0.3, 0.3, 1.6, 0.0]},
    ]
}

GT_ROWS = [
    {
        "id": 1,
        "question_type": "object_counting",
        "question": "How many chair(s) are in this room?",
        "ground_truth": "4",
    },
    {
        "id": 2,
        "question_type": "object_rel_direction_easy",
        "ground_truth": "A",
        "options": ["A. left", "B. right"],
    },
    {
        "id": 3,
        "question_type": "object_rel_direction_hard",
        "ground_truth": "B",
        "options": ["A. x", "B. y", "C. z"],
    },
]
PRED_ROWS = [
    {"id": 1, "prediction": "4"},
    {"id": "2", "prediction": "B"},
    {"id": 3, "prediction": "The answer is B."},
]


def write(path: Path, content: object) -> str:
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def jsonl(path: Path, rows: list) -> str:
    return write(path, "\n".join(json.dumps(r) for r in rows) + "\n")


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, out: str, err: str, prog: str, fragment: str) -> None:
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"{prog}: error: ") and fragment in err, err


# ---------------------------------------------------------------------------- ssr scene-graph


def test_scene_graph_prints_triplets_and_absolute_layout(tmp_path: Path, capsys) -> None:
    code, out, err = run(["scene-graph", write(tmp_path / "boxes.json", BOXES)], capsys)
    assert code == 0 and err == ""
    result = json.loads(out)
    triplets = result["triplets"]
    assert len(triplets) == len(BOXES["objects"]) - 2
    for t in triplets:
        assert set(t) == {
            "anchor1",
            "anchor2",
            "target",
            "anchor1_cell",
            "anchor2_cell",
            "target_cell",
            "clipped",
        }
        assert t["anchor1_cell"] == [5, 5] and t["anchor2_cell"][0] == 5
    xy = {o["id"]: np.array(o["box"][:2]) for o in BOXES["objects"]}
    layout = {k: np.array(v) for k, v in result["layout"].items()}
    assert set(layout) == set(xy)
    seed = triplets[0]
    for anchor in (seed["anchor1"], seed["anchor2"]):  # the seed anchors pin the layout absolutely
        np.testing.assert_allclose(layout[anchor], xy[anchor], atol=1e-9)
    for t in triplets:  # each position is where its own cell decodes to
        decoded = decode_target(
            layout[t["anchor1"]], layout[t["anchor2"]], t["anchor1_cell"], t["anchor2_cell"], t["target_cell"]
        )
        np.testing.assert_allclose(layout[t["target"]], decoded, atol=1e-6)
        cell = np.linalg.norm(xy[t["anchor2"]] - xy[t["anchor1"]]) / (5 - t["anchor2_cell"][1])
        assert np.linalg.norm(layout[t["target"]] - xy[t["target"]]) < 3 * cell


def test_scene_graph_with_two_objects_is_empty(tmp_path: Path, capsys) -> None:
    boxes = {"objects": BOXES["objects"][:2]}
    code, out, _ = run(["scene-graph", write(tmp_path / "b.json", boxes)], capsys)
    assert code == 0 and json.loads(out) == {"triplets": [], "layout": {}}


def _with(index: int, **changes: object) -> dict:
    objects: list[dict[str, object]] = [dict(o) for o in BOXES["objects"]]
    objects[index].update(changes)
    return {"objects": objects}


def _without(index: int, key: str) -> dict:
    objects = [dict(o) for o in BOXES["objects"]]
    del objects[index][key]
    return {"objects": objects}


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "is not valid JSON"),
        ([1, 2], 'expected {"objects"'),
        ({"boxes": []}, 'expected {"objects"'),
        ({"objects": [3]}, "objects[0] is not an object"),
        (_without(1, "id"), "objects[1] has no 'id'"),
        (_without(2, "box"), "objects[2] has no 'box'"),
        (_with(0, id=7), "objects[0].id must be a non-empty string"),
        (_with(0, label=None), "objects[0].label must be a string"),
        (_with(3, box=[1, 2, 3]), "objects[3].box must be 7 finite numbers"),
        (_with(3, box=[1, 2, 3, 1, 1, 1, "0"]), "objects[3].box must be 7 finite numbers"),
        (_with(3, box=[1, 2, 3, 1, 1, 1, True]), "objects[3].box must be 7 finite numbers"),
        (_with(3, box=[10**400, 2, 3, 1, 1, 1, 0]), "objects[3].box must be 7 finite numbers"),
        (_with(3, box=[1, 2, 3, 1, -1, 1, 0]), "sizes l, w, h must be positive"),
        (_with(4, id="chair_0"), "duplicate id 'chair_0'"),
        (
            {"objects": [{"id": f"cup_{i}", "label": "cup", "box": [1, 1, i, 1, 1, 1, 0]} for i in range(3)]},
            "1 cm",
        ),
    ],
)
def test_scene_graph_bad_input(tmp_path: Path, capsys, content: object, fragment: str) -> None:
    path = tmp_path / "boxes.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    assert_one_line_error(*run(["scene-graph", str(path)], capsys), "ssr scene-graph", fragment)


def test_scene_graph_missing_file_and_bad_delta(tmp_path: Path, capsys) -> None:
    missing = str(tmp_path / "nope.json")
    assert_one_line_error(*run(["scene-graph", missing], capsys), "ssr scene-graph", "cannot read")
    good = write(tmp_path / "b.json", BOXES)
    assert_one_line_error(*run(["scene-graph", good, "--delta", "0"], capsys), "ssr scene-graph", "--delta")


# ---------------------------------------------------------------------------- ssr eval vsibench


def eval_args(tmp_path: Path, gt: object = GT_ROWS, pred: object = PRED_ROWS) -> list[str]:
    gt_path = jsonl(tmp_path / "gt.jsonl", gt) if isinstance(gt, list) else write(tmp_path / "gt.jsonl", gt)
    pred_path = (
        jsonl(tmp_path / "pred.jsonl", pred)
        if isinstance(pred, list)
        else write(tmp_path / "pred.jsonl", pred)
    )
    return ["eval", "vsibench", "--pred", pred_path, "--gt", gt_path]


def test_eval_vsibench_report(tmp_path: Path, capsys) -> None:
    code, out, err = run(eval_args(tmp_path), capsys)
    assert code == 0 and err == ""
    report = json.loads(out)
    # Released rules: counting 1.0; "The answer is B." reads as "The", so direction = mean(easy 0, hard 0).
    assert report["per_task"] == {"object_counting": 1.0, "object_rel_direction": 0.0}
    assert report["overall"] == pytest.approx(0.5)
    assert report["num_questions"] == 3 and report["num_unparsed"] == 1
    assert "route_planning" in report["missing_tasks"] and "lenient_parser" not in report
    assert report["scorer"].startswith("VSI-Bench released task code")


def test_eval_vsibench_lenient_column_is_separate(tmp_path: Path, capsys) -> None:
    code, out, _ = run(eval_args(tmp_path) + ["--lenient"], capsys)
    report = json.loads(out)
    assert code == 0 and report["overall"] == pytest.approx(0.5)  # the official score is unchanged
    lenient = report["lenient_parser"]
    # The lenient parser reads "The answer is B." as B: direction = mean(easy 0.0, hard 1.0) = 0.5.
    assert lenient["per_task"] == {"object_counting": 1.0, "object_rel_direction": 0.5}
    assert lenient["overall"] == pytest.approx(0.75) and "not comparable" in lenient["scorer"]


def test_eval_vsibench_ignores_blank_lines(tmp_path: Path, capsys) -> None:
    gt = "\n".join(json.dumps(r) for r in GT_ROWS).replace("\n", "\n\n") + "\n\n"
    code, _, _ = run(eval_args(tmp_path, gt=gt), capsys)
    assert code == 0


@pytest.mark.parametrize(
    ("gt", "pred", "fragment"),
    [
        ('{"id": 1,\n', PRED_ROWS, "gt.jsonl line 1: not valid JSON"),
        ([[1, 2]], PRED_ROWS, "gt.jsonl line 1: expected a JSON object"),
        ([{"id": 1, "ground_truth": "4"}], PRED_ROWS, "gt.jsonl line 1: missing field 'question_type'"),
        ([{"id": 1, "question_type": "colour", "ground_truth": "4"}], PRED_ROWS, "unknown question_type"),
        ([{"id": 1, "question_type": "route_planning", "ground_truth": "A"}], PRED_ROWS, "needs 'options'"),
        ([{"id": 1, "question_type": "object_counting", "ground_truth": "x"}], PRED_ROWS, "not a number"),
        ([{"id": 1, "question_type": "object_counting", "ground_truth": "0"}], PRED_ROWS, "ground_truth 0 cannot"),
        (GT_ROWS + [GT_ROWS[0]], PRED_ROWS, "gt.jsonl line 4: duplicate id '1'"),
        ("\n\n", PRED_ROWS, "holds no questions"),
        (GT_ROWS, "oops\n", "pred.jsonl line 1: not valid JSON"),
        (GT_ROWS, [{"id": 1}], "pred.jsonl line 1: missing field 'prediction'"),
        (GT_ROWS, [{"prediction": "4"}], "pred.jsonl line 1: missing field 'id'"),
        (GT_ROWS, [{"id": 1, "prediction": 4}], "field 'prediction' must be the model's text"),
        (GT_ROWS, [{"id": None, "prediction": "4"}], "field 'id' must be a string or an integer"),
        (GT_ROWS, PRED_ROWS + [{"id": 1, "prediction": "3"}], "pred.jsonl line 4: duplicate id '1'"),
        (GT_ROWS, PRED_ROWS + [{"id": 99, "prediction": "3"}], "id '99' is not in"),
        (GT_ROWS, PRED_ROWS[:1], "no prediction for 2 question(s)"),
    ],
)
def test_eval_vsibench_bad_input(tmp_path: Path, capsys, gt: object, pred: object, fragment: str) -> None:
    assert_one_line_error(*run(eval_args(tmp_path, gt, pred), capsys), "ssr eval vsibench", fragment)


def test_eval_vsibench_missing_files(tmp_path: Path, capsys) -> None:
    args = eval_args(tmp_path)
    missing = str(tmp_path / "absent.jsonl")
    for flag in ("--pred", "--gt"):
        argv = list(args)
        argv[argv.index(flag) + 1] = missing
        assert_one_line_error(*run(argv, capsys), "ssr eval vsibench", "cannot read")


def test_console_script_exit_status_without_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ssr_core.commands.main",
            "eval",
            "vsibench",
            "--pred",
            "x.jsonl",
            "--gt",
            str(tmp_path / "y"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith("ssr eval vsibench: error: cannot read") and "Traceback" not in proc.stderr


# ---------------------------------------------------------------------------- parser and registration


@pytest.mark.parametrize("argv", [[], ["eval"], ["no-such-command"], ["eval", "vsibench", "--gt", "g"]])
def test_usage_errors_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2


def test_other_areas_register_subcommands_through_the_lists(monkeypatch, capsys) -> None:
    def hello(args: argparse.Namespace) -> int:
        print(f"hello {args.name}")
        return 0

    def add_hello_command(subparsers: cli.Subparsers) -> None:
        cli.add_command(subparsers, "hello", hello, "say hello").add_argument("name")

    def add_extra_commands(subparsers: cli.Subparsers) -> None:
        group = cli.add_group(subparsers, "extra", "another area's group")
        add_hello_command(group)

    def add_plain_argparse_command(subparsers: cli.Subparsers) -> argparse.ArgumentParser:
        parser = subparsers.add_parser("plain")
        parser.set_defaults(func=lambda args: 3)
        return parser

    monkeypatch.setattr(cli, "COMMANDS", [*cli.COMMANDS, add_extra_commands])
    monkeypatch.setattr(
        cli, "EVAL_COMMANDS", [*cli.EVAL_COMMANDS, add_hello_command, add_plain_argparse_command]
    )
    assert run(["extra", "hello", "robot"], capsys) == (0, "hello robot\n", "")
    assert run(["eval", "hello", "judge"], capsys) == (0, "hello judge\n", "")
    assert run(["eval", "plain"], capsys) == (3, "", "")
