"""``c3di merge`` is all or nothing: an incomplete, duplicated or inconsistent set of shards is refused in
one line naming what is missing or what differs between which files, and nothing is written.

Latents shards come from ``c3di latents --shard``; rendered shards are real 32 px preview renders."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from causal3dident.cli import main


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.output


def refused(shards: list[Path], out: Path, *message: str) -> None:
    """``c3di merge SHARDS --out OUT`` exits 2 with one line holding every ``message``; OUT is not written."""
    code, output = run("merge", *shards, "--out", out)
    assert code == 2, output
    assert len(output.strip().splitlines()) == 1 and "Traceback" not in output, output
    for part in message:
        assert part in output, output
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.tmp-*"))


@pytest.fixture(scope="module")
def latents_shards(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Four latents shards of one 36-sample job with a pair, as 'c3di latents --shard i --num-shards 4' writes them."""
    folder = tmp_path_factory.mktemp("latents_shards")
    for i in range(4):
        code, output = run("latents", "--n", 36, "--seed", 1, "--pairs", "hues", "--shard", i, "--num-shards", 4,
                           "--out", folder / f"s{i}.h5")
        assert code == 0, output
    return [folder / f"s{i}.h5" for i in range(4)]


def test_complete_set_merges_in_any_order(latents_shards: list[Path], tmp_path: Path) -> None:
    whole = tmp_path / "whole.h5"
    assert run("latents", "--n", 36, "--seed", 1, "--pairs", "hues", "--out", whole)[0] == 0
    code, output = run("merge", *latents_shards[::-1], "--out", tmp_path / "m.h5")
    assert code == 0, output
    with h5py.File(whole) as a, h5py.File(tmp_path / "m.h5") as b:
        for key in ("latents", "classes", "index", "pairs/hues/latents"):
            assert np.array_equal(a[key][...], b[key][...]), key
        assert "shard" not in b.attrs and b.attrs["num_samples"] == 36
    with h5py.File(latents_shards[2]) as f:
        record = json.loads(f.attrs["shard"])
    assert record["index"] == 2 and record["count"] == 4 and (record["start"], record["stop"]) == (18, 27)
    assert record["total"] == 36 and len(record["job"]) == 64


@pytest.mark.parametrize("drop, message", [(0, "shard 0 of 4 is missing (given: 1, 2, 3)"),
                                           (3, "shard 3 of 4 is missing (given: 0, 1, 2)")])
def test_a_set_without_its_first_or_last_shard_is_refused(latents_shards: list[Path], tmp_path: Path, drop: int,
                                                          message: str) -> None:
    refused([s for i, s in enumerate(latents_shards) if i != drop], tmp_path / "m.h5", message)


def test_a_shard_given_twice_is_refused(latents_shards: list[Path], tmp_path: Path) -> None:
    refused([*latents_shards, latents_shards[1]], tmp_path / "m.h5", "shard 1 of 4 is given twice", "s1.h5")


def test_shards_of_other_jobs_are_refused_naming_what_differs(latents_shards: list[Path], tmp_path: Path) -> None:
    other_seed = tmp_path / "seed2.h5"
    assert run("latents", "--n", 36, "--seed", 2, "--pairs", "hues", "--shard", 3, "--num-shards", 4,
               "--out", other_seed)[0] == 0
    refused([*latents_shards[:3], other_seed], tmp_path / "m.h5", "s0.h5 and seed2.h5 differ in", "shard job")
    five = tmp_path / "five.h5"
    assert run("latents", "--n", 36, "--seed", 1, "--pairs", "hues", "--shard", 3, "--num-shards", 5,
               "--out", five)[0] == 0
    refused([*latents_shards[:3], five], tmp_path / "m.h5", "differ in", "shard count", "(4 vs 5)")
    whole = tmp_path / "whole.h5"
    assert run("latents", "--n", 9, "--seed", 1, "--out", whole)[0] == 0
    refused([*latents_shards, whole], tmp_path / "m.h5", "whole.h5 is not a shard")


