"""Build the node's SceneReasoner from its parameters (no rclpy).

Four kinds: a trained SSR checkpoint, a plain base instruct checkpoint run zero-shot with the SSR-2D
prompts ("base": model.checkpoint names the downloaded folder), a tiny random SSR model (exercises
the real engine, answers are noise) and the ground-truth stand-in, which answers from the recording's scene through the real
prompt/parse path. The stand-in needs to know which recorded frames a window holds; the node tells
it the window's stamps (`before_window`) and they are matched to the recording's image stamps.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ssr_core.inference.reasoner import SceneReasoner
from ssr_ros.node_params import NodeParams

if TYPE_CHECKING:
    from ssr_ros.ground_truth_source import GroundTruthSource


@dataclass
class LoadedModel:
    reasoner: SceneReasoner
    description: str  # printed and reported in diagnostics
    device: str
    trained: bool  # False: results are not from a trained SSR model
    ground_truth: GroundTruthSource | None = field(default=None)
    zero_shot: bool = False  # an untrained base model answering SSR prompts (kind "base")
    trained_window_frames: int | None = None  # an SSR checkpoint's num_frames: the windows it learnt from

    def before_window(self, stamps_ns) -> None:
        if self.ground_truth is not None:
            self.ground_truth.stamps_ns = tuple(stamps_ns)


def load_model(params: NodeParams) -> LoadedModel:
    """The model named by the node's parameters (raises with a readable message on failure)."""
    model = params.model
    reasoner_args: dict[str, Any] = dict(delta=model.delta, cache_windows=model.cache_windows,
                                         max_question_chars=params.ask.max_question_chars)
    if model.kind == "ground_truth":  # imported here: rosbags and the data engine are demo/test dependencies
        from ssr_core.data.ground_truth import GroundTruthGenerator
        from ssr_ros.ground_truth_source import GroundTruthSource

        source = GroundTruthSource(model.scene_dir)
        generator = GroundTruthGenerator(source, source.answer, latency_s=model.standin_latency)
        return LoadedModel(SceneReasoner(generator, **reasoner_args),
                           f"ground-truth stand-in (scene {source.scene.scene_id})", "cpu", False, source)
    from ssr_core.inference.generation import SSRGenerator

    dtype = None if model.dtype == "auto" else model.dtype
    if model.kind == "tiny_random":
        from ssr_core.inference.devices import resolve_device
        from ssr_core.model.tiny import build_tiny_ssr, build_tiny_tokenizer

        device = resolve_device(model.device)
        tiny = SSRGenerator(build_tiny_ssr(num_frames=params.window.frames).to(device), build_tiny_tokenizer())
        return LoadedModel(SceneReasoner(tiny, **reasoner_args), "tiny random SSR model", str(device), False)
    if not model.checkpoint:
        raise ValueError(f"model.kind '{model.kind}' needs model.checkpoint (a model directory)")
    engine = SSRGenerator.from_checkpoint(model.checkpoint, device=model.device, dtype=dtype,
                                          vggt_path=model.vggt_path or None,
                                          kind="base" if model.kind == "base" else "ssr")
    served_on = str(engine.model.device)
    if model.kind == "base":
        return LoadedModel(SceneReasoner(engine, **reasoner_args),
                           f"zero-shot base model {model.checkpoint} (not trained for SSR; SSR-2D prompts)",
                           served_on, False, zero_shot=True)
    return LoadedModel(SceneReasoner(engine, **reasoner_args), f"SSR checkpoint {model.checkpoint}", served_on, True,
                       trained_window_frames=engine.model.ssr_config.num_frames)


def window_length_warning(model: LoadedModel, window_frames: int) -> str | None:
    """Why the configured windows differ from the ones the checkpoint was trained on, or None: a model
    shown 32 frames after learning from 8 still answers, only further from what it was measured on."""
    trained = model.trained_window_frames
    if trained is None or trained == window_frames:
        return None
    return (f"window.frames is {window_frames} but the checkpoint was trained on {trained}-frame windows: "
            f"set window.frames:={trained} (launch argument window_frames) for the accuracy it was measured at")


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
