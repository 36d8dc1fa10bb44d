"""Prompt texts and answer formats: the text contract between the model and the code.

Every text a model is trained on or asked lives here: system contexts, the question templates of
every question family (`QUESTION_TEMPLATES`, rendered by `question_text`), the words filled into
them, answer formats and answer token budgets. Training samples (`ssr_core.data.questions`) and
inference (`ssr_core.inference.reasoner`) build their prompts here and `ssr_core.language.parsers`
reads the answers back, so a change to any text must bump `PROMPT_FORMAT_VERSION`: a checkpoint is
only valid with the prompt version it was trained on. `prompt_fingerprint()` hashes every text;
tests/test_prompts_parsers.py records the fingerprint of each version, so a wording change
without a version bump fails CI.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ssr_core.language.parsers import CHOICE_QUESTION_TYPES, NUMERIC_QUESTION_TYPES
from ssr_core.scene.boxes import wrap_angle
from ssr_core.scene.objects import GroundedObject

# What a generator is asked: a user text, or chat messages (optional system context, then the user
# question) exactly as a training sample stores them; the engine renders both with the chat
# template, video first.
Prompt = str | Sequence[Mapping[str, str]]

PROMPT_FORMAT_VERSION = "2"  # 2: adds the referring-expression families (grounding_description*)
# Versions whose every text this version keeps unchanged (it only adds texts): a checkpoint trained
# on one of them reads today's prompts exactly as it was trained, so loading it needs no warning.
COMPATIBLE_PROMPT_FORMATS: dict[str, tuple[str, ...]] = {"2": ("1",)}


def prompt_format_compatible(trained_on: str) -> bool:
    """Whether a checkpoint trained on prompt format `trained_on` reads this code's prompts as trained."""
    return trained_on == PROMPT_FORMAT_VERSION or trained_on in COMPATIBLE_PROMPT_FORMATS.get(PROMPT_FORMAT_VERSION, ())

DECIMALS = 2  # every metric number in a grounding answer (metres, radians)
MIN_SIZE = 10.0**-DECIMALS  # sizes never round down to a non-positive extent

Message = dict[str, str]

COGMAP_SYSTEM_PROMPT = (
    "You build a local cognitive map of the scene in the video: the floor seen from above, with "
    "three objects drawn on a 10x10 grid. A cell is written [col, row], col and row each from 0 "
    "to 9; col and row are the grid's x and y axes, so the grid is not mirrored. Two anchor "
    "objects fix the map: the first anchor is always at [5, 5] and the second anchor at [5, r] "
    "with r < 5. Standing at the first anchor and facing the second, you look towards smaller "
    "rows; objects on your left have a larger col, objects on your right a smaller col. One cell "
    "is the anchors' distance on the floor divided by 5 - r, and r is the smallest row that "
    "keeps the target inside the grid; a target outside the grid even with r = 4 goes to the "
    "nearest border cell. Your task: given the two anchors, place the target object (the centre "
    "of its box) and answer with its cell only, as [col, row]."
)

FRAME_DEFINITION = (
    "Coordinates are in the video's canonical frame, in metres: the origin is the camera's "
    "optical centre in the first frame, +x is the first frame's viewing direction projected "
    "onto the floor, +z points up (against gravity) and +y to the left (right-handed). A 7-DoF "
    "box is [x, y, z, l, w, h, yaw]: the box centre, its extents along its own x, y and z axes, "
    "and its yaw in radians about +z, in (-pi, pi]. Write every number with two decimals."
)

GROUNDING_SYSTEM_PROMPT = (
    "You localise objects of the video in 3D. "
    + FRAME_DEFINITION
    + ' Answer with JSON only: {"label": "<label>", "bbox_7dof": [x, y, z, l, w, h, yaw]} for '
    "one object, or a JSON list of such objects for several."
)

_DETECT_ALL = (
    "Detect every object in the video. "
    + FRAME_DEFINITION
    + ' Answer with a JSON list only, one {"label": "<label>", "bbox_7dof": [x, y, z, l, w, h, '
    "yaw]} per object, in the order the objects first appear in the video."
)

