"""The same inputs give the same outputs on every backend (float64: relative 1e-12)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ELECTRON_MC2, P0C, alive_np, to_np

from beamtrack.backends import get
from beamtrack.tracking import Particles, track_drift, track_quadrupole

N = 200
SEED = 20240611
#: Coordinate scales of the random beam: 1 mm, 1 mrad, 1 mm, 1 mrad, 1 mm, 1e-2.
SCALE = np.array([1e-3, 1e-3, 1e-3, 1e-3, 1e-3, 1e-2])


def _beam(backend):
    """The seeded random beam, drawn by the backend itself, plus two lost particles."""
    xp = backend.namespace()
    coords = backend.normal((6, N), seed=SEED) * backend.asarray(SCALE)[:, None]
    unphysical = backend.asarray(np.array([[0.0, 0.0], [0.9, 1.2], [0.0, 0.0], [0.6, 0.0],
                                           [0.0, 0.0], [0.0, 0.1]]))
    coords = xp.concat([coords, unphysical], axis=1)
    return Particles(coords=coords, p0c=P0C, mc2=ELECTRON_MC2)


def _line(p, method):
    p = track_drift(p, length=0.8, method=method)
    p = track_quadrupole(p, length=0.3, k1=4.2, tilt=0.15, x_offset=3e-4, y_offset=-2e-4,
                         num_steps=2, method=method)
    p = track_drift(p, length=1.1, method=method)
    p = track_quadrupole(p, length=0.3, k1=-3.9, tilt=-0.05, x_offset=-1e-4, method=method)
    return track_drift(p, length=0.5, method=method)


def _assert_close_rows(got, expected):
    """Relative 1e-12 with respect to the largest |value| of each coordinate row."""
    scale = np.abs(expected).max(axis=-1, keepdims=True)
    assert np.all(np.abs(got - expected) <= 1e-12 * scale)


@pytest.mark.parametrize("method", ["bmad", "linear"])
def test_same_as_numpy(xp, method):
    expected_p = _line(_beam(get("numpy")), method)
    got_p = _line(_beam(xp), method)
    assert got_p.backend == xp.name
    got, expected = to_np(got_p), to_np(expected_p)
    assert np.all(np.isfinite(got))
    _assert_close_rows(got, expected)
    np.testing.assert_array_equal(alive_np(got_p), alive_np(expected_p))
    if method == "bmad":
        assert alive_np(got_p).sum() == N  # the two unphysical particles are lost
    assert float(xp.to_numpy(got_p.s)) == pytest.approx(3.0, rel=1e-15)


def test_batched_parameters_same_as_numpy(xp):
    """A batch of quadrupole settings tracked at once agrees across backends too."""
    k1 = np.array([-5.0, -1e-4, 0.0, 1e-4, 0.04, 5.0])
    tilt = np.linspace(-0.5, 0.5, len(k1))

    def run(backend):
        p = _beam(backend)
        p = track_quadrupole(p, length=0.5, k1=backend.asarray(k1), tilt=backend.asarray(tilt),
                             x_offset=1e-4)
        return to_np(track_drift(p, length=2.0))

    expected = run(get("numpy"))
    got = run(xp)
    assert got.shape == (len(k1), 6, N + 2)
    _assert_close_rows(got, expected)


def test_comparison_is_sensitive(xp):
    """The row-relative check fails for a 1e-11 relative change in one coordinate."""
    expected = to_np(_line(_beam(get("numpy")), "bmad"))
    changed = expected.copy()
    i = np.argmax(np.abs(changed[4]))
    changed[4, i] *= 1 + 1e-11
    with pytest.raises(AssertionError):
        _assert_close_rows(changed, expected)
