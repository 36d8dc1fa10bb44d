"""Window buffer, frame ingest and inference worker: sampling, bounded memory, drop/skip accounting."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from ssr_ros.inference_worker import InferenceWorker, QueueFull
from ssr_ros.inputs.frame_ingest import FrameIngest
from ssr_ros.inputs.window_buffer import Frame, TooFewFrames, Window, WindowBuffer, uniform_indices


def _until(predicate, what: str, timeout: float = 10.0) -> None:
    """Wait for another thread's progress (no fixed sleeps: the CI machine is small and shared)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.005)


def _frame(i: int, shape=(4, 6, 3)) -> Frame:
    return Frame(stamp_ns=i * 100_000_000, image=np.full(shape, i % 256, np.uint8), frame_id="cam")


def test_uniform_indices():
    assert uniform_indices(3, 32).tolist() == [0, 1, 2]
    assert uniform_indices(10, 4).tolist() == [0, 3, 6, 9]
    idx = uniform_indices(1000, 32)
    assert len(set(idx.tolist())) == 32 and idx[0] == 0 and idx[-1] == 999


def test_since_last_samples_new_frames_only():
    buf = WindowBuffer(capacity=64, window_frames=4, min_frames=2)
    for i in range(10):
        buf.add(_frame(i))
    w = buf.take_window()
    assert isinstance(w, Window)
    assert w.frames.shape == (4, 4, 6, 3) and w.candidates == 10
    assert [s // 100_000_000 for s in w.stamps_ns] == [0, 3, 6, 9]
    assert w.first_stamp_ns == 0 and w.frame_id == "cam"
    buf.add(_frame(10))
    assert buf.take_window() == TooFewFrames(available=1, required=2)
    buf.add(_frame(11))  # the frame of the refused window is still a candidate
    w2 = buf.take_window()
    assert [s // 100_000_000 for s in w2.stamps_ns] == [10, 11]


def test_duration_mode_uses_the_last_seconds():
    buf = WindowBuffer(capacity=64, window_frames=32, min_frames=1, mode="duration", duration_s=0.5)
    for i in range(20):
        buf.add(_frame(i))
    w = buf.take_window()
    assert [s // 100_000_000 for s in w.stamps_ns] == [14, 15, 16, 17, 18, 19]


def test_ring_is_bounded_and_counts_uncovered_evictions():
    buf = WindowBuffer(capacity=8, window_frames=4, min_frames=1)
    for i in range(8):
        buf.add(_frame(i))
    buf.take_window()  # covers frames 0..7
    for i in range(8, 28):
        buf.add(_frame(i))
    assert len(buf._ring) == 8
    assert buf.received == 28
    assert buf.dropped == 12  # 8 covered frames were evicted silently, then 12 never-covered ones
    assert buf.pending() == 8
    buf.clear()  # deactivation: nothing stale joins the next window, nothing counted as dropped
    assert buf.pending() == 0 and isinstance(buf.take_window(), TooFewFrames) and buf.dropped == 12


def test_resolution_change_keeps_the_newest_shape():
    buf = WindowBuffer(capacity=16, window_frames=8, min_frames=1)
    buf.add(_frame(0, shape=(8, 8, 3)))
    buf.add(_frame(1))
    assert buf.take_window().frames.shape == (1, 4, 6, 3)


def test_invalid_configuration():
    with pytest.raises(ValueError):
        WindowBuffer(capacity=8, window_frames=4, min_frames=5)
    with pytest.raises(ValueError):
        WindowBuffer(capacity=2, window_frames=4, min_frames=1)
    with pytest.raises(ValueError):
        WindowBuffer(capacity=8, window_frames=4, min_frames=1, mode="sometimes")


def test_worker_newest_window_wins_and_every_window_is_counted():
    release, started = threading.Event(), []
    seen = []

    def process(w):
        started.append(w)
        release.wait(10)
        seen.append(w)

    worker = InferenceWorker(process, max_asks=2)
    worker.start()
    worker.submit_window(1)
    _until(lambda: started == [1], "window 1 did not start")
    assert worker.submit_window(2) is False
    assert worker.submit_window(3) is True  # replaced 2
    release.set()
    _until(lambda: not worker.busy, "worker still busy")
    worker.stop(10)
    assert seen == [1, 3]
    assert worker.submitted == worker.processed + worker.skipped == 3 and worker.skipped == 1


def test_worker_asks_first_bounded_and_errors_reported():
    gate = threading.Event()
    order, errors, started = [], [], []

    def process(w):
        started.append(w)
        gate.wait(10)
        order.append(("window", w))
        if w == "bad":
            raise RuntimeError("boom")

    worker = InferenceWorker(process, max_asks=2, on_error=lambda what, exc: errors.append(str(exc)))
    worker.start()
    worker.submit_window("bad")
    _until(lambda: started == ["bad"], "window 'bad' did not start")
    worker.submit_window("w2")
    a1 = worker.submit_ask(lambda: order.append(("ask", 1)) or 1)
    a2 = worker.submit_ask(lambda: 1 / 0)
    with pytest.raises(QueueFull):
        worker.submit_ask(lambda: 3)
    gate.set()
    assert a1.result(10) == 1
    with pytest.raises(ZeroDivisionError):
        a2.result(10)
    _until(lambda: not worker.busy, "worker still busy")
    worker.stop(10)
    assert order == [("window", "bad"), ("ask", 1), ("window", "w2")]
    assert errors == ["boom"] and worker.failed == 1 and worker.processed == 2


def test_worker_skips_asks_cancelled_while_queued():
    gate, started = threading.Event(), threading.Event()
    worker = InferenceWorker(lambda w: started.set() or gate.wait(10), max_asks=1)
    worker.start()
    worker.submit_window(1)
    assert started.wait(10)
    ran = []
    fut = worker.submit_ask(lambda: ran.append(1))
    assert fut.cancel()
    gate.set()
    _until(lambda: not worker.busy, "worker still busy")  # the cancelled ask was dropped: slot free
    assert worker.submit_ask(lambda: 2).result(10) == 2
    worker.stop(10)
    assert ran == []


def test_ingest_is_bounded_drops_oldest_and_survives_errors():
    gate, started = threading.Event(), threading.Event()
    done, errors = [], []

    def process(item):
        started.set()
        gate.wait(10)
        if item == "bad":
            raise ValueError("corrupt")
        done.append(item)

    ingest = FrameIngest(process, depth=2, on_error=errors.append)
    ingest.start()
    ingest.put("bad")
    assert started.wait(10)  # taken by the thread, waiting on the gate
    for item in ("a", "b", "c"):
        ingest.put(item)  # depth 2: "a" is dropped
    gate.set()
    _until(lambda: ingest.processed == 3, "ingest did not process the queue")
    ingest.stop(10)
    assert done == ["b", "c"] and ingest.dropped == 1
    assert [str(e) for e in errors] == ["corrupt"] and len(ingest.durations_s) == 3
