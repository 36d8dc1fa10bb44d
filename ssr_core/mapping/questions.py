"""Spatial questions answered from the object map's geometry (no model involved).

The map is an annotation of the world: `map_annotation` writes its confirmed objects as a
`WindowAnnotation` in the fixed frame, so the project's QA generation runs on it unchanged
(`map_questions`), and `answer_map_question` answers a user's question with the same geometry
(`closest_point_distance`, `relative_direction`) and the same answer formats as the window
questions (`format_number` with the VSI-Bench decimals, option letters for choices).

A question is recognised when it is, whole, one of the templates of `ssr_core.language.prompts`
(`QUESTION_TEMPLATES` families the map can answer, and the map's own `MAP_QUESTION_TEMPLATES`);
case and runs of white space do not matter. The patterns come from the templates themselves
(`template_pattern`), so a rewording there cannot break recognition here. Objects are
named by label (which must then be unique among the confirmed objects, except in counting and in
the choices of relative distance, which take whole categories) or by map id (`chair_2`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ssr_core.data.annotations import SceneObject, WindowAnnotation
from ssr_core.data.questions import (
    DISTANCE_DECIMALS,
    QAConfig,
    QAItem,
    closest_point_distance,
    relative_direction,
    vsibench_items,
)
from ssr_core.language.prompts import (
    LIST_SEPARATOR,
    MAP_QUESTION_TEMPLATES,
    QUESTION_TEMPLATES,
    REL_DIRECTION_CHOICES,
    format_grounded_object,
    format_number,
    template_pattern,
)
from ssr_core.mapping.map_object import MapObject
from ssr_core.scene.cogmap import MIN_ANCHOR_SEPARATION_M
from ssr_core.scene.objects import GroundedObject

COUNTING = "object_counting"
ABS_DISTANCE = "object_abs_distance"
SIZE = "object_size_estimation"
REL_DISTANCE = "object_rel_distance"
NEAREST = "map_nearest_object"  # MAP_QUESTION_TEMPLATES families
LOCATION = "map_location"
QUESTION_TYPES = (COUNTING, ABS_DISTANCE, SIZE, REL_DISTANCE, *REL_DIRECTION_CHOICES, NEAREST, LOCATION)
_LETTERED = re.compile(r"\s*([A-Z])\s*[.:)]\s*")


class MapView(Protocol):
    """What questions need of a map (`ObjectMap` has it): one consistent list of its objects."""

    def confirmed_objects(self) -> list[MapObject]: ...


@dataclass(frozen=True)
class MapAnswer:
    """Answer to a question on the map; fields as the window's `SpatialAnswer`.

    Numbers: `answer` is the formatted number and `value` the float. Choices: `answer` is the
    choice's text and, when options were given, `value` its letter and `option_index` its index.
    Nearest object: `answer` is the object's id and `value` its closest-point distance (m).
    Location: `answer` is `{"label": ..., "bbox_7dof": [...]}` in the fixed frame (the grounding
    format) and `value` the stamp (s) it was last seen. On failure `error` says why.
    """

    success: bool
    answer: str
    value: float | str | None
    error: str
    question_type: str = ""
    object_ids: tuple[str, ...] = ()  # the map objects the answer rests on
    option_index: int = -1


def map_annotation(object_map: MapView) -> WindowAnnotation:
    """The confirmed objects as an annotation of the world (fixed frame): ids are map ids and
    `first_frame` is the rank of each object's first sighting. It has no floor outline."""
    return _annotation(object_map.confirmed_objects())


def _annotation(confirmed: list[MapObject]) -> WindowAnnotation:
    objects = sorted(confirmed, key=lambda o: (o.first_seen, o.object_id))
    first_stamps = sorted({o.first_seen for o in objects})
    rank = {stamp: i for i, stamp in enumerate(first_stamps)}
    return WindowAnnotation(
        scene_id="object_map",
        frame_indices=np.arange(len(first_stamps)),
        objects=[
            SceneObject(o.object_id, o.label, np.array(o.box), rank[o.first_seen], (rank[o.first_seen],))
            for o in objects
        ],
        floor_polygon=np.zeros((0, 2)),
    )


def map_questions(
    object_map: MapView, rng: np.random.Generator, config: QAConfig | None = None
) -> list[QAItem]:
    """VSI-Bench-style questions and answers over the map (`vsibench_items` on `map_annotation`)."""
    return vsibench_items(map_annotation(object_map), rng, config)


# ---------------------------------------------------------------------------- recognition


@dataclass(frozen=True)
class _Template:
    question_type: str  # the answer's type; "map_how_far" answers as object_abs_distance
    pattern: re.Pattern[str]


def _normalise(text: str) -> str:
    return " ".join(text.split())


def _templates() -> list[_Template]:
    families = {family: QUESTION_TEMPLATES[family] for family in (COUNTING, ABS_DISTANCE, SIZE, REL_DISTANCE)}
    families.update({family: QUESTION_TEMPLATES[family] for family in REL_DIRECTION_CHOICES})
    families.update(MAP_QUESTION_TEMPLATES)
    answers_as = {"map_how_far": ABS_DISTANCE}
    return [
        _Template(
            answers_as.get(family, family),
            re.compile(template_pattern(_normalise(template)).pattern, re.IGNORECASE | re.DOTALL),
        )
        for family, template in families.items()
    ]


_TEMPLATES = _templates()


class _Refusal(Exception):
    """The question cannot be answered from the map; the message says why."""


