"""Issue 14, findings 3 and 5: scene files are checked where they are read (every message names the
file), and no scene id or frame path leads outside the output folder.

Includes the property test: any mutation of a valid scene.json is either read into a consistent
`Scene` or refused with `SceneFormatError`, never another exception.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssr_core.commands.main import main as ssr_main
from ssr_core.data.scene_io import SCENE_FILE, SceneFormatError, load_scene, load_window, save_scene
from ssr_core.data.synthetic.dataset import room_scene
from ssr_core.data.synthetic.rooms import generate_room
from ssr_core.data.visibility import projected_visibility
from ssr_core.data.windows import sample_windows

FRAMES = 12


def make_scene(root: Path, scene_id: str = "synth_0000", seed: int = 3) -> Path:
    room = generate_room(scene_id, seed=seed, num_frames=FRAMES, width=160, height=120)
    scene = room_scene(room, np.zeros(0), [f"rgb/{f:06d}.png" for f in range(FRAMES)], [], root / scene_id)
    scene.visibility = projected_visibility(scene.objects, scene.poses, scene.intrinsics, scene.image_size)
    (root / scene_id / "rgb").mkdir(parents=True)
    for p in scene.image_paths:
        (root / scene_id / p).write_bytes(b"")
    save_scene(scene, root / scene_id, source="synth", visibility_rule="test: frustum")
    return root / scene_id


@pytest.fixture(scope="module")
def valid_scene(tmp_path_factory) -> dict:
    folder = make_scene(tmp_path_factory.mktemp("valid"))
    return json.loads((folder / SCENE_FILE).read_text())


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under `root` (links as their target) -> content: what 'nothing changed' compares."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_symlink():
            out[str(p.relative_to(root))] = str(p.readlink()).encode()
        elif p.is_file():
            out[str(p.relative_to(root))] = p.read_bytes()
    return out


def set_path(data: dict, path: tuple, value) -> None:
    node = data
    for key in path[:-1]:
        node = node[key]
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value


DELETE = object()

# (path in the JSON, new value, what the message must name)
MUTATIONS = [
    (("objects", 0, "size"), [-1.0, 1.0, 1.0], "objects[0].size"),
    (("objects", 0, "size"), [0.0, 1.0, 1.0], "objects[0].size"),
    (("objects", 0, "center"), [math.nan, 0.0, 0.0], "objects[0].center"),
    (("objects", 0, "center"), [1.0, 2.0], "objects[0].center"),
    (("objects", 0, "center"), ["1", 2.0, 3.0], "objects[0].center"),
    (("objects", 0, "center"), [True, 2.0, 3.0], "objects[0].center"),
    (("objects", 0, "center"), [10**400, 0, 0], "objects[0].center"),
    (("objects", 0, "rotation"), [[2, 0, 0], [0, 1, 0], [0, 0, 1]], "objects[0].rotation"),
    (("objects", 0, "id"), 7, "objects[0].id"),
    (("objects", 0, "label"), DELETE, "objects[0].label"),
    (("objects", 1, "id"), "SAME", "repeat an id"),
    (("objects",), {"a": 1}, "objects"),
    (("objects", 0), "box", "objects[0]"),
    (("poses",), [], "poses"),
    (("poses", 0, 0, 0), math.inf, "poses"),
    (("poses", 0, 0), [5, 0, 0, 0], "poses"),
    (("poses", 0), [[1, 0, 0], [0, 1, 0]], "poses"),
    (("intrinsics",), [[[1, 0, 0], [0, 1, 0], [0, 0, 1]]], "intrinsics"),
    (("intrinsics", 0, 0, 0), 0.0, "intrinsics"),
    (("image_size",), [120, -160], "image_size"),
    (("image_size",), [120.5, 160], "image_size"),
    (("image_size",), "big", "image_size"),
    (("up",), [0, 0, 0], "up"),
    (("up",), None, "up"),
    (("timestamps",), [0.0], "timestamps"),
    (("floor_polygon",), [[0, 0]], "floor_polygon"),
    (("visibility", "frames"), [], "visibility.frames"),
    (("visibility", "frames", 0), [999], "visibility.frames[0]"),
    (("visibility", "frames", 0), [-1], "visibility.frames[0]"),
    (("visibility", "frames", 0), [True], "visibility.frames[0]"),
    (("visibility",), DELETE, "visibility"),
    (("image_paths",), ["rgb/000000.png"], "image_paths"),
    (("image_paths", 0), "rgb/missing.png", "missing frame file rgb/missing.png"),
    (("image_paths", 0), "../../etc/passwd", "leads outside"),
    (("image_paths", 0), "/etc/passwd", "must be relative"),
    (("depth_paths",), ["d.png"], "depth_paths"),
    (("scene_id",), "../evil", "scene_id"),
    (("scene_id",), "/tmp/evil", "scene_id"),
    (("scene_id",), "a/b", "scene_id"),
    (("scene_id",), "..", "scene_id"),
    (("scene_id",), "", "scene_id"),
    (("scene_id",), 5, "scene_id"),
    (("format",), "ssr-scene/0", "format"),
    (("extra",), [1], "extra"),
]


def write_scene(folder: Path, data) -> Path:
    (folder / "rgb").mkdir(parents=True, exist_ok=True)
    for f in range(FRAMES):
        (folder / "rgb" / f"{f:06d}.png").write_bytes(b"")
    path = folder / SCENE_FILE
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


@pytest.mark.parametrize("path, value, needle", MUTATIONS, ids=[f"{'.'.join(map(str, m[0]))}={m[1]!r}"[:40] for m in MUTATIONS])
def test_every_scene_defect_is_a_scene_format_error_naming_the_file(valid_scene, tmp_path, path, value, needle):
    data = copy.deepcopy(valid_scene)
    if value == "SAME":
        value = data["objects"][0]["id"]
    set_path(data, path, value)
    scene_file = write_scene(tmp_path / "s", data)
    with pytest.raises(SceneFormatError) as info:
        load_scene(tmp_path / "s")
    message = str(info.value)
    assert str(scene_file) in message and needle in message and "\n" not in message


@pytest.mark.parametrize("text", ["", "{", "[1, 2]", "null", "\ud800", "[" * 100000])
def test_unparsable_scene_files(tmp_path, text):
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / SCENE_FILE).write_bytes(text.encode("utf-8", "surrogatepass"))
    with pytest.raises(SceneFormatError, match=str(folder / SCENE_FILE)):
        load_scene(folder)


def test_valid_scene_round_trips(valid_scene, tmp_path):
    write_scene(tmp_path / "s", valid_scene)
    scene = load_scene(tmp_path / "s")
    assert scene.num_frames == FRAMES and len(scene.objects) == len(valid_scene["objects"])


def test_writer_refuses_what_the_reader_would(tmp_path):
    folder = make_scene(tmp_path)
    scene = load_scene(folder)
    before = (folder / SCENE_FILE).read_bytes()
    scene.objects[0].size = np.array([-1.0, 1.0, 1.0])
    with pytest.raises(SceneFormatError, match="size"):
        save_scene(scene, folder, source="synth", visibility_rule="x")
    assert (folder / SCENE_FILE).read_bytes() == before


def test_stale_window_files_are_detected(tmp_path):
    folder = make_scene(tmp_path)
    scene = load_scene(folder)
    window = sample_windows(scene, 4, 1, np.random.default_rng(0), min_visible=0)[0]
    path = tmp_path / "w00.json"
    window.save(path)
    assert load_window(path, scene).scene_id == scene.scene_id
    data = window.to_json()
    for stale in ({**data, "frame_indices": [0, 1, FRAMES + 5]}, {**data, "scene_id": "other"}, {**data, "frame_indices": []}):
        path.write_text(json.dumps(stale))
        with pytest.raises(SceneFormatError, match="stale window file"):
            load_window(path, scene)
    for broken in ("{", json.dumps({"scene_id": "synth_0000"}), json.dumps({**data, "objects": 3})):
        path.write_text(broken)
        with pytest.raises(SceneFormatError, match=str(path)):
            load_window(path, scene)


# ---------------------------------------------------------------------------- through `ssr data build`


@pytest.fixture()
def dataset(tmp_path) -> tuple[Path, Path]:
    """Two scenes and a good dataset built from them: (scenes folder, dataset folder)."""
    scenes = tmp_path / "scenes"
    make_scene(scenes, "synth_0000", 3)
    make_scene(scenes, "synth_0001", 4)
    out = tmp_path / "out"
    assert ssr_main(["data", "build", "--scenes", str(scenes), "--out", str(out), "--frames", "4",
                     "--windows-per-scene", "1"]) == 0
    return scenes, out


@pytest.mark.parametrize(
    "path, value, needle",
    [
        (("objects", 0, "size"), [-0.5, 1.0, 1.0], "objects[0].size"),
        (("objects", 0, "center"), [math.nan, 0, 0], "objects[0].center"),
        (("extra",), {"note": "edited"}, None),  # still valid
        (("visibility",), DELETE, "visibility"),
        (("poses",), "x", "poses"),
        (("scene_id",), "../evil", "scene_id '../evil'"),
        (("scene_id",), "/tmp/ssr_evil_absolute", "scene_id '/tmp/ssr_evil_absolute'"),
        (("image_paths", 0), "../../../outside.png", "leads outside"),
    ],
)
def test_build_refuses_bad_scenes_and_keeps_the_previous_dataset(dataset, capsys, path, value, needle):
    scenes, out = dataset
    capsys.readouterr()
    scene_file = scenes / "synth_0001" / SCENE_FILE
    data = json.loads(scene_file.read_text())
    set_path(data, path, value)
    scene_file.write_text(json.dumps(data))
    before_out, before_tmp = snapshot(out), {p.name for p in out.parent.parent.iterdir()}
    status = ssr_main(["data", "build", "--scenes", str(scenes), "--out", str(out), "--frames", "4", "--windows-per-scene", "1"])
    err = capsys.readouterr().err
    if needle is None:
        assert status == 0
        return
    assert status == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(scene_file) in lines[0] and needle in lines[0], err
    assert snapshot(out) == before_out  # the previous dataset is untouched
    assert {p.name for p in out.parent.parent.iterdir()} == before_tmp  # nothing beside it either
    assert not Path("/tmp/ssr_evil_absolute").exists()


def test_build_detects_a_deleted_frame_file(dataset, capsys):
    scenes, out = dataset
    (scenes / "synth_0000" / "rgb" / "000003.png").unlink()
    before = snapshot(out)
    assert ssr_main(["data", "build", "--scenes", str(scenes), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert "000003.png" in err and str(scenes / "synth_0000" / SCENE_FILE) in err
    assert snapshot(out) == before


# ---------------------------------------------------------------------------- property test


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)


def _paths(node, prefix=()):
    """Every (path) to a value inside a JSON tree."""
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node[:3]):  # the first few elements stand for all
            yield from _paths(v, (*prefix, i))


@st.composite
def mutated_scene(draw, base: dict):
    data = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(data) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        kind = draw(st.sampled_from(["replace", "delete", "nudge", "swap-type"]))
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        leaf = path[-1]
        if kind == "delete":
            del parent[leaf]
        elif kind == "nudge" and isinstance(parent[leaf], int | float) and not isinstance(parent[leaf], bool):
            parent[leaf] = parent[leaf] * draw(st.sampled_from([-1, 0, 1e300, 1 + 1e-9])) + draw(st.integers(-2, 2))
        elif kind == "swap-type":
            parent[leaf] = draw(st.sampled_from([str(parent[leaf]), [parent[leaf]], {"v": parent[leaf]}, None]))
        else:
            parent[leaf] = draw(json_values)
    return data


_BASE: dict = {}


def _base_scene() -> dict:
    if not _BASE:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            _BASE.update(json.loads((make_scene(Path(tmp)) / SCENE_FILE).read_text()))
    return _BASE


def _check_read(folder: Path) -> None:
    try:
        scene = load_scene(folder)
    except SceneFormatError as err:
        assert str(folder / SCENE_FILE) in str(err)
        return
    n = scene.num_frames
    assert scene.poses.shape == (n, 4, 4) and scene.intrinsics.shape == (n, 3, 3)
    assert scene.visibility.shape == (n, len(scene.objects)) and len(scene.image_paths) == n
    assert all(np.all(o.size > 0) and np.all(np.isfinite(o.center)) for o in scene.objects)
    assert "/" not in scene.scene_id and scene.scene_id not in ("", ".", "..")


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_any_structural_mutation_is_read_or_refused(tmp_path, data):
    mutated = data.draw(mutated_scene(_base_scene()))
    write_scene(tmp_path / "s", json.dumps(mutated, allow_nan=True))
    _check_read(tmp_path / "s")


@settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_byte_mutation_is_read_or_refused(tmp_path, data):
    raw = bytearray(json.dumps(_base_scene()).encode())
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        i = data.draw(st.integers(0, len(raw) - 1))
        if op == "flip":
            raw[i] = data.draw(st.integers(0, 255))
        elif op == "cut":
            del raw[i:]
            if not raw:
                break
        else:
            raw[i:i] = data.draw(st.binary(min_size=1, max_size=4))
    folder = tmp_path / "s"
    write_scene(folder, "")
    (folder / SCENE_FILE).write_bytes(bytes(raw))
    _check_read(folder)


def test_coordinates_beyond_the_limit_are_refused(valid_scene, tmp_path):
    data = copy.deepcopy(valid_scene)
    data["objects"][0]["center"] = [1e200, 0.0, 0.0]
    write_scene(tmp_path / "s", data)
    with pytest.raises(SceneFormatError, match=r"objects\[0\].center holds a value beyond"):
        load_scene(tmp_path / "s")


def test_frame_folder_may_be_a_symlink_to_another_disk(tmp_path):
    folder = make_scene(tmp_path / "scenes")
    elsewhere = tmp_path / "big_disk" / "rgb"
    elsewhere.parent.mkdir()
    (folder / "rgb").rename(elsewhere)
    (folder / "rgb").symlink_to(elsewhere)
    assert load_scene(folder).num_frames == FRAMES
