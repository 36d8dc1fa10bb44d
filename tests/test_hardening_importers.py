"""Issue 14, findings 4 and 5 for the importers: a scene id from an annotation file never names a
path outside the output folder, and a failed import keeps the previous samples file.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ssr_core.data.converters.scannet import convert_scannet
from ssr_core.data.importers import referring
from ssr_core.data.importers.referring import import_referring

SCAN_ROOT = Path(__file__).parent / "fixtures" / "scannet"


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("scenes")
    convert_scannet(SCAN_ROOT, "scene0000_00", out, frame_step=1)
    return out


def row(scene_id: str) -> dict:
    return {"scene_id": scene_id, "object_id": "0", "object_name": "chair", "ann_id": "0", "description": "the chair."}


@pytest.mark.parametrize("scene_id", ["../../scene0000_00", "/abs/scene0000_00", "a/../scene0000_00"])
def test_scene_ids_from_annotations_cannot_leave_out_dir(scenes, tmp_path, scene_id):
    # a real scene reachable through the traversal: the old code would have written windows beside it
    nested = tmp_path / "x" / "y"
    nested.mkdir(parents=True)
    shutil.copytree(scenes / "scene0000_00", tmp_path / "scene0000_00")
    annotations = tmp_path / "refs.json"
    annotations.write_text(json.dumps([row("scene0000_00"), row(scene_id)]))
    out = nested / "out"
    before = sorted(p for p in tmp_path.rglob("*"))
    card = import_referring(annotations, "scanrefer", nested, out, frames_per_window=2, windows_per_scene=1)
    assert any("scene id" in skip["reason"] and "row 2" in skip["where"] for skip in card.skipped), card.skipped
    after = sorted(p for p in tmp_path.rglob("*") if p != out and not p.is_relative_to(out))
    assert after == before  # nothing written outside the output folder


def test_failed_import_keeps_the_previous_samples(scenes, tmp_path, monkeypatch):
    annotations = tmp_path / "refs.json"
    annotations.write_text(json.dumps([row("scene0000_00")]))
    out = tmp_path / "out"
    import_referring(annotations, "scanrefer", scenes, out, frames_per_window=2, windows_per_scene=1)
    samples = out / referring.SAMPLES_FILE
    before = samples.read_bytes()
    assert before

    def broken(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(referring, "sample_windows", broken)
    with pytest.raises(KeyboardInterrupt):
        import_referring(annotations, "scanrefer", scenes, out, frames_per_window=2, windows_per_scene=1)
    assert samples.read_bytes() == before
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


# ---------------------------------------------------------------------------- mixtures and vsibench-run


def test_failed_mixture_build_keeps_the_previous_stage(tmp_path, monkeypatch):
    from test_mixture import mixture as mixture_fixture  # noqa: F401

    from ssr_core.data import mixture as mixture_module

    config_fn = getattr(mixture_fixture, "__wrapped__", mixture_fixture)
    setup = config_fn(tmp_path)
    config = mixture_module.load_mixture_config(setup["config"])
    mixture_module.build_mixture(config, setup["out"])
    stage = setup["out"] / "stage1"
    before = {p.name: p.read_bytes() for p in stage.iterdir() if p.is_file()}

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(mixture_module, "_write", broken)
    with pytest.raises(OSError):
        mixture_module.build_mixture(config, setup["out"])
    assert {p.name: p.read_bytes() for p in stage.iterdir() if p.is_file()} == before
    assert not [p for p in setup["out"].iterdir() if p.name.startswith(".")]


def test_vsibench_run_checks_report_and_out_before_running(tmp_path, capsys):
    from test_vsibench_benchmark import argv

    from ssr_core.commands import main as cli
    from ssr_core.commands.benchmark import run_vsibench

    questions = tmp_path / "test.jsonl"
    questions.write_text("{}\n")
    bench = {"questions": questions, "root": tmp_path, "out": tmp_path / "pred.jsonl"}

    def never(_):
        raise AssertionError("the model was loaded although an output path was bad")

    for extra, needle in [(("--report", str(questions)), "also an input"), (("--report", str(tmp_path)), "is a folder")]:
        args = cli.build_parser().parse_args(argv(bench, *extra))
        assert run_vsibench(args, never) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], err
    args = cli.build_parser().parse_args(argv(dict(bench, out=questions)))
    assert run_vsibench(args, never) == 1 and "also an input" in capsys.readouterr().err
    assert questions.read_text() == "{}\n"
