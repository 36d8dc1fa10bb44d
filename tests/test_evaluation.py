"""`ssr eval run`: perfect scores with the ground-truth stand-in, clean failures on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_standin import make_annotation

from ssr_core.commands import evaluate as eval_command
from ssr_core.data.annotations import WindowAnnotation
from ssr_core.data.ground_truth import GroundTruthGenerator
from ssr_core.data.questions import generate_qa
from ssr_core.evaluation import evaluate as evaluation
from ssr_core.inference.reasoner import prompt_text
from ssr_core.language.prompts import vsibench_prompt


def _write_frames(folder: Path, value: int, count: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(count):
        Image.fromarray(np.full((16, 16, 3), value, dtype=np.uint8)).save(folder / f"{i:04d}.png")
        names.append(f"{folder.parent.name}/{folder.name}/{i:04d}.png")
    return names


@pytest.fixture
def dataset(tmp_path: Path):
    """Two windows of QA samples (every task) plus one VSI-Bench-style row with a `video` folder.

    Returns the QA path, the annotation per frame value, and the oracle answers of the prompts
    the stand-in cannot answer from boxes alone (referral grounding, VSI-Bench), by window.
    """
    windows: dict[int, WindowAnnotation] = {}
    oracle: dict[tuple[int, str], str] = {}
    rows = []
    for w, value in enumerate((40, 200)):
        window = make_annotation(7, seed=10 + w)
        windows[value] = window
        frames = _write_frames(tmp_path / "scene" / f"w{w}", value, 3)
        for k, item in enumerate(generate_qa(window, np.random.default_rng(w))):
            rows.append({"id": f"w{w}_{k:03d}", "scene_id": "scene", "split": "val", **item.to_json(),
                         "frames": frames, "window": f"scene/w{w}.json"})
            oracle[id(window), prompt_text(item.messages)] = item.answer
    assert {r["task"] for r in rows} == {"cogmap", "grounding", "vsibench"}
    _write_frames(tmp_path / "videos" / "clip", 90, 5)
    windows[90] = make_annotation(5, seed=3)
    options = ["A. chair", "B. table"]
    oracle[id(windows[90]), vsibench_prompt("Which is nearer to the door?", options)] = "B"
    rows.append({"id": 9999, "question_type": "object_rel_distance", "question": "Which is nearer to the door?",
                 "options": options, "ground_truth": "B", "video": "videos/clip"})
    qa = tmp_path / "qa.jsonl"
    qa.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return qa, windows, oracle


def _standin(windows, oracle) -> GroundTruthGenerator:
    return GroundTruthGenerator(
        lambda frames: windows[int(frames[0, 0, 0, 0])], other_answer=lambda prompt, gt: oracle[id(gt), prompt]
    )


def test_ground_truth_run_scores_perfectly_and_encodes_each_window_once(dataset, tmp_path, capsys):
    qa, windows, oracle = dataset
    generator = _standin(windows, oracle)
    out = tmp_path / "pred" / "predictions.jsonl"
    code = eval_command.main(
        ["run", "--checkpoint", str(tmp_path), "--data", str(qa), "--out", str(out)], lambda args: generator
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert (generator.encoded, generator.released) == (3, 3)

    samples = evaluation.read_samples(qa)
    predicted = [json.loads(line) for line in out.read_text().splitlines()]
    assert [p["id"] for p in predicted] == [s.id for s in samples] and set(predicted[0]) == {"id", "prediction"}
    report = evaluation.score(samples, {p["id"]: p["prediction"] for p in predicted})
    assert report.num_windows == 3
    assert report.vsibench is not None and report.vsibench.overall == 1.0
    assert sum(report.vsibench.unparsed.values()) == 0
    assert report.cogmap is not None and report.cogmap.exact_accuracy == 1.0 and report.cogmap.mean_cell_error == 0
    assert "detect_all" in report.grounding and "referrals" in report.grounding
    for g in report.grounding.values():
        assert (g.n_unparsed, g.acc_025, g.acc_050) == (0, 1.0, 1.0) and g.n_matched == g.n
        assert g.mean_iou > 0.97 and g.mean_center_error < 0.01
    assert "overall (mean of tasks)" in captured.out and "LocalCogMap" in captured.out
    assert "Traceback" not in captured.err


def test_limit_and_token_cap(dataset, tmp_path):
    qa, windows, oracle = dataset
    seen: list[list[int]] = []

    class Recording(GroundTruthGenerator):
        def generate(self, window, prompts, max_new_tokens):
            seen.append(list(max_new_tokens))
            return super().generate(window, prompts, max_new_tokens)

    generator = Recording(
        lambda frames: windows[int(frames[0, 0, 0, 0])], other_answer=lambda prompt, gt: oracle[id(gt), prompt]
    )
    out = tmp_path / "p.jsonl"
    args = ["run", "--checkpoint", ".", "--data", str(qa), "--out", str(out), "--limit", "4", "--max-new-tokens", "8"]
    assert eval_command.main(args, lambda a: generator) == 0
    assert len(out.read_text().splitlines()) == 4
    assert seen == [[8, 8, 8, 8]]


def _run(args: list[str], capsys, generator=None) -> tuple[int, str]:
    factory = eval_command.load_checkpoint_generator if generator is None else (lambda a: generator)
    code = eval_command.main(["run", *args], factory)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_bad_inputs_exit_cleanly(dataset, tmp_path, capsys):
    qa, windows, oracle = dataset
    ok = ["--checkpoint", str(tmp_path)]

    code, err = _run(["--checkpoint", str(tmp_path / "nope"), "--data", str(qa)], capsys)
    assert code == 1 and "checkpoint" in err and "not a directory" in err
    code, err = _run([*ok, "--data", str(tmp_path / "missing.jsonl")], capsys)
    assert code == 1 and "does not exist" in err
    for flag in ("--limit", "--num-frames", "--batch-size", "--max-new-tokens"):  # not "the model failed"
        code, err = _run([*ok, "--data", str(qa), flag, "0"], capsys, _standin(windows, oracle))
        assert code == 1 and f"{flag} must be >= 1" in err, (flag, err)

    lines = qa.read_text().splitlines()
    cases = {
        "not json": ("{oops", "line 2: not valid JSON"),
        "not an object": ("[1, 2]", "JSON object"),
        "no ground truth": (json.dumps({k: v for k, v in json.loads(lines[0]).items() if k != "ground_truth"}),
                            "ground_truth"),
        "bad cell": (json.dumps({**json.loads(lines[0]), "ground_truth": [12, 3]}), "[col, row]"),
        "missing frame": (json.dumps({**json.loads(lines[0]), "id": "x", "frames": ["scene/w0/9999.png"]}),
                          "does not exist"),
        "duplicate id": (lines[0], "duplicate id"),
        "bad task": (json.dumps({**json.loads(lines[0]), "id": "y", "task": "poetry"}), "task must be"),
        "no prompt": (json.dumps({"id": "z", "task": "vsibench", "ground_truth": 1, "frames": ["scene/w0/0000.png"]}),
                      "'messages' or a non-empty 'question'"),
    }
    for name, (bad_line, message) in cases.items():
        bad = tmp_path / "bad.jsonl"
        bad.write_text("\n".join([lines[0], bad_line]) + "\n")
        code, err = _run([*ok, "--data", str(bad)], capsys, _standin(windows, oracle))
        assert code == 1 and message in err, (name, err)

    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    code, err = _run([*ok, "--data", str(empty)], capsys)
    assert code == 1 and "no samples" in err


def test_unreadable_frame_and_failing_model(dataset, tmp_path, capsys):
    qa, windows, oracle = dataset
    ok = ["--checkpoint", str(tmp_path), "--data", str(qa)]
    first = json.loads(qa.read_text().splitlines()[0])
    (tmp_path / first["frames"][1]).write_bytes(b"not a png")
    code, err = _run(ok, capsys, _standin(windows, oracle))
    assert code == 1 and "cannot read frame" in err

    class Broken(GroundTruthGenerator):
        def encode_window(self, frames):
            raise RuntimeError("CUDA out of memory")

    _write_frames(tmp_path / "scene" / "w0", 40, 3)
    code, err = _run(ok, capsys, Broken(windows[40]))
    assert code == 3 and "CUDA out of memory" in err


@pytest.mark.slow  # importing torch + transformers dominates
def test_tiny_random_checkpoint_runs_and_writes_rows(dataset, tmp_path, capsys):
    pytest.importorskip("torch")
    from ssr_core.model.tiny import build_tiny_ssr, build_tiny_tokenizer

    qa, _, _ = dataset
    checkpoint = tmp_path / "tiny"
    build_tiny_ssr(variant="2d", num_frames=2).save_pretrained(checkpoint)
    build_tiny_tokenizer().save_pretrained(checkpoint)
    out = tmp_path / "tiny_pred.jsonl"
    args = ["--checkpoint", str(checkpoint), "--data", str(qa), "--out", str(out), "--device", "cpu",
            "--limit", "3", "--max-new-tokens", "3"]
    code, err = _run(args, capsys)
    assert code == 0, err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3 and all(isinstance(r["prediction"], str) for r in rows)
