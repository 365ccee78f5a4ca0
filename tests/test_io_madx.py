"""The MAD-X reader and writer, against MAD-X itself (cpymad).

Conversions: each element kind's first-order map from the file equals MAD-X's RMATRIX
(:func:`madx.madx_matrix`, converted to Bmad coordinates); kicker orbits and the RF
cavity's energy kick against MAD-X tracking. Real public lattices
(``tests/data/lattices/madx``): beamtrack's Twiss of the loaded line against MAD-X's
TWISS of the same file. Round trips through the writer, against MAD-X and beamtrack.
Malformed input only ever raises ``LatticeFileError``.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from madx import madx_matrix

import beamtrack as bt
from beamtrack.lattice.errors import LatticeFileError, LatticeFileWarning
from beamtrack.lattice.io import madx as madx_format
from beamtrack.tracking import Particles

DATA = Path(__file__).parent / "data" / "lattices" / "madx"
P0C = 2.0e9


def quiet_loads(text: str, **kw) -> bt.Beamline:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LatticeFileWarning)
        return madx_format.loads(text, **kw)


def cpymad():
    return pytest.importorskip("cpymad.madx", reason="cpymad (MAD-X) not installed")


def single(definition: str, length: float, particle: str = "electron", p0c: float = P0C,
           seq_length: float | None = None) -> bt.Beamline:
    """A one-element MAD-X sequence read by beamtrack."""
    total = max(seq_length if seq_length is not None else length, 1e-9)
    return madx_format.loads(f"""
        beam, particle={particle}, pc={p0c / 1e9!r};
        {definition}
        seq: sequence, l={total!r}, refer=entry;
        e1, at=0;
        endsequence;
    """)


def linear_matrix(line: bt.Beamline) -> np.ndarray:
    r, _ = bt.transfer_map(line)
    return np.asarray(r)


# ----------------------------------------------------------------------- conversions
ELEMENTS = [
    ("e1: drift, l=1.3;", 1.3),
    ("e1: quadrupole, l=0.4, k1=1.7;", 0.4),
    ("e1: quadrupole, l=0.4, k1=-0.9, tilt=0.3;", 0.4),
    ("e1: quadrupole, l=0.4, k1s=0.8;", 0.4),
    ("e1: quadrupole, l=0.4, k1=0.5, k1s=-0.7, tilt=0.1;", 0.4),
    ("e1: sextupole, l=0.3, k2=3.0;", 0.3),
    ("e1: octupole, l=0.3, k3=30.0;", 0.3),
    ("e1: sbend, l=1.5, angle=0.12;", 1.5),
    ("e1: sbend, l=1.5, angle=0.12, k1=-0.3;", 1.5),
    ("e1: sbend, l=1.5, angle=0.12, e1=0.05, e2=-0.02, fint=0.5, hgap=0.03;", 1.5),
    ("e1: sbend, l=1.5, angle=0.12, e1=0.05, e2=0.03, fint=0.5, fintx=0.2, hgap=0.03;", 1.5),
    ("e1: sbend, l=1.5, angle=0.12, k1=0.2, tilt=0.4;", 1.5),
    ("e1: sbend, l=1.5, angle=0.12, tilt=pi/2, e1=0.1, fint=0.4, hgap=0.02;", 1.5),
    ("e1: rbend, l=1.5, angle=0.12;", 1.5 * 0.06 / math.sin(0.06)),
    ("e1: rbend, l=1.5, angle=0.12, e1=0.02, e2=0.04, k1=0.1, fint=0.5, hgap=0.02;",
     1.5 * 0.06 / math.sin(0.06)),
    ("e1: multipole, knl={0, 0.3};", 0.0),
    ("e1: multipole, ksl={0, 0.3};", 0.0),
    ("e1: multipole, knl={0, 0.3, 1.0}, ksl={0, 0.1}, tilt=0.2;", 0.0),
    ("e1: multipole, knl={0.01};", 0.0),
    ("e1: multipole, knl={0.05, 0.3}, lrad=0.6;", 0.0),
    ("e1: multipole, knl={-0.04}, ksl={0.03, 0.2}, lrad=0.8;", 0.0),
    ("e1: multipole, knl={0.05, 0.3, 2.0}, lrad=0.6, tilt=0.4;", 0.0),
    ("e1: dipedge, h=0.08, e1=0.05, fint=0.5, hgap=0.03;", 0.0),
    ("e1: dipedge, h=-0.1, e1=-0.12, fint=0.4, hgap=0.02, tilt=0.3;", 0.0),
    ("e1: solenoid, l=0.8, ks=0.9;", 0.8),
    ("e1: marker;", 0.0),
    ("e1: monitor;", 0.0),
    ("e1: instrument, l=0.5;", 0.5),
    ("e1: rcollimator, l=0.5, apertype=rectangle, aperture={0.01, 0.02};", 0.5),
]


@pytest.mark.parametrize(("particle", "p0c"), [("electron", 2e9), ("proton", 0.5e9)])
@pytest.mark.parametrize(("definition", "length"), ELEMENTS)
def test_element_map_matches_madx_rmatrix(definition, length, particle, p0c):
    cpymad()
    line = single(definition, length, particle, p0c)
    mine = linear_matrix(line)
    theirs = madx_matrix(definition, length, p0c, particle)
    np.testing.assert_allclose(mine, theirs, rtol=0, atol=2e-9)


def test_kicker_orbits_match_madx():
    madx = cpymad().Madx(stdout=False)
    text = """beam, particle=proton, pc=2;
        hk: hkicker, l=0.4, kick=1e-3; vk: vkicker, l=0, kick=-2e-3;
        tk: kicker, l=0.3, hkick=-5e-4, vkick=7e-4; tt: tkicker, l=0.2, hkick=3e-4;
        seq: sequence, l=4, refer=entry;
        hk, at=0.5; vk, at=1.5; tk, at=2; tt, at=3; endsequence;"""
    try:
        madx.input(text + "use, sequence=seq;")
        table = madx.twiss(betx=1, bety=1)
        theirs = [table[k][-1] for k in ("x", "px", "y", "py")]
    finally:
        madx.quit()
    line = madx_format.loads(text)
    out = line.track(Particles(coords=np.zeros((6, 1)), p0c=line.reference.p0c,
                               mc2=line.reference.mc2))
    mine = [float(getattr(out, k)[0]) for k in ("x", "px", "y", "py")]
    # kicks (px, py) exactly; positions to 1e-8 m: beamtrack's drifts are exact, MAD-X's
    # TWISS orbit through thick kickers paraxial (a difference of order L px^2 x)
    np.testing.assert_allclose(mine[1::2], theirs[1::2], rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(mine[::2], theirs[::2], rtol=0, atol=1e-8)


@pytest.mark.parametrize(("particle", "pc"), [("proton", 1.0), ("electron", 0.01)])
@pytest.mark.parametrize("lag", [0.0, 0.13, 0.4])
@pytest.mark.parametrize("t0", [0.0, 0.05])
def test_rfcavity_energy_kick_matches_madx(particle, pc, lag, t0):
    """MAD-X ``lag`` against Bmad ``phi0``: the energy change of a particle arriving
    early or late (MAD-X TWISS orbit with initial ``t``)."""
    text = f"""beam, particle={particle}, pc={pc};
        cav: rfcavity, l=0, volt=3, lag={lag}, freq=200;
        seq: sequence, l=1, refer=entry; cav, at=0.5; endsequence;"""
    madx = cpymad().Madx(stdout=False)
    try:
        madx.input(text + "use, sequence=seq;")
        pt_madx = madx.twiss(betx=1, bety=1, t=t0, pt=0).pt[-1]
        beta0 = float(madx.sequence.seq.beam.beta)
    finally:
        madx.quit()
    line = madx_format.loads(text)
    ref = line.reference
    coords = np.array([[0.0], [0.0], [0.0], [0.0], [beta0 * t0], [0.0]])
    pz = float(line.track(Particles(coords=coords, p0c=ref.p0c, mc2=ref.mc2)).pz[0])
    pt_mine = (math.hypot((1 + pz) * ref.p0c, ref.mc2) - ref.e_tot) / ref.p0c
    assert pt_mine == pytest.approx(pt_madx, rel=1e-9, abs=1e-15)


def _madx_end(text: str, sequence: str = "seq", **twiss) -> tuple[dict, np.ndarray, float]:
    """MAD-X's TWISS orbit and RMATRIX (Bmad coordinates) at the end of ``sequence``."""
    madx = cpymad().Madx(stdout=False)
    try:
        madx.input(text + f"use, sequence={sequence};")
        table = madx.twiss(betx=1, bety=1, rmatrix=True, **twiss)
        orbit = {k: table[k][-1] for k in ("x", "px", "y", "py", "t", "pt")}
        r_madx = np.array([[table[f"re{i}{j}"][-1] for j in range(1, 7)] for i in range(1, 7)])
        beta0 = float(madx.sequence[sequence].beam.beta)
    finally:
        madx.quit()
    t = np.diag([1.0, 1.0, 1.0, 1.0, 1.0 / beta0, beta0])
    return orbit, np.linalg.inv(t) @ r_madx @ t, beta0


