"""Sector and rectangular bends (``track_sbend``, ``track_rbend``, ``SBend``, ``RBend``).

References, none of them the code under test:

* Bmad/Tao single-particle tracking (tests/data/bmad_tao_reference.json, "Dipole");
* the exact equations of motion in the curvilinear frame of the bend, integrated with
  scipy's DOP853 (rtol 1e-13), and those of the paraxial Hamiltonian of Bmad's
  combined-function body;
* the sector-bend, edge and combined-function matrices written out here;
* for misalignments, the exact helix of a particle in the uniform field of the moved
  magnet, computed in Cartesian coordinates from the geometry (no curvilinear frames);
* MAD-X TWISS RMATRIX through cpymad (skipped without cpymad);
* autodiff Jacobians (torch, JAX) for symplecticity and for the "linear" method.
"""

from __future__ import annotations

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
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import solve_ivp

from beamtrack.lattice.beamline import Beamline
from beamtrack.lattice.elements import Drift, RBend, SBend
from beamtrack.lattice.io.json_format import dumps, loads
from beamtrack.tracking.bend import (
    FRINGE_TYPES,
    rbend_to_sbend,
    sbend_map,
    track_rbend,
    track_sbend,
)
from beamtrack.tracking.drift import track_drift
from beamtrack.tracking.errors import ParameterError
from beamtrack.tracking.particles import Particles
from beamtrack.tracking.quadrupole import track_quadrupole
from beamtrack.tracking.special import atanc, atanc_second_derivative, cos_sinc_ratios

J = SYMPLECTIC_J
SPECIES = ("electron", "positron", "proton", "antiproton", "deuteron", "#12C+3")
#: The reference file's dipole, as beamtrack parameters.
REF_DIPOLE = dict(length=0.5, angle=0.2, e1=0.1, e2=0.1, fint=0.5, hgap=0.03,
                  fint_exit=0.5, hgap_exit=0.03, ref_tilt=0.1, fringe_type="linear_edge")
#: A generic point, not small.
POINT = np.array([2e-3, -0.03, -1.5e-3, 0.02, 4e-3, 0.015])
#: Paraxial and large-amplitude particles, with energy deviations (n, 6).
BEAM = np.array([
    [1e-3, 2e-3, -3e-3, -1e-3, 2e-3, -1e-3],
    [-2e-3, 5e-4, 1e-3, 3e-3, -1e-3, 2e-2],
    [4e-3, -1e-3, 2e-3, -2e-3, 0.0, -3e-2],
    [1e-2, 0.05, -8e-3, 0.04, 1e-3, 0.05],
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
])
REFERENCES = {"electron 1 GeV": (P0C, ELECTRON_MC2), "proton 50 MeV/c": (5e7, PROTON_MC2)}


def _gamma0_inv2(p0c, mc2):
    return mc2**2 / (p0c**2 + mc2**2)


def _matrix(name, track=track_sbend, p0c=P0C, mc2=ELECTRON_MC2, **kw):
    """First-order map of the "linear" method: ``(R, c)`` read off the unit vectors."""
    unit = make_particles(name, np.eye(6), p0c=p0c, mc2=mc2)
    zero = make_particles(name, np.zeros((1, 6)), p0c=p0c, mc2=mc2)
    c = to_np(track(zero, method="linear", **kw))[:, 0]
    return to_np(track(unit, method="linear", **kw)) - c[:, None], c


# -- Bmad/Tao reference (acceptance) -------------------------------------------------------


def test_reference_file_describes_the_dipole(bmad_reference):
    assert bmad_reference["elements"]["Dipole"]["bmad"] == (
        "e1: sbend, L = 0.5, angle = 0.2, fringe_at = both_ends, fringe_type = linear_edge, "
        "E1 = 0.1, E2 = 0.1, FINT = 0.5, HGAP = 0.03, FINTX = 0.5, HGAPX = 0.03, "
        "ref_tilt = 0.1")
    assert set(bmad_reference["outgoing"]["Dipole"]) == set(SPECIES)


@pytest.mark.parametrize("species", SPECIES)
def test_matches_bmad(xp, bmad_reference, species):
    ref = bmad_reference
    incoming = np.array(ref["incoming"])[None, :]
    p = make_particles(xp.name, incoming, p0c=ref["p0c_eV"],
                       mc2=ref["species"][species]["mc2_eV"])
    out = track_sbend(p, **REF_DIPOLE)
    expected = np.array(ref["outgoing"]["Dipole"][species])
    np.testing.assert_allclose(to_np(out)[:, 0], expected, rtol=0, atol=2e-14)
    assert bool(np.all(alive_np(out)))
    assert float(xp.to_numpy(out.s)) == 0.5
    np.testing.assert_array_equal(to_np(p)[:, 0], np.array(ref["incoming"]))


def test_all_species_in_one_batch_and_as_a_record(bmad_reference):
    """mc2 of shape (6,): every species at once, through an SBend in a Beamline."""
    ref = bmad_reference
    mc2 = np.array([ref["species"][s]["mc2_eV"] for s in SPECIES])
    incoming = np.broadcast_to(np.array(ref["incoming"]), (len(SPECIES), 1, 6))
    p = make_particles("numpy", incoming, p0c=ref["p0c_eV"], mc2=mc2)
    expected = np.array([ref["outgoing"]["Dipole"][s] for s in SPECIES])
    line = Beamline([SBend("b1", **REF_DIPOLE)])
    np.testing.assert_allclose(to_np(line.track(p))[..., 0], expected, rtol=0, atol=2e-14)
    np.testing.assert_allclose(to_np(track_sbend(p, **REF_DIPOLE))[..., 0], expected,
                               rtol=0, atol=2e-14)


# -- design orbit, exact zeros --------------------------------------------------------------

DESIGN_CASES = [
    dict(length=0.5, angle=0.2),
    dict(length=2.0, angle=-1.3, e1=-0.2, e2=0.4, fint=0.6, hgap=0.02),
    dict(length=0.4, angle=0.3, k1=-1.2, e1=0.1, e2=0.1, fringe_type="basic_bend",
         fint=0.5, hgap=0.03, ref_tilt=0.7),
    dict(length=0.4, angle=0.3, k1=2.0, fringe_type="sad_full", fint=0.5, hgap=0.03),
    dict(length=0.4, angle=0.3, fringe_type="soft_edge", fint=0.5, hgap=0.03, num_steps=3),
    dict(length=0.4, angle=0.3, fringe_type="hard_edge", e1=0.2, k1=0.5),
    dict(length=0.7, angle=0.0, k1=0.0),
]


@pytest.mark.parametrize("kw", DESIGN_CASES)
def test_design_orbit_stays_on_axis(xp, kw):
    """A particle on the design orbit stays exactly on it (all coordinates zero), and
    the linear map of an aligned bend has no constant part."""
    p = make_particles(xp.name, np.zeros((2, 6)))
    out = to_np(track_sbend(p, **kw))
    assert np.all(out == 0.0)
    _, c = _matrix(xp.name, **kw)
    assert np.all(c == 0.0)


# -- first-order maps against the textbook matrices ------------------------------------------


def sector_matrix(length, angle, p0c=P0C, mc2=ELECTRON_MC2, k1=0.0):
    """Combined-function sector-bend matrix in Bmad coordinates, written out here (plane
    functions in mpmath, so that k1 + g^2 -> 0 is handled without cancellation)."""
    g = angle / length if length else 0.0

    def plane(k):
        """C, S, D = Integral S = (1 - C)/k, I = Integral D... of u'' = -k u, in mpmath."""
        with mpmath.workdps(40):
            ell, w = mpmath.mpf(length), mpmath.sqrt(mpmath.mpf(k))
            c = mpmath.re(mpmath.cos(w * ell))
            s = mpmath.re(mpmath.sin(w * ell) / w) if k else ell
            d = mpmath.re(2 * mpmath.sin(w * ell / 2) ** 2 / w**2) if k else ell**2 / 2
            i = mpmath.re((ell - mpmath.sin(w * ell) / w) / w**2) if k else ell**3 / 6
            return float(c), float(s), float(d), float(i)

    kx, ky = k1 + g * g, -k1
    cx, sx, dx, ix = plane(kx)
    cy, sy, _, _ = plane(ky)
    m = np.eye(6)
    m[0, :2], m[1, :2] = [cx, sx], [-kx * sx, cx]
    m[2, 2:4], m[3, 2:4] = [cy, sy], [-ky * sy, cy]
    m[0, 5], m[1, 5] = g * dx, g * sx
    m[4, 0], m[4, 1] = -g * sx, -g * dx
    m[4, 5] = length * _gamma0_inv2(p0c, mc2) - g * g * ix
    return m


def edge_matrix(g, e, fint, hgap):
    """MAD's linear edge focusing."""
    m = np.eye(6)
    m[1, 0] = g * math.tan(e)
    m[3, 2] = -g * math.tan(e - 2 * g * fint * hgap * (1 + math.sin(e) ** 2) / math.cos(e))
    return m


