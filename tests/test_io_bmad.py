"""Bmad lattice files: element and attribute mapping checked against physics and
MAD-X, the writer's round trip, and malformed input."""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

import beamtrack as bt
from beamtrack.lattice.errors import LatticeFileError, LatticeFileWarning
from beamtrack.lattice.io import bmad

P0C = 1.0e9
DATA = Path(__file__).parent / "data" / "lattices" / "bmad"


def read(text: str, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LatticeFileWarning)
        return bmad.loads(text, **kwargs)


def particles(n: int = 7, p0c: float = P0C, mc2: float = bt.electron.mc2, seed: int = 1):
    rng = np.random.default_rng(seed)
    scale = np.array([1e-3, 1e-4, 1e-3, 1e-4, 1e-3, 1e-3])[:, None]
    c = rng.normal(size=(6, n)) * scale
    return bt.Particles(*c, p0c=p0c, mc2=mc2)


def test_sbend_g_times_l_is_the_angle():
    line = read("b: sbend, l = 2, g = 0.01, e1 = 0.005\nl: line = (b)\n")
    b = line["b"]
    assert b.kind == "SBend"
    assert b.angle == pytest.approx(0.02, rel=1e-15)
    assert b.length == 2.0 and b.e1 == 0.005
    assert b.fringe_type == "basic_bend"  # Bmad's default edge model


def test_rbend_length_is_the_chord_and_l_arc_the_arc():
    g, chord = 0.2, 1.5
    line = read(f"r: rbend, l = {chord}, g = {g}\nr2: rbend, l_arc = 1.5, angle = 0.3\n"
                "x: line = (r, r2)\n")
    arc = 2 * math.asin(chord * g / 2) / g  # Bmad manual: l(internal) = 2 asin(l_chord g/2)/g
    assert line["r"].kind == "RBend" and line["r"].length == chord
    assert line["r"].angle == pytest.approx(g * arc, rel=1e-14)
    assert float(line["r"].path_length) == pytest.approx(arc, rel=1e-14)
    assert line["r2"].length == pytest.approx(1.5 * math.sin(0.15) / 0.15, rel=1e-14)
    assert float(line["r2"].path_length) == pytest.approx(1.5, rel=1e-14)


def test_bare_tilt_and_fint_take_bmads_defaults():
    line = read("q: quadrupole, l = 0.1, k1 = 1, tilt\ns: sextupole, l = 0.1, tilt\n"
                "b: sbend, l = 1, angle = 0.1, fint, hgap = 0.01\nx: line = (q, s, b)\n")
    assert line["q"].tilt == pytest.approx(math.pi / 4)
    assert line["s"].tilt == pytest.approx(math.pi / 6)
    assert line["b"].fint == 0.5 and line["b"].fint_exit is None  # fintx = fint


def test_bend_names_and_fringe_types():
    line = read("b: sbend, l = 1, angle = 0.1, fintx = 0.3, hgapx = 0.02, roll = 0.01, "
                "ref_tilt = 0.5, fringe_type = hard_edge_only, dg = 0.001\nx: line = (b)\n")
    b = line["b"]
    assert (b.fint_exit, b.hgap_exit, b.tilt, b.ref_tilt) == (0.3, 0.02, 0.01, 0.5)
    assert b.fringe_type == "hard_edge"
    assert b.dg == 0.001


def test_tilt_on_a_bend_is_an_error_as_in_bmad():
    with pytest.raises(LatticeFileError, match="ref_tilt"):
        read("b: sbend, l = 1, angle = 0.1, tilt = 0.1\nx: line = (b)\n")


def test_proton_reference_from_e_tot():
    line = read("parameter[particle] = proton\nbeginning[e_tot] = 2e9\n"
                "d: drift, l = 1\nx: line = (d)\n")
    mc2 = bt.proton.mc2
    assert line.reference.species.name == "proton"
    assert line.reference.p0c == pytest.approx(math.sqrt(2e9**2 - mc2**2), rel=1e-15)
    # parameter[p0c] and MAD's beam statement (GeV)
    assert read("parameter[p0c] = 3e9\nd: drift\nx: line = (d)\n").reference.species.name \
        == "positron"  # Bmad's default particle
    assert read("beam, particle = electron, energy = 1.5\nd: drift\nx: line = (d)\n"
                ).reference.e_tot == pytest.approx(1.5e9)
    assert read("d: drift\nx: line = (d)\n").reference is None


