#!/usr/bin/env bash
# The demo graph end to end from a fresh clone: set-up (idempotent), then `ssr_demo`, which renders
# a synthetic recording, replays it into ssr_node, prints detections and the scene graph, asks a
# question through the ~/ask service and writes a bird's-eye PNG. Arguments go to ssr_demo.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/scripts/setup.sh"
# shellcheck disable=SC1091
source "${SSR_VENV:-$ROOT/.venv}/bin/activate"
cd "$ROOT"
export ROS_AUTOMATIC_DISCOVERY_RANGE=${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}
exec ssr_demo "$@"
