"""The single model thread: windows (newest wins) and questions (bounded FIFO, served first).

One model instance is not safe to call from two threads, and a window takes far longer than the
camera period, so everything that touches the model runs here, off the ROS executor. Image
callbacks only hand over a window; a pending one that was never started is replaced and counted
as skipped, so `submitted == processed + skipped` once the worker is idle.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from ssr_ros.inputs.worker_thread import WorkerThread


class QueueFull(RuntimeError):
    pass


class InferenceWorker(WorkerThread):
    def __init__(
        self,
        process_window: Callable[[Any], None],
        max_asks: int,
        on_error: Callable[[str, BaseException], None] | None = None,
    ):
        super().__init__("ssr-inference")
        self._process_window = process_window
        self._on_error = on_error
        self.max_asks = max_asks
        self._pending_window: Any = None
        self._asks: deque[tuple[Future, Callable[[], Any]]] = deque()
        self._asks_outstanding = 0  # queued or running
        self._busy = False
        self.submitted = 0
        self.processed = 0  # finished, successfully or not
        self.failed = 0
        self.skipped = 0

    def _drop_pending(self) -> None:
        """On stop: a pending window counts as skipped, queued asks fail."""
        if self._pending_window is not None:
            self._pending_window = None
            self.skipped += 1
        while self._asks:
            fut, _ = self._asks.popleft()
            self._asks_outstanding -= 1
            if fut.set_running_or_notify_cancel():
                fut.set_exception(RuntimeError("node is shutting down the model"))

    def submit_window(self, window: Any) -> bool:
        """Hand over a window; True when it replaced one that had not started (that one is skipped)."""
        with self._cond:
            self.submitted += 1
            replaced = self._pending_window is not None
            if replaced:
                self.skipped += 1
            self._pending_window = window
            self._cond.notify()
            return replaced

    def submit_ask(self, job: Callable[[], Any]) -> Future:
        """Queue a question; raises QueueFull when `max_asks` are already waiting or running."""
        with self._cond:
            if self._asks_outstanding >= self.max_asks:
                raise QueueFull(f"ask queue full ({self.max_asks} outstanding)")
            fut: Future = Future()
            self._asks.append((fut, job))
            self._asks_outstanding += 1
            self._cond.notify()
            return fut

    @property
    def busy(self) -> bool:
        with self._cond:
            return self._busy or self._pending_window is not None or bool(self._asks)

    def _has_work(self) -> bool:
        return self._pending_window is not None or bool(self._asks)

    def _take(self) -> tuple[str, Any]:
        """Questions first: they are short and a user is waiting."""
        self._busy = True
        if self._asks:
            return "ask", self._asks.popleft()
        window, self._pending_window = self._pending_window, None
        return "window", window

    def _run_item(self, item: tuple[str, Any]) -> None:
        kind, payload = item
        if kind == "ask":
            self._run_ask(*payload)
        else:
            self._run_window(payload)

    def _finish(self, item: tuple[str, Any]) -> None:
        self._busy = False
        if item[0] == "ask":
            self._asks_outstanding -= 1

    def _run_ask(self, fut: Future, job: Callable[[], Any]) -> None:
        if not fut.set_running_or_notify_cancel():  # the caller timed out while it was queued
            return
        try:
            fut.set_result(job())
        except BaseException as exc:  # the caller turns it into an `error` text
            fut.set_exception(exc)

    def _run_window(self, window: Any) -> None:
        try:
            self._process_window(window)
        except Exception as exc:
            with self._cond:
                self.failed += 1
            if self._on_error is not None:
                self._on_error("window", exc)
        finally:
            with self._cond:
                self.processed += 1
