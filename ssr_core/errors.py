"""Error types every offline tool reports the same way, and the one error path of every entry point.

Exit statuses (docs/CLI.md), the same for `ssr ...`, `python -m training.train` and `ssr_replay`:
    0    success
    1    bad input: an `InputError` (a file, a value or a path the user gave) or an `OSError`
         (a file that cannot be read or written); one line on stderr naming what to fix
    3    the model failed on valid input (`ModelFailure`): a non-finite loss, a device error
    130  interrupted (Ctrl-C); writes in flight leave the previous output intact (`ssr_core.io`)
    141  stdout closed by the reader (`ssr ... | head`); nothing is printed
Anything else is a bug and keeps its traceback. Library code raises a documented `InputError`
subclass naming the offending file, line or value. This module imports only the standard
library, so every layer may use it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

EXIT_OK = 0
EXIT_BAD_INPUT = 1
EXIT_MODEL_FAILURE = 3
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader went away


class InputError(ValueError):
    """Bad user input (a file, a value, a path): every command reports it as one line, exit status 1.

    The project's documented error types (SceneFormatError, ConfigError, SampleFormatError,
    converter and checkpoint errors, ...) derive from it, so one `except` serves every entry point.
    """


class ModelFailure(RuntimeError):
    """The model failed on valid input (diverged, non-finite loss, device error): exit status 3."""


def one_line(message: object) -> str:
    """`message` on one line: a multi-line error (YAML marks, torch advice) would break `2>&1 | tail -1`."""
    return " ".join(str(message).split())


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot raise BrokenPipeError again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a file descriptor (captured in tests)
        pass


def run_entry_point(prog: str, body: Callable[[], int], input_errors: tuple[type[BaseException], ...] = ()) -> int:
    """Run `body()` and map its outcome to the exit statuses above; genuine bugs propagate.

    `input_errors` adds error types a caller knows to mean bad input (e.g. `yaml.YAMLError`,
    the command layer's `CliError`) without this module importing them.
    """
    bad_input: tuple[type[BaseException], ...] = (InputError, OSError, *input_errors)
    try:
        status = int(body())
        sys.stdout.flush()  # a closed pipe shows up here, not in the interpreter's exit handler
        return status
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ModelFailure as err:
        print(f"{prog}: model failure: {one_line(err)}", file=sys.stderr)
        return EXIT_MODEL_FAILURE
    except bad_input as err:
        print(f"{prog}: error: {one_line(err)}", file=sys.stderr)
        return EXIT_BAD_INPUT


def weight_file_problem(err: BaseException) -> str:
    """What is wrong with a weight file a loader refused, in words a user can act on.

    torch's own message for a refused pickle advises retrying with `weights_only=False`, which
    would run whatever code the file holds; it is never passed on.
    """
    name = type(err).__name__
    text = one_line(err)
    if "weights_only" in text or "Weights only load failed" in text:
        return "it holds Python objects other than tensors and was refused unread (it may be malicious)"
    if isinstance(err, EOFError) or (isinstance(err, OSError) and err.errno == errno.EINVAL) or any(s in text for s in ("central directory", "unexpected EOF", "incomplete", "truncated")):
        return "it is truncated or not a checkpoint"
    return f"it is not a readable checkpoint ({name}: {text[:200]})"


# What parsers raise on malformed content: json, numpy, int()/float(), dict/list access on the
# wrong type, division by a zero read from the file. A `reading` block holds only parsing code,
# so these mean a bad file there, not a bug.
PARSE_ERRORS: tuple[type[BaseException], ...] = (
    OSError, ValueError, KeyError, IndexError, TypeError, AttributeError, ZeroDivisionError,
    OverflowError, RecursionError,
)


def describe_parse_error(err: BaseException) -> str:
    if isinstance(err, json.JSONDecodeError):
        return f"not valid JSON ({err.msg}, line {err.lineno} column {err.colno})"
    if isinstance(err, UnicodeDecodeError):
        return "not UTF-8 text"
    if isinstance(err, KeyError):
        return f"missing field {err}"
    if isinstance(err, OSError):
        return f"cannot read ({err.strerror or err})"
    return f"unreadable ({type(err).__name__}: {one_line(err)[:200]})"


@contextlib.contextmanager
def reading(path: str | Path, error: type[InputError] = InputError, also: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """Turn whatever a parser raises on a malformed `path` into `error` naming the file.

    `also` adds a parser's own error types (plyfile's, scipy's QhullError). An `InputError`
    raised inside passes through unchanged (it already says what is wrong).
    """
    try:
        yield
    except InputError:
        raise
    except (*PARSE_ERRORS, *also) as err:
        raise error(f"{path}: {describe_parse_error(err)}") from None
