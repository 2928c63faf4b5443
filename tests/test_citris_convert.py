"""``c3di convert --format citris``: CITRIS's .npz files back into our HDF5 files, losslessly.

export -> convert -> export gives the same arrays byte for byte (synthetic pixels from causal3dident.testing in the
fast tests; real bpy renders of a sequence and its triplets in the render-marked one). Bad input is one line, exit
code 2, and no output file.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from causal3dident.checksums import seal
from causal3dident.citris_convert import convert_citris
from causal3dident.citris_export import CITRIS_TARGETS, export_citris
from causal3dident.cli import main
from causal3dident.errors import ConfigError
from causal3dident.latents import CLASS_NAMES
from causal3dident.store import create_image_dataset, open_dataset, verify
from causal3dident.testing import draw_images

C3DI = [sys.executable, "-c", "from causal3dident.cli import main; main()"]
KEYS = ["imgs", "interventions", "raw_latents", "shape_latents"]


def c3di(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*C3DI, *args], capture_output=True, text=True, timeout=300)


def sequence_file(path: Path, n: int, seed: int, preset: str = "temporal_causal3dident") -> Path:
    """A sampled sequence with synthetic pixels: the conversion, not the renderer, is tested here."""
    result = CliRunner().invoke(main, ["latents", "--preset", preset, "--n", str(n), "--seed", str(seed),
                                       "--out", str(path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with open_dataset(path, "r+") as f:
        create_image_dataset(f, "images", n, 16, 16)[...] = draw_images(f["latents"][...], f["classes"][...], 16)
        f.attrs["num_rendered"] = n
        seal(f, source="synthetic images")
    return path


def assert_same_npz(a: Path, b: Path) -> None:
    x, y = np.load(a), np.load(b)
    assert sorted(x.files) == sorted(y.files) == KEYS
    for key in KEYS:
        assert x[key].dtype == y[key].dtype and x[key].shape == y[key].shape, key
        assert x[key].tobytes() == y[key].tobytes(), key


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("citris")
    seq = sequence_file(folder / "train.h5", 60, 7)
    return {"seq": seq, "npz": export_citris(seq, folder / "release"), "folder": folder}


def test_export_convert_export_is_byte_identical(exported: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "train.h5"
    result = c3di("convert", str(exported["npz"].parent), str(out), "--format", "citris", "--split", "train",
                  "--quiet")
    assert result.returncode == 0, result.stderr
    assert_same_npz(exported["npz"], export_citris(out, tmp_path / "again"))
    with h5py.File(exported["seq"]) as a, h5py.File(out) as b:
        assert np.array_equal(a["images"][...], b["images"][...])
        assert np.array_equal(a["classes"][...], b["classes"][...])  # CITRIS's shape order mapped back to ours
        assert np.array_equal(a["sequence/targets"][...], b["sequence/targets"][...])  # row 0 all 0 again
        assert np.array_equal(a["sequence/latents"][...].astype(np.float32), b["sequence/latents"][...])
        assert b.attrs["split"] == "train"
        config = json.loads(b.attrs["config"])
    assert config["temporal"]["name"] == "temporal_causal3dident"
    info = c3di("info", str(out))
    assert info.returncode == 0 and "  converted: from citris files train.npz (SHA-256 " in info.stdout, info.stdout
    assert config["converted"]["files"] == [{"name": "train.npz", "bytes": exported["npz"].stat().st_size,
                                             "sha256": hashlib.sha256(exported["npz"].read_bytes()).hexdigest()}]


def test_classes_follow_citris_shape_order(tmp_path: Path) -> None:
    """shape_latents index CITRIS's order (teapot, armadillo, bunny, cow, dragon, head, horse), /classes ours."""
    citris = np.arange(7, dtype=np.uint8)
    n = len(citris)
    np.savez(tmp_path / "train.npz", imgs=np.zeros((n, 8, 8, 3), np.uint8),
             interventions=np.zeros((n - 1, 12), np.int64), raw_latents=np.zeros((n, 10), np.float32),
             shape_latents=np.stack([citris, np.zeros(n, np.uint8)], axis=1))
    out = convert_citris(tmp_path, tmp_path / "train.h5")
    with h5py.File(out) as f:
        names = [CLASS_NAMES[c] for c in f["classes"][...]]
    assert names == ["teapot", "armadillo", "hare", "cow", "dragon", "head", "horse"]