@pytest.mark.parametrize(("length", "angle"), [(0.5, 0.2), (2.0, -1.1), (0.3, 2.5)])
@pytest.mark.parametrize("ref", sorted(REFERENCES))
def test_sector_bend_matrix(xp, length, angle, ref):
    """R11 = cos, R12 = sin/g, R16 = (1 - cos)/g (dispersion), R26 = sin, R51 = -sin,
    R52 = -(1 - cos)/g, R56 = L/gamma0^2 - (angle - sin)/g, R34 = L."""
    p0c, mc2 = REFERENCES[ref]
    r, c = _matrix(xp.name, p0c=p0c, mc2=mc2, length=length, angle=angle, fringe_type="none")
    expected = sector_matrix(length, angle, p0c, mc2)
    g = angle / length
    assert expected[0, 5] == pytest.approx((1 - math.cos(angle)) / g, rel=1e-14)
    np.testing.assert_allclose(r, expected, rtol=0, atol=2e-14 * (1 + abs(1 / g)))
    np.testing.assert_array_equal(c, 0.0)


@pytest.mark.parametrize("k1", [1.5, -0.7, -0.16, 0.0, 1e-9, 40.0])
def test_combined_function_matrix(xp, k1):
    """k1 != 0: the cos/cosh blocks of k1 + g^2 and -k1, dispersion g (1 - C)/(k1 + g^2),
    R56 = L/gamma0^2 - g^2 (L - S)/(k1 + g^2); k1 = -g^2 makes the x plane a drift."""
    length, angle = 0.5, 0.2
    r, _ = _matrix(xp.name, length=length, angle=angle, k1=k1, fringe_type="none")
    np.testing.assert_allclose(r, sector_matrix(length, angle, k1=k1), rtol=0, atol=3e-14)


def test_linear_edges_matrix(xp):
    """linear_edge: R = Edge(e2, fint_exit hgap_exit) Body Edge(e1, fint hgap)."""
    kw = dict(length=0.8, angle=0.3, e1=0.12, e2=-0.07, fint=0.5, hgap=0.03, fint_exit=0.4,
              hgap_exit=0.02, k1=0.6)
    r, _ = _matrix(xp.name, **kw)
    g = 0.3 / 0.8
    expected = (edge_matrix(g, -0.07, 0.4, 0.02) @ sector_matrix(0.8, 0.3, k1=0.6)
                @ edge_matrix(g, 0.12, 0.5, 0.03))
    np.testing.assert_allclose(r, expected, rtol=0, atol=2e-14)
    # fint_exit, hgap_exit default to the entrance values (MAD, Bmad).
    r1, _ = _matrix(xp.name, length=0.8, angle=0.3, e1=0.1, e2=0.1, fint=0.5, hgap=0.03)
    r2, _ = _matrix(xp.name, length=0.8, angle=0.3, e1=0.1, e2=0.1, fint=0.5, hgap=0.03,
                    fint_exit=0.5, hgap_exit=0.03)
    np.testing.assert_array_equal(r1, r2)


def test_ref_tilt_quarter_turn_bends_downwards():
    """ref_tilt = pi/2 with a positive angle bends towards -y: the dispersion appears in
    y with R36 = (1 - cos)/g > 0 (a faster particle is bent less), none in x."""
    length, angle = 1.0, 0.4
    r, _ = _matrix("numpy", length=length, angle=angle, ref_tilt=math.pi / 2)
    g = angle / length
    assert r[2, 5] == pytest.approx((1 - math.cos(angle)) / g, rel=1e-14)
    assert abs(r[0, 5]) < 1e-15
    assert r[3, 2] == pytest.approx(-g * math.sin(angle), rel=1e-14)  # focusing in y
    assert r[1, 0] == pytest.approx(0.0, abs=1e-15)


def test_dispersion_from_tracking(xp):
    """The "bmad" map: an off-momentum particle ends at x = R16 pz + O(pz^2)."""
    length, angle = 1.2, 0.5
    g = angle / length
    for pz in (1e-4, 1e-6):
        p = make_particles(xp.name, np.array([[0.0, 0.0, 0.0, 0.0, 0.0, pz]]))
        x = to_np(track_sbend(p, length=length, angle=angle))[0, 0]
        assert x / pz == pytest.approx((1 - math.cos(angle)) / g, rel=2 * pz)


# -- exact equations of motion ----------------------------------------------------------


def _integrate(rhs, row, length):
    sol = solve_ivp(rhs, (0.0, length), np.asarray(row[:5], dtype=float), method="DOP853",
                    rtol=1e-13, atol=1e-18)
    assert sol.success
    return np.append(sol.y[:, -1], row[5])


def exact_body_reference(row, length, angle, p0c, mc2, k1=0.0):
    """Hamilton's equations of H = -(1+gx) ps + g x + g^2 x^2/2 + k1 (x^2 - y^2)/2, with
    z' = beta/beta0 - (1+gx)(1+pz)/ps (the exact path length)."""
    g = angle / length
    pz = row[5]
    rel = 1 + pz
    dbeta = float(mp_beta(pz, p0c, mc2) / mp_beta(0.0, p0c, mc2) - 1)

    def rhs(_, v):
        x, px, y, py, _z = v
        ps = math.sqrt(rel * rel - px * px - py * py)
        h = 1 + g * x
        return [h * px / ps, g * ps - g - g * g * x - k1 * x, h * py / ps, k1 * y,
                dbeta - (h * rel / ps - 1)]

    return _integrate(rhs, row, length)


def paraxial_body_reference(row, length, angle, k1, p0c, mc2, dg=0.0):
    """The paraxial Hamiltonian of Bmad's combined-function body (field curvature
    g + dg): x' = px/(1+pz), px' = g pz - dg - (g (g + dg) + k1) x, y' = py/(1+pz),
    py' = k1 y, z' = -g x - (x'^2 + y'^2)/2 + beta/beta0 - 1."""
    g = angle / length
    pz = row[5]
    rel = 1 + pz
    dbeta = float(mp_beta(pz, p0c, mc2) / mp_beta(0.0, p0c, mc2) - 1)

    def rhs(_, v):
        x, px, y, py, _z = v
        xs, ys = px / rel, py / rel
        return [xs, g * pz - dg - (g * (g + dg) + k1) * x, ys, k1 * y,
                -g * x - (xs * xs + ys * ys) / 2 + dbeta]

    return _integrate(rhs, row, length)


@pytest.mark.parametrize(("length", "angle"), [(0.5, 0.2), (1.5, -0.9), (0.8, 1.6)])
@pytest.mark.parametrize("ref", sorted(REFERENCES))
def test_exact_body_matches_equations_of_motion(length, angle, ref):
    """k1 = 0: the body is exact, for electrons and for 50 MeV/c protons (whose
    low-energy z term is large), to 1e-12 at amplitudes up to 5e-2."""
    p0c, mc2 = REFERENCES[ref]
    p = make_particles("numpy", BEAM, p0c=p0c, mc2=mc2)
    got = to_np(track_sbend(p, length=length, angle=angle, fringe_type="none"))
    expected = np.stack([exact_body_reference(r, length, angle, p0c, mc2) for r in BEAM], 1)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("k1", [1.8, -2.5, -0.08])
@pytest.mark.parametrize("ref", sorted(REFERENCES))
def test_combined_function_body_solves_its_hamiltonian(k1, ref):
    """k1 != 0: Bmad's map is the exact solution of its paraxial Hamiltonian (to 1e-12,
    pz dependence included); k1 = -0.08 = -g^2 makes the x plane a pure drift."""
    p0c, mc2 = REFERENCES[ref]
    length, angle = 1.0, math.sqrt(0.08)
    p = make_particles("numpy", BEAM, p0c=p0c, mc2=mc2)
    got = to_np(track_sbend(p, length=length, angle=angle, k1=k1, fringe_type="none"))
    expected = np.stack(
        [paraxial_body_reference(r, length, angle, k1, p0c, mc2) for r in BEAM], 1)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("row", [[3e-3, 4e-3, -2e-3, 3e-3, 0.0, 1e-2],
                                 [3e-3, 4e-3, -2e-3, 3e-3, 0.0, 0.0],
                                 [0.0, 0.0, 0.0, 0.0, 0.0, 1e-2]])
def test_combined_function_body_accuracy_is_first_order(row):
    """Against the exact equations of motion the paraxial body is exact to first order
    and errs at second order in the amplitudes (pz included): its Hamiltonian drops the
    cubic g x (px^2 + py^2) / (2 (1+pz)). Halving every coordinate divides the error by
    4; at millimetre and per-cent amplitudes it is a few 1e-6 here."""
    length, angle, k1 = 0.6, 0.3, 1.4
    row = np.array(row)
    errors = []
    for scale in (1.0, 0.5, 0.25):
        r = row * scale
        p = make_particles("numpy", r[None, :])
        got = to_np(track_sbend(p, length=length, angle=angle, k1=k1, fringe_type="none"))
        exact = exact_body_reference(r, length, angle, P0C, ELECTRON_MC2, k1=k1)
        errors.append(np.abs(got[:, 0] - exact).max())
    assert 1e-8 < errors[0] < 1e-5
    for big, small in zip(errors, errors[1:]):
        assert big / small == pytest.approx(4.0, rel=0.03)