VSIBENCH_PRE_PROMPT = "These are frames of a video."
VSIBENCH_NUMBER_POST_PROMPT = "Please answer the question using a single word or phrase."
VSIBENCH_CHOICE_POST_PROMPT = "Answer with the option's letter from the given choices directly."

# Answer budgets (new tokens) per answer format: a cell is ~6 tokens, a grounded object ~45,
# VSI-Bench answers a letter or a short number. Shared by the reasoner and `ssr eval run`.
CELL_ANSWER_TOKENS = 16
GROUNDING_ANSWER_TOKENS = 512
DETECT_ALL_ANSWER_TOKENS = 2048  # room for the reasoner's DEFAULT_MAX_OBJECTS
SHORT_ANSWER_TOKENS = 32

# Question families -> `str.format` templates with named fields. The family names of VSI-Bench
# questions are VSI-Bench's question_type strings.
QUESTION_TEMPLATES: dict[str, str] = {
    "cogmap": (
        "Anchor 1: {anchor1} is at {anchor1_cell}. Anchor 2: {anchor2} is at {anchor2_cell}. "
        "In which cell [col, row] is the target {target}?"
    ),
    "detect_all": _DETECT_ALL.replace("{", "{{").replace("}", "}}"),  # no fields: braces are literal
    "grounding_unique": "Find the 3D bounding box of the {label}.",
    "grounding_proximity_nearest": "Find the 3D bounding box of the {label} nearest to the {landmark}.",
    "grounding_proximity_farthest": "Find the 3D bounding box of the {label} farthest from the {landmark}.",
    "grounding_direction": (
        "Imagine standing by the {stand} and facing the {face}. "
        "Find the 3D bounding box of the {label} {direction}."
    ),
    "grounding_temporal": "Find the 3D bounding box of the {label} that appears {order} in the video.",
    "grounding_all_of_label": "Find the 3D bounding box of every {label} in the video.",
    # Free-text referring expressions of public sets (ScanRefer, ReferIt3D, Multi3DRefer).
    "grounding_description": "Find the 3D bounding box of the object described here: {description}",
    "grounding_description_all": "Find the 3D bounding box of every object described here: {description}",
    "object_counting": "How many {label}(s) are in this room?",
    "object_abs_distance": (
        "Measuring from the closest point of each object, what is the direct distance between "
        "the {first} and the {second} (in meters)?"
    ),
    "object_size_estimation": (
        "What is the length of the longest dimension (length, width, or height) of the "
        "{label}, measured in centimeters?"
    ),
    "room_size_estimation": (
        "What is the size of this room (in square meters)? "
        "If multiple rooms are shown, estimate the size of the combined space."
    ),
    "object_rel_distance": (
        "Measuring from the closest point of each object, which of these objects "
        "({choices}) is the closest to the {target}?\n"
        "If there are multiple instances of an object category, measure to the closest."
    ),
    "object_rel_direction_easy": (
        "If I am standing by the {stand} and facing the {face}, "
        "is the {target} to the left or the right of the {face}?"
    ),
    "object_rel_direction_medium": (
        "If I am standing by the {stand} and facing the {face}, is the {target} to my left, right, or back?\n"
        "An object is to my back if I would have to turn at least 135 degrees in order to face it."
    ),
    "object_rel_direction_hard": (
        "If I am standing by the {stand} and facing the {face}, "
        "is the {target} to my front-left, front-right, back-left, or back-right?\n"
        "The directions refer to the quadrants of a Cartesian plane "
        "(if I am standing at the origin and facing along the positive y-axis)."
    ),
    "obj_appearance_order": (
        "What will be the first-time appearance order of the following categories in the video: "
        "{categories}?"
    ),
}

# Words filled into the templates above (part of the contract too).
DIRECTION_PHRASES = {  # grounding_direction's {direction}, by sector
    "left": "on your left",
    "right": "on your right",
    "front": "in front of you",
    "behind": "behind you",
}
ORDER_WORDS = ("first", "second", "last")  # grounding_temporal's {order}
REL_DIRECTION_CHOICES = {  # the option texts of each relative-direction level
    "object_rel_direction_easy": ("left", "right"),
    "object_rel_direction_medium": ("left", "right", "back"),
    "object_rel_direction_hard": ("front-left", "front-right", "back-left", "back-right"),
}
LIST_SEPARATOR = ", "  # categories and choices inside a question, and appearance-order options


