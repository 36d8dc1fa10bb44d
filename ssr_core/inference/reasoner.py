"""SceneReasoner: the per-window procedure of SSR on top of any `WindowGenerator`.

One window of frames is encoded once; every question on it (the detect-all prompt, one MultiQA
query per scene-graph triplet, later user questions) reuses that encoded state:

1. detect: the detect-all prompt (paper 3.3) -> 7-DoF boxes, ids `<label>_<k>` in answer order;
2. graph: the incremental scene graph (paper Alg. 1) over the predicted box centres;
3. cogmap: one MultiQA query per triplet (paper 3.2, Fig. 4), all in one batched call, the
   anchor cells taken from encoding the predicted centres;
4. layout: least-squares layout from the predicted cells with every box centre held fixed, so a
   triplet's residual is how far (grid cells) its predicted cell is from what the model's own
   boxes imply; beyond `inconsistency_threshold` the triplet is flagged inconsistent.

Model output never raises: unreadable answers become `StageFailure`s in the perception and
`ask` reports errors in its `SpatialAnswer`. Torch-free: the generator hides the model.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ssr_core.language.parsers import (
    ParseFailure,
    option_letters,
    option_text,
    parse_cell,
    parse_grounding,
    parse_vsibench,
)
from ssr_core.language.prompts import (
    CELL_ANSWER_TOKENS,
    DETECT_ALL_ANSWER_TOKENS,
    SHORT_ANSWER_TOKENS,
    Prompt,
    cogmap_messages,
    detect_all_objects_prompt,
    format_options,
    vsibench_prompt,
)
from ssr_core.scene.cogmap import LocalCogMap, cell_error
from ssr_core.scene.layout import LayoutResult, recover_layout
from ssr_core.scene.objects import GroundedObject, instance_id
from ssr_core.scene.scene_graph import build_scene_graph

log = logging.getLogger(__name__)

# Quantisation alone puts a correct cell up to sqrt(2)/2 ~ 0.71 cells from the exact target; a
# one-cell slip adds up to one more. Beyond 1.5 cells the cell and the boxes disagree by more
# than a cell on top of rounding, which is what `inconsistent` reports. A clipped triplet (target
# beyond the grid even at k = 1) is judged by its cell against the box-derived clamped cell,
# since its residual includes the clamping.
DEFAULT_INCONSISTENCY_THRESHOLD = 1.5
DEFAULT_MAX_OBJECTS = 40
DUPLICATE_M = 0.01  # same label, centres closer than this: one object stated twice
DEFAULT_MAX_QUESTION_CHARS = 500  # the node's ask.max_question_chars default

# parse_vsibench only tells multiple choice from numeric by the question type; these stand for
# "any choice question" and "any numeric question" in `ask`.
_CHOICE_TYPE = "object_rel_distance"
_NUMBER_TYPE = "object_abs_distance"
_MAX_OPEN_NUMBER_WORDS = 3  # "2.5 meters", "three chairs": short enough to be a numeric answer
_LETTERED = re.compile(r"\s*([A-Z])\s*[.:)]")
_OBJECT_SEGMENT = re.compile(r"\{[^{}]*\}")


def prompt_text(prompt: Prompt) -> str:
    """All text of a prompt, contents joined by blank lines (for matching and logs)."""
    return prompt if isinstance(prompt, str) else "\n\n".join(m["content"] for m in prompt)


class WindowGenerator(Protocol):
    """Anything that turns (frames, prompts) into answer texts: the real SSR engine, or a stand-in."""

    def encode_window(self, frames: np.ndarray) -> Any:
        """(N, H, W, 3) uint8 -> opaque state that later `generate` calls reuse."""
        ...

    def generate(self, window: Any, prompts: Sequence[Prompt], max_new_tokens: Sequence[int]) -> list[str]:
        """One answer text per prompt, all on the same encoded window (batched)."""
        ...

    def release(self, window: Any) -> None:
        """Free the encoded state (e.g. its KV cache)."""
        ...


def assign_instance_ids(labels: Sequence[str]) -> list[str]:
    """`<label>_<k>` with k counting each label's occurrences in order (deterministic)."""
    counts: dict[str, int] = {}
    ids = []
    for label in labels:
        k = counts.get(label, 0)
        counts[label] = k + 1
        ids.append(instance_id(label, k))
    return ids