# -- limits ------------------------------------------------------------------------------


@pytest.mark.parametrize("k1", [0.0, 1.3, -0.6])
def test_zero_angle_is_drift_or_quadrupole(xp, k1):
    """angle = 0 is the exact drift (k1 = 0) or Bmad's quadrupole; small angles approach
    it continuously (difference of order angle)."""
    p = make_particles(xp.name, BEAM)
    if k1 == 0:
        straight = to_np(track_drift(p, length=0.7))
    else:
        straight = to_np(track_quadrupole(p, length=0.7, k1=k1))
    # linear_edge: its kicks scale with g (basic_bend also has k1 tan(e) edge terms).
    fringe = "linear_edge"
    got = to_np(track_sbend(p, length=0.7, angle=0.0, k1=k1, e1=0.2, fringe_type=fringe))
    np.testing.assert_allclose(got, straight, rtol=0, atol=2e-17)
    for angle in (1e-5, 1e-7):
        bent = to_np(track_sbend(p, length=0.7, angle=angle, k1=k1, e1=0.2, fringe_type=fringe))
        diff = np.abs(bent - straight).max()
        assert angle * 1e-4 < diff < angle


def test_slices_compose():
    """num_steps only slices: the slice maps compose to the one-step map."""
    kw = dict(length=1.1, angle=0.7, e1=0.1, e2=0.3, fint=0.5, hgap=0.02)
    p = make_particles("numpy", BEAM)
    for k1 in (0.0, 0.9):
        one = to_np(track_sbend(p, k1=k1, **kw))
        five = to_np(track_sbend(p, k1=k1, num_steps=5, **kw))
        np.testing.assert_allclose(five, one, rtol=0, atol=5e-16)


# -- misalignments: exact helix in the moved magnet -------------------------------------