@pytest.mark.parametrize(("definition", "length"), [
    ("e1: sbend, l=1.5, angle=0.12, k0=0.08+1e-4;", 1.5),
    ("e1: sbend, l=1.5, angle=0.12, k0=0.08-3e-4, e1=0.05, k1=0.1, tilt=0.3;", 1.5),
    ("e1: rbend, l=1.5, angle=0.12, k0=0.12/(1.5*0.06/sin(0.06))+2e-4;",
     1.5 * 0.06 / math.sin(0.06)),
])
def test_bend_k0_is_dg(definition, length):
    """``k0 != angle/l`` is a field error ``dg = k0 - angle/arc``: the orbit it steers
    against MAD-X's TWISS orbit (first order in dg; to 1e-5 relative, MAD-X's orbit
    coming from its second-order map). RMATRIX to 1e-4: about this off-axis orbit MAD-X's
    matrix includes the T terms of its expanded Hamiltonian, Bmad's the exact ones
    (they differ by O(h * orbit) ~ 2e-5)."""
    text = f"""beam, particle=proton, pc=2; {definition}
        seq: sequence, l={length!r}, refer=entry; e1, at=0; endsequence;"""
    orbit, theirs, beta0 = _madx_end(text)
    line = madx_format.loads(text)
    assert float(line["e1"].dg) != 0.0
    r, c = bt.transfer_map(line)
    c = np.asarray(c)
    expected = np.array([orbit["x"], orbit["px"], orbit["y"], orbit["py"], beta0 * orbit["t"]])
    assert np.abs(expected[:2]).min() > 5e-5
    np.testing.assert_allclose(c[:5], expected, rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(np.asarray(r), theirs, rtol=0, atol=1e-4)


@pytest.mark.parametrize("t0", [0.3, -0.7])
def test_rfcavity_harmon_gives_the_frequency_madx_uses(t0):
    """``harmon`` with no ``freq``: f = harmon beta c / (sequence length). Checked by the
    energy change of a particle arriving late or early (MAD-X TWISS with initial t)."""
    text = """beam, particle=proton, pc=0.8;
        cav: rfcavity, l=0, volt=3, lag=0.1, harmon=7;
        seq: sequence, l=11.3, refer=entry; cav, at=2; endsequence;"""
    orbit, _, beta0 = _madx_end(text, t=t0, pt=0)
    line = madx_format.loads(text)
    ref = line.reference
    # beta0 from beamtrack's masses and MAD-X's differ at 1e-9
    assert float(line["cav"].frequency) == pytest.approx(7 * beta0 * 299792458.0 / 11.3,
                                                         rel=1e-8)
    coords = np.array([[0.0], [0.0], [0.0], [0.0], [beta0 * t0], [0.0]])
    pz = float(line.track(Particles(coords=coords, p0c=ref.p0c, mc2=ref.mc2)).pz[0])
    pt_mine = (math.hypot((1 + pz) * ref.p0c, ref.mc2) - ref.e_tot) / ref.p0c
    assert abs(orbit["pt"]) > 1e-4
    assert pt_mine == pytest.approx(orbit["pt"], rel=1e-9)


def test_option_rbarc_false_reads_rbend_l_as_the_arc():
    definition = "e1: rbend, l=1.5, angle=0.12, k1=0.1, e1=0.02;"
    text = f"""option, rbarc=false; beam, particle=electron, pc=2; {definition}
        seq: sequence, l=1.5, refer=entry; e1, at=0; endsequence;"""
    _, theirs, _ = _madx_end(text)
    line = madx_format.loads(text)
    assert float(line["e1"].path_length) == pytest.approx(1.5, rel=1e-14)
    np.testing.assert_allclose(linear_matrix(line), theirs, rtol=0, atol=2e-9)


@pytest.mark.parametrize(("definition", "order"), [
    ("e1: sextupole, l=0.3, k2s=3.0;", 2),
    ("e1: sextupole, l=0.3, k2=-2.0, k2s=3.0, tilt=0.2;", 2),
    ("e1: octupole, l=0.3, k3s=40.0;", 3),
    ("e1: octupole, l=0.3, k3=25.0, k3s=-40.0;", 3),
])
def test_skew_sextupole_and_octupole_roll_sign(definition, order):
    """The kick of ``k2s``/``k3s`` at an off-axis orbit with no angle, against the TWISS
    orbit of MAD-X (which gives the first-order kick ``k L`` times the polynomial at
    the entrance orbit). The wrong roll would be off by up to 200%; the kick-drift-kick
    body's orbit moves inside the magnet by ``L * kick / 2``, which changes the kick by
    about 5e-4 relative here."""
    x0, y0 = 2e-3, -3e-3
    text = f"""beam, particle=proton, pc=2; {definition}
        seq: sequence, l=0.3, refer=entry; e1, at=0; endsequence;"""
    orbit, _, _ = _madx_end(text, x=x0, y=y0)
    line = madx_format.loads(text)
    ref = line.reference
    coords = np.array([[x0], [0.0], [y0], [0.0], [0.0], [0.0]])
    out = line.track(Particles(coords=coords, p0c=ref.p0c, mc2=ref.mc2))
    mine = np.array([float(out.px[0]), float(out.py[0])])
    theirs = np.array([orbit["px"], orbit["py"]])
    assert np.abs(theirs).min() > 1e-8
    np.testing.assert_allclose(mine, theirs, rtol=2e-3, atol=0)


# ----------------------------------------------------------------------- real lattices
#: LEIR's coupling: its two skew quadrupoles (MAD-X k1s, beamtrack k1 of a rolled quadrupole)
LEIR_SKEW_QUADS = (("er.qsk21", "k1s", "k1"), ("er.qsk22", "k1s", "k1"))

REAL = [
    pytest.param("elena/elena.madx", True, (), (), id="elena"),
    # LEIR's injection settings hold orbit bumps of up to 0.17 m; beamtrack's twiss is
    # about the reference orbit, MAD-X's about the closed orbit: compare with the
    # kickers off in both. Its skew quadrupoles (er.qsk21/22, k1s = +-0.0728 m^-2) couple
    # the planes: both codes give Edwards-Teng normal-mode tunes and betas (measured:
    # tunes 3e-10, betas 1.1e-10 relative); leir-uncoupled switches them off.
    pytest.param("leir/leir.madx", True, ("hkicker", "vkicker", "kicker"), (), id="leir"),
    pytest.param("leir/leir.madx", True, ("hkicker", "vkicker", "kicker"), LEIR_SKEW_QUADS,
                 id="leir-uncoupled"),
    pytest.param("h6_experimental_line/h6.madx", False, (), (), id="h6"),
    pytest.param("psb_injection/psb_injection.seq", True, (), (), id="psb"),
]


def _load_real(path: str, kickers_off: tuple[str, ...],
               switched_off: tuple[tuple[str, str, str], ...]):
    """The lattice read by beamtrack and by MAD-X (a cpymad ``Madx``, to be quit by the
    caller), with the kickers and the ``switched_off`` elements at zero strength in both."""
    file = DATA / path
    line = quiet_loads(file.read_text(), source=str(file))
    madx = cpymad().Madx(stdout=False)
    madx.chdir(str(file.parent))
    madx.input(f'call, file="{file.name}";')
    if path.endswith(".seq"):
        madx.input("use, sequence=psb;")
    if kickers_off or switched_off:
        for element in line:
            if kickers_off and element.kind in ("HKicker", "VKicker", "Kicker"):
                keys = ("kick",) if element.kind != "Kicker" else ("hkick", "vkick")
                madx.input(f"{element.name}, {', '.join(k + '=0' for k in keys)};")
                line = line.replace(element.name, **{k: 0.0 for k in keys})
        for name, madx_attribute, parameter in switched_off:
            madx.input(f"{name}, {madx_attribute}=0;")
            line = line.replace(name, **{parameter: 0.0})
        madx.input(f"use, sequence={line.name};")
    return line, madx


@pytest.mark.parametrize(("path", "ring", "kickers_off", "switched_off"), REAL)
def test_real_lattice_twiss_matches_madx(path, ring, kickers_off, switched_off):
    from beamtrack.tracking.optics import TwissInit

    line, madx = _load_real(path, kickers_off, switched_off)
    try:
        if ring:
            twiss = madx.twiss()
            mine = bt.twiss(line)
            table = {k: np.array(twiss[k]) for k in ("s", "betx", "bety")}
            print(path, "tune deviations", float(mine.tune_x) - twiss.summary.q1,
                  float(mine.tune_y) - twiss.summary.q2)
            assert float(mine.tune_x) == pytest.approx(twiss.summary.q1, abs=1e-6)
            assert float(mine.tune_y) == pytest.approx(twiss.summary.q2, abs=1e-6)
        else:
            twiss = madx.twiss(betx=10, bety=12, alfx=0.5, alfy=-0.3)
            table = {k: np.array(twiss[k]) for k in ("s", "betx", "bety")}
            mine = bt.twiss(line, TwissInit(beta_x=10, beta_y=12, alpha_x=0.5, alpha_y=-0.3))
    finally:
        madx.quit()
    s = np.asarray(mine.s)
    assert s[-1] == pytest.approx(table["s"][-1], abs=1e-9)
    # compare where both list a point (MAD-X lists its start/end markers too)
    index = np.clip(np.searchsorted(table["s"], s[1:] - 1e-9), 0, len(table["s"]) - 1)
    matched = np.abs(table["s"][index] - s[1:]) < 1e-9
    assert matched.mean() > 0.9
    for ours, theirs in (("beta_x", "betx"), ("beta_y", "bety")):
        deviation = np.asarray(getattr(mine, ours))[1:][matched] / table[theirs][index[matched]]
        print(path, ours, "max relative deviation", np.abs(deviation - 1).max())
        np.testing.assert_allclose(deviation, 1.0, rtol=0, atol=1e-6)


def test_leir_one_turn_map_matches_madx():
    """The coupled LEIR ring (skew quadrupoles and solenoids on, kickers off): one-turn
    matrix against MAD-X's RMATRIX, and its eigenmode tunes against MAD-X's TWISS tunes
    (which are eigenmode tunes for a coupled ring)."""
    line, madx = _load_real("leir/leir.madx", ("hkicker", "vkicker", "kicker"), ())
    try:
        summary = madx.twiss().summary
        tunes = (summary.q1, summary.q2)
        table = madx.twiss(betx=1, bety=1, rmatrix=True)
        r_madx = np.array([[table[f"re{i}{j}"][-1] for j in range(1, 7)] for i in range(1, 7)])
        beta0 = float(madx.sequence.leir.beam.beta)
    finally:
        madx.quit()
    t = np.diag([1.0, 1.0, 1.0, 1.0, 1.0 / beta0, beta0])
    theirs = np.linalg.inv(t) @ r_madx @ t
    mine = linear_matrix(line)
    assert np.abs(mine[:4, 2:4]).max() > 0.1  # coupled
    np.testing.assert_allclose(mine, theirs, rtol=0, atol=2e-8)
    angles = np.abs(np.angle(np.linalg.eigvals(mine[:4, :4]))) / (2 * np.pi)
    folded = np.sort(np.unique(np.round(angles, 10)))
    expected = np.sort([min(q % 1, 1 - q % 1) for q in tunes])
    np.testing.assert_allclose(folded, expected, rtol=0, atol=1e-6)


SOLENOID_KS = [
    # MAD-X evaluates a thick solenoid's ks := ... once, when its definition is read
    ("a = 0.1; s1: solenoid, l=0.5, ks := a; a = 0.9;", True),
    ("s1: solenoid, l=0.5, ks := a; a = 0.9;", True),
    ("p: solenoid, ks := a; s1: p, l=0.5; a = 0.3;", True),
    ("a = 0.2; p: solenoid, l=0.5, ks := a; s1: p, ks := 2*a; a = 0.3;", True),
    # ... but not in a later attribute change
    ("a = 0.1; s1: solenoid, l=0.5, ks := a; s1, ks := 3*a; a = 0.4;", False),
    ("s1: solenoid, l=0.5, ks = 0.7;", False),
]


@pytest.mark.parametrize(("definitions", "frozen"), SOLENOID_KS)
def test_solenoid_ks_evaluated_when_madx_does(definitions, frozen):
    """LEIR's compensation solenoids (``ks := msolc``, defined before ``msolc``) are off
    in MAD-X for this reason; beamtrack reads them as MAD-X does, with a warning."""
    text = f"""beam, particle=proton, pc=0.5; {definitions}
        seq: sequence, l=1, refer=entry; s1, at=0.2; endsequence;"""
    madx = cpymad().Madx(stdout=False)
    try:
        madx.input(text + "use, sequence=seq;")
        ks_madx = madx.elements["s1"].ks
        table = madx.twiss(betx=1, bety=1, rmatrix=True)
        r_madx = np.array([[table[f"re{i}{j}"][-1] for j in range(1, 7)] for i in range(1, 7)])
        beta0 = float(madx.sequence.seq.beam.beta)
    finally:
        madx.quit()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LatticeFileWarning)
        line = madx_format.loads(text)
    warned = any("evaluated when" in str(w.message) for w in caught)
    assert line["s1"].ks == pytest.approx(ks_madx, rel=1e-15, abs=0)
    assert warned == frozen  # each frozen case has a different value at the end
    t = np.diag([1.0, 1.0, 1.0, 1.0, 1.0 / beta0, beta0])
    np.testing.assert_allclose(linear_matrix(line), np.linalg.inv(t) @ r_madx @ t, rtol=0,
                               atol=2e-9)


