"""Importers on hand-made fixtures in each source's released format, malformed rows included.

The ScanRefer path is checked geometrically against the raw ScanNet fixture, without the
project's frame code: each sample's canonical box, taken back to the world through a canonical
frame rebuilt here from the raw pose, projects onto the pixels of the object's own mesh vertices.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from plyfile import PlyData

from ssr_core.data.annotations import WindowAnnotation
from ssr_core.data.converters.scannet import convert_scannet
from ssr_core.data.importers.conversations import import_conversations
from ssr_core.data.importers.referring import ReferringImportError, import_referring
from ssr_core.data.sample_format import read_training_samples

SCAN = Path(__file__).parent / "fixtures" / "scannet" / "scans" / "scene0000_00"


# ---------------------------------------------------------------------------- conversations


@pytest.fixture
def media(tmp_path: Path) -> Path:
    root = tmp_path / "media"
    (root / "videos" / "scannet").mkdir(parents=True)
    (root / "videos" / "scannet" / "scene0001_00.mp4").write_bytes(b"\x00")
    (root / "spar" / "scene0002_00").mkdir(parents=True)
    for i in range(40):
        (root / "spar" / "scene0002_00" / f"{i:03d}.jpg").write_bytes(b"\x00")
    return root


def conversation_rows() -> list:
    video = "videos/scannet/scene0001_00.mp4"
    images = [f"spar/scene0002_00/{i:03d}.jpg" for i in range(40)]
    return [
        {"id": "a", "video": video, "question_type": "object_counting", "conversations": [
            {"from": "human", "value": "<video>\nHow many chairs are there?"}, {"from": "gpt", "value": "4"},
            {"from": "human", "value": "And tables?"}, {"from": "gpt", "value": "1"}]},
        {"id": "b", "images": images, "conversations": [
            {"from": "human", "value": "<image>\n<image>\nWhich image shows the door?"}, {"from": "gpt", "value": "B"}]},
        {"id": "c", "image": images[0], "conversations": [
            {"from": "human", "value": "<|image|>Is the lamp on?"}, {"from": "gpt", "value": "Yes."}]},
        {"id": "d", "video": video},  # no conversations
        {"id": "e", "video": "videos/missing.mp4", "conversations": [
            {"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]},
        {"id": "f", "video": "../outside.mp4", "conversations": [
            {"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]},
        {"id": "g", "video": video, "conversations": [{"from": "robot", "value": "q"}]},
        ["not", "a", "row"],
        {"id": "a", "video": video, "conversations": [  # duplicate id
            {"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]},
        {"id": "h", "video": video, "conversations": [{"from": "human", "value": "only a question"}]},
    ]


def test_conversations_import_and_skip_malformed_rows(media: Path, tmp_path: Path) -> None:
    annotations = tmp_path / "vsi590k.json"
    annotations.write_text(json.dumps(conversation_rows()))
    out = tmp_path / "out"
    card = import_conversations(annotations, media, out, "vsi590k", frames_per_window=32)
    samples = read_training_samples(out / "samples.jsonl")
    assert [s["id"] for s in samples] == ["vsi590k_a_t0", "vsi590k_a_t1", "vsi590k_b_t0", "vsi590k_c_t0"]
    first, images = samples[0], samples[2]
    assert first["messages"] == [{"role": "user", "content": "How many chairs are there?"}]
    assert first["answer"] == "4" and first["question_type"] == "object_counting" and first["task"] == "vsibench"
    assert first["frames"] == ["media/videos/scannet/scene0001_00.mp4"] and first["scene_id"] == "scene0001_00"
    assert images["messages"][0]["content"] == "Which image shows the door?"
    assert len(images["frames"]) == 32 and images["frames"][0].endswith("000.jpg") and images["frames"][-1].endswith("039.jpg")
    assert samples[3]["messages"][0]["content"] == "Is the lamp on?"
    assert all((out / p).is_file() for s in samples for p in s["frames"])  # paths resolve from the output folder
    data = json.loads((out / "data_card.json").read_text())
    assert data["num_samples"] == 4 and data["rows_read"] == 10 and data["num_skipped"] == 7
    reasons = [s["reason"] for s in data["skipped"]]
    assert any("'conversations'" in r for r in reasons) and any(r.startswith("media missing") for r in reasons)
    assert any("leaves the media root" in r for r in reasons) and any("unknown speaker" in r for r in reasons)
    assert any("not a JSON object" in r for r in reasons) and any("duplicate id" in r for r in reasons)
    assert any(r.startswith("no question followed") for r in reasons)
    assert card.scenes == {"scene0001_00", "scene0002_00"}


def test_conversations_jsonl_reports_bad_lines(media: Path, tmp_path: Path) -> None:
    rows = conversation_rows()[:1]
    annotations = tmp_path / "spar.jsonl"
    annotations.write_text(json.dumps(rows[0]) + "\n{broken\n")
    card = import_conversations(annotations, media, tmp_path / "out", "spar7m")
    assert sum(card.samples.values()) == 2
    assert card.skipped == [{"where": f"{annotations} row 2", "reason": "not a JSON object"}]


# ---------------------------------------------------------------------------- referring expressions


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("scenes")
    convert_scannet(SCAN.parents[1], "scene0000_00", out, frame_step=1)
    return out


def scanrefer_rows() -> list:
    return [
        {"scene_id": "scene0000_00", "object_id": "0", "object_name": "chair", "ann_id": "0",
         "description": "the chair in front of the table."},
        {"scene_id": "scene0000_00", "object_id": "1", "object_name": "table", "ann_id": "0",
         "description": "a wide table   next to the chair."},
        {"scene_id": "scene0000_00", "object_id": "4", "object_name": "bookshelf", "ann_id": "0",
         "description": "the tall bookshelf by the wall."},
        {"scene_id": "scene0000_00", "object_id": "2", "object_name": "floor", "ann_id": "0",
         "description": "the floor."},  # structural: not an object
        {"scene_id": "scene9999_00", "object_id": "0", "ann_id": "0", "description": "x"},  # not converted
        {"scene_id": "scene0000_00", "object_id": "zero", "ann_id": "1", "description": "x"},
        {"scene_id": "scene0000_00", "object_id": "0", "ann_id": "2"},  # no description
    ]


def alignment() -> np.ndarray:
    for line in (SCAN / "scene0000_00.txt").read_text().splitlines():
        if line.startswith("axisAlignment"):
            return np.array([float(v) for v in line.split("=")[1].split()]).reshape(4, 4)
    raise AssertionError("no axisAlignment in the fixture")


def object_vertices(object_id: int) -> np.ndarray:
    """The object's mesh vertices, aligned, straight from the fixture files."""
    vertex = PlyData.read(str(SCAN / "scene0000_00_vh_clean_2.ply"))["vertex"]
    points = np.column_stack([vertex["x"], vertex["y"], vertex["z"]]).astype(float)
    segments = np.array(json.loads((SCAN / "scene0000_00_vh_clean_2.0.010000.segs.json").read_text())["segIndices"])
    group = next(g for g in json.loads((SCAN / "scene0000_00.aggregation.json").read_text())["segGroups"]
                 if g["objectId"] == object_id)
    m = alignment()
    return points[np.isin(segments, group["segments"])] @ m[:3, :3].T + m[:3, 3]


