"""The releases download like a torchvision dataset: against a loopback HTTP server serving archives of the
release's layout (built here from a synthetic ``c3di export``), with a manifest of their checksums."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from causal3dident import Causal3DIdent
from causal3dident.cli import INTERRUPTED_EXIT, main
from causal3dident.convert import export
from causal3dident.download import ARCHIVES, download, extract
from causal3dident.errors import ConfigError, DatasetFileError, DownloadError
from causal3dident.releases import MANIFEST_ENV, MIRROR_ENV, get_release, load_releases
from causal3dident.testing import draw_images, make_synthetic_dataset

RECORD = 4784282


# -- a loopback server that can drop a connection, ignore Range, or go slowly ----------------------
@dataclass
class Served:
    """What the server does; tests change it between requests."""

    files: dict[str, bytes] = field(default_factory=dict)  # URL path -> body
    ranges: bool = True  # honour Range requests
    drop_after: int | None = None  # close the next body after this many bytes (once)
    delay: float = 0.0  # seconds to sleep after each 512-byte block
    stall: bool = False  # never answer
    log: list[tuple[str, str | None, int]] = field(default_factory=list)  # (path, Range header, status)


class _Handler(BaseHTTPRequestHandler):
    served: Served

    def log_message(self, *args) -> None:  # noqa: ANN002
        pass

    def do_GET(self) -> None:  # noqa: N802
        served = self.server.served  # type: ignore[attr-defined]
        path, rng = self.path.split("?")[0], self.headers.get("Range")
        if served.stall:
            time.sleep(5)
            return
        body = served.files.get(path)
        if body is None:
            served.log.append((path, rng, 404))
            self.send_error(404)
            return
        start = int(rng.removeprefix("bytes=").split("-")[0]) if rng and served.ranges else 0
        if start >= len(body) > 0:
            served.log.append((path, rng, 416))
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(body)}")
            self.end_headers()
            return
        status = 206 if start else 200
        served.log.append((path, rng, status))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body) - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.end_headers()
        limit, served.drop_after = served.drop_after, None
        for at in range(start, len(body), 512):
            end = min(at + 512, len(body))
            if limit is not None and end - start > limit:
                self.wfile.write(body[at:start + limit])
                self.close_connection = True
                return
            self.wfile.write(body[at:end])
            time.sleep(served.delay)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # noqa: ANN001
        pass  # a client that hangs up mid-body (as the tests make it) is not the server's error


@pytest.fixture
def server():
    """A fresh loopback HTTP server on a free port; yields (base URL, Served)."""
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.served = Served()  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd.served  # type: ignore[attr-defined]
    httpd.shutdown()
    httpd.server_close()


# -- archives of the release's layout and their manifest -------------------------------------------
def _tar(folder: Path, arcname: str, padding: int = 0) -> bytes:
    """A .tar.gz of ``folder`` as ``arcname/`` (the release's trainset.tar.gz form), optionally with a
    ``padding`` bytes random member to make it slow to serve."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(folder, arcname=arcname)
        if padding:
            data = np.random.default_rng(0).bytes(padding)
            info = tarfile.TarInfo(f"{arcname}/padding.bin")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@dataclass
class Release:
    """The synthetic export, its archives and a manifest with their MD5s and sizes."""

    h5: dict[str, Path]
    archives: dict[str, bytes]
    manifest: Path
    folder: Path

    def serve(self, served: Served, **replace: bytes) -> None:
        for name, body in {**self.archives, **replace}.items():
            served.files[f"/{RECORD}/files/{name}"] = body


def _write_manifest(path: Path, bodies: dict[str, bytes]) -> Path:
    """The packaged manifest with the MD5 and size of every file named in ``bodies`` set to those of its body
    (as the published values are for the real archives)."""
    from importlib import resources

    data = json.loads(resources.files("causal3dident").joinpath("releases.json").read_text())
    for release in data["releases"].values():
        for file in release["files"]:
            if file["name"] in bodies:
                file.update(md5=hashlib.md5(bodies[file["name"]]).hexdigest(), size=len(bodies[file["name"]]))
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    folder = tmp_path_factory.mktemp("release")
    h5 = {"train": make_synthetic_dataset(folder / "train.h5", n=42, resolution=16, pairs=(), seed=4,
                                          balanced_classes=True),  # as the release: the original layout needs it
          "test": make_synthetic_dataset(folder / "test.h5", n=21, resolution=16, pairs=(), seed=5,
                                         balanced_classes=True)}
    for split, path in h5.items():
        export(path, folder / "export", split=split)  # what 'c3di export' writes: export/trainset, export/testset
    archives = {f"{split}set.tar.gz": _tar(folder / "export" / f"{split}set", f"{split}set") for split in h5}
    return Release(h5, archives, _write_manifest(folder / "releases.json", archives), folder)


@pytest.fixture
def mirror(server, release: Release, monkeypatch: pytest.MonkeyPatch) -> Served:
    """The loopback server serving the release, set as the mirror (C3DI_RELEASES_URL) with its manifest."""
    url, served = server
    release.serve(served)
    monkeypatch.setenv(MIRROR_ENV, url)
    monkeypatch.setenv(MANIFEST_ENV, str(release.manifest))
    return served


def _same_as_exported(ds: Causal3DIdent, h5: Path) -> None:
    """``ds`` holds the exported file's images and latents, class by class as the original layout orders them."""
    source = Causal3DIdent(h5, target_type=["latents", "class"], image_format="tensor")
    order = np.argsort(source.targets, kind="stable")
    assert len(ds) == len(source)
    for k, i in enumerate(order):
        image, (latents, label) = ds[k]
        image0, (latents0, label0) = source[int(i)]
        assert label == label0
        np.testing.assert_array_equal(image.numpy(), image0.numpy())
        np.testing.assert_array_equal(latents.numpy(), latents0.numpy())


def _requests(served: Served, name: str) -> list[tuple[str | None, int]]:
    return [(rng, status) for path, rng, status in served.log if path == f"/{RECORD}/files/{name}"]


# -- tests -----------------------------------------------------------------------------------------
def test_download_true_fetches_the_split_extracts_it_and_loads(mirror: Served, release: Release,
                                                                 tmp_path: Path) -> None:
    root = tmp_path / "data"
    ds = Causal3DIdent(root, split="train", download=True, target_type=["latents", "class"], image_format="tensor")
    _same_as_exported(ds, release.h5["train"])
    assert (root / "trainset" / "images_0").is_dir() and not (root / "testset").exists()
    assert sorted(p.name for p in (root / ARCHIVES).iterdir()) == ["trainset.tar.gz"]  # verified; no .part left
    assert not list(root.glob(".extracting-*"))
    assert _requests(mirror, "trainset.tar.gz") == [(None, 200)] and not _requests(mirror, "testset.tar.gz")
    again = Causal3DIdent(root, split="train", download=True)  # there already: nothing fetched
    assert len(again) == len(ds) and len(mirror.log) == 1


def test_missing_data_without_download_says_how_to_get_it(tmp_path: Path) -> None:
    for root in (tmp_path / "absent", tmp_path):
        with pytest.raises(DatasetFileError) as info:
            Causal3DIdent(root)
        message = str(info.value)
        assert "\n" not in message and "download=True" in message
        assert f"c3di download causal3dident --root {root}" in message


def test_cli_downloads_every_split_with_a_progress_bar_then_skips(server, release: Release,
                                                                   tmp_path: Path) -> None:
    url, served = server
    release.serve(served)
    env = {MANIFEST_ENV: str(release.manifest)}
    root = tmp_path / "data"
    result = CliRunner().invoke(main, ["download", "causal3dident", "--root", str(root), "--mirror", url], env=env)
    assert result.exit_code == 0, result.output
    assert "downloaded: train split of Causal3DIdent (Zenodo 4784282)" in result.stdout
    assert "downloaded: test split" in result.stdout
    assert "trainset.tar.gz" in result.stderr and "100%" in result.stderr  # tqdm's bar, on stderr
    for split in ("train", "test"):
        _same_as_exported(Causal3DIdent(root, split=split, target_type=["latents", "class"],
                                        image_format="tensor"), release.h5[split])
    served.log.clear()
    rerun = CliRunner().invoke(main, ["download", "causal3dident", "--root", str(root), "--mirror", url,
                                      "--quiet"], env=env)
    assert rerun.exit_code == 0 and rerun.stdout.count("already there:") == 2 and served.log == []


def test_resumes_after_the_connection_drops_mid_file(mirror: Served, release: Release, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    body = release.archives["trainset.tar.gz"]
    mirror.drop_after = len(body) // 3
    root = tmp_path / "data"
    Causal3DIdent(root, download=True)
    assert _requests(mirror, "trainset.tar.gz") == [(None, 200), (f"bytes={len(body) // 3}-", 206)]
    assert (root / ARCHIVES / "trainset.tar.gz").read_bytes() == body


def test_a_server_without_range_support_restarts_cleanly(mirror: Served, release: Release, tmp_path: Path) -> None:
    body = release.archives["trainset.tar.gz"]
    mirror.ranges, mirror.drop_after = False, len(body) // 2
    root = tmp_path / "data"
    Causal3DIdent(root, download=True)
    assert _requests(mirror, "trainset.tar.gz") == [(None, 200), (f"bytes={len(body) // 2}-", 200)]
    assert (root / ARCHIVES / "trainset.tar.gz").read_bytes() == body  # the whole file, once, not appended


def test_a_corrupted_archive_is_refused_in_one_line_and_removed(mirror: Served, release: Release,
                                                                 tmp_path: Path) -> None:
    body = bytearray(release.archives["trainset.tar.gz"])
    body[len(body) // 2] ^= 0xFF
    release.serve(mirror, **{"trainset.tar.gz": bytes(body)})
    root = tmp_path / "data"
    result = CliRunner().invoke(main, ["download", "causal3dident", "--root", str(root), "--split", "train",
                                       "--quiet"])
    assert result.exit_code == 2, result.output
    expected = hashlib.md5(release.archives["trainset.tar.gz"]).hexdigest()
    found = hashlib.md5(bytes(body)).hexdigest()
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith("Error: trainset.tar.gz from http://127.0.0.1:")
    assert f"MD5 {found}, expected {expected}" in line and "refused and removed" in line
    assert list((root / ARCHIVES).iterdir()) == [] and not (root / "trainset").exists()
    with pytest.raises(DatasetFileError, match="download=True"):  # nothing half-usable was left behind
        Causal3DIdent(root)


def test_a_damaged_archive_already_there_is_kept_aside_and_fetched_again(mirror: Served, release: Release,
                                                                          tmp_path: Path) -> None:
    archive = tmp_path / "data" / ARCHIVES / "trainset.tar.gz"
    archive.parent.mkdir(parents=True)
    archive.write_bytes(release.archives["trainset.tar.gz"][:1000])  # e.g. a truncated copy put there by hand
    Causal3DIdent(tmp_path / "data", download=True)
    assert archive.read_bytes() == release.archives["trainset.tar.gz"]
    assert archive.with_name("trainset.tar.gz.damaged").stat().st_size == 1000
    assert _requests(mirror, "trainset.tar.gz") == [(None, 200)]


def test_an_archive_already_downloaded_is_not_fetched_again(mirror: Served, release: Release,
                                                            tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / ARCHIVES).mkdir(parents=True)
    (root / ARCHIVES / "testset.tar.gz").write_bytes(release.archives["testset.tar.gz"])  # e.g. fetched by hand
    result = CliRunner().invoke(main, ["download", "causal3dident", "--root", str(root), "--split", "test",
                                       "--quiet"])
    assert result.exit_code == 0, result.output
    assert mirror.log == []
    _same_as_exported(Causal3DIdent(root, split="test", target_type=["latents", "class"], image_format="tensor"),
                      release.h5["test"])


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_ctrl_c_or_kill_leaves_only_a_resumable_part(server, release: Release, tmp_path: Path, sig) -> None:
    """A real signal to a real 'c3di download' in mid-file: a .part is all that is left; rerunning resumes it."""
    url, served = server
    body = _tar(release.folder / "export" / "trainset", "trainset", padding=96 * 1024)
    manifest = _write_manifest(tmp_path / "releases.json", {**release.archives, "trainset.tar.gz": body})
    release.serve(served, **{"trainset.tar.gz": body})
    served.delay = 0.02  # about 4 s for the whole file
    root = tmp_path / "data"
    args = ["download", "causal3dident", "--root", str(root), "--split", "train", "--quiet"]
    env = {**os.environ, MANIFEST_ENV: str(manifest), MIRROR_ENV: url}
    exe = Path(sys.executable).with_name("c3di")
    proc = subprocess.Popen([str(exe), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # even if our SIGINT is ignored
    part = root / ARCHIVES / "trainset.tar.gz.part"
    deadline = time.monotonic() + 120
    while not (part.is_file() and part.stat().st_size >= 8192) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    if sig == signal.SIGINT:
        assert proc.returncode == INTERRUPTED_EXIT, (out, err)
        assert err.strip().splitlines() == [err.strip()] and err.startswith("\ninterrupted: partial downloads")
        assert "resumes them" in err
    else:
        assert proc.returncode == -signal.SIGKILL
    kept = part.stat().st_size
    assert 0 < kept < len(body) and part.read_bytes() == body[:kept]
    assert [p.name for p in (root / ARCHIVES).iterdir()] == ["trainset.tar.gz.part"]
    assert sorted(p.name for p in root.iterdir()) == [ARCHIVES]  # no split folder, no staging folder
    served.delay = 0.0
    rerun = CliRunner().invoke(main, args, env={MANIFEST_ENV: str(manifest), MIRROR_ENV: url})
    assert rerun.exit_code == 0, rerun.output
    assert _requests(served, "trainset.tar.gz")[-1] == (f"bytes={kept}-", 206)
    assert (root / ARCHIVES / "trainset.tar.gz").read_bytes() == body
    _same_as_exported(Causal3DIdent(root, target_type=["latents", "class"], image_format="tensor"),
                      release.h5["train"])


def test_http_errors_and_dead_servers_fail_in_bounded_time(server, tmp_path: Path) -> None:
    url, served = server
    with pytest.raises(DownloadError, match="HTTP 404") as info:  # no retries for a missing file
        download(f"{url}/nope.tar.gz", tmp_path / "nope.tar.gz", progress=False)
    assert "\n" not in str(info.value) and len(served.log) == 1
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/x.tar.gz"
    start = time.monotonic()
    with pytest.raises(DownloadError, match=r"2 attempts in a row got nothing"):
        download(dead, tmp_path / "x.tar.gz", progress=False, retries=2)
    served.stall = True  # accepts, never answers: the timeout ends each attempt
    with pytest.raises(DownloadError, match="timed out"):
        download(f"{url}/slow.tar.gz", tmp_path / "slow.tar.gz", progress=False, retries=2, timeout=0.3)
    assert time.monotonic() - start < 30


def test_unsafe_archives_are_refused_and_nothing_escapes(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        for name in ("trainset/ok.txt", "../escaped.txt"):
            info = tarfile.TarInfo(name)
            info.size = 2
            tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(DownloadError, match=r"unsafe member '\.\./escaped\.txt'"):
        extract(evil, root, progress=False)
    link = tmp_path / "link.tar"
    with tarfile.open(link, "w") as tar:
        info = tarfile.TarInfo("trainset/passwd")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(DownloadError, match="unsafe member 'trainset/passwd'"):
        extract(link, root, progress=False)
    zipped = tmp_path / "evil.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("../../escaped.txt", "hi")
    with pytest.raises(DownloadError, match="unsafe member"):
        extract(zipped, root, progress=False)
    assert list(root.iterdir()) == [] and not (tmp_path / "escaped.txt").exists()


def test_3dident_archive_is_mapped_to_the_layout_the_loader_reads(server, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """3DIdent's tars hold 3dident/{train,test}/...: the leading folder is dropped, so root/train is loadable."""
    url, served = server
    rng = np.random.default_rng(0)
    latents = rng.uniform(-1, 1, (12, 10)).astype(np.float32)
    split = tmp_path / "src" / "3dident" / "train"
    (split / "images").mkdir(parents=True)
    np.save(split / "raw_latents.npy", latents)
    for j, image in enumerate(draw_images(latents, np.zeros(12, dtype=int), 16)):
        Image.fromarray(image).save(split / "images" / f"{j:05d}.png")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(tmp_path / "src" / "3dident", arcname="3dident")
    body = buffer.getvalue()
    manifest = _write_manifest(tmp_path / "releases.json", {"3dident_train.tar": body})
    served.files["/4502485/files/3dident_train.tar"] = body
    monkeypatch.setenv(MANIFEST_ENV, str(manifest))
    monkeypatch.setenv(MIRROR_ENV, url)
    root = tmp_path / "data"
    ds = Causal3DIdent(root, download="3dident", target_type="latents")
    assert (root / "train" / "raw_latents.npy").is_file() and not (root / "3dident").exists()
    np.testing.assert_array_equal(np.stack([ds[k][1] for k in range(len(ds))]), latents)
    with pytest.raises(ConfigError, match="3dident layout's 'train' split, not Causal3DIdent's"):
        Causal3DIdent(root, download=True)  # another release in this root: one line, nothing fetched
    assert [path for path, _, _ in served.log] == ["/4502485/files/3dident_train.tar"]


def test_the_packaged_manifest_records_what_public_material_states() -> None:
    releases = load_releases()
    c3di, ident = releases["causal3dident"], releases["3dident"]
    assert (c3di.record, c3di.doi, c3di.licence) == (4784282, "10.5281/zenodo.4784282", "CC-BY-4.0")
    assert {f.name: f.md5 for f in c3di.files} == {"trainset.tar.gz": "acd98fda30eee75856dbbc7c54a27e45",
                                                   "testset.tar.gz": "c5d9d32d3737e241a2b12b968275fcb8"}
    assert {f.name: (f.split, f.strip) for f in ident.files} == {"3dident_train.tar": ("train", "3dident"),
                                                                 "3dident_test.tar": ("test", "3dident")}
    assert all(f.size is None for f in (*c3di.files, *ident.files))  # exact sizes unconfirmed: not invented
    assert {r.record for r in releases.values()} == {4784282, 4502485, 7678231, 6637749, 6570441}
    assert all(r.sources for r in releases.values())
    assert [name for name, r in releases.items() if r.downloadable] == ["causal3dident", "3dident"]


def test_unknown_and_reference_only_releases_are_one_line_errors() -> None:
    result = CliRunner().invoke(main, ["download", "mnist"])
    assert result.exit_code == 2 and result.stderr.strip().count("\n") == 0
    assert "choose causal3dident or 3dident" in result.stderr and "multimodal3dident" in result.stderr
    result = CliRunner().invoke(main, ["download", "multimodal3dident"])
    assert result.exit_code == 2 and "https://zenodo.org/records/7678231" in result.stderr
    assert "listed for reference only" in result.stderr
    with pytest.raises(ConfigError, match="no split 'val'"):
        get_release("causal3dident").file_for("val")


def test_a_local_folder_mirror_and_a_folder_in_the_way(release: Release, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """--mirror DIR reads DIR/<record>/files/<name> (a file: URL, which knows no Range); a stale split folder in
    the way stops the extraction in one line, and the verified archive is reused once it is moved away."""
    folder = tmp_path / "mirror" / str(RECORD) / "files"
    folder.mkdir(parents=True)
    (folder / "trainset.tar.gz").write_bytes(release.archives["trainset.tar.gz"])
    monkeypatch.setenv(MANIFEST_ENV, str(release.manifest))
    root = tmp_path / "data"
    (root / "trainset" / "images_0").mkdir(parents=True)  # an incomplete copy: no raw latents
    args = ["download", "causal3dident", "--root", str(root), "--split", "train", "--quiet",
            "--mirror", str(tmp_path / "mirror")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "\n" not in result.stderr.strip()
    assert f"{root / 'trainset'} is in the way" in result.stderr and "move it away" in result.stderr
    assert (root / ARCHIVES / "trainset.tar.gz").read_bytes() == release.archives["trainset.tar.gz"]
    assert not list(root.glob(".extracting-*"))
    shutil.rmtree(root / "trainset")
    (folder / "trainset.tar.gz").unlink()  # the archive kept in root/archives is all the rerun needs
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    _same_as_exported(Causal3DIdent(root, target_type=["latents", "class"], image_format="tensor"),
                      release.h5["train"])


def test_too_little_disk_is_one_line_before_any_byte_is_written(server, release: Release, small_tmpfs,
                                                                 tmp_path: Path) -> None:
    url, served = server
    body = _tar(release.folder / "export" / "trainset", "trainset", padding=256 * 1024)
    manifest = _write_manifest(tmp_path / "releases.json", {**release.archives, "trainset.tar.gz": body})
    release.serve(served, **{"trainset.tar.gz": body})
    root = small_tmpfs("128k") / "data"
    result = CliRunner().invoke(main, ["download", "causal3dident", "--root", str(root), "--split", "train",
                                       "--quiet"], env={MANIFEST_ENV: str(manifest), MIRROR_ENV: url})
    assert result.exit_code == 2 and "\n" not in result.stderr.strip()
    assert f"no space left for {root / ARCHIVES / 'trainset.tar.gz.part'}: the download needs" in result.stderr
    assert list((root / ARCHIVES).iterdir()) == [] and len(served.log) == 1


def test_concurrent_downloads_into_one_root_fetch_once(mirror: Served, release: Release, tmp_path: Path) -> None:
    """Two loaders with download=True on one root (e.g. two DDP ranks): one downloads, the other waits, then
    finds the split there."""
    mirror.delay = 0.001
    root, lengths, errors = tmp_path / "data", [], []

    def load() -> None:
        try:
            lengths.append(len(Causal3DIdent(root, download=True)))
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=load) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == [] and lengths == [42, 42]
    assert _requests(mirror, "trainset.tar.gz") == [(None, 200)]
