"""Drift and quadrupole first-order maps against MAD-X TWISS RMATRIX (cpymad)."""

from __future__ import annotations

import numpy as np
import pytest
from madx import madx_matrix

from beamtrack.tracking import Particles, species, track_drift, track_quadrupole

pytest.importorskip("cpymad.madx", reason="cpymad (MAD-X) not installed")

CASES = [
    ("electron", 50e6), ("electron", 5e9), ("proton", 50e6), ("proton", 7e12),
]


def beamtrack_matrix(track, p0c: float, mc2: float, **params) -> np.ndarray:
    """The linear-method matrix, read off by tracking the six unit vectors."""
    unit = Particles(coords=np.eye(6), p0c=p0c, mc2=mc2)
    zero = Particles(coords=np.zeros((6, 1)), p0c=p0c, mc2=mc2)
    out = track(unit, **params, method="linear").coords
    return out - track(zero, **params, method="linear").coords


@pytest.mark.parametrize(("particle", "p0c"), CASES)
def test_drift_matches_madx(particle, p0c):
    mine = beamtrack_matrix(track_drift, p0c, species(particle).mc2, length=1.7)
    theirs = madx_matrix("e1: drift, l=1.7;", 1.7, p0c, particle)
    np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-9)
    assert theirs[4, 5] > 0  # R56 is there, with the same sign


@pytest.mark.parametrize(("particle", "p0c"), CASES)
@pytest.mark.parametrize(("k1", "tilt"), [(1.3, 0.0), (-2.1, 0.0), (0.0, 0.0), (1.7, 0.4)])
def test_quadrupole_matches_madx(particle, p0c, k1, tilt):
    mine = beamtrack_matrix(track_quadrupole, p0c, species(particle).mc2,
                            length=0.45, k1=k1, tilt=tilt)
    theirs = madx_matrix(f"e1: quadrupole, l=0.45, k1={k1!r}, tilt={tilt!r};", 0.45, p0c,
                         particle)
    np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-9)