def camera(frame: int) -> tuple[np.ndarray, np.ndarray]:
    pose = alignment() @ np.loadtxt(SCAN / "exported" / "pose" / f"{frame}.txt")
    return pose, np.loadtxt(SCAN / "exported" / "intrinsic" / "intrinsic_color.txt")[:3, :3]


def canonical_to_world(first_pose: np.ndarray) -> np.ndarray:
    """The documented canonical frame: origin at the first camera, +x its viewing direction on
    the floor, +z up, +y = z x x."""
    x = first_pose[:3, 2].copy()
    x[2] = 0.0
    x /= np.linalg.norm(x)
    z = np.array([0.0, 0.0, 1.0])
    m = np.eye(4)
    m[:3, :3] = np.column_stack([x, np.cross(z, x), z])
    m[:3, 3] = first_pose[:3, 3]
    return m


def box_corners(box: list[float]) -> np.ndarray:
    x, y, z, length, width, height, yaw = box
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=float)
    local = signs * np.array([length, width, height]) / 2
    c, s = np.cos(yaw), np.sin(yaw)
    return local @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]).T + np.array([x, y, z])


def project(points: np.ndarray, pose: np.ndarray, K: np.ndarray) -> np.ndarray:
    cam = (points - pose[:3, 3]) @ pose[:3, :3]  # world -> camera (rotation transposed)
    assert np.all(cam[:, 2] > 0), "behind the camera"
    uv = cam @ K.T
    return uv[:, :2] / uv[:, 2:]