def test_converted_file_passes_verify_and_says_what_it_cannot_check(exported: dict[str, Path], tmp_path: Path) -> None:
    out = convert_citris(exported["npz"].parent, tmp_path / "train.h5", split="train")
    notes: list[str] = []
    assert verify(out, notes=notes) == []
    assert any("converted from CITRIS's train.npz" in n and "cannot be regenerated" in n for n in notes)
    result = c3di("verify", str(out))
    assert result.returncode == 0 and result.stdout.strip() == f"{out}: OK", result.stdout
    assert "NOTE: converted from CITRIS's train.npz" in result.stderr
    with h5py.File(out, "r+") as f:
        f["sequence/latents"][3, 0] += 0.5
    assert verify(out) == ["/latents or /classes disagree with /sequence/latents (the converted CITRIS values)"]


def test_converted_file_loads_in_the_sequence_dataset(exported: dict[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from causal3dident.sequence_dataset import TemporalCausal3DIdent

    out = convert_citris(exported["npz"], tmp_path / "train.h5")
    ours, theirs = TemporalCausal3DIdent(exported["seq"], seq_len=4), TemporalCausal3DIdent(out, seq_len=4)
    assert len(ours) == len(theirs) == 57 and theirs.target_names == list(CITRIS_TARGETS)
    for i in (0, 1, 30, 56):
        for a, b in zip(ours[i], theirs[i]):
            assert np.array_equal(a.numpy(), b.numpy())


def triplet_arrays(npz: Path) -> dict[str, np.ndarray]:
    """A CITRIS triplet file's arrays mixing the frames of the sequence ``npz`` (their images: the mixed frame's is
    the first frame mirrored, as synthetic pixels)."""
    arrays = np.load(npz)
    rng = np.random.default_rng(0)
    n = 9
    sources = rng.integers(0, len(arrays["imgs"]), (n, 2))
    masks = rng.integers(0, 2, (n, 12)).astype(np.int64)
    masks[:, 5] = masks[:, 11] = masks[:, 0]
    first, second = (arrays["raw_latents"][sources[:, k]] for k in (0, 1))
    mixed_latents = np.where(masks[:, :10] == 0, first, second)
    mixed_shape = np.where(masks[:, 10:] == 0, *(arrays["shape_latents"][sources[:, k]] for k in (0, 1)))
    return {
        "imgs": np.stack([arrays["imgs"][sources[:, 0]], arrays["imgs"][sources[:, 1]],
                          arrays["imgs"][sources[:, 0]][:, ::-1]], axis=1),
        "interventions": masks,
        "raw_latents": np.stack([arrays["raw_latents"][sources[:, 0]], arrays["raw_latents"][sources[:, 1]],
                                 mixed_latents], axis=1),
        "shape_latents": np.stack([arrays["shape_latents"][sources[:, 0]], arrays["shape_latents"][sources[:, 1]],
                                   mixed_shape], axis=1)}


def test_triplets_convert_and_export_again_byte_identical(exported: dict[str, Path], tmp_path: Path) -> None:
    """A CITRIS triplet file (first, second, mixed frame) -> a triplet file -> the same .npz."""
    triplets = triplet_arrays(exported["npz"])
    release = tmp_path / "release"
    release.mkdir()
    np.savez(release / "val_triplets_coarse.npz", **triplets)
    np.savez(release / "val_triplets.npz", **triplets)
    out = tmp_path / "val.h5"
    result = c3di("convert", str(release), str(out), "--split", "val_triplets_coarse", "--quiet")  # detected
    assert result.returncode == 0, result.stderr
    again = export_citris(out, tmp_path / "again")
    assert again.name == "val_triplets_coarse.npz"
    assert_same_npz(release / "val_triplets_coarse.npz", again)
    notes: list[str] = []
    assert verify(out, notes=notes) == [] and notes
    with h5py.File(out) as f:
        assert json.loads(f.attrs["config"])["triplets"]["masks"] == "coarse" and "triplets/sources" not in f
    result = c3di("convert", str(release), str(tmp_path / "x.h5"), "--split", "val")
    assert result.returncode == 2 and "several files of split 'val'" in result.stderr, result.stderr


def test_converted_files_render_from_their_citris_latents(exported: dict[str, Path], tmp_path: Path) -> None:
    """c3di render of a converted file renders CITRIS's latents (raw_latents, CITRIS's scene) with the shapes mapped
    to this package's meshes, and keeps them in the output (/sequence, /triplets/*: no seed regenerates them)."""
    from causal3dident.render.job import file_input, sequence_triplets

    arrays = np.load(exported["npz"])
    out = convert_citris(exported["npz"], tmp_path / "train.h5")
    inp = file_input(out)
    assert inp.scene == "citris" and inp.scene_latents.dtype == np.float64
    assert np.array_equal(inp.scene_latents, arrays["raw_latents"].astype(np.float64))
    with h5py.File(exported["seq"]) as f:
        assert np.array_equal(inp.classes, f["classes"][...])  # this package's labels, as the sampled file had them
    assert np.array_equal(inp.extras["sequence/latents"], arrays["raw_latents"].astype(np.float64))
    assert np.array_equal(inp.extras["sequence/targets"][1:], arrays["interventions"])
    assert "images" not in inp.config and "render" in inp.config["converted"]["images"]
    shard = file_input(out, shard=1, num_shards=2)
    assert np.array_equal(shard.scene_latents, inp.scene_latents[30:]) and shard.shard["start"] == 30
    with pytest.raises(ConfigError, match="converted from CITRIS's files"):  # its draws would need a seed
        sequence_triplets(out, "temporal_causal3dident", None, 0, 4)
    shard_like = tmp_path / "shard_like.h5"  # a rendered shard's row 0 is a step into its first frame, not frame 0
    shard_like.write_bytes(out.read_bytes())
    with h5py.File(shard_like, "r+") as f:
        step = int(np.flatnonzero(f["sequence/targets"][...].any(axis=1))[0])
        f["sequence/targets"][0] = f["sequence/targets"][step]
        f.attrs["shard"] = json.dumps({"job": "x", "index": 1, "count": 2, "start": 5, "stop": 65, "total": 65})
    assert verify(shard_like) == []
    with h5py.File(shard_like, "r+") as f:
        del f.attrs["shard"]
    assert any("row 0" in p for p in verify(shard_like))
    with h5py.File(out, "r+") as f:  # a converted file without the CITRIS values rendering reads: one line
        del f["sequence/targets"]
    result = c3di("render", str(out), "--out", str(tmp_path / "x.h5"), "--resolution", "32", "--device", "cpu")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "lacks /sequence/targets" in result.stderr and "convert the CITRIS files again" in result.stderr
    assert not (tmp_path / "x.h5").exists()

    triplets = triplet_arrays(exported["npz"])
    release = tmp_path / "release"
    release.mkdir()
    np.savez(release / "val_triplets.npz", **triplets)
    inp = file_input(convert_citris(release, tmp_path / "val.h5"))
    assert np.array_equal(inp.scene_latents, triplets["raw_latents"][:, 2].astype(np.float64))
    for k, which in enumerate(("first", "second")):
        assert np.array_equal(inp.views[f"triplets/{which}/images"], triplets["raw_latents"][:, k].astype(np.float64))
    assert np.array_equal(inp.extras["triplets/masks"], triplets["interventions"])


def _release(folder: Path, exported: Path, **change: np.ndarray | None) -> Path:
    """A copy of the exported train.npz in ``folder`` with some arrays changed (None: left out)."""
    arrays = dict(np.load(exported))
    for key, value in change.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    folder.mkdir()
    np.savez(folder / "train.npz", **arrays)
    return folder


@pytest.mark.parametrize("case, expected", [
    ("missing", "lacks shape_latents"),
    ("shape", "raw_latents has shape [60, 9]"),
    ("targets", "interventions hold values other than 0 and 1"),
    ("material", "the material"),
    ("split", "has no CITRIS file of split 'test'"),
    ("exists", "already exists"),
    ("not_npz", "is not an .npz file"),
])
def test_bad_input_is_one_line_and_writes_nothing(exported: dict[str, Path], tmp_path: Path, case: str,
                                                  expected: str) -> None:
    arrays = np.load(exported["npz"])
    changes = {"missing": {"shape_latents": None}, "shape": {"raw_latents": arrays["raw_latents"][:, :9]},
               "targets": {"interventions": arrays["interventions"] * 2},
               "material": {"shape_latents": arrays["shape_latents"] + np.array([0, 1], np.uint8)}}
    source, split, extra = exported["npz"].parent, "train", []
    if case in changes:
        source = _release(tmp_path / "release", exported["npz"], **changes[case])
    elif case == "split":
        split = "test"
    elif case == "not_npz":
        source = tmp_path / "train.npz"
        source.write_bytes(b"not a zip file")
        extra = ["--format", "citris"]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "train.h5"
    if case == "exists":
        out.write_bytes(b"keep me")
    result = c3di("convert", str(source), str(out), "--split", split, "--quiet", *extra)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and expected in result.stderr, result.stderr
    assert sorted(p.name for p in out_dir.iterdir()) == (["train.h5"] if case == "exists" else [])  # no temporary
    if case == "exists":
        assert out.read_bytes() == b"keep me"


def test_format_and_preset_options_are_checked(exported: dict[str, Path], tmp_path: Path) -> None:
    folder = exported["npz"].parent
    result = c3di("convert", str(folder), str(tmp_path / "a.h5"), "--format", "original")
    assert result.returncode == 2 and "no original-layout data" in result.stderr, result.stderr
    result = c3di("convert", str(folder), str(tmp_path / "b.h5"), "--preset", "causal3dident")
    assert result.returncode == 2 and "not a temporal preset" in result.stderr, result.stderr
    out = convert_citris(folder, tmp_path / "c.h5", preset="instantaneous_temporal_causal3dident")
    with h5py.File(out) as f:
        assert json.loads(f.attrs["config"])["temporal"]["name"] == "instantaneous_temporal_causal3dident"
    assert not (tmp_path / "a.h5").exists() and not (tmp_path / "b.h5").exists()


def test_too_little_disk_is_one_line_before_writing(exported: dict[str, Path], small_tmpfs) -> None:
    disk = small_tmpfs("512k")  # the pre-check asks for the .npz's size plus 1 MiB, as convert and repack do
    result = c3di("convert", str(exported["npz"]), str(disk / "seq.h5"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"{disk / 'seq.h5'} needs about" in result.stderr and "nothing was written" in result.stderr
    assert list(disk.iterdir()) == []


def test_images_are_streamed_from_the_npz(exported: dict[str, Path]) -> None:
    """The images are read from the zip member in blocks, never as one array (a 250,000-frame train.npz is 3 GB)."""
    from causal3dident.citris_convert import _Member

    with zipfile.ZipFile(exported["npz"]) as zf:
        member = _Member(zf, "imgs", "x")
        blocks = list(member.blocks(rows=16))
    assert [len(b) for b in blocks] == [16, 16, 16, 12]
    assert np.array_equal(np.concatenate(blocks), np.load(exported["npz"])["imgs"])


@pytest.mark.render
def test_rendered_sequence_and_triplets_round_trip(assets_dir: Path, tmp_path: Path) -> None:
    """Real 32 px bpy renders: a sequence and its triplets, export -> convert -> export, byte for byte."""
    from test_render_job import COMMON, run_cli

    seq, trip = tmp_path / "seq.h5", tmp_path / "val_triplets.h5"
    code, output = run_cli("render", "--preset", "temporal_causal3dident", "--n", "6", "--seed", "3", *COMMON,
                           "--assets", str(assets_dir), "--out", str(seq))
    assert code == 0, output
    code, output = run_cli("render", str(seq), "--triplets", "3", "--seed", "1", "--split", "val",
                           "--triplet-masks", "coarse", *COMMON, "--assets", str(assets_dir), "--out", str(trip))
    assert code == 0, output
    for source, split in ((seq, "train"), (trip, "val")):
        first = export_citris(source, tmp_path / "release", split=split)
        converted = convert_citris(tmp_path / "release", tmp_path / f"converted_{first.stem}.h5", split=first.stem)
        assert verify(converted) == []
        assert_same_npz(first, export_citris(converted, tmp_path / "again"))


CITRIS_ORDER = ["teapot", "armadillo", "hare", "cow", "dragon", "head", "horse"]  # their "bunny" is our hare


@pytest.mark.render
@pytest.mark.slow
def test_converted_sequence_renders_as_a_direct_render_of_its_latents(assets_dir: Path, tmp_path: Path) -> None:
    """Real 32 px bpy renders: export -> convert -> c3di render of the converted file gives the pixels of a direct
    render of the exported raw_latents with the shapes read in CITRIS's order, and keeps CITRIS's arrays."""
    from test_render_job import COMMON, run_cli

    from causal3dident.render.config import render_config
    from causal3dident.render.devices import CPU
    from causal3dident.render.preview import render_latents

    npz = export_citris(sequence_file(tmp_path / "seq.h5", 3, 22), tmp_path / "release")
    arrays = np.load(npz)
    classes = np.array([CLASS_NAMES.index(CITRIS_ORDER[s]) for s in arrays["shape_latents"][:, 0]])
    assert {"hare", "armadillo"} <= {CLASS_NAMES[c] for c in classes}  # the two shapes whose index the orders swap
    converted, rendered = tmp_path / "converted.h5", tmp_path / "rendered.h5"
    assert run_cli("convert", str(tmp_path / "release"), str(converted), "--format", "citris", "--quiet")[0] == 0
    code, output = run_cli("render", str(converted), *COMMON, "--assets", str(assets_dir), "--out", str(rendered))
    assert code == 0, output
    direct = render_latents(arrays["raw_latents"].astype(np.float64), classes, render_config("preview", 32), [CPU],
                            assets=assets_dir, scene="citris")
    with h5py.File(rendered) as f:
        assert np.array_equal(f["images"][...], direct)
    notes: list[str] = []
    assert verify(rendered, notes=notes) == [] and notes  # checked against the CITRIS values it keeps
    again = np.load(export_citris(rendered, tmp_path / "again"))
    for key in ("interventions", "raw_latents", "shape_latents"):
        assert again[key].tobytes() == arrays[key].tobytes(), key
    assert np.array_equal(again["imgs"], direct)


def test_arrays_stored_in_fortran_order_convert(exported: dict[str, Path], tmp_path: Path) -> None:
    """np.savez keeps an array's memory order; a transposed or sliced array is stored in Fortran order."""
    arrays = np.load(exported["npz"])
    changed = {k: np.asfortranarray(arrays[k]) for k in KEYS}
    release = _release(tmp_path / "release", exported["npz"], **changed)
    with zipfile.ZipFile(release / "train.npz") as zf:
        assert all(np.lib.format.read_array_header_1_0(_skip_magic(zf.open(f"{k}.npy")))[1] for k in KEYS)
    out = convert_citris(release, tmp_path / "train.h5")
    assert_same_npz(exported["npz"], export_citris(out, tmp_path / "again"))


def _skip_magic(fh):
    np.lib.format.read_magic(fh)
    return fh
