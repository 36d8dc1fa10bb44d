"""QA generation: every item is answerable, unambiguous and consistent with the window."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from scipy.spatial import cKDTree

from ssr_core.data.annotations import SceneObject, WindowAnnotation
from ssr_core.data.questions import (
    DETECT_ALL,
    GROUNDING_ALL_OF_LABEL,
    GROUNDING_DIRECTION,
    GROUNDING_PROXIMITY,
    GROUNDING_TEMPORAL,
    GROUNDING_UNIQUE,
    QAConfig,
    QAItem,
    bearing_deg,
    closest_point_distance,
    cogmap_items,
    generate_qa,
    grounding_items,
    polygon_area,
    vsibench_items,
)
from ssr_core.language.parsers import Parsed, parse_cell, parse_grounding, parse_vsibench
from ssr_core.scene.cogmap import decode_target
from ssr_core.scene.scene_graph import build_scene_graph

SQUARE = np.array([[-4.0, -5.0], [4.0, -5.0], [4.0, 5.0], [-4.0, 5.0]])


def obj(
    instance_id: str,
    x: float,
    y: float,
    first: int = 0,
    size=(0.5, 0.5, 0.5),
    yaw: float = 0.0,
    z: float = 0.5,
):
    label = instance_id.rsplit("_", 1)[0]
    return SceneObject(instance_id, label, np.array([x, y, z, *size, yaw], dtype=np.float64), first, (first,))


def window(*objects: SceneObject, polygon: np.ndarray = SQUARE) -> WindowAnnotation:
    return WindowAnnotation("scene", np.arange(16), list(objects), polygon)


def random_window(seed: int, n_dup: int = 3) -> WindowAnnotation:
    rng = np.random.default_rng(seed)
    labels = ["chair"] * n_dup + ["table"] * 2 + ["sofa", "tv", "lamp", "bed", "desk", "door", "sink"]
    objects: list[SceneObject] = []
    counts: dict[str, int] = {}
    for label in labels:
        k = counts.get(label, 0)
        counts[label] = k + 1
        box = np.r_[
            rng.uniform(-4, 4, 2), rng.uniform(0.2, 1.0), rng.uniform(0.3, 1.5, 3), rng.uniform(-np.pi, np.pi)
        ]
        first = int(rng.integers(-1, 16))  # some objects are never seen in the window
        objects.append(SceneObject(f"{label}_{k}", label, box, first, (first,) if first >= 0 else ()))
    return WindowAnnotation("scene", np.arange(16), objects, SQUARE)


def by_type(items: list[QAItem], question_type: str | None) -> list[QAItem]:
    return [i for i in items if i.question_type == question_type]


def question(item: QAItem) -> str:
    return item.messages[-1]["content"]


def option_text(item: QAItem) -> str:
    assert item.options is not None
    return item.options[ord(item.answer) - ord("A")].split(". ", 1)[1]


# ---------------------------------------------------------------------------- items and contract


def test_item_json_has_the_training_sample_fields() -> None:
    items = generate_qa(random_window(0), np.random.default_rng(0))
    assert {i.task for i in items} == {"cogmap", "grounding", "vsibench"}
    for item in items:
        data = item.to_json()
        assert set(data) == {"task", "question_type", "messages", "answer", "options", "ground_truth"}
        json.dumps(data)  # JSON-serialisable
        assert data["messages"][-1]["role"] == "user"
        assert all(m["role"] in ("system", "user") for m in data["messages"])


def test_generation_is_deterministic_given_the_seed() -> None:
    win = random_window(1)
    first = [i.to_json() for i in generate_qa(win, np.random.default_rng(7))]
    again = [i.to_json() for i in generate_qa(win, np.random.default_rng(7))]
    other = [i.to_json() for i in generate_qa(win, np.random.default_rng(8))]
    assert json.dumps(first) == json.dumps(again)
    assert json.dumps(first) != json.dumps(other)


@pytest.mark.parametrize("seed", range(4))
def test_only_visible_objects_are_named(seed: int) -> None:
    win = random_window(seed)
    visible = {o.instance_id for o in win.visible_objects()}
    for item in generate_qa(win, np.random.default_rng(seed)):
        assert set(item.objects) <= visible


@pytest.mark.parametrize("seed", range(4))
def test_answers_parse_strictly_to_the_ground_truth(seed: int) -> None:
    for item in generate_qa(random_window(seed), np.random.default_rng(seed)):
        if item.task == "cogmap":
            assert parse_cell(item.answer) == Parsed(tuple(item.ground_truth), lenient=False)
        elif item.task == "grounding":
            parsed = parse_grounding(item.answer)
            assert isinstance(parsed, Parsed) and not parsed.lenient
            assert [o.label for o in parsed.value] == [g["label"] for g in item.ground_truth]
            for o, g in zip(parsed.value, item.ground_truth):
                np.testing.assert_allclose(o.box[:6], g["bbox_7dof"][:6], atol=0.0051)
        else:
            answer = parse_vsibench(item.answer, str(item.question_type), item.options)
            assert isinstance(answer, Parsed) and not answer.lenient
            assert answer.value == item.ground_truth


def test_empty_window_gives_only_room_size() -> None:
    items = generate_qa(window(), np.random.default_rng(0))
    assert [i.question_type for i in items] == ["room_size_estimation"]


# ---------------------------------------------------------------------------- MultiQA


def test_cogmap_items_follow_the_scene_graph() -> None:
    win = random_window(2)
    visible = win.visible_objects()
    items = cogmap_items(win)
    triplets = build_scene_graph([o.instance_id for o in visible], np.stack([o.box[:3] for o in visible]))
    assert len(items) == len(triplets) == len(visible) - 2
    centre = {o.instance_id: o.box[:2] for o in visible}
    for item, cm in zip(items, triplets):
        assert item.task == "cogmap" and item.question_type is None
        assert item.objects == (cm.anchor1, cm.anchor2, cm.target)
        assert item.answer == f"[{cm.target_cell[0]}, {cm.target_cell[1]}]"
        text = question(item)
        label = cm.anchor1.rsplit("_", 1)[0]
        assert f"{cm.anchor1} ({label}) is at [5, 5]" in text
        assert f"[{cm.anchor2_cell[0]}, {cm.anchor2_cell[1]}]" in text and cm.target in text
        if not cm.clipped:  # the answer cell decodes to within half a cell of the target
            a1, a2 = centre[cm.anchor1], centre[cm.anchor2]
            decoded = decode_target(a1, a2, cm.anchor1_cell, cm.anchor2_cell, cm.target_cell)
            cell_size = np.linalg.norm(a2 - a1) / (5 - cm.anchor2_cell[1])
            assert np.linalg.norm(decoded - centre[cm.target]) <= cell_size * math.sqrt(0.5) + 1e-9


def test_cogmap_needs_three_separated_objects() -> None:
    assert cogmap_items(window(obj("chair_0", 0, 0), obj("table_0", 1, 0))) == []
    stacked = window(obj("cup_0", 1, 1, z=0.1), obj("book_0", 1, 1, z=0.5), obj("lamp_0", 1, 1, z=0.9))
    assert cogmap_items(stacked) == []


# ---------------------------------------------------------------------------- grounding


def test_unique_labels_need_no_referral() -> None:
    items = grounding_items(window(obj("sofa_0", 1, 2), obj("tv_0", -1, 0)), np.random.default_rng(0))
    unique = by_type(items, GROUNDING_UNIQUE)
    assert [question(i) for i in unique] == [
        "Find the 3D bounding box of the sofa.",
        "Find the 3D bounding box of the tv.",
    ]
    assert json.loads(unique[0].answer) == {"label": "sofa", "bbox_7dof": [1.0, 2.0, 0.5, 0.5, 0.5, 0.5, 0.0]}
    assert unique[0].messages[0]["role"] == "system"


def test_proximity_referral_picks_nearest_and_farthest() -> None:
    win = window(obj("table_0", 0, 0), obj("chair_0", 1, 0), obj("chair_1", 2, 0.1), obj("chair_2", 0, -3.5))
    items = by_type(grounding_items(win, np.random.default_rng(0)), GROUNDING_PROXIMITY)
    assert {(i.objects, question(i)) for i in items} == {
        (("chair_0",), "Find the 3D bounding box of the chair nearest to the table."),
        (("chair_2",), "Find the 3D bounding box of the chair farthest from the table."),
    }


def test_direction_referral_left_and_right() -> None:
    win = window(obj("door_0", 0, 0), obj("tv_0", 3, 0), obj("chair_0", 0, 2), obj("chair_1", 0, -2))
    items = by_type(grounding_items(win, np.random.default_rng(0)), GROUNDING_DIRECTION)
    prefix = "Imagine standing by the door and facing the tv. Find the 3D bounding box of the chair"
    assert {(i.objects, question(i)) for i in items} == {
        (("chair_0",), prefix + " on your left."),
        (("chair_1",), prefix + " on your right."),
    }


def test_temporal_referral_needs_untied_first_appearance() -> None:
    win = window(obj("cup_0", 0, 0, first=3), obj("cup_1", 2, 0, first=1), obj("cup_2", 4, 0, first=3))
    items = by_type(grounding_items(win, np.random.default_rng(0)), GROUNDING_TEMPORAL)
    assert [(i.objects, question(i)) for i in items] == [
        (("cup_1",), "Find the 3D bounding box of the cup that appears first in the video.")
    ]


def test_all_of_label_and_detect_all_are_lists_in_appearance_order() -> None:
    win = window(obj("cup_0", 0, 0, first=3), obj("cup_1", 2, 0, first=1), obj("tv_0", 4, 0, first=2))
    items = grounding_items(win, np.random.default_rng(0))
    (every_cup,) = by_type(items, GROUNDING_ALL_OF_LABEL)
    assert every_cup.objects == ("cup_1", "cup_0")
    assert isinstance(json.loads(every_cup.answer), list)
    (detect,) = by_type(items, DETECT_ALL)
    assert detect.objects == ("cup_1", "tv_0", "cup_0")
    assert [m["role"] for m in detect.messages] == ["user"]
    assert len(json.loads(detect.answer)) == 3


def _sector_of(angle: float) -> str:
    if -45 < angle < 45:
        return "front"
    if 45 < angle < 135:
        return "left"
    if -135 < angle < -45:
        return "right"
    return "behind"


@pytest.mark.parametrize("seed", range(6))
def test_every_referral_picks_exactly_its_target(seed: int) -> None:
    """Re-derive each referral from the window by brute force."""
    win = random_window(seed, n_dup=4)
    visible = {o.instance_id: o for o in win.visible_objects()}
    by_label = {o.label: o for o in visible.values()}
    for item in grounding_items(win, np.random.default_rng(seed)):
        if item.question_type not in (GROUNDING_PROXIMITY, GROUNDING_DIRECTION, GROUNDING_TEMPORAL):
            continue
        (target_id,) = item.objects
        target = visible[target_id]
        same = [o for o in visible.values() if o.label == target.label]
        assert len(same) >= 2
        text = question(item)
        if item.question_type == GROUNDING_PROXIMITY:
            m = re.search(r"(nearest to|farthest from) the (\w+)\.$", text)
            assert m
            landmark = by_label[m.group(2)]
            dist = {o.instance_id: np.linalg.norm(o.box[:3] - landmark.box[:3]) for o in same}
            pick = min if m.group(1) == "nearest to" else max
            assert pick(dist, key=dist.__getitem__) == target_id
        elif item.question_type == GROUNDING_DIRECTION:
            m = re.search(
                r"standing by the (\w+) and facing the (\w+)\. .* (on your left|on your right|in front of you|behind you)\.$",
                text,
            )
            assert m
            stand, face = by_label[m.group(1)], by_label[m.group(2)]
            wanted = {
                "on your left": "left",
                "on your right": "right",
                "in front of you": "front",
                "behind you": "behind",
            }
            in_sector = [
                o.instance_id
                for o in same
                if _sector_of(bearing_deg(stand.box, face.box, o.box)) == wanted[m.group(3)]
            ]
            assert in_sector == [target_id]
        else:
            order = re.search(r"appears (first|second|last) in the video", text)
            assert order
            frames = sorted(o.first_frame for o in same)
            rank = {"first": 0, "second": 1, "last": len(frames) - 1}[order.group(1)]
            assert target.first_frame == frames[rank] and frames.count(target.first_frame) == 1


# ---------------------------------------------------------------------------- VSI-Bench


def test_counting_size_room_and_distance_answers() -> None:
    win = window(
        obj("chair_0", 0, 0),
        obj("chair_1", 1, 3),
        obj("chair_2", -2, 3),
        obj("bed_0", 0, -3, size=(2.0, 1.6, 0.5)),
        obj("tv_0", 3, -3, size=(1.2, 0.1, 0.7)),
    )
    items = vsibench_items(win, np.random.default_rng(0))
    (count,) = by_type(items, "object_counting")
    assert "How many chair(s) are in this room?" in question(count) and count.answer == "3"
    assert count.ground_truth == 3
    sizes = {i.objects[0]: i.answer for i in by_type(items, "object_size_estimation")}
    assert sizes == {"bed_0": "200", "tv_0": "120"}
    (room,) = by_type(items, "room_size_estimation")
    assert room.answer == "80.0" and room.ground_truth == 80.0
    (dist,) = by_type(items, "object_abs_distance")
    # bed spans x in [-1, 1], tv x in [2.4, 3.6]; both centred at y = -3 (tv 0.1 m thick)
    assert dist.answer == "1.40"
    assert question(dist).endswith("(in meters)?\nPlease answer the question using a single word or phrase.")


def test_closest_point_distance() -> None:
    a = np.array([0, 0, 0.5, 1, 1, 1, 0.0])
    assert closest_point_distance(a, np.array([3, 0, 0.5, 1, 1, 1, 0.0])) == pytest.approx(2.0)
    assert closest_point_distance(a, np.array([0.5, 0.5, 0.5, 1, 1, 1, 0.3])) == pytest.approx(0.0, abs=1e-9)
    # A box rotated by 45 degrees presents its corner: half-diagonal sqrt(0.5) instead of 0.5.
    rotated = np.array([3, 0, 0.5, 1, 1, 1, math.pi / 4])
    assert closest_point_distance(a, rotated) == pytest.approx(3 - 0.5 - math.sqrt(0.5))
    # Against dense surface sampling of two random boxes.
    rng = np.random.default_rng(0)
    for _ in range(5):
        boxes = [np.r_[rng.uniform(-3, 3, 3), rng.uniform(0.2, 1.5, 3), rng.uniform(-3, 3)] for _ in range(2)]
        grid = np.stack(np.meshgrid(*[np.linspace(-0.5, 0.5, 15)] * 3, indexing="ij"), -1).reshape(-1, 3)
        pts = []
        for b in boxes:
            c, s = math.cos(b[6]), math.sin(b[6])
            rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
            pts.append((grid * b[3:6]) @ rot.T + b[:3])
        brute = float(cKDTree(pts[1]).query(pts[0])[0].min())
        exact = closest_point_distance(boxes[0], boxes[1])
        assert exact <= brute + 1e-9 and brute - exact < 0.1


def test_polygon_area() -> None:
    assert polygon_area(SQUARE) == pytest.approx(80.0)
    assert polygon_area(np.array([[0, 0], [2, 0], [0, 1.0]])) == pytest.approx(1.0)


def test_relative_direction_levels() -> None:
    # Standing by the door facing the tv (+x): the lamp is front-left, the sink back-right.
    win = window(obj("door_0", 0, 0), obj("tv_0", 3, 0), obj("lamp_0", 2, 1.5), obj("sink_0", -2, -0.8))
    items = vsibench_items(win, np.random.default_rng(0), QAConfig(max_per_type=100))
    found = {}
    for item in items:
        if item.question_type and item.question_type.startswith("object_rel_direction"):
            found[(item.question_type, item.objects)] = option_text(item)
    assert found[("object_rel_direction_easy", ("door_0", "tv_0", "lamp_0"))] == "left"
    assert found[("object_rel_direction_medium", ("door_0", "tv_0", "sink_0"))] == "back"
    assert found[("object_rel_direction_medium", ("door_0", "tv_0", "lamp_0"))] == "left"
    assert found[("object_rel_direction_hard", ("door_0", "tv_0", "lamp_0"))] == "front-left"
    assert found[("object_rel_direction_hard", ("door_0", "tv_0", "sink_0"))] == "back-right"
    easy = next(i for i in items if i.question_type == "object_rel_direction_easy")
    assert re.match(
        r"If I am standing by the \w+ and facing the \w+, is the \w+ to the left or the right of the \w+\?",
        question(easy).split("\n")[1],
    )
    assert len(easy.options or []) == 2


def test_relative_direction_skips_near_boundary_cases() -> None:
    # The lamp is straight ahead: neither left nor right, and on a quadrant boundary.
    win = window(obj("door_0", 0, 0), obj("tv_0", 3, 0), obj("lamp_0", 5, 0.05))
    items = vsibench_items(win, np.random.default_rng(0), QAConfig(max_per_type=100))
    asked = [i for i in items if i.objects == ("door_0", "tv_0", "lamp_0")]
    assert asked == []


@pytest.mark.parametrize("seed", range(4))
def test_relative_direction_answers_match_geometry(seed: int) -> None:
    win = random_window(seed)
    boxes = {o.instance_id: o.box for o in win.visible_objects()}
    for item in vsibench_items(win, np.random.default_rng(seed), QAConfig(max_per_type=20)):
        if not (item.question_type or "").startswith("object_rel_direction"):
            continue
        a, b, c = (boxes[i] for i in item.objects)
        angle = bearing_deg(a, b, c)
        left, front = angle > 0, abs(angle) < 90
        answer = option_text(item)
        if item.question_type == "object_rel_direction_easy":
            assert answer == ("left" if left else "right")
        elif item.question_type == "object_rel_direction_medium":
            assert answer == ("back" if abs(angle) >= 135 else "left" if left else "right")
        else:
            assert answer == ("front" if front else "back") + "-" + ("left" if left else "right")


def test_relative_distance_and_appearance_order() -> None:
    win = window(
        obj("sofa_0", 0, 0, first=4),
        obj("tv_0", 1.5, 0, first=0),
        obj("bed_0", 3, 3, first=2),
        obj("lamp_0", -3, 3, first=6),
        obj("sink_0", -3, -3, first=8),
    )
    items = vsibench_items(win, np.random.default_rng(0), QAConfig(max_per_type=10))
    rel = [i for i in by_type(items, "object_rel_distance") if i.objects[0] == "sofa_0"]
    assert rel and all(option_text(i) == "tv" for i in rel)
    assert "which of these objects (" in question(rel[0]) and "is the closest to the sofa?" in question(
        rel[0]
    )
    orders = by_type(items, "obj_appearance_order")
    assert orders
    first = {o.label: o.first_frame for o in win.objects}
    for item in orders:
        answer = option_text(item).split(", ")
        assert answer == sorted(answer, key=first.__getitem__)
        assert item.options is not None and len(item.options) == len(set(item.options)) == 4
