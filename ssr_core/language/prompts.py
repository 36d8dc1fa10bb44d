"""Prompt texts and answer formats: the text contract between the model and the code.

Training samples (`ssr_core.data.questions`) and inference (`ssr_core.inference.reasoner`) build their prompts here
and `ssr_core.language.parsers` reads the answers back, so a change to any text or format must bump
`PROMPT_FORMAT_VERSION`: a checkpoint is only valid with the prompt version it was trained on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import numpy as np

from ssr_core.language.parsers import GroundedObject
from ssr_core.scene.boxes import wrap_angle

# What a generator is asked: a user text, or chat messages (optional system context, then the user
# question) exactly as a training sample stores them; the engine renders both with the chat
# template, video first.
Prompt = str | Sequence[Mapping[str, str]]

PROMPT_FORMAT_VERSION = "1"

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
    question = (
        f"Anchor 1: {object_name(anchor1, labels[anchor1])} is at {format_cell_answer(anchor1_cell)}. "
        f"Anchor 2: {object_name(anchor2, labels[anchor2])} is at {format_cell_answer(anchor2_cell)}. "
        f"In which cell [col, row] is the target {object_name(target, labels[target])}?"
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
    return _DETECT_ALL


def vsibench_prompt(question: str, options: Sequence[str] | None = None) -> str:
    """The VSI-Bench evaluation prompt: question, options if any, and the answer-format line."""
    parts = [VSIBENCH_PRE_PROMPT, question]
    if options:
        parts += ["Options:", *options, VSIBENCH_CHOICE_POST_PROMPT]
    else:
        parts.append(VSIBENCH_NUMBER_POST_PROMPT)
    return "\n".join(parts)


def format_options(texts: Sequence[str]) -> list[str]:
    """`["left", "right"]` -> `["A. left", "B. right"]` (VSI-Bench option strings)."""
    return [f"{chr(ord('A') + i)}. {text}" for i, text in enumerate(texts)]


# ---------------------------------------------------------------------------- spatial questions
# VSI-Bench's phrasings of the questions `ssr_core.data.questions` generates, shared with the object
# map (`ssr_core.mapping.questions`), which recognises them in a user's question and answers them
# from its geometry. The last two are the map's own (never shown to the model).

REL_DIRECTION_CHOICES: dict[str, tuple[str, ...]] = {
    "object_rel_direction_easy": ("left", "right"),
    "object_rel_direction_medium": ("left", "right", "back"),
    "object_rel_direction_hard": ("front-left", "front-right", "back-left", "back-right"),
}

_REL_DIRECTION_TAILS = {
    "object_rel_direction_easy": "is the {c} to the left or the right of the {b}?",
    "object_rel_direction_medium": (
        "is the {c} to my left, right, or back?\n"
        "An object is to my back if I would have to turn at least 135 degrees in order to face it."
    ),
    "object_rel_direction_hard": (
        "is the {c} to my front-left, front-right, back-left, or back-right?\n"
        "The directions refer to the quadrants of a Cartesian plane "
        "(if I am standing at the origin and facing along the positive y-axis)."
    ),
}


def counting_question(label: str) -> str:
    return f"How many {label}(s) are in this room?"


def abs_distance_question(first: str, second: str) -> str:
    return (
        "Measuring from the closest point of each object, what is the direct distance between "
        f"the {first} and the {second} (in meters)?"
    )


def size_question(name: str) -> str:
    return (
        "What is the length of the longest dimension (length, width, or height) of the "
        f"{name}, measured in centimeters?"
    )


def room_size_question() -> str:
    return (
        "What is the size of this room (in square meters)? "
        "If multiple rooms are shown, estimate the size of the combined space."
    )


def rel_distance_question(choices: Sequence[str], target: str) -> str:
    return (
        "Measuring from the closest point of each object, which of these objects "
        f"({', '.join(choices)}) is the closest to the {target}?\n"
        "If there are multiple instances of an object category, measure to the closest."
    )


def rel_direction_question(question_type: str, stand: str, face: str, target: str) -> str:
    """`question_type` is a key of `REL_DIRECTION_CHOICES` (VSI-Bench's three levels)."""
    tail = _REL_DIRECTION_TAILS[question_type].format(b=face, c=target)
    return f"If I am standing by the {stand} and facing the {face}, " + tail


def appearance_order_question(categories: Sequence[str]) -> str:
    return (
        "What will be the first-time appearance order of the following categories in the video: "
        f"{', '.join(categories)}?"
    )


def nearest_object_question(label: str, landmark: str) -> str:
    """Object map only: which instance of a label is nearest (closest points) to an object."""
    return f"Which {label} is the nearest to the {landmark}?"


def how_far_question(first: str, second: str) -> str:
    """Object map only: the README's short form of the distance question (closest points)."""
    return f"How far is the {first} from the {second} (in meters)?"


def location_question(name: str) -> str:
    """Object map only: an object's box in the fixed frame and when it was last seen."""
    return f"Where is the {name}, and when was it last seen?"
