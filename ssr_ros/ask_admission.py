"""Admission control for ~/ask (pure Python, no rclpy): which questions are refused at the door.

A question holds an executor thread for as long as it waits (for a first window, then for the
model), so the number of calls in service is bounded by `ask.queue_size` over the whole call,
not only while queued at the model. Refusals are immediate, with the reason the client sees.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


def question_refusal(question: str, max_chars: int) -> str | None:
    """Why a question is refused before it costs anything, or None."""
    if not question.strip():
        return "empty question"
    if len(question) > max_chars:
        return f"question too long: {len(question)} characters > ask.max_question_chars {max_chars}"
    return None


class AskAdmission:
    """Counts ~/ask calls in service against a fixed capacity, and their outcomes."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._lock = threading.Lock()
        self._in_service = 0
        self.ok = 0
        self.failed = 0

    @contextmanager
    def admit(self) -> Iterator[bool]:
        """`with admission.admit() as admitted:`; a False call holds no slot."""
        with self._lock:
            admitted = self._in_service < self.capacity
            if admitted:
                self._in_service += 1
        try:
            yield admitted
        finally:
            if admitted:
                with self._lock:
                    self._in_service -= 1

    def full_reason(self) -> str:
        return f"queue full: {self.capacity} questions already waiting or running (ask.queue_size)"

    def record(self, success: bool) -> None:
        with self._lock:
            if success:
                self.ok += 1
            else:
                self.failed += 1
