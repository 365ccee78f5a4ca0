"""Orbit correctors (HKicker, VKicker, Kicker): Bmad "bmad_standard" physics.

Bmad (``multipole_ele_to_ab``, ``track_a_thick_multipole``): the kick changes
``px = P_x/P0`` by ``hkick`` and ``py`` by ``vkick`` whatever ``pz`` is; a kicker of
length L is kick/2, exact drift L, kick/2 (per slice). References written here: the
exact drift formula ``x += L px/ps``, ``z -= L (1/ps - 1)`` (``ps = sqrt(1 - px^2 - py^2)``
at ``pz = 0``) in mpmath, the exact Hamiltonian of a uniform dipole field
(``H = -ps - (hkick/L) x - (vkick/L) y``) integrated with scipy ``solve_ivp``, and MAD-X
TWISS RMATRIX where cpymad is installed.
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
    mp_beta,
    random_beam,
    to_np,
)
from scipy.integrate import solve_ivp

from beamtrack.backends import get
from beamtrack.lattice.beamline import Beamline
from beamtrack.lattice.elements import Drift, HKicker, Kicker, VKicker
from beamtrack.tracking import ParameterError, Particles, track_drift
from beamtrack.tracking.kicker import track_hkicker, track_kicker, track_vkicker

mpmath.mp.dps = 40
J = SYMPLECTIC_J

BEAM = np.array([
    [1e-3, 2e-3, -3e-3, -1e-3, 2e-3, -1e-3],
    [-2e-3, 5e-4, 1e-3, 3e-3, -1e-3, 2e-2],
    [4e-3, -1e-3, 2e-3, -2e-3, 0.0, -3e-2],
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
])


def _gamma0_inv2(p0c=P0C, mc2=ELECTRON_MC2):
    return mc2**2 / (p0c**2 + mc2**2)


# -- thin kicks -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["bmad", "linear", "second_order"])
def test_thin_kicks(xp, method):
    """Length 0: px += hkick, py += vkick exactly, for every pz (not divided by 1 + pz);
    nothing else changes and s stays."""
    beam = BEAM.copy()
    beam[:, 5] = [-0.3, 0.0, 0.02, 0.5]
    p = make_particles(xp.name, beam, s=2.0)
    hk, vk = 3e-3, -1.2e-3
    for out, dpx, dpy in (
        (track_hkicker(p, kick=hk, method=method), hk, 0.0),
        (track_vkicker(p, kick=vk, method=method), 0.0, vk),
        (track_kicker(p, hkick=hk, vkick=vk, method=method), hk, vk),
    ):
        expected = beam.T.copy()
        expected[1] += dpx
        expected[3] += dpy
        np.testing.assert_allclose(to_np(out), expected, rtol=1e-15, atol=0)
        assert float(xp.to_numpy(out.s)) == 2.0


# -- thick kickers ----------------------------------------------------------------------------


def _drift_jacobian_at(px, py, length, gamma0_inv2):
    """Jacobian of the exact drift at (px, py, pz = 0), differentiated by hand:
    d(px/ps)/dpx = (1 - py^2)/ps^3, d(px/ps)/dpy = px py/ps^3, d(px/ps)/dpz = -px/ps^3,
    z = -L (1/ps - 1) + L (beta/beta0 - 1): dz/dpx = -L px/ps^3,
    dz/dpz = L (px^2 + py^2)/ps^3 + L/gamma0^2."""
    ps = math.sqrt(1 - px * px - py * py)
    f = length / ps**3
    r = np.eye(6)
    r[0, 1], r[0, 3], r[0, 5] = f * (1 - py * py), f * px * py, -f * px
    r[2, 1], r[2, 3], r[2, 5] = f * px * py, f * (1 - px * px), -f * py
    r[4, 1], r[4, 3] = -f * px, -f * py
    r[4, 5] = f * (px * px + py * py) + length * gamma0_inv2
    return r


@pytest.mark.parametrize("method", ["bmad", "linear", "second_order"])
def test_thick_kicker_reference_orbit(xp, method):
    """Reference particle through a kicker (num_steps = 1): kick/2, exact drift, kick/2:
    x = L (hk/2)/ps, y = L (vk/2)/ps, px = hk, py = vk, z = -L (1/ps - 1) with
    ps = sqrt(1 - (hk^2 + vk^2)/4) (mpmath, 40 digits)."""
    length, hk, vk = 0.8, 0.02, -0.035
    zero = make_particles(xp.name, np.zeros((1, 6)))
    out = to_np(track_kicker(zero, length=length, hkick=hk, vkick=vk, method=method))[:, 0]
    with mpmath.workdps(40):
        ps = mpmath.sqrt(1 - (mpmath.mpf(hk) ** 2 + mpmath.mpf(vk) ** 2) / 4)
        expected = [length * mpmath.mpf(hk) / 2 / ps, hk, length * mpmath.mpf(vk) / 2 / ps, vk,
                    -length * (1 / ps - 1), 0.0]
    np.testing.assert_allclose(out, [float(v) for v in expected], rtol=2e-15, atol=1e-300)
    assert out[4] < 0.0  # the deflected path is longer: the particle falls behind


def test_thick_kicker_linear_matrix(xp):
    """"linear" matrix of a thick kicker = Jacobian of the exact drift at the half-kicked
    orbit (the kicks are constant): R12 = L (1 - (vk/2)^2)/ps^3, R16 = -L (hk/2)/ps^3,
    R52 = -L (hk/2)/ps^3, R56 = L ((hk/2)^2 + (vk/2)^2)/ps^3 + L/gamma0^2, ..."""
    length, hk, vk = 0.8, 0.02, -0.035
    for p0c, mc2 in ((P0C, ELECTRON_MC2), (5e7, PROTON_MC2)):
        p = make_particles(xp.name, np.vstack([np.zeros(6), np.eye(6)]), p0c=p0c, mc2=mc2)
        images = to_np(track_kicker(p, length=length, hkick=hk, vkick=vk, method="linear"))
        r = images[:, 1:] - images[:, :1]
        expected = _drift_jacobian_at(hk / 2, vk / 2, length, _gamma0_inv2(p0c, mc2))
        np.testing.assert_allclose(r, expected, rtol=1e-14, atol=1e-18)


@pytest.mark.parametrize("method", ["bmad", "linear", "second_order"])
def test_offsets_do_not_change_a_uniform_kick(xp, method):
    p = make_particles(xp.name, random_beam(5, seed=3))
    kw = dict(length=0.5, hkick=1e-3, vkick=2e-3, num_steps=2, tilt=0.3, method=method)
    aligned = to_np(track_kicker(p, **kw))
    offset = to_np(track_kicker(p, x_offset=2e-3, y_offset=-1e-3, **kw))
    np.testing.assert_allclose(offset, aligned, rtol=0, atol=1e-18)


@pytest.mark.parametrize("method", ["bmad", "linear", "second_order"])
def test_tilt_rotates_the_kick(xp, method):
    """tilt = pi/2 turns an hkicker into a vkicker; a kicker tilted by t kicks by
    (hk cos t - vk sin t, hk sin t + vk cos t) in the laboratory frame."""
    p = make_particles(xp.name, random_beam(5, seed=4))
    kw = dict(length=0.6, num_steps=2, method=method)
    h = to_np(track_hkicker(p, kick=2e-3, tilt=math.pi / 2, **kw))
    v = to_np(track_vkicker(p, kick=2e-3, **kw))
    np.testing.assert_allclose(h, v, rtol=1e-12, atol=1e-18)
    t, hk, vk = 0.7, 2e-3, -3e-3
    tilted = to_np(track_kicker(p, hkick=hk, vkick=vk, tilt=t, **kw))
    lab = to_np(track_kicker(p, hkick=hk * math.cos(t) - vk * math.sin(t),
                             vkick=hk * math.sin(t) + vk * math.cos(t), **kw))
    np.testing.assert_allclose(tilted, lab, rtol=1e-12, atol=1e-18)


def _uniform_field_reference(row, length, hk, vk, p0c=P0C, mc2=ELECTRON_MC2):
    """solve_ivp (DOP853, rtol 1e-13) of H = -sqrt((1+pz)^2 - px^2 - py^2)
    - (hk/L) x - (vk/L) y (+ the z terms of Bmad's coordinates)."""
    x, px, y, py, z, pz = row
    rel = 1.0 + pz
    velocity = float(mp_beta(pz, p0c, mc2) / mp_beta(0.0, p0c, mc2) - 1)

    def rhs(s, u):
        x, px, y, py, _ = u
        ps = math.sqrt(rel * rel - px * px - py * py)
        return [px / ps, hk / length, py / ps, vk / length,
                velocity - (px * px + py * py) / (ps * (rel + ps))]

    sol = solve_ivp(rhs, (0.0, length), [x, px, y, py, z], method="DOP853", rtol=1e-13,
                    atol=1e-18)
    assert sol.success
    return np.array([*sol.y[:, -1], pz])


def test_second_order_convergence_to_uniform_field():
    """num_steps slices converge to the exact motion in a uniform field as
    1/num_steps^2 (error ratio 4 per doubling; visible with large kicks, since a
    uniform field is integrated exactly up to the exact drift's nonlinearity)."""
    length, hk, vk = 1.0, 0.3, -0.2
    rows = np.array([[1e-3, 0.1, -2e-3, 0.05, 0.0, 1e-2], [0.0, -0.05, 0.0, 0.1, 1e-3, -2e-2]])
    ref = np.stack([_uniform_field_reference(r, length, hk, vk) for r in rows], axis=1)
    p = make_particles("numpy", rows)
    errors = {n: np.abs(to_np(track_kicker(p, length=length, hkick=hk, vkick=vk,
                                           num_steps=n)) - ref)[[0, 2, 4]]
              for n in (4, 8, 16, 32)}
    for n in (8, 16, 32):
        np.testing.assert_allclose(errors[n // 2] / errors[n], 4.0, rtol=0.05)
    assert errors[32].max() < 1e-5
    np.testing.assert_allclose(to_np(track_kicker(p, length=length, hkick=hk, vkick=vk,
                                                  num_steps=4))[[1, 3]], ref[[1, 3]],
                               rtol=1e-14)  # momenta are exact: the force is uniform


# -- symplecticity and the linear map ---------------------------------------------------------

CASES = {
    "hkicker": (track_hkicker, dict(length=0.5, kick=3e-2, tilt=0.0, x_offset=0.0,
                                    y_offset=0.0, num_steps=1)),
    "vkicker-thin": (track_vkicker, dict(length=0.0, kick=-2e-2, tilt=0.2, x_offset=1e-3,
                                         y_offset=0.0, num_steps=1)),
    "kicker": (track_kicker, dict(length=0.7, hkick=2e-2, vkick=-3e-2, tilt=0.4,
                                  x_offset=1e-3, y_offset=-2e-3, num_steps=3)),
    "kicker-zero": (track_kicker, dict(length=0.7, hkick=0.0, vkick=0.0, tilt=0.0,
                                       x_offset=0.0, y_offset=0.0, num_steps=3)),
}
REFERENCES = {"electron 1 GeV": (P0C, ELECTRON_MC2), "proton 50 MeV/c": (5e7, PROTON_MC2)}
POINT = np.array([2e-3, -0.03, -1.5e-3, 0.02, 4e-3, 0.015])


def jacobian(ad, case, point, p0c, mc2):
    track, kw = CASES[case]
    params = {k: v for k, v in kw.items() if k != "num_steps"}
    if ad.name == "torch":
        import torch

        def f(v):
            p = Particles(coords=v[:, None], p0c=p0c, mc2=mc2)
            return track(p, **kw).coords[:, 0]

        return torch.func.jacrev(f)(ad.asarray(point)).detach().numpy()
    jac = _jax_jacobian(track, kw["num_steps"])
    return np.array(jac(ad.asarray(point), params, p0c, mc2))


@functools.cache
def _jax_jacobian(track, num_steps):
    import jax

    def f(v, params, p0c, mc2):
        p = Particles(coords=v[:, None], p0c=p0c, mc2=mc2)
        return track(p, num_steps=num_steps, **params).coords[:, 0]

    return jax.jit(jax.jacfwd(f))


def _cases():
    for ref in REFERENCES:
        for case in CASES:
            yield pytest.param(case, ref, id=f"{case}-{ref}")


@pytest.mark.parametrize(("case", "ref"), list(_cases()))
def test_bmad_map_is_symplectic(ad, case, ref):
    p0c, mc2 = REFERENCES[ref]
    m = jacobian(ad, case, POINT, p0c, mc2)
    assert np.all(np.isfinite(m))
    np.testing.assert_allclose(m.T @ J @ m, J, rtol=0, atol=1e-13)


@pytest.mark.parametrize(("case", "ref"), list(_cases()))
def test_linear_is_jacobian_and_bmad_image_at_reference_orbit(ad, case, ref):
    """"linear" = Jacobian of "bmad" at the zero orbit (the kicked orbit's exact-drift
    terms R16, R52, R56, ...) and its constant = bmad(0) (the kicked orbit and the
    second-order z it gains)."""
    p0c, mc2 = REFERENCES[ref]
    track, kw = CASES[case]
    m = jacobian(ad, case, np.zeros(6), p0c, mc2)
    p = make_particles(ad.name, np.vstack([np.zeros(6), np.eye(6)]), p0c=p0c, mc2=mc2)
    images = to_np(track(p, method="linear", **kw))
    np.testing.assert_allclose(images[:, 1:] - images[:, :1], m, rtol=0, atol=1e-13)
    bmad = to_np(track(p, **kw))[:, 0]
    np.testing.assert_allclose(images[:, 0], bmad, rtol=1e-14, atol=1e-20)
    if kw["length"] > 0 and (kw.get("kick") or kw.get("hkick")):
        assert bmad[4] < 0.0 and abs(m[4, 1]) + abs(m[4, 3]) > 1e-4


# -- cross-backend, batches, gradients --------------------------------------------------------


def _line(name, method):
    beam = random_beam(40, seed=7, scale=2e-3)
    beam[:, 5] *= 5
    p = make_particles(name, beam)
    a = get(name).asarray
    p = track_hkicker(p, length=0.3, kick=a(2e-3), num_steps=2, method=method)
    p = track_drift(p, length=1.0, method=method)
    p = track_vkicker(p, length=0.0, kick=-1e-3, tilt=a(0.1), method=method)
    return track_kicker(p, length=a(0.5), hkick=-3e-3, vkick=a(4e-3), num_steps=3, tilt=-0.2,
                        method=method)


@pytest.mark.parametrize("method", ["bmad", "linear", "second_order"])
def test_same_as_numpy(xp, method):
    expected = to_np(_line("numpy", method))
    got_p = _line(xp.name, method)
    got = to_np(got_p)
    scale = np.abs(expected).max(axis=-1, keepdims=True)
    assert np.all(np.abs(got - expected) <= 1e-12 * scale)
    assert float(xp.to_numpy(got_p.s)) == pytest.approx(1.8, rel=1e-15)


@pytest.mark.parametrize("method", ["bmad", "linear", "second_order"])
def test_batched_parameters(xp, method):
    """Parameters of shape (B,) against particles (B, n) and (n,) equal a loop."""
    params = dict(length=np.array([0.0, 0.5, 1.0]), hkick=np.array([1e-3, 0.0, -2e-3]),
                  vkick=np.array([0.0, 3e-3, 1e-3]), tilt=np.array([0.0, 0.3, -0.7]))
    beam = random_beam(4, seed=9)
    for particles in (np.stack([beam * (1 + b) for b in range(3)]), beam):
        p = make_particles(xp.name, particles)
        out = track_kicker(p, num_steps=2, method=method,
                           **{k: xp.asarray(v) for k, v in params.items()})
        got = to_np(out)
        assert got.shape == (3, 6, 4) and alive_np(out).shape == (3, 4)
        for b in range(3):  # the loop on NumPy (cross-backend agreement is tested above)
            one = track_kicker(make_particles("numpy", particles[b] if particles.ndim == 3
                                              else beam), num_steps=2, method=method,
                               **{k: float(v[b]) for k, v in params.items()})
            np.testing.assert_allclose(got[b], to_np(one), rtol=1e-13, atol=1e-18)


#: Gradient cases: corrector as a function of the parameter vector v, the points
#: (zero kicks and tilt included) and each parameter's size (finite-difference steps).
#: The beam holds a particle that the kicks push beyond |p_perp| = 1 + pz.
GRAD_CASES = {
    # v = (length, hkick, vkick, tilt)
    "kicker": (lambda p, v: track_kicker(p, length=v[0], hkick=v[1] + 0.2, vkick=v[2],
                                         tilt=v[3], num_steps=2),
               {"generic": [0.6, 2e-2, -1e-2, 0.3], "zeros": [0.6, 0.0, 0.0, 0.0]},
               [1.0, 1e-2, 1e-2, 1.0]),
    # v = (length, kick, tilt)
    "hkicker": (lambda p, v: track_hkicker(p, length=v[0], kick=v[1] + 0.15, tilt=v[2]),
                {"generic": [0.6, 5e-3, -0.2], "zeros": [0.6, 0.0, 0.0]}, [1.0, 1e-2, 1.0]),
    # v = (kick, tilt): thin
    "vkicker": (lambda p, v: track_vkicker(p, kick=v[0], tilt=v[1]),
                {"generic": [-4e-3, 0.1], "zeros": [0.0, 0.0]}, [1e-2, 1.0]),
}
GRAD_BEAM = np.vstack([random_beam(3, seed=13, scale=2e-3), [[0.0, 0.9, 0.0, 0.0, 0.0, 0.0]]])
GRAD_WEIGHTS = np.array([1.0, 3.0, -2.0, 5.0, 7.0, 0.5])[:, None]


def _grad_loss(xp, case, v, coords):
    """Weighted change of the coordinates plus its square (lost particles add ~0)."""
    p = Particles(coords=coords, p0c=P0C, mc2=ELECTRON_MC2)
    change = GRAD_CASES[case][0](p, v).coords - coords
    return xp.sum(change * xp.asarray(GRAD_WEIGHTS)) + 100.0 * xp.sum(change[..., :5, :] ** 2)


@functools.cache
def _grad_function(name, case):
    backend = get(name)
    xp = backend.namespace()
    fn = backend.value_and_grad(lambda v, coords: _grad_loss(xp, case, v, coords))
    return backend.jit(fn) if name == "jax" else fn


@pytest.mark.parametrize("point", ["generic", "zeros"])
@pytest.mark.parametrize("case", list(GRAD_CASES))
def test_gradients_match_finite_differences(ad, case, point):
    """Gradients w.r.t. length, kicks and tilt: finite (with a particle lost inside),
    equal to fourth-order central finite differences, also at zero kicks and tilt."""
    _, points, scales = GRAD_CASES[case]
    v0 = np.array(points[point])
    coords = GRAD_BEAM.T.copy()
    value, grad = (ad.to_numpy(a) for a in _grad_function(ad.name, case)(ad.asarray(v0),
                                                                         ad.asarray(coords)))
    assert np.all(np.isfinite(grad))
    npx = get("numpy").namespace()
    f = lambda v: float(_grad_loss(npx, case, v, coords))  # noqa: E731
    assert value == pytest.approx(f(v0), rel=1e-13)
    fd = np.empty_like(v0)
    for i in range(len(v0)):
        e = np.zeros_like(v0)
        e[i] = h = 1e-4 * max(abs(v0[i]), scales[i])
        fd[i] = (-f(v0 + 2 * e) + 8 * f(v0 + e) - 8 * f(v0 - e) + f(v0 - 2 * e)) / (12 * h)
    np.testing.assert_allclose(grad, fd, rtol=1e-7, atol=1e-10)
    assert np.abs(grad).max() > 1.0  # kicks move the weighted sum


# -- lost particles ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["bmad", "linear", "second_order"])
def test_lost_particles(xp, method):
    """A particle pushed to |p_perp| >= 1 + pz by the entrance half kick is lost with
    its incoming coordinates; one pushed there by a later kick keeps the coordinates
    after its last physical step; no NaN anywhere."""
    beam = np.array([
        [1e-3, 1e-3, 0.0, 0.0, 0.0, 0.0],  # fine
        [1e-3, 0.95, 0.0, 0.0, 0.0, 0.0],  # +0.05 at the entrance half kick: 1.0 -> lost
        [1e-3, 0.88, 0.0, 0.0, 0.0, 0.0],  # 0.93 after the half kick, 1.03 after the next
        [0.0, 0.0, 0.0, 0.0, 0.0, -1.0],  # no momentum at all
    ])
    p = make_particles(xp.name, beam)
    out = track_hkicker(p, length=0.5, kick=0.2, num_steps=2, method=method)
    got = to_np(out)
    assert np.all(np.isfinite(got))
    if method != "bmad":
        assert np.all(alive_np(out))
        return
    np.testing.assert_array_equal(alive_np(out), [True, False, False, False])
    np.testing.assert_array_equal(got[:, [1, 3]], beam[[1, 3]].T)
    half = to_np(track_hkicker(make_particles(xp.name, beam[2:3]), kick=0.05))[:, 0]
    np.testing.assert_array_equal(got[:, 2], half)


# -- errors and records -----------------------------------------------------------------------


@pytest.mark.parametrize(("track", "element", "names"), [
    (track_hkicker, "hkicker", ("length", "kick", "tilt", "x_offset", "y_offset")),
    (track_vkicker, "vkicker", ("length", "kick", "tilt")),
    (track_kicker, "kicker", ("length", "hkick", "vkick", "tilt", "y_offset")),
])
def test_invalid_parameters(xp, track, element, names):
    p = make_particles(xp.name, BEAM)
    other = "numpy" if xp.name != "numpy" else "array_api_strict"
    with pytest.raises(ParameterError, match=rf"(?s){element}.*method"):
        track(p, method="thick")
    for steps in (0, 2.0, True, None):
        with pytest.raises(ParameterError, match=rf"(?s){element}.*num_steps"):
            track(p, num_steps=steps)
    for name in names:
        for bad in (get(other).asarray(0.1), True, "1e-3", (1e-3,)):
            with pytest.raises(ParameterError, match=rf"(?s){element}.*{name}"):
                track(p, **{name: bad})


def test_records_in_beamline(xp):
    p = make_particles(xp.name, random_beam(5, seed=21))
    line = Beamline([
        HKicker("h1", length=0.2, kick=1e-3, num_steps=2),
        Drift("d1", length=1.0),
        VKicker("v1", kick=-2e-3, tilt=0.1),
        Kicker("k1", length=0.4, hkick=5e-4, vkick=1e-3, x_offset=1e-3),
    ])
    for method in ("bmad", "linear"):
        q = track_hkicker(p, length=0.2, kick=1e-3, num_steps=2, method=method)
        q = track_drift(q, length=1.0, method=method)
        q = track_vkicker(q, kick=-2e-3, tilt=0.1, method=method)
        q = track_kicker(q, length=0.4, hkick=5e-4, vkick=1e-3, x_offset=1e-3, method=method)
        np.testing.assert_array_equal(to_np(line.track(p, method=method)), to_np(q))
    assert float(line.length) == pytest.approx(1.6)
    assert line["v1"].length == 0.0
    with pytest.raises(ParameterError, match=r"HKicker 'h'.*num_steps"):
        HKicker("h", kick=1e-3, num_steps=0)
    with pytest.raises(ParameterError, match=r"Kicker 'k'.*vkick"):
        Kicker("k", vkick=float("inf"))


# -- MAD-X ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("madx_element", "track", "kw"), [
    ("hkicker, l=0.0, kick=1e-5", track_hkicker, dict(length=0.0, kick=1e-5)),
    ("vkicker, l=0.6, kick=-2e-5", track_vkicker, dict(length=0.6, kick=-2e-5)),
    ("kicker, l=0.7, hkick=1e-5, vkick=-2e-5", track_kicker,
     dict(length=0.7, hkick=1e-5, vkick=-2e-5)),
])
def test_against_madx_rmatrix(madx_element, track, kw):
    """Linear map and orbit against MAD-X TWISS RMATRIX (sequence = the kicker alone),
    converted from MAD-X (t, pt) to Bmad (z, pz): z = beta0 t, pz = pt/beta0. MAD-X's
    thick kicker is also kick/2 - drift - kick/2 to this order; its TWISS expands the
    drift to second order about the orbit, so kicks are kept at 1e-5, where the exact
    drift's third-order terms (~ L kick^2) stay below the 1e-9 tolerance while the
    first-order orbit terms (R16, R52 ~ L kick / 2) are resolved."""
    cpymad = pytest.importorskip("cpymad.madx", reason="cpymad (MAD-X) not installed")
    madx = cpymad.Madx(stdout=False)
    length = kw["length"] or 1e-12
    madx.input(f"""
        beam, particle=proton, pc=0.05;
        k1: {madx_element};
        seq: sequence, l={length}; k1, at={length / 2}; endsequence;
        use, sequence=seq;
    """)
    mc2, p0c = madx.sequence.seq.beam.mass * 1e9, madx.sequence.seq.beam.pc * 1e9
    twiss = madx.twiss(betx=1, bety=1, rmatrix=True)
    r_madx = np.array([[twiss[f"re{i}{j}"][-1] for j in range(1, 7)] for i in range(1, 7)])
    orbit = np.array([twiss[c][-1] for c in ("x", "px", "y", "py", "t", "pt")])
    beta0 = p0c / math.hypot(p0c, mc2)
    d = np.diag([1.0, 1.0, 1.0, 1.0, beta0, 1.0 / beta0])
    p = make_particles("numpy", np.vstack([np.zeros(6), np.eye(6)]), p0c=p0c, mc2=mc2)
    images = to_np(track(p, method="linear", **kw))
    r = images[:, 1:] - images[:, :1]
    np.testing.assert_allclose(r, d @ r_madx @ np.linalg.inv(d), rtol=0, atol=1e-9)
    np.testing.assert_allclose(images[:, 0], d @ orbit, rtol=0, atol=1e-14)
    if kw["length"]:
        assert abs(r[0, 5]) + abs(r[2, 5]) > 2e-6  # R16, R36 ~ -L kick/2 are resolved
