"""The demo graph through the `ssr_demo` entry point (what launch/demo.launch.py starts, for machines
without `launch`), plus static checks of the launch files and the RViz config."""

from __future__ import annotations

import py_compile
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from ros_helpers import REPO, domain_id, ros_env

from ssr_core.data.annotations import SceneObject, WindowAnnotation
from ssr_core.scene.objects import GroundedObject
from ssr_ros import demo
from ssr_ros.outputs.bev_plot import PREDICTED_LABEL, TRUTH_LABEL, bev_figure, write_bev_png

DEMO_LIMIT_S = 180.0  # the demo must finish in under 3 minutes on 2 cores


def published(*boxes: tuple[str, str, float]) -> SimpleNamespace:
    """A Detections7DoF stand-in: (instance id, label, x) unit cubes on the floor."""
    return SimpleNamespace(
        window_id=1, header=SimpleNamespace(frame_id="ssr_canonical"),
        boxes=[SimpleNamespace(instance_id=i, label=label, x=x, y=0.0, z=0.5, length=1.0, width=1.0, height=1.0,
                               yaw=0.0, score=1.0) for i, label, x in boxes])


def cube(instance_id: str, label: str, x: float, seen: bool = True) -> SceneObject:
    return SceneObject(instance_id, label, np.array([x, 0.0, 0.5, 1.0, 1.0, 1.0, 0.0]), 0 if seen else -1)


def window_of(*objects: SceneObject) -> WindowAnnotation:
    return WindowAnnotation("s", np.arange(4), list(objects), np.zeros((0, 2)))


def test_scoring_matches_published_boxes_to_the_objects_in_view():
    window = window_of(cube("chair_3", "chair", 0.0), cube("table_1", "table", 5.0), cube("sofa_0", "sofa", 9.0),
                       cube("lamp_2", "lamp", 20.0, seen=False))
    det = published(("chair_0", "chair", 0.5), ("table_0", "table", 5.0), ("bed_0", "bed", 9.0),
                    ("lamp_0", "lamp", 20.0))
    lines = demo.scoring_lines(det, window)
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:-1]}
    assert rows["chair_0"] == ["chair_3", "0.33", "0.50"] and rows["table_0"] == ["table_1", "1.00", "0.00"]
    assert rows["bed_0"] == ["-", "(no", "match)"]  # on the sofa, but labels differ
    assert rows["lamp_0"] == ["-", "(no", "match)"]  # the lamp is never seen in the window
    assert lines[-1].strip() == ("3 objects in view, 2 matched, Acc@0.25 0.67, Acc@0.5 0.33, "
                       "median centre error 0.25 m")  # the missed sofa counts


def test_bev_draws_the_ground_truth_dashed_under_solid_predictions(tmp_path):
    import matplotlib.pyplot as plt

    truth = [GroundedObject("chair", np.array([0.0, 0.0, 0.5, 1.0, 1.0, 1.0, 0.0])),
             GroundedObject("table", np.array([3.0, 1.0, 0.5, 2.0, 1.0, 1.0, 0.3]))]
    fig = bev_figure(published(("chair_0", "chair", 0.2)), None, ground_truth=truth)
    ax = fig.axes[0]
    dashed = [ln for ln in ax.lines if ln.get_linestyle() == "--"]
    solid = [ln for ln in ax.lines if ln.get_linestyle() == "-"]
    assert len(dashed) == 2 and len(solid) == 1
    assert all(ln.get_zorder() < solid[0].get_zorder() for ln in dashed)
    assert len(ax.patches) == 2  # the prediction filled, and the first camera's arrow: no truth is filled
    assert {PREDICTED_LABEL, TRUTH_LABEL} <= {t.get_text() for t in ax.get_legend().get_texts()}
    plt.close(fig)
    png = write_bev_png(published(("chair_0", "chair", 0.2)), None, tmp_path / "bev.png")  # without ground truth
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_checkpoint_sets_the_window_and_frame_size(tmp_path):
    pytest.importorskip("transformers")
    from ssr_core.model.configuration_ssr import SSRConfig

    SSRConfig(variant="2d", num_frames=8, image_size=(112, 168)).save(tmp_path)
    args = demo.parse_args(["--checkpoint", str(tmp_path)])
    assert (args.window_frames, args.width, args.height, args.frames) == (8, 168, 112, demo.DEMO_FRAMES)
    args = demo.parse_args(["--checkpoint", str(tmp_path), "--window-frames", "4", "--width", "224"])
    assert (args.window_frames, args.width, args.height) == (4, 224, 112)  # explicit values win
    for kind in ("ground_truth", "tiny_random"):
        args = demo.parse_args(["--model", kind, "--checkpoint", str(tmp_path)])
        assert (args.window_frames, args.width, args.height) == (demo.WINDOW_FRAMES, demo.DEMO_WIDTH, demo.DEMO_HEIGHT)
    shipped = demo.shipped_model()
    assert shipped is not None  # models/ssr3d_small is part of the repository
    for default in ([], ["--model", "ssr"]):  # without --checkpoint: the shipped small SSR-3D, at its geometry
        args = demo.parse_args(default)
        assert Path(args.checkpoint) == shipped and args.model == "ssr"
        assert (args.window_frames, args.width, args.height) == (8, 168, 112)
    with pytest.raises(SystemExit):
        demo.parse_args(["--checkpoint", str(tmp_path / "missing")])


