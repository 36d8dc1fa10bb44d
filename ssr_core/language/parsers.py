"""Parsers for model answers: strict first, then lenient, never raising.

The model is trained on the exact formats written by `ssr_core.language.prompts`; a strict parse of
that format succeeds with `lenient=False`. Real generations drift (code fences, prose, single
quotes, trailing commas), so a lenient pass recovers what it safely can and marks the result
`lenient=True`; anything else becomes a `ParseFailure` carrying the reason, so callers can
count and report failures instead of crashing on odd text.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

from ssr_core.scene.boxes import wrap_angle
from ssr_core.scene.cogmap import GRID_SIZE  # LocalCogMap cells are 0..GRID_SIZE-1 on both axes
from ssr_core.scene.objects import GroundedObject

T = TypeVar("T")

MAX_TEXT_CHARS = 65536  # longer texts are refused outright: no answer is that long

NUMERIC_QUESTION_TYPES = frozenset(
    {"object_counting", "object_abs_distance", "object_size_estimation", "room_size_estimation"}
)
CHOICE_QUESTION_TYPES = frozenset(
    {
        "object_rel_distance",
        "object_rel_direction_easy",
        "object_rel_direction_medium",
        "object_rel_direction_hard",
        "route_planning",
        "obj_appearance_order",
    }
)
_DEFAULT_LETTERS = "ABCD"


@dataclass(frozen=True)
class Parsed(Generic[T]):
    """A successfully parsed answer; `lenient` is true when the strict format was not met."""

    value: T
    lenient: bool


@dataclass(frozen=True)
class ParseFailure:
    """Why an answer could not be read, with the offending text for logs."""

    reason: str
    text: str


# ---------------------------------------------------------------------------- helpers

# Every pattern below is linear-time on any input: no two adjacent quantifiers can trade
# characters (the fence's language tag cannot contain a newline or a backtick), and the texts
# the loose patterns run on have their whitespace runs squeezed to one space first.
_FENCE = re.compile(r"```(?:[^\n`]*\n)?(.*?)```", re.DOTALL)
_NUMBER = r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"


def _unfenced(text: str) -> str:
    """The content of the first Markdown code fence, or the text itself."""
    match = _FENCE.search(text)
    return match.group(1) if match else text


def _squeezed(text: str) -> str:
    """The unfenced text with every whitespace run turned into one space (see the patterns)."""
    return " ".join(_unfenced(text).split())


def _too_long(text: str) -> ParseFailure | None:
    if len(text) > MAX_TEXT_CHARS:
        return ParseFailure(f"answer longer than {MAX_TEXT_CHARS} characters", text[:200])
    return None


# ---------------------------------------------------------------------------- cells

_STRICT_CELL = re.compile(r"\[([0-9]), ([0-9])\]")
_LOOSE_CELL = re.compile(rf"[\[(]\s*({_NUMBER})\s*[,;]\s*({_NUMBER})\s*[\])]")
_BARE_CELL = re.compile(rf"\s*({_NUMBER})\s*,\s*({_NUMBER})\s*\.?\s*")


def parse_cell(text: str) -> Parsed[tuple[int, int]] | ParseFailure:
    """Read a LocalCogMap cell `[col, row]` (both integers in 0..9).

    Lenient: code fences, prose around the cell, parentheses, missing spaces, integral floats;
    when several pairs appear the last one is taken (models restate the anchors first).
    """
    if not isinstance(text, str):
        return ParseFailure("answer is not a string", repr(text)[:200])
    if (failure := _too_long(text)) is not None:
        return failure
    strict = _STRICT_CELL.fullmatch(text.strip())
    if strict:
        return Parsed((int(strict.group(1)), int(strict.group(2))), lenient=False)
    body = _squeezed(text)
    pairs = _LOOSE_CELL.findall(body)
    if not pairs:
        bare = _BARE_CELL.fullmatch(body)
        if bare is None:
            return ParseFailure("no [col, row] pair found", text)
        pairs = [bare.groups()]
    col, row = (float(v) for v in pairs[-1])
    for name, value in (("col", col), ("row", row)):
        if not math.isfinite(value) or value != int(value):
            return ParseFailure(f"{name} {value} is not an integer", text)
        if not 0 <= value < GRID_SIZE:
            return ParseFailure(f"{name} {int(value)} outside 0..{GRID_SIZE - 1}", text)
    return Parsed((int(col), int(row)), lenient=True)


# ---------------------------------------------------------------------------- grounding

_LABEL_KEYS = ("label", "category", "class", "name")
_BOX_KEYS = ("bbox_7dof", "bbox", "box", "bbox_3d", "box_7dof")
_LIST_KEYS = ("objects", "boxes", "detections")
_TRAILING_COMMA = re.compile(r",\s*([\]}])")


def _reject_constant(name: str) -> float:
    raise ValueError(f"non-finite number {name}")


def _json(text: str) -> tuple[bool, Any]:
    """(ok, value) of a JSON text; NaN/Infinity and pathological nesting count as failure."""
    try:
        return True, json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return False, None


def _balanced_segments(text: str) -> list[str]:
    """Top-level `{...}` / `[...]` substrings, skipping brackets inside quoted strings."""
    segments: list[str] = []
    depth, start, quote, escaped = 0, -1, "", False
    for i, ch in enumerate(text):
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
        elif ch in "\"'" and depth > 0:
            quote = ch
        elif ch in "[{":
            if depth == 0:
                start = i
            depth += 1
        elif ch in "]}" and depth > 0:
            depth -= 1
            if depth == 0:
                segments.append(text[start : i + 1])
    return segments


def _loads_lenient(segment: str) -> tuple[bool, Any]:
    """JSON, then JSON without trailing commas, then a Python literal (single quotes, tuples)."""
    ok, value = _json(segment)
    if ok:
        return ok, value
    ok, value = _json(_TRAILING_COMMA.sub(r"\1", segment))
    if ok:
        return ok, value
    try:
        return True, ast.literal_eval(segment)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


def _as_object(item: Any, strict: bool) -> GroundedObject | str:
    """A validated `GroundedObject`, or the reason it is not one."""
    if not isinstance(item, dict):
        return "object is not a JSON object"
    if strict and set(item) != {"label", "bbox_7dof"}:
        return "keys are not exactly label, bbox_7dof"
    label = next((item[k] for k in _LABEL_KEYS if k in item), None)
    box = next((item[k] for k in _BOX_KEYS if k in item), None)
    if not isinstance(label, str) or not label.strip():
        return "missing or empty label"
    if not isinstance(box, list | tuple) or len(box) != 7:
        return "bbox_7dof is not a list of 7 numbers"
    if any(isinstance(v, bool) or not isinstance(v, int | float) for v in box):
        return "bbox_7dof holds a non-number"
    try:
        values = np.array([float(v) for v in box], dtype=np.float64)
    except OverflowError:  # integers too large for a float
        return "bbox_7dof holds a non-finite number"
    if not np.all(np.isfinite(values)):
        return "bbox_7dof holds a non-finite number"
    if np.any(values[3:6] <= 0):
        return "box size must be positive"
    if abs(values[6]) > 2 * math.pi:
        return "yaw beyond one turn (not radians?)"
    return GroundedObject(label=label.strip() if not strict else label, box=values)


def _grounded(value: Any, strict: bool) -> list[GroundedObject] | str:
    """Objects from a decoded JSON value, or the reason for failure."""
    if not strict and isinstance(value, dict):
        inner = next((value[k] for k in _LIST_KEYS if k in value), None)
        if isinstance(inner, list):
            value = inner
    items = value if isinstance(value, list) else [value]
    objects: list[GroundedObject] = []
    for item in items:
        result = _as_object(item, strict)
        if isinstance(result, str):
            return result
        objects.append(result)
    return objects


def _wrapped(objects: list[GroundedObject]) -> tuple[list[GroundedObject], bool]:
    """Objects with yaw wrapped to (-pi, pi]; the flag says whether any yaw changed."""
    out, changed = [], False
    for obj in objects:
        yaw = float(wrap_angle(obj.box[6]))
        if yaw != obj.box[6]:
            changed = True
            box = obj.box.copy()
            box[6] = yaw
            obj = GroundedObject(obj.label, box)
        out.append(obj)
    return out, changed


def parse_grounding(text: str) -> Parsed[list[GroundedObject]] | ParseFailure:
    """Read `{"label": ..., "bbox_7dof": [7 numbers]}` or a JSON list of such objects.

    Strict: the whole text is that JSON with exactly those keys and yaw already in (-pi, pi].
    Lenient: code fences and prose around it, trailing commas, single quotes, key aliases
    (`bbox`, `box`, `category`, ...), an `{"objects": [...]}` wrapper, several objects written
    one after another, and yaw outside (-pi, pi] (wrapped).
    """
    if not isinstance(text, str):
        return ParseFailure("answer is not a string", repr(text)[:200])
    if (failure := _too_long(text)) is not None:
        return failure
    ok, value = _json(text.strip())
    if ok:
        strict = _grounded(value, strict=True)
        if not isinstance(strict, str):
            objects, changed = _wrapped(strict)
            return Parsed(objects, lenient=changed)
    segments = _balanced_segments(_unfenced(text))
    if not segments:
        return ParseFailure("no JSON object or list found", text)
    decoded = [v for ok, v in map(_loads_lenient, segments) if ok]
    if not decoded:
        return ParseFailure("malformed JSON", text)
    if len(decoded) > 1 and all(isinstance(v, dict) for v in decoded):
        candidate: Any = decoded
    else:
        candidate = decoded[0]
    lenient = _grounded(candidate, strict=False)
    if isinstance(lenient, str):
        return ParseFailure(lenient, text)
    objects, _ = _wrapped(lenient)
    return Parsed(objects, lenient=True)


# ---------------------------------------------------------------------------- VSI-Bench

_STRICT_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_ANY_NUMBER = re.compile(rf"[0-9]{{1,3}}(?:,[0-9]{{3}})+(?:\.[0-9]+)?|{_NUMBER}")  # "2,000" too
_NUMBER_WORDS = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen twenty".split()
    )
}
_WORD = re.compile(r"[A-Za-z]+")
_LEADING_LETTER = re.compile(r"\(?([A-Za-z])\)?(?:[.:)]|\s|$)")
_STATED_LETTER = re.compile(r"(?i:answer|option|choice)\s*(?:is|:)?\s*[:(]?\s*\(?([A-Z])\b")
_LONE_CAPITAL = re.compile(r"(?<![A-Za-z0-9'-])([A-Z])(?![A-Za-z0-9'-])")
_OPTION_PREFIX = re.compile(r"\s*([A-Z])\s*[.:)]\s*(.*)", re.DOTALL)


def option_letters(options: Sequence[str] | None) -> str:
    """The letters a multiple-choice answer may take ("ABCD" when options are unknown)."""
    if not options:
        return _DEFAULT_LETTERS
    return "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[: len(options)]


def option_text(option: str) -> str:
    """`"A. left"` -> `"left"`; an option without a letter prefix is returned stripped."""
    match = _OPTION_PREFIX.fullmatch(option)
    return match.group(2).strip() if match else option.strip()


def _normalised(text: str) -> str:
    return " ".join(text.lower().strip().rstrip(".").split())


def _parse_choice(text: str, options: Sequence[str] | None) -> Parsed[str] | ParseFailure:
    letters = option_letters(options)
    stripped = text.strip()
    if len(stripped) == 1 and stripped in letters:
        return Parsed(stripped, lenient=False)
    body = _squeezed(text)
    lone = {m for m in _LONE_CAPITAL.findall(body) if m in letters}
    lead = _LEADING_LETTER.match(body)
    if lead and (lead.group(1).isupper() or len(body) <= 3):
        letter = lead.group(1).upper()
        if letter in letters and lone <= {letter}:  # "A or B" names two options: no answer
            return Parsed(letter, lenient=True)
    stated = [m for m in _STATED_LETTER.findall(body) if m in letters]
    if stated:
        return Parsed(stated[-1], lenient=True)
    if options:
        wanted = _normalised(body)
        matches = [letters[i] for i, opt in enumerate(options) if _normalised(option_text(opt)) == wanted]
        if len(matches) == 1:
            return Parsed(matches[0], lenient=True)
    if len(lone) == 1:
        return Parsed(lone.pop(), lenient=True)
    return ParseFailure(f"no option letter among {', '.join(letters)}", text)


def _parse_number(text: str) -> Parsed[float] | ParseFailure:
    stripped = text.strip()
    lenient = _STRICT_NUMBER.fullmatch(stripped) is None
    body = _squeezed(text)
    number = _ANY_NUMBER.search(body)
    if not lenient:
        value = float(stripped)
    elif number is not None:
        value = float(number.group(0).replace(",", ""))
    else:
        words = [_NUMBER_WORDS[w.lower()] for w in _WORD.findall(body) if w.lower() in _NUMBER_WORDS]
        if not words:
            return ParseFailure("no number found", text)
        value = float(words[0])
    if not math.isfinite(value):
        return ParseFailure("number is not finite", text)
    if value < 0:
        return ParseFailure("negative quantity", text)
    return Parsed(value, lenient=lenient)


def parse_vsibench(
    text: str, question_type: str, options: Sequence[str] | None = None
) -> Parsed[str | float] | ParseFailure:
    """Read a VSI-Bench answer: an option letter for multiple choice, else a number.

    Multiple choice, strict: exactly one valid letter. Lenient: "B. right", "(B)", "The answer
    is B", the option text itself ("right"), or a single stand-alone valid letter in prose.
    Numerical, strict: a plain non-negative decimal. Lenient: the first number in the text
    (units and prose ignored) or a number word ("three"); negative or non-finite values fail.
    """
    if not isinstance(text, str):
        return ParseFailure("answer is not a string", repr(text)[:200])
    if (failure := _too_long(text)) is not None:
        return failure
    result: Parsed[str] | Parsed[float] | ParseFailure
    if question_type in CHOICE_QUESTION_TYPES:
        result = _parse_choice(text, options)
    elif question_type in NUMERIC_QUESTION_TYPES:
        result = _parse_number(text)
    else:
        return ParseFailure(f"unknown question type {question_type!r}", text)
    return result  # type: ignore[return-value]  # Parsed is invariant; both payloads are allowed
