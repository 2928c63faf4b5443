"""The seven object meshes: manifest, user cache, verified download, local copies.

Where the meshes come from, in order: ``--assets DIR`` / ``C3DI_ASSETS=DIR`` (a local copy, never
downloaded into), else the user cache (``C3DI_CACHE`` or ``$XDG_CACHE_HOME/causal3dident``), which is
filled on first use from the public URLs in ``assets_manifest.json`` (or from the mirror in
``C3DI_ASSETS_MIRROR``), like torchvision's ``download=True``. Every file is checked against its
SHA-256 before use. The meshes are never part of this repository.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

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
    """The seven meshes, verified; downloads missing ones into the cache unless a local copy is named."""
    local = local_dir(assets)
    root = local if local is not None else cache_dir()
    out = []
    for entry in manifest()["meshes"]:
        path = root / entry["file"]
        if not path.is_file():
            if local is not None:
                raise AssetError(f"mesh {entry['name']!r} not found at {path}; put {entry['url']} there "
                                 f"(the folder given by --assets / {ASSETS_ENV} must hold {entry['file']}), "
                                 f"or unset {ASSETS_ENV} to download into {cache_dir()}")
            if not download:
                raise AssetError(f"mesh {entry['name']!r} is not in the cache {root}; run 'c3di assets fetch' "
                                 f"or put {entry['url']} at {path}")
            _download(entry, path, progress)
        _check_hash(entry, path, downloaded_to=None if local is not None else root)
        out.append(_asset(entry, path))
    return out


def verify(assets: str | os.PathLike[str] | None = None) -> list[str]:
    """One line per mesh: OK or what is wrong (never downloads)."""
    local = local_dir(assets)
    root = local if local is not None else cache_dir()
    lines = []
    for entry in manifest()["meshes"]:
        path = root / entry["file"]
        if not path.is_file():
            lines.append(f"MISSING {entry['name']}: {path}")
        elif sha256_of(path) != entry["sha256"]:
            lines.append(f"BAD HASH {entry['name']}: {path}")
        else:
            lines.append(f"OK {entry['name']}: {path}")
    return lines


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_hash(entry: dict[str, Any], path: Path, downloaded_to: Path | None) -> None:
    actual = sha256_of(path)
    if actual != entry["sha256"]:
        fix = (f"delete it to download it again into {downloaded_to}" if downloaded_to is not None
               else f"replace it with the file from {entry['url']}")
        raise AssetError(f"mesh {entry['name']!r} at {path} has SHA-256 {actual[:12]}..., expected "
                         f"{entry['sha256'][:12]}... (a different or damaged file); {fix}")


def _url(entry: dict[str, Any]) -> str:
    mirror = os.environ.get(MIRROR_ENV)
    return f"{mirror.rstrip('/')}/{entry['file']}" if mirror else entry["url"]


def _download(entry: dict[str, Any], path: Path, progress: bool) -> None:
    """Fetch one mesh to a temporary name, check its hash, then move it into place."""
    from tqdm import tqdm

    url = _url(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.download-{os.getpid()}")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as fh, \
                tqdm(total=int(response.headers.get("Content-Length") or 0) or None, unit="B", unit_scale=True,
                     desc=f"downloading {entry['name']}", disable=not progress, leave=False) as bar:
            for block in iter(lambda: response.read(1 << 16), b""):
                fh.write(block)
                bar.update(len(block))
        actual = sha256_of(tmp)
        if actual != entry["sha256"]:
            raise AssetError(f"downloaded {url} for mesh {entry['name']!r}, but its SHA-256 is {actual[:12]}..., "
                             f"expected {entry['sha256'][:12]}...; the server now serves another file: get the "
                             f"right one and put it at {path}, or point {ASSETS_ENV} at a folder holding "
                             f"{entry['file']}")
        os.replace(tmp, path)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise AssetError(f"cannot download mesh {entry['name']!r} from {url} ({reason}); download it by hand to "
                         f"{path}, or set {ASSETS_ENV} to a folder holding {entry['file']}") from None
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
