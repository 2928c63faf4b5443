"""``c3di latents --shard i --num-shards K`` of a temporal preset: each shard holds its frames of the one sequence
(replayed from frame 0, since a frame reads the one before it), and ``c3di merge`` of the shards gives the file of
one unsharded run, byte for byte. Latents only: the render path's shards are tests/test_temporal_render.py's."""

from __future__ import annotations

import random
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from causal3dident.cli import main
from causal3dident.store import verify
from causal3dident.temporal_store import temporal_preset

N, SEED = 301, 5
ROWS = ("latents", "classes", "index", "sequence/latents", "sequence/targets")


def latents_cli(*args: str) -> None:
    result = CliRunner().invoke(main, ["latents", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("preset", ["temporal_causal3dident", "instantaneous_temporal_causal3dident"])
def test_sequence_shards_merge_to_the_unsharded_file(preset: str, tmp_path: Path) -> None:
    whole, k = tmp_path / "whole.h5", 4
    latents_cli("--preset", preset, "--n", str(N), "--seed", str(SEED), "--out", str(whole))
    shards = []
    for i in range(k):
        shards.append(tmp_path / f"shard{i}.h5")
        latents_cli("--preset", preset, "--n", str(N), "--seed", str(SEED), "--shard", str(i), "--num-shards", str(k),
                    "--out", str(shards[-1]))
    with h5py.File(whole) as w:
        assert w["sequence/targets"][1:].any()  # interventions happen, so the targets are a real check
        start = 0
        for path in shards:
            with h5py.File(path) as s:
                n = len(s["latents"])
                for name in ROWS:  # a shard's frames are the unsharded run's rows, the first one's targets included
                    assert np.array_equal(s[name][...], w[name][start:start + n]), (path.name, name)
            start += n
        assert start == N
    assert [verify(p) for p in shards] == [[]] * k  # each shard regenerates from its place in the sequence
    order = shards[:]
    random.Random(0).shuffle(order)
    merged = tmp_path / "merged.h5"
    result = CliRunner().invoke(main, ["merge", *map(str, order), "--out", str(merged)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with h5py.File(whole) as w, h5py.File(merged) as m:
        for name in ROWS:
            assert m[name].dtype == w[name].dtype and m[name][...].tobytes() == w[name][...].tobytes(), name
        for name in ("sequence/latents", "sequence/targets"):
            assert list(m[name].attrs["names"]) == list(w[name].attrs["names"])
        assert {k: list(v) if isinstance(v, np.ndarray) else v for k, v in m["sequence"].attrs.items()} == \
            {k: list(v) if isinstance(v, np.ndarray) else v for k, v in w["sequence"].attrs.items()}
        for key in ("config", "seed", "split", "num_samples"):
            assert m.attrs[key] == w.attrs[key], key
        assert "shard" not in m.attrs
    assert verify(merged) == []


def test_a_sequence_shard_renders_its_own_frames(tmp_path: Path) -> None:
    """Rendering a latents shard renders its frames of the sequence, in the job the render path's shards belong to
    (``c3di render --preset ... --shard``), so either kind of shard merges with the other."""
    from causal3dident.render.job import file_input, sequence_input

    path = tmp_path / "shard1.h5"
    latents_cli("--preset", "temporal_causal3dident", "--n", "40", "--seed", "2", "--shard", "1", "--num-shards", "3",
                "--out", str(path))
    model = temporal_preset("temporal_causal3dident")
    direct = sequence_input(model, 40, 2, shard=1, num_shards=3)
    from_file = file_input(path)
    assert from_file.shard == direct.shard
    assert np.array_equal(from_file.scene_latents, direct.scene_latents)
    assert np.array_equal(from_file.latents, direct.latents) and np.array_equal(from_file.indices, direct.indices)
    assert np.array_equal(from_file.classes, direct.classes)
