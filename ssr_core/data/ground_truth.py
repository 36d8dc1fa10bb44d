"""GroundTruthGenerator: a `WindowGenerator` that answers from a window's ground truth.

It stands in for the SSR model (ROS node tests, the demo, evaluation tests) while exercising
the real text path: it reads the real prompts (`ssr_core.language.prompts`) and answers in the real
formats, so the reasoner's parsing, scene graph and layout run exactly as on model output.

* detect-all prompt -> the visible objects as the grounding JSON list, in first-appearance
  order (as `ssr_core.data.questions` writes the training answer);
* MultiQA prompt -> the true target cell for the anchor cells the prompt states;
* anything else -> a configurable answer.

Prompt kinds are recognised through the registered question templates (`match_question`), not
from copied strings, so rewording a prompt in `prompts.py` does not break the stand-in.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ssr_core.data.annotations import SceneObject, WindowAnnotation
from ssr_core.inference.reasoner import assign_instance_ids, prompt_text
from ssr_core.language.prompts import (
    Prompt,
    format_cell_answer,
    format_grounding_answer,
    match_question,
    object_name,
)
from ssr_core.scene.cogmap import GRID_SIZE, MIN_ANCHOR_SEPARATION_M, encode_triplet
from ssr_core.scene.objects import GroundedObject

AnnotationSource = WindowAnnotation | Callable[[np.ndarray], WindowAnnotation]
DEFAULT_OTHER_ANSWER = "unknown"  # the ground truth holds no answer to free questions


_INTEGERS = re.compile(r"[0-9]+")


@dataclass
class _Window:
    """The stand-in's 'encoded' window: the annotation and its answers by name."""

    annotation: WindowAnnotation
    objects: dict[str, SceneObject]  # prompt name (`<id> (<label>)`) -> ground-truth object
    detect_answer: str
    released: bool = False


class GroundTruthGenerator:
    """Answers prompts from a `WindowAnnotation` (fixed, or per window from a callable).

    Object ids in its prompts follow the reasoner's rule (`<label>_<k>` in answer order), so
    they may differ from the annotation's own ids. `latency_s` is slept in every call to
    simulate a slow model; `encoded` and `released` count calls, for tests. A callable
    `other_answer(prompt_text, annotation)` answers the prompts that are not detect-all or MultiQA.
    """

    def __init__(
        self,
        annotation: AnnotationSource,
        other_answer: str | Callable[[str, WindowAnnotation], str] = DEFAULT_OTHER_ANSWER,
        latency_s: float = 0.0,
    ):
        if latency_s < 0 or not math.isfinite(latency_s):
            raise ValueError(f"latency_s must be a finite non-negative number, got {latency_s}")
        self._annotation = annotation
        self._other = other_answer
        self.latency_s = latency_s
        self._count_lock = threading.Lock()
        self.encoded = 0
        self.released = 0

    def encode_window(self, frames: np.ndarray) -> _Window:
        self._sleep()
        annotation = self._annotation(frames) if callable(self._annotation) else self._annotation
        visible = sorted(annotation.visible_objects(), key=lambda o: (o.first_frame, o.instance_id))
        ids = assign_instance_ids([o.label for o in visible])
        grounded = [GroundedObject(o.label, np.asarray(o.box, dtype=np.float64)) for o in visible]
        with self._count_lock:
            self.encoded += 1
        return _Window(
            annotation=annotation,
            objects={object_name(i, o.label): o for i, o in zip(ids, visible)},
            detect_answer=format_grounding_answer(grounded, as_list=True),
        )

    def generate(self, window: _Window, prompts: Sequence[Prompt], max_new_tokens: Sequence[int]) -> list[str]:
        if window.released:
            raise RuntimeError("generate on a released window")
        if len(max_new_tokens) != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {len(max_new_tokens)} token limits")
        self._sleep()
        return [self._answer(window, prompt_text(prompt)) for prompt in prompts]

    def release(self, window: _Window) -> None:
        window.released = True
        with self._count_lock:
            self.released += 1

    def _sleep(self) -> None:
        if self.latency_s > 0:
            time.sleep(self.latency_s)

    def _answer(self, window: _Window, prompt: str) -> str:
        question = match_question(prompt)
        if question is not None and question.family == "detect_all":
            return window.detect_answer
        if question is None or question.family != "cogmap":
            return self._other(prompt, window.annotation) if callable(self._other) else self._other
        cell = _true_cell(window, question.fields)
        return format_cell_answer(cell) if cell is not None else DEFAULT_OTHER_ANSWER


def _true_cell(window: _Window, fields: dict[str, str]) -> tuple[int, int] | None:
    """Target cell of the true centres in the grid the prompt's anchor cells define."""
    try:
        a1, a2, t = (window.objects[fields[name]] for name in ("anchor1", "anchor2", "target"))
    except KeyError:  # a name the ground truth does not know
        return None
    c1, c2 = (tuple(int(v) for v in _INTEGERS.findall(fields[name])) for name in ("anchor1_cell", "anchor2_cell"))
    if len(c1) != 2 or len(c2) != 2:
        return None
    p1, p2, pt = (complex(o.box[0], o.box[1]) for o in (a1, a2, t))
    if abs(p2 - p1) < MIN_ANCHOR_SEPARATION_M or c1 == c2:
        return None
    exact = encode_triplet(a1.box[:2], a2.box[:2], t.box[:2], "a1", "a2", "t")
    if (exact.anchor1_cell, exact.anchor2_cell) == (c1, c2):
        return exact.target_cell  # bit-identical to the training answer
    g1, g2 = complex(*c1), complex(*c2)
    image = g1 + (pt - p1) / (p2 - p1) * (g2 - g1)
    return (
        min(max(math.floor(image.real + 0.5), 0), GRID_SIZE - 1),
        min(max(math.floor(image.imag + 0.5), 0), GRID_SIZE - 1),
    )
