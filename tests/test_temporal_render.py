"""Rendering sequences in CITRIS's scene (real bpy, 32-64 px): the scene mapping, Causal3DIdent's pixels unchanged,
``c3di render --preset temporal_causal3dident`` end to end with kill -9 + resume and shards + merge.

The camera sits at +x looking at the origin: image right is +y (tests/test_render_semantics.py).
"""

from __future__ import annotations

import math
import subprocess
import zlib
from importlib import metadata
from pathlib import Path

import h5py
import numpy as np
import pytest

from causal3dident.generate import build_config, latents_for_config, merge_files
from causal3dident.latents import citris_scene_units, to_scene_units
from causal3dident.render.config import render_config
from causal3dident.render.devices import CPU
from causal3dident.render.preview import render_latents
from causal3dident.store import verify
from causal3dident.temporal import load_temporal
from causal3dident.temporal_store import normalised, read_sequence
from test_render_job import COMMON, assert_same_data, cli_command, kill_9_after_chunks, run_cli
from test_render_semantics import centroid, object_mask

pytestmark = pytest.mark.render

TWO_PI = 2 * math.pi
# CITRIS's units: positions in scene units, angles and hues in radians. A red object (hue 0) over a chartreuse
# ground and spotlight (hue fraction 0.2), as in test_render_semantics.
CITRIS_BASE = np.array([0.0, 0.0, 0.3, 0.0, 0.0, 0.0, 0.5, 0.0, 0.2 * TWO_PI, 0.2 * TWO_PI])
# The same scene as Causal3DIdent's raw latents in [-1, 1]: positions / 3, spotlight angle / (pi / 2), hue x 4.
C3DI_BASE = np.array([0.0, 0.0, 0.1, 0.0, 0.0, 0.0, 0.5 / (math.pi / 2), 0.0, 0.8, 0.8])
# CRC-32 of four 32 px preview renders of Causal3DIdent latents (preset causal3dident, 4 samples, seed 11),
# rendered by the code before scene mappings existed (commit dd46d91) with bpy 5.0.1 on the CPU.
C3DI_GOLDEN = [438672422, 2656744012, 3913907474, 3969872282]
GOLDEN_BPY = "5.0.1"


def _at_y(base: np.ndarray, y: float) -> np.ndarray:
    z = base.copy()
    z[1] = y
    return z


def test_citris_scene_units_are_citris_render_script_units() -> None:
    z = np.array([1.5, -2.0, 0.25, 4.0, 1.0, 0.0, 5.0, math.pi, TWO_PI * 0.75, TWO_PI + 0.5])
    u = citris_scene_units(z)
    assert np.array_equal(u[:7], z[:7])  # positions and angles as they are (rotation_euler, spotlight angle)
    assert np.allclose(u[7:], [0.5, 0.75, 0.5 / TWO_PI])  # colorsys hue = latent / (2 pi), wrapped
    assert np.allclose(citris_scene_units(CITRIS_BASE), to_scene_units(C3DI_BASE))


@pytest.fixture(scope="module")
def frames(assets_dir: Path) -> dict[str, np.ndarray]:
    """Renders at 48 px: the known-side frames in both mappings, and sequence frames in both mappings."""
    model = load_temporal("temporal_causal3dident")
    seq = model.sample(3, 0, 4)
    classes = np.zeros(4, dtype=np.int64)
    config = render_config("preview", 48, samples=8)
    citris_rows = np.stack([_at_y(CITRIS_BASE, 1.5), _at_y(CITRIS_BASE, -1.5), *seq.latents[2:4]])
    c3di_rows = np.stack([_at_y(C3DI_BASE, 0.5), _at_y(C3DI_BASE, -0.5),
                          *normalised(model, seq.latents[2:4])]).astype(np.float32)
    citris = render_latents(citris_rows, classes, config, [CPU], assets=assets_dir, per_task=4, scene="citris")
    c3di = render_latents(c3di_rows, classes, config, [CPU], assets=assets_dir, per_task=4)
    return {"citris": citris, "c3di": c3di}


def test_citris_frame_puts_the_object_where_its_latents_say(frames: dict[str, np.ndarray]) -> None:
    right, left = frames["citris"][0], frames["citris"][1]
    width = right.shape[1]
    assert centroid(object_mask(right))[1] > width / 2 + 3  # y = +1.5: right of the image centre
    assert centroid(object_mask(left))[1] < width / 2 - 3  # y = -1.5: left of it
    # The same scene through Causal3DIdent's mapping (raw 0.5 x 3 = 1.5 scene units) gives the same picture.
    for i in (0, 1):
        diff = np.abs(frames["citris"][i].astype(int) - frames["c3di"][i].astype(int))
        assert diff.max() <= 1, f"frame {i}: CITRIS's and Causal3DIdent's mappings of one scene differ by {diff.max()}"


