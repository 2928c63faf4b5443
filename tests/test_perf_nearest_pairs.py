"""The nearest-pair timing script runs on a small pool and prints its timings."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "perf" / "nearest_pairs.py"


def test_nearest_pairs_timing_prints_a_line_per_pool_size():
    out = subprocess.run([sys.executable, str(SCRIPT), "--sizes", "300", "700", "--repeats", "1"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = re.findall(r"^\s*([0-9,]+) anchors: z~ of all\s+[0-9.]+ ms \(per-index scheme\s+[0-9.]+ ms", out.stdout,
                       flags=re.M)
    assert lines == ["300", "700"], out.stdout