def answer_map_question(object_map: MapView, question: str, options: Sequence[str] = ()) -> MapAnswer:
    """Answer one of the recognised questions (module docstring) from the map; never raises."""
    if not isinstance(question, str) or not question.strip():
        return MapAnswer(False, "", None, "empty question")
    if isinstance(options, str) or not all(isinstance(o, str) and o.strip() for o in options):
        return MapAnswer(False, "", None, "options must be a list of non-empty strings")
    text = _normalise(question)
    for template in _TEMPLATES:
        match = template.pattern.fullmatch(text)
        if match is None:
            continue
        confirmed = object_map.confirmed_objects()  # one snapshot for the whole answer
        try:
            answer, value, ids = _answer(template.question_type, match.groupdict(), confirmed)
        except _Refusal as exc:
            return MapAnswer(False, "", None, str(exc), template.question_type)
        if options:
            return _choose(answer, options, template.question_type, ids)
        return MapAnswer(True, answer, value, "", template.question_type, ids)
    return MapAnswer(
        False, "", None,
        "not a question the map answers: ask one of the templates in docs/MAP.md (counting, distance, "
        "size, relative distance, relative direction, nearest object, location)",
    )  # fmt: skip


def _choose(answer: str, options: Sequence[str], question_type: str, ids: tuple[str, ...]) -> MapAnswer:
    texts = [_LETTERED.sub("", o, count=1).strip() if _LETTERED.match(o) else o.strip() for o in options]
    for i, option in enumerate(texts):
        if option.lower() == answer.lower():
            return MapAnswer(True, option, chr(ord("A") + i), "", question_type, ids, i)
    return MapAnswer(False, answer, None, f"the map's answer {answer!r} is not among the options", question_type, ids)


def _answer(
    question_type: str, slots: dict[str, str], confirmed: list[MapObject]
) -> tuple[str, float | None, tuple[str, ...]]:
    objects = _annotation(confirmed).objects
    if question_type == COUNTING:
        group = _named(slots["label"], objects, allow_none=True)
        return format_number(len(group), 0), float(len(group)), tuple(o.instance_id for o in group)
    if question_type == ABS_DISTANCE:
        a, b = _one(slots["first"], objects), _one(slots["second"], objects)
        answer = format_number(closest_point_distance(a.box, b.box), DISTANCE_DECIMALS)
        return answer, float(answer), (a.instance_id, b.instance_id)
    if question_type == SIZE:
        a = _one(slots["label"], objects)
        answer = format_number(float(np.max(a.box[3:6])) * 100.0, 0)
        return answer, float(answer), (a.instance_id,)
    if question_type == REL_DISTANCE:
        target = _one(slots["target"], objects)
        choices = [c.strip() for c in slots["choices"].split(LIST_SEPARATOR.strip()) if c.strip()]
        if len(choices) < 2:
            raise _Refusal("relative distance needs at least two choices")
        distance = {}
        for choice in choices:
            group = [o for o in _named(choice, objects) if o.instance_id != target.instance_id]
            if not group:
                raise _Refusal(f"no {choice!r} other than the {slots['target']} in the map")
            distance[choice] = min(closest_point_distance(target.box, o.box) for o in group)
        best = min(choices, key=distance.__getitem__)
        return best, None, (target.instance_id,)
    if question_type in REL_DIRECTION_CHOICES:
        stand, face, target = (_one(slots[s], objects) for s in ("stand", "face", "target"))
        if np.hypot(*(face.box[:2] - stand.box[:2])) < MIN_ANCHOR_SEPARATION_M:
            raise _Refusal(f"the {slots['stand']} and the {slots['face']} stand on one spot: no facing direction")
        sector = relative_direction(stand.box, face.box, target.box, question_type)
        assert sector is not None  # a zero margin always names a sector
        return sector, None, (stand.instance_id, face.instance_id, target.instance_id)
    if question_type == NEAREST:
        landmark = _one(slots["landmark"], objects)
        group = [o for o in _named(slots["label"], objects) if o.instance_id != landmark.instance_id]
        if not group:
            raise _Refusal(f"no {slots['label']!r} other than the {slots['landmark']} in the map")
        distances = [closest_point_distance(landmark.box, o.box) for o in group]
        k = int(np.argmin(distances))
        rounded = float(format_number(distances[k], DISTANCE_DECIMALS))
        return group[k].instance_id, rounded, (group[k].instance_id, landmark.instance_id)
    if question_type == LOCATION:
        a = _one(slots["label"], objects)
        last_seen = next(o.last_seen for o in confirmed if o.object_id == a.instance_id)
        return format_grounded_object(GroundedObject(a.label, a.box)), last_seen, (a.instance_id,)
    raise AssertionError(f"unhandled question type {question_type}")


def _named(name: str, objects: list[SceneObject], allow_none: bool = False) -> list[SceneObject]:
    """Objects a name refers to: the object with that map id, else every object of that label."""
    key = name.strip().lower()
    by_id = [o for o in objects if o.instance_id.lower() == key]
    if by_id:
        return by_id
    group = [o for o in objects if o.label.strip().lower() == key]
    if not group and not allow_none:
        labels = ", ".join(sorted({o.label for o in objects})) or "none"
        raise _Refusal(f"no {name.strip()!r} in the map (confirmed labels: {labels})")
    return group


def _one(name: str, objects: list[SceneObject]) -> SceneObject:
    group = _named(name, objects)
    if len(group) > 1:
        ids = ", ".join(o.instance_id for o in group)
        raise _Refusal(f"{len(group)} objects called {name.strip()!r} in the map ({ids}): name one by its id")
    return group[0]
