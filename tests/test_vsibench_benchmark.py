"""`ssr eval vsibench-run` on a miniature VSI-Bench in the released layout, written by the test.

Four short videos (cv2.VideoWriter) under <root>/<dataset>/<scene_name>.mp4, four rows of every
question type on them, plus one malformed row, one row that is not JSON, two rows of a missing
video and one of an unreadable file: every row is reported and stays in its denominator.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from ssr_core.commands import main as cli
from ssr_core.commands.benchmark import run_vsibench
from ssr_core.evaluation.benchmark import (
    read_finished,
    read_questions,
    read_video_frames,
    uniform_frame_indices,
)
from ssr_core.language.parsers import CHOICE_QUESTION_TYPES, NUMERIC_QUESTION_TYPES
from ssr_core.language.prompts import vsibench_benchmark_prompt

VIDEOS = ["scannet/scene0000_00", "scannet/scene0001_00", "arkitscenes/41069025", "scannetpp/0a5c013435"]
TYPES = sorted(NUMERIC_QUESTION_TYPES) + sorted(CHOICE_QUESTION_TYPES)
OPTIONS = ["A. left", "B. right", "C. back", "D. front"]


def write_video(path: Path, shade: int, frames: int = 40) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    assert writer.isOpened()
    for i in range(frames):
        image = np.full((48, 64, 3), shade, dtype=np.uint8)
        image[:, i % 64] = 255  # a moving bar: frames differ
        writer.write(image)
    writer.release()


def row(qid: int, video: str, qtype: str) -> dict:
    dataset, scene = video.split("/")
    numeric = qtype in NUMERIC_QUESTION_TYPES
    return {
        "id": qid,
        "dataset": dataset,
        "scene_name": scene,
        "question_type": qtype,
        "question": f"Question {qid} about {qtype}?",
        "options": None if numeric else OPTIONS,
        "ground_truth": str(1 + qid % 7) if numeric else "ABCD"[qid % 4],
    }


@pytest.fixture
def bench(tmp_path: Path) -> dict:
    root = tmp_path / "VSI-Bench"
    for shade, video in enumerate(VIDEOS):
        write_video(root / f"{video}.mp4", 40 * shade)
    (root / "scannetpp").mkdir(exist_ok=True)
    (root / "scannetpp" / "broken.mp4").write_bytes(b"not a video" * 10)
    rows = [row(i, VIDEOS[i % len(VIDEOS)], TYPES[i % len(TYPES)]) for i in range(40)]
    rows += [row(40, "scannet/scene9999_00", "route_planning"), row(41, "scannet/scene9999_00", "object_counting")]
    rows += [row(42, "scannetpp/broken", "room_size_estimation")]
    bad = row(43, VIDEOS[0], "object_abs_distance")
    del bad["ground_truth"]
    lines = [json.dumps(r) for r in rows[:10]] + [json.dumps(bad), '{"id": 44, "question_type": "object_cou']
    lines += [json.dumps(r) for r in rows[10:]]
    questions = root / "test.jsonl"
    questions.write_text("\n".join(lines) + "\n")
    return {"root": root, "questions": questions, "rows": rows, "out": tmp_path / "run" / "predictions.jsonl"}


class ScriptedGenerator:
    """Answers each prompt with its row's ground truth; counts encodes and prompts; can stop mid-run."""

    def __init__(self, rows: list[dict], stop_after_videos: int | None = None):
        self.answers = {vsibench_benchmark_prompt(r["question_type"], r["question"], r["options"]): r["ground_truth"]
                        for r in rows}
        self.stop_after_videos = stop_after_videos
        self.encoded = 0
        self.prompts: list[str] = []

    def encode_window(self, frames: np.ndarray) -> int:
        assert frames.dtype == np.uint8 and frames.shape == (32, 48, 64, 3)
        if self.stop_after_videos is not None and self.encoded == self.stop_after_videos:
            raise KeyboardInterrupt
        self.encoded += 1
        return self.encoded

    def generate(self, window: int, prompts, max_new_tokens) -> list[str]:
        assert list(max_new_tokens) == [16] * len(prompts)
        self.prompts += list(prompts)
        return [self.answers[p] for p in prompts]

    def release(self, window: int) -> None:
        pass