def _rot_z(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _rodrigues(axis, angle):
    k = np.asarray(axis) / np.linalg.norm(axis)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(angle) * kx + (1 - math.cos(angle)) * kx @ kx


def helix_reference(row, length, angle, ref_tilt, roll, x_offset, y_offset, p0c, mc2):
    """Track one particle through a misaligned sector bend (no edge kicks) in Cartesian
    coordinates of the laboratory entrance frame.

    Geometry, built here from its description: the ideal magnet is the wedge between
    the radial planes through the centre of curvature at 0 and ``angle``, with a
    uniform field along y, rotated with ``ref_tilt`` about the entrance s axis; it is
    rolled by ``roll`` about its chord (the line from the entrance to the exit point)
    and then shifted by the offsets along the x and y axes of the frame at the middle
    of the arc. The laboratory exit frame is the ideal one. The particle drifts
    (forwards or backwards) to the moved entrance face, follows the exact helix to the
    moved exit face and drifts to the laboratory exit plane; z changes by
    ``length beta/beta0`` minus the path length.
    """
    g = angle / length
    rho = 1 / g
    x, px, y, py, z, pz = row
    rel = 1 + pz
    tilt_m = _rot_z(ref_tilt)

    def arc_frame(phi):  # (origin, axes as columns) of the ideal frame at arc angle phi
        origin = np.array([rho * (math.cos(phi) - 1), 0.0, rho * math.sin(phi)])
        axes = np.array([[math.cos(phi), 0, -math.sin(phi)], [0, 1, 0],
                         [math.sin(phi), 0, math.cos(phi)]])
        return tilt_m @ origin, tilt_m @ axes @ tilt_m.T

    entrance = np.zeros(3)
    exit_origin, exit_axes = arc_frame(angle)
    mid_origin, mid_axes = arc_frame(angle / 2)
    roll_m = _rodrigues(exit_origin - entrance, roll)
    shift = mid_axes @ np.array([x_offset, y_offset, 0.0])

    def moved(point):
        return roll_m @ (point - entrance) + entrance + shift

    face_in, normal_in = moved(entrance), roll_m @ np.array([0.0, 0.0, 1.0])
    face_out, normal_out = moved(exit_origin), roll_m @ exit_axes[:, 2]
    field = roll_m @ (tilt_m @ np.array([0.0, 1.0, 0.0]))
    kappa = g / rel

    r0 = np.array([x, y, 0.0])
    v0 = np.array([px, py, math.sqrt(rel * rel - px * px - py * py)]) / rel
    path_in = np.dot(face_in - r0, normal_in) / np.dot(v0, normal_in)
    r1 = r0 + path_in * v0
    v_par = np.dot(v0, field) * field
    v_perp = v0 - v_par
    w = np.cross(v_perp, field)

    def helix(ell):
        c, s = math.cos(kappa * ell), math.sin(kappa * ell)
        r = r1 + v_par * ell + v_perp * s / kappa + w * (1 - c) / kappa
        return r, v_par + v_perp * c + w * s

    ell = length
    for _ in range(50):  # Newton for the crossing of the exit face
        r, v = helix(ell)
        step = np.dot(r - face_out, normal_out) / np.dot(v, normal_out)
        ell -= step
        if abs(step) < 1e-17:
            break
    r2, v2 = helix(ell)
    normal_lab = exit_axes[:, 2]
    path_out = np.dot(exit_origin - r2, normal_lab) / np.dot(v2, normal_lab)
    r3 = r2 + path_out * v2
    d = r3 - exit_origin
    beta_ratio = float(mp_beta(pz, p0c, mc2) / mp_beta(0.0, p0c, mc2))
    return np.array([
        np.dot(d, exit_axes[:, 0]), rel * np.dot(v2, exit_axes[:, 0]),
        np.dot(d, exit_axes[:, 1]), rel * np.dot(v2, exit_axes[:, 1]),
        z + length * beta_ratio - (path_in + ell + path_out), pz,
    ])


MISALIGNMENTS = {
    "roll": dict(tilt=0.03),
    "x_offset": dict(x_offset=2e-3),
    "y_offset": dict(y_offset=-1.5e-3),
    "all": dict(tilt=-0.05, x_offset=-1e-3, y_offset=2e-3),
    "all with ref_tilt": dict(tilt=0.04, x_offset=1.5e-3, y_offset=-1e-3, ref_tilt=0.6),
    "ref_tilt only": dict(ref_tilt=-1.1),
}


@pytest.mark.parametrize("name", sorted(MISALIGNMENTS))
@pytest.mark.parametrize(("length", "angle"), [(0.8, 0.35), (1.5, -1.2)])
def test_misalignments_match_helix_in_moved_magnet(name, length, angle):
    kw = dict(dict(ref_tilt=0.0, tilt=0.0, x_offset=0.0, y_offset=0.0), **MISALIGNMENTS[name])
    for p0c, mc2 in REFERENCES.values():
        p = make_particles("numpy", BEAM, p0c=p0c, mc2=mc2)
        got = to_np(track_sbend(p, length=length, angle=angle, fringe_type="none", **kw))
        expected = np.stack([
            helix_reference(r, length, angle, kw["ref_tilt"], kw["tilt"], kw["x_offset"],
                            kw["y_offset"], p0c, mc2) for r in BEAM], 1)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_roll_kicks_the_design_particle_off_axis():
    """A rolled bend deflects the design particle vertically by about -angle roll; an
    offset bend (uniform field) moves it only a little (by where the field starts and
    ends); ref_tilt moves the reference orbit with the bend, so the particle stays on it."""
    zero = make_particles("numpy", np.zeros((1, 6)))
    out = to_np(track_sbend(zero, length=1.0, angle=0.2, tilt=1e-3))[:, 0]
    assert out[3] == pytest.approx(-0.2 * 1e-3, rel=0.02)
    out = to_np(track_sbend(zero, length=1.0, angle=0.2, x_offset=1e-3))[:, 0]
    assert 1e-6 < abs(out[0]) < 1e-4
    assert np.all(to_np(track_sbend(zero, length=1.0, angle=0.2, ref_tilt=0.3)) == 0.0)


def test_zero_angle_misalignment_is_that_of_straight_elements(xp):
    """At angle = 0 Bmad's bend misalignment is the quadrupole's (offsets, then tilt)."""
    p = make_particles(xp.name, BEAM)
    kw = dict(length=0.6, k1=1.1, tilt=0.3, x_offset=1e-3, y_offset=-2e-3)
    got = to_np(track_sbend(p, angle=0.0, fringe_type="none", **kw))
    np.testing.assert_allclose(got, to_np(track_quadrupole(p, **kw)), rtol=0, atol=1e-17)


# -- symplecticity and the linear map (autodiff) -------------------------------------------

SYMPLECTIC_CASES = {
    "plain": dict(length=0.5, angle=0.3, fringe_type="none"),
    "edges": dict(length=0.5, angle=0.3, e1=0.2, e2=-0.1, fint=0.5, hgap=0.03),
    "k1": dict(length=0.5, angle=0.3, k1=-1.7, e1=0.1, e2=0.1, fint=0.5, hgap=0.03),
    "soft": dict(length=0.5, angle=0.3, k1=0.9, fringe_type="soft_edge", fint=0.5, hgap=0.05),
    "misaligned": dict(length=0.5, angle=-0.4, e1=0.1, ref_tilt=0.4, tilt=0.02,
                       x_offset=1e-3, y_offset=-2e-3, num_steps=2),
    "misaligned k1": dict(length=0.5, angle=0.4, k1=1.2, tilt=-0.03, x_offset=2e-3,
                          fringe_type="soft_edge", fint=0.4, hgap=0.02),
}
#: Truncated (second-order) Lie maps: symplectic to second order only (without the
#: fint hgap term; with it, Bmad's basic_bend map has a first-order error too).
HWANG_CASES = {
    "hard_edge": dict(length=0.5, angle=0.3, e1=0.25, e2=-0.15, k1=0.8,
                      fringe_type="hard_edge"),
    "basic_bend": dict(length=0.5, angle=0.3, e1=0.2, e2=0.2, fint=0.5, hgap=0.05,
                       fringe_type="basic_bend"),
    "sad_full": dict(length=0.5, angle=0.3, e1=0.2, fint=0.5, hgap=0.05,
                     fringe_type="sad_full", tilt=0.01),
}


def jacobian(ad, kw, point, p0c=P0C, mc2=ELECTRON_MC2, track=track_sbend):
    """Jacobian of the "bmad" map at ``point`` by torch.func.jacrev or jax.jacfwd (eager:
    each case is run once, so compiling would cost more than it saves)."""
    def f(v):
        return track(Particles(coords=v[:, None], p0c=p0c, mc2=mc2), **kw).coords[:, 0]

    if ad.name == "torch":
        import torch

        return torch.func.jacrev(f)(ad.asarray(point)).detach().numpy()
    import jax

    return np.asarray(jax.jacfwd(f)(ad.asarray(point)))


@pytest.mark.parametrize("name", sorted(SYMPLECTIC_CASES))
def test_bmad_map_is_symplectic(ad, name):
    kw = SYMPLECTIC_CASES[name]
    for p0c, mc2 in REFERENCES.values():
        m = jacobian(ad, kw, POINT, p0c, mc2)
        assert np.all(np.isfinite(m))
        np.testing.assert_allclose(m.T @ J @ m, J, rtol=0, atol=2e-13)
        assert np.abs(m - np.eye(6)).max() > 1e-2


@pytest.mark.parametrize("name", ["hard_edge", "sad_full"])
def test_second_order_edges_are_symplectic_to_second_order(ad, name):
    """M^T J M - J shrinks like the amplitude squared (a wrong second-order coefficient
    would leave a first-order error), and vanishes at the reference orbit."""
    kw = HWANG_CASES[name]
    errors = []
    for scale in (1.0, 0.5):
        m = jacobian(ad, kw, POINT * scale)
        errors.append(np.abs(m.T @ J @ m - J).max())
    assert 1e-9 < errors[0] < 1e-3
    assert errors[0] / errors[1] == pytest.approx(4.0, rel=0.15)
    m0 = jacobian(ad, kw, np.zeros(6))
    np.testing.assert_allclose(m0.T @ J @ m0, J, rtol=0, atol=1e-14)


def test_basic_bend_symplectic_error_is_first_order_in_fint_hgap(ad):
    """Bmad's basic_bend map (the second-order map with the fint hgap term) is
    symplectic only to first order: M^T J M - J gains a part proportional to
    fint hgap and to the amplitude (it has no second-order cross terms of the fint term)."""
    base = dict(HWANG_CASES["basic_bend"])

    def error(hgap, scale):
        m = jacobian(ad, dict(base, hgap=hgap), POINT * scale)
        return m.T @ J @ m - J

    e0 = error(0.0, 1 / 8)
    d1, d2 = error(0.05, 1 / 8) - e0, error(0.025, 1 / 8) - e0
    assert 1e-8 < np.abs(d1).max() < 1e-5
    np.testing.assert_allclose(d1, 2 * d2, rtol=0, atol=0.02 * np.abs(d1).max())
    half = error(0.05, 1 / 16) - error(0.0, 1 / 16)
    np.testing.assert_allclose(d1, 2 * half, rtol=0, atol=0.05 * np.abs(d1).max())


@pytest.mark.parametrize("name", sorted({**SYMPLECTIC_CASES, **HWANG_CASES}))
def test_linear_is_jacobian_at_reference_orbit(ad, name):
    """"linear" = exact first-order Taylor map of "bmad" about the zero laboratory orbit:
    R is the autodiff Jacobian there and the constant is the image of the zero orbit
    (nonzero for misaligned bends)."""
    kw = {**SYMPLECTIC_CASES, **HWANG_CASES}[name]
    for p0c, mc2 in REFERENCES.values():
        r, c = _matrix("numpy", p0c=p0c, mc2=mc2, **kw)
        m = jacobian(ad, kw, np.zeros(6), p0c, mc2)
        np.testing.assert_allclose(r, m, rtol=0, atol=1e-13)
        image = to_np(track_sbend(make_particles("numpy", np.zeros((1, 6)), p0c=p0c,
                                                 mc2=mc2), **kw))[:, 0]
        np.testing.assert_allclose(c, image, rtol=0, atol=1e-18)
        np.testing.assert_allclose(r.T @ J @ r, J, rtol=0, atol=2e-13)
        if "x_offset" in kw:
            assert np.abs(c).max() > 1e-5


def test_sbend_map_function_matches_tracking(xp):
    """The public sbend_map gives the same (R, c) as the "linear" method, batched."""
    if xp.name == "jax":
        pytest.skip("slow in eager JAX; JAX's linear map is in test_cross_backend_agreement")
    kw = dict(e1=0.1, e2=0.2, k1=0.4, fint=0.5, hgap=0.03, tilt=0.02, x_offset=1e-3,
              ref_tilt=0.3)
    lengths, angles = np.array([0.5, 0.9]), np.array([0.2, -0.4])
    r, c = sbend_map(xp.asarray(lengths), xp.asarray(angles), xp.asarray(P0C),
                     xp.asarray(ELECTRON_MC2), **kw)
    assert tuple(r.shape) == (2, 6, 6) and tuple(c.shape) == (2, 6)
    for i in range(2):
        ri, ci = _matrix("numpy", length=float(lengths[i]), angle=float(angles[i]), **kw)
        np.testing.assert_allclose(xp.to_numpy(r)[i], ri, rtol=0, atol=1e-15)
        np.testing.assert_allclose(xp.to_numpy(c)[i], ci, rtol=0, atol=1e-18)


def _second_order_coefficients(kw, track=track_sbend):
    """``(c, R, T)`` of the "second_order" method, read off exactly from its image of
    ``0, +-e_j, e_j + e_k`` (the map is the polynomial ``c + R x + T x x / 2``)."""
    eye = np.eye(6)
    points = [np.zeros(6), *eye, *(-eye)] + [eye[j] + eye[k] for j in range(6)
                                             for k in range(j + 1, 6)]
    out = to_np(track(make_particles("numpy", np.array(points)), method="second_order",
                      **kw)).T
    c, plus, minus, pairs = out[0], out[1:7], out[7:13], iter(out[13:])
    r = ((plus - minus) / 2.0).T
    t = np.zeros((6, 6, 6))
    for j in range(6):
        t[:, j, j] = plus[j] + minus[j] - 2.0 * c
        for k in range(j + 1, 6):
            t[:, j, k] = t[:, k, j] = next(pairs) - plus[k] - plus[j] + c
    return c, r, t


@pytest.mark.parametrize("name", ["edges", "k1", "misaligned", "misaligned k1", "sad_full",
                                  "basic_bend"])
def test_second_order_is_hessian_at_reference_orbit(name):
    """"second_order" = second-order Taylor map of "bmad" about the zero laboratory orbit:
    its R and T are the torch autodiff Jacobian and Hessian there (edges, k1 body and
    misalignments included), its constant the image of the zero orbit."""
    torch = pytest.importorskip("torch")
    kw = {**SYMPLECTIC_CASES, **HWANG_CASES}[name]

    def f(v):
        return track_sbend(Particles(coords=v[:, None], p0c=P0C, mc2=ELECTRON_MC2),
                           **kw).coords[:, 0]

    zero = torch.zeros(6, dtype=torch.float64)
    hessian = torch.func.jacfwd(torch.func.jacrev(f))(zero).numpy()
    c, r, t = _second_order_coefficients(kw)
    np.testing.assert_allclose(c, f(zero).numpy(), rtol=0, atol=1e-18)
    np.testing.assert_allclose(r, torch.func.jacrev(f)(zero).numpy(), rtol=0, atol=1e-13)
    np.testing.assert_allclose(t, hessian, rtol=0, atol=1e-10 * np.abs(hessian).max())
    assert np.abs(t).max() > 1e-2


def test_second_order_k1_array_chooses_the_body_per_entry(xp):
    """An array k1 with a zero entry: the second-order map takes the exact body there and
    the paraxial one elsewhere, as the calls with Python numbers do."""
    kw = dict(length=0.6, angle=0.3, e1=0.1, fringe_type="basic_bend", fint=0.5,
              hgap=0.03, x_offset=1e-3, tilt=0.02)
    beam = random_beam(10, seed=5, scale=2e-3)
    p = make_particles(xp.name, np.stack([beam, beam]))
    got = to_np(track_sbend(p, k1=xp.asarray(np.array([0.0, 0.9])), method="second_order",
                            **kw))
    for i, k1 in enumerate((0.0, 0.9)):
        single = to_np(track_sbend(make_particles("numpy", beam), k1=k1,
                                   method="second_order", **kw))
        np.testing.assert_allclose(got[i], single, rtol=1e-14, atol=1e-18)


# -- MAD-X ---------------------------------------------------------------------------------

MADX_CASES = {
    "body": ("l=0.5, angle=0.2", dict(length=0.5, angle=0.2, fringe_type="none")),
    "edges": ("l=0.5, angle=0.2, e1=0.1, e2=-0.05, fint=0.5, fintx=0.3, hgap=0.03",
              dict(length=0.5, angle=0.2, e1=0.1, e2=-0.05, fint=0.5, fint_exit=0.3,
                   hgap=0.03)),
    "k1 edges": ("l=0.8, angle=-0.3, k1=0.9, e1=0.2, e2=0.1, fint=0.4, hgap=0.02",
                 dict(length=0.8, angle=-0.3, k1=0.9, e1=0.2, e2=0.1, fint=0.4, hgap=0.02)),
    "strong": ("l=1.0, angle=1.2, k1=-0.5", dict(length=1.0, angle=1.2, k1=-0.5,
                                                 fringe_type="none")),
}


@pytest.mark.parametrize("name", sorted(MADX_CASES))
@pytest.mark.parametrize(("particle", "p0c"), [("electron", 5e7), ("proton", 5e7),
                                               ("electron", 5e9)])
def test_sbend_matches_madx(name, particle, p0c):
    madx = pytest.importorskip("madx", reason="tests/madx.py helper")
    pytest.importorskip("cpymad.madx", reason="cpymad (MAD-X) not installed")
    definition, kw = MADX_CASES[name]
    mc2 = ELECTRON_MC2 if particle == "electron" else PROTON_MC2
    mine, _ = _matrix("numpy", p0c=p0c, mc2=mc2, **kw)
    theirs = madx.madx_matrix(f"e1: sbend, {definition};", kw["length"], p0c, particle)
    np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-9)
    assert abs(theirs[0, 5]) > 1e-3  # dispersion is there