# Questions only the object map answers, from its geometry (`ssr_core.mapping.questions`): no model
# is trained on or asked them, so they are outside `prompt_fingerprint`.
MAP_QUESTION_TEMPLATES: dict[str, str] = {
    "map_how_far": "How far is the {first} from the {second} (in meters)?",
    "map_nearest_object": "Which {label} is the nearest to the {landmark}?",
    "map_location": "Where is the {label}, and when was it last seen?",
}


class UnknownQuestionFamily(KeyError):
    """`question_text` was asked for a family that has no registered template."""


def question_text(family: str, **fields: str) -> str:
    """The question of `family` with its fields filled in; every question a sample holds comes from here."""
    try:
        template = QUESTION_TEMPLATES[family]
    except KeyError:
        raise UnknownQuestionFamily(family) from None
    return template.format(**fields)


@dataclass(frozen=True)
class QuestionMatch:
    """A question text recognised as one family, with the field values it was rendered with."""

    family: str
    fields: dict[str, str]


def template_pattern(template: str) -> re.Pattern[str]:
    """Regex of a template: each field a lazy group, a repeated field a back-reference."""
    parts, seen = [], set()
    for literal, field, _, _ in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if field is not None:
            parts.append(f"(?P={field})" if field in seen else f"(?P<{field}>.+?)")
            seen.add(field)
    return re.compile("".join(parts), re.DOTALL)


def _literal_length(template: str) -> int:
    return sum(len(literal) for literal, *_ in string.Formatter().parse(template))


# Most specific first, so "the {label}." never swallows "the {label} nearest to the {landmark}.".
_TEMPLATE_PATTERNS = {
    family: template_pattern(QUESTION_TEMPLATES[family])
    for family in sorted(QUESTION_TEMPLATES, key=lambda f: -_literal_length(QUESTION_TEMPLATES[f]))
}


def match_question(text: str) -> QuestionMatch | None:
    """Which registered family `text` contains (the first template found in it), or None.

    Lets consumers that must understand a question (the ground-truth stand-in, the demo) read it
    through the same templates the question was written with, instead of their own substrings.
    """
    for family, pattern in _TEMPLATE_PATTERNS.items():
        found = pattern.search(text)
        if found is not None:
            return QuestionMatch(family, found.groupdict())
    return None


def prompt_fingerprint() -> str:
    """SHA-256 over every text of the contract; changes whenever any wording or format does."""
    texts = {
        "cogmap_system": COGMAP_SYSTEM_PROMPT,
        "grounding_system": GROUNDING_SYSTEM_PROMPT,
        "vsibench": [VSIBENCH_PRE_PROMPT, VSIBENCH_NUMBER_POST_PROMPT, VSIBENCH_CHOICE_POST_PROMPT],
        "templates": QUESTION_TEMPLATES,
        "direction_phrases": DIRECTION_PHRASES,
        "order_words": ORDER_WORDS,
        "rel_direction_choices": REL_DIRECTION_CHOICES,
        "separator": LIST_SEPARATOR,
        "object_name": object_name("ID", "LABEL"),
        "cell": format_cell_answer((1, 2)),
        "options": format_options(["x", "y"]),
        "vsibench_prompt": [vsibench_prompt("Q"), vsibench_prompt("Q", ["A. x"])],
        "decimals": DECIMALS,
    }
    return hashlib.sha256(json.dumps(texts, sort_keys=True).encode()).hexdigest()


def object_name(instance_id: str, label: str) -> str:
    """How a MultiQA question names an object: `chair_0 (chair)`."""
    return f"{instance_id} ({label})"


def format_cell_answer(cell: Sequence[int] | np.ndarray) -> str:
    """`[7, 3]`: the MultiQA answer, and the cell syntax of the anchors in questions."""
    col, row = (int(v) for v in cell)
    return f"[{col}, {row}]"


