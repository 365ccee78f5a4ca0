"""Linearly coupled optics (Edwards-Teng), against MAD-X TWISS (cpymad) and identities.

References: MAD-X's TWISS of the same MAD-X text (its normal-mode ``betx, alfx, mux,
bety, alfy, muy``, coupling matrix ``r11 .. r22``, dispersion and tunes); the
eigenvalues of the one-turn matrix; the Edwards-Teng trace identities
``tr M + tr N = tr A + tr B`` and ``tr M - tr N = (g^2 - det C)(tr A - tr B)``; and, for
uncoupled lines, the 2x2 Courant-Snyder formulas written out here.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import beamtrack as bt
from beamtrack.lattice.errors import LatticeFileWarning
from beamtrack.lattice.io import madx as madx_format
from beamtrack.lattice.linear_map import LinearMap
from beamtrack.lattice.optics import transfer_map, twiss
from beamtrack.tracking.optics import COUPLING_FIELDS, TWISS_FIELDS, TwissInit

#: A small ring coupled by a skew quadrupole, a rolled quadrupole and a solenoid, with
#: bends (so x and y dispersion).
RING = """
beam, particle=proton, pc=2.0;
qf: quadrupole, l=0.3, k1=1.2;
qd: quadrupole, l=0.3, k1=-1.1;
qs: quadrupole, l=0.2, k1s=0.15;
qt: quadrupole, l=0.25, k1=0.2, tilt=0.3;
b: sbend, l=1.0, angle=0.1;
sol: solenoid, l=0.5, ks=0.3;
ring: sequence, l=12, refer=entry;
qf, at=0; qs, at=1.5; qd, at=3; sol, at=4.5; b, at=5.0; qf, at=6; qt, at=7; qd, at=9;
b, at=10;
endsequence;
"""

#: MAD-X column -> (beamtrack field, scale to MAD-X units given beta0)
COLUMNS = {
    "betx": "beta_x", "alfx": "alpha_x", "mux": "mu_x", "bety": "beta_y",
    "alfy": "alpha_y", "muy": "mu_y", "r11": "r11", "r12": "r12", "r21": "r21",
    "r22": "r22", "dx": "dx", "dpx": "dpx", "dy": "dy", "dpy": "dpy",
}


def madx_module():
    return pytest.importorskip("cpymad.madx", reason="cpymad (MAD-X) not installed")


def madx_twiss(text: str, sequence: str, **init):
    """MAD-X's TWISS table (as arrays), summary tunes and beta0 of ``text``."""
    madx = madx_module().Madx(stdout=False)
    try:
        madx.input(text)
        madx.input(f"use, sequence={sequence};")
        table = madx.twiss(**init)
        columns = {k: np.array(table[k]) for k in ("name", "s", *COLUMNS)}
        tunes = (table.summary.q1, table.summary.q2)
        beta0 = float(madx.sequence[sequence].beam.beta)
    finally:
        madx.quit()
    return columns, tunes, beta0


def as_madx(mine, field: str, beta0: float) -> np.ndarray:
    """A beamtrack column in MAD-X units (phase in 2 pi, dispersion d/dpt)."""
    values = np.asarray(getattr(mine, field), dtype=float)
    if field.startswith("mu_"):
        return values / (2 * math.pi)
    if field in ("dx", "dpx", "dy", "dpy"):
        return values / beta0
    return values


#: Largest allowed deviation from MAD-X on RING: relative for betas, absolute otherwise
#: (measured: betas 2.2e-15 relative, alphas 4e-15, phases 2.5e-16 [2 pi], R 2e-15,
#: dispersion 1.7e-15 [m]; tunes 1e-11).
TOLERANCE = {"betx": 1e-12, "bety": 1e-12}
ABSOLUTE = 1e-12


def assert_matches_madx(mine, theirs, beta0, rows):
    for column, field in COLUMNS.items():
        ours = as_madx(mine, field, beta0)
        reference = theirs[column][rows]
        if column in TOLERANCE:
            np.testing.assert_allclose(ours, reference, rtol=TOLERANCE[column], atol=0,
                                       err_msg=column)
        else:
            np.testing.assert_allclose(ours, reference, rtol=0, atol=ABSOLUTE, err_msg=column)


def ring() -> bt.Beamline:
    return madx_format.loads(RING)


def rows_of(line: bt.Beamline, theirs) -> slice:
    """MAD-X's rows: its start marker, then the same elements (then its end marker)."""
    n = len(line.names()) + 1
    names = [str(name).split(":")[0] for name in theirs["name"][1:n]]
    assert names == line.names()
    return slice(0, n)


