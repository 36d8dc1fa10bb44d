"""Regression: the shipped small SSR-3D (models/ssr3d_small) answers held-out windows as recorded.

The windows' frames are rendered again from their scene seeds (the engine is deterministic), the
model runs on the CPU in float32, and every answer must equal the one recorded in
`regression.json` when the model was packaged (training/ship_small.py). A change to prompts,
parsers, preprocessing, position ids or the renderer that silently breaks a trained model fails here.
"""

import json
import os
from pathlib import Path

import pytest

#: The shipped folder; SSR_SMALL_MODEL_DIR checks a packaged candidate before it is committed.
MODEL = Path(os.environ.get("SSR_SMALL_MODEL_DIR", Path(__file__).resolve().parents[1] / "models" / "ssr3d_small"))

pytestmark = pytest.mark.skipif(not (MODEL / "regression.json").is_file(), reason="no shipped small model")


@pytest.mark.slow
def test_shipped_small_model_reproduces_its_answers(tmp_path):
    import torch

    from ssr_core.data.synthetic.dataset import scene_seed, synthesize_scene
    from ssr_core.evaluation.evaluate import predict, read_samples
    from ssr_core.inference.generation import SSRGenerator

    reference = json.loads((MODEL / "regression.json").read_text())
    render = reference["render"]
    for scene_id, seed in render["scenes"].items():
        assert seed == scene_seed(render["dataset_seed"], int(scene_id.split("_")[-1]))
        synthesize_scene(tmp_path, scene_id, seed, render["frames"], render["width"], render["height"])
    (tmp_path / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in reference["questions"]))
    samples = read_samples(tmp_path / "qa.jsonl")
    torch.manual_seed(0)
    generator = SSRGenerator.from_checkpoint(MODEL, device="cpu")
    predictions = predict(samples, generator)
    mismatches = {k: (predictions[k], v) for k, v in reference["predictions"].items() if predictions[k] != v}
    assert not mismatches, f"{len(mismatches)} answer(s) changed (got, recorded): {list(mismatches.items())[:5]}"
