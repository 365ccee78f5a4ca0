"""Xsuite converters: beams and lines, checked by tracking in both codes.

References are Xsuite's own tracking; nothing here compares beamtrack with itself
except the round trips.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

xt = pytest.importorskip("xtrack", reason="xsuite (xtrack) not installed")

import beamtrack.lattice.elements as el  # noqa: E402
from beamtrack.lattice.beamline import Beamline  # noqa: E402
from beamtrack.lattice.errors import LatticeError, LatticeFileWarning  # noqa: E402
from beamtrack.lattice.io.xsuite import from_xsuite, to_xsuite  # noqa: E402
from beamtrack.lattice.reference import Reference  # noqa: E402
from beamtrack.tracking.particles import Particles  # noqa: E402
from beamtrack.tracking.species import proton  # noqa: E402

P0C = 2e9


def beam(scale: float = 1e-3, n: int = 6, seed: int = 1) -> Particles:
    coords = np.random.default_rng(seed).normal(size=(6, n)) * scale
    return Particles(coords=coords, p0c=P0C, mc2=proton.mc2)


def xline(elements: list, names: list[str] | None = None):
    names = names or [f"e{i}" for i in range(len(elements))]
    line = xt.Line(elements=dict(zip(names, elements)) if len(set(names)) == len(names)
                   else elements, element_names=names)
    line.particle_ref = xt.Particles(p0c=P0C, mass0=proton.mc2, q0=1)
    return line


def through_xsuite(line, p: Particles) -> Particles:
    line.build_tracker()
    xp = p.to_xsuite()
    line.track(xp)
    return Particles.from_xsuite(xp)


def deviation(a: Particles, b: Particles) -> float:
    return float(np.max(np.abs(np.asarray(a.coords) - np.asarray(b.coords))))


# -- beams ------------------------------------------------------------------------------
def test_beam_round_trip_with_lost_flags():
    alive = np.array([1, 1, 0, 1, 1, 0], dtype=bool)
    p = Particles(coords=np.random.default_rng(0).normal(size=(6, 6)) * 1e-3, p0c=1e8,
                  mc2=proton.mc2, s=3.0, alive=alive)
    xp = p.to_xsuite()
    assert xp.q0 == 1.0
    assert xp.state[np.argsort(xp.particle_id)].tolist() == [1, 1, 0, 1, 1, 0]
    q = Particles.from_xsuite(xp)
    assert deviation(p, q) < 1e-18 and q.alive.tolist() == alive.tolist() and float(q.s) == 3.0


def test_beam_keeps_order_after_losses():
    """Xsuite moves lost particles to the end; particle_id restores the order."""
    p = beam(scale=1e-3)
    line = xline([xt.Drift(length=1.0, model="exact"),
                  xt.LimitRect(min_x=-5e-4, max_x=5e-4, min_y=-1, max_y=1)])
    out = through_xsuite(line, p)
    expected_alive = np.abs(np.asarray(p.x) + np.asarray(p.px) / np.sqrt(
        (1 + np.asarray(p.pz)) ** 2 - np.asarray(p.px) ** 2 - np.asarray(p.py) ** 2)) <= 5e-4
    assert out.alive.tolist() == expected_alive.tolist()
    ours = from_xsuite(line).track(p)
    assert deviation(out, ours) < 1e-15 and ours.alive.tolist() == out.alive.tolist()


# -- elements tracked in both codes ------------------------------------------------------
EXACT = [
    pytest.param(lambda: xt.Drift(length=1.3, model="exact"), id="drift"),
    pytest.param(lambda: xt.Quadrupole(length=0.3, k1=4.0, shift_x=1e-3, shift_y=-2e-3,
                                       rot_s_rad=0.2), id="quad"),
    pytest.param(lambda: xt.Bend(length=0.5, angle=0.1, k0_from_h=True, model="bend-kick-bend",
                                 edge_entry_angle=0.03, edge_exit_angle=0.02,
                                 edge_entry_fint=0.5, edge_entry_hgap=0.02,
                                 edge_exit_fint=0.4, edge_exit_hgap=0.03, rot_s_rad=0.1),
                 id="bend"),
    pytest.param(lambda: xt.Multipole(knl=[1e-3, 0.1, 2.0], ksl=[0, 0.1], hxl=1e-3,
                                      rot_s_rad=0.1), id="multipole"),
    pytest.param(lambda: xt.Multipole(knl=[1e-4], ksl=[-2e-4]), id="thin-kicker"),
    pytest.param(lambda: xt.UniformSolenoid(length=0.5, ks=1.4), id="solenoid"),
    pytest.param(lambda: xt.Cavity(voltage=3e6, frequency=400e6, lag=30.0), id="cavity"),
    pytest.param(lambda: xt.Cavity(voltage=3e6, frequency=400e6, lag=180.0), id="cavity-180"),
    pytest.param(lambda: xt.LimitRect(min_x=-1e-3, max_x=2e-3, min_y=-5e-4, max_y=5e-4),
                 id="limit-rect"),
    pytest.param(lambda: xt.LimitEllipse(a=1.5e-3, b=1e-3), id="limit-ellipse"),
    pytest.param(lambda: xt.Marker(), id="marker"),
    pytest.param(lambda: xt.DipoleEdge(k=0.2, e1=0.03, fint=0.5, hgap=0.02), id="dipole-edge"),
    pytest.param(lambda: xt.Bend(length=0.5, angle=0.1, k0=0.21, model="bend-kick-bend",
                                 edge_entry_active=0, edge_exit_active=0), id="bend-dg"),
]


@pytest.mark.parametrize("make", EXACT)
def test_exact_models_agree_to_rounding(make):
    line = xline([make()])
    with warnings.catch_warnings():
        warnings.simplefilter("error", LatticeFileWarning)
        ours = from_xsuite(line)
    p = beam()
    theirs = through_xsuite(line, p)
    mine = ours.track(p)
    assert deviation(theirs, mine) < 1e-14
    assert theirs.alive.tolist() == mine.alive.tolist()


APPROXIMATE = [  # (element, measured bound at 1e-3 amplitudes, what the warning says)
    pytest.param(lambda: xt.Drift(length=1.3), 3e-9, "expanded", id="expanded-drift"),
    pytest.param(lambda: xt.Bend(length=0.5, angle=0.1, k0_from_h=True), 1e-8, "model",
                 id="bend-default-model"),
    pytest.param(lambda: xt.Bend(length=0.5, angle=0.1, k0_from_h=True, k1=0.5), 3e-7, "k1",
                 id="bend-k1"),
    pytest.param(lambda: xt.Sextupole(length=0.2, k2=30.0), 1e-7, "integrator",
                 id="sextupole"),
    pytest.param(lambda: xt.Octupole(length=0.2, k3=300.0), 1e-9, "integrator",
                 id="octupole"),
    pytest.param(lambda: xt.Cavity(voltage=3e6, frequency=400e6, lag=30, length=1.0), 1e-6,
                 "thick", id="thick-cavity"),
]


@pytest.mark.parametrize("make, bound, topic", APPROXIMATE)
def test_approximate_models_warn_and_agree_to_measured_bound(make, bound, topic):
    line = xline([make()])
    with pytest.warns(LatticeFileWarning, match=topic if topic != "model" else "bend model"):
        ours = from_xsuite(line)
    p = beam()
    assert deviation(through_xsuite(line, p), ours.track(p)) < bound


def test_fodo_with_bends_sextupoles_and_cavity():
    line = Beamline([
        el.Quadrupole("qf", length=0.3, k1=1.2),
        el.Drift("d1", length=0.4),
        el.SBend("b1", length=1.0, angle=0.05, e1=0.025, e2=0.025),
        el.Sextupole("sf", length=0.1, k2=5.0, num_steps=4),
        el.Drift("d2", length=0.4),
        el.Quadrupole("qd", length=0.3, k1=-1.2),
        el.Drift("d1", length=0.4),
        el.SBend("b1", length=1.0, angle=0.05, e1=0.025, e2=0.025),
        el.RFCavity("cav", voltage=1e6, frequency=400e6, phi0=0.45),
        el.Marker("end"),
    ], name="fodo").with_reference(Reference(proton, P0C))
    with pytest.warns(LatticeFileWarning, match="Sextupole"):
        xsuite_line = to_xsuite(line)
    assert xsuite_line.element_names.count("d1") == 2
    p = beam()
    # Measured 1.3e-10: the sextupole's slicing (Bmad kick-drift-kick vs teapot).
    assert deviation(through_xsuite(xsuite_line, p), line.track(p)) < 5e-10


def test_line_round_trip():
    line = Beamline([
        el.Drift("d1", length=0.5),
        el.Quadrupole("qf", length=0.2, k1=1.5, tilt=0.01, x_offset=1e-4, y_offset=2e-4,
                      num_steps=3),
        el.SBend("b1", length=0.8, angle=0.05, e1=0.01, e2=0.02, fint=0.4, hgap=0.01,
                 fint_exit=0.3, hgap_exit=0.02, ref_tilt=0.02),
        el.Drift("d1", length=0.5),
        el.SBend("b2", length=0.8, angle=0.05, fringe_type="none"),
        el.Multipole("mp", knl=(0.001, 0.2, 3.0), ksl=(0.0, 0.1), tilt=0.1),
        el.HKicker("hk", kick=1e-4),
        el.VKicker("vk", kick=-1e-4),
        el.Kicker("k", hkick=1e-4, vkick=2e-4),
        el.Solenoid("sol", length=0.3, ks=0.4, x_offset=1e-4),
        el.RFCavity("cav", voltage=2e6, frequency=400e6, phi0=0.3),
        el.Aperture("ap", x_limit=0.01, y_limit=0.02, x_offset=1e-3),
        el.Aperture("ap2", shape="elliptical", x_limit=0.01, y_limit=0.02),
        el.Aperture("ap3", x_limit=0.01),
        el.Marker("m1"),
    ], name="line").with_reference(Reference(proton, P0C))
    with warnings.catch_warnings():
        warnings.simplefilter("error", LatticeFileWarning)
        back = from_xsuite(to_xsuite(line), name="line")
    assert back.reference == line.reference
    for a, b in zip(line, back):
        assert a.kind == b.kind and a.name == b.name
        for key, value in a.parameters().items():
            other = b.parameters()[key]
            if isinstance(value, tuple):
                assert np.allclose(value, other, rtol=1e-15, atol=0)
            elif isinstance(value, float):
                assert abs(value - other) <= 1e-15 * max(1.0, abs(value)), (a.name, key)
            else:
                assert value == other, (a.name, key)


def test_rbend_tracks_like_xsuite():
    line = Beamline([el.RBend("rb", length=0.5, angle=0.1, e1=0.01, e2=0.02)],
                    name="r").with_reference(Reference(proton, P0C))
    p = beam()
    assert deviation(through_xsuite(to_xsuite(line), p), line.track(p)) < 1e-14


def test_missing_counterparts_raise():
    with pytest.raises(LatticeError, match="CrabCavity 'e0'"):
        from_xsuite(xline([xt.CrabCavity(crab_voltage=1e6, frequency=400e6)]))
    with pytest.raises(LatticeError, match="shift_s"):
        from_xsuite(xline([xt.Quadrupole(length=0.3, k1=1.0, shift_s=0.1)]))
    with pytest.raises(LatticeError, match="LCavity 'lc'"):
        to_xsuite(Beamline([el.LCavity("lc", length=1.0, voltage=1e6, frequency=1e9)],
                           name="l"), p0c=P0C, mc2=proton.mc2)
    with pytest.raises(LatticeError, match="no reference"):
        to_xsuite(Beamline([el.Drift("d", length=1.0)], name="l"))


def test_curved_reference_of_a_thin_multipole_round_trips_and_tracks_like_xsuite():
    """A thin dipole multipole with a curved reference (MAD-X lrad, Xsuite length):
    beamtrack's ref_length becomes Xsuite's length and back, and both track alike."""
    line = Beamline([el.Multipole("mb", knl=(0.02, 0.1), ref_length=0.5),
                        el.Drift("d", length=1.0)],
                       reference=Reference(proton, 2e9))
    converted = to_xsuite(line)
    assert converted["mb"].length == 0.5
    assert from_xsuite(converted)["mb"].ref_length == 0.5
    coords = 1e-3 * np.random.default_rng(4).standard_normal((6, 5))
    particles = Particles(coords=coords, p0c=2e9, mc2=proton.mc2)
    expected = particles.to_xsuite()
    converted.build_tracker()
    converted.track(expected)
    got = line.track(particles)
    np.testing.assert_allclose(Particles.from_xsuite(expected).coords, got.coords,
                               rtol=0, atol=1e-14)
