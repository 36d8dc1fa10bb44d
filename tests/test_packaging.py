"""The robot path: `colcon build` of a workspace holding the repository, and the bare-machine set-up."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXECUTABLES = {"ssr", "ssr_node", "ssr_replay", "ssr_demo"}


@pytest.mark.slow
def test_colcon_build_installs_both_packages(tmp_path: Path):
    if shutil.which("colcon") is None:
        pytest.skip("colcon not installed: run scripts/setup.sh")
    src = tmp_path / "src"
    src.mkdir()
    (src / "ssr").symlink_to(ROOT, target_is_directory=True)
    env = dict(os.environ)
    venv = Path(sys.prefix)
    env["AMENT_PREFIX_PATH"] = os.pathsep.join(p for p in [str(venv), env.get("AMENT_PREFIX_PATH", "")] if p)
    # colcon does not look inside a package, and the repository root is one (ssr_ros):
    # the interface package is named explicitly, as the README's robot path does.
    build = subprocess.run(
        ["colcon", "build", "--base-paths", "src/ssr", "src/ssr/msg",
         "--cmake-args", "-DBUILD_TESTING=OFF", f"-DPython3_EXECUTABLE={sys.executable}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]

    share = tmp_path / "install/ssr_ros/share/ssr_ros"
    installed_launch = {p.name for p in (share / "launch").glob("*.launch.py")}
    assert installed_launch == {p.name for p in (ROOT / "launch").glob("*.launch.py")}
    assert {"ssr.launch.py", "demo.launch.py"} <= installed_launch
    assert (share / "config" / "ssr_node.yaml").is_file()
    assert (share / "package.xml").is_file()
    lib = tmp_path / "install/ssr_ros/lib/ssr_ros"
    assert EXECUTABLES <= {p.name for p in lib.iterdir() if os.access(p, os.X_OK)}

    # After sourcing the workspace (setup.sh: colcon-bash is not on PyPI here), the ament index finds both packages and the generated messages import.
    probe = (
        "from ament_index_python.packages import get_package_share_directory as s;"
        "print(s('ssr_ros')); print(s('ssr_msgs'));"
        "from ssr_msgs.msg import Detections7DoF; import ssr_msgs; print(ssr_msgs.__file__)"
    )
    sourced = subprocess.run(["bash", "-c", f". install/setup.sh && {sys.executable} -c \"{probe}\""],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert sourced.returncode == 0, sourced.stderr[-3000:]
    ssr_share, msgs_share, msgs_module = sourced.stdout.split()
    assert Path(ssr_share) == share
    assert Path(msgs_share) == tmp_path / "install/ssr_msgs/share/ssr_msgs"
    assert str(tmp_path / "install/ssr_msgs") in msgs_module


def test_setup_second_run_does_no_work():
    """Every step of scripts/setup.sh is stamped: with nothing changed it only reports readiness."""
    if not (Path(sys.prefix) / ".ssr-stamps").is_dir():
        pytest.skip("not running inside the environment scripts/setup.sh made")
    env = dict(os.environ, SSR_VENV=sys.prefix)
    run = subprocess.run(["bash", str(ROOT / "scripts/setup.sh")], env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines() == [f"[setup] ready: source {sys.prefix}/bin/activate"]
