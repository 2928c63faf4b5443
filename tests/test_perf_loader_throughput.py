"""The loader-throughput script runs end to end on a few tiny images and prints every reader's ratio."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "perf" / "loader_throughput.py"


def test_loader_throughput_prints_each_reader_and_the_targets():
    out = subprocess.run([sys.executable, str(SCRIPT), "--n", "48", "--resolutions", "32", "--workers", "1",
                          "--batch-size", "16", "--rounds", "1", "--seconds", "0", "--images", "synthetic"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode in (0, 1), out.stderr[-2000:]  # 1: targets not met (tiny images, one worker)
    assert re.search(r"png folder\s+\d+\s+\d+", out.stdout), out.stdout
    for label in ("png folder \\+ cl", "hdf5 gzip", "hdf5 gzip \\+ cl", "hdf5 lz4", "hdf5 lz4 \\+ cl",
                  "hdf5 in memory \\+ cl"):
        ratios = re.findall(rf"{label}\s+\d+ \(\s*([0-9.]+)x\)\s+\d+ \(\s*([0-9.]+)x\)", out.stdout)
        assert ratios and all(float(v) > 0 for v in ratios[0]), (label, out.stdout)
    assert re.search(r"targets .*: hdf5 gzip (met|NOT met), .*hdf5 lz4 \+ cl (met|NOT met)", out.stdout)
