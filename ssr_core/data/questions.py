"""QA generation from a `WindowAnnotation`: MultiQA, 7-DoF grounding and VSI-Bench-style items.

Only objects visible in the window are named: a question about an object the frames never
show cannot be answered. Every question that refers to an object must pick exactly one
instance; candidates whose answer depends on a near-tie (an angle close to a sector boundary,
two almost equally near objects) are skipped rather than emitted with a coin-flip answer.
Generation is deterministic given the window and the `numpy.random.Generator` passed in.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from scipy.optimize import lsq_linear

from ssr_core.data.annotations import SceneObject, WindowAnnotation
from ssr_core.language.prompts import (
    DIRECTION_PHRASES,
    LIST_SEPARATOR,
    ORDER_WORDS,
    REL_DIRECTION_CHOICES,
    cogmap_messages,
    detect_all_objects_prompt,
    format_cell_answer,
    format_grounding_answer,
    format_number,
    format_options,
    grounding_messages,
    question_text,
    vsibench_prompt,
)
from ssr_core.scene.boxes import rotation_z
from ssr_core.scene.cogmap import DegenerateAnchorsError
from ssr_core.scene.objects import GroundedObject
from ssr_core.scene.scene_graph import build_scene_graph

T = TypeVar("T")

TASK_COGMAP = "cogmap"
TASK_GROUNDING = "grounding"
TASK_VSIBENCH = "vsibench"

# Grounding question types (VSI-Bench items use VSI-Bench's own question_type strings).
GROUNDING_UNIQUE = "grounding_unique"
GROUNDING_PROXIMITY = "grounding_proximity"
GROUNDING_DIRECTION = "grounding_direction"
GROUNDING_TEMPORAL = "grounding_temporal"
GROUNDING_ALL_OF_LABEL = "grounding_all_of_label"
DETECT_ALL = "detect_all"

# Answer precision of VSI-Bench-style numbers.
DISTANCE_DECIMALS = 2  # metres
ROOM_AREA_DECIMALS = 1  # square metres


@dataclass
class QAItem:
    """One question-answer pair; the data engine adds id, scene, frames and window paths."""

    task: str  # "cogmap" | "grounding" | "vsibench"
    question_type: str | None  # VSI-Bench type, grounding referral strategy, None for cogmap
    messages: list[dict[str, str]]  # optional system context, then the user question
    answer: str  # target text the model is trained to emit
    options: list[str] | None  # "A. ..." strings for multiple choice
    ground_truth: Any  # JSON value metrics compare with (cell, boxes, number or letter)
    objects: tuple[str, ...] = ()  # instance ids the question is about (for filtering and debugging)

    def to_json(self) -> dict[str, Any]:
        """The sample fields this item owns (see "Training samples" in ARCHITECTURE.md)."""
        return {
            "task": self.task,
            "question_type": self.question_type,
            "messages": self.messages,
            "answer": self.answer,
            "options": self.options,
            "ground_truth": self.ground_truth,
        }


@dataclass(frozen=True)
class QAConfig:
    """Thresholds of QA generation; the defaults suit room-scale indoor scenes."""

    delta: float = 2.5  # scene-graph seed threshold (m), see `build_scene_graph`
    angle_margin_deg: float = 15.0  # skip directions closer than this to a sector boundary
    distance_margin: float = 0.3  # m by which the nearest/farthest/closest must beat the runner-up
    min_separation: float = 0.3  # m, bird's-eye distance below which a bearing is meaningless
    min_abs_distance: float = 0.1  # m, closer pairs (touching objects) get no distance question
    min_count: int = 2  # smallest count asked about
    max_per_type: int = 3  # VSI-Bench questions per question type and window


def generate_qa(
    window: WindowAnnotation, rng: np.random.Generator, config: QAConfig | None = None
) -> list[QAItem]:
    """All QA items of a window: MultiQA triplets, grounding, then VSI-Bench-style questions."""
    config = config or QAConfig()
    return (
        cogmap_items(window, config)
        + grounding_items(window, rng, config)
        + vsibench_items(window, rng, config)
    )


# ---------------------------------------------------------------------------- geometry


def closest_point_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Distance between the closest points of two 7-DoF boxes (0 when they overlap).

    VSI-Bench measures distances "from the closest point of each object"; for boxes this is a
    bounded least-squares problem over the two boxes' local coordinates, solved exactly.
    """
    axes_a = rotation_z(a[6]) * (a[3:6] / 2.0)
    axes_b = rotation_z(b[6]) * (b[3:6] / 2.0)
    design = np.hstack([axes_a, -axes_b])
    offset = b[:3] - a[:3]
    solution = lsq_linear(design, offset, bounds=(-1.0, 1.0), method="bvls")
    return float(np.linalg.norm(design @ solution.x - offset))