def test_gaps_up_to_a_micrometre_get_no_drift_as_in_madx():
    text = """beam, particle=proton, pc=2; a: marker; q: quadrupole, l=1, k1=0.1;
        s: sequence, l=5, refer=entry; a, at=1; q, at=1.0000004; endsequence;"""
    madx = cpymad().Madx(stdout=False)
    try:
        madx.input(text + "use, sequence=s;")
        twiss = madx.twiss(betx=1, bety=1)
        s_madx = np.array(twiss.s)
        names = [n.split(":")[0] for n in twiss.name]
    finally:
        madx.quit()
    line = madx_format.loads(text)
    assert [e.kind for e in line] == ["Drift", "Marker", "Quadrupole", "Drift"]
    assert "q" in names and names.index("q") == names.index("a") + 1
    assert float(line.length) == pytest.approx(s_madx[-1], abs=1e-12)


# ----------------------------------------------------------------------- round trips
RING = """beam, particle=electron, pc=3;
qf: quadrupole, l=0.3, k1=0.9; qd: quadrupole, l=0.3, k1=-0.9;
b: sbend, l=2.0, angle=2*pi/16, k1=-0.05, e1=0.02, e2=0.03, fint=0.4, hgap=0.02;
s1: sextupole, l=0.1, k2=1.0; m: marker;
cell: line=(qf, m, b, s1, qd, b);
ring: line=(8*cell);
"""