def test_periodic_coupled_ring_matches_madx():
    line = ring()
    theirs, tunes, beta0 = madx_twiss(RING, "ring")
    mine = twiss(line)
    assert np.abs(np.asarray(mine.r12)).max() > 0.5  # strongly coupled
    assert np.abs(np.asarray(mine.dy)).max() > 0.01  # with vertical dispersion
    assert_matches_madx(mine, theirs, beta0, rows_of(line, theirs))
    assert float(mine.tune_x) == pytest.approx(tunes[0], abs=1e-10)
    assert float(mine.tune_y) == pytest.approx(tunes[1], abs=1e-10)


@pytest.mark.parametrize("coupled_start", [False, True], ids=["R=0", "R!=0"])
def test_single_pass_coupled_matches_madx(coupled_start):
    line = ring()
    r = dict(r11=0.1, r12=0.5, r21=-0.02, r22=0.2) if coupled_start else {}
    init = dict(betx=5.0, alfx=0.3, bety=7.0, alfy=-0.4, dx=0.3, dpx=-0.01, dy=0.02,
                dpy=0.01, **r)
    theirs, _, beta0 = madx_twiss(RING, "ring", **init)
    mine = twiss(line, TwissInit(
        beta_x=5.0, alpha_x=0.3, beta_y=7.0, alpha_y=-0.4, dx=0.3 * beta0,
        dpx=-0.01 * beta0, dy=0.02 * beta0, dpy=0.01 * beta0, **r))
    assert_matches_madx(mine, theirs, beta0, rows_of(line, theirs))


def test_leir_coupled_functions_match_madx():
    """LEIR with its skew quadrupoles on (kickers off): every Edwards-Teng function
    along the ring against MAD-X (the tune and beta test at the issue's tolerance is
    ``test_io_madx.py::test_real_lattice_twiss_matches_madx[leir]``)."""
    from test_io_madx import _load_real

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LatticeFileWarning)
        line, madx = _load_real("leir/leir.madx", ("hkicker", "vkicker", "kicker"), ())
    try:
        table = madx.twiss()
        theirs = {k: np.array(table[k]) for k in ("s", *COLUMNS)}
        beta0 = float(madx.sequence.leir.beam.beta)
    finally:
        madx.quit()
    mine = twiss(line)
    assert np.abs(np.asarray(mine.r12)).max() > 0.1
    s = np.asarray(mine.s)
    index = np.clip(np.searchsorted(theirs["s"], s[1:] - 1e-9), 0, len(theirs["s"]) - 1)
    matched = np.abs(theirs["s"][index] - s[1:]) < 1e-9
    assert matched.mean() > 0.9
    # measured: betas 1.1e-10 relative, alphas 1.8e-10, phases 2.6e-11 [2 pi], R 1.6e-10,
    # dispersion 7.9e-10 [m] (the one-turn matrices agree to 1.8e-9)
    for column, field in COLUMNS.items():
        ours = as_madx(mine, field, beta0)[1:][matched]
        reference = theirs[column][index[matched]]
        if column in TOLERANCE:
            np.testing.assert_allclose(ours, reference, rtol=1e-9, atol=0, err_msg=column)
        else:
            np.testing.assert_allclose(ours, reference, rtol=0, atol=5e-9, err_msg=column)


