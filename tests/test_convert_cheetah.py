"""Cheetah converters: beams and lines, checked by tracking in both codes.

References are Cheetah's own tracking; nothing here compares beamtrack with itself
except the round trips.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

cheetah = pytest.importorskip("cheetah", reason="cheetah-accelerator not installed")
torch = pytest.importorskip("torch", reason="torch not installed")

import beamtrack.lattice.elements as el  # noqa: E402
from beamtrack.lattice.beamline import Beamline  # noqa: E402
from beamtrack.lattice.errors import LatticeError, LatticeFileWarning  # noqa: E402
from beamtrack.lattice.io.cheetah import from_cheetah, to_cheetah  # noqa: E402
from beamtrack.tracking.particles import Particles  # noqa: E402
from beamtrack.tracking.species import electron, proton  # noqa: E402

T = torch.tensor


def beam(scale: float = 1e-3, p0c: float = 1e7, mc2: float = electron.mc2, n: int = 6,
         seed: int = 1) -> Particles:
    rng = np.random.default_rng(seed)
    coords = rng.normal(size=(6, n)) * scale
    return Particles(coords=torch.tensor(coords), p0c=p0c, mc2=mc2)


def through_cheetah(element_or_segment, p: Particles) -> Particles:
    return Particles.from_cheetah(element_or_segment.track(p.to_cheetah()))


def deviation(a: Particles, b: Particles) -> float:
    return float((a.coords - b.coords).abs().max().detach())


# -- beams ------------------------------------------------------------------------------
def test_beam_round_trip_exact_with_lost_flags_and_gradient():
    coords = torch.tensor(np.random.default_rng(0).normal(size=(6, 7)) * 1e-3,
                          requires_grad=True)
    alive = torch.tensor([1, 1, 0, 1, 1, 0, 1], dtype=torch.bool)
    p = Particles(coords=coords, p0c=1e8, mc2=electron.mc2, s=2.5, alive=alive)
    b = p.to_cheetah()
    assert isinstance(b, cheetah.ParticleBeam) and b.species.name == "electron"
    assert b.survival_probabilities.tolist() == [1, 1, 0, 1, 1, 0, 1]
    q = Particles.from_cheetah(b)
    assert deviation(p, q) < 1e-18
    assert q.alive.tolist() == alive.tolist()
    assert float(q.s) == 2.5 and abs(float(q.p0c) - 1e8) < 1e-7
    (q.coords ** 2).sum().backward()
    assert torch.allclose(coords.grad, 2 * coords.detach(), rtol=1e-12)


def test_beam_batch_and_other_backend():
    p = Particles(coords=np.random.default_rng(2).normal(size=(3, 6, 4)) * 1e-3,
                  p0c=np.array([1e9, 2e9, 3e9]), mc2=proton.mc2)
    b = p.to_cheetah()
    assert tuple(b.particles.shape) == (3, 4, 7) and b.species.name == "proton"
    q = Particles.from_cheetah(b)
    assert np.max(np.abs(q.coords.numpy() - p.coords)) < 1e-18


def test_beam_conventions_agree_with_cheetah_drift():
    """Cheetah's exact (drift_kick_drift) drift and beamtrack's agree to rounding, so the
    tau/delta conversion is Cheetah's."""
    p = beam(scale=1e-2, p0c=3e6)
    drift = cheetah.Drift(T(1.7, dtype=torch.float64), tracking_method="drift_kick_drift")
    ours = el.Drift("d", length=1.7).track(p)
    assert deviation(through_cheetah(drift, p), ours) < 1e-15


# -- elements tracked in both codes ------------------------------------------------------
F64 = torch.float64


def t(x):
    return torch.tensor(x, dtype=F64)


EXACT = [
    pytest.param(lambda: cheetah.Quadrupole(t(0.3), k1=t(4.0), misalignment=t([1e-3, -2e-3]),
                                            tilt=t(0.2), num_steps=3,
                                            tracking_method="drift_kick_drift", dtype=F64),
                 id="quad-bmadx"),
    pytest.param(lambda: cheetah.Dipole(t(0.5), angle=t(0.1), dipole_e1=t(0.03),
                                        dipole_e2=t(0.02), gap=t(0.04), fringe_integral=t(0.5),
                                        tilt=t(0.1), tracking_method="drift_kick_drift", dtype=F64),
                 id="dipole-bmadx"),
    pytest.param(lambda: cheetah.TransverseDeflectingCavity(t(0.2), voltage=t(1e5),
                                                            phase=t(0.1), frequency=t(3e9),
                                                            tilt=t(0.3), dtype=F64), id="tdc"),
    pytest.param(lambda: cheetah.HorizontalCorrector(t(0.0), angle=t(1e-3), dtype=F64), id="hcor"),
    pytest.param(lambda: cheetah.Aperture(x_max=t(1e-3), y_max=t(2e-3), dtype=F64), id="aperture"),
]


