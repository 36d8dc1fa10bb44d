"""SceneReasoner on the ground-truth stand-in: the per-window procedure, ask, cache, threads."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from test_standin import FRAMES, make_annotation

from ssr_core.data.annotations import SceneObject, WindowAnnotation
from ssr_core.data.ground_truth import GroundTruthGenerator
from ssr_core.inference.reasoner import (
    DEFAULT_INCONSISTENCY_THRESHOLD,
    Prompt,
    SceneReasoner,
    assign_instance_ids,
    prompt_text,
)
from ssr_core.language.prompts import detect_all_objects_prompt
from ssr_core.scene.scene_graph import build_scene_graph


def _gt_graph(window):
    visible = window.visible_objects()
    return build_scene_graph([o.instance_id for o in visible], np.stack([o.box[:3] for o in visible]))


@pytest.mark.parametrize("n, seed", [(6, 0), (9, 1), (12, 2)])
def test_ground_truth_window_is_perceived_exactly(n, seed):
    window = make_annotation(n, seed)
    reasoner = SceneReasoner(GroundTruthGenerator(window))
    p = reasoner.perceive(FRAMES, window_id=1)
    assert p.window_id == 1 and p.failures == []
    visible = window.visible_objects()
    assert [o.instance_id for o in p.objects] == [o.instance_id for o in visible]
    assert [o.label for o in p.objects] == [o.label for o in visible]
    np.testing.assert_allclose([o.box7 for o in p.objects], [o.box for o in visible], atol=0.01)
    assert all(o.score == 1.0 for o in p.objects)
    assert [t.to_dict() for t in p.triplets] == [t.to_dict() for t in _gt_graph(window)]
    assert p.inconsistent == []
    assert p.layout.residuals.shape == (len(p.triplets),)
    assert np.all(p.layout.residuals <= np.sqrt(0.5) + 1e-6)  # quantisation only
    for o in visible:
        np.testing.assert_allclose(p.layout.positions[o.instance_id], o.box[:2], atol=0.01)
    assert {"encode", "detect", "graph", "cogmap", "layout", "total"} <= set(p.timings)


class Corrupting(GroundTruthGenerator):
    """Ground truth, except the MultiQA answer about `target` is the far corner cell."""

    def __init__(self, window, target: str, answer: str | None = None):
        super().__init__(window)
        self.target = target
        self.answer = answer

    def generate(self, window: Any, prompts: Sequence[Prompt], max_new_tokens: Sequence[int]) -> list[str]:
        answers = super().generate(window, prompts, max_new_tokens)
        out = []
        for prompt, answer in zip(prompts, answers):
            text = prompt_text(prompt)
            if f"target {self.target} " in text:
                col, row = (int(v) for v in answer.strip("[]").split(","))
                answer = self.answer or f"[{9 if col < 5 else 0}, {9 if row < 5 else 0}]"
            out.append(answer)
        return out


def test_a_corrupted_cell_flags_its_triplet_and_lowers_scores():
    window = make_annotation(8, 3)
    graph = _gt_graph(window)
    bad = graph[3]
    p = SceneReasoner(Corrupting(window, bad.target)).perceive(FRAMES, 1)
    assert p.failures == []
    assert p.inconsistent == [3]
    assert p.triplets[3].target_cell != bad.target_cell
    assert [t.target_cell for i, t in enumerate(p.triplets) if i != 3] == [
        t.target_cell for i, t in enumerate(graph) if i != 3
    ]
    scores = {o.instance_id: o.score for o in p.objects}
    assert all(scores[name] < 1.0 for name in (bad.anchor1, bad.anchor2, bad.target))
    assert sum(s < 1.0 for s in scores.values()) == 3


def test_a_correct_clipped_cell_is_not_flagged():
    cluster = [(1.00, 0.00), (1.10, 0.05), (1.05, -0.10), (9.00, 4.00)]  # the far one cannot fit the grid
    objects = [
        SceneObject(f"box_{i}", "box", np.array([x, y, 0.2, 0.1, 0.1, 0.4, 0.0]), first_frame=i)
        for i, (x, y) in enumerate(cluster)
    ]
    window = WindowAnnotation("clipped", np.arange(4), objects, np.zeros((0, 2)))
    p = SceneReasoner(GroundTruthGenerator(window)).perceive(FRAMES, 1)
    assert p.failures == [] and [t.clipped for t in p.triplets] == [False, True]
    assert p.layout.residuals[1] > DEFAULT_INCONSISTENCY_THRESHOLD  # the clamping itself
    assert p.inconsistent == [] and all(o.score == 1.0 for o in p.objects)


def test_unreadable_cell_is_a_recorded_failure():
    window = make_annotation(8, 3)
    graph = _gt_graph(window)
    p = SceneReasoner(Corrupting(window, graph[2].target, answer="somewhere left")).perceive(FRAMES, 1)
    assert len(p.triplets) == len(graph) - 1
    assert [f.stage for f in p.failures] == ["cogmap"]
    assert graph[2].target in p.failures[0].reason and p.failures[0].text == "somewhere left"
    assert p.layout.residuals.shape == (len(graph) - 1,)


class Scripted:
    """A generator with a fixed detect answer and fixed other answers."""

    def __init__(self, detect: str, other: str = "[5, 5]", fail: bool = False):
        self.detect, self.other, self.fail = detect, other, fail
        self.released: list[Any] = []
        self.encoded = 0

    def encode_window(self, frames: np.ndarray) -> Any:
        self.encoded += 1
        return {"id": self.encoded}

    def generate(self, window: Any, prompts: Sequence[Prompt], max_new_tokens: Sequence[int]) -> list[str]:
        if self.fail:
            raise RuntimeError("device lost")
        return [self.detect if prompt_text(p) == detect_all_objects_prompt() else self.other for p in prompts]

    def release(self, window: Any) -> None:
        self.released.append(window)


def test_garbage_answers_are_recorded_not_raised():
    p = SceneReasoner(Scripted("I see a nice room.")).perceive(FRAMES, 1)
    assert p.objects == [] and p.triplets == [] and p.inconsistent == []
    assert [f.stage for f in p.failures] == ["detect"]
    assert p.failures[0].text == "I see a nice room."

    p = SceneReasoner(Scripted("fine", fail=True)).perceive(FRAMES, 2)
    assert [f.stage for f in p.failures] == ["detect"] and "device lost" in p.failures[0].reason


def test_bad_boxes_duplicates_and_truncation_are_dropped_with_failures():
    good = [
        '{"label": "chair", "bbox_7dof": [1.00, 0.00, 0.40, 0.50, 0.50, 0.80, 0.00]}',
        '{"label": "table", "bbox_7dof": [2.00, 1.00, 0.40, 1.20, 0.80, 0.75, 0.10]}',
        '{"label": "chair", "bbox_7dof": [3.00, -1.00, 0.40, 0.50, 0.50, 0.80, 1.50]}',
        '{"label": "lamp", "bbox_7dof": [2.50, -2.00, 0.80, 0.30, 0.30, 1.60, 0.00]}',
    ]
    negative = '{"label": "sofa", "bbox_7dof": [4.00, 2.00, 0.40, -2.00, 0.90, 0.80, 0.00]}'
    duplicate = good[1].replace("0.10]", "0.20]")
    stacked = '{"label": "laptop", "bbox_7dof": [2.00, 1.00, 0.80, 0.30, 0.20, 0.02, 0.00]}'  # on the table
    truncated = '{"label": "bin", "bbox_7dof": [0.5'
    text = "[" + ", ".join([good[0], negative, good[1], duplicate, good[2], good[3], stacked]) + ", " + truncated
    p = SceneReasoner(Scripted(text, other="[5, 9]")).perceive(FRAMES, 1)
    assert [o.instance_id for o in p.objects] == ["chair_0", "table_0", "chair_1", "lamp_0", "laptop_0"]
    assert sorted(f.stage for f in p.failures) == ["box", "box", "detect"]
    assert any("truncated" in f.reason for f in p.failures) and any("repeated" in f.reason for f in p.failures)
    assert len(p.triplets) == 3  # 5 objects: seed + one per added object

    few = SceneReasoner(Scripted("[" + ", ".join(good[:2]) + "]")).perceive(FRAMES, 1)
    assert len(few.objects) == 2 and few.triplets == [] and few.failures == []

    capped = SceneReasoner(Scripted("[" + ", ".join(good) + "]"), max_objects=3).perceive(FRAMES, 1)
    assert len(capped.objects) == 3 and "max_objects" in capped.failures[0].reason


def test_encode_failure_and_bad_arguments():
    class Broken(Scripted):
        def encode_window(self, frames: np.ndarray) -> Any:
            raise MemoryError("out of memory")

    reasoner = SceneReasoner(Broken(""))
    p = reasoner.perceive(FRAMES, 1)
    assert [f.stage for f in p.failures] == ["encode"] and "out of memory" in p.failures[0].reason
    assert reasoner.cached_windows == []
    with pytest.raises(ValueError):
        reasoner.perceive(FRAMES, -1)
    with pytest.raises(ValueError, match="latest"):
        reasoner.perceive(FRAMES, 0)
    with pytest.raises(ValueError):
        reasoner.perceive(np.zeros((4, 4, 3), dtype=np.uint8), 1)
    with pytest.raises(ValueError):
        SceneReasoner(Broken(""), cache_windows=0)


def test_ask_answers_on_the_cached_window():
    window = make_annotation()
    answers = {"How far": "2.5", "Which": "B", "Where": "next to the table_1", "Odd": "no idea"}

    def other(prompt: str, _: object) -> str:
        return next(a for key, a in answers.items() if key in prompt)

    gen = GroundTruthGenerator(window, other_answer=other)
    reasoner = SceneReasoner(gen)
    reasoner.perceive(FRAMES, 7)
    encoded = gen.encoded

    a = reasoner.ask("How far is the chair from the table (in meters)?")
    assert a.success and a.value == 2.5 and a.answer == "2.5" and a.window_id == 7 and a.error == ""
    assert a.latency_s >= 0
    a = reasoner.ask("Which is closer to the sofa?", ["chair", "table", "lamp"], window_id=7)
    assert (a.success, a.answer, a.value, a.option_index) == (True, "table", "B", 1)
    a = reasoner.ask("Which is closer to the sofa?", ["A. chair", "B. table"])
    assert (a.success, a.answer, a.option_index) == (True, "table", 1)
    a = reasoner.ask("Where is the chair?")
    assert a.success and a.answer == "next to the table_1" and a.value is None
    a = reasoner.ask("Odd one out?", ["chair", "table"])
    assert not a.success and a.answer == "no idea" and "choice" in a.error
    assert gen.encoded == encoded  # never re-encoded


def test_ask_errors():
    reasoner = SceneReasoner(GroundTruthGenerator(make_annotation()), max_question_chars=50, cache_windows=2)
    a = reasoner.ask("How many chairs?")
    assert not a.success and "no window" in a.error and a.window_id == 0
    reasoner.perceive(FRAMES, 1)
    for question in ("", "   "):
        assert "empty" in reasoner.ask(question).error
    assert "longer than 50" in reasoner.ask("x" * 51).error
    assert "unknown or evicted" in reasoner.ask("How many?", window_id=9).error
    for bad_id in ([1], -1, True, 1.0, None):  # never raises, and True is not window 1
        bad = reasoner.ask("How many?", window_id=bad_id)  # type: ignore[arg-type]
        assert not bad.success and "non-negative integer" in bad.error and bad.window_id == 0
    assert reasoner.ask("How many?", window_id=np.int64(1)).window_id == 1
    assert "non-empty" in reasoner.ask("Which?", ["chair", ""]).error
    assert "not one string" in reasoner.ask("Which?", "chair").error
    reasoner.perceive(FRAMES, 2)
    reasoner.perceive(FRAMES, 3)
    evicted = reasoner.ask("How many?", window_id=1)
    assert not evicted.success and "evicted" in evicted.error and "2, 3" in evicted.error

    scripted = Scripted("[]")
    failing = SceneReasoner(scripted)
    failing.perceive(FRAMES, 1)
    scripted.fail = True
    a = failing.ask("How many chairs?")
    assert not a.success and "device lost" in a.error and a.window_id == 1


def test_lru_eviction_releases_windows():
    gen = Scripted("[]")
    reasoner = SceneReasoner(gen, cache_windows=2)
    for window_id in (1, 2):
        reasoner.perceive(FRAMES, window_id)
    assert gen.released == []
    assert reasoner.ask("How many?", window_id=1).success  # 1 becomes most recently used
    reasoner.perceive(FRAMES, 3)
    assert gen.released == [{"id": 2}] and reasoner.cached_windows == [1, 3]
    assert reasoner.ask("How many?").window_id == 3  # latest = last perceived
    reasoner.perceive(FRAMES, 3)  # the same id again replaces (and releases) the old state
    assert gen.released == [{"id": 2}, {"id": 3}] and reasoner.cached_windows == [1, 3]


class Exclusive(GroundTruthGenerator):
    """Fails if two calls ever overlap (the reasoner must serialise them)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.busy = threading.Lock()
        self.overlaps = 0

    def _guard(self, call, *args):
        if not self.busy.acquire(blocking=False):
            self.overlaps += 1
            return call(*args)
        try:
            return call(*args)
        finally:
            self.busy.release()

    def encode_window(self, frames):
        return self._guard(super().encode_window, frames)

    def generate(self, window, prompts, max_new_tokens):
        return self._guard(super().generate, window, prompts, max_new_tokens)