@dataclass(frozen=True)
class PerceivedObject:
    """One detected object.

    `score` in [0, 1] is the fraction of the object's scene-graph triplets (any role) that are
    consistent with the boxes; 1.0 when it is in none. The model gives no confidences, so this
    self-consistency is the only evidence we have.
    """

    instance_id: str
    label: str
    box7: np.ndarray  # (7,) canonical frame
    score: float


@dataclass(frozen=True)
class StageFailure:
    """Something of the window that could not be used, and why (for logs and diagnostics).

    `stage`: "encode", "detect", "box", "graph", "cogmap" or "layout"; `text` is the model
    output concerned (may be empty).
    """

    stage: str
    reason: str
    text: str = ""


@dataclass
class WindowPerception:
    """The structured scene of one window, as the model stated it."""

    window_id: int
    objects: list[PerceivedObject]
    triplets: list[LocalCogMap]  # target cells as the model predicted them; unparsed ones left out
    layout: LayoutResult  # residuals[i] belongs to triplets[i], in grid cells
    inconsistent: list[int]  # indices into `triplets`
    failures: list[StageFailure] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage and "total"
    zero_shot: bool = False  # stated by a base model never trained for SSR


@dataclass(frozen=True)
class SpatialAnswer:
    """Answer to a user question.

    Multiple choice: `answer` is the chosen option's text, `value` its letter, `option_index`
    its index. Open question: `answer` is the model's text, `value` the number when the answer
    is numeric. On failure `error` says why and `answer` keeps any model text.
    """

    success: bool
    answer: str
    value: float | str | None
    error: str
    latency_s: float  # from the call to the return, lock wait included
    option_index: int = -1
    window_id: int = 0  # the window answered on (0 when none could be resolved)
    zero_shot: bool = False  # answered by a base model never trained for SSR


def _empty_layout() -> LayoutResult:
    return LayoutResult(positions={}, residuals=np.zeros(0))


