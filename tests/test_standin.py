"""GroundTruthGenerator: answers the real prompts in the real formats from a WindowAnnotation."""

from __future__ import annotations

import time

import numpy as np
import pytest

from ssr_core.data.annotations import SceneObject, WindowAnnotation
from ssr_core.data.ground_truth import DEFAULT_OTHER_ANSWER, GroundTruthGenerator
from ssr_core.inference.reasoner import assign_instance_ids
from ssr_core.language.parsers import ParseFailure, parse_cell, parse_grounding
from ssr_core.language.prompts import cogmap_messages, detect_all_objects_prompt, object_name, vsibench_prompt
from ssr_core.scene.cogmap import decode_target, encode_triplet

LABELS = ("chair", "table", "lamp", "sofa", "chair", "plant", "chair", "table", "bin", "lamp")


def make_annotation(n: int = 8, seed: int = 0, hidden: int = 1) -> WindowAnnotation:
    """n visible objects with 2-decimal boxes (so the answer format is lossless), ids
    `<label>_<k>` in first-appearance order, >= 0.5 m apart in bird's-eye view; plus `hidden`
    objects never seen in the window."""
    rng = np.random.default_rng(seed)
    centres: list[np.ndarray] = []
    while len(centres) < n + hidden:
        xy = rng.uniform([0.5, -3.0], [6.5, 3.0])
        if all(np.hypot(*(xy - c)) >= 0.5 for c in centres):
            centres.append(xy)
    labels = [LABELS[i % len(LABELS)] for i in range(n + hidden)]
    ids = assign_instance_ids(labels)
    objects = []
    for i, (xy, label, oid) in enumerate(zip(centres, labels, ids)):
        size = rng.uniform(0.3, 1.5, size=3)
        box = np.round([xy[0], xy[1], size[2] / 2, *size, rng.uniform(-3.1, 3.1)], 2)
        seen = i < n
        objects.append(
            SceneObject(oid, label, box, first_frame=i if seen else -1, visible_frames=(i,) if seen else ())
        )
    floor = np.array([[0.0, -3.5], [7.0, -3.5], [7.0, 3.5], [0.0, 3.5]])
    return WindowAnnotation("synth_test", np.arange(n), objects, floor, room_height=2.6)


FRAMES = np.zeros((2, 8, 8, 3), dtype=np.uint8)


def test_detect_all_answer_is_the_visible_boxes_in_first_appearance_order():
    window = make_annotation()
    gen = GroundTruthGenerator(window)
    state = gen.encode_window(FRAMES)
    (text,) = gen.generate(state, [detect_all_objects_prompt()], [2048])
    parsed = parse_grounding(text)
    assert not isinstance(parsed, ParseFailure) and not parsed.lenient
    visible = window.visible_objects()
    assert [o.label for o in parsed.value] == [o.label for o in visible]
    np.testing.assert_allclose([o.box for o in parsed.value], [o.box for o in visible], atol=1e-9)


def test_cogmap_answer_is_the_true_cell_for_messages_and_strings():
    window = make_annotation()
    gen = GroundTruthGenerator(window)
    state = gen.encode_window(FRAMES)
    a1, a2, t = window.objects[0], window.objects[3], window.objects[5]
    truth = encode_triplet(a1.box[:2], a2.box[:2], t.box[:2], a1.instance_id, a2.instance_id, t.instance_id)
    labels = {o.instance_id: o.label for o in window.objects}
    messages = cogmap_messages(
        a1.instance_id, a2.instance_id, t.instance_id, truth.anchor1_cell, truth.anchor2_cell, labels
    )
    as_text = "\n\n".join(m["content"] for m in messages)
    answers = gen.generate(state, [messages, as_text], [16, 16])
    for answer in answers:
        cell = parse_cell(answer)
        assert not isinstance(cell, ParseFailure) and not cell.lenient
        assert cell.value == truth.target_cell


def test_cogmap_answer_follows_the_anchor_cells_the_prompt_states():
    window = make_annotation()
    gen = GroundTruthGenerator(window)
    state = gen.encode_window(FRAMES)
    a1, a2, t = window.objects[1], window.objects[2], window.objects[4]
    labels = {o.instance_id: o.label for o in window.objects}
    for anchor2_cell in [(5, 4), (5, 3), (6, 5), (4, 6)]:
        messages = cogmap_messages(a1.instance_id, a2.instance_id, t.instance_id, (5, 5), anchor2_cell, labels)
        (answer,) = gen.generate(state, [messages], [16])
        cell = parse_cell(answer)
        assert not isinstance(cell, ParseFailure)
        if 0 < min(cell.value) and max(cell.value) < 9:  # not clamped: within half a cell per axis
            where = decode_target(a1.box[:2], a2.box[:2], (5, 5), anchor2_cell, cell.value)
            one_cell = np.hypot(*(a2.box[:2] - a1.box[:2])) / np.hypot(*np.subtract(anchor2_cell, (5, 5)))
            assert np.hypot(*(where - t.box[:2])) <= one_cell * np.sqrt(0.5) + 1e-9


def test_unknown_names_and_other_questions():
    window = make_annotation()
    labels = {"ghost_0": "ghost", "chair_0": "chair", "table_0": "table"}
    unknown = cogmap_messages("ghost_0", "chair_0", "table_0", (5, 5), (5, 3), labels)
    fixed = GroundTruthGenerator(window)
    state = fixed.encode_window(FRAMES)
    assert fixed.generate(state, [unknown, "What is this?"], [16, 16]) == [DEFAULT_OTHER_ANSWER] * 2
    echo = GroundTruthGenerator(window, other_answer=lambda prompt, gt: f"{len(prompt)} {gt.scene_id}")
    question = vsibench_prompt("How many chair(s) are in this room?")
    assert echo.generate(echo.encode_window(FRAMES), [question], [8]) == [f"{len(question)} synth_test"]


def test_annotation_callable_gets_the_frames_and_ids_follow_the_reasoner_rule():
    window = make_annotation()
    renamed = WindowAnnotation(
        window.scene_id,
        window.frame_indices,
        [SceneObject(f"obj{i}", o.label, o.box, o.first_frame) for i, o in enumerate(window.objects)],
        window.floor_polygon,
    )
    seen: list[np.ndarray] = []

    def source(frames: np.ndarray) -> WindowAnnotation:
        seen.append(frames)
        return renamed

    gen = GroundTruthGenerator(source)
    state = gen.encode_window(FRAMES)
    assert seen and seen[0] is FRAMES
    a1, a2, t = window.objects[0], window.objects[1], window.objects[2]
    labels = {o.instance_id: o.label for o in window.objects}
    messages = cogmap_messages(a1.instance_id, a2.instance_id, t.instance_id, (5, 5), (5, 3), labels)
    (answer,) = gen.generate(state, [messages], [16])
    assert answer != DEFAULT_OTHER_ANSWER  # `chair_0` etc. resolve although the annotation says obj0
    assert object_name("chair_0", "chair") in messages[-1]["content"]


def test_latency_counters_and_release():
    gen = GroundTruthGenerator(make_annotation(), latency_s=0.05)
    start = time.perf_counter()
    state = gen.encode_window(FRAMES)
    gen.generate(state, ["hello"], [4])
    assert time.perf_counter() - start >= 0.1
    assert (gen.encoded, gen.released) == (1, 0)
    gen.release(state)
    assert gen.released == 1
    with pytest.raises(RuntimeError, match="released"):
        gen.generate(state, ["hello"], [4])
    with pytest.raises(ValueError):
        GroundTruthGenerator(make_annotation(), latency_s=-1.0)
