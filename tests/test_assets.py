"""The mesh manifest: local copies, hash checks, clear errors, and the download path (loopback HTTP)."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from causal3dident.cli import main
from causal3dident.latents import CLASS_NAMES
from causal3dident.render import assets

pytestmark = pytest.mark.render


@pytest.fixture()
def mirror_copy(assets_dir: Path, tmp_path: Path) -> Path:
    """A writable copy of the mesh folder."""
    dst = tmp_path / "mirror"
    shutil.copytree(assets_dir / "meshes", dst / "meshes")
    return dst


Serve = Callable[[Path], tuple[str, list[str]]]


@pytest.fixture()
def serve() -> Iterator[Serve]:
    """Start a loopback HTTP server on a folder; yields a function folder -> (base URL, request log)."""
    servers = []

    def start(folder: Path) -> tuple[str, list[str]]:
        log: list[str] = []

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, fmt: str, *args: object) -> None:
                log.append(self.path)

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", log

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_manifest_lists_every_class_with_hash_url_licence() -> None:
    entries = assets.manifest()["meshes"]
    assert [e["name"] for e in entries] == list(CLASS_NAMES)
    for e in entries:
        assert len(e["sha256"]) == 64 and e["url"].startswith("https://") and e["license"]
        assert e["normalisation"]["up_axis"] in assets.AXES and e["normalisation"]["size_factor"] > 0


def test_local_copy_resolves_and_verifies(assets_dir: Path) -> None:
    meshes = assets.resolve(assets_dir, progress=False)
    assert [m.name for m in meshes] == list(CLASS_NAMES)
    assert all(m.path.is_file() and assets.sha256_of(m.path) == m.sha256 for m in meshes)


def test_missing_mesh_says_where_to_put_it(mirror_copy: Path) -> None:
    (mirror_copy / "meshes" / "dragon.obj").unlink()
    with pytest.raises(assets.AssetError) as err:
        assets.resolve(mirror_copy, progress=False)
    message = str(err.value)
    assert "'dragon'" in message and str(mirror_copy / "meshes" / "dragon.obj") in message
    assert "https://" in message
    result = CliRunner().invoke(main, ["assets", "verify", "--assets", str(mirror_copy)])
    assert result.exit_code == 1 and "MISSING dragon" in result.output


def test_wrong_hash_is_refused(mirror_copy: Path) -> None:
    path = mirror_copy / "meshes" / "cow.obj"
    path.write_bytes(path.read_bytes() + b"# edited\n")
    with pytest.raises(assets.AssetError, match="SHA-256"):
        assets.resolve(mirror_copy, progress=False)
    result = CliRunner().invoke(main, ["render", "--n", "1", "--out", str(mirror_copy / "x.h5"), "--device", "cpu",
                                       "--assets", str(mirror_copy)])
    assert result.exit_code == 2 and "SHA-256" in result.output and "cow" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_download_from_loopback_mirror(assets_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       serve: Serve) -> None:
    url, log = serve(assets_dir)
    monkeypatch.delenv(assets.ASSETS_ENV, raising=False)
    monkeypatch.setenv(assets.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(assets.MIRROR_ENV, url)
    meshes = assets.resolve(progress=False)
    assert all(str(m.path).startswith(str(tmp_path / "cache")) for m in meshes)
    assert sorted(log) == sorted(f"/{e['file']}" for e in assets.manifest()["meshes"])
    assets.resolve(progress=False)  # cached now: no second download
    assert len(log) == len(CLASS_NAMES)
    assert all(line.startswith("OK ") for line in assets.verify())


def test_download_with_wrong_hash_leaves_nothing(mirror_copy: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch, serve: Serve) -> None:
    bad = mirror_copy / "meshes" / "teapot.obj"
    bad.write_bytes(b"v 0 0 0\n")
    url, _ = serve(mirror_copy)
    monkeypatch.delenv(assets.ASSETS_ENV, raising=False)
    monkeypatch.setenv(assets.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(assets.MIRROR_ENV, url)
    with pytest.raises(assets.AssetError, match="SHA-256") as err:
        assets.resolve(progress=False)
    assert "put it at" in str(err.value) and "cannot download 1 of 7 meshes" in str(err.value)
    meshes = tmp_path / "cache" / "assets" / "meshes"
    assert not (meshes / "teapot.obj").exists() and not list(meshes.glob(".*download*"))
    assert sorted(p.name for p in meshes.glob("*.obj")) == sorted(f"{n}.obj" for n in CLASS_NAMES if n != "teapot")


def test_unreachable_server_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(assets.ASSETS_ENV, raising=False)
    monkeypatch.setenv(assets.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(assets.MIRROR_ENV, "http://127.0.0.1:9")
    with pytest.raises(assets.AssetError, match="cannot download 7 of 7 meshes.*'teapot'.*Connection refused.*"
                                                "not tried after that: 'hare', 'dragon'.*C3DI_ASSETS"):
        assets.resolve(progress=False)


def test_every_bad_mesh_is_named_at_once(mirror_copy: Path) -> None:
    """Damaged, missing (and, for a non-root user, unreadable) meshes in one line, before any work."""
    meshes = mirror_copy / "meshes"
    (meshes / "cow.obj").write_text("garbage\n")
    (meshes / "head.obj").unlink()
    unreadable = os.geteuid() != 0
    if unreadable:
        (meshes / "dragon.obj").chmod(0)
    out = mirror_copy / "x.h5"
    result = CliRunner().invoke(main, ["render", "--n", "1", "--out", str(out), "--device", "cpu",
                                       "--assets", str(mirror_copy)])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.output
    line = result.stderr
    assert "'cow' damaged" in line and str(meshes / "cow.obj") in line and "'head' missing" in line
    assert "c3di assets fetch" in line and "spot.obj" in line  # the URL to get cow.obj from
    assert ("'dragon' unreadable" in line) == unreadable
    assert not out.exists() and not out.with_name("x.h5.parts").exists()


def test_fetch_replaces_damaged_cache_files(assets_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            serve: Serve) -> None:
    url, log = serve(assets_dir)
    monkeypatch.delenv(assets.ASSETS_ENV, raising=False)
    monkeypatch.setenv(assets.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(assets.MIRROR_ENV, url)
    assets.resolve(progress=False)
    damaged = tmp_path / "cache" / "assets" / "meshes" / "horse.obj"
    damaged.write_text("garbage\n")
    result = CliRunner().invoke(main, ["assets", "verify"])
    assert result.exit_code == 1 and "BAD HASH horse" in result.output
    result = CliRunner().invoke(main, ["assets", "fetch"])
    assert result.exit_code == 0, result.output
    assert log.count("/meshes/horse.obj") == 2 and len(log) == len(CLASS_NAMES) + 1
    assert assets.sha256_of(damaged) == next(e["sha256"] for e in assets.manifest()["meshes"] if e["name"] == "horse")


def test_loading_the_mesh_manager_does_not_import_h5py_or_bpy():
    import subprocess
    import sys
    code = ("import sys, causal3dident.render.assets as a; a.manifest(); "
            "assert 'h5py' not in sys.modules and 'bpy' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)
