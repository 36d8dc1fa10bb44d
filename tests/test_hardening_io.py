"""Issue 14, shared infrastructure: atomic writes keep the previous output on any failure, output
paths stay inside their folder, and the sample-file readers refuse every malformed line with the
documented `SampleFormatError` / `EvalInputError` (hypothesis property tests).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssr_core.data.sample_format import SampleFormatError, read_training_samples
from ssr_core.errors import InputError
from ssr_core.evaluation.evaluate import EvalInputError, EvalSample, read_samples
from ssr_core.io import (
    OutputPathError,
    StagedFiles,
    UnsafePathError,
    atomic_directory,
    atomic_open,
    atomic_write_json,
    atomic_write_text,
    check_output_file,
    confined_path,
    safe_name,
)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("failure", [RuntimeError("boom"), KeyboardInterrupt(), OSError(28, "No space left")])
def test_atomic_open_keeps_the_old_file(tmp_path, failure):
    path = tmp_path / "train.jsonl"
    path.write_text("old\n")
    with pytest.raises(type(failure)):
        with atomic_open(path) as handle:
            handle.write("new partial line")
            raise failure
    assert path.read_text() == "old\n" and leftovers(tmp_path) == []


def test_atomic_writes_replace_whole_files(tmp_path):
    path = tmp_path / "a.json"
    atomic_write_text(path, "x")
    atomic_write_json(path, {"k": [1, 2]}, indent=1)
    assert json.loads(path.read_text()) == {"k": [1, 2]} and leftovers(tmp_path) == []
    with pytest.raises(ValueError):  # NaN is not JSON: refused before anything is replaced
        atomic_write_json(path, {"k": float("nan")})
    assert json.loads(path.read_text()) == {"k": [1, 2]} and leftovers(tmp_path) == []


def test_atomic_directory_swaps_whole_or_not_at_all(tmp_path):
    target = tmp_path / "scene"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as staging:
            (staging / "new.txt").write_text("new")
            raise RuntimeError
    assert sorted(p.name for p in target.iterdir()) == ["old.txt"] and leftovers(tmp_path) == []
    with atomic_directory(target) as staging:
        (staging / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"] and leftovers(tmp_path) == []


def test_staged_files_commit_and_discard(tmp_path):
    root = tmp_path / "out"
    root.mkdir()
    (root / "train.jsonl").write_text("old")
    (root / "keep.txt").write_text("not ours")
    (root / "s1" / "windows").mkdir(parents=True)
    (root / "s1" / "windows" / "w05.json").write_text("stale")
    (root / "s1" / "rgb").mkdir()
    with pytest.raises(KeyboardInterrupt):
        with StagedFiles(root, last=("train.jsonl",)) as staged:
            staged.path("s1/windows/w00.json").write_text("w0")
            staged.path("train.jsonl").write_text("new")
            raise KeyboardInterrupt
    assert (root / "train.jsonl").read_text() == "old" and (root / "s1" / "windows" / "w05.json").exists()
    assert leftovers(root) == []
    with StagedFiles(root, last=("train.jsonl",)) as staged:
        staged.path("s1/windows/w00.json").write_text("w0")
        staged.path("train.jsonl").write_text("new")
    assert (root / "train.jsonl").read_text() == "new" and (root / "keep.txt").read_text() == "not ours"
    assert sorted(p.name for p in (root / "s1" / "windows").iterdir()) == ["w00.json"]  # replaced whole
    assert (root / "s1" / "rgb").is_dir() and leftovers(root) == []


@pytest.mark.parametrize("name", ["../evil", "..", ".", "", "/abs", "a/b", "a\\b", "nul\x00", 5, None])
def test_safe_name_refuses_paths(name):
    with pytest.raises(UnsafePathError) as info:
        safe_name(name, "scene_id")
    assert isinstance(info.value, InputError) and "scene_id" in str(info.value)


@pytest.mark.parametrize("rel", ["../x", "a/../../x", "/etc/passwd", "link/x"])
def test_confined_path_refuses_escapes(tmp_path, rel):
    root = tmp_path / "out"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)  # a symlink inside that points outside
    with pytest.raises(UnsafePathError):
        confined_path(root, rel)
    assert confined_path(root, "a/b/../c") == root / "a/b/../c"


def test_check_output_file(tmp_path):
    data = tmp_path / "qa.jsonl"
    data.write_text("{}")
    assert check_output_file(tmp_path / "new" / "deeper" / "p.jsonl", (data,)) == tmp_path / "new" / "deeper" / "p.jsonl"
    for bad in (data, tmp_path, tmp_path / "qa.jsonl" / "x"):
        with pytest.raises(OutputPathError):
            check_output_file(bad, (data,))


# ---------------------------------------------------------------------------- sample-file property tests


GOOD = {"id": "s1", "task": "vsibench", "question_type": "object_counting", "frames": ["f/0.png", "f/1.png"],
        "messages": [{"role": "user", "content": "How many chairs?"}], "answer": "3", "options": None,
        "ground_truth": 3}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=10,
)


@st.composite
def mutated_sample(draw) -> dict:
    sample = copy.deepcopy(GOOD)
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(sorted(GOOD) + ["extra"]))
        action = draw(st.sampled_from(["delete", "replace", "inner"]))
        if action == "delete":
            sample.pop(key, None)
        elif action == "inner" and isinstance(sample.get(key), list) and sample[key]:
            i = draw(st.integers(0, len(sample[key]) - 1))
            sample[key][i] = draw(json_values)
        else:
            sample[key] = draw(json_values)
    return sample


def _write_frames(root: Path) -> None:
    from PIL import Image

    (root / "f").mkdir(parents=True, exist_ok=True)
    for i in range(2):
        if not (root / "f" / f"{i}.png").exists():
            Image.new("RGB", (8, 8)).save(root / "f" / f"{i}.png")


@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sample=mutated_sample())
def test_training_reader_reads_or_refuses(tmp_path, sample):
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(GOOD | {"id": "first"}) + "\n" + json.dumps(sample, allow_nan=True) + "\n")
    try:
        rows = read_training_samples(path)
    except SampleFormatError as err:
        assert str(path) in str(err)
        return
    assert len(rows) == 2 and isinstance(rows[1]["answer"], str) and rows[1]["answer"]


@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sample=mutated_sample())
def test_eval_reader_reads_or_refuses(tmp_path, sample):
    _write_frames(tmp_path)
    path = tmp_path / "qa.jsonl"
    path.write_text(json.dumps(GOOD | {"id": "first"}) + "\n" + json.dumps(sample, allow_nan=True) + "\n")
    try:
        rows = read_samples(path)
    except (EvalInputError, SampleFormatError) as err:
        assert str(path) in str(err)
        return
    assert len(rows) == 2 and all(isinstance(r, EvalSample) for r in rows)
    assert rows[1].question_type is None or isinstance(rows[1].question_type, str)


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200))
def test_readers_on_arbitrary_bytes(tmp_path, data):
    path = tmp_path / "x.jsonl"
    path.write_bytes(data)
    for reader, errors in ((read_training_samples, (SampleFormatError,)), (read_samples, (EvalInputError, SampleFormatError))):
        try:
            reader(path)
        except errors as err:
            assert str(path) in str(err)
