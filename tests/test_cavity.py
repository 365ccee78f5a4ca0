"""RF cavities (rfcavity, lcavity, crab_cavity) against independent references.

References written here, never taken from beamtrack:

- a time-domain implementation of each Bmad model in mpmath (40 digits): particles
  carry absolute momenta ``Px, Py`` [eV], total energy ``E`` and arrival time ``t``;
  the reference particle's time and energy are tracked alongside; the RF phase is
  computed from ``t - t_ref``. Bmad's ``z, pz`` and the changes of reference momentum
  are only formed at the end, so the coordinate bookkeeping of the code under test
  (``z = -beta c (t - t0)``, time-keeping energy kicks, reference rescaling) is checked
  against plain kinematics;
- energy gains ``V sin(2 pi phi0)`` / ``V cos(2 pi phi0)`` in the ultra-relativistic
  limit, the thin-kick formulas, and the Rosenzweig-Serafini continuum limit of the
  standing-wave lcavity (x'' = -(g'/g) x' - G^2/(8 E^2) x with edge lenses),
  integrated with scipy (DOP853, rtol 1e-13);
- symplecticity (``M^T J M = J``) and, for the lcavity, ``M^T J M = (P0_in/P0_out) J``
  from torch and JAX Jacobians.
"""

from __future__ import annotations

import functools
import math

