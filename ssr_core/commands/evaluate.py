"""`ssr eval run`: run a checkpoint (or any `WindowGenerator`) over a QA file and score it.

Exit status: 0 success, 1 bad input (one line naming the file and line, before any model is loaded
when possible), 3 the model or device failed.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ssr_core.commands.common import add_model_arguments
from ssr_core.errors import InputError, one_line, run_entry_point, weight_file_problem
from ssr_core.evaluation.evaluate import (
    DEFAULT_NUM_FRAMES,
    EvalInputError,
    format_report,
    predict,
    read_samples,
    score,
    write_predictions,
)
from ssr_core.inference.reasoner import WindowGenerator
from ssr_core.io import check_output_file

EXIT_OK, EXIT_BAD_INPUT, EXIT_FAILED = 0, 1, 3

GeneratorFactory = Callable[[argparse.Namespace], WindowGenerator]


def load_checkpoint_generator(args: argparse.Namespace) -> WindowGenerator:
    """The SSR engine over `--checkpoint` (torch is imported only here)."""
    checkpoint = Path(args.checkpoint)
    if not checkpoint.is_dir():
        raise EvalInputError(f"checkpoint {checkpoint} is not a directory")
    from safetensors import SafetensorError

    from ssr_core.inference.generation import SSRGenerator

    try:
        return SSRGenerator.from_checkpoint(
            checkpoint,
            device=args.device,
            vggt_path=args.vggt_path,
            max_batch_size=args.batch_size,
            kind=args.model_kind,
        )
    except InputError:  # VGGTCheckpointError and other documented errors already name the file
        raise
    except (pickle.UnpicklingError, EOFError, SafetensorError) as exc:  # a truncated or refused weight file
        raise EvalInputError(f"cannot load checkpoint {checkpoint}: {weight_file_problem(exc)}") from None
    except (OSError, ValueError, KeyError) as exc:
        raise EvalInputError(f"cannot load checkpoint {checkpoint}: {type(exc).__name__}: {one_line(exc)}") from None


def run_eval(args: argparse.Namespace, make_generator: GeneratorFactory = load_checkpoint_generator) -> int:
    """`ssr eval run`: exit 0 on success, 1 on bad input, 3 when the model fails."""
    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    try:
        for flag, value in (("--limit", args.limit), ("--num-frames", args.num_frames),
                            ("--batch-size", args.batch_size), ("--max-new-tokens", args.max_new_tokens)):
            if value is not None and value < 1:
                raise EvalInputError(f"{flag} must be >= 1, got {value}")
        if args.out:  # before any inference: a bad path must not cost the run
            check_output_file(args.out, inputs=(args.data,))
        samples = read_samples(Path(args.data), Path(args.root) if args.root else None, args.limit, args.num_frames)
        generator = make_generator(args)
        zero_shot = bool(getattr(generator, "zero_shot", False))  # SSRGenerator over an untrained base
        if zero_shot:
            say("ssr eval run: ZERO-SHOT run of an untrained base model (SSR-2D prompts, not trained for SSR)")
        start = time.perf_counter()
        predictions = predict(samples, generator, args.num_frames, args.max_new_tokens, say, blind=args.blind)
        seconds = time.perf_counter() - start
    except InputError as exc:  # EvalInputError, a bad JSONL line (SampleFormatError), a bad --out or weight file
        say(f"ssr eval run: error: {one_line(exc)}")
        return EXIT_BAD_INPUT
    except Exception as exc:  # the model or device failed: report it, not a traceback
        say(f"ssr eval run: the model failed: {type(exc).__name__}: {one_line(exc)}")
        return EXIT_FAILED
    if args.out:
        write_predictions(Path(args.out), samples, predictions, zero_shot)
        say(f"predictions written to {args.out}")
    print(format_report(score(samples, predictions, seconds, zero_shot)))
    return EXIT_OK


def add_eval_run_command(subparsers: Any, make_generator: GeneratorFactory = load_checkpoint_generator) -> argparse.ArgumentParser:
    """Add `run` to the `ssr eval` sub-command group; the handler is `args.func(args) -> exit code`."""
    parser = subparsers.add_parser(
        "run",
        help="run a checkpoint over a QA file and print VSI-Bench, grounding and LocalCogMap scores",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_arguments(parser)
    parser.add_argument("--data", required=True, help="QA JSONL (training samples or VSI-Bench-style rows)")
    parser.add_argument("--out", help="write predictions JSONL ({id, prediction} per line) here")
    parser.add_argument("--root", help="folder frame paths are relative to (default: the QA file's folder)")
    parser.add_argument("--limit", type=int, help="only the first N samples")
    parser.add_argument("--num-frames", type=int, default=DEFAULT_NUM_FRAMES,
                        help="frames taken from a `video` folder or file (default %(default)s)")
    parser.add_argument("--batch-size", type=int, default=16, help="prompts decoded together (default %(default)s)")
    parser.add_argument("--max-new-tokens", type=int, help="cap every answer's token budget (quick runs)")
    parser.add_argument("--blind", action="store_true", help="show the model constant grey frames (blind baseline)")
    parser.set_defaults(func=lambda args: run_eval(args, make_generator))
    return parser


def main(argv: Sequence[str] | None = None, make_generator: GeneratorFactory = load_checkpoint_generator) -> int:
    """`python -m ssr_core.commands.evaluate run ...` (the same command as `ssr eval run`)."""
    parser = argparse.ArgumentParser(prog="ssr eval")
    add_eval_run_command(parser.add_subparsers(dest="command", required=True), make_generator)
    args = parser.parse_args(argv)
    return run_entry_point("ssr eval run", lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
