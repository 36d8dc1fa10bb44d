"""Videos per minute of `ssr eval vsibench-run` with the tiny random SSR-3D on CPU.

The benchmark is synthetic but shaped like VSI-Bench: `--videos` MP4 files of `--frames` frames at
`--size` (VSI-Bench averages ~18 questions per video), `--questions` rows per video spread over
every question type. The timed part is the whole run loop (decode 32 frames, encode, batched
generation of up to 16 tokens, append predictions); decoding alone is timed separately, since at
full size the model dominates and on the tiny model decoding does.
Run: `OMP_NUM_THREADS=1 python bench/vsibench_run_bench.py [--videos 6 --frames 600 --size 640x480]`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from safetensors.torch import save_file

from ssr_core.evaluation.benchmark import read_questions, read_video_frames, run_benchmark
from ssr_core.inference.generation import SSRGenerator
from ssr_core.language.parsers import CHOICE_QUESTION_TYPES, NUMERIC_QUESTION_TYPES
from ssr_core.model.tiny import build_tiny_ssr, build_tiny_tokenizer

TYPES = sorted(NUMERIC_QUESTION_TYPES) + sorted(CHOICE_QUESTION_TYPES)


def make_benchmark(root: Path, videos: int, frames: int, size: tuple[int, int], questions: int) -> Path:
    width, height = size
    rng = np.random.default_rng(0)
    rows = []
    for v in range(videos):
        path = root / "scannet" / f"scene{v:04d}_00.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (width, height))
        base = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        for f in range(frames):
            writer.write(np.roll(base, 4 * f, axis=1))
        writer.release()
        for q in range(questions):
            qtype = TYPES[q % len(TYPES)]
            numeric = qtype in NUMERIC_QUESTION_TYPES
            rows.append({"id": v * 1000 + q, "dataset": "scannet", "scene_name": f"scene{v:04d}_00",
                         "question_type": qtype, "question": f"How about object {q} in this room?",
                         "options": None if numeric else ["A. a", "B. b", "C. c", "D. d"],
                         "ground_truth": "3" if numeric else "A"})
    questions_path = root / "test.jsonl"
    questions_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return questions_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--frames", type=int, default=600, help="frames per video")
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--questions", type=int, default=18, help="questions per video")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        questions_path = make_benchmark(root / "VSI-Bench", args.videos, args.frames, (size[0], size[1]), args.questions)
        model = build_tiny_ssr(variant="3d", num_frames=32, image_size=(56, 56))
        assert model.vggt is not None
        save_file(dict(model.vggt.state_dict()), str(root / "vggt.safetensors"))
        model.save_pretrained(root / "ckpt")
        build_tiny_tokenizer().save_pretrained(root / "ckpt")
        generator = SSRGenerator.from_checkpoint(root / "ckpt", "cpu", vggt_path=root / "vggt.safetensors")
        videos = sorted((root / "VSI-Bench" / "scannet").glob("*.mp4"))
        start = time.perf_counter()
        for path in videos:
            read_video_frames(path, 32)
        decode = (time.perf_counter() - start) / len(videos)
        questions = read_questions(questions_path)
        run = run_benchmark(questions, root / "VSI-Bench", generator, root / "pred.jsonl", progress=False)
        per_video = run.seconds / run.videos_run
        print(f"{run.videos_run} videos ({args.frames} frames {args.size}), {run.questions_run} questions "
              f"in {run.seconds:.1f} s -> {60 / per_video:.1f} videos/min, {run.questions_run / run.seconds:.1f} questions/s")
        print(f"decode of 32 frames alone: {decode:.2f} s per video ({60 / decode:.0f} videos/min)")


if __name__ == "__main__":
    main()
