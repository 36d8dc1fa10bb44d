"""The thread skeleton FrameIngest and InferenceWorker share (pure Python, no rclpy).

It lives with the inputs because the ingest thread is its first user; the model thread
(ssr_ros.inference_worker) imports it from here, which keeps inputs free of node-level imports.

One daemon thread waits on a condition until there is work or a stop; it takes one item while
holding the lock and runs it without, so producers (ROS callbacks) only ever wait for a few
list operations, never for the work itself.
"""

from __future__ import annotations

import threading
from typing import Any


class WorkerThread:
    """Subclasses say what work is (`_has_work`, `_take`, under `_cond`) and how to run it
    (`_run_item`, outside the lock; `_finish`, under the lock afterwards, even when it raised)."""

    def __init__(self, thread_name: str):
        self._thread_name = thread_name
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop after the item in progress; `_drop_pending` runs under the lock first."""
        with self._cond:
            self._stop = True
            self._drop_pending()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _has_work(self) -> bool:
        raise NotImplementedError

    def _take(self) -> Any:
        raise NotImplementedError

    def _run_item(self, item: Any) -> None:
        raise NotImplementedError

    def _finish(self, item: Any) -> None:
        """Bookkeeping after an item, under the lock."""

    def _drop_pending(self) -> None:
        """Discard queued work on stop, under the lock."""

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop and not self._has_work():
                    self._cond.wait()
                if self._stop:
                    return
                item = self._take()
            try:
                self._run_item(item)
            finally:
                with self._cond:
                    self._finish(item)