def test_variables_functions_constants_and_attribute_references():
    line = read("a = 3\nb = sqrt(a^2 + 16) * twopi / (2*pi)\n"
                "q1: quad, l = b/10, k1 = 2 ! comment\nq2: q1, k1 = -q1[k1]*q1[l]\n"
                "q1[k1] = 7; d: drift, l = m_electron/c_light*1e3\nx: line = (q1, q2, d)\n")
    assert line["q1"].length == pytest.approx(0.5)
    assert line["q1"].k1 == 7.0  # set after definition
    assert line["q2"].k1 == pytest.approx(-1.0)  # immediate evaluation (Bmad)
    assert line["d"].length == pytest.approx(bt.electron.mc2 / 299792458.0 * 1e3)
    with pytest.raises(LatticeFileError, match="redef"):
        read("a = 1\na = 2\nd: drift\nx: line = (d)\n")
    assert read("a = 1\nredef: a = 2\nd: drift, l = a\nx: line = (d)\n")["d"].length == 2


def test_lines_repetition_reflection_and_use():
    line = read("a: drift, l=1\nb: marker\nc: quadrupole, l=0.1\n"
                "s: line = (a, b)\nt: line = (2*s, -s, c)\nu: line = (c)\nuse, t\n")
    assert line.names() == ["a", "b", "a", "b", "b", "a", "c"]
    assert line.occurrences("a") == (0, 2, 5)
    assert read("a: drift\nl1: line = (a)\nl2: line = (a, a)\n").name == "l2"
    assert len(read("a: drift\nl1: line = (a)\nl2: line = (a, a)\n", sequence="l1")) == 1


def test_multipole_tn_and_ab_multipole_follow_bmads_field_definition():
    # Bmad: b_n + i a_n = (KnL + i KnSL) exp(-i (n+1) Tn) / n!; a normal quadrupole
    # rotated by Tn = pi/4 is a skew quadrupole with dpy = -K1L x (thin lens).
    line = read("m: multipole, k1l = 0.02, t1\nab: ab_multipole, b2 = 0.5, a1 = 0.01\n"
                "x: line = (m, ab)\n")
    p = bt.Particles(np.array([1e-3]), *np.zeros((5, 1)), p0c=P0C, mc2=bt.electron.mc2)
    out = bt.Beamline([line["m"]]).track(p)
    assert float(out.py[0]) == pytest.approx(-0.02 * 1e-3, rel=1e-12)
    assert abs(float(out.px[0])) < 1e-18
    assert line["ab"].knl[2] == pytest.approx(1.0)  # 2! b2
    assert line["ab"].ksl[1] == pytest.approx(0.01)  # 1! a1


def test_cavities_gradient_and_phases():
    line = read("lc: lcavity, l = 2, gradient = 1e7, phi0 = 0.1, phi0_err = 0.05, "
                "rf_frequency = 1.3e9\nrf: rfcavity, l = 1, voltage = 1e6, phi0 = 0.25, "
                "rf_frequency = 5e8\nx: line = (lc, rf)\n")
    assert line["lc"].voltage == pytest.approx(2e7) and line["lc"].phi0 == pytest.approx(0.15)
    assert line["lc"].frequency == 1.3e9
    assert line["rf"].kind == "RFCavity" and line["rf"].phi0 == 0.25


