"""Elegant lattice files: syntax, element and parameter mapping checked against
elegant's definitions and MAD-X, and malformed input."""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

import beamtrack as bt
from beamtrack.lattice.errors import LatticeFileError, LatticeFileWarning
from beamtrack.lattice.io import elegant

C_LIGHT = 299792458.0
DATA = Path(__file__).parent / "data" / "lattices" / "elegant"


def read(text: str, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LatticeFileWarning)
        return elegant.loads(text, **kwargs)


SYNTAX = """! elegant syntax
# a hash comment line
% 0.5 2 / sto LQ
"Q1": QUAD, L="LQ", K1=1.2, TILT=0.1, DX=1e-4
Q2: KQUAD,L=0.5,K1=-1.2 ,N_KICKS=20, &
    DY=-2e-4
D1: DRIF,L=1.0   ! trailing comment
W1: WATCH,FILENAME="w1.sdds",MODE=coord
C1: CHARGE,TOTAL=1e-9
CELL: LINE=(Q1,D1,Q2,&
  D1)
BL: LINE=(C1,2*CELL,-CELL,W1)
OTHER: LINE=(D1)
USE,BL
RETURN
junk after return is never read
"""


def test_syntax_quoted_names_continuations_rpn_lines_and_use():
    with pytest.warns(LatticeFileWarning, match="CHARGE 'c1' is not a lattice element"):
        line = elegant.loads(SYNTAX)
    assert line.name == "bl" and line.reference is None
    assert line.names() == ["q1", "d1", "q2", "d1", "q1", "d1", "q2", "d1",
                            "d1", "q2", "d1", "q1", "w1"]
    assert line["q1"].length == 0.25 and line["q1"].tilt == 0.1
    assert line["q1"].x_offset == 1e-4 and line["q2"].y_offset == -2e-4
    assert line["w1"].kind == "Marker"
    assert read(SYNTAX, sequence="other").names() == ["d1"]


def test_reference_is_set_by_the_user():
    line = read("D: DRIF, L=1\nL: LINE=(D)\n")
    assert line.reference is None
    ref = bt.Reference.from_energy("electron", e_tot=1e9)
    assert line.with_reference(ref).reference == ref


def test_bends_rben_chord_fint_default_and_edges():
    line = read("B1: CSBEND,L=1.0,ANGLE=0.05,E1=0.025,E2=0.025,HGAP=0.01,TILT=0.3\n"
                "B2: RBEN,L=0.8,ANGLE=0.1,FINT=0.7\n"
                "B3: SBEN,L=1,ANGLE=0.1,EDGE1_EFFECTS=0,EDGE2_EFFECTS=0\n"
                "B4: CSBEND,L=1,ANGLE=0.1,FINT1=0.3,FSE=0.01\n"
                "L: LINE=(B1,B2,B3,B4)\n")
    b1, b2, b3, b4 = (line[n] for n in ("b1", "b2", "b3", "b4"))
    assert b1.kind == "SBend" and b1.fint == 0.5  # elegant's default FINT
    assert b1.ref_tilt == 0.3  # elegant's bend TILT rotates the bend plane (MAD's TILT)
    assert b1.fringe_type == "linear_edge" and b3.fringe_type == "none"
    # RBEN: L is the chord (elegant converts to arc L*(a/2)/sin(a/2)).
    assert b2.kind == "RBend" and b2.length == 0.8
    assert float(b2.path_length) == pytest.approx(0.8 * 0.05 / math.sin(0.05), rel=1e-14)
    assert b4.fint == 0.3 and b4.fint_exit == 0.5
    assert b4.dg == pytest.approx(0.01 * 0.1)  # field error, geometry unchanged


@pytest.mark.parametrize("change_p0", [0, 1])
def test_rfca_phase_follows_elegants_convention(change_p0):
    # elegant (simple_rfca.c): dgamma = volt sin(omega t + phase), phase in degrees,
    # 90 = on crest; a particle arriving dt late sees phase + omega dt.
    volt, phase, freq, p0c = 2.0e6, 60.0, 1.3e9, 5.0e8
    line = read(f"RF: RFCA,L=0,VOLT={volt},PHASE={phase},FREQ={freq},CHANGE_P0={change_p0}\n"
                "L: LINE=(RF)\n")
    assert line["rf"].kind == ("LCavity" if change_p0 else "RFCavity")
    mc2 = bt.electron.mc2
    z = np.array([0.0, 2e-3, -5e-3])
    zero = np.zeros(3)
    out = line.track(bt.Particles(zero, zero, zero, zero, z, zero, p0c=p0c, mc2=mc2))
    beta0 = p0c / math.hypot(p0c, mc2)
    dt = -z / (beta0 * C_LIGHT)
    expected = math.hypot(p0c, mc2) + volt * np.sin(np.radians(phase) + 2 * np.pi * freq * dt)
    p_out = (1 + np.asarray(out.pz)) * np.asarray(out.p0c)
    np.testing.assert_allclose(np.hypot(p_out, mc2), expected, rtol=1e-13)