def test_demo_seeds_are_scenes_training_never_saw():
    from ssr_core.data.synthetic.dataset import scene_seed

    seen = [scene_seed(0, k) for k in range(200)] + [scene_seed(1000, k) for k in range(30)]  # train_small.sh
    assert min(seen) > 20_000_000 and "20,000,000" in demo.SEED_HELP


@pytest.mark.parametrize("name", ["ssr.launch.py", "demo.launch.py"])
def test_launch_files_compile(name, tmp_path):
    py_compile.compile(str(REPO / "launch" / name), cfile=str(tmp_path / "x.pyc"), doraise=True)


def test_rviz_config_shows_markers_tf_and_image():
    displays = yaml.safe_load((REPO / "rviz" / "ssr.rviz").read_text())["Visualization Manager"]["Displays"]
    by_class = {d["Class"].split("/")[-1]: d for d in displays}
    marker_topics = {d["Topic"]["Value"]: d for d in displays if d["Class"].endswith("MarkerArray")}
    assert set(marker_topics) == {"/ssr_node/markers", "/ssr_node/map_markers"}
    assert marker_topics["/ssr_node/map_markers"]["Topic"]["Durability Policy"] == "Transient Local"  # latched map
    assert by_class["Image"]["Topic"]["Value"] == "/camera/image_raw" and "TF" in by_class


def run_demo(out: Path, *args: str) -> str:
    """`ssr_demo --out OUT ARGS` as a process; its stdout once it finished in time and succeeded."""
    pytest.importorskip("ssr_msgs.msg", reason="needs the built ssr_msgs interface package (scripts/setup.sh)")
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "ssr_ros.demo", "--out", str(out), *args],
                          env=ros_env(domain_id("demo")), cwd=REPO, capture_output=True, text=True,
                          timeout=DEMO_LIMIT_S + 30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert time.monotonic() - t0 < DEMO_LIMIT_S
    return proc.stdout


@pytest.mark.ros
@pytest.mark.slow
def test_ssr_demo_end_to_end(tmp_path: Path):
    out = run_demo(tmp_path / "out", "--model", "ground_truth")
    assert "ground-truth stand-in" in out and "NOT a trained model" in out
    assert "Detections7DoF (window 1, 32 frames" in out and "SceneGraph:" in out
    answer = next(line for line in out.splitlines() if line.startswith("A: "))
    value, truth = answer[3:].split("  (")[0], answer.split("ground truth: ")[1].rstrip(")")
    assert value == truth, answer  # the stand-in answers the generated question with its ground truth
    assert "Against the ground truth" in out
    assert "14 objects in view, 14 matched, Acc@0.25 1.00, Acc@0.5 1.00" in out  # it publishes the truth
    png = tmp_path / "out" / "bev.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.ros
@pytest.mark.slow
def test_ssr_demo_runs_the_shipped_small_model_by_default(tmp_path: Path):
    """`bash scripts/demo.sh` with no arguments: the trained small SSR-3D on a held-out scene, its boxes
    scored against the ground truth, an answer and the bird's-eye PNG, within the demo's time limit."""
    pytest.importorskip("torch")
    out = run_demo(tmp_path / "out", "--device", "cpu")
    assert "model: the shipped small SSR-3D" in out and "NOT a trained model" not in out
    assert "rendering a synthetic scene: 64 frames 168x112, seed 1" in out and "Detections7DoF (window 1, 8 frames" in out
    assert "objects in view," in out and any(line.startswith("A: ") for line in out.splitlines())
    assert (tmp_path / "out" / "bev.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.ros
@pytest.mark.slow
def test_ssr_demo_runs_a_checkpoint_on_its_own_window_and_frame_size(tmp_path: Path):
    pytest.importorskip("torch")
    from ssr_core.model.tiny import build_tiny_ssr, build_tiny_tokenizer

    checkpoint = tmp_path / "tiny"
    build_tiny_ssr(variant="2d", num_frames=8, image_size=(56, 84)).save_pretrained(checkpoint)
    build_tiny_tokenizer().save_pretrained(checkpoint)
    out = run_demo(tmp_path / "out", "--checkpoint", str(checkpoint), "--device", "cpu", "--frames", "16")
    assert "rendering a synthetic scene: 16 frames 84x56" in out and "Detections7DoF (window 1, 8 frames" in out
    assert "objects in view," in out  # scored against the truth whatever the untrained model said
    assert (tmp_path / "out" / "bev.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