def test_field_attributes_use_the_reference_momentum():
    # The Bmad tutorial's cavity.bmad idea: b1_gradient = p0c * k1 / c_light gives k1.
    line = read("parameter[particle] = electron\nbeginning[p0c] = 1e8\n"
                "q1: quad, l = 0.1, k1 = 0.14\n"
                "q2: quad, l = 0.1, b1_gradient = -beginning[p0c] * q1[k1] / c_light\n"
                "x: line = (q1, q2)\n")
    assert line["q2"].k1 == pytest.approx(0.14, rel=1e-14)  # electron: q = -1
    with pytest.raises(LatticeFileError, match="reference momentum"):
        read("q: quad, l = 0.1, b1_gradient = 2\nx: line = (q)\n")


def test_collimators_kickers_solenoid_and_unsupported_kinds():
    text = ("e: ecollimator, l = 0.5, x_limit = 0.01, y_limit = 0.02\n"
            "r: rcollimator, x1_limit = 0.003, x2_limit = 0.003\n"
            "h: hkicker, l = 0.1, kick = 1e-3\nk: kicker, hkick = 1e-4, vkick = -2e-4\n"
            "s: solenoid, l = 0.3, ks = 0.5\nw: wiggler, l = 2\nbpm: instrument\n"
            "x: line = (e, r, h, k, s, w, bpm)\n")
    with pytest.warns(LatticeFileWarning, match="wiggler"):
        line = bmad.loads(text)
    assert line["e"].kind == "Collimator" and line["e"].shape == "elliptical"
    assert line["r"].kind == "Aperture" and line["r"].x_limit == 0.003
    assert line["h"].kick == 1e-3 and line["k"].vkick == -2e-4 and line["s"].ks == 0.5
    assert line["w"].kind == "Drift" and line["w"].length == 2
    assert line["bpm"].kind == "Monitor"


def test_unknown_attribute_warns_with_its_location():
    with pytest.warns(LatticeFileWarning, match=r"<string>:1:\d+: .*'q'.*frobnicate"):
        bmad.loads("q: quadrupole, l = 1, frobnicate = 3\nx: line = (q)\n")


def test_call_is_relative_and_confined_to_the_root(tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "elements.bmad").write_text("q: quadrupole, l = 0.2, k1 = 1\n")
    (tmp_path / "main.bmad").write_text("call, file = sub/elements.bmad\nx: line = (q)\n")
    assert bmad.load(tmp_path / "main.bmad")["q"].k1 == 1
    (tmp_path / "evil.bmad").write_text("call, file = ../outside.bmad\nx: line = (q)\n")
    (tmp_path.parent / "outside.bmad").write_text("q: quadrupole, l = 0.2\n")
    with pytest.raises(LatticeFileError, match="outside the allowed folder") as info:
        bmad.load(tmp_path / "evil.bmad")
    assert info.value.line == 1 and info.value.file == os.fspath(tmp_path / "evil.bmad")


def test_errors_carry_file_line_and_column():
    with pytest.raises(LatticeFileError) as info:
        bmad.loads("d: drift, l = 1\nq: quadrupole, l = 1 +* 2\nx: line = (d)\n",
                   source="f.bmad")
    assert (info.value.file, info.value.line) == ("f.bmad", 2)
    assert info.value.column >= 20
    with pytest.raises(LatticeFileError, match="no element or line"):
        bmad.loads("d: drift\nx: line = (d, e)\n")
    with pytest.raises(LatticeFileError, match="contains itself"):
        bmad.loads("d: drift\nx: line = (d, y)\ny: line = (x)\n")


ROUND_TRIP = """
parameter[particle] = proton
beginning[p0c] = 3.7e9
d1: drift, l = 0.45
qf: quadrupole, l = 0.31, k1 = 1.13, tilt = 0.01, x_offset = 1e-4
qd: quadrupole, l = 0.31, k1 = -1.07, num_steps = 3
b1: sbend, l = 1.7, angle = 0.071, e1 = 0.02, e2 = 0.03, k1 = -0.02, fint = 0.4,
    hgap = 0.015, fintx = 0.3, roll = 0.001, dg = 1e-4
b2: rbend, l = 1.2, angle = -0.05, fringe_type = linear_edge
sx: sextupole, l = 0.2, k2 = 3.1
oc: octupole, l = 0.1, k3 = 40
m1: multipole, k2l = 0.3, k1sl = 0.01
hk: hkicker, l = 0.1, kick = 2e-5
vk: vkicker, kick = -1e-5
kk: kicker, hkick = 1e-5, vkick = 3e-6
so: solenoid, l = 0.5, ks = 0.2
rf: rfcavity, l = 0.4, voltage = 2e5, phi0 = 0.1, rf_frequency = 5e8
co: rcollimator, l = 0.2, x_limit = 0.02, y_limit = 0.01
ap: ecollimator, x_limit = 0.03, y_limit = 0.02
mk: marker
bpm: monitor, x_offset = 1e-3
cell: line = (qf, d1, b1, d1, qd, d1, sx, oc, m1)
ring: line = (2*cell, b2, hk, vk, kk, so, rf, co, ap, mk, bpm, -cell)
use, ring
"""


