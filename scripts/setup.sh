#!/usr/bin/env bash
# Create .venv (Python 3.11) and install causal3dident with every extra and the test tools.
# Idempotent: a second run only checks what is there. Override the interpreter with PYTHON=...
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), "the full install needs Python 3.11 (bpy 5.0, for rendering, is built for it); set PYTHON=/path/to/python3.11, or without rendering: pip install \".[load,bench]\" on any Python >= 3.11"'
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if [ "$(uname -m)" = x86_64 ]; then
  # torch and torchvision must come as a matching pair (a lone torch wheel breaks PyPI's torchvision).
  .venv/bin/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
fi
.venv/bin/python -m pip install -q -e ".[test]"
echo "causal3dident installed in .venv ($(.venv/bin/c3di --version))"