class SceneReasoner:
    """Runs the per-window procedure and answers questions on recently encoded windows.

    Thread-safety: `perceive` and `ask` may be called from different threads; one lock guards
    the cache and the generator, so calls are serialised (an `ask` waits for a running
    `perceive`). Window ids are positive; `ask(window_id=0)` means the latest window.

    `zero_shot` comes from the generator (an `SSRGenerator` over an untrained base model) and
    is copied into every perception and answer, so no output passes for a trained model's.
    """

    def __init__(
        self,
        generator: WindowGenerator,
        delta: float = 2.5,
        cache_windows: int = 4,
        max_objects: int = DEFAULT_MAX_OBJECTS,
        inconsistency_threshold: float = DEFAULT_INCONSISTENCY_THRESHOLD,
        max_question_chars: int = DEFAULT_MAX_QUESTION_CHARS,
        detect_tokens: int = DETECT_ALL_ANSWER_TOKENS,
        cell_tokens: int = CELL_ANSWER_TOKENS,
        answer_tokens: int = SHORT_ANSWER_TOKENS,
    ):
        if cache_windows < 1:
            raise ValueError(f"cache_windows must be >= 1, got {cache_windows}")
        if max_objects < 1:
            raise ValueError(f"max_objects must be >= 1, got {max_objects}")
        self.generator = generator
        self.delta = delta
        self.cache_windows = cache_windows
        self.max_objects = max_objects
        self.inconsistency_threshold = inconsistency_threshold
        self.max_question_chars = max_question_chars
        self.detect_tokens = detect_tokens
        self.cell_tokens = cell_tokens
        self.answer_tokens = answer_tokens
        self.zero_shot = bool(getattr(generator, "zero_shot", False))  # stand-ins have no such attribute
        self._lock = threading.Lock()
        self._cache: OrderedDict[int, Any] = OrderedDict()  # window id -> encoded state, LRU last
        self._latest: int | None = None

    # ------------------------------------------------------------------ cache

    @property
    def cached_windows(self) -> list[int]:
        """Window ids currently cached, least recently used first."""
        with self._lock:
            return list(self._cache)

    def clear(self) -> None:
        """Release every cached window (e.g. when a node deactivates and frees accelerator memory)."""
        with self._lock:
            while self._cache:
                window_id, state = self._cache.popitem(last=False)
                self._release(window_id, state)
            self._latest = None

    def _store(self, window_id: int, state: Any) -> None:
        old = self._cache.pop(window_id, None)
        if old is not None and old is not state:
            self._release(window_id, old)
        self._cache[window_id] = state
        self._latest = window_id
        while len(self._cache) > self.cache_windows:
            evicted_id, evicted = self._cache.popitem(last=False)
            self._release(evicted_id, evicted)

    def _release(self, window_id: int, state: Any) -> None:
        try:
            self.generator.release(state)
        except Exception:  # a failed release must not take the next window down with it
            log.exception("releasing window %d failed", window_id)

    # ------------------------------------------------------------------ perceive

    def perceive(self, frames: np.ndarray, window_id: int) -> WindowPerception:
        """Encode the window, cache it, and build its structured scene.

        Raises `ValueError` for an id below 1 (0 is `ask`'s "latest window") or frames that are
        not (N, H, W, 3); everything the model gets wrong (or a generator exception) is recorded
        in `failures` instead.
        """
        if isinstance(window_id, bool) or not isinstance(window_id, int | np.integer) or window_id < 1:
            raise ValueError(f"window_id must be a positive integer (0 means 'latest' to ask), got {window_id!r}")
        window_id = int(window_id)
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
            raise ValueError(f"frames must be (N, H, W, 3) with N >= 1, got shape {frames.shape}")
        start = time.perf_counter()
        with self._lock:
            perception = self._perceive_locked(frames, window_id)
        perception.timings["total"] = time.perf_counter() - start
        perception.zero_shot = self.zero_shot
        return perception

    def _perceive_locked(self, frames: np.ndarray, window_id: int) -> WindowPerception:
        timings: dict[str, float] = {}
        failures: list[StageFailure] = []
        result = WindowPerception(window_id, [], [], _empty_layout(), [], failures, timings)

        tick = time.perf_counter()
        try:
            state = self.generator.encode_window(frames)
        except Exception as exc:
            failures.append(StageFailure("encode", f"generator failed: {type(exc).__name__}: {exc}"))
            return result
        self._store(window_id, state)
        timings["encode"] = time.perf_counter() - tick

        tick = time.perf_counter()
        objects = self._detect(state, failures)
        timings["detect"] = time.perf_counter() - tick
        result.objects = [PerceivedObject(i, o.label, o.box, 1.0) for i, o in objects.items()]
        if len(objects) < 3:  # no triplet to ask about: boxes only, not a failure
            return result

        tick = time.perf_counter()
        ids = list(objects)
        centers = np.stack([o.box[:3] for o in objects.values()])
        try:
            graph = build_scene_graph(ids, centers, delta=self.delta)
        except ValueError as exc:
            failures.append(StageFailure("graph", f"{type(exc).__name__}: {exc}"))
            return result
        timings["graph"] = time.perf_counter() - tick

        tick = time.perf_counter()
        labels = {i: o.label for i, o in objects.items()}
        answered = self._ask_cells(state, graph, labels, failures)
        result.triplets = [predicted for predicted, _ in answered]
        timings["cogmap"] = time.perf_counter() - tick

        tick = time.perf_counter()
        known = {i: o.box[:2] for i, o in objects.items()}
        try:
            result.layout = recover_layout(result.triplets, known_positions=known)
        except ValueError as exc:
            failures.append(StageFailure("layout", f"{type(exc).__name__}: {exc}"))
            return result
        result.inconsistent = [
            i
            for i, ((predicted, from_boxes), residual) in enumerate(zip(answered, result.layout.residuals))
            if (cell_error(predicted.target_cell, from_boxes.target_cell) if from_boxes.clipped else residual)
            > self.inconsistency_threshold
        ]
        timings["layout"] = time.perf_counter() - tick
        result.objects = _scored(result.objects, result.triplets, set(result.inconsistent))
        return result

    def _generate(self, state: Any, prompts: Sequence[Prompt], tokens: int) -> list[str]:
        texts = self.generator.generate(state, list(prompts), [tokens] * len(prompts))
        if len(texts) != len(prompts):
            raise RuntimeError(f"generator returned {len(texts)} answers for {len(prompts)} prompts")
        return [str(t) for t in texts]

    def _detect(self, state: Any, failures: list[StageFailure]) -> dict[str, GroundedObject]:
        """Boxes of the detect-all answer by instance id; bad boxes and overflow are recorded."""
        try:
            (text,) = self._generate(state, [detect_all_objects_prompt()], self.detect_tokens)
        except Exception as exc:
            failures.append(StageFailure("detect", f"generator failed: {type(exc).__name__}: {exc}"))
            return {}
        found = _grounded_objects(text, failures)
        if len(found) > self.max_objects:
            failures.append(
                StageFailure("box", f"{len(found) - self.max_objects} object(s) beyond max_objects dropped")
            )
            found = found[: self.max_objects]
        kept: list[GroundedObject] = []
        for obj in found:  # language models repeat themselves: drop restated boxes
            if any(k.label == obj.label and np.linalg.norm(k.box[:3] - obj.box[:3]) < DUPLICATE_M for k in kept):
                failures.append(StageFailure("box", f"{obj.label} repeated at the same centre; dropped"))
            else:
                kept.append(obj)
        return dict(zip(assign_instance_ids([o.label for o in kept]), kept))

    def _ask_cells(
        self, state: Any, graph: Sequence[LocalCogMap], labels: Mapping[str, str], failures: list[StageFailure]
    ) -> list[tuple[LocalCogMap, LocalCogMap]]:
        """(as predicted, as the boxes say) per triplet whose answer is readable."""
        prompts = [
            cogmap_messages(t.anchor1, t.anchor2, t.target, t.anchor1_cell, t.anchor2_cell, labels) for t in graph
        ]
        try:
            texts = self._generate(state, prompts, self.cell_tokens)
        except Exception as exc:
            failures.append(StageFailure("cogmap", f"generator failed: {type(exc).__name__}: {exc}"))
            return []
        predicted = []
        for triplet, text in zip(graph, texts):
            cell = parse_cell(text)
            if isinstance(cell, ParseFailure):
                who = f"{triplet.target} from {triplet.anchor1}, {triplet.anchor2}"
                failures.append(StageFailure("cogmap", f"{who}: {cell.reason}", text))
            else:
                # `clipped` stays the box-derived flag: whether the target lies beyond the grid.
                predicted.append((dataclasses.replace(triplet, target_cell=cell.value), triplet))
        return predicted

    # ------------------------------------------------------------------ ask

    def ask(self, question: str, options: Sequence[str] = (), window_id: int = 0) -> SpatialAnswer:
        """Answer a question on a cached window (0 = latest) without re-encoding; never raises.

        VSI-Bench conventions: with options the prompt lists them lettered and asks for the
        letter; without, it asks for a single word or phrase.
        """
        answer = self._ask(question, options, window_id)
        return dataclasses.replace(answer, zero_shot=True) if self.zero_shot else answer

    def _ask(self, question: str, options: Sequence[str], window_id: int) -> SpatialAnswer:
        start = time.perf_counter()

        def failed(error: str, answer: str = "", resolved: int = 0) -> SpatialAnswer:
            return SpatialAnswer(False, answer, None, error, time.perf_counter() - start, window_id=resolved)

        if isinstance(window_id, bool) or not isinstance(window_id, int | np.integer) or window_id < 0:
            return failed(f"window_id must be a non-negative integer, got {window_id!r}")
        window_id = int(window_id)
        if not isinstance(question, str) or not question.strip():
            return failed("empty question")
        if len(question) > self.max_question_chars:
            return failed(f"question longer than {self.max_question_chars} characters ({len(question)})")
        if isinstance(options, str):
            return failed("options must be a list of strings, not one string")
        if not all(isinstance(o, str) and option_text(o) for o in options):
            return failed("options must be non-empty strings")
        if len(options) > 26:
            return failed(f"at most 26 options, got {len(options)}")
        lettered = format_options([_unlettered(o, i) for i, o in enumerate(options)])
        prompt = vsibench_prompt(question.strip(), lettered or None)
        with self._lock:
            if self._latest is None:
                return failed("no window perceived yet")
            resolved = self._latest if window_id == 0 else window_id
            state = self._cache.get(resolved)
            if state is None:
                cached = ", ".join(map(str, self._cache)) or "none"
                return failed(f"window {window_id} is unknown or evicted (cached: {cached})")
            self._cache.move_to_end(resolved)
            try:
                (text,) = self._generate(state, [prompt], self.answer_tokens)
            except Exception as exc:
                return failed(f"generator failed: {type(exc).__name__}: {exc}", resolved=resolved)
        text = text.strip()
        latency = time.perf_counter() - start
        if lettered:
            parsed = parse_vsibench(text, _CHOICE_TYPE, lettered)
            if isinstance(parsed, ParseFailure):
                return failed(f"unreadable choice: {parsed.reason}", text, resolved)
            index = option_letters(lettered).index(str(parsed.value))
            return SpatialAnswer(True, option_text(lettered[index]), str(parsed.value), "", latency, index, resolved)
        number = parse_vsibench(text, _NUMBER_TYPE)
        value = None
        if not isinstance(number, ParseFailure) and (
            not number.lenient or len(text.split()) <= _MAX_OPEN_NUMBER_WORDS
        ):
            value = float(number.value)
        return SpatialAnswer(True, text, value, "", latency, window_id=resolved)


