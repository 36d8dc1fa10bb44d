#!/usr/bin/env bash
# The whole test suite from a fresh clone: set-up (idempotent), lint, type check, tests.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow"`.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/scripts/setup.sh"
# shellcheck disable=SC1091
source "${SSR_VENV:-$ROOT/.venv}/bin/activate"
cd "$ROOT"
echo "[test] ruff"; ruff check .
echo "[test] mypy ssr_core"; mypy ssr_core
echo "[test] mypy ssr_ros training"; mypy ssr_ros training
echo "[test] pytest"; python -m pytest "$@"   # exits non-zero when no test is collected (5)
