"""The node's small parts without DDS: ~/ask admission and the /diagnostics status level."""

from __future__ import annotations

import pytest

pytest.importorskip("diagnostic_msgs.msg", reason="needs ROS 2 message packages")

from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402

from ssr_ros.ask_admission import AskAdmission, question_refusal  # noqa: E402
from ssr_ros.diagnostics import PipelineCounters, diagnostic_status, pipeline_stats  # noqa: E402


def test_admission_bounds_calls_in_service_and_frees_slots_on_exit():
    asks = AskAdmission(capacity=1)
    with asks.admit() as first:
        with asks.admit() as second:
            assert first and not second
    with asks.admit() as again:  # the slot came back, also after an exception inside
        assert again
    with pytest.raises(RuntimeError), asks.admit():
        raise RuntimeError("model error")
    with asks.admit() as after_error:
        assert after_error
    asks.record(True)
    asks.record(False)
    assert (asks.ok, asks.failed) == (1, 1) and "ask.queue_size" in asks.full_reason()


def test_question_refusals():
    assert question_refusal("  ", 10) == "empty question"
    assert question_refusal("x" * 11, 10).startswith("question too long: 11 characters")
    assert question_refusal("How many?", 10) is None


def _stats(**extra: str) -> dict[str, str]:
    stats = pipeline_stats(lifecycle_state="active", error="", model=None, pose_source="camera_pose",
                           counters=PipelineCounters(), buffer=None, ingest=None, worker=None, last_window_id=0,
                           last_latency_s=float("nan"), asks=AskAdmission(1))
    return {**stats, **extra}


@pytest.mark.parametrize("extra, level, fragment", [
    ({}, DiagnosticStatus.OK, "pose source camera_pose"),
    ({"error": "configure failed: x"}, DiagnosticStatus.ERROR, "configure failed"),
    ({"lifecycle_state": "inactive"}, DiagnosticStatus.WARN, "node is inactive"),
    ({"pose_source": "level_camera"}, DiagnosticStatus.WARN, "pose source level_camera"),
    ({"frames_rejected": "3"}, DiagnosticStatus.WARN, "3 frames rejected"),
    ({"last_pose_note": "no camera pose at the first 2 frame(s)"}, DiagnosticStatus.WARN, "first 2 frame(s)"),
])
def test_diagnostic_levels(extra, level, fragment):
    status = diagnostic_status(_stats(**extra), "ssr_node: pipeline")
    assert status.level == level and fragment in status.message
    assert {kv.key for kv in status.values} >= {"lifecycle_state", "pose_source", "asks_ok"}