def test_write_then_read_tracks_identically(tmp_path):
    line = read(ROUND_TRIP)
    path = tmp_path / "out.bmad"
    bt.save(line, path)
    back = bt.load(path)
    assert back.names() == line.names()
    assert back.reference == line.reference
    for a, b in zip(line, back):
        assert a == b, (a, b)
    p = particles(20, p0c=line.reference.p0c, mc2=line.reference.mc2)
    out_a, out_b = line.track(p), back.track(p)
    np.testing.assert_allclose(np.asarray(out_b.coords), np.asarray(out_a.coords),
                               rtol=0, atol=1e-15)
    assert bmad.dumps(back) == bmad.dumps(line)
    assert path.read_text().count("qf: quadrupole") == 1  # one definition, used 4 times


def test_writer_keeps_nested_lines_and_refuses_what_bmad_cannot_hold():
    d = bt.Drift("d", length=1.0)
    cell = bt.Beamline([d, bt.Quadrupole("q", length=0.1, k1=1.0)], name="cell")
    text = bmad.dumps(bt.Beamline([cell, d, cell], name="top"))
    assert "cell: line = (d, q)" in text and "top: line = (cell, d, cell)" in text
    assert read(text).names() == ["d", "q", "d", "d", "q"]
    with pytest.raises(LatticeFileError, match="valid Bmad name"):
        bmad.dumps(bt.Beamline([bt.Drift("a b", length=1.0)]))
    with pytest.raises(LatticeFileError, match="no element"):
        bmad.dumps(bt.Beamline([bt.LinearMap("m", r=np.eye(6))]))


TRANSFER_LINE = """
parameter[geometry] = open
parameter[particle] = electron
beginning[e_tot] = 1e9
d: drift, l = 0.5
qf: quadrupole, l = 0.3, k1 = 1.6
qd: quad, l = 0.3, k1 = -1.5
b: sbend, l = 1.0, angle = 0.08, e1 = 0.04, e2 = 0.04, fringe_type = linear_edge
r: rbend, l = 0.8, angle = -0.05, fringe_type = linear_edge
s: sextupole, l = 0.2, k2 = 2.0
lat: line = (qf, d, b, d, qd, d, s, d, r, d, qf, d, qd)
use, lat
"""

MADX_TRANSFER_LINE = """
beam, particle=electron, energy=1.0;
d: drift, l=0.5;
qf: quadrupole, l=0.3, k1=1.6;
qd: quadrupole, l=0.3, k1=-1.5;
b: sbend, l=1.0, angle=0.08, e1=0.04, e2=0.04;
r: rbend, l=0.8, angle=-0.05;
s: sextupole, l=0.2, k2=2.0;
lat: line = (qf, d, b, d, qd, d, s, d, r, d, qf, d, qd);
use, sequence=lat;
twiss, betx=8.0, alfx=-0.7, bety=3.0, alfy=0.4, dx=0.1, dpx=0.01;
"""


