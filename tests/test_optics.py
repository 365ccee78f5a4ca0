"""Linear optics: Twiss vs MAD-X, transfer maps, merged maps, parameter beams."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import make_particles, random_beam, to_np

import beamtrack as bt
from beamtrack.lattice.linear_map import LinearMap
from beamtrack.lattice.optics import merged, track_parameter_beam, transfer_map, twiss
from beamtrack.tracking.optics import TwissInit
from beamtrack.tracking.parameter_beam import ParameterBeam

P0C = 1e9
MC2 = bt.electron.mc2


def fodo(k1f=2.0, k1d=-2.0) -> bt.Beamline:
    return bt.Beamline([
        bt.Quadrupole("qf", length=0.2, k1=k1f), bt.Drift("d1", length=1.0),
        bt.Quadrupole("qd", length=0.2, k1=k1d), bt.Drift("d2", length=1.0),
    ], name="fodo")


def madx_twiss(sequence: str, length: float, **init):
    madx_module = pytest.importorskip("cpymad.madx", reason="cpymad (MAD-X) not installed")
    madx = madx_module.Madx(stdout=False)
    try:
        madx.input(f"beam, particle=electron, pc={P0C / 1e9!r};\n{sequence}\n"
                   f"seq: sequence, l={length!r}, refer=entry;\n")
        madx.input("""
            qf, at=0; qd, at=1.2;
            endsequence;
            use, sequence=seq;
        """)
        table = madx.twiss(**init)
        result = {k: np.array(table[k]) for k in ("betx", "alfx", "mux", "bety", "alfy", "muy",
                                                   "dx", "dpx")}
        result["q1"], result["q2"] = madx.table.summ.q1[0], madx.table.summ.q2[0]
    finally:
        madx.quit()
    return result


def test_periodic_fodo_matches_madx():
    theirs = madx_twiss("qf: quadrupole, l=0.2, k1=2.0; qd: quadrupole, l=0.2, k1=-2.0;", 2.4)
    mine = twiss(fodo())
    # MAD-X rows: start marker, qf, (implicit drift), qd, (implicit drift), end marker.
    rows = [0, 1, 2, 3, 4]
    for ours, key in (("beta_x", "betx"), ("beta_y", "bety")):
        np.testing.assert_allclose(getattr(mine, ours), theirs[key][rows], rtol=1e-8)
    for ours, key in (("alpha_x", "alfx"), ("alpha_y", "alfy")):
        np.testing.assert_allclose(getattr(mine, ours), theirs[key][rows], rtol=0, atol=1e-8)
    for ours, key in (("mu_x", "mux"), ("mu_y", "muy")):
        np.testing.assert_allclose(getattr(mine, ours) / (2 * math.pi), theirs[key][rows],
                                   rtol=0, atol=1e-10)
    assert mine.tune_x == pytest.approx(theirs["q1"], abs=1e-10)
    assert mine.tune_y == pytest.approx(theirs["q2"], abs=1e-10)


def test_single_pass_fodo_matches_madx():
    init = dict(betx=8.0, alfx=-1.2, bety=3.0, alfy=0.4, dx=0.3, dpx=-0.02)
    theirs = madx_twiss("qf: quadrupole, l=0.2, k1=2.0; qd: quadrupole, l=0.2, k1=-2.0;", 2.4,
                        **init)
    beta0 = P0C / math.hypot(P0C, MC2)
    # MAD-X dispersion is d x / d pt with pt = beta0 pz (to first order): D_bmad = beta0 D_madx.
    mine = twiss(fodo(), TwissInit(beta_x=8.0, alpha_x=-1.2, beta_y=3.0, alpha_y=0.4,
                                   dx=0.3 * beta0, dpx=-0.02 * beta0))
    rows = slice(0, 5)  # MAD-X adds an end marker row
    np.testing.assert_allclose(mine.beta_x, theirs["betx"][rows], rtol=1e-8)
    np.testing.assert_allclose(mine.beta_y, theirs["bety"][rows], rtol=1e-8)
    np.testing.assert_allclose(mine.mu_x / (2 * math.pi), theirs["mux"][rows], atol=1e-10)
    np.testing.assert_allclose(mine.dx / beta0, theirs["dx"][rows], rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(mine.dpx / beta0, theirs["dpx"][rows], rtol=1e-8, atol=1e-12)


def test_periodic_solution_is_periodic_and_thin_lens_tune():
    tw = twiss(fodo())
    for f in ("beta_x", "alpha_x", "beta_y", "alpha_y", "dx"):
        values = getattr(tw, f)
        assert values[0] == pytest.approx(values[-1], rel=1e-12, abs=1e-14)
    # Independent thick-lens cell matrix: cos(mu) = trace / 2.
    def quad(k, length):
        w = math.sqrt(abs(k))
        if k > 0:
            return np.array([[math.cos(w * length), math.sin(w * length) / w],
                             [-w * math.sin(w * length), math.cos(w * length)]])
        return np.array([[math.cosh(w * length), math.sinh(w * length) / w],
                         [w * math.sinh(w * length), math.cosh(w * length)]])

    drift = np.array([[1.0, 1.0], [0.0, 1.0]])
    for plane, sign in (("x", 1.0), ("y", -1.0)):
        cell = drift @ quad(-2.0 * sign, 0.2) @ drift @ quad(2.0 * sign, 0.2)
        mu = math.acos(np.trace(cell) / 2)
        assert getattr(tw, f"tune_{plane}") == pytest.approx(mu / (2 * math.pi), rel=1e-13)
        beta = cell[0, 1] / math.sin(mu)
        assert getattr(tw, f"beta_{plane}")[0] == pytest.approx(beta, rel=1e-13)


def test_unstable_cell_raises():
    with pytest.raises(bt.ParameterError, match="unstable"):
        twiss(fodo(k1f=20.0, k1d=-20.0))


def test_transfer_map_of_drift_has_bmad_r56():
    r, c = transfer_map(bt.Beamline([bt.Drift("d", length=2.0)]), p0c=1e7, mc2=MC2)
    gamma0 = math.hypot(1e7, MC2) / MC2
    assert r[4, 5] == pytest.approx(2.0 / gamma0**2, rel=1e-14)
    assert r[0, 1] == 2.0 and np.all(c == 0)


def test_transfer_map_equals_tracking(xp):
    line = fodo().replace("qf", x_offset=1e-3, tilt=0.05)
    r, c = transfer_map(line, p0c=P0C, mc2=MC2, backend=xp.name)
    beam = random_beam(5, seed=2)
    out = to_np(line.track(make_particles(xp.name, beam), method="linear"))
    expected = xp.to_numpy(r) @ beam.T + xp.to_numpy(c)[:, None]
    np.testing.assert_allclose(out, expected, rtol=1e-13, atol=1e-18)


def test_merged_tracks_identically(xp):
    line = bt.Beamline([
        bt.Marker("m0"),
        bt.Quadrupole("q1", length=0.2, k1=2.0, x_offset=2e-4),
        bt.Drift("d1", length=1.0),
        bt.Quadrupole("q2", length=0.2, k1=-2.0, method="bmad"),
        bt.Drift("d2", length=1.0),
        bt.Quadrupole("q3", length=0.2, k1=1.0, tilt=0.1),
        bt.Marker("m1"),
        bt.Drift("d3", length=0.5),
    ], method="linear")
    fused = merged(line, p0c=P0C, mc2=MC2, backend=xp.name)
    assert fused.names() == ["m0", "q1..d1", "q2", "d2..q3", "m1", "d3"]
    assert isinstance(fused["q1..d1"], LinearMap)
    assert fused["q2"].method == "bmad"
    p = make_particles(xp.name, random_beam(50, seed=4))
    a, b = to_np(line.track(p)), to_np(fused.track(p))
    scale = np.abs(a).max(axis=-1, keepdims=True)
    assert np.max(np.abs(a - b) / scale) < 1e-13
    assert float(fused.length) == pytest.approx(3.1)


def test_merged_bmad_line_is_unchanged():
    line = fodo()
    fused = merged(line)
    assert fused.names() == line.names()
    assert all(e.method == "bmad" for e in fused)


def test_parameter_beam_matches_particle_moments(xp):
    line = fodo().replace("qf", x_offset=1e-3, tilt=0.1)
    p = bt.gaussian_particles(3000, sigma=[5e-4, 5e-5, 4e-4, 6e-5, 1e-3, 1e-3], p0c=P0C,
                              mc2=MC2, mean=[1e-4, 0, -2e-4, 1e-5, 0, 1e-4],
                              backend=xp.name)
    beam = ParameterBeam.from_particles(p)
    out = track_parameter_beam(line, beam)
    ref = ParameterBeam.from_particles(line.track(p, method="linear"))
    cov, cov_ref = xp.to_numpy(out.covariance), xp.to_numpy(ref.covariance)
    np.testing.assert_allclose(cov, cov_ref, rtol=0, atol=1e-13 * np.abs(cov_ref).max())
    np.testing.assert_allclose(xp.to_numpy(out.mean), xp.to_numpy(ref.mean), atol=1e-17)
    assert float(xp.to_numpy(out.s)) == pytest.approx(2.4)


def test_parameter_beam_round_trip_to_particles():
    p = bt.gaussian_particles(200_000, sigma=[1e-3, 1e-4, 2e-3, 2e-4, 1e-3, 1e-3], p0c=P0C,
                              mc2=MC2, seed=1)
    beam = ParameterBeam.from_particles(p)
    again = ParameterBeam.from_particles(beam.to_particles(200_000, seed=9))
    # Sampling error of a variance from n normal samples: sqrt(2/n) = 0.3 %; allow 5 sigma.
    np.testing.assert_allclose(again.sigma, beam.sigma, rtol=5 * math.sqrt(2 / 200_000) / 2)


def test_twiss_gradient_matches_finite_differences(ad):
    def beta_end(k1):
        return twiss(fodo().replace("qf", k1=k1)).beta_x[..., 2]

    k1 = 2.1
    _, grad = ad.value_and_grad(beta_end)(ad.asarray(k1))
    h = 1e-5
    fd = (float(beta_end(k1 + h)) - float(beta_end(k1 - h))) / (2 * h)
    assert float(ad.to_numpy(grad)) == pytest.approx(fd, rel=1e-7)


def test_twiss_batched_parameters():
    k1 = np.array([1.8, 2.0, 2.2])
    tw = twiss(fodo().replace("qf", k1=k1))
    assert tw.beta_x.shape == (3, 5) and tw.tune_x.shape == (3,)
    for i, value in enumerate(k1):
        single = twiss(fodo().replace("qf", k1=float(value)))
        np.testing.assert_allclose(tw.beta_x[i], single.beta_x, rtol=1e-14)


def test_periodic_bend_cell_matches_madx():
    from beamtrack.lattice.elements import SBend

    madx_module = pytest.importorskip("cpymad.madx", reason="cpymad (MAD-X) not installed")
    line = bt.Beamline([
        bt.Quadrupole("qf", length=0.3, k1=1.6), bt.Drift("d1", length=0.4),
        SBend("b1", length=1.5, angle=0.15, e1=0.05, e2=0.02, fint=0.4, hgap=0.02),
        bt.Drift("d2", length=0.4), bt.Quadrupole("qd", length=0.3, k1=-1.5),
        bt.Drift("d3", length=0.4), SBend("b2", length=1.5, angle=0.15, k1=-0.05),
        bt.Drift("d4", length=0.4),
    ], name="cell")
    mine = twiss(line)
    madx = madx_module.Madx(stdout=False)
    try:
        madx.input(f"""
            beam, particle=electron, pc={P0C / 1e9!r};
            qf: quadrupole, l=0.3, k1=1.6; qd: quadrupole, l=0.3, k1=-1.5;
            b1: sbend, l=1.5, angle=0.15, e1=0.05, e2=0.02, fint=0.4, hgap=0.02;
            b2: sbend, l=1.5, angle=0.15, k1=-0.05;
            d: drift, l=0.4;
            cell: line = (qf, d, b1, d, qd, d, b2, d);
            use, sequence=cell;
        """)
        table = madx.twiss()
        theirs = {k: np.array(table[k]) for k in ("betx", "bety", "alfx", "mux", "muy", "dx")}
        q1, q2 = madx.table.summ.q1[0], madx.table.summ.q2[0]
    finally:
        madx.quit()
    rows = slice(0, 9)  # MAD-X: start marker, 8 elements (then the end marker)
    beta0 = P0C / math.hypot(P0C, MC2)
    np.testing.assert_allclose(mine.beta_x, theirs["betx"][rows], rtol=1e-8)
    np.testing.assert_allclose(mine.beta_y, theirs["bety"][rows], rtol=1e-8)
    np.testing.assert_allclose(mine.alpha_x, theirs["alfx"][rows], rtol=0, atol=1e-8)
    np.testing.assert_allclose(mine.mu_x / (2 * math.pi), theirs["mux"][rows], atol=1e-10)
    np.testing.assert_allclose(mine.mu_y / (2 * math.pi), theirs["muy"][rows], atol=1e-10)
    np.testing.assert_allclose(mine.dx / beta0, theirs["dx"][rows], rtol=1e-8, atol=1e-10)
    assert float(mine.tune_x) == pytest.approx(q1, abs=1e-10)
    assert float(mine.tune_y) == pytest.approx(q2, abs=1e-10)
    assert np.max(np.abs(mine.dx)) > 0.1  # the cell really has dispersion
