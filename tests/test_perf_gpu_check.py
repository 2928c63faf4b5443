"""The GPU check runs every section on the CPU at toy sizes, prints them labelled, and writes them to JSON; a machine
without bpy or without a GPU Blender sees gets one clear line instead of a traceback."""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
from perf_scripts import load_perf_script

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "perf" / "gpu_check.py"


def load_script():
    return load_perf_script("gpu_check")


def run(tmp_path: Path, assets_dir: Path, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "check.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--render-device", "cpu", "--tiny",
                           "--workers", "1", "--assets", str(assets_dir), "--json", str(out), *extra],
                          capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, json.loads(out.read_text())


@pytest.mark.render
def test_tiny_check_prints_and_records_every_section(tmp_path, assets_dir):
    proc, figures = run(tmp_path, assets_dir)
    text = proc.stdout
    for heading in ("(a) Cycles render", "(b) training throughput", "(c) gpu tier"):
        assert f"== {heading}" in text, text
    assert re.search(r"CPU render: [0-9.]+ images/s steady state over 2 images", text)
    assert "PSNR CPU vs CPU (same latents, 2 images): mean identical (inf dB), worst identical (inf dB)" in text
    assert re.search(r"baseline \(fp32\):\s+[0-9.]+ images/s", text)
    assert re.search(r"ours / baseline, best \((fp32|bf16)\): [0-9.]+x \(target >= 3x: (MET|NOT MET)\)", text)
    assert [int(s) for s in re.findall(r"step +(\d+): loss [0-9.]+", text)] == [2, 4, 6]
    assert re.search(r"probes, final layer, logistic: class [0-9.]+", text)
    assert re.search(r"done in \d+ s \(budget 480 s\)", text) and "FAILED" not in text

    render, throughput, train = figures["render"], figures["throughput"], figures["train"]
    assert render["device"] == "CPU" and render["images_per_s"] > 0 and render["psnr_worst_db"] == math.inf
    assert throughput["baseline"] > 0 and throughput["ours"]["fp32"] > 0 and throughput["ratio"]["fp32"] > 0
    assert train["steps"] == 6 and train["data"] == "synthetic" and train["placement"]["images"] == "cpu"
    assert sorted(map(int, train["loss"])) == [2, 4, 6] and all(math.isfinite(v) for v in train["loss"].values())
    assert {p["factor"] for p in train["probes"]} >= {"class", "hue_obj"}
    assert figures["meta"]["tiny"] and figures["total"]["failed"] == []


@pytest.mark.slow
@pytest.mark.render
def test_tiny_check_renders_the_training_data_when_asked(tmp_path, assets_dir):
    proc, figures = run(tmp_path, assets_dir, "--sections", "render,train", "--train-data", "render")
    assert "data: rendered 48 anchors with their hues views and 32 test samples at 32 px (fast) on CPU" in proc.stdout
    assert figures["train"]["data"] == "rendered on CPU" and figures["train"]["steps"] == 6


def test_no_bpy_and_no_gpu_are_one_line_each(tmp_path, monkeypatch, capsys):
    check = load_script()
    args = argparse.Namespace(render_device="auto", assets=None)
    report = check.Report(tmp_path / "r.json")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "bpy" else real_find_spec(name))
    figures, devices = check.section_render(args, check.TINY, report)
    assert devices is None and "needs Python 3.11" in figures["skipped"]
    assert re.search(r"^render: skipped: bpy is not importable by this Python", capsys.readouterr().out, re.M)

    monkeypatch.setattr(importlib.util, "find_spec", real_find_spec)
    if real_find_spec("bpy") is None:
        pytest.skip("bpy is not installed here")
    from causal3dident.render import devices as render_devices

    monkeypatch.setattr(render_devices, "probe_gpus", lambda: [])
    figures, devices = check.section_render(args, check.TINY, report)
    assert devices is None and "Blender sees no OptiX or CUDA GPU here" in figures["skipped"]
    out = capsys.readouterr().out
    assert re.search(r"^render: Blender sees no OptiX or CUDA GPU here", out, re.M) and "Traceback" not in out


def test_render_backends_are_tried_optix_first():
    check = load_script()
    from causal3dident.render.devices import DeviceSpec

    gpus = [DeviceSpec("CUDA", "c0", "H200"), DeviceSpec("OPTIX", "o0", "H200"), DeviceSpec("OPTIX", "o1", "H200")]
    assert [[d.id for d in ds] for ds in check._render_candidates("auto", lambda: gpus)] == [["o0", "o1"], ["c0"]]
    assert [[d.id for d in ds] for ds in check._render_candidates("cuda", lambda: gpus)] == [["c0"]]
    assert check._render_candidates("optix", lambda: []) == []
    assert [d.kind for d in check._render_candidates("cpu", lambda: gpus)[0]] == ["CPU"]


def test_a_section_past_its_time_is_stopped(tmp_path):
    check = load_script()
    import time

    with pytest.raises(check.OutOfTime):
        with check.time_limit(0.2):
            time.sleep(5)