def bearing_deg(stand: np.ndarray, face: np.ndarray, target: np.ndarray) -> float:
    """Bird's-eye angle of `target` seen from `stand` facing `face`, degrees in (-180, 180].

    Positive is to the left (counter-clockwise about +z, which points up).
    """
    forward = face[:2] - stand[:2]
    to_target = target[:2] - stand[:2]
    cross = forward[0] * to_target[1] - forward[1] * to_target[0]
    angle = float(np.degrees(np.arctan2(cross, forward @ to_target)))
    return 180.0 if angle == -180.0 else angle


def _sector(angle: float, boundaries: Sequence[float], names: Sequence[str], margin: float) -> str | None:
    """Name of the sector holding `angle`, None when it lies within `margin` of a boundary.

    `boundaries` are ascending angles in [-180, 180); sector i spans boundaries[i] to
    boundaries[i + 1] and the last one wraps around through 180 back to boundaries[0].
    """
    if any(abs((angle - b + 180.0) % 360.0 - 180.0) < margin for b in boundaries):
        return None
    for i in range(len(boundaries) - 1):
        if boundaries[i] <= angle < boundaries[i + 1]:
            return names[i]
    return names[-1]


# Grounding directions (90-degree sectors) and VSI-Bench relative-direction levels.
_AROUND = ((-135.0, -45.0, 45.0, 135.0), ("right", "front", "left", "behind"))
_EASY = ((-180.0, 0.0), ("right", "left"))
_MEDIUM = ((-135.0, 0.0, 135.0), ("right", "left", "back"))
_HARD = ((-180.0, -90.0, 0.0, 90.0), ("back-right", "front-right", "front-left", "back-left"))


