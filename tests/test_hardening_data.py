"""Issue 14, findings 4 and 7: `ssr data synth` / `ssr data build` refuse bad arguments with one
line (exit 1) and never leave a half-written scene or dataset behind.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ssr_core.commands.main import main as ssr_main
from ssr_core.data.synthetic import dataset as synth_dataset


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def one_error_line(capsys) -> str:
    """The one error line on stderr (progress bars aside), and no traceback."""
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if "error" in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == lines[0]
    return lines[0]


# ---------------------------------------------------------------------------- finding 7: synth


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--width", "100000"], "100000x240"),
        (["--height", "8"], "320x8"),
        (["--width", "-5"], "-5x240"),
        (["--seed", "-1"], "seed"),
        (["--seed", str(2**32)], "seed"),
        (["--scenes", "20000"], "20000"),
    ],
)
def test_synth_refuses_arguments_it_cannot_render(tmp_path, capsys, args, needle):
    status = ssr_main(["data", "synth", "--out", str(tmp_path / "out"), "--frames", "2", *args])
    assert status == 1
    assert needle in one_error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_synth_out_is_a_file(tmp_path, capsys):
    target = tmp_path / "out"
    target.write_text("precious")
    assert ssr_main(["data", "synth", "--out", str(target), "--frames", "2"]) == 1
    assert str(target) in one_error_line(capsys)
    assert target.read_text() == "precious"


@pytest.mark.parametrize("out", ["file/sub", "/proc/ssr_cannot_write_here"])
def test_synth_unwritable_out(tmp_path, capsys, out):
    (tmp_path / "file").write_text("x")
    target = out if out.startswith("/") else str(tmp_path / out)
    assert ssr_main(["data", "synth", "--out", target, "--frames", "2", "--width", "32", "--height", "24"]) == 1
    line = one_error_line(capsys)
    assert "ssr data synth: error:" in line


def test_failed_image_write_is_an_error_and_keeps_the_previous_scene(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    argv = ["data", "synth", "--out", str(out), "--frames", "2", "--width", "32", "--height", "24"]
    assert ssr_main(argv) == 0
    before = digest(out)
    capsys.readouterr()
    calls = {"n": 0}
    real = synth_dataset.cv2.imwrite

    def failing(path, image, flags=None):
        calls["n"] += 1
        return False if calls["n"] == 3 else real(path, image, flags)

    monkeypatch.setattr(synth_dataset.cv2, "imwrite", failing)
    assert ssr_main(argv) == 1
    line = one_error_line(capsys)
    assert "could not write" in line and ".png" in line
    assert digest(out) == before  # the earlier scene is intact, no staging folder left
    assert [p.name for p in out.iterdir()] == ["synth_0000"]


# ---------------------------------------------------------------------------- findings 4 and 7: build


@pytest.fixture()
def built(tmp_path) -> tuple[Path, Path, list[str]]:
    """(scenes folder, dataset folder, the build arguments) with a good dataset already built."""
    from test_hardening_scenes import make_scene

    scenes = tmp_path / "scenes"
    for k in range(3):
        make_scene(scenes, f"synth_{k:04d}", 3 + k)
    out = tmp_path / "out"
    argv = ["data", "build", "--scenes", str(scenes), "--out", str(out), "--frames", "4", "--windows-per-scene", "3"]
    assert ssr_main(argv) == 0
    return scenes, out, argv


def test_samples_point_at_their_windows(built):
    """Every sample's window file exists, belongs to its scene and holds the sample's frames."""
    import json

    _, out, _ = built
    for split in ("train", "val"):
        for line in (out / f"{split}.jsonl").read_text().splitlines():
            sample = json.loads(line)
            window = json.loads((out / sample["window"]).read_text())
            assert window["scene_id"] == sample["scene_id"]
            assert [f"{sample['scene_id']}/rgb/{i:06d}.png" for i in window["frame_indices"]] == sample["frames"]


@pytest.mark.parametrize("failure", [RuntimeError("boom"), KeyboardInterrupt(), OSError(28, "No space left on device")])
@pytest.mark.parametrize("where", ["windows", "jsonl"])
def test_failed_rebuild_keeps_the_previous_dataset(built, capsys, monkeypatch, failure, where):
    from ssr_core.data import samples

    scenes, out, argv = built
    before = digest(out)
    capsys.readouterr()
    if where == "windows":  # fail while the second scene's windows are being written
        real = samples._window_samples
        calls = {"n": 0}

        def flaky(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 2:
                raise failure
            return real(*args, **kwargs)

        monkeypatch.setattr(samples, "_window_samples", flaky)
    else:  # fail in the middle of writing train.jsonl (the old code truncated it)
        real_dumps = samples.json.dumps
        count = {"n": 0}

        def dumps(obj, *args, **kwargs):
            count["n"] += 1
            if count["n"] == 3:
                raise failure
            return real_dumps(obj, *args, **kwargs)

        monkeypatch.setattr(samples.json, "dumps", dumps)
    new_argv = [*argv[:-1], "1", "--seed", "7"]  # a different dataset: fewer windows, other samples
    if isinstance(failure, RuntimeError):
        with pytest.raises(RuntimeError):  # a bug keeps its traceback
            ssr_main(new_argv)
    else:
        assert ssr_main(new_argv) == (130 if isinstance(failure, KeyboardInterrupt) else 1)
        err = capsys.readouterr().err.strip().splitlines()
        assert "interrupted" in err[-1] or "No space left" in err[-1]
    assert digest(out) == before  # train.jsonl, val.jsonl, data card and every window untouched
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_rebuild_leaves_no_stale_window_files(built):
    _, out, argv = built
    assert len(list((out / "synth_0000" / "windows").glob("w*.json"))) > 1
    assert ssr_main([*argv[:-1], "1"]) == 0
    assert sorted(p.name for p in (out / "synth_0000" / "windows").iterdir()) == ["w00.json"]
    test_samples_point_at_their_windows((None, out, None))


def test_building_into_the_scenes_folder_keeps_the_frames(built):
    scenes, _, _ = built
    frames = digest(scenes / "synth_0001" / "rgb")
    for _ in range(2):
        assert ssr_main(["data", "build", "--scenes", str(scenes), "--out", str(scenes), "--frames", "4"]) == 0
    assert digest(scenes / "synth_0001" / "rgb") == frames and not (scenes / "synth_0001" / "rgb").is_symlink()
    test_samples_point_at_their_windows((None, scenes, None))


@pytest.mark.parametrize(
    "weights, needle",
    [
        ("cogmap=inf", "cogmap=inf"),
        ("cogmap=nan", "cogmap=nan"),
        ("cogmap=-1", "cogmap=-1"),
        ("cogmap=1e999", "cogmap=1e999"),
        ("", "keeps nothing"),
        ("cogmap=0,grounding=0", "keeps nothing"),
        ("poetry=1", "poetry=1"),
        ("cogmap", "'cogmap'"),
    ],
)
def test_bad_task_mix_is_refused_and_keeps_the_dataset(built, capsys, weights, needle):
    _, out, argv = built
    before = digest(out)
    capsys.readouterr()
    assert ssr_main([*argv, "--weights", weights]) == 1
    assert needle in one_error_line(capsys)
    assert digest(out) == before


@pytest.mark.parametrize("args, needle", [(["--seed", "-1"], "--seed"), (["--val-fraction", "1.5"], "--val-fraction")])
def test_bad_build_arguments(built, capsys, args, needle):
    _, out, argv = built
    before = digest(out)
    capsys.readouterr()
    assert ssr_main([*argv, *args]) == 1
    assert needle in one_error_line(capsys)
    assert digest(out) == before


def test_a_build_without_training_samples_is_refused(built):
    from ssr_core.data.samples import BuildConfig, BuildError, build_samples

    scenes, out, _ = built
    before = digest(out)
    with pytest.raises(BuildError, match="no training sample"):
        build_samples(scenes, out, BuildConfig(frames_per_window=4, min_visible_objects=10_000), progress=False)
    assert digest(out) == before


def test_huge_windows_per_scene_is_capped(built, capsys):
    import numpy as np

    from ssr_core.data.windows import window_frame_indices

    windows = window_frame_indices(12, 4, 10**9, np.random.default_rng(0))  # returns at once
    assert 1 <= len(windows) <= sum(12 - span + 1 for span in range(6, 13))
    assert len({tuple(w) for w in windows}) == len(windows)
    _, out, argv = built
    assert ssr_main([*argv[:-1], "10000"]) == 0
    with pytest.raises(SystemExit) as info:  # argparse: beyond the documented maximum, usage error
        ssr_main([*argv[:-1], "10001"])
    assert info.value.code == 2
    assert "at most 10000" in capsys.readouterr().err


def test_rebuild_after_the_scenes_moved_relinks_the_frames(built, tmp_path):
    scenes, out, argv = built
    moved = tmp_path / "moved_scenes"
    scenes.rename(moved)
    assert ssr_main(["data", "build", "--scenes", str(moved), "--out", str(out), "--frames", "4"]) == 0
    assert (out / "synth_0000" / "rgb").resolve() == (moved / "synth_0000" / "rgb").resolve()
    test_samples_point_at_their_windows((None, out, None))
