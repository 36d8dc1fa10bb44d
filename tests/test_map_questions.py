"""Questions over the object map: recognised templates, answers and formats, failures."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ssr_core.data.questions import closest_point_distance
from ssr_core.language.prompts import MAP_QUESTION_TEMPLATES, question_text, vsibench_question
from ssr_core.mapping.object_map import MapConfig, ObjectMap, WindowDetections
from ssr_core.mapping.questions import map_annotation, map_questions


def counting_question(label):
    return question_text("object_counting", label=label)


def abs_distance_question(first, second):
    return question_text("object_abs_distance", first=first, second=second)


def how_far_question(first, second):
    return MAP_QUESTION_TEMPLATES["map_how_far"].format(first=first, second=second)


def size_question(label):
    return question_text("object_size_estimation", label=label)


def rel_distance_question(choices, target):
    return question_text("object_rel_distance", choices=", ".join(choices), target=target)


def rel_direction_question(question_type, stand, face, target):
    return question_text(question_type, stand=stand, face=face, target=target)


def nearest_object_question(label, landmark):
    return MAP_QUESTION_TEMPLATES["map_nearest_object"].format(label=label, landmark=landmark)


def location_question(label):
    return MAP_QUESTION_TEMPLATES["map_location"].format(label=label)


BOXES = np.array(
    [
        [0.0, 0.0, 0.4, 1.6, 0.9, 0.8, 0.0],  # table, at the origin
        [4.0, 0.0, 0.45, 2.0, 0.9, 0.9, math.pi / 2],  # sofa, 4 m along +x
        [0.0, 2.0, 0.5, 0.5, 0.5, 1.0, 0.0],  # chair_0, left of the table facing the sofa
        [0.0, -3.0, 0.5, 0.5, 0.5, 1.0, 0.0],  # chair_1, right
        [3.0, 3.0, 0.7, 0.4, 0.4, 1.4, 0.0],  # plant
    ]
)
LABELS = ["table", "sofa", "chair", "chair", "plant"]


@pytest.fixture()
def object_map() -> ObjectMap:
    m = ObjectMap()
    for stamp in (10.0, 12.5):
        m.integrate(WindowDetections(stamp, np.eye(4), BOXES, LABELS))
    m.integrate(WindowDetections(13.0, np.eye(4), np.array([[9.0, 9.0, 0.5, 0.3, 0.3, 0.3, 0.0]]), ["box"]))
    return m  # the box is tentative: never part of an answer


def test_map_annotation_holds_the_confirmed_objects_in_first_sighting_order(object_map):
    annotation = map_annotation(object_map)
    assert [o.instance_id for o in annotation.objects] == ["chair_0", "chair_1", "plant_0", "sofa_0", "table_0"]
    assert all(o.first_frame == 0 for o in annotation.objects)


def test_counting(object_map):
    a = object_map.ask(counting_question("chair"))
    assert (a.success, a.answer, a.value, a.object_ids) == (True, "2", 2.0, ("chair_0", "chair_1"))
    assert object_map.ask(counting_question("box")).answer == "0"  # tentative objects do not count
    assert object_map.ask("how many   PIANO(s) are in this room?").answer == "0"


def test_distance_in_both_phrasings(object_map):
    expected = closest_point_distance(BOXES[0], BOXES[1])
    for question in (abs_distance_question("table", "sofa"), how_far_question("table", "sofa")):
        a = object_map.ask(question)
        assert a.success and a.answer == f"{expected:.2f}" and a.value == round(expected, 2)


def test_a_label_with_several_objects_must_be_named_by_id(object_map):
    a = object_map.ask(abs_distance_question("table", "chair"))
    assert not a.success and "chair_0, chair_1" in a.error and "by its id" in a.error
    a = object_map.ask(abs_distance_question("table", "chair_1"))
    assert a.success and a.object_ids == ("table_0", "chair_1")


def test_size_in_centimetres(object_map):
    a = object_map.ask(size_question("sofa"))
    assert (a.answer, a.value) == ("200", 200.0)


def test_relative_distance_with_and_without_options(object_map):
    question = rel_distance_question(["sofa", "chair", "plant"], "table")
    a = object_map.ask(question)
    assert a.answer == "chair"  # chair_0 is 1.55 m from the table's closest point
    a = object_map.ask(question, ["A. plant", "B. chair", "C. sofa"])
    assert (a.success, a.answer, a.value, a.option_index) == (True, "chair", "B", 1)


@pytest.mark.parametrize(
    "question_type, target, expected",
    [
        ("object_rel_direction_easy", "chair_0", "left"),
        ("object_rel_direction_easy", "chair_1", "right"),
        ("object_rel_direction_medium", "chair_1", "right"),
        ("object_rel_direction_hard", "plant", "front-left"),
    ],
)
def test_relative_direction(object_map, question_type, target, expected):
    a = object_map.ask(rel_direction_question(question_type, "table", "sofa", target))
    assert a.success and a.answer == expected


def test_nearest_object_of_a_label(object_map):
    a = object_map.ask(nearest_object_question("chair", "sofa"))
    d0 = closest_point_distance(BOXES[1], BOXES[2])
    assert a.answer == "chair_0" and a.value == round(d0, 2)


def test_location_and_last_seen(object_map):
    a = object_map.ask(location_question("sofa"))
    assert a.success and a.value == 12.5
    assert a.answer.startswith('{"label": "sofa", "bbox_7dof": [4.00, 0.00, 0.45, 2.00, 0.90, 0.90, 1.57]')


@pytest.mark.parametrize(
    "question, options, error",
    [
        ("", (), "empty"),
        ("What colour is the sofa?", (), "not a question the map answers"),
        (size_question("piano"), (), "no 'piano' in the map"),
        (rel_direction_question("object_rel_direction_easy", "table", "sofa", "chair_0"), ["A. up", "B. down"],
         "not among the options"),
        (size_question("sofa"), "A. 200", "options must be"),
    ],
)  # fmt: skip
def test_failures_say_why(object_map, question, options, error):
    a = object_map.ask(question, options)
    assert not a.success and error in a.error


def test_map_answers_agree_with_qa_generation_on_the_map(object_map):
    """Every VSI-Bench-style item generated over the map is answered identically by `ask`."""
    supported = {"object_counting", "object_abs_distance", "object_size_estimation", "object_rel_distance",
                 "object_rel_direction_easy", "object_rel_direction_medium", "object_rel_direction_hard"}  # fmt: skip
    items = [i for i in map_questions(object_map, np.random.default_rng(0)) if i.question_type in supported]
    assert {i.question_type for i in items} >= {"object_counting", "object_abs_distance", "object_rel_direction_easy"}
    for item in items:
        question = vsibench_question(item.messages[-1]["content"])
        a = object_map.ask(question, item.options or ())
        got = a.answer if item.options is None else a.value  # a number, or the option's letter
        assert a.success and got == item.answer, (question, a)


def test_an_empty_map_answers_counts_and_refuses_the_rest():
    m = ObjectMap(MapConfig())
    assert m.ask(counting_question("chair")).answer == "0"
    assert not m.ask(size_question("chair")).success