def test_citris_mapped_sequence_frame_differs_from_the_causal3dident_mapped_one(frames: dict[str, np.ndarray]) -> None:
    for i in (2, 3):
        diff = np.abs(frames["citris"][i].astype(float) - frames["c3di"][i].astype(float)).mean()
        assert diff > 5, f"sequence frame {i}: mean difference {diff:.2f} of 255 between the two mappings"


def _bpy_version() -> str | None:
    try:
        return metadata.version("bpy")
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    """The CPU's model name: Cycles CPU pixels are bit-identical run to run, not across CPU families."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "")


GOLDEN_CPU = "AMD EPYC"


@pytest.mark.skipif(_bpy_version() != GOLDEN_BPY or _cpu_model() != GOLDEN_CPU,
                    reason=f"the golden pixels were rendered with bpy {GOLDEN_BPY} on an {GOLDEN_CPU} CPU")
def test_causal3dident_pixels_unchanged(assets_dir: Path) -> None:
    data = latents_for_config(build_config("causal3dident", 4), 11, 0, 4)
    images = render_latents(data["latents"], data["classes"], render_config("preview", 32), [CPU],
                            assets=assets_dir, per_task=4)
    assert [zlib.crc32(im.tobytes()) for im in images] == C3DI_GOLDEN


# -- c3di render --preset temporal_causal3dident ------------------------------------------------------------------
SEQ_JOB = ["--preset", "temporal_causal3dident", "--seed", "4", *COMMON]


@pytest.fixture(scope="module")
def whole(assets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted render of a 12-frame sequence, through the CLI in a subprocess."""
    out = tmp_path_factory.mktemp("seq") / "whole.h5"
    cmd, env = cli_command(assets_dir, "render", *SEQ_JOB, "--n", "12", "--out", str(out))
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=300)
    return out


def test_render_preset_writes_a_sequence_file_in_citris_scene(whole: Path, assets_dir: Path) -> None:
    assert verify(whole) == []  # checksums, and /latents + /classes regenerate from config + seed
    model = load_temporal("temporal_causal3dident")
    expected = model.sample(4, 0, 12)
    with h5py.File(whole) as f:
        seq = read_sequence(f)
        images = f["images"][...]
        classes = f["classes"][...]
    assert np.array_equal(seq["latents"], expected.latents) and np.array_equal(seq["targets"], expected.targets)
    # the file's frames are CITRIS's scene of the sequence: re-render two of them directly
    again = render_latents(seq["latents"][[0, 11]], classes[[0, 11]], render_config("preview", 32), [CPU],
                           assets=assets_dir, per_task=2, scene="citris")
    assert np.array_equal(again, images[[0, 11]])


def test_render_preset_kill_9_then_resume_gives_the_uninterrupted_file(whole: Path, assets_dir: Path,
                                                                      tmp_path: Path) -> None:
    out, parts = tmp_path / "killed.h5", tmp_path / "killed.h5.parts"
    cmd, env = cli_command(assets_dir, "render", *SEQ_JOB, "--n", "12", "--chunk-size", "1", "--out", str(out))
    done = kill_9_after_chunks(cmd, env, parts, timeout=180)
    assert 3 <= done < 12 and not out.exists(), f"{done} of 12 chunks written before the kill"
    result = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, timeout=300)
    assert "from an earlier run" in result.stdout and not parts.exists()
    assert_same_data(whole, out)  # other chunking, same file


def test_render_preset_shards_merge_to_the_uninterrupted_file(whole: Path, assets_dir: Path, tmp_path: Path) -> None:
    for i in range(2):
        code, output = run_cli("render", *SEQ_JOB, "--n", "12", "--assets", str(assets_dir), "--out", str(tmp_path),
                               "--shard", str(i), "--num-shards", "2")
        assert code == 0, output
    shards = sorted(tmp_path.glob("causal3dident-shard*.h5"))
    assert [verify(s) for s in shards] == [[], []]  # a shard's rows regenerate from its place in the sequence
    merged = merge_files(shards, tmp_path / "merged.h5")
    assert_same_data(whole, merged)
    assert verify(merged) == []


def test_render_preset_refuses_options_that_do_not_apply(assets_dir: Path, tmp_path: Path) -> None:
    code, output = run_cli("render", *SEQ_JOB, "--n", "4", "--pairs", "hues", "--out", str(tmp_path / "x.h5"))
    assert code == 2 and "samples a sequence" in output and len(output.strip().splitlines()) == 1, output
