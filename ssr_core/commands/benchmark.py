"""`ssr eval vsibench-run`: run a checkpoint on a local VSI-Bench copy and print the paper's table.

    ssr eval vsibench-run --checkpoint CKPT --questions VSI-Bench/test.jsonl \\
        --videos VSI-Bench --out runs/vsibench/predictions.jsonl [--debiased] [--lenient]
    ssr eval vsibench-run --model-kind base --checkpoint /models/Qwen2.5-VL-7B-Instruct ...   # zero-shot

Rerunning the same command after a kill resumes: predictions already in --out are kept.
Exit status: 0 done, 1 bad input, 3 the model failed, 130 interrupted (both keep --out).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ssr_core.commands.common import CliError, add_model_arguments
from ssr_core.commands.evaluate import load_checkpoint_generator
from ssr_core.evaluation.benchmark import (
    DEFAULT_MAX_NEW_TOKENS,
    DEFAULT_NUM_FRAMES,
    BenchmarkInputError,
    describe_problems,
    limit_videos,
    read_questions,
    run_benchmark,
    score_benchmark,
    summary_lines,
)
from ssr_core.evaluation.vsibench import format_details, format_table
from ssr_core.inference.reasoner import WindowGenerator
from ssr_core.io import OutputPathError, atomic_write_text, check_output_file

GeneratorFactory = Callable[[argparse.Namespace], WindowGenerator]
ZERO_SHOT_NOTE = "ZERO-SHOT: an untrained base model with the SSR-2D prompts, not a trained SSR model"
EXIT_OK, EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 3, 130


def run_vsibench(args: argparse.Namespace, make_generator: GeneratorFactory = load_checkpoint_generator) -> int:
    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    out = Path(args.out)
    try:
        for flag, value in (("--num-frames", args.num_frames), ("--max-new-tokens", args.max_new_tokens),
                            ("--batch-size", args.batch_size), ("--limit-videos", args.limit_videos)):
            if value is not None and value < 1:
                raise CliError(f"{flag} must be >= 1, got {value}")
        if args.report:  # checked before the run: a typo must not cost the scores
            check_output_file(args.report, inputs=(args.questions, args.out), what="--report")
        check_output_file(out, inputs=(args.questions,), what="--out")
        videos = Path(args.videos)
        if not videos.is_dir():
            raise CliError(f"video root {videos} is not a directory")
        questions = read_questions(Path(args.questions), debiased=args.debiased)
        if args.limit_videos is not None:
            questions = limit_videos(questions, args.limit_videos)
        generator = make_generator(args)
        zero_shot = bool(getattr(generator, "zero_shot", False))  # SSRGenerator over an untrained base
        if zero_shot:
            say(f"ssr eval vsibench-run: {ZERO_SHOT_NOTE}")
        run = run_benchmark(questions, videos, generator, out, args.num_frames, args.max_new_tokens,
                            progress=not args.no_progress)
    except (CliError, BenchmarkInputError, OutputPathError) as exc:
        say(f"ssr eval vsibench-run: error: {exc}")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        say(f"ssr eval vsibench-run: interrupted; finished predictions are in {out}, rerun to resume")
        return EXIT_INTERRUPTED
    except Exception as exc:  # the model or device failed: one line, what was written stays
        say(f"ssr eval vsibench-run: the model failed: {type(exc).__name__}: {exc} "
            f"(finished predictions are in {out}, rerun to resume)")
        return EXIT_FAILED
    report = score_benchmark(questions, run, lenient=args.lenient)
    for line in describe_problems(report.problems):
        say(f"ssr eval vsibench-run: {line}")
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        scores = {**report.to_json(), **({"zero_shot": True} if zero_shot else {})}
        atomic_write_text(args.report, json.dumps(scores, indent=1) + "\n")
    if zero_shot:
        print(ZERO_SHOT_NOTE)
    print("\n".join(summary_lines(report, run)))
    print()
    print(format_table(report.scores))
    print()
    print(format_details(report.scores.official))
    return EXIT_OK


def add_vsibench_run_command(subparsers: Any, make_generator: GeneratorFactory = load_checkpoint_generator) -> argparse.ArgumentParser:
    """Add `vsibench-run` to the `ssr eval` group; the handler is `args.func(args) -> exit code`."""
    parser = subparsers.add_parser(
        "vsibench-run",
        help="run a checkpoint on a local VSI-Bench copy (released layout), resumable, and print its table",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_arguments(parser)
    parser.add_argument("--questions", required=True,
                        help="question rows: test.jsonl, test-00000-of-00001.parquet or test_debiased.parquet")
    parser.add_argument("--videos", required=True, help="folder holding <dataset>/<scene_name>.mp4")
    parser.add_argument("--out", required=True, help="predictions JSONL, appended as videos finish (resume file)")
    parser.add_argument("--report", help="also write the scores and every problem row as JSON here")
    parser.add_argument("--debiased", action="store_true",
                        help="VSI-Bench-Debiased: keep the rows whose 'pruned' field is false")
    parser.add_argument("--lenient", action="store_true",
                        help="add a row scored with the project's lenient parser (not comparable with papers)")
    parser.add_argument("--num-frames", type=int, default=DEFAULT_NUM_FRAMES,
                        help="frames sampled uniformly per video (default %(default)s)")
    parser.add_argument("--max-new-tokens", type=int, default=DEFAULT_MAX_NEW_TOKENS,
                        help="answer budget (default %(default)s, as the released task)")
    parser.add_argument("--batch-size", type=int, default=16, help="questions decoded together (default %(default)s)")
    parser.add_argument("--limit-videos", type=int, help="only the questions of the first N videos (quick runs)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=lambda args: run_vsibench(args, make_generator))
    return parser