def _unlettered(option: str, index: int) -> str:
    """Option text without its letter when it already carries the expected one ("B. left")."""
    match = _LETTERED.match(option)
    return option_text(option) if match and match.group(1) == chr(ord("A") + index) else option.strip()


def _grounded_objects(text: str, failures: list[StageFailure]) -> list[GroundedObject]:
    """Objects of a detect-all answer; when the whole answer does not parse (truncated output,
    one bad box) every `{...}` object in it is parsed on its own and bad ones are recorded."""
    parsed = parse_grounding(text)
    if not isinstance(parsed, ParseFailure):
        return parsed.value
    segments = _OBJECT_SEGMENT.findall(text)
    if not segments:
        failures.append(StageFailure("detect", parsed.reason, text))
        return []
    objects = []
    for segment in segments:
        one = parse_grounding(segment)
        if isinstance(one, ParseFailure):
            failures.append(StageFailure("box", one.reason, segment))
        else:
            objects.extend(one.value)
    tail = text.rfind("{")
    if tail > text.rfind("}"):
        failures.append(StageFailure("detect", "unterminated object at the end (answer truncated?)", text[tail:]))
    return objects


def _scored(
    objects: Sequence[PerceivedObject], triplets: Sequence[LocalCogMap], inconsistent: set[int]
) -> list[PerceivedObject]:
    """Objects with `score` = consistent share of the triplets they take part in."""
    total: dict[str, int] = {}
    good: dict[str, int] = {}
    for i, t in enumerate(triplets):
        for name in (t.anchor1, t.anchor2, t.target):
            total[name] = total.get(name, 0) + 1
            good[name] = good.get(name, 0) + (i not in inconsistent)
    return [
        dataclasses.replace(o, score=good[o.instance_id] / total[o.instance_id] if total.get(o.instance_id) else 1.0)
        for o in objects
    ]