# ------------------------------------------------------------------- identities
def test_edwards_teng_identities_along_the_ring():
    """At every point: the one-turn matrix there, decoupled with the table's ``R``,
    is block diagonal with symplectic blocks whose Twiss functions are the table's;
    the traces obey the Edwards-Teng identities; the tunes are the eigen-tunes."""
    line = ring()
    mine = twiss(line)
    matrices = [np.asarray(r)[:4, :4] for r in _element_matrices(line)]
    one_turn = np.eye(4)
    for r in matrices:
        one_turn = r @ one_turn
    eigen = np.sort(np.abs(np.angle(np.linalg.eigvals(one_turn))))[::2] / (2 * math.pi)
    tunes = np.sort([float(mine.tune_x) % 1, float(mine.tune_y) % 1])
    folded = np.sort([min(q, 1 - q) for q in tunes])
    np.testing.assert_allclose(eigen, folded, rtol=0, atol=1e-12)
    j2 = np.array([[0.0, 1.0], [-1.0, 0.0]])
    at_point = one_turn
    for i in range(len(matrices) + 1):
        if i > 0:
            at_point = matrices[i - 1] @ at_point @ np.linalg.inv(matrices[i - 1])
        r = np.array([[mine.r11[i], mine.r12[i]], [mine.r21[i], mine.r22[i]]])
        det_r = np.linalg.det(r)
        g = 1.0 / math.sqrt(1.0 + det_r)
        c = g * (j2.T @ r.T @ j2)  # C = g R^+
        v = np.block([[g * np.eye(2), c], [-(j2.T @ c.T @ j2), g * np.eye(2)]])
        u = np.linalg.inv(v) @ at_point @ v
        assert np.abs(u[:2, 2:]).max() < 1e-12 and np.abs(u[2:, :2]).max() < 1e-12
        a, b = u[:2, :2], u[2:, 2:]
        assert np.linalg.det(a) == pytest.approx(1.0, abs=1e-12)
        assert np.linalg.det(b) == pytest.approx(1.0, abs=1e-12)
        assert g * g + np.linalg.det(c) == pytest.approx(1.0, abs=1e-14)
        for block, plane in ((a, "x"), (b, "y")):
            sin_mu = math.sin(2 * math.pi * float(getattr(mine, f"tune_{plane}")))
            beta = float(getattr(mine, f"beta_{plane}")[i])
            alpha = float(getattr(mine, f"alpha_{plane}")[i])
            assert block[0, 1] == pytest.approx(beta * sin_mu, rel=1e-11)
            assert (block[0, 0] - block[1, 1]) / 2 == pytest.approx(alpha * sin_mu, abs=1e-11)
        # tr M + tr N = tr A + tr B,  tr M - tr N = (g^2 - det C)(tr A - tr B)
        cos_a = math.cos(2 * math.pi * float(mine.tune_x))
        cos_b = math.cos(2 * math.pi * float(mine.tune_y))
        tr_m, tr_n = np.trace(at_point[:2, :2]), np.trace(at_point[2:, 2:])
        assert tr_m + tr_n == pytest.approx(2 * cos_a + 2 * cos_b, abs=1e-12)
        assert tr_m - tr_n == pytest.approx(
            (g * g - np.linalg.det(c)) * (2 * cos_a - 2 * cos_b), abs=1e-12)
        assert g >= 1 / math.sqrt(2)  # mode a is the x-like mode


def _element_matrices(line):
    from beamtrack.lattice.optics import element_maps

    return [r for _, r, _, _ in element_maps(line)]


# -------------------------------------------------------------- uncoupled limit
def _uncoupled_reference(matrices, init):
    """The 2x2 Courant-Snyder propagation of each plane, written out independently."""
    out = {f: [init[f]] for f in TWISS_FIELDS}
    state = dict(init)
    for r in matrices:
        for plane, i in (("x", 0), ("y", 2)):
            r11, r12, r21, r22 = r[i, i], r[i, i + 1], r[i + 1, i], r[i + 1, i + 1]
            beta, alpha = state[f"beta_{plane}"], state[f"alpha_{plane}"]
            gamma = (1.0 + alpha * alpha) / beta
            d, dp = state[f"d{plane}"], state[f"dp{plane}"]
            state[f"beta_{plane}"] = r11 * r11 * beta - 2.0 * r11 * r12 * alpha + r12 * r12 * gamma
            state[f"alpha_{plane}"] = (
                -r11 * r21 * beta + (r11 * r22 + r12 * r21) * alpha - r12 * r22 * gamma)
            state[f"mu_{plane}"] = state[f"mu_{plane}"] + np.arctan2(
                r12, r11 * beta - r12 * alpha)
            state[f"d{plane}"] = r11 * d + r12 * dp + r[i, 5]
            state[f"dp{plane}"] = r21 * d + r22 * dp + r[i + 1, 5]
        for f in TWISS_FIELDS:
            out[f].append(state[f])
    return {f: np.array(v) for f, v in out.items()}


def uncoupled_cell(skew: bool = False) -> bt.Beamline:
    """A bend cell; with ``skew``, a skew quadrupole (``k1 = 0``: a rolled drift, whose
    matrix has off-diagonal blocks of rounding size, 1e-17) for the weak-coupling limit."""
    from beamtrack.lattice.elements import SBend

    qs = (bt.Quadrupole("qs", length=0.2, k1=0.0, tilt=math.pi / 4) if skew
          else bt.Quadrupole("qs", length=0.2, k1=0.0))

    return bt.Beamline([
        bt.Quadrupole("qf", length=0.3, k1=1.6), bt.Drift("d1", length=0.4),
        SBend("b1", length=1.5, angle=0.15, e1=0.05, e2=0.02, fint=0.4, hgap=0.02),
        bt.Drift("d2", length=0.4), bt.Quadrupole("qd", length=0.3, k1=-1.5),
        qs,
        bt.Drift("d3", length=0.4), SBend("b2", length=1.5, angle=0.15, k1=-0.05),
        bt.Drift("d4", length=0.4),
    ], name="cell")


