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
import time
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


# ----------------------------------------------------------------------- real lattices
REAL = [
    pytest.param("elena/elena.madx", True, (), id="elena"),
    # LEIR's injection settings hold orbit bumps of up to 0.17 m; beamtrack's twiss is
    # about the reference orbit, MAD-X's about the closed orbit: compare with the
    # kickers off in both.
    pytest.param("leir/leir.madx", True, ("hkicker", "vkicker", "kicker"), id="leir",
                 marks=pytest.mark.xfail(strict=True, reason="tunes differ by 0.023 in both "
                                         "planes with the kickers off: cause not found yet")),
    pytest.param("h6_experimental_line/h6.madx", False, (), id="h6"),
    pytest.param("psb_injection/psb_injection.seq", True, (), id="psb", marks=pytest.mark.xfail(
        strict=True, reason="thin dipole multipoles with lrad: MAD-X adds the weak focusing "
        "-knl[0]^2/lrad, which beamtrack's Multipole lacks")),
]


@pytest.mark.parametrize(("path", "ring", "kickers_off"), REAL)
def test_real_lattice_twiss_matches_madx(path, ring, kickers_off):
    from beamtrack.tracking.optics import TwissInit

    file = DATA / path
    line = quiet_loads(file.read_text(), source=str(file))
    madx = cpymad().Madx(stdout=False)
    try:
        madx.chdir(str(file.parent))
        madx.input(f'call, file="{file.name}";')
        if path.endswith(".seq"):
            madx.input("use, sequence=psb;")
        if kickers_off:
            for element in line:
                if element.kind in ("HKicker", "VKicker", "Kicker"):
                    keys = ("kick",) if element.kind != "Kicker" else ("hkick", "vkick")
                    madx.input(f"{element.name}, {', '.join(k + '=0' for k in keys)};")
                    line = line.replace(element.name, **{k: 0.0 for k in keys})
            madx.input(f"use, sequence={line.name};")
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


def test_ten_thousand_elements_load_fast():
    parts = ["beam, particle=proton, pc=7000;", "kf = 0.1;"]
    parts += [f"q{i}: quadrupole, l=0.5, k1:=kf*{1 + i % 3};" for i in range(5000)]
    parts.append("s: sequence, l=10000, refer=centre;")
    parts += [f"q{i}, at={1 + 2 * i};" for i in range(5000)]
    parts.append("endsequence;")
    text = "\n".join(parts)
    start = time.perf_counter()
    line = madx_format.loads(text)
    elapsed = time.perf_counter() - start
    print(f"10,000-element sequence loaded in {elapsed:.2f} s")
    assert len(line) == 10_001 and elapsed < 2.0