def test_rbend_matches_madx():
    """MAD-X's RBEND has the chord as its length (with its default rbarc), like Bmad."""
    madx = pytest.importorskip("madx", reason="tests/madx.py helper")
    pytest.importorskip("cpymad.madx", reason="cpymad (MAD-X) not installed")
    kw = dict(length=0.9, angle=0.4, e1=0.05, fint=0.5, hgap=0.02, k1=0.3)
    mine, _ = _matrix("numpy", track=track_rbend, **kw)
    arc = 0.9 / (math.sin(0.2) / 0.2)
    theirs = madx.madx_matrix(
        "e1: rbend, l=0.9, angle=0.4, e1=0.05, fint=0.5, hgap=0.02, k1=0.3;", arc, P0C)
    np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-9)


# -- edge models -----------------------------------------------------------------------------


def test_soft_edge_without_field_integral_is_no_edge(xp):
    """Bmad's soft_edge_only does nothing when fint*hgap = 0 (no edge-angle focusing)."""
    p = make_particles(xp.name, BEAM)
    kw = dict(length=0.5, angle=0.3, e1=0.2, e2=0.1, k1=0.4)
    none = to_np(track_sbend(p, fringe_type="none", **kw))
    soft = to_np(track_sbend(p, fringe_type="soft_edge", fint=0.5, hgap=0.0, **kw))
    np.testing.assert_array_equal(soft, none)


def test_hard_edge_linear_part_is_mad_edge(xp):
    """The second-order hard-edge map's first-order part is MAD's edge matrix without the
    fint term; with fint*hgap = F, basic_bend's differs from linear_edge at order F^2."""
    base = dict(length=0.5, angle=0.3, e1=0.25, e2=-0.15, k1=0.8)
    r_lin, _ = _matrix(xp.name, fringe_type="linear_edge", **base)
    r_hard, _ = _matrix(xp.name, fringe_type="hard_edge", fint=0.5, hgap=0.03, **base)
    np.testing.assert_allclose(r_hard, r_lin, rtol=0, atol=1e-14)
    diffs = []
    for hgap in (0.02, 0.01):
        kw = dict(base, fint=0.5, hgap=hgap)
        a, _ = _matrix(xp.name, fringe_type="linear_edge", **kw)
        b, _ = _matrix(xp.name, fringe_type="basic_bend", **kw)
        diffs.append(np.abs(a - b).max())
        assert np.abs(a - r_lin).max() > 100 * diffs[-1]  # the fint term is there
    assert diffs[0] / diffs[1] == pytest.approx(4.0, rel=0.05)


def test_soft_edge_kicks():
    """SAD's soft edge: x += c1 pz/(1+pz), py += (c2 y - c3 y^3)/(1+pz) with
    c1 = 6 g F^2, c2 = 2 g^2 F, c3 = g^2/(18 F) (F = fint hgap) at the entrance; seen
    through a bend of vanishing length and angle ratio fixed (g = 2, L -> 0)."""
    g, f_h, length = 2.0, 0.5 * 0.04, 1e-9
    x, y, pz = 1e-3, 2e-3, 1e-2
    p = make_particles("numpy", np.array([[x, 0.0, y, 0.0, 0.0, pz]]))
    kw = dict(length=length, angle=g * length, fint=0.5, hgap=0.04, fringe_type="soft_edge")
    # The exit kick reverses c1 and keeps c2, c3: look at the entrance through px, py.
    out = to_np(track_sbend(p, **kw))[:, 0]
    c2, c3 = 2 * g * g * f_h, g * g / (18 * f_h)
    assert out[3] == pytest.approx(2 * (c2 * y - c3 * y**3) / (1 + pz), rel=1e-6)
    assert out[0] == pytest.approx(x, abs=1e-12)  # c1 at both ends cancels


# -- gradients --------------------------------------------------------------------------

GRAD_PARAMS = ("length", "angle", "e1", "e2", "k1", "fint", "hgap", "tilt", "ref_tilt",
               "x_offset", "y_offset")
#: Singular points: zero angle, zero k1 (exact body there), zero misalignments.
GRAD_POINTS = {
    "zero angle, k1, misalignments": dict(length=0.6, angle=0.0, e1=0.1, e2=0.05, k1=0.0,
                                          fint=0.5, hgap=0.03, tilt=0.0, ref_tilt=0.0,
                                          x_offset=0.0, y_offset=0.0),
    "generic": dict(length=0.6, angle=0.25, e1=0.1, e2=-0.05, k1=0.7, fint=0.5, hgap=0.03,
                    tilt=0.01, ref_tilt=0.2, x_offset=1e-3, y_offset=-1e-3),
    "zero k1 bent": dict(length=0.6, angle=0.25, e1=0.0, e2=0.0, k1=0.0, fint=0.5,
                         hgap=0.03, tilt=0.0, ref_tilt=0.0, x_offset=0.0, y_offset=0.0),
}
GRAD_BEAM = BEAM[:3]
GRAD_WEIGHTS = np.arange(1.0, 7.0)[:, None] * np.array([1.0, -0.5, 2.0])[None, :]


def _loss_np(values, method="bmad"):
    p = make_particles("numpy", GRAD_BEAM)
    out = to_np(track_sbend(p, method=method, **values))
    return float(np.sum(out * GRAD_WEIGHTS))