def test_uncoupled_single_pass_is_exactly_the_2x2_result():
    line = uncoupled_cell()
    init = dict(beta_x=8.0, alpha_x=-1.2, mu_x=0.0, dx=0.3, dpx=-0.02, beta_y=3.0,
                alpha_y=0.4, mu_y=0.0, dy=0.0, dpy=0.0)
    matrices = [np.asarray(r) for r in _element_matrices(line)]
    assert all(np.all(r[:2, 2:4] == 0) and np.all(r[2:4, :2] == 0) for r in matrices)
    reference = _uncoupled_reference(matrices, init)
    mine = twiss(line, TwissInit(**init))
    for f in TWISS_FIELDS:
        np.testing.assert_array_equal(np.asarray(getattr(mine, f)), reference[f], err_msg=f)
    for f in COUPLING_FIELDS:
        assert np.all(np.asarray(getattr(mine, f)) == 0)


def test_uncoupled_periodic_is_exactly_the_2x2_result():
    line = uncoupled_cell()
    mine = twiss(line)
    r, _ = transfer_map(line)
    r = np.asarray(r)
    start = {}
    for plane, i in (("x", 0), ("y", 2)):
        m = r[i:i + 2, i:i + 2]
        cos_mu = 0.5 * (m[0, 0] + m[1, 1])
        sin_mu = np.sign(m[0, 1]) * math.sqrt(1.0 - cos_mu * cos_mu)
        start[f"beta_{plane}"] = m[0, 1] / sin_mu
        start[f"alpha_{plane}"] = (m[0, 0] - m[1, 1]) / (2.0 * sin_mu)
        start[f"mu_{plane}"] = 0.0
        a, b, c, d = 1.0 - m[0, 0], -m[0, 1], -m[1, 0], 1.0 - m[1, 1]
        det = a * d - b * c
        e, f = r[i, 5], r[i + 1, 5]
        start[f"d{plane}"] = (d * e - b * f) / det
        start[f"dp{plane}"] = (-c * e + a * f) / det
    for f in TWISS_FIELDS:
        assert float(getattr(mine, f)[0]) == start[f], f
    reference = _uncoupled_reference([np.asarray(m) for m in _element_matrices(line)], start)
    for f in TWISS_FIELDS:
        np.testing.assert_array_equal(np.asarray(getattr(mine, f)), reference[f], err_msg=f)
    for f in COUPLING_FIELDS:
        assert np.all(np.asarray(getattr(mine, f)) == 0)


def test_weak_coupling_tends_to_the_uncoupled_result():
    uncoupled = twiss(uncoupled_cell())
    for k1s, bound in ((1e-3, 1e-4), (1e-6, 1e-10)):
        coupled = twiss(uncoupled_cell(skew=True).replace("qs", k1=k1s))
        assert np.abs(np.asarray(coupled.r12)).max() > 0
        for f in ("beta_x", "beta_y"):
            deviation = np.asarray(getattr(coupled, f)) / np.asarray(getattr(uncoupled, f)) - 1
            assert np.abs(deviation).max() < bound


# -------------------------------------------------------------------- errors
def test_mode_flip_raises():
    """An x-y exchange (rotation of the transverse plane by 90 degrees) flips the
    normal modes: ``g^2 = cos^2(90 deg) = 0`` after it."""
    rotation = np.eye(6)
    rotation[:4, :4] = np.array([[0.0, 0, 1, 0], [0, 0, 0, 1], [-1, 0, 0, 0], [0, -1, 0, 0]])
    line = bt.Beamline([bt.Drift("d", length=1.0), LinearMap("swap", r=rotation)])
    with pytest.raises(bt.ParameterError, match="flip"):
        twiss(line, TwissInit(beta_x=1.0, beta_y=2.0))
    # a rotation by 30 degrees is fine: g^2 = cos^2(30 deg)
    rotation[:4, :4] = np.kron(np.array([[math.cos(0.5236), math.sin(0.5236)],
                                         [-math.sin(0.5236), math.cos(0.5236)]]), np.eye(2))
    line = bt.Beamline([bt.Drift("d", length=1.0), LinearMap("rot", r=rotation)])
    result = twiss(line, TwissInit(beta_x=1.0, beta_y=2.0))
    r = np.array([[result.r11[-1], result.r12[-1]], [result.r21[-1], result.r22[-1]]])
    assert 1.0 / (1.0 + np.linalg.det(r)) == pytest.approx(math.cos(0.5236) ** 2, rel=1e-12)


