"""The ground-truth stand-in's data source: the recording's scene, window by window (no rclpy).

Imported only when `model.kind` is `ground_truth`: it needs rosbags, the data engine and QA
generation, none of which a robot running a trained model has to install.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from rosbags.rosbag2 import Reader

from ssr_core.data.annotations import WindowAnnotation
from ssr_core.data.questions import generate_qa
from ssr_core.data.rosbag_io import IMAGE_TOPIC, TYPESTORE
from ssr_core.data.scene_io import load_scene
from ssr_core.data.windows import annotate_window
from ssr_ros.outputs.messages import ns_from_stamp

QA_SEED = 0


class UnanswerableQuestion(ValueError):
    """The stand-in holds no true answer to this question; the reasoner reports a failed answer."""


class GroundTruthSource:
    """WindowAnnotation of the frames the node is about to perceive, from the scene directory.

    Frames are identified by header stamp against the image stamps of `<scene_dir>/recording`, so
    the recording must be replayed with its original stamps (no loop). Free questions are answered
    when they are one of the VSI-Bench questions `ssr_core.data.questions` generates for the asked
    window (rng seed QA_SEED), so a demo can ask a question whose true answer it knows; any other
    question raises UnanswerableQuestion, which ~/ask returns as success=false with that reason
    (never a made-up "unknown" that looks like an answer).
    """

    def __init__(self, scene_dir: str | Path):
        self.scene = load_scene(scene_dir, check_files=False)  # frames come from the recording
        recording = Path(scene_dir) / "recording"
        if not recording.exists():
            raise FileNotFoundError(f"{recording}: the ground-truth stand-in needs the scene's recording")
        stamps = []
        with Reader(recording) as reader:
            conns = [c for c in reader.connections if c.topic == IMAGE_TOPIC]
            for conn, _, raw in reader.messages(connections=conns):
                image: Any = TYPESTORE.deserialize_cdr(raw, conn.msgtype)  # sensor_msgs/Image
                stamps.append(ns_from_stamp(image.header.stamp))
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
        answer = next((a for q, a in self._qa[1].items() if q in prompt), None)
        if answer is None:
            raise UnanswerableQuestion(
                "the ground-truth stand-in only answers the VSI-Bench questions generated for this window "
                f"(ssr_core.data.questions, seed {QA_SEED}); it has no true answer to this one")
        return answer
