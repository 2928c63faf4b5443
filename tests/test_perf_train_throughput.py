"""The training-throughput script runs end to end on a tiny synthetic file and prints its ratios."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "perf" / "train_throughput.py"


def test_train_throughput_prints_a_ratio_and_the_encoder_ceiling():
    out = subprocess.run([sys.executable, str(SCRIPT), "--tier", "smoke", "--steps", "2", "--warmup", "1",
                          "--workers", "1", "--device", "cpu"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    ratios = re.findall(r"ratio \(fp32\):\s+([0-9.]+)x .*= ([0-9.]+)x", out.stdout)
    assert len(ratios) == 1 and all(float(v) > 0 for v in ratios[0]), out.stdout
    assert re.search(r"baseline \(fp32\):\s+[0-9.]+ images/s", out.stdout)