def test_round_trip_tracks_identically():
    line = madx_format.loads(RING)
    again = madx_format.loads(madx_format.dumps(line))
    assert again.reference == line.reference
    coords = np.random.default_rng(1).normal(0, 1e-3, (6, 20))
    p = Particles(coords=coords, p0c=line.reference.p0c, mc2=line.reference.mc2)
    np.testing.assert_allclose(again.track(p).coords, line.track(p).coords, rtol=0, atol=1e-15)
    assert again.occurrences("qf") == tuple(range(0, len(again), len(again) // 8))[:8] or \
        len(again.occurrences("qf")) == 8


def test_written_ring_has_madx_twiss_equal_to_beamtrack(tmp_path):
    line = madx_format.loads(RING)
    path = tmp_path / "ring.madx"
    bt.save(line, path)
    madx = cpymad().Madx(stdout=False)
    try:
        madx.call(str(path))
        twiss = madx.twiss()
        q1, q2 = twiss.summary.q1, twiss.summary.q2
        betx = np.array(twiss["betx"])
    finally:
        madx.quit()
    mine = bt.twiss(line)
    assert float(mine.tune_x) == pytest.approx(q1, abs=1e-6)
    assert float(mine.tune_y) == pytest.approx(q2, abs=1e-6)
    assert np.asarray(mine.beta_x)[-1] == pytest.approx(betx[-1], rel=1e-6)


def test_writer_dg_ref_tilt_and_ref_length_round_trip(tmp_path):
    """``dg`` is written as ``k0``, ``ref_tilt`` as the bend's ``tilt`` and a multipole's
    ``ref_length`` as ``lrad``: MAD-X's RMATRIX of the written file equals beamtrack's
    map, and reading it back tracks identically."""
    line = bt.Beamline([
        bt.Drift("d1", length=0.4),
        bt.SBend("b1", length=1.2, angle=0.1, dg=2e-4, e1=0.03, ref_tilt=0.2),
        bt.Quadrupole("q1", length=0.3, k1=0.8),
        bt.RBend("b2", length=1.0, angle=-0.08, dg=-1e-4),
        bt.Multipole("m1", knl=(0.05, 0.2), ksl=(0.02,), ref_length=0.6),
        bt.Drift("d2", length=0.5),
    ], name="ring", reference=madx_format.loads("beam, particle=proton, pc=2;"
                                                "a: marker; s: sequence, l=1; a, at=0.5;"
                                                "endsequence;").reference)
    text = madx_format.dumps(line)
    assert "k0=" in text and "lrad=0.6" in text and "tilt=0.2" in text
    again = madx_format.loads(text)
    assert float(again["b1"].dg) == pytest.approx(2e-4, rel=1e-9)
    assert float(again["b2"].dg) == pytest.approx(-1e-4, rel=1e-9)
    assert float(again["m1"].ref_length) == 0.6 and float(again["b1"].ref_tilt) == 0.2
    coords = np.random.default_rng(2).normal(0, 1e-3, (6, 10))
    p = Particles(coords=coords, p0c=line.reference.p0c, mc2=line.reference.mc2)
    np.testing.assert_allclose(again.track(p).coords, line.track(p).coords, rtol=0,
                               atol=1e-15)
    # MAD-X reads the same optics: the matrix without the field errors (MAD-X's matrix
    # about the orbit they steer differs at O(h * orbit), see test_bend_k0_is_dg), and
    # the orbit with them
    plain = line.replace("b1", dg=0.0).replace("b2", dg=0.0)
    _, theirs, _ = _madx_end(madx_format.dumps(plain), sequence="ring")
    np.testing.assert_allclose(linear_matrix(plain), theirs, rtol=0, atol=2e-9)
    orbit, _, _ = _madx_end(text, sequence="ring")
    _, c = bt.transfer_map(line)
    assert np.abs(np.asarray(c)[:4]).min() > 1e-5
    # MAD-X's orbit from its second-order maps: O(orbit^2) ~ 1e-8 apart
    np.testing.assert_allclose(np.asarray(c)[:4], [orbit[k] for k in ("x", "px", "y", "py")],
                               rtol=1e-4, atol=1e-8)


def test_writer_refuses_a_rolled_curved_multipole():
    line = bt.Beamline([bt.Multipole("m1", knl=(0.05,), ref_length=0.6, tilt=0.1)])
    with pytest.raises(LatticeFileError, match="m1"):
        madx_format.dumps(line)
    # without the dipole term the roll is harmless
    text = madx_format.dumps(bt.Beamline([bt.Multipole("m2", knl=(0.0, 0.3), ref_length=0.6,
                                                       tilt=0.1)]))
    assert "lrad=0.6" in text


# ----------------------------------------------------------------------- language
def test_language_features():
    text = """
    /* block
       comment */ a = 2; b := a*3;  ! deferred
    q: quadrupole, l=0.5, k1:=b/10;   // b read at the end
    q2: q, k1=-q->k1;
    d: drift, l=1;
    c: line=(q, d, -(q2, d), 2*(d));
    twiss;
    a = 3;
    use, period=c;
    """
    with pytest.warns(LatticeFileWarning, match="twiss"):
        line = madx_format.loads(text)
    assert line.names() == ["q", "d", "d", "q2", "d", "d"]
    assert line["q"].k1 == pytest.approx(0.9)
    assert line["q2"].k1 == pytest.approx(-0.6)  # '=' read q->k1 when a was 2


def test_negative_gap_names_both_elements():
    text = """a: drift, l=1; b: drift, l=1;
    s: sequence, l=3, refer=entry; a, at=0; b, at=0.5; endsequence;"""
    with pytest.raises(LatticeFileError, match="'b'.*'a'") as info:
        madx_format.loads(text)
    assert info.value.line == 2


def test_call_outside_the_root_is_refused(tmp_path):
    inner = tmp_path / "inner"
    inner.mkdir()
    (tmp_path / "secret.madx").write_text("q: quadrupole, l=1;")
    (inner / "part.seq").write_text("q: quadrupole, l=1, k1=0.2;")
    (inner / "top.madx").write_text(
        'call, file="part.seq"; s: sequence, l=2; q, at=1; endsequence;')
    assert bt.load(inner / "top.madx")["q"].k1 == 0.2
    (inner / "bad.madx").write_text('call, file="../secret.madx";')
    with pytest.raises(LatticeFileError, match="outside") as info:
        bt.load(inner / "bad.madx")
    assert info.value.line == 1 and info.value.column == 1


VALID = RING + "use, period=ring;\n"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_malformed_input_raises_only_lattice_file_errors(data):
    if data.draw(st.booleans()):
        tokens = st.sampled_from([*"abqd:=;,(){}-+*/^!\"'0123456789. \n", "line", "sequence",
                                  "endsequence", "quadrupole", "at=", "l="])
        text = "".join(data.draw(st.lists(tokens, max_size=40)))
    else:
        start = data.draw(st.integers(0, len(VALID)))
        stop = data.draw(st.integers(start, min(len(VALID), start + 10)))
        insert = data.draw(st.text(alphabet="();,=:-*{}\"'!0x", max_size=4))
        text = VALID[:start] + insert + VALID[stop:]
    try:
        quiet_loads(text, source="fuzz.madx")
    except LatticeFileError as error:
        assert error.file is not None


def test_ten_thousand_elements_load():
    """A 10,000-element sequence loads (its load time is measured in
    benchmarks/lattice_loading.py, never asserted here)."""
    parts = ["beam, particle=proton, pc=7000;", "kf = 0.1;"]
    parts += [f"q{i}: quadrupole, l=0.5, k1:=kf*{1 + i % 3};" for i in range(5000)]
    parts.append("s: sequence, l=10000, refer=centre;")
    parts += [f"q{i}, at={1 + 2 * i};" for i in range(5000)]
    parts.append("endsequence;")
    text = "\n".join(parts)
    line = madx_format.loads(text)
    assert len(line) == 10_001
    assert sum(e.kind == "Quadrupole" for e in line) == 5000
    assert float(line.length) == pytest.approx(10_000.0, rel=1e-15)