@pytest.mark.parametrize("method", ["bmad", "linear"])
@pytest.mark.parametrize("point", sorted(GRAD_POINTS))
def test_gradients_finite_and_match_finite_differences(ad, point, method):
    """d(loss)/d(parameter) for every parameter, from torch and JAX, against central
    differences of the NumPy map."""
    if ad.name == "jax" and (point != "zero angle, k1, misalignments" or method != "bmad"):
        pytest.skip("JAX checked at the singular point (eager JAX is slow op by op); "
                    "torch covers the other points and the linear method")
    values = GRAD_POINTS[point]
    p = make_particles(ad.name, GRAD_BEAM)
    weights = ad.asarray(GRAD_WEIGHTS)
    vector = np.array([values[k] for k in GRAD_PARAMS])

    def loss(v):
        kw = {k: v[i] for i, k in enumerate(GRAD_PARAMS)}
        return (track_sbend(p, method=method, **kw).coords * weights).sum()

    if ad.name == "torch":
        import torch

        v = torch.tensor(vector, requires_grad=True)
        loss(v).backward()
        grad = v.grad.numpy()
    else:
        import jax

        grad = np.asarray(jax.grad(loss)(ad.asarray(vector)))
    assert np.all(np.isfinite(grad))
    for i, key in enumerate(GRAD_PARAMS):
        h = 1e-5 * max(abs(vector[i]), 0.1)
        up = _loss_np(dict(values, **{key: vector[i] + h}), method)
        down = _loss_np(dict(values, **{key: vector[i] - h}), method)
        fd = (up - down) / (2 * h)
        assert grad[i] == pytest.approx(fd, rel=1e-6, abs=1e-8), key


# -- backends, batches, losses --------------------------------------------------------


@pytest.mark.parametrize("method", ["bmad", "linear"])
def test_cross_backend_agreement(xp, method):
    beam = random_beam(20, seed=3, scale=5e-3)
    kw = dict(length=0.7, angle=0.4, e1=0.1, e2=0.2, k1=-0.6, fint=0.5, hgap=0.03,
              ref_tilt=0.3, tilt=0.02, x_offset=1e-3, y_offset=-5e-4, num_steps=2,
              fringe_type="basic_bend")
    reference = to_np(track_sbend(make_particles("numpy", beam), method=method, **kw))
    got = to_np(track_sbend(make_particles(xp.name, beam), method=method, **kw))
    np.testing.assert_allclose(got, reference, rtol=1e-12, atol=1e-18)


def test_jax_jit_with_traced_parameters():
    """Under jax.jit, with length, angle, edge angles and ref_tilt traced (one
    compilation for all their values), the map equals NumPy's."""
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    @jax.jit
    def run(coords, length, angle, e1, ref_tilt):
        p = Particles(coords=coords, p0c=P0C, mc2=ELECTRON_MC2)
        return track_sbend(p, length=length, angle=angle, e1=e1, e2=e1, fint=0.5, hgap=0.03,
                           ref_tilt=ref_tilt).coords

    beam = make_particles("numpy", BEAM)
    for values in ((0.5, 0.2, 0.1, 0.3), (1.2, -0.6, 0.0, 0.0)):
        got = np.asarray(run(jnp.asarray(beam.coords), *(jnp.asarray(v) for v in values)))
        kw = dict(zip(("length", "angle", "e1", "ref_tilt"), values))
        expected = to_np(track_sbend(beam, e2=kw["e1"], fint=0.5, hgap=0.03, **kw))
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-18)


def test_batched_parameters(xp):
    """Parameters of shape (batch,) against particles of shape (batch, n), k1 zero and
    nonzero in one batch, equal to one call per configuration."""
    lengths = np.array([0.5, 1.0, 0.8])
    angles = np.array([0.2, -0.3, 0.0])
    k1s = np.array([0.0, 0.7, -0.4])
    tilts = np.array([0.0, 0.02, -0.01])
    beam = np.stack([random_beam(4, seed=s, scale=2e-3) for s in range(3)])
    p = make_particles(xp.name, beam)
    out = track_sbend(p, length=xp.asarray(lengths), angle=xp.asarray(angles),
                      k1=xp.asarray(k1s), tilt=xp.asarray(tilts), e1=0.1, fint=0.5,
                      hgap=0.02, fringe_type="basic_bend")
    assert tuple(out.coords.shape) == (3, 6, 4)
    np.testing.assert_allclose(xp.to_numpy(out.s), lengths)
    for i in range(3):
        single = track_sbend(make_particles("numpy", beam[i]), length=lengths[i],
                             angle=angles[i], k1=k1s[i], tilt=tilts[i], e1=0.1, fint=0.5,
                             hgap=0.02, fringe_type="basic_bend")
        np.testing.assert_allclose(to_np(out)[i], to_np(single), rtol=1e-13, atol=1e-18)
    # Unbatched particles (6, n) against batched parameters: one beam, three bends.
    flat = track_sbend(make_particles(xp.name, beam[0]), length=xp.asarray(lengths),
                       angle=xp.asarray(angles), k1=xp.asarray(k1s))
    assert tuple(flat.coords.shape) == (3, 6, 4)
    single = track_sbend(make_particles("numpy", beam[0]), length=lengths[1],
                         angle=angles[1], k1=k1s[1])
    np.testing.assert_allclose(to_np(flat)[1], to_np(single), rtol=1e-13, atol=1e-18)


@settings(max_examples=30, deadline=None)
@given(
    length=st.floats(0.05, 3.0),
    angle=st.floats(-1.5, 1.5),
    k1=st.one_of(st.just(0.0), st.floats(-5.0, 5.0)),
    # fint hgap zero or not tiny: the soft edge's y^3 kick grows like 1/(fint hgap)
    # (Bmad manual, "SAD Dipole Soft Edge Fringe Map").
    edges=st.tuples(st.floats(-0.4, 0.4), st.floats(-0.4, 0.4),
                    st.one_of(st.just(0.0), st.floats(0.1, 0.7)),
                    st.one_of(st.just(0.0), st.floats(0.005, 0.05))),
    frames=st.tuples(st.floats(-3.2, 3.2), st.floats(-0.05, 0.05), st.floats(-3e-3, 3e-3),
                     st.floats(-3e-3, 3e-3)),
    fringe=st.sampled_from(["none", "linear_edge", "soft_edge"]),
)
def test_property_linear_map_is_symplectic_and_first_order(length, angle, k1, edges, frames,
                                                           fringe):
    """Random bends: the linear map is symplectic, its constant is the "bmad" image of
    the zero orbit, and it predicts small deviations from that image to first order."""
    e1, e2, fint, hgap = edges
    ref_tilt, tilt, x_offset, y_offset = frames
    kw = dict(length=length, angle=angle, k1=k1, e1=e1, e2=e2, fint=fint, hgap=hgap,
              ref_tilt=ref_tilt, tilt=tilt, x_offset=x_offset, y_offset=y_offset,
              fringe_type=fringe)
    r, c = _matrix("numpy", **kw)
    np.testing.assert_allclose(r.T @ J @ r, J, rtol=0, atol=1e-11 * max(1.0, np.abs(r).max()**2))
    zero = to_np(track_sbend(make_particles("numpy", np.zeros((1, 6))), **kw))[:, 0]
    np.testing.assert_allclose(c, zero, rtol=0, atol=1e-15)
    delta = 1e-7 * np.array([1.0, -2.0, 1.5, 0.5, 1.0, -1.0])
    moved = to_np(track_sbend(make_particles("numpy", delta[None, :]), **kw))[:, 0]
    scale = max(1.0, np.abs(r).max())
    np.testing.assert_allclose(moved - zero, r @ delta, rtol=0, atol=1e-11 * scale)


def test_lost_particles_are_frozen_and_finite():
    """A particle that cannot reach the exit face, one with unphysical momentum and one
    already lost are lost (or stay lost) with their coordinates frozen, never NaN, and
    gradients stay finite."""
    import torch

    beam = np.array([
        [0.0, 0.0, 0.0, 0.0, 0.0, -0.6],    # too slow: turns back inside a 1.5 rad bend
        [0.0, 0.8, 0.0, 0.7, 0.0, 0.0],     # px^2 + py^2 > 1: lost at the entrance
        [1e-3, 1e-3, 0.0, 0.0, 0.0, 0.0],   # fine
        [5e-3, 0.0, 0.0, 0.0, 0.0, 0.0],    # already lost before the bend
    ])
    alive = np.array([True, True, True, False])
    p = make_particles("torch", beam, alive=alive)
    angle = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    out = track_sbend(p, length=1.0, angle=angle, e1=0.3, fint=0.5, hgap=0.03,
                      tilt=0.01, x_offset=1e-3)
    coords = to_np(out)
    assert np.all(np.isfinite(coords))
    np.testing.assert_array_equal(alive_np(out), [False, False, True, False])
    np.testing.assert_array_equal(coords[:, 1], beam[1])
    np.testing.assert_array_equal(coords[:, 3], beam[3])
    out.coords.sum().backward()
    assert torch.isfinite(angle.grad)


# -- records, rbend, errors ------------------------------------------------------------


