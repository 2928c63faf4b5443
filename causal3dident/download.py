"""Download the published releases as torchvision's ``download=True`` does, made resumable and verified.

Each file goes to ``<root>/archives/<name>.part``: a rerun after a kill continues it with an HTTP Range request
(a server that ignores Range sends the whole file, which restarts it cleanly); a dropped connection is retried
a bounded number of times. Only a file whose size and MD5 match what Zenodo publishes (``releases.json``) is
renamed to ``<root>/archives/<name>``; anything else is removed with one line naming the file and both
checksums. The archive is then unpacked safely (tarfile's ``data`` filter; zip members checked) into a staging
folder and its split folder renamed into ``root``, in the layout the loader reads (``trainset/`` ...). Verified
archives are kept, like torchvision's, so a later run neither fetches nor trusts anything twice.
"""

from __future__ import annotations

import fcntl
import hashlib
import http.client
import os
import re
import shutil
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import click

from .diskspace import free_bytes, human, is_no_space
from .errors import Causal3DIdentError, ConfigError, DatasetFileError, DiskFullError, DownloadError
from .original_layout import detect_layout, find_split
from .outputs import check_writable_folder
from .releases import MIRROR_ENV, Release, ReleaseFile, file_url, get_release, mirror_base

ARCHIVES = "archives"
BLOCK = 1 << 20
RETRIES = 5
"""Attempts in a row that may fail without receiving a byte before a download gives up (each one resumes)."""
TIMEOUT_S = 60.0
"""Seconds a connection may stay silent (connecting or reading) before the attempt counts as failed."""
H5_SUFFIXES = (".h5", ".hdf5")  # as causal3dident.dataset.open_source


def fetch_split(root: str | os.PathLike[str], split: str, release: str = "causal3dident", *,
                mirror: str | None = None, progress: bool = True) -> Path:
    """Make ``split`` of ``release`` loadable from ``root`` (``Causal3DIdent(root, download=...)``): nothing
    happens if the loader already finds data there; else its archive is downloaded, verified and extracted."""
    root = Path(root)
    if root.is_file() or any((root / f"{split}{suffix}").is_file() for suffix in H5_SUFFIXES):
        return root
    chosen = get_release(release)
    return ensure(chosen, chosen.file_for(split), root, mirror=mirror_base(mirror), progress=progress)[0]


def download_release(name: str, root: str | os.PathLike[str], splits: Sequence[str] = (), *,
                     mirror: str | None = None, progress: bool = True) -> list[tuple[str, Path, bool]]:
    """Every file of release ``name`` (or those of ``splits``) installed under ``root``: (split, folder,
    whether it was fetched now) for each."""
    release, root = get_release(name), Path(root)
    files = [release.file_for(split) for split in splits] if splits else list(release.files)
    base = mirror_base(mirror)
    return [(file.split, *ensure(release, file, root, mirror=base, progress=progress)) for file in files]


def ensure(release: Release, file: ReleaseFile, root: Path, *, mirror: str | None = None,
           progress: bool = True) -> tuple[Path, bool]:
    """The folder of ``file``'s split under ``root``, installed first if it is missing: (folder, whether it was
    installed now). One process at a time installs into a root; the others wait, then find it there."""
    folder = present_split(root, file.split, release)
    if folder is not None:
        return folder, False
    check_writable_folder(root, "--root")
    with _exclusive(root / ARCHIVES, progress):
        folder = present_split(root, file.split, release)
        if folder is not None:  # another process installed it while this one waited
            return folder, False
        install(release, file, root, mirror=mirror, progress=progress)
    return present_split(root, file.split, release) or root, True


