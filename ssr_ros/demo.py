"""ssr_demo: the whole ROS graph on one machine, without `launch` or `ros2 bag play`.

Renders a small synthetic recording (ssr_core.data, MuJoCo), then runs ssr_replay, ssr_node and a
client node in this process (one MultiThreadedExecutor, the same nodes and topics as
launch/demo.launch.py), asks a spatial question through ~/ask (which starts the window over the
whole replay), prints the detections, scene graph and answer, scores the detections against the
window's ground truth and writes a bird's-eye PNG with both. Without a trained checkpoint it runs
the ground-truth stand-in and says so.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ssr_core.scene.objects import GroundedObject

if TYPE_CHECKING:
    from ssr_core.data.annotations import WindowAnnotation

REPO_CONFIG = Path(__file__).resolve().parents[1] / "config" / "ssr_node.yaml"
SHIPPED_MODEL = Path("models") / "ssr3d_small"  # the small SSR-3D trained here (docs/RESULTS_SMALL.md)
WINDOW_FRAMES = 32  # without a checkpoint; a checkpoint's own num_frames otherwise
DEMO_SEED = 1  # scene seed of the demo (14 objects in view); launch/demo.launch.py renders the same scene
DEMO_FRAMES, DEMO_WIDTH, DEMO_HEIGHT = 64, 320, 240


def demo_scene_id(seed: int, frames: int, width: int, height: int) -> str:
    """Scene directory name holding every rendering argument, so a scene is reused only when it matches."""
    return f"synth_s{seed}_f{frames}_{width}x{height}"


def params_file() -> Path:
    """config/ssr_node.yaml from the source tree, else from the installed share directory."""
    if REPO_CONFIG.exists():
        return REPO_CONFIG
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory("ssr_ros")) / "config" / "ssr_node.yaml"


SEED_HELP = (f"scene seed (default {DEMO_SEED}: 14 objects in view). scripts/train_small.sh trains on "
             "synthesize_dataset(seed=0), whose scene k is rendered with seed "
             "np.random.SeedSequence([0, k]).generate_state(1)[0], and holds out the scenes of seed 1000 "
             "the same way; all of those are above 20,000,000, so any smaller seed (every plain demo seed) "
             "is a scene the model never saw")


def shipped_model() -> Path | None:
    """models/ssr3d_small from the source tree, else from the installed share directory, else None."""
    source = Path(__file__).resolve().parents[1] / SHIPPED_MODEL
    if (source / "ssr_config.json").is_file():
        return source
    try:
        from ament_index_python.packages import get_package_share_directory

        installed = Path(get_package_share_directory("ssr_ros")) / SHIPPED_MODEL
    except (ImportError, LookupError):
        return None
    return installed if (installed / "ssr_config.json").is_file() else None


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="ssr_demo", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("ssr_demo_out"), help="output directory (scene, PNG)")
    p.add_argument("--model", choices=("auto", "ground_truth", "tiny_random", "ssr"), default="auto",
                   help="auto: --checkpoint when given, else the shipped small SSR-3D (models/ssr3d_small), "
                        "else the ground-truth stand-in")
    p.add_argument("--checkpoint", default="", help="trained SSR checkpoint directory (default with --model "
                   "auto/ssr: the shipped small SSR-3D)")
    p.add_argument("--vggt", default="", help="VGGT aggregator weights (with --checkpoint)")
    p.add_argument("--device", default="auto", choices=("auto", "cuda", "npu", "cpu"))
    p.add_argument("--frames", type=int, default=DEMO_FRAMES, help="frames in the synthetic recording")
    p.add_argument("--window-frames", type=int, default=None,
                   help=f"frames per window (default: the checkpoint's num_frames, else {WINDOW_FRAMES})")
    p.add_argument("--width", type=int, default=None,
                   help=f"rendered frame width (default: the checkpoint's image size, else {DEMO_WIDTH})")
    p.add_argument("--height", type=int, default=None,
                   help=f"rendered frame height (default: the checkpoint's image size, else {DEMO_HEIGHT})")
    p.add_argument("--seed", type=int, default=DEMO_SEED, help=SEED_HELP)
    p.add_argument("--rate", type=float, default=2.0, help="replay speed factor (recording is 10 Hz)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the window and answer")
    args = p.parse_args(argv)
    try:
        model = resolve_model(args.model, args.checkpoint)
    except ValueError as e:
        p.error(str(e))
    args.model, args.checkpoint = model.kind, model.checkpoint
    args.window_frames = model.window_frames if args.window_frames is None else args.window_frames
    args.width = model.width if args.width is None else args.width
    args.height = model.height if args.height is None else args.height
    return args


@dataclass(frozen=True)
class DemoModel:
    """What the demo graph runs, and the window it shows it."""

    kind: str  # "ssr" | "ground_truth" | "tiny_random"
    checkpoint: str  # "" unless kind is "ssr"
    window_frames: int
    width: int
    height: int


def resolve_model(model: str = "auto", checkpoint: str = "") -> DemoModel:
    """The demo's model for `ssr_demo --model/--checkpoint` and demo.launch.py's `model`/`checkpoint`.

    auto: `checkpoint` when given, else the shipped small SSR-3D, else the ground-truth stand-in.
    A checkpoint was trained on windows of `num_frames` frames of `image_size` and is shown the
    same; the other kinds take any. `ValueError` when `checkpoint` is not an SSR checkpoint.
    """
    if model in ("auto", "ssr") and not checkpoint:
        checkpoint = str(shipped_model() or "")
    kind = model if model != "auto" else ("ssr" if checkpoint else "ground_truth")
    if kind != "ssr":
        return DemoModel(kind, "", WINDOW_FRAMES, DEMO_WIDTH, DEMO_HEIGHT)
    if not checkpoint:
        raise ValueError("model ssr needs a checkpoint directory (none given, no shipped model found)")
    from ssr_core.model.configuration_ssr import SSR_CONFIG_NAME, SSRConfig

    if not (Path(checkpoint) / SSR_CONFIG_NAME).is_file():
        raise ValueError(f"checkpoint {checkpoint} has no {SSR_CONFIG_NAME}: not an SSR checkpoint")
    config = SSRConfig.load(checkpoint)
    height, width = config.image_size
    return DemoModel("ssr", checkpoint, config.num_frames, width, height)


def banner(kind: str, args) -> str:
    if kind == "ssr":
        shipped = shipped_model()
        what = ("the shipped small SSR-3D (trained here on synthetic rooms; its README has the held-out scores)"
                if shipped is not None and Path(args.checkpoint).resolve() == shipped.resolve() else "trained SSR checkpoint")
        return (f"model: {what} {args.checkpoint} ({args.window_frames}-frame windows of "
                f"{args.width}x{args.height} frames)")
    if kind == "tiny_random":
        return ("model: tiny RANDOM SSR model -- the real engine with untrained weights; its answers are noise. "
                "NOT a trained model.")
    return ("model: ground-truth stand-in -- answers come from the scene's ground truth through the real "
            "prompt/parse path. NOT a trained model: these results say nothing about SSR's accuracy.")


def render_scene(args) -> Path:
    scene_id = demo_scene_id(args.seed, args.frames, args.width, args.height)
    scene_dir = args.out / "data" / scene_id
    if (scene_dir / "scene.json").exists() and (scene_dir / "recording").exists():
        print(f"[1/4] reusing synthetic scene {scene_dir}")
        return scene_dir
    from ssr_core.data.synthetic.dataset import synthesize_scene

    print(f"[1/4] rendering a synthetic scene: {args.frames} frames {args.width}x{args.height}, seed {args.seed}")
    t0 = time.monotonic()
    synthesize_scene(args.out / "data", scene_id, args.seed, args.frames, args.width, args.height, bag=True)
    print(f"      {scene_dir} (+ rosbag2 recording) in {time.monotonic() - t0:.1f}s")
    return scene_dir


def perceived_window(scene, images: int, window_frames: int, skipped: int = 0) -> WindowAnnotation:
    """Ground truth of the window ~/ask starts: `window_frames` frames uniform over every replayed
    image, less the first `skipped` that ssr_node left out for want of a camera pose (the canonical
    frame is then the first kept frame's, as in the published boxes)."""
    from ssr_core.data.windows import annotate_window
    from ssr_ros.inputs.window_buffer import uniform_indices

    return annotate_window(scene, uniform_indices(min(images, scene.num_frames), window_frames)[skipped:])


def demo_question(window: WindowAnnotation) -> tuple[str, str]:
    """A VSI-Bench question for the window ~/ask will start and its true answer; room size does not
    depend on which frames the window holds."""
    from ssr_core.data.questions import generate_qa
    from ssr_core.language.prompts import question_text, vsibench_question
    from ssr_ros.ground_truth_source import QA_SEED

    items = [i for i in generate_qa(window, np.random.default_rng(QA_SEED)) if i.task == "vsibench" and not i.options]
    preferred = ("room_size_estimation", "object_counting")
    items.sort(key=lambda i: preferred.index(i.question_type) if i.question_type in preferred else len(preferred))
    if not items:
        return question_text("object_counting", label="chair"), "(not generated for this window)"
    return vsibench_question(items[0].messages[-1]["content"]), items[0].answer


def print_results(det, graph, answer, question: str, expected: str) -> None:
    print(f"\nDetections7DoF (window {det.window_id}, {det.num_frames} frames, frame {det.header.frame_id!r}, "
          f"latency {det.latency:.2f}s):")
    print(f"  {'id':<18}{'label':<16}{'x':>7}{'y':>7}{'z':>7}{'l':>6}{'w':>6}{'h':>6}{'yaw':>7}{'score':>7}")
    for b in det.boxes:
        print(f"  {b.instance_id:<18}{b.label:<16}{b.x:7.2f}{b.y:7.2f}{b.z:7.2f}{b.length:6.2f}{b.width:6.2f}"
              f"{b.height:6.2f}{b.yaw:7.2f}{b.score:7.2f}")
    if graph is not None:
        print(f"SceneGraph: {len(graph.instance_ids)} objects, {len(graph.triplets)} triplets "
              f"(anchor1, anchor2 -> target: target cell; residual)")
        for t in graph.triplets:
            flag = "  INCONSISTENT" if t.inconsistent else ""
            print(f"  {t.anchor1}, {t.anchor2} -> {t.target}: {[int(v) for v in t.target_cell]}; {t.residual:.2f}{flag}")
    print(f"\nQ: {question}")
    if answer.success:
        print(f"A: {answer.answer}  (window {answer.window_id}, {answer.latency:.2f}s; ground truth: {expected})")
    else:
        print(f"A: failed: {answer.error}")


def detected_objects(det) -> list[GroundedObject]:
    """The published boxes as the objects the evaluation code scores."""
    return [GroundedObject(b.label, np.array([b.x, b.y, b.z, b.length, b.width, b.height, b.yaw])) for b in det.boxes]


def truth_objects(window: WindowAnnotation) -> tuple[list[str], list[GroundedObject]]:
    """Ids and boxes of the objects seen in the window: the only ones a model could have found."""
    seen = window.visible_objects()
    return [o.instance_id for o in seen], [GroundedObject(o.label, o.box) for o in seen]


def scoring_lines(det, window: WindowAnnotation) -> list[str]:
    """Each published box beside the ground-truth object it was matched to (3D IoU, centre error),
    then the window's detect-all scores, so a run shows how well the model did, not just what it said."""
    from ssr_core.evaluation.metrics import score_detections

    ids, truth = truth_objects(window)
    matches, report = score_detections(detected_objects(det), truth)
    by_box = {m.prediction: m for m in matches}
    lines = [f"\nAgainst the ground truth (objects in view of the window, canonical frame {det.header.frame_id!r}):",
             f"  {'id':<18}{'ground truth':<18}{'IoU':>6}{'centre err (m)':>16}"]
    for k, b in enumerate(det.boxes):
        m = by_box.get(k)
        matched = f"{ids[m.truth]:<18}{m.iou:6.2f}{m.center_error:16.2f}" if m else f"{'- (no match)':<18}"
        lines.append(f"  {b.instance_id:<18}{matched}")
    error = f"{report.median_center_error:.2f} m" if report.n_matched else "- (nothing matched)"
    lines.append(f"  {report.n} objects in view, {report.n_matched} matched, Acc@0.25 {report.acc_025:.2f}, "
                 f"Acc@0.5 {report.acc_050:.2f}, median centre error {error}")
    return lines


def wait_until_ingested(ssr, images: int, timeout: float) -> None:
    """Until ssr_node has decoded (buffered, rejected or dropped) every replayed image, so the window
    ~/ask starts holds all of them; a frame lost in transport only costs `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = ssr.stats()
        if int(s["frames_buffered"]) + int(s["frames_rejected"]) + int(s["frames_dropped_ingest"]) >= images:
            return
        time.sleep(0.05)


def run(args) -> int:
    import rclpy
    from rclpy.client import Client
    from rclpy.executors import MultiThreadedExecutor
    from ssr_msgs.msg import Detections7DoF, SceneGraph
    from ssr_msgs.srv import AskSpatial

    from ssr_core.data import rosbag_io
    from ssr_core.data.scene_io import load_scene
    from ssr_ros.outputs.bev_plot import write_bev_png
    from ssr_ros.replay_node import ReplayNode
    from ssr_ros.ssr_node import SSRNode, executor_threads

    kind = args.model
    scene_dir = render_scene(args)
    print(f"[2/4] {banner(kind, args)}")
    overrides = {
        "model.kind": kind, "model.scene_dir": str(scene_dir.resolve()), "model.checkpoint": args.checkpoint,
        "model.vggt_path": args.vggt, "model.device": args.device, "window.frames": args.window_frames,
        "window.min_frames": min(args.window_frames, args.frames),  # a checkpoint window may be under the yaml 8
        "window.period": 3600.0,  # no periodic window: ~/ask starts one over the whole replay
        "ask.timeout": args.timeout,
    }
    node_args = ["--ros-args", "--params-file", str(params_file())]
    for name, value in overrides.items():
        node_args += ["-p", f"{name}:={value if value != '' else chr(34) * 2}"]
    node_args += ["-r", f"image:={rosbag_io.IMAGE_TOPIC}", "-r", f"camera_info:={rosbag_io.INFO_TOPIC}",
                  "-r", f"camera_pose:={rosbag_io.POSE_TOPIC}"]
    sys.setswitchinterval(0.001)
    rclpy.init()
    ssr = SSRNode(cli_args=node_args)
    replay = ReplayNode(cli_args=["--ros-args", "-p", f"bag:={scene_dir / 'recording'}", "-p", f"rate:={args.rate}",
                                  "-p", "wait_for_subscribers:=30.0", "-p", "at_end:=idle"])
    client = rclpy.create_node("ssr_demo")
    detections: list[Detections7DoF] = []
    graphs: list[SceneGraph] = []
    client.create_subscription(Detections7DoF, "ssr_node/detections", detections.append, 10)
    client.create_subscription(SceneGraph, "ssr_node/scene_graph", graphs.append, 10)
    executor = MultiThreadedExecutor(num_threads=executor_threads(ssr) + 2)
    for node in (ssr, replay, client):
        executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    ssr.autostart()
    try:
        print(f"[3/4] replaying {scene_dir / 'recording'} at x{args.rate} into ssr_node")
        if not replay.finished.wait(args.timeout):
            print("replay did not finish in time", file=sys.stderr)
            return 1
        images = replay.published_by_topic.get(rosbag_io.IMAGE_TOPIC, 0)
        wait_until_ingested(ssr, images, timeout=10.0)
        scene = load_scene(scene_dir)
        question, expected = demo_question(perceived_window(scene, images, args.window_frames))
        print("[4/4] asking through ~/ask (starts the window over all replayed frames)")
        ask: Client = client.create_client(AskSpatial, "ssr_node/ask")
        if not ask.wait_for_service(timeout_sec=10):
            print("~/ask is not available", file=sys.stderr)
            return 1
        future = ask.call_async(AskSpatial.Request(question=question))
        deadline = time.monotonic() + args.timeout + 5
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.05)
        answer = future.result()
        if answer is None or not answer.window_id:
            print(f"no window was perceived: {answer.error if answer else 'no reply'}", file=sys.stderr)
            return 1
        while time.monotonic() < deadline and not any(d.window_id == answer.window_id for d in detections):
            time.sleep(0.05)
        det = next((d for d in detections if d.window_id == answer.window_id), None)
        if det is None:
            print("the window's detections did not arrive", file=sys.stderr)
            return 1
        graph = next((g for g in graphs if g.window_id == answer.window_id), None)
        print_results(det, graph, answer, question, expected)
        window = perceived_window(scene, images, args.window_frames, det.frames_without_pose)
        print("\n".join(scoring_lines(det, window)))
        png = write_bev_png(det, graph, args.out / "bev.png",
                            f"SSR demo ({kind}): window {det.window_id}, canonical frame", truth_objects(window)[1])
        print(f"\nbird's-eye view: {png}\n{banner(kind, args)}")
        return 0 if answer.success or kind != "ground_truth" else 1
    finally:
        replay.stop()
        executor.shutdown(timeout_sec=5)
        for node in (ssr, replay, client):
            node.destroy_node()
        rclpy.try_shutdown()


def main(argv=None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")  # a demo has no business on the LAN
    t0 = time.monotonic()
    code = run(args)
    print(f"ssr_demo finished in {time.monotonic() - t0:.1f}s")
    sys.exit(code)


if __name__ == "__main__":
    main()