def test_nothing_is_written_over_an_existing_output(latents_shards: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "m.h5"
    out.write_bytes(b"an earlier merge")
    code, output = run("merge", *latents_shards[1:], "--out", out, "--overwrite")
    assert code == 2 and "shard 0 of 4 is missing" in output, output
    assert out.read_bytes() == b"an earlier merge"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.h5"]


def test_merge_on_a_full_disk_is_one_line(small_tmpfs, tmp_path: Path) -> None:
    """A 1 MiB tmpfs: refused before writing; with the pre-check off (subprocess), the write meets the full disk."""
    shards = []
    for i in range(2):
        shards.append(tmp_path / f"big{i}.h5")
        assert run("latents", "--n", 40000, "--seed", 1, "--shard", i, "--num-shards", 2, "--out", shards[-1])[0] == 0
    out = small_tmpfs("1m") / "m.h5"
    refused(shards, out, f"{out} needs about", " free; free some space there")
    no_precheck = ("import sys; from causal3dident import diskspace; diskspace.check_free_space = lambda *a: None; "
                   "from causal3dident.cli import main; sys.argv = ['c3di', *sys.argv[1:]]; main()")
    proc = subprocess.run([sys.executable, "-c", no_precheck, "merge", *map(str, shards), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"Error: no space left on device writing {out}") and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and list(out.parent.iterdir()) == []


# -- rendered shards ------------------------------------------------------------------------------------
COMMON = ["--quality", "preview", "--device", "cpu", "--quiet"]
JOB = ["--n", "4", "--seed", "7", "--resolution", "32", *COMMON]


def render_shard(folder: Path, assets: Path, shard: int, *extra: str) -> Path:
    code, output = run("render", *JOB, *extra, "--assets", assets, "--shard", shard, "--num-shards", 2,
                       "--out", folder)
    assert code == 0, output
    return folder / f"causal3dident-shard{shard:05d}-of-00002.h5"


@pytest.fixture(scope="module")
def rendered_shards(assets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("rendered_shards")
    return [render_shard(folder, assets_dir, i) for i in range(2)]


@pytest.mark.render
def test_rendered_shards_of_another_quality_and_resolution_are_refused(rendered_shards: list[Path],
                                                                       assets_dir: Path, tmp_path: Path) -> None:
    assert run("merge", *rendered_shards, "--out", tmp_path / "ok.h5")[0] == 0
    other = render_shard(tmp_path / "other", assets_dir, 1, "--quality", "fast", "--resolution", "48")
    refused([rendered_shards[0], other], tmp_path / "m.h5", "differ in", "render_settings.quality (preview vs fast)",
            "render_settings.resolution (32 vs 48)")
    refused([rendered_shards[1]], tmp_path / "m.h5", "shard 0 of 2 is missing (given: 1)")


@pytest.mark.render
def test_rendered_shards_of_other_meshes_are_refused(rendered_shards: list[Path], assets_dir: Path,
                                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A shard rendered by a package whose manifest names another teapot (here: the cow's mesh)."""
    from causal3dident.render import assets

    packaged = assets.manifest()
    cow = next(m for m in packaged["meshes"] if m["name"] == "cow")

    def other_teapot() -> dict:
        data = json.loads(json.dumps(packaged))
        data["meshes"][0].update(file=cow["file"], sha256=cow["sha256"])
        return data

    monkeypatch.setattr(assets, "manifest", other_teapot)
    other = render_shard(tmp_path / "meshes", assets_dir, 1)
    monkeypatch.undo()
    refused([rendered_shards[0], other], tmp_path / "m.h5", "differ in render_settings.meshes[0].sha256")


@pytest.mark.render
def test_rendered_shards_and_latents_shards_do_not_mix(rendered_shards: list[Path], tmp_path: Path) -> None:
    latents = tmp_path / "z1.h5"
    assert run("latents", "--n", 4, "--seed", 7, "--shard", 1, "--num-shards", 2, "--out", latents)[0] == 0
    refused([rendered_shards[0], latents], tmp_path / "m.h5", "differ in")
