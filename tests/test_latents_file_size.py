"""``latents_file_size``: the free-space estimate of ``c3di latents`` (and a render job's assembly) against the
size of a real written file, for Causal3DIdent and Multimodal3DIdent files (whose ``/multimodal`` text, tables and
pair partners it counts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from causal3dident.generate import build_config, latents_file_size, write_latents_file
from causal3dident.multimodal_store import text_tables

FIXED = 256 * 1024
"""The estimate's fixed margin for HDF5's overhead (what dominates a small file)."""


@pytest.mark.parametrize("preset, pairs, tables", [
    ("causal3dident", "hues", 0),
    ("multimodal3dident", None, 1),
    # rotations change nothing the sentence says: no text of its views is stored, so it is not counted
    ("multimodal3dident", "phrasing,palette,positions,rotations", 4),
])
def test_the_estimate_covers_the_written_file_and_is_close(tmp_path: Path, preset: str, pairs: str | None,
                                                            tables: int) -> None:
    n = 1000
    config = build_config(preset, n, **({} if pairs is None else {"pairs": pairs}))
    assert text_tables(config) == tables
    size = write_latents_file(tmp_path / "z.h5", config, seed=0).stat().st_size
    estimate = latents_file_size(n, len(config.get("pairs", [])), tables)
    assert size <= estimate <= 1.5 * size + FIXED, (size, estimate)


def test_the_sequence_estimate_covers_the_written_file_and_is_close(tmp_path: Path) -> None:
    from causal3dident.temporal_store import sequence_file_size, temporal_preset, write_sequence_file

    model, n = temporal_preset("temporal_causal3dident"), 10000  # the frames, not the fixed margin, dominate
    size = write_sequence_file(tmp_path / "s.h5", model, n, seed=0).stat().st_size
    estimate = sequence_file_size(model, n)
    assert size <= estimate <= 1.5 * size + FIXED, (size, estimate)
