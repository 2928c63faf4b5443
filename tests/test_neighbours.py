"""Nearest same-class neighbours: exact against brute force, anchors excluded, the cached index."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from causal3dident.neighbours import NeighbourIndex, cache_path, cached_index, nearest_same_class, pool_digest


def _pool(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (n, 10)).astype(np.float32), rng.integers(0, 7, n)


def _brute(queries: np.ndarray, qc: np.ndarray, pool: np.ndarray, pc: np.ndarray,
           exclude: np.ndarray | None = None) -> np.ndarray:
    d = ((queries[:, None, :].astype(np.float64) - pool[None].astype(np.float64)) ** 2).sum(-1)
    d[qc[:, None] != pc[None, :]] = np.inf
    if exclude is not None:
        d[np.arange(len(queries)), exclude] = np.inf
    return d.argmin(1)


def test_matches_brute_force_within_class() -> None:
    pool, pc = _pool()
    rng = np.random.default_rng(1)
    queries, qc = rng.uniform(-1, 1, (200, 10)), rng.integers(0, 7, 200)
    got = nearest_same_class(queries, qc, pool, pc)
    np.testing.assert_array_equal(got, _brute(queries, qc, pool, pc))
    assert (pc[got] == qc).all()


def test_anchor_is_never_its_own_neighbour() -> None:
    pool, pc = _pool()
    anchors = np.arange(len(pool))
    got = nearest_same_class(pool, pc, pool, pc, exclude=anchors)
    assert (got != anchors).all()
    np.testing.assert_array_equal(got, _brute(pool, pc, pool, pc, exclude=anchors))
    # without exclude each point finds itself
    np.testing.assert_array_equal(nearest_same_class(pool, pc, pool, pc), anchors)


def test_duplicate_of_anchor_is_a_valid_neighbour() -> None:
    pool = np.zeros((3, 10), np.float32)
    pool[2] = 1.0
    got = nearest_same_class(pool[:1], [0], pool, np.zeros(3, int), exclude=[0])
    assert got.tolist() == [1]


def test_lonely_class_and_unknown_class_raise() -> None:
    pool, pc = np.zeros((2, 10)), np.array([0, 1])
    with pytest.raises(ValueError, match="single pool sample"):
        nearest_same_class(pool[:1], [0], pool, pc, exclude=[0])
    with pytest.raises(ValueError, match="no pool sample of class 5"):
        nearest_same_class(pool[:1], [5], pool, pc)


def test_index_pickles_as_plain_arrays() -> None:
    pool, pc = _pool()
    index = NeighbourIndex.build(pool, pc)
    arrays = index.to_arrays()
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in arrays.values())
    queries = pool[:50] + 0.01
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(index)).query(queries, pc[:50]),
                                  index.query(queries, pc[:50]))


def test_cached_index_is_built_once_in_the_user_cache_not_next_to_the_data(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("C3DI_CACHE_DIR", str(tmp_path / "cache"))
    pool, pc = _pool()
    (tmp_path / "data").mkdir()
    data = tmp_path / "data" / "train.h5"
    index, path = cached_index(data, pool, pc)
    assert path is not None and path.parent == tmp_path / "cache" and pool_digest(pool, pc) in path.name
    assert not any((tmp_path / "data").iterdir())  # readers never write where the data lies
    monkeypatch.setattr(NeighbourIndex, "build", lambda *a, **k: pytest.fail("rebuilt instead of loaded"))
    again, path2 = cached_index(data, pool, pc)
    assert path2 == path == cache_path(data, pool_digest(pool, pc), index.backend)
    np.testing.assert_array_equal(again.query(pool[:30], pc[:30], np.arange(30)),
                                  index.query(pool[:30], pc[:30], np.arange(30)))


def test_damaged_cache_is_rebuilt_and_an_unwritable_cache_is_kept_in_memory(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("C3DI_CACHE_DIR", str(tmp_path / "cache"))
    pool, pc = _pool()
    data = tmp_path / "train.h5"
    _, path = cached_index(data, pool, pc)
    assert path is not None
    path.write_bytes(b"damaged")
    index, path2 = cached_index(data, pool, pc)
    assert path2 == path and index.query(pool[:5], pc[:5]).tolist() == [0, 1, 2, 3, 4]
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("C3DI_CACHE_DIR", str(tmp_path / "file" / "cache"))
    index, none = cached_index(data, pool, pc)
    assert none is None and index.query(pool[:5], pc[:5]).tolist() == [0, 1, 2, 3, 4]


def test_faiss_backend_agrees_with_scipy() -> None:
    pytest.importorskip("faiss")
    pool, pc = _pool()
    rng = np.random.default_rng(2)
    queries, qc = rng.uniform(-1, 1, (100, 10)), rng.integers(0, 7, 100)
    got = NeighbourIndex.build(pool, pc, "faiss").query(queries, qc)
    want = NeighbourIndex.build(pool, pc, "scipy").query(queries, qc)
    np.testing.assert_array_equal(got, want)