def cogmap_messages(
    anchor1: str,
    anchor2: str,
    target: str,
    anchor1_cell: Sequence[int],
    anchor2_cell: Sequence[int],
    labels: Mapping[str, str],
) -> list[Message]:
    """System context and question of one MultiQA triplet (paper 3.2, Fig. 4).

    `labels` maps instance ids to labels so every object is named `<id> (<label>)`.
    """
    question = question_text(
        "cogmap",
        anchor1=object_name(anchor1, labels[anchor1]),
        anchor1_cell=format_cell_answer(anchor1_cell),
        anchor2=object_name(anchor2, labels[anchor2]),
        anchor2_cell=format_cell_answer(anchor2_cell),
        target=object_name(target, labels[target]),
    )
    return [
        {"role": "system", "content": COGMAP_SYSTEM_PROMPT},
        {"role": "user", "content": question},
    ]


def format_number(value: float, decimals: int = DECIMALS) -> str:
    """Fixed-decimal text without a negative zero (`-0.00` would be a needless extra token)."""
    rounded = round(float(value), decimals) + 0.0
    return f"{rounded:.{decimals}f}"


def _box_numbers(box: np.ndarray) -> list[str]:
    values = np.asarray(box, dtype=np.float64).reshape(7)
    x, y, z, length, width, height = (float(v) for v in values[:6])
    sizes = [max(s, MIN_SIZE) for s in (length, width, height)]
    return [format_number(v) for v in (x, y, z, *sizes, float(wrap_angle(values[6])))]


def format_grounded_object(obj: GroundedObject) -> str:
    """`{"label": "chair", "bbox_7dof": [x, y, z, l, w, h, yaw]}` with two decimals."""
    numbers = ", ".join(_box_numbers(obj.box))
    return f'{{"label": {json.dumps(obj.label)}, "bbox_7dof": [{numbers}]}}'


def format_grounding_answer(objects: Sequence[GroundedObject], as_list: bool | None = None) -> str:
    """One object as a JSON object, several (or `as_list=True`) as a JSON list."""
    if as_list is None:
        as_list = len(objects) != 1
    if not as_list:
        return format_grounded_object(objects[0])
    return "[" + ", ".join(format_grounded_object(o) for o in objects) + "]"


def grounding_messages(question: str) -> list[Message]:
    """System context (frame and answer format) plus one grounding question."""
    return [
        {"role": "system", "content": GROUNDING_SYSTEM_PROMPT},
        {"role": "user", "content": question},
    ]


def detect_all_objects_prompt() -> str:
    """Self-contained prompt asking for every object with its 7-DoF box (JSON list)."""
    return question_text("detect_all")


def vsibench_prompt(question: str, options: Sequence[str] | None = None) -> str:
    """The VSI-Bench evaluation prompt: question, options if any, and the answer-format line."""
    parts = [VSIBENCH_PRE_PROMPT, question]
    if options:
        parts += ["Options:", *options, VSIBENCH_CHOICE_POST_PROMPT]
    else:
        parts.append(VSIBENCH_NUMBER_POST_PROMPT)
    return "\n".join(parts)


def vsibench_benchmark_prompt(question_type: str, question: str, options: Sequence[str] | None) -> str:
    """The released VSI-Bench prompt, chosen by question type as the benchmark's own code does.

    Numerical types: pre-prompt, question, number post-prompt. Multiple-choice types: pre-prompt,
    question, `Options:` and one option per line, choice post-prompt. Raises `ValueError` for an
    unknown type or a multiple-choice question without options.
    """
    if question_type in NUMERIC_QUESTION_TYPES:
        return vsibench_prompt(question)
    if question_type not in CHOICE_QUESTION_TYPES:
        raise ValueError(f"unknown VSI-Bench question_type {question_type!r}")
    if not options:
        raise ValueError(f"{question_type} needs its options")
    return vsibench_prompt(question, options)


def vsibench_question(prompt: str) -> str:
    """The question inside a `vsibench_prompt` (between the pre-prompt and the options or post-prompt)."""
    body = prompt.removeprefix(VSIBENCH_PRE_PROMPT + "\n")
    for end in ("\nOptions:\n", "\n" + VSIBENCH_NUMBER_POST_PROMPT):
        if end in body:
            return body.split(end, 1)[0]
    return body


def format_options(texts: Sequence[str]) -> list[str]:
    """`["left", "right"]` -> `["A. left", "B. right"]` (VSI-Bench option strings)."""
    return [f"{chr(ord('A') + i)}. {text}" for i, text in enumerate(texts)]
