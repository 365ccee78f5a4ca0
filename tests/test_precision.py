"""float32 tracking: dtype is kept, accuracy is as documented (docs/backends.md)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_particles, random_beam

import beamtrack as bt

#: Documented float32 accuracy through the bundled FODO: relative to each coordinate's
#: largest magnitude, measured 7e-7 (bmad) and 4e-7 (linear); asserted with margin.
FLOAT32_RELATIVE = 5e-6


@pytest.mark.parametrize("method", ["bmad", "linear"])
def test_float32_tracking_accuracy(xp, method):
    line = bt.load(bt.EXAMPLE_LATTICE)
    beam = random_beam(2000, seed=8, scale=5e-4)
    reference = line.track(make_particles("numpy", beam), method=method).coords
    p32 = make_particles("numpy", beam).to_backend(xp.name, dtype="float32")
    out = line.track(p32, method=method)
    coords = xp.to_numpy(out.coords)
    assert coords.dtype == np.float32
    assert xp.to_numpy(out.s).dtype == np.float32
    rel = np.abs(coords.astype(np.float64) - reference).max(axis=-1) / np.abs(reference).max(
        axis=-1
    )
    assert np.all(rel < FLOAT32_RELATIVE), rel
    assert np.all(rel > 1e-9)  # really computed in float32, not silently in float64
