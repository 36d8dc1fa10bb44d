"""Build the node's SceneReasoner from its parameters (no rclpy).

Three kinds: a trained SSR checkpoint, a tiny random SSR model (exercises the real engine, answers
are noise) and the ground-truth stand-in, which answers from the recording's scene through the real
prompt/parse path. The stand-in needs to know which recorded frames a window holds; the node tells
it the window's stamps (`before_window`) and they are matched to the recording's image stamps.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import Reader

from ssr_core.data.annotations import WindowAnnotation
from ssr_core.data.ground_truth import DEFAULT_OTHER_ANSWER, GroundTruthGenerator
from ssr_core.data.questions import generate_qa
from ssr_core.data.rosbag_io import IMAGE_TOPIC, TYPESTORE
from ssr_core.data.scene_io import load_scene
from ssr_core.data.windows import annotate_window
from ssr_core.inference.reasoner import SceneReasoner
from ssr_ros.outputs.messages import ns_from_stamp

QA_SEED = 0


@dataclass
class LoadedModel:
    reasoner: SceneReasoner
    description: str  # printed and reported in diagnostics
    device: str
    trained: bool  # False: results are not from a trained SSR model
    ground_truth: GroundTruthSource | None = field(default=None)

    def before_window(self, stamps_ns) -> None:
        if self.ground_truth is not None:
            self.ground_truth.stamps_ns = tuple(stamps_ns)



class GroundTruthSource:
    """WindowAnnotation of the frames the node is about to perceive, from the scene directory.

    Frames are identified by header stamp against the image stamps of `<scene_dir>/recording`, so
    the recording must be replayed with its original stamps (no loop). Free questions are answered
    when they are one of the VSI-Bench questions `ssr_core.data.questions` generates for the asked window
    (rng seed QA_SEED), so a demo can ask a question whose true answer it knows.
    """

    def __init__(self, scene_dir: str | Path):
        self.scene = load_scene(scene_dir)
        recording = Path(scene_dir) / "recording"
        if not recording.exists():
            raise FileNotFoundError(f"{recording}: the ground-truth stand-in needs the scene's recording")
        stamps = []
        with Reader(recording) as reader:
            conns = [c for c in reader.connections if c.topic == IMAGE_TOPIC]
            for conn, _, raw in reader.messages(connections=conns):
                stamps.append(ns_from_stamp(TYPESTORE.deserialize_cdr(raw, conn.msgtype).header.stamp))
        if len(stamps) != self.scene.num_frames:
            raise ValueError(f"recording has {len(stamps)} images, scene.json {self.scene.num_frames} frames")
        self._stamps = np.asarray(stamps, dtype=np.int64)
        self.stamps_ns: tuple[int, ...] = ()
        self._qa: tuple[WindowAnnotation | None, dict[str, str]] = (None, {})  # last asked window's prompts

    def frame_indices(self, stamps_ns) -> np.ndarray:
        """Nearest recorded image to each stamp."""
        s = np.asarray(stamps_ns, dtype=np.int64)
        return np.abs(self._stamps[None, :] - s[:, None]).argmin(axis=1)

    def __call__(self, frames: np.ndarray) -> WindowAnnotation:
        if len(self.stamps_ns) != len(frames):
            raise RuntimeError("ground-truth stand-in called without the window's stamps")
        return annotate_window(self.scene, self.frame_indices(self.stamps_ns))

    def answer(self, prompt: str, annotation: WindowAnnotation) -> str:
        if self._qa[0] is not annotation:
            items = generate_qa(annotation, np.random.default_rng(QA_SEED))
            self._qa = (annotation, {i.messages[-1]["content"]: i.answer for i in items if i.task == "vsibench"})
        return next((a for q, a in self._qa[1].items() if q in prompt), DEFAULT_OTHER_ANSWER)


def load_model(values: dict) -> LoadedModel:
    """The model named by the node's parameters (raises with a readable message on failure)."""
    kind = values["model.kind"]
    reasoner_args = dict(delta=values["model.delta"], cache_windows=values["model.cache_windows"],
                         max_question_chars=values["ask.max_question_chars"])
    if kind == "ground_truth":
        source = GroundTruthSource(values["model.scene_dir"])
        generator = GroundTruthGenerator(source, source.answer, latency_s=values["model.standin_latency"])
        return LoadedModel(SceneReasoner(generator, **reasoner_args),
                           f"ground-truth stand-in (scene {source.scene.scene_id})", "cpu", False, source)
    from ssr_core.inference.generation import SSRGenerator

    dtype = None if values["model.dtype"] == "auto" else values["model.dtype"]
    if kind == "tiny_random":
        from ssr_core.inference.devices import resolve_device
        from ssr_core.model.tiny import build_tiny_ssr, build_tiny_tokenizer

        device = resolve_device(values["model.device"])
        generator = SSRGenerator(build_tiny_ssr(num_frames=values["window.frames"]).to(device),
                                 build_tiny_tokenizer())
        return LoadedModel(SceneReasoner(generator, **reasoner_args), "tiny random SSR model",
                           str(device), False)
    generator = SSRGenerator.from_checkpoint(values["model.checkpoint"], device=values["model.device"],
                                             dtype=dtype, vggt_path=values["model.vggt_path"] or None)
    return LoadedModel(SceneReasoner(generator, **reasoner_args), f"SSR checkpoint {values['model.checkpoint']}",
                       str(generator.model.device), True)


def release_accelerator_memory() -> None:
    """Return freed CUDA / Ascend NPU blocks to the driver (torch keeps them cached otherwise)."""
    torch = sys.modules.get("torch")  # never import torch just for this (ground-truth mode)
    if torch is None:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    npu = getattr(torch, "npu", None)  # registered by torch_npu, imported when the NPU was chosen
    if npu is not None and npu.is_available():
        npu.empty_cache()