@contextmanager
def _exclusive(folder: Path, progress: bool) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``folder`` (waiting for it, with a line saying so); the lock goes with
    the process however it ends, and leaves no file behind."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if progress:
                click.echo(f"waiting for another process downloading into {folder}", err=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def present_split(root: Path, split: str, release: Release) -> Path | None:
    """The folder under ``root`` that already holds ``split`` in ``release``'s layout, if any; another release's
    data in its place is a one-line error (two releases need two roots)."""
    folder = find_split(root, split) if root.is_dir() else None
    if folder is None:
        return None
    layout = detect_layout(folder)
    if layout != release.layout:
        raise ConfigError(f"{folder} holds the {layout} layout's {split!r} split, not {release.title}'s; download "
                          f"{release.title} into another root")
    return folder


def install(release: Release, file: ReleaseFile, root: Path, *, mirror: str | None = None,
            progress: bool = True) -> Path:
    """Download ``file`` (or reuse its verified archive) and extract it into ``root``; a one-line error if the
    archive does not hold the split where the loader looks."""
    archive = download(file_url(release, file, mirror), root / ARCHIVES / file.name, md5=file.md5, size=file.size,
                       progress=progress)
    extract(archive, root, strip=file.strip, progress=progress)
    if present_split(root, file.split, release) is None:
        raise DatasetFileError(f"{archive} was extracted into {root}, but the loader finds no {file.split!r} split "
                               f"of the {release.layout} layout there: the archive's layout is not the one "
                               f"releases.json describes; fix its 'strip' entry or extract it by hand")
    return archive


# -- download --------------------------------------------------------------------------------------
def download(url: str, path: str | os.PathLike[str], *, md5: str | None = None, size: int | None = None,
             progress: bool = True, retries: int = RETRIES, timeout: float = TIMEOUT_S) -> Path:
    """``url`` at ``path``, verified against ``md5`` and ``size`` (those that are not None).

    An existing ``path`` that passes is used as it is (nothing is fetched); one that fails is kept aside as
    ``<path>.damaged``. The download goes to ``<path>.part``, resuming what an earlier run left there, and is
    renamed to ``path`` only when it passes; a failing one is removed and raises ``DownloadError``.
    """
    path = Path(path)
    if path.is_file():
        problem = mismatch(path, md5, size, progress)
        if problem is None:
            return path
        aside = path.with_name(path.name + ".damaged")
        os.replace(path, aside)
        click.echo(f"{path}: {problem}; moved aside to {aside.name}, downloading it again", err=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    resumed = part.is_file() and part.stat().st_size > 0
    _Transfer(url, part, size, progress, timeout).run(retries)
    problem = mismatch(part, md5, size, progress)
    if problem is not None and resumed:  # the kept part may be of an earlier file: one fresh try
        part.unlink()
        _Transfer(url, part, size, progress, timeout).run(retries)
        problem = mismatch(part, md5, size, progress)
    if problem is not None:
        part.unlink(missing_ok=True)
        raise DownloadError(f"{path.name} from {url}: {problem}; refused and removed (a damaged or foreign file): "
                            f"check the mirror ({MIRROR_ENV}) or rerun to download it again")
    os.replace(part, path)
    return path


def mismatch(path: Path, md5: str | None, size: int | None, progress: bool = False) -> str | None:
    """What makes ``path`` not the published file (its size, then its MD5), or None."""
    actual = path.stat().st_size
    if size is not None and actual != size:
        return f"size {actual} bytes, expected {size}"
    if md5 is not None:
        found = md5_of(path, progress)
        if found != md5:
            return f"MD5 {found}, expected {md5}"
    return None


def md5_of(path: Path, progress: bool = False) -> str:
    """Hex MD5 of a file (the checksum Zenodo publishes), read in 1 MiB blocks."""
    from causal3dident.progress import ProgressBar

    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh, ProgressBar(total=path.stat().st_size, unit="B", unit_scale=True, unit_divisor=1024,
                                            desc=f"verifying {path.name}", disable=not progress, file=sys.stderr,
                                            leave=False) as bar:
        for block in iter(lambda: fh.read(BLOCK), b""):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()


class _Retry(Exception):
    """An attempt failed in a way another attempt may not (a dropped connection, a timeout, HTTP 5xx)."""


class _StartOver(Exception):
    """The kept part cannot be continued (the server refused its range): delete it and fetch from the start."""


@dataclass
class _Transfer:
    """Fetches ``url`` into ``part``: resumes with a Range request, retries failed attempts, shows progress."""

    url: str
    part: Path
    size: int | None
    progress: bool
    timeout: float
    received: int = 0  # bytes received by the current attempt

    def run(self, retries: int) -> None:
        """Attempt until ``part`` holds the whole file; give up after ``retries`` failures in a row that received
        nothing (each attempt resumes, so one that made progress resets the count)."""
        failures = 0
        while not self._complete():
            self.received = 0
            try:
                self._attempt()
                return
            except _StartOver:
                self.part.unlink(missing_ok=True)
                reason = "the server refused to resume the partial file"
            except _Retry as exc:
                reason = str(exc)
            failures = 0 if self.received else failures + 1
            if failures >= retries:
                kept = self.part.stat().st_size if self.part.is_file() else 0
                raise DownloadError(f"cannot download {self.url}: {reason} ({retries} attempts in a row got nothing); "
                                    f"{self.part} keeps the {kept} bytes received: rerun to resume") from None
            time.sleep(min(0.5 * 2 ** failures, 10.0))

    def _complete(self) -> bool:
        have = self.part.stat().st_size if self.part.is_file() else 0
        if self.size is not None and have > self.size:
            self.part.unlink()  # longer than the file: not a prefix of it
            return False
        return self.size is not None and have == self.size

    def _attempt(self) -> None:
        offset = self.part.stat().st_size if self.part.is_file() else 0
        headers = {"User-Agent": "causal3dident (c3di download)"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        try:
            with urllib.request.urlopen(urllib.request.Request(self.url, headers=headers),
                                        timeout=self.timeout) as response:
                start, total = _span(response, offset)
                if self.size is not None and total is not None and total != self.size:
                    raise DownloadError(f"{self.part.name.removesuffix('.part')} from {self.url}: the server's file "
                                        f"is {total} bytes, expected {self.size}; refused: check the mirror "
                                        f"({MIRROR_ENV})")
                if total is not None:
                    self._check_space(total - offset)  # a restart from 0 frees the part's bytes first
                self._receive(response, start, total)
        except Causal3DIdentError:
            raise
        except urllib.error.HTTPError as exc:
            if exc.code == 416:
                if offset and _span_total(exc.headers) == offset:
                    return  # the part already holds the whole file; it is verified next
                raise _StartOver() from None
            if exc.code in (408, 425, 429) or exc.code >= 500:
                raise _Retry(f"HTTP {exc.code} {exc.reason}") from None
            raise DownloadError(f"cannot download {self.url}: HTTP {exc.code} {exc.reason}; check the URL or the "
                                f"mirror ({MIRROR_ENV})") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            if is_no_space(exc):
                self._check_space(None)  # a full disk is not retried
            raise _Retry(str(getattr(exc, "reason", None) or exc) or type(exc).__name__) from None

    def _check_space(self, needed: int | None) -> None:
        """A one-line ``DiskFullError`` if fewer than ``needed`` bytes are free for the part (None: the disk
        already filled up)."""
        free = free_bytes(self.part.parent)
        if needed is None or free < needed:
            size = "more space" if needed is None else f"{human(needed)} more"
            raise DiskFullError(f"no space left for {self.part}: the download needs {size} but "
                                f"{self.part.parent} has {human(free)} free; free some space there or choose "
                                f"another --root (the partial download is kept: rerun to resume)")

    def _receive(self, response: http.client.HTTPResponse, start: int, total: int | None) -> None:
        """Append the body to the part (or rewrite it when the server starts at 0); a body that ends before the
        total the server announced is a dropped connection."""
        from causal3dident.progress import ProgressBar

        with open(self.part, "ab" if start else "wb") as fh, \
                ProgressBar(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
                            desc=self.part.name.removesuffix(".part"), disable=not self.progress, file=sys.stderr,
                            dynamic_ncols=True) as bar:
            read = getattr(response, "read1", response.read)  # what has arrived, not a full 1 MiB block
            for block in iter(lambda: read(BLOCK), b""):
                fh.write(block)
                self.received += len(block)
                bar.update(len(block))
        if total is not None and start + self.received < total:
            raise _Retry(f"the connection closed after {start + self.received} of {total} bytes")


def _span(response: http.client.HTTPResponse, offset: int) -> tuple[int, int | None]:
    """(where the body starts in the file, the file's full size if known). A server that answers a Range request
    with the whole file (200, or a ``file:`` URL) starts at 0."""
    status = getattr(response, "status", None)
    length = response.headers.get("Content-Length")
    if offset and status == 206:
        match = re.match(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
        if match is None or int(match[1]) != offset:
            raise _StartOver()
        total = None if match[2] == "*" else int(match[2])
        return offset, total if total is not None else (offset + int(length) if length else None)
    return 0, int(length) if length and length.isdigit() else None


def _span_total(headers: object) -> int | None:
    """The full size in a 416 answer's ``Content-Range: bytes */N``."""
    match = re.match(r"bytes \*/(\d+)", getattr(headers, "get", lambda *_: None)("Content-Range") or "")
    return int(match[1]) if match else None


# -- extraction ------------------------------------------------------------------------------------
def extract(archive: str | os.PathLike[str], root: str | os.PathLike[str], *, strip: str | None = None,
            progress: bool = True) -> list[Path]:
    """Unpack ``archive`` into ``root`` all at once; returns the entries placed there.

    Members go to a staging folder in ``root`` (a leftover of an interrupted extraction is removed first), where
    tarfile's ``data`` filter and the zip member check refuse any that would land outside it; then each entry
    (below the folder ``strip``, if the archive has it) is renamed into ``root``, after checking that none is
    there already, so a split folder appears whole or not at all.
    """
    archive, root = Path(archive), Path(root)
    staging = root / f".extracting-{archive.name}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        _unpack(archive, staging, progress)
        top = staging / strip if strip and (staging / strip).is_dir() else staging
        entries = sorted(top.iterdir())
        there = [root / entry.name for entry in entries if (root / entry.name).exists()]
        if there:
            raise DatasetFileError(f"{there[0]} is in the way of {archive.name}'s {there[0].name}/ (it is not a "
                                   f"complete split the loader reads); move it away or delete it, then rerun")
        for entry in entries:
            os.replace(entry, root / entry.name)
        return [root / entry.name for entry in entries]
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _unpack(archive: Path, into: Path, progress: bool) -> None:
    from causal3dident.progress import ProgressBar

    with ProgressBar(unit=" files", desc=f"extracting {archive.name}", disable=not progress, file=sys.stderr) as bar:
        try:
            if tarfile.is_tarfile(archive):
                with tarfile.open(archive) as tar:
                    for member in tar:
                        _extract_tar_member(tar, member, into, archive)
                        bar.update()
            elif zipfile.is_zipfile(archive):
                with zipfile.ZipFile(archive) as zf:
                    for info in _safe_zip_members(zf.infolist(), archive):
                        zf.extract(info, into)
                        bar.update()
            else:
                raise DownloadError(f"{archive} is neither a tar nor a zip archive; delete it and rerun")
        except DownloadError:
            raise
        except (tarfile.ReadError, zipfile.BadZipFile, EOFError, OSError) as exc:
            raise DownloadError(f"{archive} cannot be extracted ({exc}); delete it and rerun to download it again") \
                from None


def _extract_tar_member(tar: tarfile.TarFile, member: tarfile.TarInfo, into: Path, archive: Path) -> None:
    try:
        tar.extract(member, into, filter="data")
    except tarfile.FilterError as exc:
        raise DownloadError(f"{archive} has an unsafe member {member.name!r} ({exc}); refused: nothing of it is "
                            f"used") from None


def _safe_zip_members(members: Iterable[zipfile.ZipInfo], archive: Path) -> Iterable[zipfile.ZipInfo]:
    """Zip members, refusing any whose path is absolute or climbs out of the extraction folder."""
    for info in members:
        name = PurePosixPath(info.filename.replace("\\", "/"))
        if name.is_absolute() or ".." in name.parts or re.match(r"^[A-Za-z]:", info.filename):
            raise DownloadError(f"{archive} has an unsafe member {info.filename!r} (a path outside the extraction "
                                f"folder); refused: nothing of it is used")
        yield info


# -- command line ----------------------------------------------------------------------------------
@click.command("download")
@click.argument("name")
@click.option("--root", type=click.Path(path_type=Path), default=Path("data"),
              help="Folder to put the release in; then Causal3DIdent(ROOT, split=...) loads it.")
@click.option("--split", "splits", multiple=True, help="Only this split (repeatable; default: every split).")
@click.option("--mirror", default=None,
              help=f"Fetch from a mirror (URL or folder serving <record>/files/<name>) instead of Zenodo; "
                   f"default: ${MIRROR_ENV}, else Zenodo.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def download_command(name: str, root: Path, splits: tuple[str, ...], mirror: str | None, quiet: bool) -> None:
    """Download a published release (causal3dident or 3dident) into ROOT: resumable, checked against Zenodo's
    MD5s, extracted to the folders the loader reads. Sources and citations: causal3dident/releases.json."""
    from .cli import on_interrupt

    on_interrupt(f"partial downloads are kept in {root / ARCHIVES} as *.part; rerunning the same command "
                 f"resumes them (an interrupted extraction starts over, leaving nothing half-extracted)")
    release = get_release(name)
    for split, folder, fetched in download_release(name, root, splits, mirror=mirror, progress=not quiet):
        click.echo(f"{'downloaded' if fetched else 'already there'}: {split} split of {release.title} "
                   f"(Zenodo {release.record}) in {folder}")
    click.echo(f"load it with Causal3DIdent({str(root)!r}, split=...); cite: {release.citation} (README, Releases)")