def test_unstable_coupled_motion_raises():
    """On the sum resonance a skew quadrupole makes the motion unstable while each
    2x2 block alone is stable: the Edwards-Teng decomposition does not exist."""
    mu_x, mu_y = 2 * math.pi * 0.26, 2 * math.pi * 0.74  # Qx + Qy = 1
    rotation = np.eye(6)
    rotation[:2, :2] = [[math.cos(mu_x), math.sin(mu_x)], [-math.sin(mu_x), math.cos(mu_x)]]
    rotation[2:4, 2:4] = [[math.cos(mu_y), math.sin(mu_y)], [-math.sin(mu_y), math.cos(mu_y)]]
    kick = np.eye(6)
    kick[1, 2] = kick[3, 0] = -0.3  # thin skew quadrupole
    line = bt.Beamline([LinearMap("arc", r=rotation), LinearMap("skew", r=kick)])
    r, _ = transfer_map(line)
    assert np.abs(np.abs(np.linalg.eigvals(np.asarray(r)[:4, :4])) - 1).max() > 1e-3
    with pytest.raises(bt.ParameterError, match="Edwards-Teng|unstable"):
        twiss(line)


# ---------------------------------------------------------- backends, gradients
def test_coupled_twiss_on_every_backend(xp):
    line = ring()
    reference = twiss(line)
    mine = twiss(line, backend=xp.name)
    for f in TWISS_FIELDS + COUPLING_FIELDS + ("tune_x", "tune_y"):
        np.testing.assert_allclose(xp.to_numpy(getattr(mine, f)),
                                   np.asarray(getattr(reference, f)), rtol=1e-12, atol=1e-13,
                                   err_msg=f)


def test_coupled_twiss_batched():
    strengths = np.array([0.0, 0.05, 0.15])
    batched = twiss(ring().replace("qs", k1=strengths))
    for i, k in enumerate(strengths):
        single = twiss(ring().replace("qs", k1=float(k)))
        for f in ("beta_x", "r12", "mu_y"):
            np.testing.assert_allclose(np.asarray(getattr(batched, f))[i],
                                       np.asarray(getattr(single, f)), rtol=1e-13, atol=1e-15)


QUANTITIES = {
    "tune_x": lambda t: t.tune_x,
    "tune_y": lambda t: t.tune_y,
    "beta_y[5]": lambda t: t.beta_y[..., 5],
    "alpha_x[8]": lambda t: t.alpha_x[..., 8],
    "r12[7]": lambda t: t.r12[..., 7],
    "dy[3]": lambda t: t.dy[..., 3],
}


@pytest.mark.parametrize("k1s", [0.15, 0.0], ids=["coupled", "at-zero-coupling"])
@pytest.mark.parametrize("quantity", list(QUANTITIES))
def test_coupled_twiss_gradient_matches_finite_differences(ad, quantity, k1s):
    """d/d(skew quadrupole strength), periodic solution, by autodiff against central
    differences (also at zero coupling, where the tunes are stationary)."""
    extract = QUANTITIES[quantity]

    def f(k):
        return extract(twiss(ring().replace("qs", k1=k)))

    _, grad = ad.value_and_grad(f)(ad.asarray(k1s))
    h = 1e-5
    fd = (float(f(k1s + h)) - float(f(k1s - h))) / (2 * h)
    assert math.isfinite(float(ad.to_numpy(grad)))
    assert float(ad.to_numpy(grad)) == pytest.approx(fd, rel=1e-6, abs=1e-8)


def test_single_pass_coupled_gradient_matches_finite_differences(ad):
    def f(r12):
        init = TwissInit(beta_x=5.0, alpha_x=0.3, beta_y=7.0, alpha_y=-0.4, r12=r12)
        return twiss(ring(), init).beta_x[..., 9]

    _, grad = ad.value_and_grad(f)(ad.asarray(0.4))
    h = 1e-6
    fd = (float(f(0.4 + h)) - float(f(0.4 - h))) / (2 * h)
    assert float(ad.to_numpy(grad)) == pytest.approx(fd, rel=1e-7)
