"""Issue 14, findings 4 and 7: `ssr data synth` / `ssr data build` refuse bad arguments with one
line (exit 1) and never leave a half-written scene or dataset behind.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ssr_core.commands.main import main as ssr_main
from ssr_core.data.synthetic import dataset as synth_dataset


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def one_error_line(capsys) -> str:
    """The one error line on stderr (progress bars aside), and no traceback."""
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if "error" in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == lines[0]
    return lines[0]


# ---------------------------------------------------------------------------- finding 7: synth


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--width", "100000"], "100000x240"),
        (["--height", "8"], "320x8"),
        (["--width", "-5"], "-5x240"),
        (["--seed", "-1"], "seed"),
        (["--seed", str(2**32)], "seed"),
        (["--scenes", "20000"], "20000"),
    ],
)
def test_synth_refuses_arguments_it_cannot_render(tmp_path, capsys, args, needle):
    status = ssr_main(["data", "synth", "--out", str(tmp_path / "out"), "--frames", "2", *args])
    assert status == 1
    assert needle in one_error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_synth_out_is_a_file(tmp_path, capsys):
    target = tmp_path / "out"
    target.write_text("precious")
    assert ssr_main(["data", "synth", "--out", str(target), "--frames", "2"]) == 1
    assert str(target) in one_error_line(capsys)
    assert target.read_text() == "precious"


@pytest.mark.parametrize("out", ["file/sub", "/proc/ssr_cannot_write_here"])
def test_synth_unwritable_out(tmp_path, capsys, out):
    (tmp_path / "file").write_text("x")
    target = out if out.startswith("/") else str(tmp_path / out)
    assert ssr_main(["data", "synth", "--out", target, "--frames", "2", "--width", "32", "--height", "24"]) == 1
    line = one_error_line(capsys)
    assert "ssr data synth: error:" in line


def test_failed_image_write_is_an_error_and_keeps_the_previous_scene(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    argv = ["data", "synth", "--out", str(out), "--frames", "2", "--width", "32", "--height", "24"]
    assert ssr_main(argv) == 0
    before = digest(out)
    capsys.readouterr()
    calls = {"n": 0}
    real = synth_dataset.cv2.imwrite

    def failing(path, image, flags=None):
        calls["n"] += 1
        return False if calls["n"] == 3 else real(path, image, flags)

    monkeypatch.setattr(synth_dataset.cv2, "imwrite", failing)
    assert ssr_main(argv) == 1
    line = one_error_line(capsys)
    assert "could not write" in line and ".png" in line
    assert digest(out) == before  # the earlier scene is intact, no staging folder left
    assert [p.name for p in out.iterdir()] == ["synth_0000"]
