"""Nearest same-class neighbours in latent space: how the paper made LT pairs without rendering z~.

The original took, for each transformed latent z~, the nearest image of the same class (L2 on raw
latents, skipping the anchor). We search exactly: per class a faiss ``IndexFlatL2`` when faiss is
installed, else a scipy ``cKDTree`` (scipy is a core dependency). ``cached_index`` builds the index
once per data file and keeps it in the user cache folder ($C3DI_CACHE_DIR or ~/.cache/causal3dident;
readers never write next to the data), so DataLoader workers load, not rebuild.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from .errors import ConfigError

BACKENDS = ("auto", "faiss", "scipy")
CACHE_ENV = "C3DI_CACHE_DIR"
_NONE = np.zeros(0, dtype=np.bool_)  # stands for None in a saved cKDTree state (which holds no bool arrays)


def nearest_same_class(query_latents: np.ndarray, query_classes: np.ndarray, pool_latents: np.ndarray,
                       pool_classes: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
    """Pool index of each query's nearest (L2) pool sample of the same class, never ``exclude[i]``.

    ``exclude``: one pool index per query to skip (e.g. the anchor itself), -1 for none.
    """
    return NeighbourIndex.build(pool_latents, pool_classes).query(query_latents, query_classes, exclude)


def available_backend() -> str:
    """'faiss' if faiss imports, else 'scipy'."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return "scipy"
    return "faiss"


