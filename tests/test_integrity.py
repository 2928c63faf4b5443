"""Nothing lost, nothing silently wrong (docs/integrity.md): readers never write, damaged pixels are found and
named, malformed files fail at construction, exports replace instead of mixing.

Files are damaged on disk as a failing disk or a bad copy would: bits flipped inside an image's chunk and a
chunk zeroed (located with h5py's chunk info), for gzip and LZ4 files.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch.utils.data import DataLoader

from causal3dident import Causal3DIdent
from causal3dident.cli import main
from causal3dident.convert import convert, export, repack
from causal3dident.errors import DamagedFileError, DatasetFileError
from causal3dident.generate import build_config, merge_files, write_latents_file
from causal3dident.original_layout import OriginalSplit
from causal3dident.store import create_image_dataset, verify
from causal3dident.testing import draw_images, make_synthetic_dataset

C3DI = str(Path(sys.executable).with_name("c3di"))


def c3di(*args: str | Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([C3DI, *map(str, args)], capture_output=True, text=True, timeout=300, **kwargs)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def folder_state(folder: Path) -> tuple:
    """What a writer would change: the folder's entries, its mtime, and each file's bytes and mtime."""
    entries = sorted(p.name for p in folder.iterdir())
    return (entries, folder.stat().st_mtime_ns,
            [(p.name, sha256(p), p.stat().st_mtime_ns) for p in sorted(folder.iterdir()) if p.is_file()])


def as_older_file(path: Path) -> Path:
    """Strip what writers now add (pixel checksums, stored statistics): a file as earlier versions wrote it."""
    with h5py.File(path, "r+") as f:
        del f["checksums"]
        del f.attrs["stats"]
    return path


def damage(path: Path, dataset: str, row: int, how: str) -> None:
    """Damage image ``row``'s chunk in the file's bytes: flip bits in its middle byte ('flip') or its last byte
    ('flip-last': in LZ4 always a literal, so the chunk still decodes, to other pixels), or zero it ('zero')."""
    with h5py.File(path, "r") as f:
        info = f[dataset].id.get_chunk_info_by_coord((row, 0, 0, 0))
    with open(path, "r+b") as fh:
        if how.startswith("flip"):
            fh.seek(info.byte_offset + (info.size - 1 if how == "flip-last" else info.size // 2))
            byte = fh.read(1)[0]
            fh.seek(-1, os.SEEK_CUR)
            fh.write(bytes([byte ^ 0x24]))
        else:
            fh.seek(info.byte_offset)
            fh.write(bytes(info.size))


@pytest.fixture()
def gzip_h5(synthetic_h5: Path, tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    return Path(shutil.copy(synthetic_h5, tmp_path / "data" / "train.h5"))


@pytest.fixture()
def lz4_h5(synthetic_h5: Path, tmp_path: Path) -> Path:
    (tmp_path / "lz4").mkdir()
    return repack(synthetic_h5, tmp_path / "lz4" / "train.h5", compression="lz4")


# -- 1. reading never writes the data file (nor its folder) ---------------------------------------------------------
@pytest.mark.parametrize("older", [False, True], ids=["with-stored-stats", "older-file"])
def test_reading_writes_neither_the_file_nor_its_folder(gzip_h5: Path, tmp_path: Path, monkeypatch, older) -> None:
    monkeypatch.setenv("C3DI_CACHE_DIR", str(tmp_path / "cache"))
    if older:
        as_older_file(gzip_h5)
    folder = gzip_h5.parent
    before = folder_state(folder)
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)  # read-only (root ignores this: the state comparison still holds)
    gzip_h5.chmod(stat.S_IRUSR)
    try:
        ds = Causal3DIdent(gzip_h5, image_format="tensor", target_type="index")
        stats = ds.stats
        with h5py.File(gzip_h5, "r") as f:
            pixels = f["images"][...].reshape(-1, 3) / 255.0
        np.testing.assert_allclose(stats.mean, pixels.mean(0), rtol=1e-12)
        np.testing.assert_allclose(stats.std, pixels.std(0), rtol=1e-9)
        assert Causal3DIdent(gzip_h5).stats == stats  # from the file, or from the user cache for an older file
        assert (tmp_path / "cache").is_dir() == older
        pairs = Causal3DIdent(gzip_h5, pairs="nearest:hues", image_format="tensor", target_type="index")
        batches = list(DataLoader(pairs, batch_size=16, num_workers=2))
        assert sum(len(b[0]) for b in batches) == 64
        Causal3DIdent(gzip_h5, in_memory=True)[3]
        out = tmp_path / "out"
        run_commands(("info", gzip_h5), ("verify", gzip_h5), ("export", gzip_h5, out / "export", "--unbalanced", "keep"),
                     ("export", gzip_h5, out / "csv", "--format", "csv"),
                     ("card", gzip_h5, "--out", out / "card", "--no-figures"))
    finally:
        folder.chmod(stat.S_IRWXU)
        gzip_h5.chmod(stat.S_IRUSR | stat.S_IWUSR)
    assert folder_state(folder) == before


@pytest.mark.slow  # matplotlib: about a minute on 2 busy cores
def test_card_and_figures_write_neither_the_file_nor_its_folder(gzip_h5: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("C3DI_CACHE_DIR", str(tmp_path / "cache"))
    folder = as_older_file(gzip_h5).parent
    before = folder_state(folder)
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        run_commands(("card", gzip_h5, "--out", tmp_path / "card"), ("figures", gzip_h5, "--out", tmp_path / "fig"))
    finally:
        folder.chmod(stat.S_IRWXU)
    assert folder_state(folder) == before


def run_commands(*commands: tuple) -> None:
    """Run c3di commands in this process (so that monkeypatched settings hold); each must succeed."""
    for args in commands:
        result = CliRunner().invoke(main, list(map(str, args)))
        assert result.exit_code == 0, (args, result.output[-2000:])


def test_a_file_open_for_writing_elsewhere_is_busy_not_damaged(gzip_h5: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", "import h5py, sys, time\n"
                               f"f = h5py.File({str(gzip_h5)!r}, 'r+')\nprint('open', flush=True)\ntime.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(DatasetFileError, match="is busy: another process has it open for writing") as info:
            Causal3DIdent(gzip_h5)
        assert "damaged" not in str(info.value)
        result = c3di("info", gzip_h5)
        assert result.returncode == 2 and "busy" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    finally:
        holder.kill()
        holder.wait()
    assert len(Causal3DIdent(gzip_h5)) == 64


# -- 2. verify checks the pixels; the loader names the file and sample ----------------------------------------------
@pytest.mark.parametrize("codec", ["gzip", "lz4"])
@pytest.mark.parametrize("dataset, how", [("images", "flip"), ("images", "flip-last"), ("images", "zero"),
                                          ("pairs/hues/images", "zero")])
def test_verify_finds_damaged_pixels_and_names_the_sample(gzip_h5, lz4_h5, codec, dataset, how) -> None:
    path = gzip_h5 if codec == "gzip" else lz4_h5
    assert c3di("verify", path).returncode == 0
    damage(path, dataset, 37, how)
    result = c3di("verify", path)
    assert result.returncode == 1, result.stderr
    defects = [line for line in result.stderr.splitlines() if line.startswith("DEFECT")]
    assert len(defects) == 1 and f"/{dataset}: sample 37 (index 37)" in defects[0], result.stderr
    assert "1 of 64 images damaged" in defects[0]
    if codec == "lz4" and how == "flip-last":
        assert "decodes to other pixels than were written" in defects[0]  # found by its checksum alone
    assert "verifying pixels" in result.stderr and "192/192" in result.stderr  # the progress bar


@pytest.mark.parametrize("codec", ["gzip", "lz4"])
def test_the_loader_names_the_file_and_sample_even_in_workers(gzip_h5, lz4_h5, codec) -> None:
    path = gzip_h5 if codec == "gzip" else lz4_h5
    damage(path, "images", 21, "flip" if codec == "gzip" else "flip-last")  # fails to inflate / wrong pixels
    ds = Causal3DIdent(path, image_format="tensor")
    assert ds[20] is not None
    named = re.escape(f"{path}: sample 21 of /images is damaged: it ")
    with pytest.raises(DamagedFileError, match=named) as info:
        ds[21]
    assert "\n" not in str(info.value)
    loader = DataLoader(ds, batch_size=8, num_workers=2)
    with pytest.raises(DamagedFileError, match=named):
        list(loader)
    with pytest.raises(DamagedFileError, match=r"sample 21 of /images is damaged"):
        Causal3DIdent(path, in_memory=True)


def test_unchecked_lz4_reads_return_wrong_pixels_silently_which_is_why_they_are_checked(synthetic_h5, lz4_h5):
    with h5py.File(synthetic_h5) as f:
        truth = f["images"][21]
    damage(lz4_h5, "images", 21, "flip-last")
    image, _ = Causal3DIdent(lz4_h5, image_format="tensor", verify_checksums=False)[21]
    assert not np.array_equal(image.permute(1, 2, 0).numpy(), truth)  # no decoder error: only the CRC tells


def test_files_written_before_checksums_are_still_decoded_in_full(gzip_h5: Path) -> None:
    as_older_file(gzip_h5)
    result = c3di("verify", gzip_h5)
    assert result.returncode == 0 and "no checksums" in result.stdout
    assert "NOTE: /images has no pixel checksums" in result.stderr
    damage(gzip_h5, "pairs/hues/images", 5, "zero")
    result = c3di("verify", gzip_h5)
    assert result.returncode == 1 and "DEFECT: /pairs/hues/images: sample 5 (index 5) does not decode" in result.stderr
    ds = Causal3DIdent(gzip_h5, pairs="hues", image_format="tensor")
    with pytest.raises(DamagedFileError, match="sample 5 of /pairs/hues/images"):
        ds[5]


def test_every_writer_seals_checksums_of_the_pixels_and_the_statistics(synthetic_h5, lz4_h5, tmp_path) -> None:
    export(synthetic_h5, tmp_path / "orig", unbalanced="keep")
    converted = convert(tmp_path / "orig", tmp_path / "converted.h5")
    for path in (synthetic_h5, lz4_h5, converted):
        with h5py.File(path, "r") as f:
            assert f["checksums"].attrs["algorithm"] == "crc32" and "stats" in f.attrs
            for name in ("images", "pairs/hues/images", "pairs/positions/images"):
                if name in f:
                    expected = [zlib.crc32(image.tobytes()) for image in f[name][...]]
                    assert f[f"checksums/{name}"][...].tolist() == expected, (path, name)
    assert verify(converted) == [] and verify(lz4_h5) == []


def _image_shards(folder: Path, codec: str) -> list[Path]:
    """Two shards of one job with synthetic images, as two render machines would write them."""
    from causal3dident.checksums import seal

    config = build_config("causal3dident", 20, pairs="hues")
    shards = []
    for i in range(2):
        path = write_latents_file(folder / f"latents{i}.h5", config, seed=1, shard=i, num_shards=2)
        with h5py.File(path, "r+") as f:
            n = len(f["latents"])
            create_image_dataset(f, "images", n, 16, 16)[...] = draw_images(f["latents"][...], f["classes"][...], 16)
            f.attrs["num_rendered"] = n
            seal(f)
        shards.append(repack(path, folder / f"shard{i}.h5", compression=codec))
    return shards


def test_merge_keeps_the_shards_checksums_and_refuses_a_damaged_shard(tmp_path: Path) -> None:
    shards = _image_shards(tmp_path, "lz4")
    merged = merge_files(shards, tmp_path / "merged.h5")
    with h5py.File(merged) as f, h5py.File(shards[0]) as a, h5py.File(shards[1]) as b:
        assert f["checksums/images"][...].tolist() == [*a["checksums/images"][...], *b["checksums/images"][...]]
        assert f.attrs["stats"] != a.attrs["stats"]  # the merged file's own statistics
    assert verify(merged) == []
    damage(shards[1], "images", 3, "flip-last")  # LZ4: decodes without error, to other pixels
    with pytest.raises(DamagedFileError, match="sample 13 of /images decodes to other pixels"):
        merge_files(shards, tmp_path / "merged2.h5")
    assert not (tmp_path / "merged2.h5").exists()
    with pytest.raises(DamagedFileError, match=r"shard1.h5: sample 3 of /images is damaged"):
        repack(shards[1], tmp_path / "copy.h5", compression="gzip")
    assert not (tmp_path / "copy.h5").exists()


def test_merge_of_a_gzip_shard_that_does_not_decode_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    shards = _image_shards(tmp_path, "gzip")
    damage(shards[1], "images", 3, "flip")  # gzip: the chunk no longer inflates (HDF5 raises OSError)
    result = c3di("merge", *shards, "--out", tmp_path / "merged.h5")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert re.search(r"shard1\.h5: /images rows .* do not decode .*c3di verify shard1\.h5", result.stderr)
    assert not (tmp_path / "merged.h5").exists() and not list(tmp_path.glob("merged.h5*"))


# -- 3. malformed files fail at construction, in one line -----------------------------------------------------------
def _malform(path: Path, how: str) -> None:
    with h5py.File(path, "r+") as f:
        if how == "schema_version_two":
            f.attrs["schema_version"] = "two"
        elif how == "pairs_as_dataset":
            del f["pairs"]
            f["pairs"] = np.zeros((64, 10), np.float32)
        elif how == "no_classes":
            del f["classes"]
        else:
            del f.attrs[how.removeprefix("no_")]


@pytest.mark.parametrize("how, message", [
    ("schema_version_two", "schema version 'two', not a number"),
    ("pairs_as_dataset", "/pairs is a dataset, not a group"),
    ("no_classes", "missing dataset /classes"),
    ("no_seed", "missing root attribute 'seed'"),
    ("no_config", "missing root attribute 'config'"),
])
def test_malformed_files_fail_at_construction_and_in_info_in_one_line(gzip_h5: Path, how, message) -> None:
    _malform(gzip_h5, how)
    with pytest.raises(DatasetFileError, match=message) as info:
        Causal3DIdent(gzip_h5)
    assert str(gzip_h5) in str(info.value) and "\n" not in str(info.value)
    result = c3di("info", gzip_h5)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    result = c3di("verify", gzip_h5)
    assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr


def test_indices_must_be_integers(synthetic_h5: Path) -> None:
    ds = Causal3DIdent(synthetic_h5, target_type="index")
    for bad in (1.7, "3", None):
        with pytest.raises(TypeError, match="dataset indices must be integers"):
            ds[bad]
    with pytest.raises(TypeError, match="dataset indices must be integers"):
        ds.__getitems__([1.5, 2.0])
    assert ds[np.int64(3)][1] == 3 and ds[torch.tensor(4)][1] == 4 and ds[-1][1] == 63
    assert [t for _, t in ds.__getitems__(np.array([5, 6], dtype=np.uint8))] == [5, 6]


# -- 4. exports replace, never mix ----------------------------------------------------------------------------------
def _pixels_by_file(split: Path) -> dict[str, np.ndarray]:
    data = OriginalSplit.open(split)
    return dict(zip(data.files, data.read(range(len(data.files)))))


def test_export_overwrite_replaces_the_earlier_export_whole(tmp_path: Path) -> None:
    small = make_synthetic_dataset(tmp_path / "small" / "train.h5", n=40, resolution=16, pairs=(), seed=1)
    large = make_synthetic_dataset(tmp_path / "large" / "train.h5", n=150, resolution=16, pairs=(), seed=2)
    for first, second in ((small, large), (large, small)):  # other zero padding, other sample counts
        out = tmp_path / f"export-{first.parent.name}"
        export(first, out, unbalanced="keep")
        export(second, out, overwrite=True, unbalanced="keep")
        fresh = tmp_path / f"fresh-{first.parent.name}"
        export(second, fresh, unbalanced="keep")
        got, want = _pixels_by_file(out / "trainset"), _pixels_by_file(fresh / "trainset")
        assert sorted(got) == sorted(want)
        assert all(np.array_equal(got[name], want[name]) for name in want)
        assert sorted(p.name for p in out.iterdir()) == ["trainset"]  # no staging folder left
        export(first, out, fmt="csv", overwrite=True)
        export(second, out, fmt="csv", overwrite=True)
        assert len(list((out / "images" / "train").iterdir())) == len(h5py.File(second)["index"])


def test_a_killed_export_leaves_the_earlier_export_intact_and_the_rerun_cleans_up(tmp_path: Path) -> None:
    first = make_synthetic_dataset(tmp_path / "a" / "train.h5", n=40, resolution=16, pairs=(), seed=1)
    second = make_synthetic_dataset(tmp_path / "b" / "train.h5", n=2000, resolution=32, pairs=(), seed=2)
    out = tmp_path / "export"
    export(first, out, unbalanced="keep")
    before = {p.relative_to(out): sha256(p) for p in out.rglob("*") if p.is_file()}
    proc = subprocess.Popen([C3DI, "export", str(second), str(out), "--overwrite", "--workers", "1",
                             "--unbalanced", "keep"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if any(out.glob(".trainset.tmp-*/images_*/*.png")):
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the export finished before it could be killed: make it larger"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert {p.relative_to(out): sha256(p) for p in out.rglob("*") if p.is_file()
            and not p.relative_to(out).parts[0].startswith(".")} == before
    assert list(out.glob(".trainset.tmp-*"))  # the killed run's staging folder
    export(second, out, overwrite=True, unbalanced="keep")
    assert sorted(p.name for p in out.iterdir()) == ["trainset"]
    assert len(OriginalSplit.open(out / "trainset").files) == 2000


def test_the_original_layout_refuses_two_files_for_one_image(tmp_path: Path) -> None:
    path = make_synthetic_dataset(tmp_path / "train.h5", n=40, resolution=16, pairs=(), seed=1)
    export(path, tmp_path / "export", unbalanced="keep")
    folder = tmp_path / "export" / "trainset" / "images_1"
    first = sorted(folder.iterdir())[0]
    shutil.copy(first, folder / f"0{first.name}")  # e.g. 0.png and 00.png: both image 0
    with pytest.raises(DatasetFileError, match=rf"holds both {first.name} and 0{first.name} for image "
                                               rf"{int(first.stem)}: it is ambiguous") as info:
        Causal3DIdent(tmp_path / "export")
    assert "\n" not in str(info.value)


def test_a_png_of_another_size_is_named(tmp_path: Path) -> None:
    from PIL import Image

    path = make_synthetic_dataset(tmp_path / "train.h5", n=40, resolution=16, pairs=(), seed=1)
    export(path, tmp_path / "export", unbalanced="keep")
    folder = max((tmp_path / "export" / "trainset").glob("images_*"), key=lambda p: len(list(p.iterdir())))
    odd = sorted(folder.iterdir())[-1]  # not a class's first image, which sets the expected size
    Image.new("RGB", (20, 16)).save(odd)
    ds = Causal3DIdent(tmp_path / "export", image_format="tensor")
    named = re.escape(f"{odd} is 16x20 px, the other images 16x16")
    position = ds.source.split.files.index(f"{folder.name}/{odd.name}")
    with pytest.raises(DatasetFileError, match=named) as info:
        ds[position]
    assert "\n" not in str(info.value)
    with pytest.raises(DatasetFileError, match=named):
        list(DataLoader(ds, batch_size=8, num_workers=1))
    result = c3di("convert", tmp_path / "export", tmp_path / "back.h5", "--quiet")
    assert result.returncode == 2 and f"{odd} is 16x20 px" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