def test_transfer_line_twiss_agrees_with_madx():
    cpymad = pytest.importorskip("cpymad.madx", reason="cpymad (MAD-X) not installed")
    madx = cpymad.Madx(stdout=False)
    try:
        madx.input(MADX_TRANSFER_LINE)
        end = {k: float(madx.table.twiss[k][-1]) for k in ("betx", "alfx", "bety", "alfy",
                                                           "mux", "muy", "dx", "dpx")}
        beta0 = float(madx.sequence.lat.beam.beta)
    finally:
        madx.exit()
    line = bt.load(DATA / "transfer_line.bmad")
    assert line.names() == read(TRANSFER_LINE).names()
    table = bt.twiss(line, bt.TwissInit(beta_x=8.0, alpha_x=-0.7, beta_y=3.0, alpha_y=0.4,
                                        dx=0.1 * beta0, dpx=0.01 * beta0))
    ours = {"betx": table.beta_x[-1], "alfx": table.alpha_x[-1],
            "bety": table.beta_y[-1], "alfy": table.alpha_y[-1],
            "mux": table.mu_x[-1] / (2 * np.pi), "muy": table.mu_y[-1] / (2 * np.pi),
            "dx": table.dx[-1] / beta0, "dpx": table.dpx[-1] / beta0}
    for key, value in end.items():
        assert float(ours[key]) == pytest.approx(value, rel=1e-9, abs=1e-10), key


hypothesis = pytest.importorskip("hypothesis", reason="hypothesis not installed")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_ALPHABET = st.sampled_from(list("abcdqlk1=,:;()[]*-+/^.!&\"' \n0123456789e_{}") +
                            ["line", "use", "call", "file", "sbend", "quad", "drift", "g",
                             "parameter", "beginning", "redef:", "--", "1e999", "pi"])


def _only_lattice_file_errors(text: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            bmad.loads(text, root=os.path.dirname(os.path.abspath(__file__)))
        except LatticeFileError as exc:
            assert exc.file is not None


@settings(max_examples=200, deadline=None)
@given(st.lists(_ALPHABET, max_size=60).map("".join))
def test_fuzz_random_text_raises_only_lattice_file_errors(text):
    _only_lattice_file_errors(text)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(ROUND_TRIP) - 1), st.integers(0, 20), st.text(max_size=5))
def test_fuzz_mutated_file_raises_only_lattice_file_errors(position, cut, insert):
    _only_lattice_file_errors(ROUND_TRIP[:position] + insert + ROUND_TRIP[position + cut:])


# -- superposition --------------------------------------------------------------------
#: The Bmad school's superposition example (D. Sagan, github.com/ChristopherMayes/
#: bmad-school wiki, "Superposition of Lattice Elements") with Tao's "show lat" output:
#: (name, beta_a, beta_b, phi_a, phi_b) at the end of each element, printed by Tao to
#: 0.01 m and 0.001 rad.
TAO_EXAMPLE = """
beginning[beta_a] = 10.
beginning[beta_b] = 10.
beginning[e_tot] = 10e6
parameter[geometry] = open
q: quadrupole, L = 1, k1 = 0.2
d: drift, L = 1
m1: marker, superimpose, ref = q, ref_origin = beginning, offset = 0.3
m2: marker, superimpose, ref = q, ref_origin = end, offset = 0.4
lat: line = (q, d)
use, lat
"""
TAO_SHOW_LAT = [("q#1", 9.83, 10.19, 0.030, 0.030), ("m1", 9.83, 10.19, 0.030, 0.030),
                ("q#2", 8.22, 12.24, 0.107, 0.094), ("d#1", 6.97, 14.24, 0.160, 0.124),
                ("m2", 6.97, 14.24, 0.160, 0.124), ("d#2", 5.37, 17.58, 0.258, 0.162)]


def _starts(line) -> dict[str, list[float]]:
    """s [m] at the entrance of every element, by name."""
    out: dict[str, list[float]] = {}
    s = 0.0
    for element in line.items:
        out.setdefault(element.name, []).append(s)
        s += float(element.path_length)
    return out


