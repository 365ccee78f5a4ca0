"""A beamline with every element kind: cross-backend agreement, JSON, maps, merging."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SYMPLECTIC_J as J6
from conftest import make_particles, random_beam, to_np

import beamtrack as bt

P0C = 50e6


def kitchen_sink(with_lcavity: bool = True) -> bt.Beamline:
    items = [
        bt.Marker("m0"),
        bt.Drift("d0", length=0.3),
        bt.Quadrupole("q1", length=0.2, k1=3.0, x_offset=1e-4, tilt=0.02, num_steps=2),
        bt.SBend("b1", length=0.6, angle=0.1, e1=0.03, e2=0.02, fint=0.5, hgap=0.02,
                 ref_tilt=0.05, x_offset=5e-5, dg=0.002),
        bt.RBend("b2", length=0.5, angle=-0.05, k1=0.2, dg=0.003),
        bt.DipoleEdge("de", h=0.2, e1=0.05, fint=0.5, hgap=0.02, tilt=0.01),
        bt.Sextupole("s1", length=0.1, k2=20.0, num_steps=3, y_offset=1e-4),
        bt.Octupole("o1", length=0.1, k3=300.0, tilt=0.1),
        bt.ThickMultipole("tm1", length=0.2, knl=(0.0, 0.5, 3.0), ksl=(0.0, 0.1)),
        bt.Multipole("mp1", knl=(0.0, 0.2, 1.0), ksl=(0.0, 0.0, 0.5), x_offset=1e-4),
        bt.Multipole("mp2", knl=(2e-3, 0.1), ksl=(1e-3,), ref_length=0.4, tilt=0.02),
        bt.HKicker("hk", length=0.1, kick=1e-4),
        bt.VKicker("vk", kick=-2e-4),
        bt.Kicker("k1", length=0.2, hkick=5e-5, vkick=5e-5),
        bt.Solenoid("sol", length=0.4, ks=0.8, x_offset=2e-4),
        bt.RFCavity("rf", length=0.3, voltage=1e5, phi0=0.1, frequency=1.3e9),
        bt.CrabCavity("crab", length=0.2, voltage=5e4, phi0=0.05, frequency=1.3e9),
        bt.Monitor("bpm"),
        bt.Aperture("ap", shape="elliptical", x_limit=5e-3, y_limit=5e-3),
        bt.Collimator("col", length=0.3, shape="rectangular", x_limit=6e-3, y_limit=4e-3),
        bt.Screen("scr", resolution=(16, 12), pixel_size=(5e-4, 5e-4)),
    ]
    if with_lcavity:
        items.append(bt.LCavity("lc", length=0.5, voltage=2e6, phi0=0.02, frequency=1.3e9))
    items.append(bt.Drift("d_end", length=0.2))
    return bt.Beamline(items, name="sink")


def test_every_kind_is_in_the_line():
    kinds = {e.kind for e in kitchen_sink()}
    # LinearMap and Custom (a user function, which lattice files cannot store) have
    # their own tests: test_lattice.py and test_custom_element.py; so has SpaceCharge
    # (a collective kick that needs a charged bunch and has no single-particle map):
    # test_space_charge.py.
    assert kinds >= set(bt.lattice.ELEMENT_KINDS) - {"LinearMap", "Custom", "SpaceCharge"}


@pytest.mark.parametrize("method", ["bmad", "linear"])
def test_cross_backend_agreement(method):
    line = kitchen_sink()
    particles = make_particles("numpy", random_beam(200, seed=1, scale=1e-3), p0c=P0C)
    results = bt.crosscheck(line, particles, method=method)
    assert results, "no second backend installed"
    for name, dev in results.items():
        assert dev.ok, (name, dev)


def test_json_round_trip_exact(tmp_path):
    line = kitchen_sink()
    bt.save(line, tmp_path / "sink.json")
    again = bt.load(tmp_path / "sink.json")
    assert again == line
    p = make_particles("numpy", random_beam(20, seed=2), p0c=P0C)
    np.testing.assert_array_equal(to_np(again.track(p)), to_np(line.track(p)))


@pytest.mark.parametrize("name", [e.name for e in kitchen_sink() if e.has_body
                                  and e.kind != "Aperture"])
def test_linear_map_is_the_jacobian_of_the_bmad_map(name):
    """Each element's "linear" map is the autodiff Jacobian of its "bmad" map at the
    laboratory reference orbit, and its constant the "bmad" image of that orbit."""
    torch = pytest.importorskip("torch")
    element = kitchen_sink()[name]

    def run(coords, method):
        p = bt.Particles(coords=coords[:, None], p0c=P0C, mc2=bt.electron.mc2)
        return element.track(p, method=method).coords[:, 0]

    zero = torch.zeros(6, dtype=torch.float64)
    jac_bmad = torch.autograd.functional.jacobian(lambda c: run(c, "bmad"), zero).numpy()
    jac_lin = torch.autograd.functional.jacobian(lambda c: run(c, "linear"), zero).numpy()
    np.testing.assert_allclose(jac_lin, jac_bmad, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(run(zero, "linear").numpy(), run(zero, "bmad").numpy(),
                               rtol=1e-12, atol=1e-15)
    if element.kind != "LCavity":  # accelerating: M^T J M = (P0_in/P0_out) J instead
        np.testing.assert_allclose(jac_bmad.T @ J6 @ jac_bmad, J6, rtol=0, atol=1e-10)


def test_line_map_is_the_product_of_element_maps():
    line = bt.Beamline([e for e in kitchen_sink(with_lcavity=False)
                        if e.kind not in ("Aperture",)], name="no_cut")
    r, _ = bt.transfer_map(line, p0c=P0C)
    product = np.eye(6)
    for element in line:
        if element.has_body:
            product = bt.transfer_map(bt.Beamline([element]), p0c=P0C)[0] @ product
    np.testing.assert_allclose(r, product, rtol=0, atol=1e-12)


def test_merged_keeps_observers_and_lcavity_and_tracks_identically():
    line = kitchen_sink()
    fused = line.merged(p0c=P0C, mc2=bt.electron.mc2, method="linear")
    kinds = [e.kind for e in fused]
    for kind in ("Monitor", "Aperture", "Screen", "LCavity", "Marker"):
        assert kind in kinds
    assert "LinearMap" in kinds and len(fused) < len(line)
    p = make_particles("numpy", random_beam(100, seed=3), p0c=P0C)
    a, b = to_np(line.track(p, method="linear")), to_np(fused.track(p))
    scale = np.abs(a).max(axis=-1, keepdims=True)
    assert np.max(np.abs(a - b) / scale) < 1e-13
