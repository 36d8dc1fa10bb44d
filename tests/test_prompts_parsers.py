"""Prompt texts and the strict-then-lenient parsers (the model <-> code text contract)."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssr_core.language.parsers import (
    CHOICE_QUESTION_TYPES,
    NUMERIC_QUESTION_TYPES,
    Parsed,
    ParseFailure,
    parse_cell,
    parse_grounding,
    parse_vsibench,
)
from ssr_core.language.prompts import (
    COGMAP_SYSTEM_PROMPT,
    PROMPT_FORMAT_VERSION,
    cogmap_messages,
    detect_all_objects_prompt,
    format_cell_answer,
    format_grounding_answer,
    format_number,
    format_options,
    grounding_messages,
    vsibench_prompt,
)
from ssr_core.scene.objects import GroundedObject

FUZZ = settings(derandomize=True, deadline=None, max_examples=150)
ALL_TYPES = sorted(NUMERIC_QUESTION_TYPES | CHOICE_QUESTION_TYPES)

# Text that looks like answers, so fuzzing reaches the lenient branches, not only "no match".
answerish = st.text(
    alphabet=st.sampled_from(list("[](){}'\",.:;-+eE 0123456789ABCDabcd\n`json_label")), max_size=80
)
any_text = st.one_of(st.text(max_size=200), answerish)


def boxes7() -> st.SearchStrategy[np.ndarray]:
    coord = st.floats(-50, 50, allow_nan=False)
    size = st.floats(0.005, 20, allow_nan=False)
    yaw = st.floats(-3 * math.pi, 3 * math.pi, allow_nan=False)
    return st.tuples(coord, coord, coord, size, size, size, yaw).map(lambda t: np.array(t))


labels = st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=12).filter(
    lambda s: s.strip() == s and s != ""
)


# ---------------------------------------------------------------------------- prompts


def test_prompt_version_is_a_nonempty_string() -> None:
    assert isinstance(PROMPT_FORMAT_VERSION, str) and PROMPT_FORMAT_VERSION


def test_cogmap_messages_name_anchors_with_cells_and_ask_for_target() -> None:
    labels_ = {"chair_0": "chair", "table_1": "table", "sofa_0": "sofa"}
    messages = cogmap_messages("chair_0", "table_1", "sofa_0", (5, 5), (5, 3), labels_)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"] == COGMAP_SYSTEM_PROMPT
    for phrase in ("10x10", "[col, row]", "[5, 5]"):
        assert phrase in COGMAP_SYSTEM_PROMPT
    question = messages[1]["content"]
    assert "chair_0 (chair) is at [5, 5]" in question
    assert "table_1 (table) is at [5, 3]" in question
    assert "sofa_0 (sofa)" in question


def test_format_cell_answer() -> None:
    assert format_cell_answer((7, 3)) == "[7, 3]"
    assert format_cell_answer(np.array([0, 9])) == "[0, 9]"


def test_format_number_has_fixed_decimals_and_no_negative_zero() -> None:
    assert format_number(1.5) == "1.50"
    assert format_number(-0.001) == "0.00"
    assert format_number(2.0, 0) == "2"


def test_grounding_answer_single_is_object_several_is_list() -> None:
    obj = GroundedObject("chair", np.array([1.234, -0.5, 0.45, 0.6, 0.55, 0.9, 4.0]))
    single = format_grounding_answer([obj])
    assert single == '{"label": "chair", "bbox_7dof": [1.23, -0.50, 0.45, 0.60, 0.55, 0.90, -2.28]}'
    assert isinstance(json.loads(single), dict)
    assert isinstance(json.loads(format_grounding_answer([obj, obj])), list)
    assert json.loads(format_grounding_answer([obj], as_list=True))[0]["label"] == "chair"
    assert format_grounding_answer([], as_list=True) == "[]"


def test_tiny_sizes_never_format_to_zero() -> None:
    obj = GroundedObject("pen", np.array([0, 0, 0, 0.001, 0.2, 0.002, 0]))
    parsed = parse_grounding(format_grounding_answer([obj]))
    assert isinstance(parsed, Parsed) and not parsed.lenient
    assert np.all(parsed.value[0].box[3:6] > 0)


def test_grounding_and_detect_all_prompts_define_frame_and_format() -> None:
    system, user = grounding_messages("Find the 3D bounding box of the chair.")
    assert system["role"] == "system" and user["content"].startswith("Find")
    detect = detect_all_objects_prompt()
    for text in (system["content"], detect):
        assert "bbox_7dof" in text and "yaw" in text and "two decimals" in text and "+z" in text
    assert "JSON list" in detect and "every object" in detect


def test_vsibench_prompt_formats() -> None:
    options = format_options(["left", "right"])
    assert options == ["A. left", "B. right"]
    mc = vsibench_prompt("Is it left or right?", options)
    assert mc.endswith(
        "Options:\nA. left\nB. right\nAnswer with the option's letter from the given choices directly."
    )
    na = vsibench_prompt("How many chair(s) are in this room?")
    assert na.endswith(
        "How many chair(s) are in this room?\nPlease answer the question using a single word or phrase."
    )


# ---------------------------------------------------------------------------- cells


@pytest.mark.parametrize(
    ("text", "cell"),
    [
        ("```\n[7,3]\n```", (7, 3)),
        ("The target is at (7, 3).", (7, 3)),
        ("Anchor 1 is at [5, 5]; the target is at [7, 3]", (7, 3)),
        ("7, 3", (7, 3)),
        ("[7.0, 3]", (7, 3)),
    ],
)
def test_parse_cell_lenient(text: str, cell: tuple[int, int]) -> None:
    assert parse_cell(text) == Parsed(cell, lenient=True)


@pytest.mark.parametrize("text", ["[10, 3]", "[-1, 2]", "[7.5, 3]", "no idea", "", "[7]"])
def test_parse_cell_failures(text: str) -> None:
    assert isinstance(parse_cell(text), ParseFailure)


@FUZZ
@given(st.integers(0, 9), st.integers(0, 9))
def test_cell_round_trip_is_strict(col: int, row: int) -> None:
    text = format_cell_answer((col, row))
    assert parse_cell(text) == Parsed((col, row), lenient=False)
    assert parse_cell(text + "\n") == Parsed((col, row), lenient=False)


# ---------------------------------------------------------------------------- grounding

GOOD = '{"label": "chair", "bbox_7dof": [1.00, 2.00, 0.50, 0.60, 0.50, 1.00, 0.25]}'


@pytest.mark.parametrize(
    "text",
    [
        "```json\n" + GOOD + "\n```",
        "Here is the box: " + GOOD + " Hope this helps.",
        GOOD.replace('"', "'"),
        GOOD.replace("]}", ",]}").replace("}", ",}"),
        GOOD.replace("bbox_7dof", "bbox"),
        '{"objects": [' + GOOD + "]}",
        GOOD.replace("0.25]", str(0.25 - 2 * math.pi) + "]"),
    ],
)
def test_parse_grounding_lenient(text: str) -> None:
    parsed = parse_grounding(text)
    assert isinstance(parsed, Parsed) and parsed.lenient
    (obj,) = parsed.value
    assert obj.label == "chair"
    np.testing.assert_allclose(obj.box, [1.0, 2.0, 0.5, 0.6, 0.5, 1.0, 0.25])


def test_parse_grounding_objects_written_one_after_another() -> None:
    parsed = parse_grounding(GOOD + "\n" + GOOD.replace("chair", "table"))
    assert isinstance(parsed, Parsed) and parsed.lenient
    assert [o.label for o in parsed.value] == ["chair", "table"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (GOOD.replace("0.60", "0.00"), "positive"),
        (GOOD.replace("0.60", "-0.60"), "positive"),
        (GOOD.replace("0.25]", "NaN]"), "JSON"),
        (GOOD.replace("0.25]", "1e999]"), "non-finite"),
        (GOOD.replace(", 0.25]", "]"), "7 numbers"),
        (GOOD.replace('"chair"', '""'), "label"),
        (GOOD.replace("0.25]", "90.0]"), "yaw"),
        (GOOD.replace("1.00, 2.00", "true, 2.00"), "non-number"),
        ("I cannot see a chair.", "no JSON"),
    ],
)
def test_parse_grounding_failures(text: str, reason: str) -> None:
    result = parse_grounding(text)
    assert isinstance(result, ParseFailure)
    assert reason in result.reason


def test_parse_grounding_empty_list_is_no_objects() -> None:
    assert parse_grounding("[]") == Parsed([], lenient=False)


@FUZZ
@given(st.lists(st.tuples(labels, boxes7()), min_size=1, max_size=4))
def test_grounding_round_trip_is_strict(objects: list[tuple[str, np.ndarray]]) -> None:
    grounded = [GroundedObject(label, box) for label, box in objects]
    parsed = parse_grounding(format_grounding_answer(grounded))
    assert isinstance(parsed, Parsed) and not parsed.lenient
    assert [o.label for o in parsed.value] == [label for label, _ in objects]
    for obj, (_, box) in zip(parsed.value, objects):
        np.testing.assert_allclose(obj.box[:3], box[:3], atol=0.005 + 1e-9)
        assert np.all(obj.box[3:6] > 0)
        assert -math.pi < obj.box[6] <= math.pi
        yaw_gap = (obj.box[6] - box[6] + math.pi) % (2 * math.pi) - math.pi
        assert abs(yaw_gap) <= 0.005 + 1e-9


# ---------------------------------------------------------------------------- VSI-Bench

OPTIONS = format_options(["left", "right", "back"])


@pytest.mark.parametrize(
    ("text", "letter", "lenient"),
    [
        ("B", "B", False),
        (" C\n", "C", False),
        ("B.", "B", True),
        ("b", "B", True),
        ("(C)", "C", True),
        ("C. back", "C", True),
        ("The answer is C.", "C", True),
        ("right", "B", True),
        ("I would say C", "C", True),
    ],
)
def test_parse_choice(text: str, letter: str, lenient: bool) -> None:
    assert parse_vsibench(text, "object_rel_direction_medium", OPTIONS) == Parsed(letter, lenient)


@pytest.mark.parametrize("text", ["D", "E", "", "left or right", "A or B"])
def test_parse_choice_failures(text: str) -> None:
    assert isinstance(parse_vsibench(text, "object_rel_direction_medium", OPTIONS), ParseFailure)


def test_choice_letters_default_to_four_options() -> None:
    assert parse_vsibench("D", "obj_appearance_order", None) == Parsed("D", lenient=False)
    assert isinstance(parse_vsibench("E", "obj_appearance_order", None), ParseFailure)


@pytest.mark.parametrize(
    ("text", "value", "lenient"),
    [
        ("3", 3.0, False),
        ("2.75", 2.75, False),
        ("about 2.5 meters", 2.5, True),
        ("```\n4\n```", 4.0, True),
        ("three", 3.0, True),
        ("2,000 cm", 2000.0, True),
    ],
)
def test_parse_number(text: str, value: float, lenient: bool) -> None:
    assert parse_vsibench(text, "object_abs_distance") == Parsed(value, lenient)


@pytest.mark.parametrize(
    ("text", "reason"),
    [("-1", "negative"), ("1e999", "finite"), ("9" * 400, "finite"), ("none", "no number")],
)
def test_parse_number_failures(text: str, reason: str) -> None:
    result = parse_vsibench(text, "object_counting")
    assert isinstance(result, ParseFailure) and reason in result.reason


def test_unknown_question_type_fails() -> None:
    result = parse_vsibench("3", "object_colour")
    assert isinstance(result, ParseFailure) and "unknown question type" in result.reason


@FUZZ
@given(st.floats(0, 1e6, allow_nan=False), st.sampled_from([0, 1, 2]))
def test_number_round_trip_is_strict(value: float, decimals: int) -> None:
    text = format_number(value, decimals)
    parsed = parse_vsibench(text, "object_size_estimation")
    assert parsed == Parsed(float(text), lenient=False)


@FUZZ
@given(st.integers(2, 6).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1))))
def test_choice_round_trip_is_strict(n_and_index: tuple[int, int]) -> None:
    n, index = n_and_index
    options = format_options([f"option {i}" for i in range(n)])
    letter = chr(ord("A") + index)
    assert parse_vsibench(letter, "object_rel_distance", options) == Parsed(letter, lenient=False)


# ---------------------------------------------------------------------------- never raise


def _is_result(result: object) -> bool:
    return isinstance(result, Parsed | ParseFailure)


@FUZZ
@given(any_text)
def test_parsers_never_raise_on_arbitrary_text(text: str) -> None:
    assert _is_result(parse_cell(text))
    assert _is_result(parse_grounding(text))
    for question_type in ALL_TYPES:
        assert _is_result(parse_vsibench(text, question_type, OPTIONS))
        assert _is_result(parse_vsibench(text, question_type, None))


@pytest.mark.parametrize(
    "text",
    [
        "[" * 5000,
        "{" * 3000 + "}" * 3000,
        "[{'label': 'a', 'bbox': [" + "9" * 5000 + ", 1, 1, 1, 1, 1, 0]}]",
        "x" * 100_000,
        "```json\n{'label': 'a'",
        "\x00\ud800",
    ],
)
def test_parsers_never_raise_on_pathological_text(text: str) -> None:
    assert _is_result(parse_cell(text))
    assert _is_result(parse_grounding(text))
    assert _is_result(parse_vsibench(text, "object_counting"))
    assert _is_result(parse_vsibench(text, "route_planning", OPTIONS))


@pytest.mark.parametrize(
    "text",
    [
        "answer" + " " * 60_000 + "1",  # adjacent optional whitespace runs
        "```" + "a" * 60_000,  # an unclosed fence with a long language tag
        "[1" + " " * 60_000 + "x",
        "1" + " " * 60_000 + ",",
        "[1, " * 15_000,
    ],
)
def test_parsers_stay_linear_on_adversarial_text(text: str) -> None:
    """Backtracking regexes go quadratic here (minutes); the parsers take milliseconds."""
    start = time.perf_counter()
    parse_cell(text)
    parse_grounding(text)
    parse_vsibench(text, "object_counting")
    parse_vsibench(text, "object_rel_direction_hard", OPTIONS)
    assert time.perf_counter() - start < 2.0


def test_parsers_refuse_non_strings() -> None:
    assert isinstance(parse_cell(None), ParseFailure)  # type: ignore[arg-type]
    assert isinstance(parse_grounding(b"[]"), ParseFailure)  # type: ignore[arg-type]
    assert isinstance(parse_vsibench(3, "object_counting"), ParseFailure)  # type: ignore[arg-type]