def test_rbend_is_the_equivalent_sbend(xp):
    """Bmad's conversion: chord -> arc = chord/sinc(angle/2), e1, e2 += angle/2."""
    chord, angle = 1.2, 0.5
    kw = dict(e1=0.05, e2=-0.02, k1=0.3, fint=0.5, hgap=0.02)
    p = make_particles(xp.name, BEAM)
    arc = chord * (angle / 2) / math.sin(angle / 2)
    out = track_rbend(p, length=chord, angle=angle, **kw)
    expected = track_sbend(p, length=arc, angle=angle, **dict(kw, e1=0.05 + angle / 2,
                                                             e2=-0.02 + angle / 2))
    np.testing.assert_allclose(to_np(out), to_np(expected), rtol=0, atol=1e-17)
    assert float(xp.to_numpy(out.s)) == pytest.approx(arc, rel=1e-15)
    a, e1, e2 = rbend_to_sbend(xp.asarray(chord), xp.asarray(angle))
    assert float(xp.to_numpy(e1 + e2)) == pytest.approx(angle, rel=1e-15)  # parallel faces
    # Its chord is the sbend's chord 2 rho sin(angle/2).
    assert 2 * (float(xp.to_numpy(a)) / angle) * math.sin(angle / 2) == pytest.approx(chord)


def test_records_track_like_the_functions(xp):
    p = make_particles(xp.name, BEAM)
    kw = dict(length=0.7, angle=0.3, e1=0.1, k1=0.2, fint=0.5, hgap=0.03, tilt=0.01,
              ref_tilt=0.2, fringe_type="basic_bend", num_steps=2)
    line = Beamline([Drift("d", length=0.3), SBend("sb", **kw), RBend("rb", **kw)])
    expected = track_rbend(track_sbend(track_drift(p, length=0.3), **kw), **kw)
    got = line.track(p)
    np.testing.assert_array_equal(to_np(got), to_np(expected))
    linear = line.track(p, method="linear")
    expected_linear = track_rbend(
        track_sbend(track_drift(p, length=0.3, method="linear"), method="linear", **kw),
        method="linear", **kw)
    np.testing.assert_array_equal(to_np(linear), to_np(expected_linear))


def test_record_json_round_trip_keeps_exit_defaults():
    line = Beamline([SBend("sb", length=0.5, angle=0.2, fint=0.5, hgap=0.03),
                     RBend("rb", length=0.5, angle=0.2, fint_exit=0.3, hgap_exit=0.01,
                           fringe_type="soft_edge")])
    again = loads(dumps(line))
    assert again["sb"] == line["sb"] and again["rb"] == line["rb"]
    assert again["sb"].fint_exit is None and again["rb"].hgap_exit == 0.01


@pytest.mark.parametrize(
    ("kw", "word"),
    [
        (dict(length=-0.5, angle=0.1), "length"),
        (dict(length=0.0, angle=0.1), "length"),
        (dict(length=0.5, angle=0.1, fringe_type="edge"), "fringe_type"),
        (dict(length=0.5, angle=0.1, num_steps=0), "num_steps"),
        (dict(length=0.5, angle=0.1, method="exact"), "method"),
        (dict(length=0.5, angle=0.1, k1="1"), "k1"),
        (dict(length=0.5, angle=0.1, fint=None), "fint"),
    ],
)
def test_bad_parameters_raise(kw, word):
    p = make_particles("numpy", BEAM)
    with pytest.raises(ParameterError, match=word):
        track_sbend(p, **kw)
    with pytest.raises(ParameterError, match=f"SBend 'b'.*{word}"):
        SBend("b", **{k: v for k, v in kw.items() if k != "method"},
              **({"method": kw["method"]} if "method" in kw else {})).track(p)


def test_full_fringe_is_not_implemented():
    p = make_particles("numpy", BEAM)
    for track, kind in ((track_sbend, "sbend"), (track_rbend, "rbend")):
        with pytest.raises(NotImplementedError, match=f"{kind}: fringe_type 'full'"):
            track(p, length=0.5, angle=0.1, fringe_type="full")
    with pytest.raises(NotImplementedError, match="RBend 'r'.*'full'"):
        RBend("r", length=0.5, angle=0.1, fringe_type="full")
    assert "full" not in FRINGE_TYPES


def test_arrays_of_another_library_are_refused():
    pytest.importorskip("torch")
    import torch

    p = make_particles("numpy", BEAM)
    with pytest.raises(ParameterError, match="angle"):
        track_sbend(p, length=0.5, angle=torch.tensor(0.1, dtype=torch.float64))


# -- special functions of the bend -------------------------------------------------------


@pytest.mark.parametrize("u", [0.0, 1e-9, 0.4, -0.9, 1.0, 2.5, -7.0, 60.0])
def test_cos_sinc_ratios_values(u):
    with mpmath.workdps(40):
        w = mpmath.sqrt(mpmath.mpf(u))
        c = mpmath.cos(w)
        s = mpmath.sin(w) / w if u else mpmath.mpf(1)
        d = (1 - c) / u if u else mpmath.mpf(1) / 2
        f = (1 - s) / u if u else mpmath.mpf(1) / 6
        expected = [float(mpmath.re(v)) for v in (c, s, d, f)]
    got = [float(v) for v in cos_sinc_ratios(np.array(u))]
    np.testing.assert_allclose(got, expected, rtol=1e-15, atol=1e-15)


def test_special_function_derivatives_at_zero():
    """D = (1-C)/u and F = (1-S)/u: D' = -1/24, D'' = 2/720, F' = -1/120, F'' = 2/5040;
    atan(t)/t: first derivative 0, second -2/3 (torch autograd at the singular point)."""
    torch = pytest.importorskip("torch")
    u = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)
    for index, (d1, d2) in ((2, (-1 / 24, 2 / 720)), (3, (-1 / 120, 2 / 5040))):
        value = cos_sinc_ratios(u)[index]
        (g1,) = torch.autograd.grad(value, u, create_graph=True)
        (g2,) = torch.autograd.grad(g1, u)
        assert float(g1) == pytest.approx(d1, rel=1e-14)
        assert float(g2) == pytest.approx(d2, rel=1e-14)
    t = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)
    (g1,) = torch.autograd.grad(atanc(t), t, create_graph=True)
    (g2,) = torch.autograd.grad(g1, t)
    assert float(g1) == 0.0 and float(g2) == pytest.approx(-2 / 3, rel=1e-14)
    for value in (0.05, -0.3, 4.0):
        assert float(atanc(np.array(value))) == pytest.approx(math.atan(value) / value,
                                                              rel=1e-15)


@pytest.mark.parametrize("t", [0.0, 1e-6, -0.05, 0.0999, 0.1, -0.1001, 0.3, -1.0, 4.0, 1e3])
def test_atanc_second_derivative_values(t):
    """d^2/dt^2 atan(t)/t against mpmath, on both sides of the series switch (|t| = 0.1)."""
    with mpmath.workdps(40):
        def f(x):
            return mpmath.atan(x) / x if x else mpmath.mpf(1)

        expected = float(mpmath.diff(f, mpmath.mpf(t), 2)) if t else -2 / 3
    assert float(atanc_second_derivative(np.array(t))) == pytest.approx(expected, rel=1e-12)


def test_atanc_second_derivative_at_zero():
    """At t = 0: value -2/3, first derivative 0 and second derivative 24/5 (the fourth
    derivative of atan(t)/t; torch autograd through the series); elsewhere, the autograd
    second derivative of atanc."""
    torch = pytest.importorskip("torch")
    t = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)
    value = atanc_second_derivative(t)
    (g1,) = torch.autograd.grad(value, t, create_graph=True)
    (g2,) = torch.autograd.grad(g1, t)
    assert float(value.detach()) == -2 / 3 and float(g1.detach()) == 0.0
    assert float(g2) == pytest.approx(24 / 5, rel=1e-14)
    for x in (0.05, -0.3, 2.0):
        t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        (g1,) = torch.autograd.grad(atanc(t), t, create_graph=True)
        (g2,) = torch.autograd.grad(g1, t)
        assert float(atanc_second_derivative(t).detach()) == pytest.approx(float(g2), rel=1e-12)


# -- field offset dg (Bmad's dg, Xsuite's k0 != h) ----------------------------------------