def test_perceive_and_ask_from_two_threads():
    window = make_annotation(6, 4)
    gen = Exclusive(window, other_answer="3", latency_s=0.002)
    reasoner = SceneReasoner(gen, cache_windows=2)
    errors: list[BaseException] = []
    answers = []

    def perceive() -> None:
        try:
            for window_id in range(1, 7):
                assert reasoner.perceive(FRAMES, window_id).failures == []
        except BaseException as exc:
            errors.append(exc)

    def ask() -> None:
        try:
            for _ in range(30):
                answers.append(reasoner.ask("How many chair(s) are in this room?"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=perceive), threading.Thread(target=ask)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == [] and gen.overlaps == 0
    assert len(answers) == 30
    assert all(a.success and a.value == 3.0 or "no window" in a.error for a in answers)
    assert reasoner.cached_windows == [5, 6] and gen.released == 4


def test_instance_ids_count_per_label_in_order_and_are_safe_tf_frame_names():
    assert assign_instance_ids(["chair", "table", "chair", "coffee table", "coffee table", "TV/monitor", " "]) == [
        "chair_0",
        "table_0",
        "chair_1",
        "coffee_table_0",
        "coffee_table_1",
        "TV_monitor_0",
        "object_0",
    ]


@pytest.mark.slow  # importing torch + transformers dominates
def test_tiny_random_ssr_model_runs_through_the_reasoner():
    pytest.importorskip("torch")
    from ssr_core.inference.generation import SSRGenerator
    from ssr_core.model.tiny import build_tiny_ssr, build_tiny_tokenizer

    generator = SSRGenerator(build_tiny_ssr(num_frames=4), build_tiny_tokenizer())
    reasoner = SceneReasoner(generator, detect_tokens=32, cell_tokens=6, answer_tokens=6)
    frames = np.random.default_rng(0).integers(0, 256, (4, 56, 56, 3), dtype=np.uint8)
    p = reasoner.perceive(frames, 1)  # random weights: garbage text, recorded as failures
    assert p.window_id == 1 and {"encode", "detect", "total"} <= set(p.timings)
    assert all(f.stage in ("detect", "box", "cogmap") for f in p.failures)
    answer = reasoner.ask("How many chair(s) are in this room?")
    assert answer.window_id == 1 and answer.error == ""


def test_clear_releases_every_cached_window():
    generator = GroundTruthGenerator(make_annotation(6, 0))
    reasoner = SceneReasoner(generator, cache_windows=3)
    for window_id in (1, 2):
        reasoner.perceive(FRAMES, window_id)
    reasoner.clear()
    assert reasoner.cached_windows == [] and generator.released == 2
    answer = reasoner.ask("How many chairs are in the room?")
    assert not answer.success and "no window" in answer.error