@pytest.mark.parametrize("make", EXACT)
def test_exact_models_agree_to_rounding(make):
    element = make()
    p = beam()
    line = from_cheetah(cheetah.Segment([element], name="s"))
    assert deviation(through_cheetah(element, p), line.track(p)) < 1e-11
    out = line.track(p)
    assert out.alive.tolist() == through_cheetah(element, p).alive.tolist()


LINEAR = [
    pytest.param(lambda: cheetah.Drift(t(1.3), dtype=F64), id="drift"),
    pytest.param(lambda: cheetah.Quadrupole(t(0.3), k1=t(4.0), tilt=t(0.2), dtype=F64), id="quad"),
    pytest.param(lambda: cheetah.Dipole(t(0.5), angle=t(0.1), dipole_e1=t(0.03),
                                        dipole_e2=t(0.02), gap=t(0.04), fringe_integral=t(0.5),
                                        tilt=t(0.1), k1=t(0.5), dtype=F64), id="dipole"),
    pytest.param(lambda: cheetah.RBend(t(0.5), angle=t(0.1), rbend_e1=t(0.01), k1=t(0.2),
                                       dtype=F64),
                 id="rbend"),
    pytest.param(lambda: cheetah.Solenoid(t(0.5), k=t(0.7), dtype=F64), id="solenoid"),
]


@pytest.mark.parametrize("make", LINEAR)
def test_linear_maps_agree(make):
    """Cheetah's maps act on (tau, delta), beamtrack's on (z, pz): the first-order maps
    agree, so tracked particles differ at second order in the amplitude only."""
    element = make()
    line = from_cheetah(cheetah.Segment([element], name="s"))
    assert line.method == "linear" or next(iter(line)).method == "linear"
    big, small = (deviation(through_cheetah(element, beam(scale=s)), line.track(beam(scale=s)))
                  for s in (1e-4, 1e-5))
    assert big < 1e-11 and small < 1e-13
    assert 50 < big / small < 200  # quadratic in the amplitude: a second-order difference


def test_second_order_sextupole():
    element = cheetah.Sextupole(t(0.2), k2=t(30.0), dtype=F64)
    with pytest.warns(LatticeFileWarning, match="kick-drift-kick"):
        line = from_cheetah(cheetah.Segment([element], name="s"))
    assert line.method == "second_order"
    # Cheetah's map is the thick sextupole's, beamtrack's that of one kick-drift-kick
    # step: measured 4.6e-10 at 1e-4 amplitudes (1% of the sextupole kick), quadratic.
    big, small = (deviation(through_cheetah(element, beam(scale=s)), line.track(beam(scale=s)))
                  for s in (1e-4, 1e-5))
    assert big < 1e-9 and 50 < big / small < 200


def test_cavity_convention_by_tracking():
    """Cheetah phase [deg] = -360 phi0 and voltage sign: same reference energy gain;
    particles agree to the model difference (documented)."""
    for species_p0c, species in ((1e7, electron), (1e9, proton)):
        sp = cheetah.Species(species.name, dtype=F64)
        p = beam(p0c=species_p0c, mc2=float(sp.mass_eV), scale=1e-4)
        cav = cheetah.Cavity(t(1.0), voltage=t(3e6), phase=t(20.0), frequency=t(1.3e9),
                             dtype=F64)
        from beamtrack.lattice.reference import Reference

        with pytest.warns(LatticeFileWarning, match="Cavity"):
            line = from_cheetah(cheetah.Segment([cav], name="s"),
                                reference=Reference(species, species_p0c))
        theirs = Particles.from_cheetah(cav.track(p.to_cheetah(species)))
        ours = line.track(p)
        e_ours = math.hypot(float(ours.p0c), float(ours.mc2))
        assert abs(e_ours - float(cav.track(p.to_cheetah(species)).energy)) < 1e-9 * e_ours
        # Measured at 1e-4 amplitudes: transverse 5e-7, z 9e-7, pz 2e-5 (the models'
        # second-order longitudinal terms differ); a wrong phase sign gives 1e-2.
        difference = (theirs.coords - ours.coords).abs().max(dim=-1).values
        assert float(difference[:5].max()) < 2e-6 and float(difference[5]) < 5e-5


def test_nested_segments_and_flatten():
    inner = cheetah.Segment([cheetah.Drift(t(0.5), name="d2", dtype=F64),
                             cheetah.Quadrupole(t(0.2), k1=t(2.0), name="q2", dtype=F64)],
                            name="inner")
    seg = cheetah.Segment([cheetah.Drift(t(1.0), name="d1", dtype=F64), inner,
                           cheetah.Marker(name="m", dtype=F64)], name="outer")
    nested = from_cheetah(seg)
    assert nested.name == "outer" and isinstance(nested["inner"], Beamline)
    assert nested.names() == ["d1", "d2", "q2", "m"]
    flat = from_cheetah(seg, flatten=True)
    assert all(not isinstance(i, Beamline) for i in flat.items)
    p = beam()
    assert deviation(nested.track(p), flat.track(p)) == 0.0
    small = beam(scale=1e-5)  # linear maps: second-order coordinate differences only
    assert deviation(through_cheetah(seg, small), nested.track(small)) < 1e-14


