"""The map methods are derived from the "bmad" model: per element kind,

* the ``"linear"`` map is the autodiff Jacobian of the ``"bmad"`` map at the laboratory
  reference orbit (and its constant the "bmad" image of that orbit);
* the ``"second_order"`` map's coefficients are the autodiff Hessian there;
* the error of ``"second_order"`` against ``"bmad"`` is third order in the amplitude
  (halving it divides the error by about 8) and that of ``"linear"`` second order
  (about 4).

The references are torch autograd (reverse mode through the "bmad" tracking code) and
the "bmad" tracking itself, never the map code under test.
"""

from __future__ import annotations

import numpy as np
import pytest

import beamtrack as bt

P0C = 50e6
MIS = dict(tilt=0.05, x_offset=2e-4, y_offset=-1e-4)

#: One element of every kind with a body, with misalignments where the kind has them
#: (the map is about the laboratory orbit, so feed-down terms are exercised too).
CASES = {
    "Drift": bt.Drift("d", length=0.7),
    "Collimator": bt.Collimator("col", length=0.5, x_limit=0.05, y_limit=0.05, **MIS),
    "Quadrupole": bt.Quadrupole("q", length=0.3, k1=2.5, num_steps=2, **MIS),
    "SBend": bt.SBend("b", length=0.6, angle=0.1, e1=0.03, e2=0.02, fint=0.5, hgap=0.02,
                      ref_tilt=0.05, fringe_type="basic_bend", dg=0.02, **MIS),
    "RBend": bt.RBend("rb", length=0.5, angle=-0.05, k1=0.2, dg=-0.01, **MIS),
    "DipoleEdge": bt.DipoleEdge("de", h=0.3, e1=0.1, fint=0.5, hgap=0.03, **MIS),
    "Sextupole": bt.Sextupole("s", length=0.2, k2=40.0, num_steps=2, **MIS),
    # Offsets of centimetres: the feed-down's quadratic terms must dominate the cubic
    # kick at the test amplitudes for the linear error to be visibly second order.
    "Octupole": bt.Octupole("o", length=0.2, k3=3000.0, tilt=0.05, x_offset=2e-2,
                            y_offset=-1e-2),
    "ThickMultipole": bt.ThickMultipole("tm", length=0.2, knl=(1e-4, 0.5, 30.0, 500.0),
                                        ksl=(0.0, 0.1, 5.0), num_steps=2, **MIS),
    "Multipole": bt.Multipole("mp", knl=(1e-3, 0.3, 20.0, 800.0), ksl=(2e-4, 0.1, 3.0),
                              ref_length=0.3, **MIS),
    "HKicker": bt.HKicker("hk", length=0.2, kick=1e-3, **MIS),
    "VKicker": bt.VKicker("vk", length=0.1, kick=-1e-3),
    "Kicker": bt.Kicker("k", length=0.2, hkick=1e-3, vkick=2e-3, num_steps=2, **MIS),
    "Solenoid": bt.Solenoid("sol", length=0.4, ks=2.0, **MIS),
    "RFCavity": bt.RFCavity("rf", length=0.3, voltage=3e5, phi0=0.1, frequency=1.3e9,
                            num_steps=2, **MIS),
    "CrabCavity": bt.CrabCavity("crab", length=0.2, voltage=2e5, phi0=0.05,
                                frequency=1.3e9, **MIS),
    "LCavity": bt.LCavity("lc", length=0.5, voltage=5e6, phi0=0.05, frequency=1.3e9,
                          num_steps=2, **MIS),
}
#: Kinds without a body to expand (they pass particles unchanged or only cut them, under
#: every method) or whose map is given, not derived.
NO_MODEL = {"Marker", "Monitor", "Screen", "Aperture", "LinearMap", "Custom",
            "SpaceCharge"}  # a collective kick: no single-particle map (test_space_charge)
#: Kinds whose "bmad" model is itself affine in the coordinates (so both maps are
#: exact: their error against "bmad" is round-off, not of order 2 or 3).
AFFINE_MODEL = {"DipoleEdge"}


def test_every_kind_with_a_body_is_covered():
    kinds = set(bt.lattice.ELEMENT_KINDS)
    assert kinds - NO_MODEL == set(CASES), "add the new kind to CASES"