def argv(bench: dict, *extra: str) -> list[str]:
    return ["eval", "vsibench-run", "--checkpoint", "unused", "--questions", str(bench["questions"]),
            "--videos", str(bench["root"]), "--out", str(bench["out"]), "--no-progress", *extra]


def run_with(generator, bench: dict, capsys, *extra: str) -> tuple[int, str, str]:
    args = cli.build_parser().parse_args(argv(bench, *extra))
    code = run_vsibench(args, lambda _: generator)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_rows_problems_and_counting_rule(bench: dict, capsys) -> None:
    generator = ScriptedGenerator(bench["rows"])
    code, out, err = run_with(generator, bench, capsys, "--report", str(bench["out"].parent / "report.json"))
    assert code == 0, err
    assert generator.encoded == len(VIDEOS) and len(generator.prompts) == 40  # one encode per video
    report = json.loads((bench["out"].parent / "report.json").read_text())
    # Perfect answers, but the missing video (2 rows), the unreadable file (1) and the malformed
    # row (1) score 0 inside their question types; the non-JSON row belongs to no task.
    assert report["num_rows"] == 45 and report["num_failed"] == 4 and report["rows_without_task"] == 1
    assert report["counts"]["route_planning"] == 5 and report["failed"]["route_planning"] == 1
    assert report["per_question_type"]["route_planning"] == pytest.approx(4 / 5)
    assert report["per_question_type"]["object_abs_distance"] == pytest.approx(4 / 5)
    assert report["per_question_type"]["room_size_estimation"] == pytest.approx(4 / 5)
    assert report["per_question_type"]["object_counting"] == pytest.approx(4 / 5)
    assert report["per_question_type"]["obj_appearance_order"] == 1.0
    problems = {p["row"]: p["reason"] for p in report["problems"]}
    assert "missing field(s) ground_truth" in problems[11] and "not valid JSON" in problems[12]
    assert "scene9999_00.mp4 is missing" in problems[43] and "cannot open video" in problems[45]
    assert "scene9999_00.mp4 is missing: rows 43 (id 40), 44 (id 41)" in err and "Traceback" not in err
    assert "INCOMPLETE" in out
    header = out.splitlines()[out.splitlines().index("") + 1]
    assert header.split("|")[1].strip() == "Rel. Dir." and header.split("|")[-1].strip() == "Overall"


def test_interrupted_run_resumes_without_recomputing(bench: dict, capsys) -> None:
    first = ScriptedGenerator(bench["rows"], stop_after_videos=2)
    code, _, err = run_with(first, bench, capsys)
    assert code == 130 and "rerun to resume" in err
    done = read_finished(bench["out"])
    assert len(done) == len(first.prompts) == 20  # two videos' questions, written as they came
    kept = bench["out"].read_bytes()
    with open(bench["out"], "ab") as fh:  # a line cut by the kill
        fh.write(b'{"id": "7", "question_ty')

    second = ScriptedGenerator(bench["rows"])
    code, out, err = run_with(second, bench, capsys)
    assert code == 0, err
    assert second.encoded == 2 and len(second.prompts) == 20
    assert not set(second.prompts) & set(first.prompts)
    assert bench["out"].read_bytes().startswith(kept)
    ids = [json.loads(line)["id"] for line in bench["out"].read_text().splitlines()]
    assert sorted(ids, key=int) == [str(i) for i in range(40)]
    assert "20 resumed from the predictions file, 20 answered" in out


def test_debiased_selects_unpruned_rows(bench: dict, tmp_path: Path) -> None:
    rows = [dict(r, pruned=r["id"] % 2 == 0) for r in bench["rows"][:10]]
    path = tmp_path / "test.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert [r.id for r in read_questions(path, debiased=True).rows] == ["1", "3", "5", "7", "9"]
    with pytest.raises(ValueError, match="pruned"):
        read_questions(bench["questions"], debiased=True)


