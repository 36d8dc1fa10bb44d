"""Model loading from node parameters (no DDS): the ground-truth stand-in's frame matching and
question lookup, configure-time errors, and the tiny random model through the real engine."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from ros_helpers import synth_scene

from ssr_core.data.rosbag_io import START_NS
from ssr_ros.demo import shipped_model
from ssr_ros.inputs.window_buffer import uniform_indices
from ssr_ros.model_loading import load_model, release_accelerator_memory, window_length_warning
from ssr_ros.node_params import NodeParams, defaults


def _values(**kw) -> NodeParams:
    return NodeParams.from_values({**defaults(), **kw})


def test_ground_truth_model_matches_frames_by_stamp_and_answers_generated_questions():
    model = load_model(_values(**{"model.kind": "ground_truth", "model.scene_dir": str(synth_scene())}))
    assert not model.trained and "ground-truth" in model.description
    source = model.ground_truth
    stamps = [START_NS + i * 100_000_000 + 3_000_000 for i in (4, 5, 9)]  # 3 ms jitter
    assert source.frame_indices(stamps).tolist() == [4, 5, 9]
    indices = uniform_indices(source.scene.num_frames, 16)
    model.before_window([START_NS + int(i) * 100_000_000 for i in indices])
    perception = model.reasoner.perceive(np.zeros((16, 24, 32, 3), np.uint8), window_id=1)
    assert len(perception.objects) >= 3 and not perception.failures
    answer = model.reasoner.ask("How many unicorns are in this room?", (), 1)  # not a generated question
    assert not answer.success and "no true answer" in answer.error and answer.answer == ""
    room = "What is the size of this room (in square meters)? If multiple rooms are shown, estimate the size of the combined space."
    answer = model.reasoner.ask(room, (), 1)
    assert answer.success and answer.value is not None and answer.value > 1.0


def test_ground_truth_model_needs_a_scene_and_its_recording(tmp_path):
    with pytest.raises(ValueError, match="scene.json"):
        load_model(_values(**{"model.kind": "ground_truth", "model.scene_dir": str(tmp_path)}))
    shutil.copy(synth_scene() / "scene.json", tmp_path)
    with pytest.raises(FileNotFoundError, match="recording"):
        load_model(_values(**{"model.kind": "ground_truth", "model.scene_dir": str(tmp_path)}))


@pytest.mark.slow
def test_tiny_random_model_runs_the_real_engine():
    pytest.importorskip("transformers", reason="the SSR engine needs transformers")
    model = load_model(_values(**{"model.kind": "tiny_random", "model.device": "cpu", "window.frames": 4}))
    assert not model.trained and model.device == "cpu"
    perception = model.reasoner.perceive(np.zeros((4, 48, 64, 3), np.uint8), window_id=1)
    assert perception.window_id == 1  # random weights: the answers are noise, recorded as failures
    assert model.reasoner.ask("How many chairs?", (), 1).window_id == 1


def test_a_checkpoint_warns_when_its_windows_are_not_the_ones_it_learnt_from():
    pytest.importorskip("transformers", reason="the SSR engine needs transformers")
    values = {"model.kind": "ssr", "model.checkpoint": str(shipped_model()), "model.device": "cpu"}
    model = load_model(_values(**values))
    assert model.trained and model.trained_window_frames == 8  # the shipped small SSR-3D
    assert window_length_warning(model, 8) is None
    warning = window_length_warning(model, 32)  # the parameter file's default
    assert warning is not None and "trained on 8-frame windows" in warning and "window.frames:=8" in warning
    stand_in = load_model(_values(**{"model.kind": "ground_truth", "model.scene_dir": str(synth_scene())}))
    assert window_length_warning(stand_in, 32) is None  # the stand-in takes any window


def test_accelerator_caches_are_released_on_cuda_and_npu(monkeypatch):
    import sys
    from types import SimpleNamespace

    emptied = []

    def device(name: str, available: bool) -> SimpleNamespace:
        return SimpleNamespace(is_available=lambda: available, empty_cache=lambda: emptied.append(name))

    monkeypatch.setitem(sys.modules, "torch", SimpleNamespace(cuda=device("cuda", False), npu=device("npu", True)))
    release_accelerator_memory()
    assert emptied == ["npu"]
    monkeypatch.setitem(sys.modules, "torch", SimpleNamespace(cuda=device("cuda", True)))  # no torch_npu
    release_accelerator_memory()
    assert emptied == ["npu", "cuda"]


def test_production_loading_does_not_need_the_data_engine():
    """The ground-truth source (rosbags, QA generation) is imported only for model.kind ground_truth."""
    import subprocess
    import sys

    code = ("import sys, ssr_ros.model_loading; "
            "print(sorted(m for m in sys.modules if m.startswith(('rosbags', 'ssr_core.data.questions', "
            "'ssr_ros.ground_truth_source'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
