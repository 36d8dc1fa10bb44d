"""`ssr eval map`: the report and the PNG; bad rates are usage errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from ssr_core.commands.main import main


def test_map_evaluation_prints_the_report_and_draws_the_map(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png = tmp_path / "map.png"
    assert main(["eval", "map", "--seed", "3", "--png", str(png)]) == 0
    out = capsys.readouterr().out
    for word in ("precision", "recall", "duplicates", "id switches", "single window"):
        assert word in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("flag", [["--miss-rate", "1.5"], ["--center-noise", "-1"], ["--yaw-noise", "nan"]])
def test_bad_noise_is_a_usage_error(flag: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "map", *flag])
    assert exit_info.value.code == 2
    assert "ssr eval map: error:" in capsys.readouterr().err


def test_negative_seed_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "map", "--seed", "-1"]) == 1
    assert capsys.readouterr().err.strip() == "ssr eval map: error: --seed must be >= 0, got -1"
