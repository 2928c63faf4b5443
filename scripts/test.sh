#!/usr/bin/env bash
# Install (if needed) and run the test suite: the command the README gives and CI runs.
# Tests that need the seven meshes read them from $C3DI_ASSETS (default: ../shared/assets).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export C3DI_ASSETS="${C3DI_ASSETS:-$(cd .. && pwd)/shared/assets}"
exec .venv/bin/python -m pytest "$@"
