"""Issue 14, finding 11 and the one error path: every entry point maps documented errors to one
line and exit 1, Ctrl-C to 130 (writes in flight leave earlier output intact), a closed stdout
pipe to a quiet exit; `ssr scene-graph` refuses coordinates whose squares would overflow.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ssr_core.commands.main import main as ssr_main
from ssr_core.errors import (
    EXIT_BAD_INPUT,
    EXIT_BROKEN_PIPE,
    EXIT_INTERRUPTED,
    EXIT_MODEL_FAILURE,
    InputError,
    ModelFailure,
    run_entry_point,
)
from ssr_core.scene.scene_graph import build_scene_graph

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def boxes_file(tmp_path: Path, big: float) -> Path:
    objects = [{"id": f"o{i}", "label": "x", "box": [x, y, 0.0, 1.0, 1.0, 1.0, 0.0]}
               for i, (x, y) in enumerate([(big, 0.0), (0.0, big), (0.0, 0.0), (1.0, 2.0)])]
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps({"objects": objects}))
    return path


@pytest.mark.parametrize("big", [1e154, 1e200, 1.7e308, -1e155, 1e7])
def test_scene_graph_huge_coordinates(tmp_path, capsys, big):
    path = boxes_file(tmp_path, big)
    assert ssr_main(["scene-graph", str(path)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and "objects[0].box" in err[0]
    with pytest.raises(ValueError, match="within"):
        build_scene_graph(["a", "b", "c"], [[big, 0, 0], [0, 1, 0], [1, 1, 0]])


def test_scene_graph_large_but_sane_coordinates(tmp_path, capsys):
    assert ssr_main(["scene-graph", str(boxes_file(tmp_path, 9e5))]) == 0
    assert "triplets" in capsys.readouterr().out


@pytest.mark.parametrize(
    "raised, status, words",
    [
        (KeyboardInterrupt(), EXIT_INTERRUPTED, "prog: interrupted"),
        (InputError("bad.json line 3: nope\nsecond line"), EXIT_BAD_INPUT, "prog: error: bad.json line 3: nope second line"),
        (FileNotFoundError(2, "No such file or directory", "x.yaml"), EXIT_BAD_INPUT, "x.yaml"),
        (ModelFailure("loss is nan"), EXIT_MODEL_FAILURE, "prog: model failure: loss is nan"),
    ],
)
def test_run_entry_point_statuses(capsys, raised, status, words):
    def body() -> int:
        raise raised

    assert run_entry_point("prog", body) == status
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err


def test_run_entry_point_lets_bugs_through():
    def body() -> int:
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        run_entry_point("prog", body)


def test_ssr_handler_interrupted(monkeypatch, tmp_path, capsys):
    import ssr_core.commands.main as cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "run_scene_graph", interrupted)
    parser = cli.build_parser()
    from ssr_core.commands.common import run_parser

    assert run_parser(parser, ["scene-graph", str(boxes_file(tmp_path, 1.0))]) == EXIT_INTERRUPTED
    assert capsys.readouterr().err.strip() == "ssr scene-graph: interrupted"


def test_training_interrupted(monkeypatch, capsys):
    import training.train as train_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "load_config", interrupted)
    assert train_module.main(["--config", "any.yaml"]) == EXIT_INTERRUPTED
    assert capsys.readouterr().err.strip() == "training.train: interrupted"


def test_closed_stdout_pipe_is_quiet(tmp_path):
    """`ssr scene-graph boxes.json | head -c 0`: no BrokenPipeError traceback."""
    objects = [{"id": f"o{i}", "label": "x", "box": [i % 7, i // 7, 0.0, 0.5, 0.5, 0.5, 0.0]} for i in range(60)]
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps({"objects": objects}))
    proc = subprocess.Popen([sys.executable, "-m", "ssr_core.commands", "scene-graph", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, cwd=REPO)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader goes away before the command prints
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == EXIT_BROKEN_PIPE
    assert err == "", err


@pytest.mark.slow  # renders scenes with MuJoCo in a subprocess
def test_ctrl_c_during_synth_keeps_finished_scenes(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ssr_core.commands", "data", "synth", "--out", str(out), "--scenes", "40",
         "--frames", "16", "--width", "64", "--height", "48"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, cwd=REPO,
    )
    deadline = time.monotonic() + 120
    while not (out / "synth_0001" / "scene.json").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_INTERRUPTED, err
    assert err.decode().strip().splitlines()[-1] == "ssr data synth: interrupted"
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # the scene in flight left nothing
    from ssr_core.data.scene_io import load_scene

    done = sorted(p.name for p in out.iterdir())
    assert done[:2] == ["synth_0000", "synth_0001"]
    for name in done:  # every scene that exists is complete
        assert load_scene(out / name).num_frames == 16
