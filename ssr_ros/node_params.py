"""ssr_node's parameters: one table of specs, validation that explains every rejection, and the
typed view the node reads.

Kept free of rclpy so the rules are unit-tested directly; the node turns each spec into a
ParameterDescriptor (description, range, read_only) and calls `check_update` from its
on-set-parameters callback. Accepted values become one frozen `NodeParams` (rebuilt on each
accepted change), so every use site reads typed attributes (`params.window.frames`) that a type
checker sees, instead of string keys. config/ssr_node.yaml lists the same names with their defaults.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    description: str
    range: tuple[float, float] | None = None  # inclusive, for int and float parameters
    choices: tuple[str, ...] | None = None
    read_only: bool = False  # used only when the node starts (topics, QoS, autostart)


MODEL_KINDS = ("ssr", "base", "tiny_random", "ground_truth")
DEVICES = ("auto", "cuda", "npu", "cpu")
DTYPES = ("auto", "float32", "bfloat16", "float16")
WINDOW_MODES = ("since_last", "duration")
RELIABILITIES = ("best_effort", "reliable")

SPECS: tuple[ParamSpec, ...] = (
    ParamSpec("autostart", True, "configure and activate at start-up (plain use without a lifecycle manager)",
              read_only=True),
    ParamSpec("model.kind", "ssr", "ssr = trained checkpoint; base = downloaded Qwen2.5-VL / Qwen3-VL instruct "
              "folder, run zero-shot; tiny_random = random tiny SSR model (demo); "
              "ground_truth = ground-truth stand-in fed by model.scene_dir (demo, tests)", choices=MODEL_KINDS),
    ParamSpec("model.checkpoint", "", "SSR checkpoint directory (model.kind ssr) or base model folder (model.kind base)"),
    ParamSpec("model.vggt_path", "", "VGGT aggregator weights (model.kind ssr; empty = from the checkpoint)"),
    ParamSpec("model.scene_dir", "", "scene directory of the recording (model.kind ground_truth)"),
    ParamSpec("model.standin_latency", 0.0, "extra seconds the ground-truth stand-in sleeps per call "
              "(simulates a slow model)", range=(0.0, 60.0)),
    ParamSpec("model.device", "auto", "auto prefers cuda, then npu, then cpu", choices=DEVICES),
    ParamSpec("model.dtype", "auto", "model weights dtype (auto = bfloat16 on accelerators, float32 on cpu)",
              choices=DTYPES),
    ParamSpec("model.max_side", 518, "frames are downscaled on arrival so their longer side is at most this "
              "(pixels, INTER_AREA)", range=(32, 4096)),
    ParamSpec("model.delta", 2.5, "scene-graph neighbourhood radius (metres)", range=(0.1, 100.0)),
    ParamSpec("model.cache_windows", 4, "encoded windows kept for ~/ask", range=(1, 64)),
    ParamSpec("window.frames", 32, "frames per window, uniformly sampled", range=(1, 256)),
    ParamSpec("window.min_frames", 8, "fewer candidate frames than this: no window (reported)", range=(1, 256)),
    ParamSpec("window.mode", "since_last", "since_last = frames since the previous window; "
              "duration = the last window.duration seconds", choices=WINDOW_MODES),
    ParamSpec("window.duration", 4.0, "seconds of frames a window covers in duration mode", range=(0.1, 600.0)),
    ParamSpec("window.period", 2.0, "seconds between window starts", range=(0.05, 3600.0)),
    ParamSpec("window.buffer_frames", 256, "ring buffer capacity (frames at model size); bounds memory",
              range=(8, 4096), read_only=True),
    ParamSpec("topics.image", "image", "colour image topic (relative names follow remapping)", read_only=True),
    ParamSpec("topics.camera_info", "camera_info", "camera info topic; empty = not subscribed", read_only=True),
    ParamSpec("topics.camera_pose", "camera_pose", "geometry_msgs/PoseStamped of the camera optical frame in "
              "frames.fixed_frame, used when tf2_ros is absent; empty = not subscribed", read_only=True),
    ParamSpec("qos.image_reliability", "best_effort", "image subscription reliability (sensor-data QoS)",
              choices=RELIABILITIES, read_only=True),
    ParamSpec("qos.image_depth", 5, "image subscription history depth", range=(1, 1000), read_only=True),
    ParamSpec("frames.fixed_frame", "odom", "gravity-aligned frame the canonical frame is anchored in"),
    ParamSpec("frames.canonical_frame", "ssr_canonical", "frame of the published boxes and scene graph"),
    ParamSpec("frames.camera_frame", "", "camera optical frame; empty = the images' header.frame_id"),
    ParamSpec("frames.up_vector", [0.0, 0.0, 1.0], "up (against gravity) in frames.fixed_frame"),
    ParamSpec("frames.publish_object_tf", False, "also publish canonical -> <prefix><instance_id> per object"),
    ParamSpec("frames.object_frame_prefix", "ssr/", "prefix of the per-object frames"),
    ParamSpec("pose.max_age", 0.2, "the camera pose at a frame's stamp is interpolated between the "
              "camera_pose samples just before and after it, each at most this far away (seconds); never "
              "extrapolated", range=(0.0, 10.0)),
    ParamSpec("pose.history", 10.0, "seconds of camera_pose history kept", range=(0.1, 600.0)),
    ParamSpec("pose.tf_timeout", 0.05, "tf2 lookup timeout (seconds)", range=(0.0, 5.0)),
    ParamSpec("ask.max_question_chars", 500, "longer questions are refused", range=(1, 100000)),
    ParamSpec("ask.queue_size", 4, "questions waiting or running; more are refused", range=(1, 16),
              read_only=True),
    ParamSpec("ask.timeout", 30.0, "seconds a question may wait and run before it fails", range=(0.1, 3600.0)),
    ParamSpec("diagnostics.period", 1.0, "seconds between /diagnostics messages", range=(0.1, 60.0),
              read_only=True),
    # The persistent object map (ssr_core.mapping, docs/MAP.md); the map.* rules apply at configure
    # except map.path and map.publish_tf, read when used.
    ParamSpec("map.enabled", True, "integrate every window placed in frames.fixed_frame into a persistent "
              "object map and publish it (~/map, ~/map_markers, ~/map_scene_graph, ~/map_detections)"),
    ParamSpec("map.path", "", "map file (JSON) for ~/save_map, ~/load_map, autoload and autosave; "
              "empty = no file"),
    ParamSpec("map.autoload", True, "load map.path on configure when the file exists"),
    ParamSpec("map.autosave", True, "save the map to map.path on cleanup and shutdown when it changed"),
    ParamSpec("map.publish_tf", False, "also publish fixed_frame -> <map.frame_prefix><id> per confirmed object"),
    ParamSpec("map.frame_prefix", "ssr_map/", "prefix of the per-map-object frames"),
    ParamSpec("map.gate_iou", 0.1, "a detection may join a map object of its label with this 3-D IoU ...",
              range=(0.0, 1.0)),
    ParamSpec("map.gate_distance", 0.6, "... or with centres this close (metres)", range=(0.01, 10.0)),
    ParamSpec("map.confirm_windows", 2, "windows an object must be detected in before it is published",
              range=(1, 1000)),
    ParamSpec("map.miss_limit", 3, "windows in a row that should have shown an object and did not, after "
              "which it is removed", range=(1, 1000)),
    ParamSpec("map.merge_iou", 0.25, "same-label map objects overlapping this much (3-D IoU) are merged ...",
              range=(0.01, 1.0)),
    ParamSpec("map.merge_distance", 0.2, "... or with centres this close (metres)", range=(0.0, 10.0)),
    ParamSpec("map.max_objects", 2000, "bound on map objects, tentative ones included (eviction: tentative "
              "first, then the one seen longest ago)", range=(1, 1000000)),
    ParamSpec("map.min_score", 0.0, "detections scoring below this are not integrated", range=(0.0, 1.0)),
    ParamSpec("map.view_min_range", 0.3, "camera depth (metres) from which an object is expected to be "
              "detected (miss test)", range=(0.0, 100.0)),
    ParamSpec("map.view_max_range", 5.0, "camera depth (metres) up to which an object is expected to be "
              "detected (miss test)", range=(0.01, 1000.0)),
    ParamSpec("map.view_margin", 0.05, "share of the image size the object's centre must be inside the "
              "border (miss test)", range=(0.0, 0.49)),
    ParamSpec("map.view_min_fraction", 0.3, "share of a window's frames that must show the object's centre "
              "for a miss to count", range=(0.01, 1.0)),
)

SPEC_BY_NAME = {s.name: s for s in SPECS}


def defaults() -> dict[str, Any]:
    return {s.name: s.default for s in SPECS}


def check_value(name: str, value: Any) -> str | None:
    """Why `value` is invalid for parameter `name`, or None."""
    spec = SPEC_BY_NAME.get(name)
    if spec is None:
        return f"unknown parameter {name!r}"
    kind = type(spec.default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is list:
        if not isinstance(value, list | tuple):
            return f"{name} must be a list, got {value!r}"
    elif not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        return f"{name} must be {kind.__name__}, got {type(value).__name__} {value!r}"
    if spec.choices is not None and value not in spec.choices:
        return f"{name} must be one of {', '.join(spec.choices)}; got {value!r}"
    if spec.range is not None:
        lo, hi = spec.range
        if not (lo <= value <= hi) or (isinstance(value, float) and math.isnan(value)):
            return f"{name} must be in [{lo}, {hi}]; got {value!r}"
    if name == "frames.up_vector":
        if len(value) != 3 or not all(isinstance(v, int | float) and math.isfinite(v) for v in value):
            return f"{name} must be 3 finite numbers; got {list(value)!r}"
        if math.sqrt(sum(v * v for v in value)) < 1e-6:
            return f"{name} must not be zero"
    if name in ("frames.fixed_frame", "frames.canonical_frame") and not value.strip():
        return f"{name} must not be empty"
    if name == "topics.image" and not value.strip():
        return f"{name} must not be empty"
    return None


def check_update(current: dict[str, Any], updates: dict[str, Any]) -> str | None:
    """Why applying `updates` over `current` is invalid (single values and cross-field rules), or None."""
    for name, value in updates.items():
        reason = check_value(name, value)
        if reason is not None:
            return reason
    merged = {**current, **updates}
    if merged["window.min_frames"] > merged["window.frames"]:
        return (f"window.min_frames ({merged['window.min_frames']}) must not exceed window.frames "
                f"({merged['window.frames']})")
    if merged["window.buffer_frames"] < merged["window.frames"]:
        return (f"window.buffer_frames ({merged['window.buffer_frames']}) must be at least window.frames "
                f"({merged['window.frames']})")
    if merged["frames.fixed_frame"] == merged["frames.canonical_frame"]:
        return "frames.canonical_frame must differ from frames.fixed_frame"
    if merged["map.view_min_range"] >= merged["map.view_max_range"]:
        return (f"map.view_min_range ({merged['map.view_min_range']}) must be below map.view_max_range "
                f"({merged['map.view_max_range']})")
    if merged["map.frame_prefix"] == merged["frames.object_frame_prefix"]:
        return ("map.frame_prefix must differ from frames.object_frame_prefix (window objects and map objects "
                "would share frame names)")
    return None


def check_model_config(values: dict[str, Any]) -> str | None:
    """Configure-time rule: each model kind needs its paths (checked when loading, not when setting,
    so a kind and its path can be changed one after the other)."""
    kind = values["model.kind"]
    if kind == "ssr" and not values["model.checkpoint"]:
        return "model.kind 'ssr' needs model.checkpoint (an SSR checkpoint directory)"
    if kind == "base" and not values["model.checkpoint"]:
        return "model.kind 'base' needs model.checkpoint (a downloaded Qwen2.5-VL / Qwen3-VL instruct folder)"
    if kind == "ground_truth" and not values["model.scene_dir"]:
        return "model.kind 'ground_truth' needs model.scene_dir (the recording's scene directory)"
    return None


# ---------------------------------------------------------------- typed view
# One section per name prefix, one field per spec (a test holds the two in step).


@dataclass(frozen=True)
class ModelParams:
    kind: str
    checkpoint: str
    vggt_path: str
    scene_dir: str
    standin_latency: float
    device: str
    dtype: str
    max_side: int
    delta: float
    cache_windows: int


@dataclass(frozen=True)
class WindowParams:
    frames: int
    min_frames: int
    mode: str
    duration: float
    period: float
    buffer_frames: int


@dataclass(frozen=True)
class TopicParams:
    image: str
    camera_info: str
    camera_pose: str


@dataclass(frozen=True)
class QosParams:
    image_reliability: str
    image_depth: int


@dataclass(frozen=True)
class FrameParams:
    fixed_frame: str
    canonical_frame: str
    camera_frame: str
    up_vector: tuple[float, float, float]
    publish_object_tf: bool
    object_frame_prefix: str


@dataclass(frozen=True)
class PoseParams:
    max_age: float
    history: float
    tf_timeout: float


@dataclass(frozen=True)
class AskParams:
    max_question_chars: int
    queue_size: int
    timeout: float


@dataclass(frozen=True)
class DiagnosticsParams:
    period: float


@dataclass(frozen=True)
class MapParams:
    enabled: bool
    path: str
    autoload: bool
    autosave: bool
    publish_tf: bool
    frame_prefix: str
    gate_iou: float
    gate_distance: float
    confirm_windows: int
    miss_limit: int
    merge_iou: float
    merge_distance: float
    max_objects: int
    min_score: float
    view_min_range: float
    view_max_range: float
    view_margin: float
    view_min_fraction: float


@dataclass(frozen=True)
class NodeParams:
    autostart: bool
    model: ModelParams
    window: WindowParams
    topics: TopicParams
    qos: QosParams
    frames: FrameParams
    pose: PoseParams
    ask: AskParams
    diagnostics: DiagnosticsParams
    map: MapParams

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> NodeParams:
        """Typed view of already validated values (`check_update`); missing names raise KeyError."""
        sections: dict[str, Any] = {}
        for section in fields(cls):
            if section.name == "autostart":
                continue
            section_type = _SECTION_TYPES[section.name]
            sections[section.name] = section_type(**{
                f.name: _typed(values[f"{section.name}.{f.name}"], f.type) for f in fields(section_type)})
        return cls(autostart=bool(values["autostart"]), **sections)


_SECTION_TYPES: dict[str, type] = {
    "model": ModelParams, "window": WindowParams, "topics": TopicParams, "qos": QosParams,
    "frames": FrameParams, "pose": PoseParams, "ask": AskParams, "diagnostics": DiagnosticsParams,
    "map": MapParams,
}


def _typed(value: Any, annotation: Any) -> Any:
    """rclpy hands a double parameter set as an int literal through as int, and arrays as lists."""
    if annotation == "float":
        return float(value)
    if str(annotation).startswith("tuple"):
        return tuple(float(v) for v in value)
    return value


def param_names() -> list[str]:
    """Dotted names of NodeParams' fields, in declaration order (for the spec/dataclass check)."""
    names = ["autostart"]
    for section in fields(NodeParams):
        if section.name in _SECTION_TYPES:
            names += [f"{section.name}.{f.name}" for f in fields(_SECTION_TYPES[section.name])]
    return names