def test_superposition_reproduces_taos_example():
    line = read(TAO_EXAMPLE)
    assert line.names() == [row[0] for row in TAO_SHOW_LAT]
    assert [float(e.path_length) for e in line.items] == pytest.approx(
        [0.3, 0.0, 0.7, 0.4, 0.0, 0.6], abs=1e-15)
    table = bt.twiss(line, bt.TwissInit(beta_x=10.0, alpha_x=0.0, beta_y=10.0, alpha_y=0.0))
    for i, (_, beta_a, beta_b, phi_a, phi_b) in enumerate(TAO_SHOW_LAT, start=1):
        assert float(table.beta_x[i]) == pytest.approx(beta_a, abs=0.005)
        assert float(table.beta_y[i]) == pytest.approx(beta_b, abs=0.005)
        assert float(table.mu_x[i]) == pytest.approx(phi_a, abs=0.0005)
        assert float(table.mu_y[i]) == pytest.approx(phi_b, abs=0.0005)


@pytest.mark.parametrize("ref_origin", ["beginning", "center", "end"])
@pytest.mark.parametrize("ele_origin", ["beginning", "center", "end"])
def test_superposition_onto_drifts_with_each_origin(ref_origin, ele_origin):
    # Bmad: the ele_origin point of the element goes to the ref_origin point of the
    # reference shifted by offset; the drifts it covers are cut.
    fraction = {"beginning": 0.0, "center": 0.5, "end": 1.0}
    lq, lk, offset = 0.2, 0.1, 0.75
    line = read(f"d: drift, l = 2\nr: quadrupole, l = {lq}, k1 = 1\n"
                f"k: sextupole, l = {lk}, k2 = 3, superimpose, ref = r, offset = {offset}, "
                f"ref_origin = {ref_origin}, ele_origin = {ele_origin}\n"
                "x: line = (d, r, d)\n")
    expected = 2.0 + fraction[ref_origin] * lq + offset - fraction[ele_origin] * lk
    starts = _starts(line)
    assert starts["k"] == [pytest.approx(expected, abs=1e-12)]
    assert line.names() == ["d", "r", "d#1", "k", "d#2"]
    assert line["d#1"].length == pytest.approx(expected - 2.0 - lq, abs=1e-12)
    assert sum(float(e.path_length) for e in line.items) == pytest.approx(4.0 + lq, abs=1e-12)


def test_superposition_forms_instances_and_later_settings():
    # No ref: offset from the start of the line. Every occurrence of the reference gets
    # a copy; the command form and a later x[superimpose] = T work as definitions do.
    line = read("d: drift, l = 1\nq: quadrupole, l = 0.5, k1 = 1\n"
                "a: marker, superimpose, offset = 0.25\n"
                "b: monitor\nb[superimpose] = T\nb[ref] = q\nb[ref_origin] = end\n"
                "b[offset] = 0.5\n"
                "c: marker\nsuperimpose, element = c, ref = d##2, ele_origin = beginning, "
                "ref_origin = beginning, offset = 0.1\n"
                "x: line = (d, q, d, q, d)\n")
    starts = _starts(line)
    assert starts["a"] == [pytest.approx(0.25)]
    assert starts["b"] == [pytest.approx(2.0), pytest.approx(3.5)]
    assert starts["c"] == [pytest.approx(1.6)]
    # the drifts are cut into 0.25 + 0.75, 0.1 + 0.4 + 0.5 and 0.5 + 0.5: one name per
    # distinct piece
    lengths = {name: line[name].length for name in line.names() if name.startswith("d#")}
    assert len(set(lengths.values())) == len(lengths)
    assert sorted(round(v, 12) for v in lengths.values()) == [0.1, 0.25, 0.4, 0.5, 0.75]
    assert [round(e.length, 12) for e in line.items if e.name.startswith("d")] == [
        0.25, 0.75, 0.1, 0.4, 0.5, 0.5, 0.5]
    assert sum(float(e.path_length) for e in line.items) == pytest.approx(4.0)


@pytest.mark.parametrize("magnet", ["quadrupole, k1 = 2.1, tilt = 0.2, x_offset = 1e-3, "
                                    "num_steps = 5",
                                    "sextupole, k2 = 30, y_offset = 2e-4, num_steps = 3",
                                    "solenoid, ks = 0.8", "pipe"])
