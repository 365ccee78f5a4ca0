"""Property tests (hypothesis) of drift and quadrupole for random parameters and beams.

They run on NumPy and on one autodiff backend (torch, else jax) where installed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import ELECTRON_MC2, PROTON_MC2, SYMPLECTIC_J, backend_or_skip, to_np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from beamtrack.backends import available, backend_of
from beamtrack.tracking import (
    Particles,
    from_madx,
    to_madx,
    track_drift,
    track_quadrupole,
)

SETTINGS = settings(max_examples=50, deadline=None)
N = 4

#: NumPy and the first autodiff backend that is installed.
BACKENDS = ["numpy"] + [name for name in ("torch", "jax") if name in available()][:1]

lengths = st.floats(min_value=1e-3, max_value=5.0)
k1s = st.one_of(st.floats(-50.0, 50.0), st.sampled_from([0.0, 1e-9, -1e-9, 0.04, -0.04]))
tilts = st.floats(-math.pi, math.pi)
offsets = st.floats(-5e-3, 5e-3)
#: Small random particles: (n, 6) with |x|, |px|, ... <= 1e-2 and |pz| <= 0.05.
beams = arrays(np.float64, (N, 6), elements=st.floats(-1e-2, 1e-2)).map(
    lambda a: a * np.array([1, 1, 1, 1, 1, 5.0]))
momenta = st.floats(1e6, 1e12)
masses = st.sampled_from([ELECTRON_MC2, PROTON_MC2, 11176396232.18793])


def _particles(name, beam, p0c=1e9, mc2=ELECTRON_MC2):
    backend_or_skip(name)
    return Particles.from_array(beam, p0c=p0c, mc2=mc2).to_backend(name)


def _quad(p, length, k1, tilt, xo, yo, **kw):
    return track_quadrupole(p, length=length, k1=k1, tilt=tilt, x_offset=xo, y_offset=yo, **kw)


def _flag(p):
    return backend_of(p.alive).to_numpy(p.alive)


@pytest.mark.parametrize("name", BACKENDS)
@SETTINGS
@given(beam=beams, length=lengths, k1=k1s, tilt=tilts, xo=offsets, yo=offsets,
       num_steps=st.integers(1, 4), method=st.sampled_from(["bmad", "linear"]))
def test_outputs_finite(name, beam, length, k1, tilt, xo, yo, num_steps, method):
    p = _particles(name, beam)
    out = _quad(p, length, k1, tilt, xo, yo, num_steps=num_steps, method=method)
    out = track_drift(out, length=length, method=method)
    assert np.all(np.isfinite(to_np(out)))
    np.testing.assert_array_equal(to_np(out)[5], beam[:, 5])  # no energy change


def _close(a, b, rtol):
    """|a - b| <= rtol * (|a| + scale) elementwise, scale = the largest |value| of the
    particle's transverse coordinates (phases and growth factors multiply errors)."""
    scale = np.abs(np.concatenate([a[:4], b[:4]])).max(axis=0) + 1e-3
    return np.all(np.abs(a - b) <= rtol * (np.abs(a) + scale))


@pytest.mark.parametrize("name", BACKENDS)
@SETTINGS
@given(beam=beams, length=lengths, k1=k1s, tilt=tilts, xo=offsets, yo=offsets)
def test_num_steps_do_not_change_alive_particles(name, beam, length, k1, tilt, xo, yo):
    """The paraxial body is exact per slice: 1 and 3 slices agree for particles alive
    after both; slicing only adds loss checks (alive with 3 => alive with 1)."""
    p = _particles(name, beam)
    one = _quad(p, length, k1, tilt, xo, yo)
    three = _quad(p, length, k1, tilt, xo, yo, num_steps=3)
    alive1, alive3 = _flag(one), _flag(three)
    assert np.all(alive1 | ~alive3)
    assert _close(to_np(one)[:, alive3], to_np(three)[:, alive3], 1e-12)


@pytest.mark.parametrize("name", BACKENDS)
@SETTINGS
@given(beam=beams, length=lengths, k1=k1s, tilt=tilts, xo=offsets, yo=offsets)
def test_two_halves_make_a_whole(name, beam, length, k1, tilt, xo, yo):
    """quad(L) then quad(L) equals quad(2L) in two slices, misalignments included."""
    p = _particles(name, beam)
    twice = _quad(_quad(p, length, k1, tilt, xo, yo), length, k1, tilt, xo, yo)
    whole = _quad(p, 2 * length, k1, tilt, xo, yo, num_steps=2)
    np.testing.assert_array_equal(_flag(twice), _flag(whole))
    assert _close(to_np(twice), to_np(whole), 1e-12)


