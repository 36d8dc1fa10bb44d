"""Issue 14, finding 8: evaluation input is refused at read time with one line naming the file and
line (exit 1, never "the model failed"), and `--out` is checked before any inference.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_evaluation import _run, _standin, dataset  # noqa: F401  (the fixture)

from ssr_core.commands.main import main as ssr_main
from ssr_core.data.ground_truth import GroundTruthGenerator
from ssr_core.evaluation import evaluate as evaluation
from ssr_core.evaluation.metrics import VSIBenchQuestion


class NeverRun(GroundTruthGenerator):
    """A generator that fails the test if any inference happens."""

    def __init__(self) -> None:
        pass

    def encode_window(self, frames):
        raise AssertionError("inference ran although the input was bad")


VSI_ROW = {"id": "v1", "question_type": "object_rel_distance", "question": "Which is nearer?",
           "options": ["A. chair", "B. table", "C. door", "D. bed"], "ground_truth": "B", "video": "videos/clip"}


def _with_row(qa: Path, row: dict, tmp_path: Path) -> Path:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(qa.read_text().splitlines()[0] + "\n" + json.dumps(row) + "\n")
    return bad


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"question_type": ["object_rel_distance"]}, "question_type"),
        ({"question_type": {"a": 1}}, "question_type"),
        ({"question_type": "object_counting", "ground_truth": int("9" * 400)}, "not a finite number"),
        ({"question_type": "object_counting", "ground_truth": 1e308 * 10}, "finite"),
        ({"ground_truth": "AB"}, "neither an option letter"),
        ({"ground_truth": ""}, "neither an option letter"),
        ({"ground_truth": "ABCD"}, "neither an option letter"),
        ({"ground_truth": "E"}, "neither an option letter"),
    ],
)
def test_bad_vsibench_rows_are_refused_before_inference(dataset, tmp_path, capsys, change, needle):  # noqa: F811
    qa, _, _ = dataset
    row = {**VSI_ROW, **change}
    if isinstance(row["ground_truth"], float) and row["ground_truth"] == float("inf"):
        bad = tmp_path / "bad.jsonl"
        bad.write_text(qa.read_text().splitlines()[0] + "\n" + json.dumps(row).replace("Infinity", "1e400") + "\n")
    else:
        bad = _with_row(qa, row, tmp_path)
    code, err = _run(["--checkpoint", str(tmp_path), "--data", str(bad)], capsys, NeverRun())
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1, err
    assert f"{bad} line 2" in lines[0] and needle in lines[0], lines[0]


@pytest.mark.parametrize("qtype", [["grounding_unique"], {"k": 1}, 3])
def test_non_string_question_type_of_a_training_sample(dataset, tmp_path, capsys, qtype):  # noqa: F811
    qa, _, _ = dataset
    first = json.loads(qa.read_text().splitlines()[0])
    bad = _with_row(qa, {**first, "id": "q", "question_type": qtype}, tmp_path)
    code, err = _run(["--checkpoint", str(tmp_path), "--data", str(bad)], capsys, NeverRun())
    assert code == 1 and f"{bad} line 2" in err and "question_type" in err


def test_choice_letters_are_matched_whole():
    row = {"id": 1, "question_type": "object_rel_direction_easy", "options": ["A. left", "B. right"]}
    assert VSIBenchQuestion.from_json({**row, "ground_truth": "B"}).ground_truth == "B"
    assert VSIBenchQuestion.from_json({**row, "ground_truth": "right"}).ground_truth == "B"
    for letters in ("AB", "", " ", "C"):
        with pytest.raises(ValueError):
            VSIBenchQuestion.from_json({**row, "ground_truth": letters})


@pytest.mark.parametrize("qtype", [["object_counting"], {"a": 1}, None, 7])
def test_ssr_eval_vsibench_question_type(tmp_path, capsys, qtype):
    gt = tmp_path / "gt.jsonl"
    gt.write_text(json.dumps({"id": 1, "question_type": qtype, "ground_truth": 3}) + "\n")
    pred = tmp_path / "pred.jsonl"
    pred.write_text(json.dumps({"id": 1, "prediction": "3"}) + "\n")
    assert ssr_main(["eval", "vsibench", "--pred", str(pred), "--gt", str(gt)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{gt} line 1" in err[0]


def test_out_is_checked_before_inference(dataset, tmp_path, capsys):  # noqa: F811
    qa, _, _ = dataset
    before = qa.read_bytes()
    base = ["--checkpoint", str(tmp_path), "--data", str(qa)]
    (tmp_path / "a_file").write_text("x")
    for out, needle in [
        (str(qa), "also an input"),
        (str(tmp_path), "is a folder"),
        (str(tmp_path / "a_file" / "pred.jsonl"), "not a writable folder"),
    ]:
        code, err = _run([*base, "--out", out], capsys, NeverRun())
        assert code == 1 and needle in err, (out, err)
    assert qa.read_bytes() == before  # --out equal to --data never overwrites the input


def test_predictions_are_written_atomically(dataset, tmp_path, monkeypatch):  # noqa: F811
    qa, _, _ = dataset
    samples = evaluation.read_samples(qa)
    out = tmp_path / "pred.jsonl"
    out.write_text("previous good predictions\n")
    calls = {"n": 0}
    real_dumps = json.dumps

    def failing(obj, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        return real_dumps(obj, *args, **kwargs)

    monkeypatch.setattr(evaluation.json, "dumps", failing)
    with pytest.raises(OSError):
        evaluation.write_predictions(out, samples, {s.id: "x" for s in samples})
    assert out.read_text() == "previous good predictions\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
