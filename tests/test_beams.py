"""Generated beams and beam statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import make_particles, random_beam

import beamtrack as bt
from beamtrack.tracking import statistics as st
from beamtrack.tracking.beams import from_covariance, from_twiss

P0C, MC2 = 1e9, bt.electron.mc2
N = 100_000
#: Relative standard error of a variance estimated from N Gaussian samples is sqrt(2/N)
#: (0.45 % here); moments are asserted to 5 standard errors.
VAR_TOL = 5 * math.sqrt(2 / N)

TWISS = dict(beta_x=8.0, alpha_x=-1.2, emittance_x=1e-8, beta_y=3.0, alpha_y=0.4,
             normalized_emittance_y=1e-6, sigma_z=1e-3, sigma_pz=2e-3, p0c=P0C, mc2=MC2)


@pytest.mark.parametrize("distribution", ["gaussian", "uniform", "waterbag", "kv"])
def test_from_twiss_moments(distribution):
    p = from_twiss(N, **TWISS, distribution=distribution, seed=2)
    # remove_dispersion is irrelevant here (no dispersion); Twiss from moments = request.
    tx = st.twiss_from_moments(p, "x")
    ty = st.twiss_from_moments(p, "y")
    eps_y = 1e-6 * MC2 / P0C
    assert float(tx["emittance"]) == pytest.approx(1e-8, rel=VAR_TOL)
    assert float(ty["emittance"]) == pytest.approx(eps_y, rel=VAR_TOL)
    assert float(tx["beta"]) == pytest.approx(8.0, rel=2 * VAR_TOL)
    assert float(tx["alpha"]) == pytest.approx(-1.2, abs=2 * VAR_TOL * 1.6)
    assert float(ty["beta"]) == pytest.approx(3.0, rel=2 * VAR_TOL)
    sigma = st.rms_size(p)
    assert float(sigma[4]) == pytest.approx(1e-3, rel=VAR_TOL)
    assert float(sigma[5]) == pytest.approx(2e-3, rel=VAR_TOL)
    assert float(st.normalized_emittance(p, "y")) == pytest.approx(1e-6, rel=VAR_TOL)


def test_kv_and_waterbag_shapes():
    kv = from_twiss(1000, **TWISS, distribution="kv", seed=1)
    # KV: every particle on the 4D hyper-ellipsoid J_x/eps_x + J_y/eps_y = 4 (radius 2).
    x, px, y, py = (np.asarray(c) for c in (kv.x, kv.px, kv.y, kv.py))
    eps_y = 1e-6 * MC2 / P0C
    inv_x = (x**2 * (1 + 1.44) / 8.0 + 2 * (-1.2) * x * px + 8.0 * px**2) / 1e-8
    inv_y = (y**2 * (1 + 0.16) / 3.0 + 2 * 0.4 * y * py + 3.0 * py**2) / eps_y
    np.testing.assert_allclose(inv_x + inv_y, 4.0, rtol=1e-10)
    wb = from_twiss(1000, **TWISS, distribution="waterbag", seed=1)
    x, px, y, py = (np.asarray(c) for c in (wb.x, wb.px, wb.y, wb.py))
    inv = ((x**2 * 2.44 / 8.0 - 2.4 * x * px + 8.0 * px**2) / 1e-8
           + (y**2 * 1.16 / 3.0 + 0.8 * y * py + 3.0 * py**2) / eps_y)
    assert inv.max() <= 6.0 + 1e-9 and inv.max() > 5.5


def test_dispersion_and_mean():
    p = from_twiss(N, **TWISS, dispersion_x=0.5, dispersion_px=0.1,
                   mean=[1e-3, 0, -1e-3, 0, 0, 0], seed=4)
    d = np.asarray(st.dispersion(p))
    # Regression slope standard error: sigma_betatron / (sigma_pz sqrt(N)); 5 of them.
    assert d[0] == pytest.approx(0.5, abs=5 * math.sqrt(8e-8) / (2e-3 * math.sqrt(N)))
    gamma_x = (1 + 1.2**2) / 8.0
    assert d[1] == pytest.approx(0.1, abs=5 * math.sqrt(1e-8 * gamma_x) / (2e-3 * math.sqrt(N)))
    sigma_x = math.sqrt(8e-8 + 0.25 * 4e-6)
    assert float(st.centroid(p)[0]) == pytest.approx(1e-3, abs=5 * sigma_x / math.sqrt(N))
    tx = st.twiss_from_moments(p, "x")  # betatron part once dispersion is removed
    assert float(tx["beta"]) == pytest.approx(8.0, rel=3 * VAR_TOL)


def test_same_beam_on_every_backend(xp):
    ref = from_twiss(100, **TWISS, seed=7)
    other = from_twiss(100, **TWISS, seed=7, backend=xp.name)
    np.testing.assert_allclose(xp.to_numpy(other.coords), np.asarray(ref.coords),
                               rtol=1e-15, atol=0)


def test_from_twiss_is_differentiable(ad):
    def size(beta):
        p = from_twiss(500, **{**TWISS, "beta_x": beta}, seed=3, backend=ad.name)
        return bt.beam_statistics(p)["sigma_x"]

    _, grad = ad.value_and_grad(size)(ad.asarray(8.0))
    # sigma_x = sqrt(eps beta) * sample_std  ->  d sigma / d beta = sigma / (2 beta)
    value = float(ad.to_numpy(size(ad.asarray(8.0))))
    assert float(ad.to_numpy(grad)) == pytest.approx(value / 16.0, rel=1e-12)


def test_from_covariance():
    a = np.array([[2.0, 0.3, 0, 0, 0, 0.1], [0.3, 1.0, 0, 0, 0, 0], [0, 0, 1.5, -0.2, 0, 0],
                  [0, 0, -0.2, 0.5, 0, 0], [0, 0, 0, 0, 1.0, 0], [0.1, 0, 0, 0, 0, 0.0]])
    cov = a @ a.T * 1e-8
    p = from_covariance(N, covariance=cov, p0c=P0C, mc2=MC2, seed=5)
    got = np.asarray(st.covariance(p))
    scale = np.sqrt(np.outer(np.diag(cov), np.diag(cov)))
    assert np.max(np.abs(got - cov) / np.where(scale > 0, scale, 1)) < 5 / math.sqrt(N) * 2
    with pytest.raises(bt.ParameterError, match="positive semi-definite"):
        from_covariance(10, covariance=-cov, p0c=P0C, mc2=MC2)
    with pytest.raises(bt.ParameterError, match="symmetric"):
        bad = cov.copy()
        bad[0, 1] += 1e-9
        from_covariance(10, covariance=bad, p0c=P0C, mc2=MC2)


@pytest.mark.parametrize(("kwargs", "word"), [
    (dict(emittance_x=None), "emittance_x"),
    (dict(normalized_emittance_x=1e-6), "emittance_x"),
    (dict(beta_x=-1.0), "beta_x"),
    (dict(distribution="flat"), "flat"),
    (dict(sigma_z=math.nan), "sigma_z"),
])
def test_from_twiss_errors(kwargs, word):
    with pytest.raises(bt.ParameterError, match=word):
        from_twiss(10, **{**TWISS, **kwargs})


def test_statistics_weighted_and_alive(xp):
    beam = random_beam(40, seed=1)
    rng = np.random.default_rng(0)
    alive = rng.random(40) > 0.2
    p = make_particles(xp.name, beam, alive=alive)
    w = rng.random(40) + 0.5
    got = xp.to_numpy(st.centroid(p, xp.asarray(w)))
    ww = w * alive
    expected = (beam * ww[:, None]).sum(0) / ww.sum()
    np.testing.assert_allclose(got, expected, rtol=1e-14)
    cov = xp.to_numpy(st.covariance(p, xp.asarray(w)))
    d = beam - expected
    np.testing.assert_allclose(cov, (d * ww[:, None]).T @ d / ww.sum(), rtol=1e-13)
    e4 = float(xp.to_numpy(st.emittance_4d(p)))
    sel = beam[alive]
    c = np.cov(sel.T, bias=True)
    assert e4 == pytest.approx(np.linalg.det(c[:4, :4]) ** 0.25, rel=1e-12)
    e6 = float(xp.to_numpy(st.emittance_6d(p)))
    assert e6 == pytest.approx(np.linalg.det(c) ** (1 / 6), rel=1e-12)