@pytest.mark.parametrize("name", BACKENDS)
@SETTINGS
@given(a=beams, b=beams, length=lengths, k1=k1s, tilt=tilts, xo=offsets, yo=offsets)
def test_linear_method_is_affine(name, a, b, length, k1, tilt, xo, yo):
    """f(a + b) - f(0) = (f(a) - f(0)) + (f(b) - f(0)) for the "linear" method."""
    def f(beam):
        p = _particles(name, beam)
        p = _quad(p, length, k1, tilt, xo, yo, method="linear")
        return to_np(track_drift(p, length=length, method="linear"))

    f0 = f(np.zeros_like(a))
    lhs = f(a + b) - f0
    rhs = (f(a) - f0) + (f(b) - f0)
    scale = np.abs(np.stack([f(a), f(b), f0])).max(axis=(0, 2), keepdims=False)[:, None] + 1e-3
    assert np.all(np.abs(lhs - rhs) <= 1e-12 * scale)


@pytest.mark.parametrize("name", BACKENDS)
@SETTINGS
@given(beam=beams, length=lengths)
def test_zero_k1_quad_is_drift_to_second_order(name, beam, length):
    """k1 = 0: the paraxial quad and the exact drift differ at third order in the
    angles: |dx| <= L |x'| (x'^2 + y'^2), |dz| <= L (x'^2 + y'^2)^2."""
    p = _particles(name, beam)
    quad = to_np(track_quadrupole(p, length=length, k1=0.0))
    drift = to_np(track_drift(p, length=length))
    rel = 1 + beam[:, 5]
    xn, yn = beam[:, 1] / rel, beam[:, 3] / rel
    angle2 = xn**2 + yn**2
    tiny = 1e-15 * (1 + np.abs(drift))
    assert np.all(np.abs(quad[0] - drift[0]) <= length * np.abs(xn) * angle2 + tiny[0])
    assert np.all(np.abs(quad[2] - drift[2]) <= length * np.abs(yn) * angle2 + tiny[2])
    assert np.all(np.abs(quad[4] - drift[4]) <= length * angle2**2 + tiny[4])
    np.testing.assert_array_equal(quad[[1, 3, 5]], drift[[1, 3, 5]])


@pytest.mark.parametrize("name", BACKENDS)
@SETTINGS
@given(beam=beams, length=lengths, p0c=momenta, mc2=masses)
def test_drift_reversible(name, beam, length, p0c, mc2):
    """drift(-L) undoes drift(L) (exact drift), for any energy and species."""
    p = _particles(name, beam, p0c=p0c, mc2=mc2)
    back = to_np(track_drift(track_drift(p, length=length), length=-length))
    scale = 1e-15 * length * 8
    np.testing.assert_allclose(back, beam.T, rtol=1e-14, atol=scale)


@SETTINGS
@given(beam=beams, p0c=momenta, mc2=masses)
def test_madx_round_trip(beam, p0c, mc2):
    """from_madx(to_madx(p)) == p for any energy and species."""
    p = _particles("numpy", beam, p0c=p0c, mc2=mc2)
    m = to_madx(p)
    back = from_madx(*(m[k] for k in ("x", "px", "y", "py", "t", "pt")), p0c=p0c, mc2=mc2)
    np.testing.assert_allclose(to_np(back), beam.T, rtol=1e-14, atol=1e-20)


@settings(max_examples=25, deadline=None)
@given(point=arrays(np.float64, (6,), elements=st.floats(-1e-2, 1e-2)), length=lengths,
       k1=st.floats(-20.0, 20.0), tilt=tilts, xo=offsets, yo=offsets)
def test_symplectic_random(point, length, k1, tilt, xo, yo):
    """M^T J M = J for the Jacobian of the "bmad" quad + drift at random points."""
    torch = pytest.importorskip("torch")

    def f(v):
        p = Particles(coords=v[:, None], p0c=1e9, mc2=ELECTRON_MC2)
        return track_drift(_quad(p, length, k1, tilt, xo, yo), length=length).coords[:, 0]

    m = torch.func.jacrev(f)(torch.tensor(point, dtype=torch.float64)).numpy()
    scale = max(1.0, np.abs(m).max()) ** 2
    np.testing.assert_allclose(m.T @ SYMPLECTIC_J @ m, SYMPLECTIC_J, rtol=0, atol=1e-13 * scale)
