"""Where the project's read-only reference data (`shared/`: paper, VGGT reference vectors) lives.

CI clones the repository with `shared/` beside it; developers may point SSR_SHARED_DIR elsewhere.
Tests that need it skip when it is missing on a developer machine, and fail under CI (CI=true),
so a missing fixture can never pass as a skipped test there.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def shared_path(relative: str) -> Path:
    candidates = [Path(os.environ["SSR_SHARED_DIR"])] if os.environ.get("SSR_SHARED_DIR") else []
    candidates.append(ROOT.parent / "shared")
    for base in candidates:
        if (base / relative).exists():
            return base / relative
    return candidates[0] / relative


def requires_shared(relative: str) -> pytest.MarkDecorator:
    missing = not shared_path(relative).exists()
    return pytest.mark.skipif(missing and not os.environ.get("CI"), reason=f"shared/{relative} not available")
