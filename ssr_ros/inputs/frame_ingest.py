"""Decode and downscale frames on their own thread, right after arrival (pure Python, no rclpy).

INTER_AREA at a non-integer scale costs several milliseconds per 720p frame on a small CPU, more
than an image callback may take. The callback therefore only validates the header fields and
enqueues the message here; this thread decodes it and hands the small frame to the window buffer.
The queue is short and drops its oldest entry when full (counted), so memory stays bounded and a
slow CPU shows up as dropped frames, never as a stalled executor.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ssr_ros.inputs.worker_thread import WorkerThread

DEFAULT_DEPTH = 4
TIMING_SAMPLES = 2000


class FrameIngest(WorkerThread):
    def __init__(self, process: Callable[[Any], None], depth: int = DEFAULT_DEPTH,
                 on_error: Callable[[BaseException], None] | None = None):
        super().__init__("ssr-ingest")
        self._process = process  # decode + buffer one queued item (runs on this thread)
        self._on_error = on_error
        self._queue: deque[Any] = deque()
        self.depth = depth
        self.dropped = 0  # queued items replaced by newer ones before being processed
        self.processed = 0
        self.durations_s: deque[float] = deque(maxlen=TIMING_SAMPLES)

    def put(self, item: Any) -> None:
        """O(1); never blocks on decoding."""
        with self._cond:
            if len(self._queue) >= self.depth:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(item)
            self._cond.notify()

    def _has_work(self) -> bool:
        return bool(self._queue)

    def _take(self) -> Any:
        return self._queue.popleft()

    def _drop_pending(self) -> None:
        self._queue.clear()

    def _run_item(self, item: Any) -> None:
        t0 = time.perf_counter()
        try:
            self._process(item)
        except Exception as exc:  # one bad frame must not end ingestion
            if self._on_error is not None:
                self._on_error(exc)
        self.durations_s.append(time.perf_counter() - t0)

    def _finish(self, item: Any) -> None:
        self.processed += 1