import mpmath
import numpy as np
import pytest
from conftest import (
    ELECTRON_MC2,
    P0C,
    PROTON_MC2,
    SYMPLECTIC_J,
    alive_np,
    make_particles,
    random_beam,
    to_np,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import solve_ivp

from beamtrack.backends import get
from beamtrack.lattice.beamline import Beamline
from beamtrack.lattice.elements import CrabCavity, Drift, LCavity, Quadrupole, RFCavity
from beamtrack.tracking.cavity import (
    crab_cavity_map,
    lcavity_map,
    rfcavity_map,
    track_crab_cavity,
    track_lcavity,
    track_rfcavity,
)
from beamtrack.tracking.drift import track_drift
from beamtrack.tracking.errors import ParameterError
from beamtrack.tracking.particles import Particles
from beamtrack.tracking.quadrupole import track_quadrupole

mpmath.mp.dps = 40
J = SYMPLECTIC_J
C = 299792458.0
FREQ = 1.3e9
K_RF = 2 * math.pi * FREQ / C

TRACKERS = {"rfcavity": track_rfcavity, "lcavity": track_lcavity, "crab": track_crab_cavity}

#: Generic incoming particles (n, 6).
BEAM = np.array([
    [1e-3, 2e-3, -3e-3, -1e-3, 2e-3, -1e-3],
    [-2e-3, 5e-4, 1e-3, 3e-3, -1e-3, 2e-2],
    [4e-3, -1e-3, 2e-3, -2e-3, 5e-3, -3e-2],
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
])
#: (p0c, mc2): a GeV electron beam and slow protons (beta = 0.05) with phase slip.
REFERENCES = {"electron": (P0C, ELECTRON_MC2), "slow proton": (5e7, PROTON_MC2)}


def _mp(v):
    return mpmath.mpf(float(v))


def value_and_grad_eager(backend, fn, x):
    """Value and gradient with ``backend``'s autodiff, without jax.jit (compiling the
    long kick sequences of a cavity costs more than one eager run)."""
    value, grad = backend.value_and_grad(fn)(backend.asarray(x))
    return backend.to_numpy(value), backend.to_numpy(grad)


# -- the time-domain reference implementation --------------------------------------------------


class MpParticle:
    """One particle in absolute variables (mpmath): x, y [m], Px, Py, E [eV], t [s],
    with the reference particle's time, energy and momentum alongside."""

    def __init__(self, row, p0c, mc2):
        x, px, y, py, z, pz = (_mp(v) for v in row)
        self.mc2 = _mp(mc2)
        self.p_ref = _mp(p0c)
        self.e_ref = mpmath.sqrt(self.p_ref**2 + self.mc2**2)
        p = (1 + pz) * self.p_ref
        self.x, self.y = x, y
        self.px, self.py = px * self.p_ref, py * self.p_ref
        self.e = mpmath.sqrt(p**2 + self.mc2**2)
        self.t = -z / (p / self.e) / C  # z = -beta c (t - t_ref), t_ref = 0 at the entrance
        self.t_ref = mpmath.mpf(0)

    @property
    def p(self):
        return mpmath.sqrt(self.e**2 - self.mc2**2)

    def drift(self, ds):
        ds = _mp(ds)
        ps = mpmath.sqrt(self.p**2 - self.px**2 - self.py**2)
        self.x += ds * self.px / ps
        self.y += ds * self.py / ps
        self.t += ds * self.e / (C * ps)
        self.t_ref += ds * self.e_ref / (C * self.p_ref)

    def dt(self):
        return self.t - self.t_ref

    def set_reference_energy(self, e_ref):
        self.e_ref = e_ref
        self.p_ref = mpmath.sqrt(e_ref**2 - self.mc2**2)

    def bmad(self):
        p = self.p
        z = -(p / self.e) * C * self.dt()
        return np.array([float(v) for v in (self.x, self.px / self.p_ref, self.y,
                                            self.py / self.p_ref, z, p / self.p_ref - 1)])


def mp_rfcavity(row, length, voltage, phi0, n, p0c, mc2, freq=FREQ):
    q = MpParticle(row, p0c, mc2)
    for i in range(n + 1):
        scale = mpmath.mpf(0.5 if i in (0, n) else 1) / n
        q.e += scale * _mp(voltage) * mpmath.sin(2 * mpmath.pi * (_mp(phi0) - _mp(freq) * q.dt()))
        if i < n:
            q.drift(_mp(length) / n)
    return q.bmad()


def mp_crab(row, length, voltage, phi0, n, p0c, mc2, freq=FREQ):
    q = MpParticle(row, p0c, mc2)
    k = 2 * mpmath.pi * _mp(freq) / C
    v = _mp(voltage) / n
    q.drift(_mp(length) / (2 * n))
    for i in range(n):
        phase = 2 * mpmath.pi * (_mp(phi0) - _mp(freq) * q.dt())
        q.px += v * mpmath.sin(phase)
        q.e += v * k * q.x * mpmath.cos(phase)
        q.drift(_mp(length) / n if i < n - 1 else _mp(length) / (2 * n))
    return q.bmad()


def mp_lcavity(row, length, voltage, phi0, n, p0c, mc2, freq=FREQ, standing=True):
    """Stair-step lcavity: edge lenses, ponderomotive kicks around the inner energy
    kicks (standing wave only), energy kicks scale/n * V cos(2 pi (phi0 + f (t - t_ref)))."""
    q = MpParticle(row, p0c, mc2)
    length, voltage, phi0, freq = _mp(length), _mp(voltage), _mp(phi0), _mp(freq)
    k = 2 * mpmath.pi * freq / C
    grad = voltage / length
    gain = voltage * mpmath.cos(2 * mpmath.pi * phi0)

    def phase():
        return 2 * mpmath.pi * (phi0 + freq * q.dt())

    def fringe(edge):
        ph = phase()
        kick = edge * grad * mpmath.cos(ph) / 2
        q.px -= kick * q.x
        q.py -= kick * q.y
        q.e -= edge * grad * k * mpmath.sin(ph) * (q.x**2 + q.y**2) / 4

    def ponderomotive():
        if not standing:
            return
        p = q.p
        q.px -= grad**2 * length * q.x / (16 * n * p)
        q.py -= grad**2 * length * q.y / (16 * n * p)
        dz = -grad**2 * length * (q.x**2 + q.y**2) / (32 * n * p**2)
        q.t -= dz / ((p / q.e) * C)

    fringe(1)
    for i in range(n + 1):
        scale = mpmath.mpf(0.5 if i in (0, n) else 1) / n
        if i > 0:
            q.drift(length / n)
            ponderomotive()
        q.e += scale * voltage * mpmath.cos(phase())
        q.set_reference_energy(q.e_ref + scale * gain)
        if i < n:
            ponderomotive()
    fringe(-1)
    return q.bmad(), float(q.p_ref)


@functools.cache
def _mp_beam(kind, beam, length, voltage, phi0, n, p0c, mc2):
    fn = {"rfcavity": mp_rfcavity, "crab": mp_crab, "lcavity": mp_lcavity}[kind]
    rows = [fn(r, length, voltage, phi0, n, p0c, mc2) for r in beam]
    if kind == "lcavity":
        return np.stack([r[0] for r in rows], axis=1), rows[0][1]
    return np.stack(rows, axis=1), p0c


MP_CASES = [
    ("rfcavity", dict(length=1.2, voltage=3e7, phi0=0.1, num_steps=1)),
    ("rfcavity", dict(length=0.7, voltage=-2e6, phi0=-0.3, num_steps=3)),
    ("crab", dict(length=0.5, voltage=4e6, phi0=0.05, num_steps=1)),
    ("crab", dict(length=0.9, voltage=-1e6, phi0=0.3, num_steps=3)),
    ("lcavity", dict(length=1.2, voltage=4e7, phi0=0.1, num_steps=1)),
    ("lcavity", dict(length=0.8, voltage=2e6, phi0=-0.15, num_steps=3)),
]


@pytest.mark.parametrize(("kind", "kw"), MP_CASES,
                         ids=[f"{k}-{i}" for i, (k, _) in enumerate(MP_CASES)])
@pytest.mark.parametrize("ref", list(REFERENCES))
def test_against_time_domain_reference(xp, kind, kw, ref):
    """All six coordinates (and the exit reference momentum of the lcavity) agree with
    the mpmath time-domain implementation, for GeV electrons and for slow protons whose
    phase slips between the kicks."""
    p0c, mc2 = REFERENCES[ref]
    if ref == "slow proton":  # 1.3 MeV of kinetic energy: keep every particle alive
        kw = dict(kw, voltage=0.03 * kw["voltage"])
    p = make_particles(xp.name, BEAM, p0c=p0c, mc2=mc2)
    out = TRACKERS[kind](p, frequency=FREQ, **kw)
    expected, p_out = _mp_beam(kind, tuple(map(tuple, BEAM)), kw["length"], kw["voltage"],
                               kw["phi0"], kw["num_steps"], p0c, mc2)
    assert np.all(alive_np(out))
    # atol: slow protons in the lcavity amplify rounding (~1e-16) step by step through
    # the phase slip (d pz/d z ~ V k/(beta^2 P0 c) is large), to a few 1e-15.
    np.testing.assert_allclose(to_np(out), expected, rtol=1e-11, atol=5e-15)
    assert float(xp.to_numpy(out.p0c)) == pytest.approx(p_out, rel=1e-14)


# -- energy gains -------------------------------------------------------------------------------


def _energy(pz, p0c, mc2):
    return np.array([float(mpmath.sqrt(((1 + _mp(d)) * _mp(p0c)) ** 2 + _mp(mc2) ** 2))
                     for d in np.atleast_1d(pz)])


@pytest.mark.parametrize("phi0", [0.0, 0.1, 0.25, -0.4])
def test_rfcavity_energy_gain(xp, phi0):
    """beta = 1: dE = V sin(2 pi phi0 + k z) exactly (no slip between the kicks); the
    reference particle gains V sin(2 pi phi0) and keeps the reference momentum."""
    p0c, voltage = 1e13, 3e8
    beam = np.zeros((3, 6))
    beam[:, 4] = [0.0, 0.01, -0.07]
    p = make_particles(xp.name, beam, p0c=p0c)
    out = to_np(track_rfcavity(p, length=2.0, voltage=voltage, phi0=phi0, frequency=FREQ,
                               num_steps=3))
    gain = _energy(out[5], p0c, ELECTRON_MC2) - _energy(0.0, p0c, ELECTRON_MC2)
    expected = voltage * np.sin(2 * np.pi * phi0 + K_RF * beam[:, 4])
    np.testing.assert_allclose(gain, expected, rtol=0, atol=5e-3)  # ~ulp of E = 1e13 eV
    assert float(xp.to_numpy(track_rfcavity(p, length=2.0, voltage=voltage, phi0=phi0,
                                            frequency=FREQ).p0c)) == p0c


@pytest.mark.parametrize("phi0", [0.0, 0.1, 0.3, -0.2])
@pytest.mark.parametrize("ref", list(REFERENCES))
def test_lcavity_reference_energy(xp, phi0, ref):
    """Exit reference momentum from E0 + V cos(2 pi phi0) (mpmath); the reference
    particle stays at the origin of the new coordinates up to rounding, which the map
    amplifies by its size (slow protons slip in phase: |R| up to ~1e5 here)."""
    p0c, mc2 = REFERENCES[ref]
    voltage, length = (3e7, 1.5) if ref == "electron" else (1e6, 0.5)
    p = make_particles(xp.name, np.zeros((1, 6)), p0c=p0c, mc2=mc2)
    for n in (1, 4):
        out = track_lcavity(p, length=length, voltage=voltage, phi0=phi0, frequency=FREQ,
                            num_steps=n)
        e_out = mpmath.sqrt(_mp(p0c) ** 2 + _mp(mc2) ** 2) + _mp(voltage) * mpmath.cos(
            2 * mpmath.pi * _mp(phi0))
        p_out = float(mpmath.sqrt(e_out**2 - _mp(mc2) ** 2))
        assert float(xp.to_numpy(out.p0c)) == pytest.approx(p_out, rel=1e-15)
        r, _, _ = lcavity_map(*(np.asarray(v) for v in (length, voltage, phi0, FREQ, p0c, mc2)),
                              num_steps=n)
        floor = 10 * np.finfo(float).eps * max(1.0, np.abs(r).max())
        np.testing.assert_allclose(to_np(out)[:, 0], 0.0, rtol=0, atol=floor)
        assert float(xp.to_numpy(out.s)) == length


def test_lcavity_energy_gain_ultrarelativistic(xp):
    """beta = 1 on axis: E gain = V cos(2 pi phi0 - k z) for any z and num_steps."""
    p0c, voltage, phi0 = 1e13, 5e8, 0.12
    beam = np.zeros((3, 6))
    beam[:, 4] = [0.0, 0.02, -0.05]
    beam[:, 5] = [0.0, 1e-4, -2e-4]
    p = make_particles(xp.name, beam, p0c=p0c)
    out = track_lcavity(p, length=3.0, voltage=voltage, phi0=phi0, frequency=FREQ, num_steps=5)
    p_out = float(xp.to_numpy(out.p0c))
    gain = _energy(to_np(out)[5], p_out, ELECTRON_MC2) - _energy(beam[:, 5], p0c, ELECTRON_MC2)
    expected = voltage * np.cos(2 * np.pi * phi0 - K_RF * beam[:, 4])
    np.testing.assert_allclose(gain, expected, rtol=0, atol=5e-3)


def test_crab_thin_kick(xp):
    """Zero length: px += V/P0 sin(2 pi phi0 + k tau) and E += V k x cos(...), with
    tau = z/beta; x, y, py unchanged."""
    p0c, mc2, voltage, phi0 = 5e7, PROTON_MC2, 2e5, 0.07
    p = make_particles(xp.name, BEAM, p0c=p0c, mc2=mc2)
    out = to_np(track_crab_cavity(p, length=0.0, voltage=voltage, phi0=phi0, frequency=FREQ))
    for i, row in enumerate(BEAM):
        x, px, y, py, z, pz = (_mp(v) for v in row)
        e = mpmath.sqrt(((1 + pz) * p0c) ** 2 + _mp(mc2) ** 2)
        tau = z * e / ((1 + pz) * p0c)
        phase = 2 * mpmath.pi * _mp(phi0) + _mp(K_RF) * tau
        e_new = e + _mp(voltage) * _mp(K_RF) * x * mpmath.cos(phase)
        pz_new = mpmath.sqrt(e_new**2 - _mp(mc2) ** 2) / p0c - 1
        assert out[1, i] == pytest.approx(float(px + _mp(voltage) / p0c * mpmath.sin(phase)),
                                          rel=1e-14, abs=1e-18)
        assert out[5, i] == pytest.approx(float(pz_new), rel=1e-13, abs=1e-17)
        np.testing.assert_array_equal(out[[0, 2, 3], i], row[[0, 2, 3]])


def test_lcavity_zero_length_is_an_energy_kick(xp):
    """Length 0 (Bmad's zero-length lcavity): only the energy kick V cos(2 pi phi0 - k tau),
    no edge focusing, nothing infinite."""
    p0c, voltage, phi0 = 1e9, 2e7, 0.2
    p = make_particles(xp.name, BEAM, p0c=p0c)
    out = track_lcavity(p, length=0.0, voltage=voltage, phi0=phi0, frequency=FREQ, num_steps=2)
    got = to_np(out)
    p_out = float(xp.to_numpy(out.p0c))
    assert np.all(np.isfinite(got))
    for i, row in enumerate(BEAM):
        x, px, y, py, z, pz = (_mp(v) for v in row)
        e = mpmath.sqrt(((1 + pz) * p0c) ** 2 + _mp(ELECTRON_MC2) ** 2)
        phase = 2 * mpmath.pi * _mp(phi0) - _mp(K_RF) * z * e / ((1 + pz) * p0c)
        e_new = e + _mp(voltage) * mpmath.cos(phase)
        expected_pz = mpmath.sqrt(e_new**2 - _mp(ELECTRON_MC2) ** 2) / p_out - 1
        assert got[5, i] == pytest.approx(float(expected_pz), rel=1e-12, abs=1e-16)
        assert got[1, i] == pytest.approx(row[1] * p0c / p_out, rel=1e-14)
        assert got[0, i] == row[0]


# -- the standing-wave lcavity and Rosenzweig-Serafini --------------------------------------------


def _rs_matrix(length, voltage, phi0, e_in, mc2):
    """2x2 (x, x') map of R-S's continuum model (eta = 1, beta = 1): edge lenses
    -/+ G cos(phi)/(2E) and x'' = -(E'/E) x' - G^2/(8 E^2) x, E' = G cos(phi)."""
    grad = voltage / length
    de_ds = grad * math.cos(2 * math.pi * phi0)

    def rhs(s, u):
        e = e_in + de_ds * s
        return [u[1], -(de_ds / e) * u[1] - grad**2 / (8 * e**2) * u[0]]

    cols = []
    for u0 in ([1.0, 0.0], [0.0, 1.0]):
        u = [u0[0], u0[1] - de_ds / (2 * e_in) * u0[0]]
        sol = solve_ivp(rhs, (0.0, length), u, method="DOP853", rtol=1e-13, atol=1e-16)
        x, xp_ = sol.y[:, -1]
        cols.append([x, xp_ + de_ds / (2 * (e_in + de_ds * length)) * x])
    return np.array(cols).T


@pytest.mark.parametrize("phi0", [0.0, 0.12])
def test_lcavity_rosenzweig_serafini_limit(phi0):
    """Many RF steps: the transverse map converges (second order in 1/num_steps) to
    the R-S standing-wave cavity with edge focusing (ultra-relativistic electrons)."""
    p0c, length, voltage = 1e10, 2.0, 5e9
    e_in = math.hypot(p0c, ELECTRON_MC2)
    expected = _rs_matrix(length, voltage, phi0, e_in, ELECTRON_MC2)
    errors = []
    for n in (16, 32, 64):
        r, _, _ = lcavity_map(*(np.asarray(v) for v in (length, voltage, phi0, FREQ, p0c,
                                                         ELECTRON_MC2)), num_steps=n)
        np.testing.assert_allclose(r[2:4, 2:4], r[0:2, 0:2], rtol=0, atol=1e-15)
        errors.append(np.abs(r[0:2, 0:2] - expected).max())
    assert errors[-1] < 5e-6
    assert 3.8 < errors[0] / errors[1] < 4.2 and 3.8 < errors[1] / errors[2] < 4.2
    # Not trivial: adiabatic damping and edge focusing are large effects here.
    assert abs(expected[1, 1] - 1) > 0.15 and abs(expected[1, 0]) > 0.015


# -- symplecticity and the linear maps -----------------------------------------------------------

POINT = np.array([2e-3, -3e-3, -1.5e-3, 2e-3, 4e-3, 1.5e-2])
JAC_CASES = {
    "rf": ("rfcavity", dict(length=0.8, voltage=2e7, phi0=0.1, num_steps=2)),
    "rf-misaligned": ("rfcavity", dict(length=0.8, voltage=2e7, phi0=0.3, x_offset=1e-3,
                                       tilt=0.2)),
    "crab": ("crab", dict(length=0.6, voltage=5e6, phi0=0.05, num_steps=2)),
    "crab-misaligned": ("crab", dict(length=0.6, voltage=5e6, phi0=-0.2, x_offset=1e-3,
                                     y_offset=-2e-3, tilt=0.5)),
    "lcav": ("lcavity", dict(length=1.0, voltage=3e7, phi0=0.1, num_steps=3)),
    "lcav-misaligned": ("lcavity", dict(length=1.0, voltage=3e7, phi0=-0.05, x_offset=2e-3,
                                        y_offset=-1e-3, tilt=0.3)),
    "lcav-traveling": ("lcavity", dict(length=1.0, voltage=3e7, phi0=0.1, num_steps=2,
                                       cavity_type="traveling_wave", x_offset=1e-3)),
}
JAC_REFERENCES = {"electron 100 MeV/c": (1e8, ELECTRON_MC2), "proton 1 GeV/c": (1e9, PROTON_MC2)}


def jacobian(ad, kind, kw, point, p0c, mc2, method="bmad"):
    """6x6 Jacobian of the cavity map at ``point`` (torch.func.jacrev / jax.jacfwd)."""
    track = TRACKERS[kind]
    if ad.name == "torch":
        import torch

        def f(v):
            p = Particles(coords=v[:, None], p0c=p0c, mc2=mc2)
            return track(p, frequency=FREQ, method=method, **kw).coords[:, 0]

        return torch.func.jacrev(f)(ad.asarray(point)).detach().numpy()
    import jax

    def f(v):
        p = Particles(coords=v[:, None], p0c=p0c, mc2=mc2)
        return track(p, frequency=FREQ, method=method, **kw).coords[:, 0]

    # Eager: compiling these long kick sequences with jax.jit costs far more than
    # running them once op by op.
    return np.array(jax.jacfwd(f)(ad.asarray(point)))


def _p_out(kind, kw, p0c, mc2):
    """Exit reference momentum (mpmath: E^2 - mc2^2 cancels for slow particles)."""
    if kind != "lcavity":
        return p0c
    e = mpmath.sqrt(_mp(p0c) ** 2 + _mp(mc2) ** 2) + _mp(kw["voltage"]) * mpmath.cos(
        2 * mpmath.pi * _mp(kw["phi0"]))
    return float(mpmath.sqrt(e * e - _mp(mc2) ** 2))


@pytest.mark.parametrize("case", list(JAC_CASES))
@pytest.mark.parametrize("ref", list(JAC_REFERENCES))
def test_symplectic(ad, case, ref):
    """rfcavity and crab cavity: M^T J M = J. lcavity: M^T J M = (P0_in/P0_out) J and
    det M = (P0_in/P0_out)^3 (symplectic at fixed reference; every change of reference
    scales px, py, 1+pz by P_old/P_new)."""
    kind, kw = JAC_CASES[case]
    p0c, mc2 = JAC_REFERENCES[ref]
    m = jacobian(ad, kind, kw, POINT, p0c, mc2)
    assert np.all(np.isfinite(m))
    ratio = p0c / _p_out(kind, kw, p0c, mc2)
    np.testing.assert_allclose(m.T @ J @ m, ratio * J, rtol=0, atol=1e-12 * np.abs(m).max()**2)
    assert np.linalg.det(m) == pytest.approx(ratio**3, rel=1e-10)
    if kind == "lcavity":
        assert ratio < 0.98  # really accelerating: the factor is tested, not 1
    assert np.abs(m - np.eye(6)).max() > 1e-3


@pytest.mark.parametrize("case", list(JAC_CASES))
def test_linear_is_jacobian_and_constant_is_image(ad, case):
    """'linear' = Jacobian of 'bmad' at the laboratory zero orbit (in the exit
    reference's coordinates for the lcavity) + the 'bmad' image of that orbit; the
    lcavity's linear method gives the same exit reference momentum. Electrons for the
    aligned cases, protons (beta = 0.73) for the misaligned ones."""
    kind, kw = JAC_CASES[case]
    p0c, mc2 = JAC_REFERENCES["proton 1 GeV/c" if "misaligned" in case else
                              "electron 100 MeV/c"]
    m = jacobian(ad, kind, kw, np.zeros(6), p0c, mc2)
    p = make_particles(ad.name, np.vstack([np.zeros(6), np.eye(6)]), p0c=p0c, mc2=mc2)
    track = TRACKERS[kind]
    lin = track(p, frequency=FREQ, method="linear", **kw)
    bmad = track(p, frequency=FREQ, **kw)
    got = to_np(lin)
    np.testing.assert_allclose(got[:, 1:] - got[:, :1], m, rtol=0, atol=1e-13 * np.abs(m).max())
    np.testing.assert_allclose(got[:, 0], to_np(bmad)[:, 0], rtol=0, atol=1e-16)
    assert float(ad.to_numpy(lin.p0c)) == float(ad.to_numpy(bmad.p0c))


def test_rf_thin_linear_matrix(xp):
    """Thin rfcavity at phi0 = 0: the only first-order term is R65 = V k/(beta0^2 P0 c)
    (dE = V k tau, tau = z/beta0, dP = dE/beta0)."""
    p0c, mc2, voltage = 2e8, PROTON_MC2, 1e6
    beta0 = p0c / math.hypot(p0c, mc2)
    r, c = rfcavity_map(*(xp.asarray(v) for v in (0.0, voltage, 0.0, FREQ, p0c, mc2)))
    expected = np.eye(6)
    expected[5, 4] = voltage * K_RF / (beta0**2 * p0c)
    np.testing.assert_allclose(xp.to_numpy(r), expected, rtol=1e-14, atol=1e-20)
    np.testing.assert_allclose(xp.to_numpy(c), 0.0, atol=1e-20)
    r, c = crab_cavity_map(*(xp.asarray(v) for v in (0.0, voltage, 0.0, FREQ, p0c, mc2)))
    expected = np.eye(6)
    expected[1, 4] = voltage * K_RF / (beta0 * p0c)  # d px/dz = V k/(beta0 P0 c)
    expected[5, 0] = voltage * K_RF / (beta0 * p0c)  # the Panofsky-Wenzel partner
    np.testing.assert_allclose(xp.to_numpy(r), expected, rtol=1e-14, atol=1e-20)


# -- losses --------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["bmad", "linear", "second_order"])
def test_rfcavity_particles_below_rest_energy_lost(xp, method):
    """Slow protons (kinetic 1.33 MeV) at a decelerating phase: the first half kick of
    -2.5 MeV stops them: lost, frozen at the entrance, finite."""
    beam = np.vstack([BEAM[:2], [[1e-3, 0.8, 2e-3, 0.6, 0.0, 0.0]]])
    beam[:, 4] = 0.0  # on the decelerating crest
    p = make_particles(xp.name, beam, p0c=5e7, mc2=PROTON_MC2)
    out = track_rfcavity(p, length=0.5, voltage=5e6, phi0=-0.25, frequency=FREQ, method=method)
    got = to_np(out)
    assert np.all(np.isfinite(got))
    if method == "bmad":
        np.testing.assert_array_equal(alive_np(out), [False, False, False])
        np.testing.assert_array_equal(got, beam.T)
    # Accelerating phase: all but the unphysical one survive.
    out = track_rfcavity(p, length=0.5, voltage=5e6, phi0=0.25, frequency=FREQ, method=method)
    if method == "bmad":
        np.testing.assert_array_equal(alive_np(out), [True, True, False])


def test_lcavity_losses(xp):
    """A particle half a wavelength behind the reference in a 1 MeV electron beam is
    decelerated below rest energy at the first energy kick and lost: frozen after the
    entrance edge kick (px + G x/(2 P0c) at phase pi), momenta re-expressed in the exit
    reference. A reference decelerated below rest loses everything and keeps p0c."""
    p0c, mc2 = 1e6, ELECTRON_MC2
    beta = p0c / math.hypot(p0c, mc2)
    beam = np.array([[1e-3, 1e-3, 0, 0, 0, 0], [1e-3, 1e-3, 0, 0, -beta * C / FREQ / 2, 0]])
    p = make_particles(xp.name, beam, p0c=p0c, mc2=mc2)
    out = track_lcavity(p, length=0.2, voltage=2e6, phi0=0.0, frequency=FREQ)
    got, p_out = to_np(out), float(xp.to_numpy(out.p0c))
    np.testing.assert_array_equal(alive_np(out), [True, False])
    assert np.all(np.isfinite(got))
    edge_px = beam[1, 1] + (2e6 / 0.2) * beam[1, 0] / (2 * p0c)
    np.testing.assert_allclose(got[:, 1], [beam[1, 0], edge_px * p0c / p_out, 0, 0,
                                            beam[1, 4], p0c / p_out - 1], rtol=1e-14, atol=1e-18)
    # Reference below rest energy: -2 MeV against 0.61 MeV of kinetic energy.
    out = track_lcavity(p, length=0.2, voltage=2e6, phi0=0.5, frequency=FREQ, num_steps=2)
    assert not np.any(alive_np(out))
    np.testing.assert_array_equal(to_np(out), beam.T)
    assert float(xp.to_numpy(out.p0c)) == p0c


@pytest.mark.parametrize("method", ["linear", "second_order"])
def test_lcavity_map_methods_lost_particles(xp, method):
    """The map methods treat losses as "bmad" does: particles lost before the lcavity
    stay lost, their momenta re-expressed relative to the exit reference (the same
    numbers as "bmad"); a reference decelerated below rest energy loses every particle
    and keeps p0c."""
    p0c, mc2 = 2e8, PROTON_MC2
    alive = np.array([True, False, True, False])
    p = make_particles(xp.name, BEAM, p0c=p0c, mc2=mc2, alive=alive)
    kw = dict(length=0.6, voltage=8e6, phi0=0.1, frequency=FREQ, num_steps=2, x_offset=1e-3)
    out, bmad = (track_lcavity(p, method=m, **kw) for m in (method, "bmad"))
    np.testing.assert_array_equal(alive_np(out), alive)
    np.testing.assert_array_equal(to_np(out)[:, ~alive], to_np(bmad)[:, ~alive])
    p_out = float(xp.to_numpy(out.p0c))
    assert p_out == float(xp.to_numpy(bmad.p0c)) and p_out > 1.02 * p0c
    ratio = np.array([1.0, p0c / p_out, 1.0, p0c / p_out, 1.0, p0c / p_out])
    expected = BEAM[~alive].T * ratio[:, None] + np.array([0, 0, 0, 0, 0, ratio[5] - 1])[:, None]
    np.testing.assert_allclose(to_np(out)[:, ~alive], expected, rtol=1e-14, atol=1e-18)
    # Decelerated by 50 MeV, the reference (21 MeV of kinetic energy) stops.
    out, bmad = (track_lcavity(p, method=m, **dict(kw, voltage=5e7, phi0=0.5))
                 for m in (method, "bmad"))
    assert not np.any(alive_np(out))
    assert float(xp.to_numpy(out.p0c)) == p0c
    np.testing.assert_array_equal(to_np(out), to_np(bmad))
    np.testing.assert_allclose(to_np(out), BEAM.T, rtol=1e-15, atol=0)


@pytest.mark.parametrize("kind", list(TRACKERS))
def test_lost_particles_finite_gradients(ad, kind):
    """Gradients w.r.t. coordinates and voltage/phi0 stay finite with lost particles."""
    beam = np.vstack([BEAM[:2], [[1e-3, 0.8, 2e-3, 0.6, 0.0, 0.0]], [[0.0, 0, 0, 0, 0, -1.0]]])
    xp = ad.namespace()
    kw = dict(length=0.5, frequency=FREQ, num_steps=2)

    def loss(v):
        p = Particles(coords=v[:6], p0c=5e7, mc2=PROTON_MC2)
        out = TRACKERS[kind](p, voltage=v[6, 0], phi0=v[6, 1], **kw)
        return xp.sum(out.coords) + xp.sum(out.p0c)

    v0 = np.vstack([beam.T, [[4e6, -0.2, 0.0, 0.0]]])
    _, grad = value_and_grad_eager(ad, loss, v0)
    assert np.all(np.isfinite(grad))
    # The two particles lost at the entrance are frozen: d out/d in = 1 per coordinate,
    # and P0_in/P0_out for the lcavity's momenta (re-expressed in the exit reference).
    ratio = 5e7 / _p_out(kind, dict(voltage=4e6, phi0=-0.2), 5e7, PROTON_MC2)
    expected = np.array([1.0, ratio, 1.0, ratio, 1.0, ratio])
    np.testing.assert_allclose(grad[:6, 2:], np.stack([expected, expected], axis=1),
                               rtol=1e-15)


# -- parameters: gradients, batches, misalignments, errors, records --------------------------------

GRAD_KW = dict(length=0.7, frequency=FREQ, num_steps=2, x_offset=1e-3, y_offset=-1e-3)


def _weighted(kind, v, backend="numpy"):
    p = make_particles(backend, BEAM, p0c=2e8, mc2=PROTON_MC2)
    out = TRACKERS[kind](p, voltage=v[0], phi0=v[1], **GRAD_KW)
    w = np.array([1.0, 3.0, -2.0, 0.5, 7.0, 11.0])
    return float((to_np(out) * w[:, None]).sum() + 1e-8 * float(np.asarray(out.p0c)))


@pytest.mark.parametrize("kind", list(TRACKERS))
@pytest.mark.parametrize("voltage", [0.0, 3e6])
def test_parameter_gradients(ad, kind, voltage):
    """d/d(voltage, phi0) by autodiff (voltage = 0 included) equals central differences;
    for the lcavity through the coordinates and the exit reference momentum."""
    xp = ad.namespace()
    particles = make_particles(ad.name, BEAM, p0c=2e8, mc2=PROTON_MC2)
    w = ad.asarray(np.array([1.0, 3.0, -2.0, 0.5, 7.0, 11.0]))

    def loss(v):
        out = TRACKERS[kind](particles, voltage=v[0], phi0=v[1], **GRAD_KW)
        return xp.sum(out.coords * w[:, None]) + 1e-8 * xp.sum(out.p0c)

    v0 = np.array([voltage, 0.13])
    _, grad = value_and_grad_eager(ad, loss, v0)
    assert np.all(np.isfinite(grad))
    for i, h in enumerate((1e2, 1e-6)):
        dv = np.zeros(2)
        dv[i] = h
        fd = (_weighted(kind, v0 + dv) - _weighted(kind, v0 - dv)) / (2 * h)
        assert grad[i] == pytest.approx(fd, rel=1e-6, abs=1e-13)
    assert grad[0] != 0.0


@pytest.mark.parametrize("kind", list(TRACKERS))
@pytest.mark.parametrize("method", ["bmad", "linear", "second_order"])
def test_cross_backend(xp, kind, method):
    beam = np.vstack([BEAM, random_beam(4, seed=3, scale=3e-3)])
    kw = dict(length=0.6, voltage=8e6, phi0=0.1, frequency=FREQ, num_steps=2, tilt=0.3,
              x_offset=1e-3, y_offset=-2e-3, method=method)
    ref = TRACKERS[kind](make_particles("numpy", beam, p0c=2e8, mc2=PROTON_MC2), **kw)
    got = TRACKERS[kind](make_particles(xp.name, beam, p0c=2e8, mc2=PROTON_MC2), **kw)
    np.testing.assert_allclose(to_np(got), to_np(ref), rtol=1e-12, atol=1e-17)
    assert float(xp.to_numpy(got.p0c)) == pytest.approx(float(np.asarray(ref.p0c)), rel=1e-15)


@pytest.mark.parametrize("kind", list(TRACKERS))
@pytest.mark.parametrize("method", ["bmad", "linear", "second_order"])
def test_batched_parameters(xp, kind, method):
    """Parameters of shape (B,) against particles (n,): the same as a loop over B; the
    lcavity's exit reference momentum has shape (B,)."""
    params = dict(length=np.array([0.3, 0.0, 1.0]), voltage=np.array([5e6, -2e6, 0.0]),
                  phi0=np.array([0.1, -0.2, 0.0]), x_offset=np.array([0.0, 1e-3, -1e-3]),
                  tilt=np.array([0.0, 0.4, 1.0]))
    p = make_particles(xp.name, BEAM, p0c=2e8, mc2=PROTON_MC2)
    out = TRACKERS[kind](p, frequency=FREQ, method=method,
                         **{k: xp.asarray(v) for k, v in params.items()})
    got = to_np(out)
    assert got.shape == (3, 6, 4)
    p_out = xp.to_numpy(out.p0c)
    assert p_out.shape == ((3,) if kind == "lcavity" else ())
    for b in range(3):
        single = TRACKERS[kind](p, frequency=FREQ, method=method,
                                **{k: float(v[b]) for k, v in params.items()})
        np.testing.assert_allclose(got[b], to_np(single), rtol=0, atol=1e-15)
        assert np.broadcast_to(p_out, (3,))[b] == float(xp.to_numpy(single.p0c))


@pytest.mark.parametrize("kind", ["rfcavity", "lcavity"])
def test_axially_symmetric_misalignments(xp, kind):
    """rfcavity and lcavity are axially symmetric: a tilt changes nothing, an offset is
    a translation (a particle on the offset axis is tracked like one on axis)."""
    p = make_particles(xp.name, BEAM, p0c=2e8, mc2=PROTON_MC2)
    kw = dict(length=0.6, voltage=8e6, phi0=0.1, frequency=FREQ, num_steps=2)
    plain = to_np(TRACKERS[kind](p, **kw))
    np.testing.assert_allclose(to_np(TRACKERS[kind](p, tilt=0.7, **kw)), plain, rtol=1e-13,
                               atol=1e-18)
    offset = np.array([1e-3, 0, -2e-3, 0, 0, 0])
    shifted = make_particles(xp.name, BEAM + offset, p0c=2e8, mc2=PROTON_MC2)
    got = to_np(TRACKERS[kind](shifted, x_offset=1e-3, y_offset=-2e-3, **kw))
    np.testing.assert_allclose(got, plain + offset[:, None], rtol=1e-12, atol=1e-17)


def test_crab_tilt_turns_the_deflection_plane(xp):
    """tilt = pi/2 deflects in y what tilt = 0 deflects in x (coordinates rotated)."""
    p = make_particles(xp.name, BEAM, p0c=2e8, mc2=PROTON_MC2)
    kw = dict(length=0.6, voltage=5e6, phi0=0.1, frequency=FREQ, num_steps=2)
    rot = np.eye(6)
    rot[np.ix_([0, 1, 2, 3], [0, 1, 2, 3])] = [[0, 0, -1, 0], [0, 0, 0, -1], [1, 0, 0, 0],
                                               [0, 1, 0, 0]]
    turned = make_particles(xp.name, BEAM @ rot, p0c=2e8, mc2=PROTON_MC2)
    base = to_np(track_crab_cavity(turned, **kw))
    got = to_np(track_crab_cavity(p, tilt=math.pi / 2, **kw))
    np.testing.assert_allclose(rot @ base, got, rtol=1e-12, atol=1e-17)
    zero = make_particles(xp.name, np.zeros((1, 6)), p0c=2e8, mc2=PROTON_MC2)
    out = to_np(track_crab_cavity(zero, tilt=math.pi / 2, **kw))[:, 0]
    assert abs(out[3]) > 1e-3 and abs(out[1]) < 1e-15  # the reference is kicked in y


@pytest.mark.parametrize("kind", list(TRACKERS))
def test_zero_voltage_is_a_drift(xp, kind):
    p = make_particles(xp.name, BEAM)
    out = TRACKERS[kind](p, length=0.9, voltage=0.0, phi0=0.3, frequency=FREQ, num_steps=3)
    np.testing.assert_allclose(to_np(out), to_np(track_drift(p, length=0.9)), rtol=1e-14,
                               atol=1e-18)


@pytest.mark.parametrize("kind", list(TRACKERS))
def test_bad_parameters(xp, kind):
    p = make_particles(xp.name, BEAM[:1])
    kw = dict(length=0.5, voltage=1e6, phi0=0.0, frequency=FREQ)
    name = {"crab": "crab_cavity"}.get(kind, kind)
    for key in ("length", "voltage", "phi0", "frequency", "tilt", "x_offset", "y_offset"):
        with pytest.raises(ParameterError, match=rf"(?s){name}.*{key}"):
            TRACKERS[kind](p, **dict(kw, **{key: True}))
    with pytest.raises(ParameterError, match=rf"(?s){name}.*frequency"):
        TRACKERS[kind](p, **dict(kw, frequency=0.0))
    with pytest.raises(ParameterError, match=rf"(?s){name}.*frequency"):
        TRACKERS[kind](p, **dict(kw, frequency=-1e6))
    TRACKERS[kind](p, **dict(kw, frequency=0.0, voltage=0.0))  # allowed, as in Bmad
    for bad in (dict(method="exact"), dict(num_steps=0), dict(num_steps=2.0)):
        with pytest.raises(ParameterError, match=rf"(?s){name}.*(method|num_steps)"):
            TRACKERS[kind](p, **dict(kw, **bad))
    other = "numpy" if xp.name != "numpy" else "array_api_strict"
    with pytest.raises(ParameterError, match=rf"(?s){name}.*voltage"):
        TRACKERS[kind](p, **dict(kw, voltage=get(other).asarray(1.0)))


def test_records_in_beamline(xp):
    """Records track like the functions; the lcavity's new p0c flows downstream (a
    quadrupole after it focuses relative to the new reference), in every method."""
    cav = dict(length=1.0, voltage=5e7, phi0=0.05, frequency=FREQ, num_steps=2)
    crab = dict(length=0.3, voltage=1e6, phi0=0.0, frequency=FREQ, tilt=0.1)
    rf = dict(length=0.4, voltage=1e6, phi0=0.2, frequency=FREQ)
    line = Beamline([LCavity("acc", **cav), Drift("d", length=0.5),
                     Quadrupole("q", length=0.2, k1=3.0), CrabCavity("crab", **crab),
                     RFCavity("rf", **rf), LCavity("acc2", **cav)])
    p = make_particles(xp.name, BEAM, p0c=1e8)
    for method in ("bmad", "linear", "second_order"):
        q = track_lcavity(p, method=method, **cav)
        q = track_quadrupole(track_drift(q, length=0.5, method=method), length=0.2, k1=3.0,
                             method=method)
        q = track_rfcavity(track_crab_cavity(q, method=method, **crab), method=method, **rf)
        q = track_lcavity(q, method=method, **cav)
        out = line.track(p, method=method)
        np.testing.assert_array_equal(to_np(out), to_np(q))
        assert float(xp.to_numpy(out.p0c)) == pytest.approx(
            1e8 + 2 * 5e7 * math.cos(2 * math.pi * 0.05), rel=1e-4)
    with pytest.raises(ParameterError, match=r"(?s)LCavity.*'c1'.*voltage"):
        LCavity("c1", length=1.0, voltage=float("inf"))
    with pytest.raises(ParameterError, match=r"(?s)RFCavity.*'c2'.*frequency"):
        Beamline([RFCavity("c2", length=1.0, voltage=1e6, frequency=0.0)]).track(p)


def test_small_energy_kicks_without_cancellation(xp):
    """A 1 meV kick on slow protons (kinetic 1.3 MeV) changes pz by ~4e-10: the change
    is exact to 1e-12 relative (no difference of nearly equal energies); for a particle
    off the reference (z, pz != 0) the results agree to the spacing of the numbers."""
    p0c, mc2, voltage = 5e7, PROTON_MC2, 1e-3
    beam = np.array([[0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 1e-3, 2e-3]])
    p = make_particles(xp.name, beam, p0c=p0c, mc2=mc2)
    got = to_np(track_rfcavity(p, length=0.0, voltage=voltage, phi0=0.25, frequency=FREQ))
    on_ref = mp_rfcavity(beam[0], 0.0, voltage, 0.25, 1, p0c, mc2)
    assert got[5, 0] > 1e-10
    assert got[5, 0] == pytest.approx(on_ref[5], rel=1e-12)
    off_ref = mp_rfcavity(beam[1], 0.0, voltage, 0.25, 1, p0c, mc2)
    assert abs(off_ref[5] - beam[1, 5]) > 1e-13
    assert np.all(np.abs(got[4:, 1] - off_ref[4:]) <= 2 * np.spacing(np.abs(beam[1, 4:])))


@settings(max_examples=30, deadline=None)
@given(
    voltage=st.floats(-2e7, 5e7),
    phi0=st.floats(-0.5, 0.5),
    num_steps=st.integers(1, 6),
    p0c=st.sampled_from([3e6, 1e8, 2e9]),
)
def test_lcavity_reference_property(voltage, phi0, num_steps, p0c):
    """For any voltage and phase (electrons, numpy): the exit reference momentum follows
    from E0 + V cos(2 pi phi0) when that stays above rest energy (else every particle is
    lost and p0c is kept), and the reference particle stays at the origin."""
    p = make_particles("numpy", np.zeros((1, 6)), p0c=p0c)
    out = track_lcavity(p, length=1.0, voltage=voltage, phi0=phi0, frequency=FREQ,
                        num_steps=num_steps)
    e_out = mpmath.sqrt(_mp(p0c) ** 2 + _mp(ELECTRON_MC2) ** 2) + _mp(voltage) * mpmath.cos(
        2 * mpmath.pi * _mp(phi0))
    if e_out > _mp(ELECTRON_MC2) * (1 + 1e-9):
        assert bool(alive_np(out)[0])
        p_out = float(mpmath.sqrt(e_out**2 - _mp(ELECTRON_MC2) ** 2))
        # Conditioning: near the rest energy the kinetic energy K0 + V cos is a
        # difference, and P_out inherits its relative rounding eps K0 / K_out.
        k0 = float(mpmath.sqrt(_mp(p0c) ** 2 + _mp(ELECTRON_MC2) ** 2) - _mp(ELECTRON_MC2))
        k_out = float(e_out - _mp(ELECTRON_MC2))
        rel = 4 * np.finfo(float).eps * (1 + k0 / k_out)
        assert float(np.asarray(out.p0c)) == pytest.approx(p_out, rel=rel)
        r, _, _ = lcavity_map(*(np.asarray(v) for v in (1.0, voltage, phi0, FREQ, p0c,
                                                         ELECTRON_MC2)), num_steps=num_steps)
        floor = 10 * np.finfo(float).eps * max(1.0, np.abs(r).max())
        np.testing.assert_allclose(to_np(out)[:, 0], 0.0, rtol=0, atol=floor)
    elif e_out <= _mp(ELECTRON_MC2):
        assert not bool(alive_np(out)[0])
        assert float(np.asarray(out.p0c)) == p0c
        np.testing.assert_array_equal(to_np(out), 0.0)


def test_records_json_round_trip():
    """The four records (and the solenoid) survive the JSON lattice format."""
    from beamtrack.lattice.elements import Solenoid
    from beamtrack.lattice.io.json_format import dumps, loads

    line = Beamline([
        LCavity("l", length=1.0, voltage=5e7, phi0=0.05, frequency=FREQ, num_steps=3),
        RFCavity("r", length=0.4, voltage=1e6, phi0=0.2, frequency=FREQ, x_offset=1e-3),
        CrabCavity("c", length=0.3, voltage=1e6, frequency=FREQ, tilt=0.1),
        Solenoid("s", length=0.5, ks=1.2, y_offset=-1e-3),
    ])
    back = loads(dumps(line))
    assert back == line
    p = make_particles("numpy", BEAM, p0c=1e8)
    np.testing.assert_array_equal(to_np(back.track(p)), to_np(line.track(p)))


@pytest.mark.parametrize("ref", list(REFERENCES))
def test_lcavity_traveling_wave(xp, ref):
    """cavity_type="traveling_wave": Bmad's model without ponderomotive kicks (edge
    kicks kept), against the time-domain reference; different from the standing wave
    off axis, identical on axis; a bad cavity_type raises."""
    p0c, mc2 = REFERENCES[ref]
    kw = dict(length=0.8, voltage=2e6 if ref == "electron" else 6e4, phi0=-0.15, num_steps=3)
    p = make_particles(xp.name, BEAM, p0c=p0c, mc2=mc2)
    out = track_lcavity(p, frequency=FREQ, cavity_type="traveling_wave", **kw)
    expected = np.stack([mp_lcavity(r, *kw.values(), p0c, mc2, standing=False)[0]
                         for r in BEAM], axis=1)
    np.testing.assert_allclose(to_np(out), expected, rtol=1e-11, atol=5e-15)
    standing = to_np(track_lcavity(p, frequency=FREQ, **kw))
    assert np.abs(standing[1] - to_np(out)[1]).max() > 1e-12
    np.testing.assert_array_equal(standing[:, 3], to_np(out)[:, 3])  # the on-axis particle
    with pytest.raises(ParameterError, match=r"(?s)lcavity.*cavity_type"):
        track_lcavity(p, frequency=FREQ, cavity_type="standing", **kw)
    lin = track_lcavity(p, frequency=FREQ, cavity_type="traveling_wave", method="linear",
                        x_offset=1e-3, **kw)
    assert np.all(np.isfinite(to_np(lin)))
    record = LCavity("tw", frequency=FREQ, cavity_type="traveling_wave", **kw)
    np.testing.assert_array_equal(to_np(Beamline([record]).track(p)), to_np(out))
