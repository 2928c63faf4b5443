"""The seven object meshes: manifest, user cache, verified download, local copies.

Where the meshes come from, in order: ``--assets DIR`` / ``C3DI_ASSETS=DIR`` (a local copy, never
downloaded into), else the user cache (``C3DI_CACHE`` or ``$XDG_CACHE_HOME/causal3dident``), which is
filled on first use from the public URLs in ``assets_manifest.json`` (or from the mirror in
``C3DI_ASSETS_MIRROR``), like torchvision's ``download=True``. Every file is checked against its
SHA-256 before use. The meshes are never part of this repository.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..file_hash import sha256_of
from ..errors import ConfigError
from ..latents import CLASS_NAMES

ASSETS_ENV = "C3DI_ASSETS"
CACHE_ENV = "C3DI_CACHE"
MIRROR_ENV = "C3DI_ASSETS_MIRROR"
AXES = ("X", "Y", "Z", "NEGATIVE_X", "NEGATIVE_Y", "NEGATIVE_Z")


class AssetError(ConfigError):
    """A mesh is missing, unreadable or not the file the manifest names (wrong SHA-256)."""


@dataclass(frozen=True)
class MeshAsset:
    """One class's mesh: where it is on disk and how to normalise it (see ``assets_manifest.json``)."""

    class_index: int
    name: str
    path: Path
    sha256: str
    up_axis: str
    forward_axis: str
    rest_rotation_deg: tuple[float, float, float]
    size_factor: float


def manifest() -> dict[str, Any]:
    """The packaged asset manifest (URLs, hashes, licences, normalisation)."""
    text = resources.files("causal3dident.render").joinpath("assets_manifest.json").read_text()
    data = json.loads(text)
    entries = sorted(data["meshes"], key=lambda m: m["class_index"])
    if [m["name"] for m in entries] != list(CLASS_NAMES):
        raise AssetError("assets_manifest.json must list one mesh per class, in class order")
    data["meshes"] = entries
    return data


