#!/usr/bin/env bash
# Download into one folder the wheels that benchmarks/perf/gpu_check.py needs on an offline x86-64 Linux GPU machine,
# to carry there (the folder is git-ignored). Run it where PyPI is reachable, from the repository root:
#
#   bash benchmarks/perf/gpu_bundle.sh [3.11|3.12] [DIR]        (default: 3.11 into .gpu-bundle/py3.11)
#
#   3.11  every section: Blender's bpy 5.0 exists for Python 3.11 only (about 400 MB), torch with CUDA (about 3 GB
#         with its nvidia-* wheels), and the rest of causal3dident[render,bench].
#   3.12  no bpy, so gpu_check.py skips (a) there; (b) and (c) run.
#   C3DI_BUNDLE_TORCH=0 leaves torch and torchvision out, for machines that have a CUDA torch already.
#
# On the GPU machine (Python of that version; the source tree beside the folder):
#   python3 -m pip install --no-index --find-links DIR -r DIR/requirements.txt
#   python3 -m pip install --no-index --find-links DIR --no-deps --no-build-isolation -e .
# The requirements come from pyproject.toml (core, load, bench and, for 3.11, render), so they follow it.
set -euo pipefail

PY="${1:-3.11}"
case "$PY" in
  3.11|3.12) ;;
  *) echo "gpu_bundle.sh: Python $PY is not supported; use 3.11 (with bpy) or 3.12 (without)" >&2; exit 2 ;;
esac
DIR="${2:-.gpu-bundle/py$PY}"
TORCH="${C3DI_BUNDLE_TORCH:-1}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
mkdir -p "$DIR"

# The project's requirements for that Python, read from pyproject.toml (tomllib: Python >= 3.11 here).
python3 - "$ROOT/pyproject.toml" "$PY" "$TORCH" > "$DIR/requirements.txt" <<'EOF'
import re, sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
extras = project["optional-dependencies"]
wanted = ["load", "bench"] + (["render"] if sys.argv[2] == "3.11" else [])
reqs = list(project["dependencies"]) + [r for name in wanted for r in extras[name]]
seen = set()
for req in reqs:
    name = re.split(r"[<>=!~\[ ;]", req, maxsplit=1)[0].lower()
    if name == "causal3dident" or name in seen or (sys.argv[3] == "0" and name in ("torch", "torchvision")):
        continue
    seen.add(name)
    print(req.split("#")[0].strip())
EOF
echo "setuptools>=68" >> "$DIR/requirements.txt"  # to install causal3dident itself without an index
echo "wheel" >> "$DIR/requirements.txt"

PLATFORMS=()
for n in 39 35 34 31 28 27 24 17 5; do PLATFORMS+=(--platform "manylinux_2_${n}_x86_64"); done
PLATFORMS+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64)

echo "downloading $(wc -l < "$DIR/requirements.txt") requirements (and what they need) for Python $PY into $DIR"
python3 -m pip download --only-binary=:all: --python-version "$PY" --implementation cp --abi "cp${PY/./}" \
  "${PLATFORMS[@]}" -d "$DIR" -r "$DIR/requirements.txt"
du -sh "$DIR"
