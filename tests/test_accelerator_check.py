"""bench/accelerator_check.py: stops cleanly without an accelerator, and its dry run (tiny models on
the CPU) runs every section, so a broken import or signature is found before a GPU is booked."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import accelerator_check  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def test_without_an_accelerator_it_says_so_and_measures_nothing(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(accelerator_check, "find_accelerator", lambda: None)
    out = tmp_path / "results.md"
    assert accelerator_check.main(["--out", str(out)]) == accelerator_check.EXIT_NO_ACCELERATOR
    assert "no accelerator" in capsys.readouterr().err and not out.exists()


@pytest.mark.slow
def test_dry_run_runs_every_section_on_the_cpu(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(accelerator_check, "find_accelerator", lambda: None)
    out = tmp_path / "results.md"
    assert accelerator_check.main(["--dry-run", "--out", str(out)]) == 0
    text = out.read_text()
    assert "DRY RUN" in text and "accelerator: **none" in text and "Traceback" not in text
    assert text.count("## ") == 3 and "sections failed: 0" in text
    assert "no accelerator in use" in capsys.readouterr().err