def circle_reference(row, length, angle, dg, p0c, mc2):
    """Exact: in the uniform field of curvature g + dg (for the reference momentum) the
    particle moves on a circle of radius pt / (g + dg) in the horizontal plane (a line
    when g + dg = 0) and uniformly in y. Solved in the laboratory frame (Cartesian X, Z
    with the reference arc's centre at X = -1/g), in mpmath; the exit point is where the
    circle meets the bend's exit face, then transformed into the exit frame."""
    with mpmath.workdps(40):
        x, px, y, py, z, pz = (mpmath.mpf(float(v)) for v in row)
        ell, g = mpmath.mpf(length), mpmath.mpf(angle) / length
        g_tot = g + mpmath.mpf(dg)
        rel_p = 1 + pz
        ps = mpmath.sqrt(rel_p**2 - px**2 - py**2)
        centre = (-1 / g, mpmath.mpf(0))

        def state(t):  # position and momentum after turning by t (or a line length t)
            if g_tot == 0:
                return (x + t * px, t * ps), (px, ps)
            c, s = mpmath.cos(t), mpmath.sin(t)
            mom = (c * px - s * ps, c * ps + s * px)
            return (x - ps / g_tot + mom[1] / g_tot, px / g_tot - mom[0] / g_tot), mom

        normal = (-mpmath.sin(g * ell), mpmath.cos(g * ell))
        radial = (mpmath.cos(g * ell), mpmath.sin(g * ell))

        def face(t):
            pos, _ = state(t)
            return (pos[0] - centre[0]) * normal[0] + (pos[1] - centre[1]) * normal[1]

        t = mpmath.findroot(face, ell if g_tot == 0 else g_tot * ell)
        pos, mom = state(t)
        path = t if g_tot == 0 else t / g_tot  # horizontal path / pt
        x2 = (pos[0] - centre[0]) * radial[0] + (pos[1] - centre[1]) * radial[1] - 1 / g
        px2 = mom[0] * radial[0] + mom[1] * radial[1]
        beta_ratio = mp_beta(float(row[5]), p0c, mc2) / mp_beta(0.0, p0c, mc2)
        z2 = z + ell * beta_ratio - rel_p * path
        return np.array([float(v) for v in (x2, px2, y + py * path, py, z2, pz)])


DG_CASES = {
    "small error": (0.5, 0.2, 1e-3),
    "large": (0.5, 0.2, 0.15),
    "negative": (1.5, -0.9, 0.1),
    "field off": (0.5, 0.2, -0.4),  # g + dg = 0: a straight line in a curved frame
    "near field off": (0.5, 0.2, -0.39),
    "reversed field": (0.5, 0.2, -0.6),
    "large angle": (1.0, 2.5, 0.3),
    "almost straight frame": (0.5, 1e-7, 0.2),
}


@pytest.mark.parametrize("case", sorted(DG_CASES))
@pytest.mark.parametrize("ref", sorted(REFERENCES))
def test_field_offset_matches_circle_in_laboratory_frame(case, ref):
    """k1 = 0 with dg != 0: the exact body against the circle in the laboratory frame,
    to 1e-14 at amplitudes up to 5e-2 (and the design particle, which the field error
    moves off the reference orbit)."""
    length, angle, dg = DG_CASES[case]
    p0c, mc2 = REFERENCES[ref]
    p = make_particles("numpy", BEAM, p0c=p0c, mc2=mc2)
    got = to_np(track_sbend(p, length=length, angle=angle, dg=dg, fringe_type="none"))
    expected = np.stack([circle_reference(r, length, angle, dg, p0c, mc2) for r in BEAM], 1)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-14)
    assert bool(np.all(alive_np(track_sbend(p, length=length, angle=angle, dg=dg))))


def test_field_offset_on_every_backend(xp):
    """The same on every backend, with batched dg (shape (2,)) and several slices."""
    length, angle = 0.5, 0.2
    dg = np.array([0.03, -0.4])
    p = make_particles(xp.name, np.broadcast_to(BEAM, (2, *BEAM.shape)))
    got = to_np(track_sbend(p, length=length, angle=angle, dg=xp.asarray(dg),
                            fringe_type="none", num_steps=3))
    for i in range(2):
        expected = np.stack([circle_reference(r, length, angle, dg[i], P0C, ELECTRON_MC2)
                             for r in BEAM], 1)
        np.testing.assert_allclose(got[i], expected, rtol=0, atol=1e-14)


@pytest.mark.parametrize("kw", [
    dict(length=0.5, angle=0.2, e1=0.1, e2=0.05, fint=0.5, hgap=0.03),
    dict(length=2.0, angle=-1.3, e1=-0.2, e2=0.4, fringe_type="basic_bend", fint=0.6,
         hgap=0.02, ref_tilt=0.3, x_offset=1e-4, tilt=0.01),
    dict(length=0.4, angle=0.3, k1=-1.2, fringe_type="sad_full", fint=0.5, hgap=0.03),
    dict(length=0.7, angle=0.0, k1=0.0, e1=0.2),
])
def test_zero_field_offset_changes_nothing(xp, kw):
    """dg = 0 given as an array (the general body, chosen when dg is not a Python zero)
    agrees with the default to 1e-15, and its linear map with the default's."""
    p = make_particles(xp.name, BEAM)
    default = to_np(track_sbend(p, **kw))
    zero = xp.asarray(np.zeros(()))
    np.testing.assert_allclose(to_np(track_sbend(p, **kw, dg=zero)), default, rtol=0,
                               atol=1e-15)
    np.testing.assert_array_equal(to_np(track_sbend(p, **kw, dg=0.0)), default)
    r0, c0 = _matrix(xp.name, **kw)
    r1, c1 = _matrix(xp.name, **kw, dg=zero)
    np.testing.assert_allclose(r1, r0, rtol=0, atol=1e-14)
    np.testing.assert_allclose(c1, c0, rtol=0, atol=1e-15)


@pytest.mark.parametrize("k1", [1.8, -2.5])
@pytest.mark.parametrize("dg", [0.02, -0.3])
def test_field_offset_with_k1_solves_bmad_hamiltonian(k1, dg):
    """k1 != 0: Bmad's combined-function body with g_tot = g + dg (sbend_body_with_k1_map)
    is the exact flow of its paraxial Hamiltonian, to 1e-12."""
    length, angle = 1.0, 0.3
    p = make_particles("numpy", BEAM)
    got = to_np(track_sbend(p, length=length, angle=angle, k1=k1, dg=dg, fringe_type="none"))
    expected = np.stack([paraxial_body_reference(r, length, angle, k1, P0C, ELECTRON_MC2,
                                                 dg=dg) for r in BEAM], 1)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def _xsuite_track(rows, p0c, mc2, **bend):
    """Xsuite's Bend (model bend-kick-bend: its exact body) in Bmad coordinates."""
    xt = pytest.importorskip("xtrack", reason="xtrack (Xsuite) not installed")
    particles = xt.Particles(p0c=p0c, mass0=mc2, x=rows[:, 0], px=rows[:, 1],
                             y=rows[:, 2], py=rows[:, 3], delta=rows[:, 5])
    beta0 = particles.beta0[0]
    particles.zeta = rows[:, 4] * beta0 / (particles.beta0 * particles.rvv)  # zeta = z b0/b
    xt.Bend(model="bend-kick-bend", **bend).track(particles)
    z = particles.zeta * particles.beta0 * particles.rvv / beta0
    return np.stack([particles.x, particles.px, particles.y, particles.py, z,
                     particles.delta])


@pytest.mark.parametrize("edges", [False, True])
@pytest.mark.parametrize(("length", "angle", "dg"), [(0.5, 0.2, 0.03), (1.2, -0.6, 0.2),
                                                     (0.5, 0.2, -0.25)])
def test_field_offset_matches_xsuite(length, angle, dg, edges):
    """Xsuite's Bend with k0 = g + dg != h = g (its exact bend-kick-bend body, linear
    edges with k0, as Bmad's edges use g + dg), to 1e-14."""
    p0c, mc2 = 5e7, PROTON_MC2
    kw, xs = {"fringe_type": "none"}, {"edge_entry_active": 0, "edge_exit_active": 0}
    if edges:
        kw = dict(e1=0.1, e2=-0.05, fint=0.5, hgap=0.03)
        xs = dict(edge_entry_angle=0.1, edge_exit_angle=-0.05, edge_entry_model="linear",
                  edge_exit_model="linear", edge_entry_fint=0.5, edge_exit_fint=0.5,
                  edge_entry_hgap=0.03, edge_exit_hgap=0.03)
    expected = _xsuite_track(BEAM, p0c, mc2, length=length, angle=angle,
                             k0=angle / length + dg, **xs)
    p = make_particles("numpy", BEAM, p0c=p0c, mc2=mc2)
    got = to_np(track_sbend(p, length=length, angle=angle, dg=dg, **kw))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-14)


def test_field_offset_is_a_differentiable_parameter(ad):
    """The gradient of an exit coordinate with respect to dg, at dg = 0 and at the field
    being off (g + dg = 0), against central differences of the numpy tracking."""
    row = BEAM[:1]

    def exit_x(values, name):
        p = make_particles(name, row)
        out = track_sbend(p, length=0.5, angle=0.2, dg=values["dg"], e1=0.1)
        return out.coords[0, 0] + 3.0 * out.coords[4, 0]

    for dg0 in (0.0, -0.4):
        h = 1e-6
        expected = (float(exit_x({"dg": dg0 + h}, "numpy"))
                    - float(exit_x({"dg": dg0 - h}, "numpy"))) / (2 * h)
        _, grad = ad.value_and_grad(lambda v: exit_x(v, ad.name))({"dg": ad.asarray(dg0)})
        assert float(ad.to_numpy(grad["dg"])) == pytest.approx(expected, rel=1e-7)
