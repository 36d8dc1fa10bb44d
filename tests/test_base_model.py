"""The "base" model kind: a plain (untrained) Qwen2.5-VL instruct folder served zero-shot with the
SSR-2D prompts, through the generator, the reasoner, `ssr eval run` and the node's model loading;
everything it says is labelled zero-shot, and the two kinds refuse each other's folders."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_evaluation import dataset  # noqa: F401  (fixture)
from test_vsibench_benchmark import bench  # noqa: F401  (fixture)

from ssr_core.commands import evaluate as eval_command
from ssr_core.inference.generation import ModelKindError, SSRGenerator
from ssr_core.inference.reasoner import SceneReasoner
from ssr_core.model.tiny import build_tiny_ssr, build_tiny_tokenizer, save_tiny_base_model

pytestmark = pytest.mark.usefixtures("torch_single_thread")

FRAMES = np.random.default_rng(0).integers(0, 256, (4, 48, 64, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    return save_tiny_base_model(tmp_path_factory.mktemp("qwen_base"))


def test_base_folder_is_served_zero_shot_through_generator_and_reasoner(base_dir, caplog):
    with caplog.at_level("WARNING"):
        generator = SSRGenerator.from_checkpoint(base_dir, device="cpu", kind="base")
    assert generator.zero_shot and generator.model.ssr_config.variant == "2d"
    assert any("zero-shot" in r.getMessage() for r in caplog.records)
    reasoner = SceneReasoner(generator)
    perception = reasoner.perceive(FRAMES, window_id=1)
    assert perception.zero_shot and "encode" not in {f.stage for f in perception.failures}
    answer = reasoner.ask("How many chairs are in the room?", (), 1)
    assert answer.zero_shot and answer.window_id == 1
    failed = reasoner.ask("", (), 1)  # even a refusal says which kind of model it came from
    assert not failed.success and failed.zero_shot


def test_kinds_refuse_each_others_folders(base_dir, tmp_path):
    with pytest.raises(ModelKindError, match="plain base model"):
        SSRGenerator.from_checkpoint(base_dir, device="cpu", kind="ssr")
    trained = tmp_path / "ssr"
    build_tiny_ssr(variant="2d", num_frames=2).save_pretrained(trained)
    build_tiny_tokenizer().save_pretrained(trained)
    with pytest.raises(ModelKindError, match="is an SSR checkpoint"):
        SSRGenerator.from_checkpoint(trained, device="cpu", kind="base")
    generator = SSRGenerator.from_checkpoint(trained, device="cpu")
    assert not generator.zero_shot and not SceneReasoner(generator).ask("Why?", (), 1).zero_shot


@pytest.mark.slow
def test_eval_run_labels_a_base_model_zero_shot(base_dir, dataset, tmp_path, capsys):  # noqa: F811
    qa, _, _ = dataset
    out = tmp_path / "pred.jsonl"
    common = ["--checkpoint", str(base_dir), "--data", str(qa), "--device", "cpu", "--limit", "2",
              "--max-new-tokens", "2"]
    assert eval_command.main(["run", *common, "--out", str(out)]) == 1
    assert "model kind 'base'" in capsys.readouterr().err
    assert eval_command.main(["run", *common, "--out", str(out), "--model-kind", "base"]) == 0
    printed = capsys.readouterr()
    assert "ZERO-SHOT" in printed.err
    assert "ZERO-SHOT" in printed.out  # the score report says so too
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2 and all(r["zero_shot"] is True for r in rows)


def test_node_model_kind_base_loads_a_downloaded_folder(base_dir):
    pytest.importorskip("rosbags", reason="ssr_ros.model_loading reads recordings with rosbags")
    from ssr_ros.model_loading import load_model
    from ssr_ros.node_params import NodeParams, check_model_config, defaults

    values = {**defaults(), "model.kind": "base", "model.checkpoint": str(base_dir), "model.device": "cpu"}
    assert check_model_config(values) is None
    model = load_model(NodeParams.from_values(values))
    assert model.zero_shot and not model.trained and "zero-shot" in model.description
    model.reasoner.perceive(FRAMES, window_id=1)
    assert model.reasoner.ask("How big is the room?", (), 1).zero_shot
    from ssr_ros.ask_admission import AskAdmission
    from ssr_ros.diagnostics import PipelineCounters, pipeline_stats

    stats = pipeline_stats(lifecycle_state="active", error="", model=model, pose_source="camera_pose",
                           counters=PipelineCounters(), buffer=None, ingest=None, worker=None, last_window_id=1,
                           last_latency_s=0.0, asks=AskAdmission(1))
    assert stats["model_zero_shot"] == "true" and stats["model_trained"] == "false"  # /diagnostics says so
    empty = {**values, "model.checkpoint": ""}
    assert "needs model.checkpoint" in str(check_model_config(empty))
    with pytest.raises(ValueError, match="needs model.checkpoint"):
        load_model(NodeParams.from_values(empty))


def test_a_downloaded_qwen3_vl_folder_is_a_base_model_too(tmp_path):
    from ssr_core.model.configuration_ssr import QWEN3_VL

    folder = save_tiny_base_model(tmp_path, family=QWEN3_VL)
    generator = SSRGenerator.from_checkpoint(folder, device="cpu", kind="base")
    assert generator.zero_shot and generator.model.family == QWEN3_VL
    generator.model.ssr_config.image_size = (64, 64)  # the tiny model; real Qwen3-VL folders use (384, 512)
    reasoner = SceneReasoner(generator)
    assert reasoner.perceive(FRAMES, window_id=1).zero_shot
    assert reasoner.ask("How many chairs are in the room?", (), 1).zero_shot


@pytest.mark.slow
def test_vsibench_runner_takes_the_base_kind(base_dir, bench, tmp_path, capsys):  # noqa: F811
    from test_vsibench_benchmark import argv

    from ssr_core.commands import main as cli
    from ssr_core.commands.benchmark import run_vsibench

    args = argv(bench, "--model-kind", "base", "--device", "cpu", "--limit-videos", "1", "--max-new-tokens", "2",
                "--report", str(tmp_path / "report.json"))
    args[args.index("--checkpoint") + 1] = str(base_dir)
    assert run_vsibench(cli.build_parser().parse_args(args)) == 0
    printed = capsys.readouterr()
    assert "ZERO-SHOT" in printed.err and printed.out.startswith("ZERO-SHOT")
    assert json.loads((tmp_path / "report.json").read_text())["zero_shot"] is True