def cache_dir() -> Path:
    """The per-user download cache for meshes."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]) / "assets"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "causal3dident" / "assets"


def local_dir(assets: str | os.PathLike[str] | None = None) -> Path | None:
    """The local copy named by ``--assets`` or ``C3DI_ASSETS``, if any."""
    chosen = assets if assets is not None else os.environ.get(ASSETS_ENV) or None
    return None if chosen is None else Path(chosen).expanduser()


def resolve(assets: str | os.PathLike[str] | None = None, download: bool = True,
            progress: bool = True) -> list[MeshAsset]:
    """The seven meshes, verified. A local copy (``--assets`` / ``C3DI_ASSETS``) is only checked; the cache gets
    its missing or damaged files downloaded. Every mesh that is still not usable is named in one error."""
    local = local_dir(assets)
    root = local if local is not None else cache_dir()
    entries = manifest()["meshes"]
    problems = {e["name"]: _problem(e, root / e["file"]) for e in entries}
    bad = [e for e in entries if problems[e["name"]]]
    listing = ", ".join(f"{e['name']!r} {problems[e['name']]} at {root / e['file']}" for e in bad)
    if bad and local is not None:
        raise AssetError(f"{len(bad)} of {len(entries)} meshes in {root} are not usable: {listing}; put the right "
                         f"files there ({', '.join(e['name'] + ': ' + e['url'] for e in bad)}), or unset "
                         f"{ASSETS_ENV} and drop --assets, then run 'c3di assets fetch' to download them into "
                         f"{cache_dir()}")
    if bad and not download:
        raise AssetError(f"{len(bad)} of {len(entries)} meshes in the cache are not usable: {listing}; run "
                         f"'c3di assets fetch' to download them")
    if bad:
        failed, failures = _download_all(bad, root, progress)
        if failed:
            raise AssetError(f"cannot download {len(failed)} of {len(entries)} meshes into {root} ("
                             + ", ".join(f"{name} {problems[name]}" for name in failed) + "): "
                             + "; ".join(failures)
                             + f"; check the connection and run 'c3di assets fetch' again, or set {ASSETS_ENV} to "
                               f"a folder holding meshes/*.obj")
    return [_asset(entry, root / entry["file"]) for entry in entries]


def _problem(entry: dict[str, Any], path: Path) -> str | None:
    """What is wrong with one mesh file (missing, unreadable, another file), or None."""
    if not path.is_file():
        return "missing"
    try:
        actual = sha256_of(path)
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    if actual != entry["sha256"]:
        return f"damaged or another file (SHA-256 {actual[:12]}..., expected {entry['sha256'][:12]}...)"
    return None


def _download_all(todo: Sequence[dict[str, Any]], root: Path, progress: bool) -> tuple[list[str], list[str]]:
    """Download ``todo`` into ``root``; the names not downloaded and why. After a connection failure the rest
    are not tried (they come from the same server)."""
    failed: list[str] = []
    reasons: list[str] = []
    for k, entry in enumerate(todo):
        try:
            _download(entry, root / entry["file"], progress)
        except _DownloadFailed as exc:
            failed.append(entry["name"])
            reasons.append(str(exc))
            if exc.connection and k + 1 < len(todo):
                failed += [e["name"] for e in todo[k + 1:]]
                reasons.append("not tried after that: " + ", ".join(repr(e["name"]) for e in todo[k + 1:]))
                break
    return failed, reasons


class _DownloadFailed(Exception):
    """One mesh could not be downloaded; ``connection``: the server could not be reached at all."""

    def __init__(self, message: str, connection: bool) -> None:
        super().__init__(message)
        self.connection = connection


def verify(assets: str | os.PathLike[str] | None = None) -> list[str]:
    """One line per mesh: OK or what is wrong (never downloads)."""
    local = local_dir(assets)
    root = local if local is not None else cache_dir()
    lines = []
    for entry in manifest()["meshes"]:
        path = root / entry["file"]
        problem = _problem(entry, path)
        if problem is None:
            lines.append(f"OK {entry['name']}: {path}")
        elif problem == "missing":
            lines.append(f"MISSING {entry['name']}: {path}")
        elif problem.startswith("unreadable"):
            lines.append(f"UNREADABLE {entry['name']}: {path} {problem[len('unreadable '):]}")
        else:
            lines.append(f"BAD HASH {entry['name']}: {path}")
    return lines


def _url(entry: dict[str, Any]) -> str:
    mirror = os.environ.get(MIRROR_ENV)
    return f"{mirror.rstrip('/')}/{entry['file']}" if mirror else entry["url"]


def _download(entry: dict[str, Any], path: Path, progress: bool) -> None:
    """Fetch one mesh to a temporary name, check its hash, then move it into place (replacing a damaged one)."""
    from causal3dident.progress import ProgressBar

    url = _url(entry)
    tmp = path.with_name(f".{path.name}.download-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as fh, \
                ProgressBar(total=int(response.headers.get("Content-Length") or 0) or None, unit="B", unit_scale=True,
                            desc=f"downloading {entry['name']}", disable=not progress, leave=False) as bar:
            for block in iter(lambda: response.read(1 << 16), b""):
                fh.write(block)
                bar.update(len(block))
        actual = sha256_of(tmp)
        if actual != entry["sha256"]:
            raise _DownloadFailed(f"{entry['name']!r} from {url} has SHA-256 {actual[:12]}..., expected "
                                  f"{entry['sha256'][:12]}... (the server now serves another file: get the right "
                                  f"one and put it at {path})", connection=False)
        os.replace(tmp, path)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        unreachable = isinstance(exc, TimeoutError) or (isinstance(exc, urllib.error.URLError)
                                                         and not isinstance(exc, urllib.error.HTTPError))
        raise _DownloadFailed(f"{entry['name']!r} from {url} ({reason})", connection=unreachable) from None
    finally:
        tmp.unlink(missing_ok=True)


def _asset(entry: dict[str, Any], path: Path) -> MeshAsset:
    norm = entry["normalisation"]
    for key in ("up_axis", "forward_axis"):
        if norm[key] not in AXES:
            raise AssetError(f"assets_manifest.json: {entry['name']}.{key} must be one of {', '.join(AXES)}")
    return MeshAsset(class_index=int(entry["class_index"]), name=entry["name"], path=path.resolve(),
                     sha256=entry["sha256"], up_axis=norm["up_axis"], forward_axis=norm["forward_axis"],
                     rest_rotation_deg=tuple(float(d) for d in norm["rest_rotation_deg"]),
                     size_factor=float(norm["size_factor"]))


def describe(meshes: Sequence[MeshAsset]) -> list[dict[str, Any]]:
    """JSON-able record of the meshes a job used (names and hashes)."""
    return [{"class_index": m.class_index, "name": m.name, "sha256": m.sha256} for m in meshes]