class NeighbourIndex:
    """Exact per-class nearest-neighbour search over a fixed pool of latents; picklable."""

    def __init__(self, backend: str, members: dict[int, np.ndarray], searchers: dict[int, Any]) -> None:
        self.backend = backend
        self.members = members  # class -> pool indices of that class, ascending
        self._searchers = searchers  # class -> cKDTree or faiss index (serialised when pickled)

    @classmethod
    def build(cls, pool_latents: np.ndarray, pool_classes: np.ndarray, backend: str = "auto") -> NeighbourIndex:
        """Index ``pool_latents`` [N, D] by class ``pool_classes`` [N]."""
        if backend not in BACKENDS:
            raise ConfigError(f"unknown neighbour backend {backend!r}; choose {', '.join(BACKENDS)}")
        backend = available_backend() if backend == "auto" else backend
        pool = np.asarray(pool_latents, dtype=np.float64)
        classes = np.asarray(pool_classes)
        if pool.ndim != 2 or classes.shape != (len(pool),):
            raise ValueError(f"pool latents must be [N, D] and classes [N]; got {pool.shape}, {classes.shape}")
        members = {int(c): np.flatnonzero(classes == c) for c in np.unique(classes)}
        searchers = {c: _make_searcher(backend, pool[idx]) for c, idx in members.items()}
        return cls(backend, members, searchers)

    def query(self, latents: np.ndarray, classes: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
        """Pool indices (int64) of the nearest same-class pool sample of each query, skipping ``exclude``."""
        latents = np.atleast_2d(np.asarray(latents, dtype=np.float64))
        classes = np.atleast_1d(np.asarray(classes))
        skip = np.full(len(latents), -1, np.int64) if exclude is None else np.atleast_1d(np.asarray(exclude, np.int64))
        if classes.shape != (len(latents),) or skip.shape != (len(latents),):
            raise ValueError(f"need one class and one exclude per query; got {latents.shape}, {classes.shape}, "
                             f"{skip.shape}")
        out = np.empty(len(latents), dtype=np.int64)
        for c in np.unique(classes):
            rows = np.flatnonzero(classes == c)
            members = self.members.get(int(c))
            if members is None:
                raise ValueError(f"no pool sample of class {int(c)} to pair with")
            k = min(2, len(members))
            local = _search(self.backend, self._searchers[int(c)], latents[rows], k)
            found = members[local]
            first_ok = found[:, 0] != skip[rows]
            if not first_ok.all() and k < 2:
                raise ValueError(f"class {int(c)} has a single pool sample, the anchor itself: no neighbour to pair")
            out[rows] = np.where(first_ok, found[:, 0], found[:, -1])
        return out

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The index as plain arrays (no pickle), for ``np.savez`` and for sending to workers."""
        out: dict[str, np.ndarray] = {"backend": np.array(self.backend),
                                      "backend_version": np.array(_version(self.backend))}
        for c, members in self.members.items():
            out[f"members_{c}"] = members
            for j, part in enumerate(_searcher_state(self.backend, self._searchers[c])):
                out[f"searcher_{c}_{j}"] = part
        return out

    @classmethod
    def from_arrays(cls, arrays: Any) -> NeighbourIndex:
        """Inverse of ``to_arrays``; raises ValueError if written by another backend version."""
        backend = str(arrays["backend"])
        if str(arrays["backend_version"]) != _version(backend):
            raise ValueError(f"index written by {backend} {arrays['backend_version']}, this is {_version(backend)}")
        members: dict[int, np.ndarray] = {}
        searchers: dict[int, Any] = {}
        for key in arrays:
            if key.startswith("members_"):
                c = int(key.removeprefix("members_"))
                members[c] = np.asarray(arrays[key])
                parts = []
                while f"searcher_{c}_{len(parts)}" in arrays:
                    parts.append(np.asarray(arrays[f"searcher_{c}_{len(parts)}"]))
                searchers[c] = _restore_searcher(backend, parts)
        return cls(backend, members, searchers)

    def __getstate__(self) -> dict[str, np.ndarray]:
        return self.to_arrays()

    def __setstate__(self, state: dict[str, np.ndarray]) -> None:
        other = self.from_arrays(state)
        self.__dict__.update(other.__dict__)


def _version(backend: str) -> str:
    if backend == "faiss":
        import faiss

        return str(faiss.__version__)
    import scipy

    return str(scipy.__version__)


def _searcher_state(backend: str, searcher: Any) -> list[np.ndarray]:
    if backend == "faiss":
        import faiss

        return [faiss.serialize_index(searcher)]
    # cKDTree's state: node buffer, data, sizes, bounds, order: arrays, ints and Nones
    return [_NONE if part is None else np.asarray(part) for part in searcher.__getstate__()]


def _restore_searcher(backend: str, parts: list[np.ndarray]) -> Any:
    if backend == "faiss":
        import faiss

        return faiss.deserialize_index(parts[0])
    state = tuple(None if p.dtype == _NONE.dtype and p.shape == _NONE.shape else (p.item() if p.ndim == 0 else p)
                  for p in parts)
    tree = cKDTree.__new__(cKDTree)
    tree.__setstate__(state)
    return tree


def _make_searcher(backend: str, points: np.ndarray) -> Any:
    if backend == "scipy":
        return cKDTree(points)
    import faiss

    index = faiss.IndexFlatL2(points.shape[1])
    index.add(np.ascontiguousarray(points, dtype=np.float32))
    return index


def _search(backend: str, searcher: Any, queries: np.ndarray, k: int) -> np.ndarray:
    if backend == "scipy":
        _, idx = searcher.query(queries, k=k)
        return np.asarray(idx, dtype=np.int64).reshape(len(queries), k)
    _, idx = searcher.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    return idx.astype(np.int64)


# -- the cached index ------------------------------------------------------------------------------
def pool_digest(pool_latents: np.ndarray, pool_classes: np.ndarray) -> str:
    """A short content hash of the pool: the cache key, so an edited file never reuses a stale index."""
    h = hashlib.sha256()
    for a in (np.ascontiguousarray(pool_latents, np.float32), np.ascontiguousarray(pool_classes, np.int64)):
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def cache_path(data_path: str | os.PathLike[str], digest: str, backend: str) -> Path:
    """Where the index of ``data_path`` is cached: in $C3DI_CACHE_DIR or ~/.cache/causal3dident, never next to
    the data (readers do not write where the data lies). The name holds the pool's digest, so files with the
    same latents share one index and an edited file never reuses a stale one."""
    name = f".{Path(data_path).name}.neighbours-{backend}-{digest}.npz"
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "causal3dident")) / name


def cached_index(data_path: str | os.PathLike[str], pool_latents: np.ndarray, pool_classes: np.ndarray,
                 backend: str = "auto") -> tuple[NeighbourIndex, Path | None]:
    """The index of a data file's pool, loaded from its cache file or built and saved there.

    Returns the index and the cache file it lives in (None when the cache folder is not writable:
    then it is kept in memory only, and sent to each worker with the dataset).
    """
    backend = available_backend() if backend == "auto" else backend
    path = cache_path(data_path, pool_digest(pool_latents, pool_classes), backend)
    if path.is_file():
        try:
            return load_index(path), path
        except (OSError, ValueError, KeyError):
            pass  # damaged or from another library version: rebuilt below
    index = NeighbourIndex.build(pool_latents, pool_classes, backend)
    return index, (path if _save(index, path, make_folder=True) else None)


def load_index(path: str | os.PathLike[str]) -> NeighbourIndex:
    """Load an index saved by ``cached_index`` (what each worker does); plain arrays, no pickle."""
    with np.load(path, allow_pickle=False) as arrays:
        return NeighbourIndex.from_arrays(arrays)


def _save(index: NeighbourIndex, path: Path, make_folder: bool) -> bool:
    try:
        if make_folder:
            path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    except OSError:
        return False
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **index.to_arrays())
        os.replace(tmp, path)
        return True
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        return False