def test_released_parquet_rows_read_like_jsonl(bench: dict, tmp_path: Path) -> None:
    # The release ships test-00000-of-00001.parquet and test_debiased.parquet; same rows as the JSONL.
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rows = [dict(r, pruned=r["id"] % 2 == 0) for r in bench["rows"][:10]]
    path = tmp_path / "test-00000-of-00001.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    read = read_questions(path)
    assert [r.id for r in read.rows] == [str(r["id"]) for r in rows] and not read.problems
    assert [r.id for r in read_questions(path, debiased=True).rows] == ["1", "3", "5", "7", "9"]
    damaged = tmp_path / "damaged.parquet"
    damaged.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="cannot read"):
        read_questions(damaged)


def test_bad_inputs_are_one_line_errors(bench: dict, capsys, tmp_path: Path) -> None:
    generator = ScriptedGenerator(bench["rows"])
    bench_missing = dict(bench, questions=tmp_path / "absent.jsonl")
    code, _, err = run_with(generator, bench_missing, capsys)
    assert code == 1 and "absent.jsonl does not exist" in err and err.count("\n") == 1
    bench["out"].parent.mkdir(parents=True, exist_ok=True)
    bench["out"].write_text("garbage\n{}\n")
    code, _, err = run_with(generator, bench, capsys)
    assert code == 1 and "predictions.jsonl line 1" in err


def test_uniform_frames_include_both_ends(tmp_path: Path) -> None:
    assert uniform_frame_indices(100, 32)[[0, -1]].tolist() == [0, 99]
    assert uniform_frame_indices(5, 32).tolist() == [0, 1, 2, 3, 4]
    write_video(tmp_path / "v.mp4", 0, frames=10)
    assert read_video_frames(tmp_path / "v.mp4", 32).shape == (10, 48, 64, 3)


@pytest.mark.slow
def test_tiny_model_end_to_end_with_resume(bench: dict, tmp_path: Path, capsys) -> None:
    """The real command path: checkpoint loading, SSRGenerator, interrupted run, resume, table."""
    from safetensors.torch import save_file

    from ssr_core.inference.generation import SSRGenerator
    from ssr_core.model.tiny import build_tiny_ssr, build_tiny_tokenizer

    checkpoint, vggt = tmp_path / "ckpt", tmp_path / "vggt.safetensors"
    model = build_tiny_ssr(variant="3d", num_frames=4, image_size=(56, 56))
    assert model.vggt is not None
    save_file(dict(model.vggt.state_dict()), str(vggt))
    model.save_pretrained(checkpoint)
    build_tiny_tokenizer().save_pretrained(checkpoint)
    calls: dict[str, int] = {"encode": 0, "prompts": 0}

    class Counting(SSRGenerator):
        stop_at: int | None = 1

        def encode_window(self, frames):
            if self.stop_at is not None and calls["encode"] == self.stop_at:
                raise KeyboardInterrupt
            calls["encode"] += 1
            return super().encode_window(frames)

        def generate(self, window, prompts, max_new_tokens):
            calls["prompts"] += len(prompts)
            return super().generate(window, prompts, max_new_tokens)

    def factory(args):
        return Counting.from_checkpoint(args.checkpoint, "cpu", vggt_path=args.vggt_path, max_batch_size=args.batch_size)

    args = argv(bench, "--lenient", "--vggt-path", str(vggt))
    args[args.index("--checkpoint") + 1] = str(checkpoint)
    code = run_vsibench(cli.build_parser().parse_args(args), factory)
    assert code == 130 and calls == {"encode": 1, "prompts": 10}
    Counting.stop_at = None
    code = run_vsibench(cli.build_parser().parse_args(args), factory)
    out = capsys.readouterr().out
    assert code == 0
    assert calls == {"encode": 4, "prompts": 40}  # the second run did only the 3 other videos
    assert "official" in out and "lenient parser*" in out and "Overall" in out
    assert len(read_finished(bench["out"])) == 40
