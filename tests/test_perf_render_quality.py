"""The render quality script renders every class and seed at each resolution, names the worst image, judges the
target per setting, caches its references, and computes speed-ups over the images both settings rendered."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from perf_scripts import load_perf_script

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "perf" / "render_quality.py"


def load_script():
    return load_perf_script("render_quality")


def run(tmp_path: Path, assets_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--resolutions", "32", "--seeds", "5", "--classes", "teapot,3",
                           "--reference-samples", "16", "--cache", str(tmp_path / "cache"), "--assets", str(assets_dir),
                           *extra], capture_output=True, text=True, timeout=600, cwd=tmp_path)


@pytest.mark.render
def test_toy_run_reports_every_setting_worst_image_and_target(tmp_path, assets_dir):
    out = tmp_path / "figures.json"
    proc = run(tmp_path, assets_dir, "--presets", "paper,fast", "--candidate", "samples=4,denoiser_quality=FAST",
               "--json", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = proc.stdout
    assert "== 32 px: 2 images (2 classes x seeds 5; paper on seeds 5)" in text
    assert "reference: paper settings with 16 samples (0 cached, 2 rendered)" in text
    for label in ("paper", "fast", "candidate 1"):
        assert re.search(rf"^{re.escape(label)}\s+[0-9.]+\s+[0-9.]+\s+[0-9.]+x\s+[0-9.]+x\s+[0-9.]+\s+[0-9.]+\s+"
                         rf"(teapot|cow)/seed 5\s+[0-9.]+\s+[0-9.]+$", text, flags=re.M), text
    assert re.search(r"^(PASS|FAIL) 32 px fast: [0-9.]+x cheaper than paper in CPU time \([0-9.]+x in wall time\), "
                     r"worst PSNR [0-9.]+ dB \((teapot|cow)/seed 5\)", text, flags=re.M), text
    assert re.search(r"^(PASS|FAIL) 32 px candidate 1: ", text, flags=re.M), text
    assert "  candidate 1: samples=4,denoiser_prefilter=NONE,denoiser_quality=FAST,sampling_pattern=BLUE_NOISE\n" in text

    [figures] = json.loads(out.read_text())
    by_label = {s["label"]: s for s in figures["settings"]}
    fast = by_label["fast"]
    assert [i["image"] for i in fast["images"]] == ["teapot/seed 5", "cow/seed 5"]
    worst = min(fast["images"], key=lambda i: i["psnr"])
    assert fast["psnr_worst"] == worst["psnr"] and fast["worst_image"] == worst["image"]
    assert fast["pass"] == (fast["speedup_cpu"] >= 30 and fast["psnr_worst"] >= 38)
    assert all(i["cpu_s"] > 0 and i["wall_s"] > 0 for s in figures["settings"] for i in s["images"])
    assert len(list((tmp_path / "cache").glob("32px-*.png"))) == 2

    again = run(tmp_path, assets_dir, "--presets", "fast", "--json", str(out))  # references come from the cache
    assert again.returncode == 0, again.stderr[-3000:]
    assert "(2 cached, 0 rendered)" in again.stdout
    [figures] = json.loads(out.read_text())
    assert [i["psnr"] for i in figures["settings"][0]["images"]] == [i["psnr"] for i in fast["images"]]


def test_speedups_use_only_the_images_both_settings_rendered():
    rq = load_script()
    config = rq.render_config("fast", 32)
    paper = rq.Setting("paper", rq.render_config("paper", 32), {0: (30.0, 40.0, np.inf, 1.0)})
    fast = rq.Setting("fast", config, {0: (1.0, 2.0, 40.0, 0.99), 1: (100.0, 100.0, 39.0, 0.98)})
    assert rq.speedups(paper, fast) == (30.0, 20.0)
    assert rq.speedups(None, fast) == (None, None)
    assert fast.changes() == "samples=10,denoiser_prefilter=NONE,sampling_pattern=BLUE_NOISE"


def test_bad_candidate_is_one_line_and_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--candidate", "samples=2.5"], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "render_quality.py: render settings: samples must be an integer (no fraction), got 2.5 "
        "(fix --resolution, --quality or the --set value)"], proc.stderr
