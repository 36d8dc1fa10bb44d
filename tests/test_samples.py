"""Window sampler and sample builder: contract fields, split by scene, task mixing, determinism."""

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from ssr_core.data.annotations import WindowAnnotation
from ssr_core.data.samples import BuildConfig, build_samples, mix_counts, parse_weights, split_scenes
from ssr_core.data.scene_io import save_scene
from ssr_core.data.synthetic.dataset import room_scene
from ssr_core.data.synthetic.rooms import generate_room
from ssr_core.data.visibility import projected_visibility
from ssr_core.data.windows import window_frame_indices

NUM_SCENES, FRAMES = 5, 20


@pytest.fixture(scope="module")
def scenes_dir(tmp_path_factory) -> Path:
    """Unrendered synthetic scenes (projection visibility, placeholder frame files): fast."""
    root = tmp_path_factory.mktemp("scenes")
    for k in range(NUM_SCENES):
        room = generate_room(f"synth_{k:04d}", seed=100 + k, num_frames=FRAMES, width=160, height=120)
        scene = room_scene(room, np.zeros(0), [f"rgb/{f:06d}.png" for f in range(FRAMES)], [], root / room.scene_id)
        scene.visibility = projected_visibility(scene.objects, scene.poses, scene.intrinsics, scene.image_size)
        (scene.root / "rgb").mkdir(parents=True)
        for p in scene.image_paths:
            (scene.root / p).write_bytes(b"")
        save_scene(scene, scene.root, source="synth", visibility_rule="test: frustum")
    return root


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_window_frame_indices_uniform_and_distinct():
    rng = np.random.default_rng(0)
    windows = window_frame_indices(100, 32, 4, rng)
    assert len(windows) == 4 and len({tuple(w) for w in windows}) == 4
    for w in windows:
        assert len(w) == 32 and np.all(np.diff(w) > 0) and w[-1] - w[0] + 1 >= 50
        assert np.ptp(np.diff(w)) <= 1  # uniform spacing up to rounding
    assert [w.tolist() for w in window_frame_indices(10, 32, 4, rng)] == [list(range(10))]


def test_split_is_by_scene_and_deterministic():
    ids = [f"s{k}" for k in range(10)]
    split = split_scenes(ids, 0.2, seed=3)
    assert Counter(split.values()) == {"train": 8, "val": 2}
    assert split == split_scenes(list(reversed(ids)), 0.2, seed=3)
    assert Counter(split_scenes(ids[:2], 0.01, 0).values()) == {"train": 1, "val": 1}
    assert set(split_scenes(ids, 0.0, 0).values()) == {"train"}


def test_mixing_and_weights():
    assert mix_counts({"cogmap": 10, "grounding": 40, "vsibench": 40}, {"cogmap": 1, "grounding": 1, "vsibench": 2}) == {
        "cogmap": 10, "grounding": 10, "vsibench": 20}
    assert mix_counts({"cogmap": 10, "grounding": 0, "vsibench": 7}, {"cogmap": 1, "grounding": 1, "vsibench": 1}) == {
        "cogmap": 7, "grounding": 0, "vsibench": 7}
    assert parse_weights("cogmap=2, vsibench=0.5") == {"cogmap": 2.0, "grounding": 0.0, "vsibench": 0.5}
    for bad in ("cogmap", "nope=1", "cogmap=x", "cogmap=-1"):
        with pytest.raises(ValueError):
            parse_weights(bad)


def test_build_samples(scenes_dir, tmp_path):
    config = BuildConfig(frames_per_window=6, windows_per_scene=3, val_fraction=0.4, seed=1,
                         weights={"cogmap": 2.0, "grounding": 1.0, "vsibench": 1.0})
    card = build_samples(scenes_dir, tmp_path / "ds", config, progress=False)
    train, val = _read(tmp_path / "ds" / "train.jsonl"), _read(tmp_path / "ds" / "val.jsonl")
    assert train and val
    # Split by scene: no scene has samples in both files; the card's scene lists agree.
    train_scenes, val_scenes = {s["scene_id"] for s in train}, {s["scene_id"] for s in val}
    assert not train_scenes & val_scenes
    assert train_scenes <= set(card.scenes["train"]) and val_scenes <= set(card.scenes["val"])
    assert len(card.scenes["val"]) == 2
    keys = {"id", "scene_id", "split", "task", "question_type", "frames", "window", "messages", "answer", "options", "ground_truth"}
    for split, samples in (("train", train), ("val", val)):
        assert len({s["id"] for s in samples}) == len(samples)
        for s in samples:
            assert set(s) == keys and s["split"] == split
            assert s["task"] in ("cogmap", "grounding", "vsibench")
            assert s["messages"][-1]["role"] == "user" and isinstance(s["answer"], str)
            assert len(s["frames"]) == 6 and all((tmp_path / "ds" / f).is_file() for f in s["frames"])
            window = WindowAnnotation.load(tmp_path / "ds" / s["window"])
            assert window.scene_id == s["scene_id"] and window.num_frames == 6
            assert [f"{s['scene_id']}/rgb/{i:06d}.png" for i in window.frame_indices] == s["frames"]
        counts = Counter(s["task"] for s in samples)
        assert counts == card.samples[split]
        assert abs(counts["cogmap"] - 2 * counts["grounding"]) <= 2 and abs(counts["grounding"] - counts["vsibench"]) <= 1
    saved = json.loads((tmp_path / "ds" / "data_card.json").read_text())
    assert saved["samples"] == card.samples and "cogmap" in card.summary()
    # Same seed: same files.
    build_samples(scenes_dir, tmp_path / "again", config, progress=False)
    assert (tmp_path / "again" / "train.jsonl").read_text() == (tmp_path / "ds" / "train.jsonl").read_text()


def test_zero_weight_drops_a_task(scenes_dir, tmp_path):
    config = BuildConfig(frames_per_window=6, windows_per_scene=1, val_fraction=0.0,
                         weights={"cogmap": 0.0, "grounding": 1.0, "vsibench": 1.0})
    card = build_samples(scenes_dir, tmp_path, config, progress=False)
    assert card.samples["train"].get("cogmap", 0) == 0 and card.samples["train"]["grounding"] > 0
    assert (tmp_path / "val.jsonl").read_text() == ""


def test_cli_build_and_convert(scenes_dir, tmp_path, capsys):
    from ssr_core.commands.main import main
    from ssr_core.commands.main import main as ssr_main

    assert main(["data", "build", "--scenes", str(scenes_dir), "--out", str(tmp_path / "ds"), "--frames", "4",
                 "--windows-per-scene", "1", "--val-fraction", "0.2"]) == 0
    assert "train" in capsys.readouterr().out and (tmp_path / "ds" / "data_card.json").is_file()
    assert main(["data", "build", "--scenes", str(scenes_dir), "--out", str(tmp_path / "x"), "--weights", "cogmap=a"]) == 1
    assert main(["data", "build", "--scenes", str(tmp_path / "empty"), "--out", str(tmp_path / "y")]) == 1
    assert "error" in capsys.readouterr().err
    fixtures = Path(__file__).parent / "fixtures" / "arkitscenes"
    assert ssr_main(["data", "convert", "arkitscenes", "--root", str(fixtures), "--scene", "40753679", "--out", str(tmp_path)]) == 0
    assert ssr_main(["data", "convert", "scannet", "--root", str(fixtures), "--scene", "scene0000_00", "--out", str(tmp_path)]) == 1