def test_method_mapping():
    seg = cheetah.Segment([
        cheetah.Quadrupole(t(0.2), k1=t(2.0), name="q1", tracking_method="drift_kick_drift"),
        cheetah.Quadrupole(t(0.2), k1=t(2.0), name="q2", tracking_method="drift_kick_drift"),
        cheetah.Quadrupole(t(0.2), k1=t(2.0), name="q3", tracking_method="linear"),
        cheetah.Solenoid(t(0.2), k=t(1.0), name="sol", dtype=F64)], name="s")
    line = from_cheetah(seg)
    assert line.method == "bmad"
    assert [e.method for e in line] == [None, None, "linear", "linear"]
    back = to_cheetah(line)
    assert [e.tracking_method for e in back.elements[:3]] == ["drift_kick_drift"] * 2 + ["linear"]


# -- lines ---------------------------------------------------------------------------------
def _line(method: str) -> Beamline:
    items = [
        el.Drift("d1", length=0.5),
        el.Quadrupole("qf", length=0.2, k1=1.5, tilt=0.01, x_offset=1e-4, num_steps=2),
        el.SBend("b1", length=0.8, angle=0.05, e1=0.01, e2=0.02, fint=0.4, hgap=0.01,
                 ref_tilt=0.02, k1=0.1 if method == "linear" else 0.0),
        el.Monitor("bpm", x_offset=1e-4),
        el.Marker("m1"),
        el.Aperture("ap", x_limit=0.01, shape="elliptical", y_limit=0.02),
    ]
    if method != "bmad":
        items += [el.Solenoid("sol", length=0.3, ks=0.4), el.Sextupole("sx", length=0.1, k2=3.0),
                  el.HKicker("hk", kick=1e-4), el.VKicker("vk", kick=-1e-4),
                  el.Kicker("k", hkick=1e-4, vkick=2e-4),
                  el.Screen("scr", resolution=(64, 32), pixel_size=(1e-5, 2e-5))]
    items.append(el.CrabCavity("tdc", length=0.2, voltage=1e5, phi0=0.1, frequency=3e9,
                               method="bmad" if method != "bmad" else None))
    return Beamline(items, name="line", method=method)


@pytest.mark.parametrize("method", ["bmad", "linear"])
def test_line_round_trip(method):
    line = _line(method)
    seg = to_cheetah(line)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = from_cheetah(seg)
    assert back == line


def test_rbend_round_trip_to_rounding():
    line = Beamline([el.RBend("rb", length=0.5, angle=0.2, e1=0.01, e2=0.03)], name="r",
                    method="linear")
    back = from_cheetah(to_cheetah(line))
    (rb,) = list(back)
    assert isinstance(rb, el.RBend)
    assert abs(rb.length - 0.5) < 1e-15 and abs(rb.e1 - 0.01) < 1e-15 and rb.angle == 0.2


def test_segment_round_trip_tracks_the_same():
    p = beam()
    line = _line("bmad")
    seg = to_cheetah(line)
    assert deviation(through_cheetah(seg, p), line.track(p)) < 1e-11


def test_gradients_flow_through_to_cheetah():
    k1 = torch.tensor(1.5, dtype=F64, requires_grad=True)
    line = Beamline([el.Quadrupole("q", length=0.2, k1=k1), el.Drift("d", length=1.0)],
                    name="l", method="bmad")
    seg = to_cheetah(line)
    out = seg.track(beam().to_cheetah())
    out.particles[..., 0].sum().backward()
    assert k1.grad is not None and float(k1.grad) != 0.0


def test_missing_counterparts_raise():
    with pytest.raises(LatticeError, match="Undulator 'und'"):
        from_cheetah(cheetah.Segment([cheetah.Undulator(t(1.0), name="und")], name="s"))
    with pytest.raises(LatticeError, match="Octupole 'o1'"):
        to_cheetah(Beamline([el.Octupole("o1", length=0.1, k3=1.0)], name="l"))
    with pytest.raises(LatticeError, match="x_offset"):
        to_cheetah(Beamline([el.SBend("b", length=1.0, angle=0.1, x_offset=1e-3)], name="l"))


def test_thick_corrector_warns():
    with pytest.warns(LatticeFileWarning, match="exit"):
        from_cheetah(cheetah.Segment([cheetah.HorizontalCorrector(t(0.2), angle=t(1e-3))],
                                     name="s"))
