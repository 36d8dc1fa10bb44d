"""Data mixture: weights, caps, stages, scene-level splits and the VSI-Bench scene guard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ssr_core.commands import main as cli
from ssr_core.data.mixture import EvaluationGuard, MixtureConfigError, build_mixture, load_mixture_config

ROOT = Path(__file__).resolve().parents[1]


def sample(sid: str, scene: str, task: str = "vsibench", frames: list[str] | None = None) -> dict:
    return {"id": sid, "task": task, "question_type": "object_counting" if task == "vsibench" else "grounding_unique",
            "messages": [{"role": "user", "content": "q"}], "answer": "1", "options": None, "ground_truth": "1",
            "frames": frames or [f"{scene}/rgb/000000.jpg"], "scene_id": scene}


def write_samples(folder: Path, samples: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "samples.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in samples))
    return path


@pytest.fixture
def mixture(tmp_path: Path) -> dict:
    a = [sample(f"a{i}", f"scene02{10 + i % 5:02d}_00", "vsibench" if i % 2 else "grounding") for i in range(20)]
    a += [sample("leak_scan", "scene0011_00"),  # the evaluation scan itself
          sample("leak_room", "scene0011_02"),  # another scan of the same room
          sample("leak_video", "clip", frames=["media/videos/scannet/scene0011_00.mp4"]),
          sample("leak_arkit", "arkitscenes_41069025")]
    b = [sample(f"b{i}", f"room{i}") for i in range(4)]
    questions = tmp_path / "VSI-Bench" / "test.jsonl"
    questions.parent.mkdir()
    questions.write_text("".join(json.dumps({"id": i, "dataset": d, "scene_name": s}) + "\n"
                                 for i, (d, s) in enumerate([("scannet", "scene0011_00"), ("arkitscenes", "41069025")])))
    config = {
        "name": "test",
        "seed": 3,
        "val_fraction": 0.25,
        "evaluation": {"questions": [str(questions)], "scenes": ["extra_scene"]},
        "sources": [
            {"name": "alpha", "stage": 1, "samples": str(write_samples(tmp_path / "a", a)), "weight": 0.5},
            {"name": "beta", "stage": 2, "samples": str(write_samples(tmp_path / "b", b)), "weight": 2.0, "cap": 5},
            {"name": "gamma", "stage": 2, "samples": str(tmp_path / "absent.jsonl"), "required": False},
        ],
    }
    path = tmp_path / "mixture.yaml"
    path.write_text(yaml.safe_dump(config))
    return {"config": path, "out": tmp_path / "mix"}


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_mixture_build(mixture: dict) -> None:
    card = build_mixture(load_mixture_config(mixture["config"]), mixture["out"])
    alpha, beta, gamma = card.sources["alpha"], card.sources["beta"], card.sources["gamma"]
    assert alpha.read == 24 and alpha.refused_evaluation == 4 and gamma.status == "missing"
    assert sum(alpha.kept["train"].values()) + sum(alpha.kept["val"].values()) == 10  # weight 0.5 of 20
    assert sum(beta.kept["train"].values()) + sum(beta.kept["val"].values()) == 5  # 2 x 4 = 8, capped at 5
    stage1 = mixture["out"] / "stage1"
    train, val = read(stage1 / "train.jsonl"), read(stage1 / "val.jsonl")
    guard = EvaluationGuard(["scene0011_00", "41069025"])
    assert all(guard.reason(s) is None and not s["id"].split("/")[1].startswith("leak") for s in train + val)
    assert not {s["scene_id"] for s in train} & {s["scene_id"] for s in val}  # split by scene
    assert all(s["id"].startswith("alpha/") and s["frames"][0].startswith("sources/alpha/") for s in train)
    assert (stage1 / train[0]["frames"][0]).parent.parent.parent.resolve() == (mixture["out"].parent / "a").resolve()
    stage2 = read(mixture["out"] / "stage2" / "train.jsonl") + read(mixture["out"] / "stage2" / "val.jsonl")
    assert len({s["id"] for s in stage2}) == 5  # repeats get their own ids
    data_card = json.loads((stage1 / "data_card.json").read_text())
    assert data_card["refused_evaluation"] == 4 and data_card["evaluation_scenes_held_out"] == 3
    assert sum(data_card["per_task"]["train"].values()) == len(train)
    assert set(data_card["sources"]["alpha"]["train"]) <= {"vsibench", "grounding"}
    assert "shows evaluation scene" in data_card["sources"]["alpha"]["refused_examples"][0]


def test_mix_command_and_bad_configs(mixture: dict, tmp_path: Path, capsys) -> None:
    assert cli.main(["data", "mix", "--config", str(mixture["config"]), "--out", str(mixture["out"])]) == 0
    assert "alpha" in capsys.readouterr().out
    config = yaml.safe_load(mixture["config"].read_text())
    for change, message in [
        ({"colour": 1}, "unknown key"),
        ({"sources": [dict(config["sources"][0], stage=3)]}, "'stage' must be 1 or 2"),
        ({"sources": [dict(config["sources"][0], samples=str(tmp_path / "nope.jsonl"))]}, "does not exist"),
        ({"sources": [dict(config["sources"][0], weight=-1)]}, "'weight'"),
    ]:
        bad = tmp_path / "bad.yaml"
        bad.write_text(yaml.safe_dump({**config, **change}))
        assert cli.main(["data", "mix", "--config", str(bad), "--out", str(tmp_path / "o")]) == 1
        assert message in capsys.readouterr().err


def test_shipped_7b_mixture_config_names_both_stages() -> None:
    config = load_mixture_config(ROOT / "training" / "configs" / "data" / "mixture_7b.yaml")
    stages = {s.name: s.stage for s in config.sources}
    assert stages["spar7m"] == stages["scanrefer"] == stages["multi3drefer"] == 1
    assert stages["vsi590k"] == stages["vica"] == stages["vlm3r"] == stages["ssr_scenes"] == 2
    assert config.evaluation_questions  # VSI-Bench scenes are held out
    with pytest.raises(MixtureConfigError):
        build_mixture(config, ROOT / "nonexistent_out")  # no local copy of the data here