def _track(element, coords, method):
    import torch

    p = bt.Particles(coords=coords, p0c=torch.tensor(P0C, dtype=torch.float64),
                     mc2=bt.electron.mc2)
    return element.track(p, method).coords


@pytest.mark.parametrize("kind", sorted(CASES))
def test_maps_are_the_derivatives_of_the_bmad_map(kind):
    torch = pytest.importorskip("torch")
    element = CASES[kind]
    zero = torch.zeros(6, dtype=torch.float64)

    def bmad(c):
        return _track(element, c[:, None], "bmad")[:, 0]

    image = bmad(zero)
    jac = torch.autograd.functional.jacobian(bmad, zero)
    hess = torch.stack([torch.autograd.functional.hessian(lambda c, i=i: bmad(c)[i], zero)
                        for i in range(6)])
    # A map's value at x = h e_j and -h e_j gives c +- h R e_j + h^2 T_jj / 2, and at
    # h (e_j + e_k) the mixed term: read R, c, T off the maps by tracking probes.
    h = 1e-3  # probe size: the maps are polynomials, so any size gives exact differences
    unit = h * torch.eye(6, dtype=torch.float64)
    lin = _track(element, torch.cat([zero[:, None], unit], dim=1), "linear")
    np.testing.assert_allclose(lin[:, 0].numpy(), image.numpy(), rtol=1e-12, atol=1e-15)
    r_lin = (lin[:, 1:] - lin[:, :1]).numpy() / h
    np.testing.assert_allclose(r_lin, jac.numpy(), rtol=1e-10, atol=1e-12)

    pairs = [(j, k) for j in range(6) for k in range(6)]
    probes = torch.stack([unit[j] + unit[k] for j, k in pairs], dim=1)
    second = _track(element, torch.cat([zero[:, None], unit, -unit, probes], dim=1),
                    "second_order").numpy()
    c, plus, minus = second[:, 0], second[:, 1:7], second[:, 7:13]
    np.testing.assert_allclose(c, image.numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose((plus - minus) / (2 * h), jac.numpy(), rtol=1e-10, atol=1e-12)
    t_diag = plus + minus - 2 * c[:, None]  # h^2 T_ijj
    t = np.empty((6, 6, 6))
    for col, (j, k) in enumerate(pairs):
        # f(h e_j + h e_k) = c + h (R_j + R_k) + h^2 ((T_jj + T_kk)/2 + T_jk)
        mixed = second[:, 13 + col] - c - (plus[:, j] - minus[:, j]) / 2 \
            - (plus[:, k] - minus[:, k]) / 2
        t[:, j, k] = mixed - (t_diag[:, j] + t_diag[:, k]) / 2 if j != k else t_diag[:, j]
    t /= h * h
    scale = max(np.abs(hess.numpy()).max(), 1.0)
    np.testing.assert_allclose(t, hess.numpy(), rtol=0, atol=1e-9 * scale)


def _errors(element, method, amplitudes):
    sample = np.random.default_rng(7).uniform(-1.0, 1.0, size=(6, 64))
    errors = []
    for a in amplitudes:
        p = bt.Particles(coords=a * sample, p0c=P0C, mc2=bt.electron.mc2)
        exact = np.asarray(element.track(p, "bmad").coords)
        approx = np.asarray(element.track(p, method).coords)
        errors.append(np.abs(approx - exact).max())
    return errors


@pytest.mark.parametrize("kind", sorted(CASES))
def test_error_order_against_bmad(kind):
    amplitudes = (2e-3, 1e-3, 5e-4)
    linear = _errors(CASES[kind], "linear", amplitudes)
    second = _errors(CASES[kind], "second_order", amplitudes)
    if kind in AFFINE_MODEL:
        assert max(linear + second) < 1e-18, (linear, second)
        return
    for errors, expected in ((linear, 4.0), (second, 8.0)):
        ratios = [errors[i] / errors[i + 1] for i in range(len(errors) - 1)]
        assert all(0.75 * expected < q < 1.3 * expected for q in ratios), (errors, ratios)
    assert second[0] < 0.1 * linear[0]