@pytest.mark.filterwarnings("ignore:.*MAXAMP")
def test_kickers_monitors_collimators_solenoid_mult_and_unknown_types():
    text = ("H: HKICK,L=0.1,KICK=1e-3,CALIBRATION=2\nV: VKICK,KICK=-2e-3\n"
            "K: KICKER,HKICK=1e-4,VKICK=2e-4\nB: MONI,L=0.2\nR: RCOL,L=0.3,X_MAX=0.01,"
            "Y_MAX=0.02\nE: ECOL,X_MAX=0.01,Y_MAX=0.02\nS: SOLE,L=0.5,KS=0.3\n"
            "M: MULT,ORDER=2,KNL=3.0,FACTOR=0.5\nMA: MAXAMP,X_MAX=0.05,Y_MAX=0.04,ELLIPTICAL=1\n"
            "X: UKICKMAP,L=1.5\nL: LINE=(H,V,K,B,R,E,S,M,MA,X)\n")
    with pytest.warns(LatticeFileWarning, match="UKICKMAP 'x'"):
        line = elegant.loads(text)
    assert line["h"].kick == 2e-3 and line["v"].kick == -2e-3 and line["k"].vkick == 2e-4
    assert line.names()[3:6] == ["b__body", "b", "b__body"]
    assert line["r"].kind == "Collimator" and line["r"].shape == "rectangular"
    assert line["e"].shape == "elliptical" and line["s"].ks == 0.3
    assert line["m"].knl == (0.0, 0.0, 1.5)
    assert line["ma"].kind == "Aperture" and line["ma"].shape == "elliptical"
    assert line["x"].kind == "Drift" and line["x"].length == 1.5


def test_ematrix_is_converted_to_bmad_coordinates():
    line = read("E: EMATRIX,L=1,R11=1,R12=2,R22=1,R33=1,R44=1,R55=1,R66=1,R56=0.3,"
                "R16=0.1,C5=1e-3\nL: LINE=(E)\n")
    m = line["e"]
    assert m.r[4, 5] == pytest.approx(-0.3) and m.r[0, 5] == pytest.approx(0.1)
    assert m.c[4] == pytest.approx(-1e-3)


def test_include_is_confined_to_the_root(tmp_path):
    (tmp_path / "q.lte").write_text("Q: QUAD,L=0.1,K1=2\n")
    (tmp_path / "main.lte").write_text('#include: "q.lte"\nL: LINE=(Q)\n')
    assert elegant.load(tmp_path / "main.lte")["q"].k1 == 2
    (tmp_path / "bad.lte").write_text("#include: ../x.lte\nL: LINE=(Q)\n")
    with pytest.raises(LatticeFileError, match="outside the allowed folder"):
        elegant.load(tmp_path / "bad.lte")


def test_errors_carry_locations():
    with pytest.raises(LatticeFileError) as info:
        elegant.loads("D: DRIF,L=1\nQ: QUAD,L=0.1,K1=1,K1\nL: LINE=(D)\n", source="x.lte")
    assert (info.value.file, info.value.line) == ("x.lte", 2)
    with pytest.raises(LatticeFileError, match="RPN"):
        elegant.loads('Q: QUAD,L="1 frob",K1=1\nL: LINE=(Q)\n')
    with pytest.raises(LatticeFileError, match="no LINE"):
        elegant.loads("Q: QUAD,L=1\n")


TRANSFER_LINE = """
D: DRIF, L=0.5
QF: QUAD, L=0.3, K1=1.6
QD: QUAD, L=0.3, K1=-1.5
B: CSBEND, L=1.0, ANGLE=0.08, E1=0.04, E2=0.04, HGAP=0.0
R: RBEN, L=0.8, ANGLE=-0.05
S: SEXT, L=0.2, K2=2.0
LAT: LINE=(QF, D, B, D, QD, D, S, D, R, D, QF, D, QD)
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
    reference = bt.Reference.from_energy("electron", e_tot=1e9)
    line = elegant.load(DATA / "transfer_line.lte").with_reference(reference)
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

_ALPHABET = st.sampled_from(list("abdqlk1=,:()*-+/.!&#%\"' \n0123456789e_") +
                            ["LINE", "USE", "RETURN", "QUAD", "DRIF", "RFCA", "sto", "#include",
                             "EMATRIX", "R56", "PHASE", "1e999", "MULT", "ORDER"])


def _only_lattice_file_errors(text: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            elegant.loads(text, root=os.path.dirname(os.path.abspath(__file__)))
        except LatticeFileError as exc:
            assert exc.file is not None


@settings(max_examples=200, deadline=None)
@given(st.lists(_ALPHABET, max_size=60).map("".join))
def test_fuzz_random_text_raises_only_lattice_file_errors(text):
    _only_lattice_file_errors(text)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(SYNTAX) - 1), st.integers(0, 20), st.text(max_size=5))
def test_fuzz_mutated_file_raises_only_lattice_file_errors(position, cut, insert):
    _only_lattice_file_errors(SYNTAX[:position] + insert + SYNTAX[position + cut:])
