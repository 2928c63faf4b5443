"""The perf scripts (loader throughput, codec choice, checksum cost) run end to end on a few tiny images."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "perf" / "loader_throughput.py"


def test_loader_throughput_prints_each_reader_and_the_targets():
    out = subprocess.run([sys.executable, str(SCRIPT), "--n", "48", "--resolutions", "32", "--workers", "1",
                          "--batch-sizes", "16", "--rounds", "1", "--seconds", "0", "--images", "synthetic"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode in (0, 1), out.stderr[-2000:]  # 1: targets not met (tiny images, one worker)
    assert re.search(r"png folder\s+\d+\s+\d+", out.stdout), out.stdout
    for label in ("png folder \\+ cl", "hdf5 gzip", "hdf5 gzip \\+ cl", "hdf5 lz4", "hdf5 lz4 \\+ cl",
                  "hdf5 in memory \\+ cl"):
        ratios = re.findall(rf"{label}\s+\d+ \(\s*([0-9.]+)x\)\s+\d+ \(\s*([0-9.]+)x\)", out.stdout)
        assert ratios and all(float(v) > 0 for v in ratios[0]), (label, out.stdout)
    assert re.search(r"targets .*: hdf5 gzip (met|NOT met), .*hdf5 lz4 \+ cl (met|NOT met)", out.stdout)


def test_codec_choice_prints_size_and_speed_of_every_candidate():
    script = SCRIPT.parent / "codec_choice.py"
    out = subprocess.run([sys.executable, str(script), "--n", "6", "--resolutions", "24"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = re.findall(r"^\s+(\S.*?)\s+size\s+([0-9.]+)x PNG\s+(\d+) images/s", out.stdout, flags=re.M)
    assert [r[0] for r in rows] == ["gzip 6 (default)", "lz4-hc (c3di repack)", "lzf", "zstd 3", "zstd 9",
                                    "blosc lz4", "blosc zstd"], out.stdout
    assert all(float(size) > 0 and int(rate) > 0 for _, size, rate in rows)


def test_checksum_cost_prints_the_check_and_the_sealing_cost_of_both_codecs():
    script = SCRIPT.parent / "checksum_cost.py"
    out = subprocess.run([sys.executable, str(script), "--n", "16", "--resolutions", "16", "--rounds", "1",
                          "--batch", "8"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert re.search(r"16 px .*CRC-32 of one image [0-9.]+ us", out.stdout), out.stdout
    for codec in ("gzip", "lz4"):
        assert re.search(rf"{codec}\s*: loader decode\s+[0-9.]+ us/image, with the check\s+[0-9.]+ .*seal\s+[0-9.]+ "
                         rf"us/image = \d+% of writing the file", out.stdout), out.stdout