def polygon_area(polygon: np.ndarray) -> float:
    """Area of a simple polygon (K, 2) by the shoelace formula."""
    x, y = polygon[:, 0], polygon[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def _sample(candidates: Sequence[T], k: int, rng: np.random.Generator) -> list[T]:
    """Up to k candidates in a random order drawn from `rng`."""
    return [candidates[i] for i in rng.permutation(len(candidates))[:k]]


def _by_label(objects: Sequence[SceneObject]) -> dict[str, list[SceneObject]]:
    groups: dict[str, list[SceneObject]] = {}
    for obj in objects:
        groups.setdefault(obj.label, []).append(obj)
    return groups


def _xy_distance(a: SceneObject, b: SceneObject) -> float:
    return float(np.linalg.norm(a.box[:2] - b.box[:2]))


# ---------------------------------------------------------------------------- MultiQA


def cogmap_items(window: WindowAnnotation, config: QAConfig | None = None) -> list[QAItem]:
    """One MultiQA item per triplet of the scene graph over the window's visible objects.

    Fewer than three objects, or all of them stacked within 1 cm in bird's-eye view, give none.
    """
    config = config or QAConfig()
    objects = window.visible_objects()
    if len(objects) < 3:
        return []
    labels = {o.instance_id: o.label for o in objects}
    centers = np.stack([o.box[:3] for o in objects])
    try:
        triplets = build_scene_graph([o.instance_id for o in objects], centers, delta=config.delta)
    except DegenerateAnchorsError:  # every object stacked on one spot: no grid can be drawn
        return []
    items = []
    for cm in triplets:
        items.append(
            QAItem(
                task=TASK_COGMAP,
                question_type=None,
                messages=cogmap_messages(
                    cm.anchor1, cm.anchor2, cm.target, cm.anchor1_cell, cm.anchor2_cell, labels
                ),
                answer=format_cell_answer(cm.target_cell),
                options=None,
                ground_truth=[int(cm.target_cell[0]), int(cm.target_cell[1])],
                objects=(cm.anchor1, cm.anchor2, cm.target),
            )
        )
    return items


# ---------------------------------------------------------------------------- grounding


def _grounded(objects: Sequence[SceneObject]) -> list[GroundedObject]:
    return [GroundedObject(o.label, np.asarray(o.box, dtype=np.float64)) for o in objects]


def _grounding_item(
    question_type: str, question: str, targets: Sequence[SceneObject], as_list: bool
) -> QAItem:
    grounded = _grounded(targets)
    return QAItem(
        task=TASK_GROUNDING,
        question_type=question_type,
        messages=grounding_messages(question),
        answer=format_grounding_answer(grounded, as_list=as_list),
        options=None,
        ground_truth=[{"label": g.label, "bbox_7dof": [float(v) for v in g.box]} for g in grounded],
        objects=tuple(o.instance_id for o in targets),
    )


def _proximity_referrals(
    target: SceneObject, same: Sequence[SceneObject], landmarks: Sequence[SceneObject], margin: float
) -> list[tuple[str, str]]:
    """(template family, landmark label) pairs -- nearest to / farthest from a landmark -- that
    single out `target`."""
    phrases = []
    for landmark in landmarks:
        distances = sorted((float(np.linalg.norm(o.box[:3] - landmark.box[:3])), o.instance_id) for o in same)
        if distances[0][1] == target.instance_id and distances[1][0] - distances[0][0] >= margin:
            phrases.append(("grounding_proximity_nearest", landmark.label))
        if distances[-1][1] == target.instance_id and distances[-1][0] - distances[-2][0] >= margin:
            phrases.append(("grounding_proximity_farthest", landmark.label))
    return phrases


def _direction_referrals(
    target: SceneObject, same: Sequence[SceneObject], landmarks: Sequence[SceneObject], config: QAConfig
) -> list[tuple[SceneObject, SceneObject, str]]:
    """(stand, face, sector) such that `target` is the only instance of its label in that
    sector and every instance lies clearly inside some sector."""
    found = []
    for stand, face in itertools.permutations(landmarks, 2):
        if _xy_distance(stand, face) < config.min_separation:
            continue
        if any(_xy_distance(stand, o) < config.min_separation for o in same):
            continue
        sectors = [
            _sector(bearing_deg(stand.box, face.box, o.box), *_AROUND, config.angle_margin_deg) for o in same
        ]
        mine = sectors[[o.instance_id for o in same].index(target.instance_id)]
        if None not in sectors and sectors.count(mine) == 1:
            assert mine is not None
            found.append((stand, face, mine))
    return found


def _temporal_referrals(target: SceneObject, same: Sequence[SceneObject]) -> list[str]:
    """Order words ("first", "second", "last") that single out `target`; none on a tie."""
    frames = sorted(o.first_frame for o in same)
    mine = target.first_frame
    if frames.count(mine) != 1:
        return []
    rank = frames.index(mine)
    phrases = []
    first, second, last = ORDER_WORDS
    if rank == 0:
        phrases.append(first)
    if rank == 1 and len(frames) >= 3:
        phrases.append(second)
    if rank == len(frames) - 1:
        phrases.append(last)
    return phrases


def grounding_items(
    window: WindowAnnotation, rng: np.random.Generator, config: QAConfig | None = None
) -> list[QAItem]:
    """7-DoF grounding questions with unambiguous referrals (paper 3.3) and detect-all.

    A unique label needs no referral ("the chair"). Otherwise each instance gets at most one
    question per strategy -- proximity to a landmark, direction from two anchors, first
    appearance order -- and only when the referral picks exactly that instance. Landmarks and
    anchors are objects whose label is unique in the window, so they are unambiguous too.
    """
    config = config or QAConfig()
    objects = window.visible_objects()
    if not objects:
        return []
    groups = _by_label(objects)
    unique = [group[0] for group in groups.values() if len(group) == 1]
    items = []
    for label, same in groups.items():
        if len(same) == 1:
            items.append(
                _grounding_item(GROUNDING_UNIQUE, question_text("grounding_unique", label=label), same, False)
            )
            continue
        landmarks = [o for o in unique if o.label != label]
        for target in same:
            proximity = _proximity_referrals(target, same, landmarks, config.distance_margin)
            if proximity:
                family, landmark = proximity[int(rng.integers(len(proximity)))]
                question = question_text(family, label=label, landmark=landmark)
                items.append(_grounding_item(GROUNDING_PROXIMITY, question, [target], False))
            direction = _direction_referrals(target, same, landmarks, config)
            if direction:
                stand, face, sector = direction[int(rng.integers(len(direction)))]
                question = question_text(
                    "grounding_direction",
                    stand=stand.label,
                    face=face.label,
                    label=label,
                    direction=DIRECTION_PHRASES[sector],
                )
                items.append(_grounding_item(GROUNDING_DIRECTION, question, [target], False))
            temporal = _temporal_referrals(target, same)
            if temporal:
                order = temporal[int(rng.integers(len(temporal)))]
                question = question_text("grounding_temporal", label=label, order=order)
                items.append(_grounding_item(GROUNDING_TEMPORAL, question, [target], False))
        ordered = sorted(same, key=lambda o: (o.first_frame, o.instance_id))
        question = question_text("grounding_all_of_label", label=label)
        items.append(_grounding_item(GROUNDING_ALL_OF_LABEL, question, ordered, True))
    everything = sorted(objects, key=lambda o: (o.first_frame, o.instance_id))
    grounded = _grounded(everything)
    items.append(
        QAItem(
            task=TASK_GROUNDING,
            question_type=DETECT_ALL,
            messages=[{"role": "user", "content": detect_all_objects_prompt()}],
            answer=format_grounding_answer(grounded, as_list=True),
            options=None,
            ground_truth=[{"label": g.label, "bbox_7dof": [float(v) for v in g.box]} for g in grounded],
            objects=tuple(o.instance_id for o in everything),
        )
    )
    return items


# ---------------------------------------------------------------------------- VSI-Bench


def _numeric_item(
    question_type: str, question: str, value: float, decimals: int, objects: Sequence[str]
) -> QAItem:
    answer = format_number(value, decimals)
    truth: float = float(answer)
    return QAItem(
        task=TASK_VSIBENCH,
        question_type=question_type,
        messages=[{"role": "user", "content": vsibench_prompt(question)}],
        answer=answer,
        options=None,
        ground_truth=int(truth) if decimals == 0 else truth,
        objects=tuple(objects),
    )


def _choice_item(
    question_type: str,
    question: str,
    choices: Sequence[str],
    correct: str,
    rng: np.random.Generator,
    objects: Sequence[str],
) -> QAItem:
    """Multiple-choice item with the choices shuffled by `rng`; the answer is the letter."""
    shuffled = [choices[i] for i in rng.permutation(len(choices))]
    options = format_options(shuffled)
    letter = chr(ord("A") + shuffled.index(correct))
    return QAItem(
        task=TASK_VSIBENCH,
        question_type=question_type,
        messages=[{"role": "user", "content": vsibench_prompt(question, options)}],
        answer=letter,
        options=options,
        ground_truth=letter,
        objects=tuple(objects),
    )


def _counting(
    groups: dict[str, list[SceneObject]], rng: np.random.Generator, config: QAConfig
) -> list[QAItem]:
    labels = [label for label, same in groups.items() if len(same) >= config.min_count]
    return [
        _numeric_item(
            "object_counting",
            question_text("object_counting", label=label),
            len(groups[label]),
            0,
            [o.instance_id for o in groups[label]],
        )
        for label in _sample(labels, config.max_per_type, rng)
    ]


def _abs_distance(unique: Sequence[SceneObject], rng: np.random.Generator, config: QAConfig) -> list[QAItem]:
    pairs = []
    for a, b in itertools.combinations(unique, 2):
        distance = closest_point_distance(a.box, b.box)
        if distance >= config.min_abs_distance:
            pairs.append((a, b, distance))
    return [
        _numeric_item(
            "object_abs_distance",
            question_text("object_abs_distance", first=a.label, second=b.label),
            distance,
            DISTANCE_DECIMALS,
            [a.instance_id, b.instance_id],
        )
        for a, b, distance in _sample(pairs, config.max_per_type, rng)
    ]


def _size(unique: Sequence[SceneObject], rng: np.random.Generator, config: QAConfig) -> list[QAItem]:
    return [
        _numeric_item(
            "object_size_estimation",
            question_text("object_size_estimation", label=o.label),
            float(np.max(o.box[3:6])) * 100.0,
            0,
            [o.instance_id],
        )
        for o in _sample(unique, config.max_per_type, rng)
    ]


def _room_size(window: WindowAnnotation) -> list[QAItem]:
    polygon = np.asarray(window.floor_polygon, dtype=np.float64).reshape(-1, 2)
    if len(polygon) < 3 or not np.all(np.isfinite(polygon)):
        return []
    area = polygon_area(polygon)
    if round(area, ROOM_AREA_DECIMALS) <= 0:
        return []
    question = question_text("room_size_estimation")
    return [_numeric_item("room_size_estimation", question, area, ROOM_AREA_DECIMALS, [])]


def _category_distance(
    target: SceneObject, group: Sequence[SceneObject], cache: dict[tuple[str, str], float]
) -> float:
    """Closest-point distance from `target` to the nearest instance of a category (memoised:
    each costs a few small least-squares solves)."""
    key = (target.instance_id, group[0].label)
    if key not in cache:
        cache[key] = min(closest_point_distance(target.box, o.box) for o in group)
    return cache[key]


def _rel_distance(
    unique: Sequence[SceneObject],
    groups: dict[str, list[SceneObject]],
    rng: np.random.Generator,
    config: QAConfig,
) -> list[QAItem]:
    """Which of four categories is closest to a unique object (closest instance of each)."""
    cache: dict[tuple[str, str], float] = {}
    items = []
    for target in _sample(unique, len(unique), rng):
        others = [label for label in groups if label != target.label]
        if len(others) < 4:
            break
        for _ in range(4):  # a few draws per target; near-ties are skipped
            choices = [others[i] for i in rng.choice(len(others), size=4, replace=False)]
            distance = {c: _category_distance(target, groups[c], cache) for c in choices}
            ranked = sorted(choices, key=distance.__getitem__)
            if distance[ranked[1]] - distance[ranked[0]] >= config.distance_margin:
                question = question_text(
                    "object_rel_distance", choices=LIST_SEPARATOR.join(choices), target=target.label
                )
                ids = [target.instance_id] + [o.instance_id for c in choices for o in groups[c]]
                items.append(_choice_item("object_rel_distance", question, choices, ranked[0], rng, ids))
                break
        if len(items) == config.max_per_type:
            break
    return items


_REL_DIRECTION_SECTORS = {  # sector boundaries of each level; their names are the option texts
    "object_rel_direction_easy": _EASY,
    "object_rel_direction_medium": _MEDIUM,
    "object_rel_direction_hard": _HARD,
}


def relative_direction(
    stand: np.ndarray, face: np.ndarray, target: np.ndarray, question_type: str, margin_deg: float = 0.0
) -> str | None:
    """Answer of a relative-direction question on boxes (7,): where `target` is, seen from `stand`
    facing `face`, at the level `question_type`; None within `margin_deg` of a sector boundary."""
    boundaries, names = _REL_DIRECTION_SECTORS[question_type]
    return _sector(bearing_deg(stand, face, target), boundaries, names, margin_deg)


def _rel_direction(unique: Sequence[SceneObject], rng: np.random.Generator, config: QAConfig) -> list[QAItem]:
    """Relative direction at VSI-Bench's three levels ("If I am standing by A and facing B, ...")."""
    triples = [
        (a, b, c)
        for a, b, c in itertools.permutations(unique, 3)
        if _xy_distance(a, b) >= config.min_separation and _xy_distance(a, c) >= config.min_separation
    ]
    items = []
    for question_type in _REL_DIRECTION_SECTORS:
        choices = REL_DIRECTION_CHOICES[question_type]
        found = 0
        for a, b, c in _sample(triples, len(triples), rng):
            sector = relative_direction(a.box, b.box, c.box, question_type, config.angle_margin_deg)
            if sector is None:
                continue
            question = question_text(question_type, stand=a.label, face=b.label, target=c.label)
            ids = [a.instance_id, b.instance_id, c.instance_id]
            items.append(_choice_item(question_type, question, choices, sector, rng, ids))
            found += 1
            if found == config.max_per_type:
                break
    return items


def _appearance_order(
    groups: dict[str, list[SceneObject]], rng: np.random.Generator, config: QAConfig
) -> list[QAItem]:
    """Order of first appearance of four categories, against three other orderings."""
    first = {label: min(o.first_frame for o in same) for label, same in groups.items()}
    combos = [c for c in itertools.combinations(sorted(first), 4) if len({first[label] for label in c}) == 4]
    items = []
    for combo in _sample(combos, config.max_per_type, rng):
        shown = [combo[i] for i in rng.permutation(4)]
        correct = LIST_SEPARATOR.join(sorted(combo, key=first.__getitem__))
        wrong = [LIST_SEPARATOR.join(p) for p in itertools.permutations(combo) if LIST_SEPARATOR.join(p) != correct]
        choices = [correct] + _sample(wrong, 3, rng)
        question = question_text("obj_appearance_order", categories=LIST_SEPARATOR.join(shown))
        ids = [o.instance_id for label in combo for o in groups[label]]
        items.append(_choice_item("obj_appearance_order", question, choices, correct, rng, ids))
    return items


def vsibench_items(
    window: WindowAnnotation, rng: np.random.Generator, config: QAConfig | None = None
) -> list[QAItem]:
    """VSI-Bench-style questions (its phrasings, answer formats and question_type strings).

    Objects are named by label, so questions about one object use labels unique in the
    window; counting and relative distance work on whole categories, as VSI-Bench does.
    """
    config = config or QAConfig()
    objects = window.visible_objects()
    groups = _by_label(objects)
    unique = [same[0] for same in groups.values() if len(same) == 1]
    return (
        _counting(groups, rng, config)
        + _abs_distance(unique, rng, config)
        + _size(unique, rng, config)
        + _room_size(window)
        + _rel_distance(unique, groups, rng, config)
        + _rel_direction(unique, rng, config)
        + _appearance_order(groups, rng, config)
    )


def ground_truth_objects(ground_truth: Sequence[dict[str, Any]]) -> list[GroundedObject]:
    """Grounding ground truth (as stored in a sample) back to `GroundedObject`s for metrics."""
    return [
        GroundedObject(str(g["label"]), np.asarray(g["bbox_7dof"], dtype=np.float64)) for g in ground_truth
    ]