def test_marker_inside_a_magnet_cuts_it_without_changing_the_tracking(magnet):
    whole = read(f"parameter[particle] = electron\nbeginning[p0c] = 1e9\n"
                 f"q: {magnet}, l = 0.6\nx: line = (q)\n")
    cut = read(f"parameter[particle] = electron\nbeginning[p0c] = 1e9\n"
               f"q: {magnet}, l = 0.6\nm: marker, superimpose, ref = q, "
               "ref_origin = beginning, offset = 0.2\nx: line = (q)\n")
    assert cut.names() == ["q#1", "m", "q#2"]
    assert cut["q#1"].length == pytest.approx(0.2) and cut["q#2"].length == pytest.approx(0.4)
    if magnet.startswith("quadrupole"):
        assert (cut["q#1"].num_steps, cut["q#2"].num_steps) == (2, 4)  # 5 shared, rounded up
        assert cut["q#2"].tilt == 0.2 and cut["q#2"].x_offset == 1e-3
    # kick-drift-kick bodies (sextupole: 3 steps -> 1 + 2) keep their kick positions
    p = particles()
    a = whole.track(p)
    b = cut.track(p)
    np.testing.assert_allclose(np.asarray(b.coords), np.asarray(a.coords), rtol=0, atol=1e-15)


@pytest.mark.parametrize("text, message, line_no, column", [
    ("k: quadrupole, l = 0.5, superimpose, ref = b, offset = 0.1\n", "overlaps 'b'", 4, 25),
    ("m: marker, superimpose, ref = b, offset = 0.1\n", "inside 'b'", 4, 12),
    ("m: marker,\n  superimpose, ref = b, offset = 5\n", "outside the line", 5, 3),
    ("m: marker, superimpose, ref = sbend::b\n", "class-qualified", 4, 12),
    ("m: marker, superimpose, ref = b, ref_origin = middle\n", "ref_origin", 4, 34),
    ("k: quadrupole, l = 2, superimpose, ref = mk\n", "zero-length element 'mk'", 4, 23),
])
def test_superposition_refused_where_bmad_makes_lords_and_slaves(text, message, line_no,
                                                                 column):
    head = "d: drift, l = 1\nb: sbend, l = 1, angle = 0.1\nmk: marker\n"
    with pytest.raises(LatticeFileError, match=message) as info:
        bmad.loads(head + text + "x: line = (d, b, d, mk, d)\n", source="s.bmad")
    assert (info.value.file, info.value.line, info.value.column) == ("s.bmad", line_no, column)


def test_superposition_with_a_missing_reference_warns():
    with pytest.warns(LatticeFileWarning, match="no element 'zz'"):
        line = bmad.loads("d: drift, l = 1\nm: marker, superimpose, ref = zz\nx: line = (d)\n")
    assert line.names() == ["d"]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["beginning", "center", "end"]),
                          st.sampled_from(["beginning", "center", "end"]),
                          st.floats(-3, 3), st.sampled_from([0.0, 0.1, 0.5]),
                          st.sampled_from(["d", "q", "m0", "k0", "k1", None])),
                max_size=4))
def test_fuzz_superpositions_keep_the_length_or_raise_lattice_file_errors(placements):
    text = "d: drift, l = 1\nq: quadrupole, l = 0.4, k1 = 1\nm: marker\n"
    for i, (ref_origin, ele_origin, offset, length, ref) in enumerate(placements):
        kind = f"quadrupole, l = {length}" if length else "marker"
        text += (f"k{i}: {kind}, superimpose, offset = {offset!r}, ref_origin = {ref_origin}, "
                 f"ele_origin = {ele_origin}" + (f", ref = {ref}" if ref else "") + "\n")
    text += "m0: marker\nx: line = (d, q, d, m0, d)\n"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            line = bmad.loads(text)
        except LatticeFileError as exc:
            assert exc.line is not None
            return
    assert sum(float(e.path_length) for e in line.items) == pytest.approx(3.4, abs=1e-9)
    assert all(float(e.path_length) >= 0 for e in line.items)
