"""What ssr_node reports on /diagnostics, and the counters its callbacks keep for it.

The node hands its parts over (`pipeline_stats`); this module turns them into the flat string
key/values of one DiagnosticStatus and picks its level. The keys are the node's documented
diagnostics interface (docs/ROS.md), read by tests and clients alike.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from ssr_ros.ask_admission import AskAdmission
from ssr_ros.inference_worker import InferenceWorker
from ssr_ros.inputs.frame_ingest import FrameIngest
from ssr_ros.inputs.window_buffer import WindowBuffer
from ssr_ros.model_loading import LoadedModel

CALLBACK_SAMPLES = 2000  # image-callback durations kept for the percentiles


class PipelineCounters:
    """Counts the node's input callbacks bump; `reject` is called from two threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.images_received = 0
        self.camera_info_received = 0
        self.too_few_frames = 0
        self.rejected: dict[str, int] = {}
        self.callback_s: deque[float] = deque(maxlen=CALLBACK_SAMPLES)

    def reject(self, kind: str) -> None:
        with self._lock:
            self.rejected[kind] = self.rejected.get(kind, 0) + 1


def _ms(samples_s: Iterable[float]) -> np.ndarray:
    return np.array(list(samples_s)) * 1e3


def _stat(values: np.ndarray, kind: str) -> str:
    if not len(values):
        return "nan"
    if kind == "median":
        return f"{np.median(values):.3f}"
    if kind == "p99":
        return f"{np.percentile(values, 99):.3f}"
    return f"{values.max():.3f}"


def pipeline_stats(
    *,
    lifecycle_state: str,
    error: str,
    model: LoadedModel | None,
    pose_source: str,
    counters: PipelineCounters,
    buffer: WindowBuffer | None,
    ingest: FrameIngest | None,
    worker: InferenceWorker | None,
    last_window_id: int,
    last_latency_s: float,
    asks: AskAdmission,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """Everything /diagnostics reports, as strings."""
    cb = _ms(counters.callback_s)
    decode = _ms(ingest.durations_s if ingest else ())
    out = {
        "lifecycle_state": lifecycle_state,
        "error": error,
        "model": model.description if model else "not loaded",
        "model_trained": str(bool(model and model.trained)).lower(),
        "model_zero_shot": str(bool(model and model.zero_shot)).lower(),
        "model_device": model.device if model else "",
        "pose_source": pose_source,
        "images_received": str(counters.images_received),
        "frames_buffered": str(buffer.received if buffer else 0),
        "frames_dropped": str(buffer.dropped if buffer else 0),
        "frames_dropped_ingest": str(ingest.dropped if ingest else 0),
        "frames_rejected": str(sum(counters.rejected.values())),
        "windows_started": str(worker.submitted if worker else 0),
        "windows_processed": str(worker.processed if worker else 0),
        "windows_skipped": str(worker.skipped if worker else 0),
        "windows_failed": str(worker.failed if worker else 0),
        "windows_too_few_frames": str(counters.too_few_frames),
        "last_window_id": str(last_window_id),
        "window_latency_s": f"{last_latency_s:.3f}",
        "callback_count": str(len(cb)),
        "callback_ms_median": _stat(cb, "median"),
        "callback_ms_p99": _stat(cb, "p99"),
        "callback_ms_max": _stat(cb, "max"),
        "decode_ms_median": _stat(decode, "median"),
        "decode_ms_p99": _stat(decode, "p99"),
        "camera_info_received": str(counters.camera_info_received),
        "asks_ok": str(asks.ok),
        "asks_failed": str(asks.failed),
    }
    out.update(extra or {})
    out.update({f"rejected_{k}": str(v) for k, v in sorted(counters.rejected.items())})
    return out


def diagnostic_status(stats: dict[str, str], name: str) -> DiagnosticStatus:
    """ERROR with a transition's failure reason, WARN when not active or degraded (rejected frames,
    no camera pose, a map file that could not be loaded or saved), else OK."""
    pose_source = stats["pose_source"]
    if stats["error"]:
        level, message = DiagnosticStatus.ERROR, stats["error"]
    elif stats["lifecycle_state"] != "active":
        level, message = DiagnosticStatus.WARN, f"node is {stats['lifecycle_state']}"
    elif (stats["frames_rejected"] != "0" or pose_source == "level_camera" or stats.get("last_pose_note")
          or stats.get("map_error")):
        level, message = DiagnosticStatus.WARN, (
            f"pose source {pose_source}; {stats['frames_rejected']} frames rejected"
            + (f"; last window: {stats['last_pose_note']}" if stats.get("last_pose_note") else "")
            + (f"; map: {stats['map_error']}" if stats.get("map_error") else ""))
    else:
        level, message = DiagnosticStatus.OK, f"pose source {pose_source}"
    return DiagnosticStatus(level=level, name=name, message=message, hardware_id=stats["model_device"],
                            values=[KeyValue(key=k, value=v) for k, v in stats.items()])


def diagnostic_array(stats: dict[str, str], name: str, stamp) -> DiagnosticArray:
    diag = DiagnosticArray(status=[diagnostic_status(stats, name)])
    diag.header.stamp = stamp
    return diag