def test_scanrefer_boxes_reproject_onto_the_objects_pixels(scenes: Path, tmp_path: Path) -> None:
    annotations = tmp_path / "ScanRefer_filtered_train.json"
    annotations.write_text(json.dumps(scanrefer_rows()))
    out = tmp_path / "out"
    card = import_referring(annotations, "scanrefer", scenes, out, frames_per_window=2, windows_per_scene=3)
    samples = read_training_samples(out / "samples.jsonl")
    assert samples and {s["question_type"] for s in samples} == {"grounding_description"}
    reasons = [s["reason"] for s in card.skipped]
    assert any("object id 2 is not an object" in r for r in reasons)
    assert any("scene scene9999_00 is not converted" in r for r in reasons)
    assert any("'zero' is not an integer" in r for r in reasons) and any("'description'" in r for r in reasons)
    assert card.to_json()["num_skipped"] == 4 + reasons.count("not visible: no window shows every target")
    scene = json.loads((scenes / "scene0000_00" / "scene.json").read_text())
    source_frames = scene["extra"]["source_frames"]
    checked = 0
    for sample in samples:
        object_id = {"chair": 0, "table": 1, "bookshelf": 4}[sample["ground_truth"][0]["label"]]
        window = WindowAnnotation.load(out / sample["window"])
        raw_frames = [source_frames[i] for i in window.frame_indices]
        assert sample["frames"] == [f"scenes/scene0000_00/{scene['image_paths'][i]}" for i in window.frame_indices]
        assert (out / sample["frames"][0]).is_file()
        first_pose, _ = camera(raw_frames[0])
        corners = box_corners(sample["ground_truth"][0]["bbox_7dof"]) @ canonical_to_world(first_pose)[:3, :3].T
        corners += canonical_to_world(first_pose)[:3, 3]
        # The README's visibility: chair and table in frames 0 and 2, the bookshelf in frame 3.
        seen_in = {0: {0, 2}, 1: {0, 2}, 4: {3}}[object_id] & set(raw_frames)
        assert seen_in, "a sample's window must show its target"
        for frame in seen_in:
            pose, K = camera(frame)
            box_uv, mesh_uv = project(corners, pose, K), project(object_vertices(object_id), pose, K)
            np.testing.assert_allclose(box_uv.min(0), mesh_uv.min(0), atol=1e-6)
            np.testing.assert_allclose(box_uv.max(0), mesh_uv.max(0), atol=1e-6)
            checked += 1
    assert checked >= 2


def test_multi3drefer_and_referit3d(scenes: Path, tmp_path: Path) -> None:
    multi = tmp_path / "multi3drefer_train.json"
    multi.write_text(json.dumps([
        {"scene_id": "scene0000_00", "object_ids": [0, 1], "object_name": "chair", "ann_id": 0,
         "description": "the chair and the table.", "eval_type": "mt"},
        {"scene_id": "scene0000_00", "object_ids": [], "ann_id": 1, "description": "a piano.", "eval_type": "zero"},
    ]))
    card = import_referring(multi, "multi3drefer", scenes, tmp_path / "m", frames_per_window=4, windows_per_scene=1)
    (sample,) = read_training_samples(tmp_path / "m" / "samples.jsonl")
    assert sample["question_type"] == "grounding_description_all" and len(sample["ground_truth"]) == 2
    assert sample["answer"].startswith("[") and "every object described here" in sample["messages"][-1]["content"]
    assert card.skipped[0]["reason"].startswith("no target")

    nr3d = tmp_path / "nr3d.csv"
    with open(nr3d, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["assignmentid", "stimulus_id", "utterance", "correct_guess", "scan_id", "target_id", "instance_type"])
        writer.writerow(["x1", "scene0000_00-chair-1-0", "the chair facing the table", "True", "scene0000_00", "0", "chair"])
        writer.writerow(["x2", "scene0000_00-table-1-1", "", "True", "scene0000_00", "1", "table"])
    card = import_referring(nr3d, "nr3d", scenes, tmp_path / "n", frames_per_window=4, windows_per_scene=1)
    assert sum(card.samples.values()) == 1
    assert card.skipped == [{"where": f"{nr3d} line 3", "reason": "missing or empty 'utterance'"}]
    bad = tmp_path / "sr3d.csv"
    bad.write_text("scan_id,utterance\nscene0000_00,x\n")
    with pytest.raises(ReferringImportError, match="missing column"):
        import_referring(bad, "sr3d", scenes, tmp_path / "s")


def test_import_commands(scenes: Path, media: Path, tmp_path: Path, capsys) -> None:
    from ssr_core.commands import main as cli

    annotations = tmp_path / "ScanRefer.json"
    annotations.write_text(json.dumps(scanrefer_rows()))
    argv = ["data", "import", "referring", "--format", "scanrefer", "--annotations", str(annotations),
            "--scenes", str(scenes), "--out", str(tmp_path / "r"), "--frames", "2"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "skipped" in out and "row 4: object id 2" in out and "scanrefer:" in out
    annotations.write_text("{not json")
    assert cli.main(argv) == 1 and "cannot read" in capsys.readouterr().err
    rows = tmp_path / "vica.json"
    rows.write_text(json.dumps(conversation_rows()[:3]))
    argv = ["data", "import", "conversations", "--annotations", str(rows), "--media", str(media),
            "--source", "vica", "--out", str(tmp_path / "c")]
    assert cli.main(argv) == 0 and "vica: 4 sample(s)" in capsys.readouterr().out
    assert cli.main(argv[:-4] + ["--source", "bad name", "--out", str(tmp_path / "c2")]) == 1
