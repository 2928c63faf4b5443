"""The published releases (Causal3DIdent, 3DIdent, and siblings listed for reference): where each file is and
how a download of it is checked.

``releases.json`` (packaged) holds every value with the public material it was read from; ``null`` marks what
could not be confirmed. ``C3DI_RELEASES_MANIFEST`` points at another file of the same form (a mirror serving
other archives; the tests' loopback server). A mirror (``--mirror URL`` or ``C3DI_RELEASES_URL``) serves the
same files at ``<mirror>/<record>/files/<name>``, as Zenodo does.
"""

from __future__ import annotations

import json
import os
import re
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from .errors import ConfigError
from .schema import NonNegativeInt, PositiveInt, config_schema, validate

MANIFEST_ENV = "C3DI_RELEASES_MANIFEST"
MIRROR_ENV = "C3DI_RELEASES_URL"
HINT = "fix the releases manifest"
MD5 = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]  # a plain file name: no folders, no '..'


@config_schema(source="releases manifest", hint=HINT)
class ReleaseFile:
    """One file of a release: its published URL, what it must hash to, and where it goes."""

    name: Name
    url: str
    split: str | None = None
    md5: MD5 | None = None
    size: NonNegativeInt | None = None
    size_stated: str | None = None
    strip: Name | None = None  # a leading folder of the members, dropped on extraction

    @property
    def checkable(self) -> bool:
        """Whether a download of it can be verified (its MD5 or its exact size is known)."""
        return self.md5 is not None or self.size is not None


@config_schema(source="releases manifest", hint=HINT)
class Release:
    """One Zenodo record: what it is, how to cite it, and its files."""

    title: str
    record: PositiveInt
    doi: str
    record_url: str
    citation: str
    layout: str | None = None  # the original_layout the loader reads it as; None: not loadable (yet)
    licence: str | None = None
    samples: str | None = None
    files: tuple[ReleaseFile, ...] = ()
    unconfirmed: tuple[str, ...] = ()
    note: str | None = None
    sources: tuple[str, ...] = ()

    @property
    def downloadable(self) -> bool:
        """Whether ``c3di download`` fetches it: the loader reads it and every file can be verified."""
        return self.layout is not None and bool(self.files) and all(f.checkable and f.split for f in self.files)

    @property
    def splits(self) -> list[str]:
        return [f.split for f in self.files if f.split]

    def file_for(self, split: str) -> ReleaseFile:
        """The file holding ``split``; a one-line error names the splits there are."""
        for file in self.files:
            if file.split == split:
                return file
        raise ConfigError(f"the {self.title} release has no split {split!r} (it has: {', '.join(self.splits)}); "
                          f"pass split= one of those")


@config_schema(source="releases manifest", hint=HINT)
class Manifest:
    about: str = ""
    releases: dict[str, Release]


def manifest_path() -> Path | None:
    """The manifest named by ``C3DI_RELEASES_MANIFEST``, or None for the packaged one."""
    chosen = os.environ.get(MANIFEST_ENV)
    return Path(chosen).expanduser() if chosen else None


def load_releases() -> dict[str, Release]:
    """Every release of the manifest in use, by name (``causal3dident``, ``3dident``, ...)."""
    path = manifest_path()
    source = str(path) if path else "causal3dident/releases.json"
    try:
        text = path.read_text() if path else \
            resources.files("causal3dident").joinpath("releases.json").read_text()
        data: Any = json.loads(text)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the releases manifest {source} ({exc}); fix or unset {MANIFEST_ENV}") \
            from None
    return validate(Manifest, data, f"releases manifest {source}", HINT).releases


def get_release(name: str, releases: dict[str, Release] | None = None) -> Release:
    """The release ``name`` if it can be downloaded; else a one-line error saying which ones can, or where this
    one comes from."""
    releases = load_releases() if releases is None else releases
    ready = [key for key, release in releases.items() if release.downloadable]
    if name not in releases:
        others = [key for key in releases if key not in ready]
        listed = f" (listed for reference only: {', '.join(others)})" if others else ""
        raise ConfigError(f"unknown release {name!r}; choose {' or '.join(ready)}{listed}")
    release = releases[name]
    if not release.downloadable:
        why = ("the loader does not read its layout yet" if release.layout is None else
               "no checksum or size of its files could be confirmed from public material")
        raise ConfigError(f"{release.title} (Zenodo {release.record}) is listed for reference only: {why} (see "
                          f"causal3dident/releases.json); download it from {release.record_url} by hand; "
                          f"'c3di download' fetches {' and '.join(ready)}")
    return release


def mirror_base(mirror: str | os.PathLike[str] | None = None) -> str | None:
    """The mirror in use (``mirror``, else ``C3DI_RELEASES_URL``) as a URL without a trailing slash; a local
    folder becomes a ``file:`` URL. None: the published URLs."""
    chosen = os.fspath(mirror) if mirror is not None else os.environ.get(MIRROR_ENV) or None
    if not chosen:
        return None
    if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", chosen):
        chosen = Path(chosen).expanduser().resolve().as_uri()
    if not chosen.startswith(("http://", "https://", "file://")):
        raise ConfigError(f"mirror {chosen!r} is not an http(s):// or file:// URL or a folder; pass one with "
                          f"--mirror or {MIRROR_ENV}")
    return chosen.rstrip("/")


def file_url(release: Release, file: ReleaseFile, mirror: str | None) -> str:
    """Where ``file`` is fetched from: ``<mirror>/<record>/files/<name>``, or its published URL."""
    return f"{mirror}/{release.record}/files/{file.name}" if mirror else file.url
