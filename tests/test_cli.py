"""The c3di CLI of the foundation: latents, info, verify, merge, presets; errors exit 2 in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from causal3dident.cli import main


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_latents_info_verify(tmp_path):
    out = tmp_path / "z.h5"
    result = run("latents", "--preset", "causal3dident", "--n", "500", "--seed", "3", "--out", str(out),
                 "--pairs", "hues,rotations", "--intervene", "do(hue_spot=0.25)")
    assert result.exit_code == 0, result.output
    with h5py.File(out) as f:
        assert f["latents"].shape == (500, 10) and (f["latents"][:, 8] == 0.25).all()
    info = run("info", str(out))
    assert info.exit_code == 0 and "samples:   500" in info.output and "hues, rotations" in info.output
    assert "do(hue_spot=0.25)" in info.output
    assert run("verify", str(out)).exit_code == 0
    with h5py.File(out, "r+") as f:
        f["latents"][0, 0] = 5.0
    bad = run("verify", str(out))
    assert bad.exit_code == 1 and "outside [-1, 1]" in bad.output


def test_sharded_cli_and_merge(tmp_path):
    for i in range(2):
        assert run("latents", "--n", "300", "--seed", "1", "--shard", str(i), "--num-shards", "2",
                   "--out", str(tmp_path / f"s{i}.h5")).exit_code == 0
    assert run("latents", "--n", "300", "--seed", "1", "--out", str(tmp_path / "all.h5")).exit_code == 0
    assert run("merge", str(tmp_path / "s1.h5"), str(tmp_path / "s0.h5"), "--out", str(tmp_path / "m.h5")).exit_code == 0
    with h5py.File(tmp_path / "all.h5") as a, h5py.File(tmp_path / "m.h5") as b:
        assert np.array_equal(a["latents"][...], b["latents"][...])


@pytest.mark.parametrize("args, message", [
    (["latents", "--preset", "nope", "--n", "5", "--out", "{tmp}/a.h5"], "unknown preset 'nope'"),
    (["latents", "--n", "0", "--out", "{tmp}/a.h5"], "--n must be a positive number"),
    (["latents", "--n", "5", "--out", "{tmp}/exists.h5"], "pass --overwrite"),
    (["latents", "--n", "5", "--out", "{tmp}/exists.h5/a.h5"], "cannot create folder"),
    (["latents", "--n", "5", "--pairs", "colours", "--out", "{tmp}/a.h5"], "unknown latent transformation"),
    (["latents", "--n", "5", "--intervene", "hue_bg=3", "--out", "{tmp}/a.h5"], "must lie in [-1, 1]"),
    (["latents", "--n", "5", "--shard", "2", "--num-shards", "2", "--out", "{tmp}/a.h5"], "--shard must be in 0..1"),
    (["info", "{tmp}/missing.h5"], "no such file"),
])
def test_user_errors_are_one_line_exit_2(tmp_path, args, message):
    (tmp_path / "exists.h5").write_text("x")
    result = CliRunner().invoke(main, [a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_console_script_prints_no_traceback(tmp_path):
    exe = Path(sys.executable).with_name("c3di")
    proc = subprocess.run([str(exe), "latents", "--preset", "nope", "--n", "3", "--out", str(tmp_path / "x.h5")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("Error: unknown preset") and "Traceback" not in proc.stderr
    assert not (tmp_path / "x.h5").exists()


def test_presets_show_is_a_loadable_preset(tmp_path):
    out = run("presets", "show", "causal3dident")
    (tmp_path / "mine.yaml").write_text(out.output)
    assert run("latents", "--preset", str(tmp_path / "mine.yaml"), "--n", "10", "--out",
               str(tmp_path / "z.h5")).exit_code == 0
    assert "3dident" in run("presets", "list").output
