"""The thin dipole edge (``track_dipole_edge``, ``DipoleEdge``; MAD-X ``dipedge``).

References, none of them the code under test:

* MAD's edge-focusing matrix written out here: ``R21 = h tan(e1)``,
  ``R43 = -h tan(e1 - psi)``, ``psi = 2 fint hgap h (1 + sin^2 e1) / cos e1``;
* MAD-X's RMATRIX of a ``dipedge`` and of a thick ``sbend`` through cpymad (skipped
  without cpymad), and the edges MAD-X's MAKETHIN writes for a bend;
* a sector bend with its default ``linear_edge`` fringe, against the same bend without
  edges between two ``DipoleEdge`` elements (the exit one with ``e1`` = the bend's
  ``e2``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import ELECTRON_MC2, P0C, make_particles, random_beam, to_np

import beamtrack as bt
from beamtrack.tracking.bend import track_dipole_edge, track_sbend

METHODS = ("bmad", "linear", "second_order")


def edge_matrix(h, e1, fint=0.0, hgap=0.0, tilt=0.0):
    """MAD's dipedge matrix (rotated by ``tilt`` about s)."""
    m = np.eye(6)
    psi = 2.0 * fint * hgap * h * (1.0 + math.sin(e1) ** 2) / math.cos(e1)
    m[1, 0] = h * math.tan(e1)
    m[3, 2] = -h * math.tan(e1 - psi)
    c, s = math.cos(tilt), math.sin(tilt)
    rot = np.eye(6)  # lab -> element frame: rotation by -tilt
    rot[np.ix_([0, 2], [0, 2])] = [[c, s], [-s, c]]
    rot[np.ix_([1, 3], [1, 3])] = [[c, s], [-s, c]]
    return rot.T @ m @ rot


def _matrix(track, name="numpy", method="linear", **kw):
    unit = make_particles(name, np.vstack([np.zeros(6), 1e-3 * np.eye(6)]))
    out = to_np(track(unit, method=method, **kw))
    return (out[:, 1:] - out[:, :1]) / 1e-3, out[:, 0]


EDGES = {
    "plain": dict(h=0.4, e1=0.12),
    "fringe": dict(h=0.4, e1=0.12, fint=0.5, hgap=0.03),
    "negative": dict(h=-0.9, e1=-0.3, fint=0.7, hgap=0.05),
    "tilted": dict(h=0.4, e1=0.12, fint=0.5, hgap=0.03, tilt=0.3),
    "no face angle": dict(h=0.5, e1=0.0, fint=0.5, hgap=0.04),
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", sorted(EDGES))
def test_matrix_is_mad_edge_focusing(xp, case, method):
    """Every method is MAD's edge matrix, exactly (the kick is linear), on every backend;
    the reference orbit is unchanged."""
    kw = EDGES[case]
    r, c = _matrix(track_dipole_edge, xp.name, method, **kw)
    np.testing.assert_allclose(r, edge_matrix(**kw), rtol=0, atol=1e-13)
    np.testing.assert_array_equal(c, 0.0)


@pytest.mark.parametrize("case", sorted(EDGES))
def test_matches_madx_dipedge(case):
    from madx import madx_matrix

    kw = EDGES[case]
    text = ", ".join(f"{k}={v!r}" for k, v in kw.items())
    expected = madx_matrix(f"e1: dipedge, {text};", 0.0, P0C)
    r, _ = _matrix(track_dipole_edge, **kw)
    np.testing.assert_allclose(r, expected, rtol=0, atol=1e-14)


def _edges_and_body(bend, *, dg=0.0):
    """A bend's linear edges as DipoleEdge elements around the bend without edges."""
    g = bend["angle"] / bend["length"] + dg
    fint_x = bend.get("fint_exit", bend.get("fint", 0.0))
    hgap_x = bend.get("hgap_exit", bend.get("hgap", 0.0))
    tilt = bend.get("ref_tilt", 0.0)
    body = {k: v for k, v in bend.items()
            if k not in ("e1", "e2", "fint", "hgap", "fint_exit", "hgap_exit")}
    return bt.Beamline([
        bt.DipoleEdge("in", h=g, e1=bend.get("e1", 0.0), fint=bend.get("fint", 0.0),
                      hgap=bend.get("hgap", 0.0), tilt=tilt),
        bt.SBend("body", **body, dg=dg, fringe_type="none"),
        bt.DipoleEdge("out", h=g, e1=bend.get("e2", 0.0), fint=fint_x, hgap=hgap_x,
                      tilt=tilt),
    ])


BENDS = {
    "rectangular": dict(length=0.8, angle=0.3, e1=0.15, e2=0.15),
    "fringe fields": dict(length=0.8, angle=0.3, e1=0.12, e2=-0.07, fint=0.5, hgap=0.03,
                          fint_exit=0.4, hgap_exit=0.02),
    "combined function": dict(length=0.6, angle=-0.2, e1=0.05, e2=0.1, k1=0.8, fint=0.5,
                              hgap=0.02),
    "ref_tilt": dict(length=0.8, angle=0.3, e1=0.12, e2=0.02, fint=0.5, hgap=0.03,
                     ref_tilt=0.4),
}


@pytest.mark.parametrize("dg", [0.0, 0.03])
@pytest.mark.parametrize("name", sorted(BENDS))
def test_sbend_is_dipedge_body_dipedge(xp, name, dg):
    """sbend (linear_edge) = dipedge(h, e1) + body without edges + dipedge(h, e2), with
    h = angle/length + dg (the edges see the field), particle by particle."""
    bend = BENDS[name]
    p = make_particles(xp.name, random_beam(20, seed=3, scale=3e-3))
    whole = to_np(track_sbend(p, **bend, dg=dg))
    parts = to_np(_edges_and_body(bend, dg=dg).track(p))
    np.testing.assert_allclose(parts, whole, rtol=0, atol=1e-15)


def test_sbend_is_dipedge_body_dipedge_in_madx():
    """The same decomposition in MAD-X: our line of DipoleEdge + SBend + DipoleEdge has
    the RMATRIX of MAD-X's thick sbend with its edges, and MAKETHIN writes the exit edge
    as a dipedge with e1 = the bend's e2 and fint = its fintx."""
    cpymad_madx = pytest.importorskip("cpymad.madx", reason="cpymad (MAD-X) not installed")
    from madx import madx_matrix

    bend = BENDS["fringe fields"]
    madx_text = ("e1: sbend, l=0.8, angle=0.3, e1=0.12, e2=-0.07, fint=0.5, hgap=0.03, "
                 "fintx=0.4;")
    expected = madx_matrix(madx_text, 0.8, P0C)
    line = _edges_and_body({**bend, "hgap_exit": 0.03})  # MAD-X has one hgap
    unit = make_particles("numpy", np.vstack([np.zeros(6), 1e-3 * np.eye(6)]))
    out = to_np(line.track(unit, method="linear"))
    np.testing.assert_allclose((out[:, 1:] - out[:, :1]) / 1e-3, expected, rtol=0,
                               atol=1e-12)

    madx = cpymad_madx.Madx(stdout=False)
    try:
        madx.input("""
            beam, particle=electron, pc=1;
            b: sbend, l=0.8, angle=0.3, e1=0.12, e2=-0.07, fint=0.5, fintx=0.4,
               hgap=0.03, tilt=0.2;
            seq: sequence, l=1; b, at=0.5; endsequence;
            use, sequence=seq;
            select, flag=makethin, class=sbend, slice=1, thick=true;
            makethin, sequence=seq, makedipedge=true;
            use, sequence=seq;
            """)
        edges = [e for e in madx.sequence.seq.elements if e.base_type.name == "dipedge"]
        got = [(e.h, e.e1, e.fint, e.hgap, e.tilt) for e in edges]
    finally:
        madx.quit()
    assert got == [pytest.approx((0.3 / 0.8, 0.12, 0.5, 0.03, 0.2)),
                   pytest.approx((0.3 / 0.8, -0.07, 0.4, 0.03, 0.2))]


def test_record():
    """Declared like the other kinds: no length, s unchanged, a JSON round trip, the
    misalignment block, errors that name the element."""
    from beamtrack.lattice.io.json_format import dumps, loads

    e = bt.DipoleEdge("e", h=0.4, e1=0.12, fint=0.5, hgap=0.03, tilt=0.1)
    assert e.length == 0.0 and e.path_length == 0.0
    assert list(e.declaration()) == ["h", "e1", "fint", "hgap", "tilt", "x_offset",
                                     "y_offset"]
    assert e.declaration()["h"].unit == "1/m" and e.declaration()["hgap"].unit == "m"
    p = make_particles("numpy", random_beam(5, seed=1, scale=1e-3))
    out = e.track(p)
    assert float(out.s) == float(p.s)
    np.testing.assert_array_equal(to_np(out), to_np(track_dipole_edge(
        p, h=0.4, e1=0.12, fint=0.5, hgap=0.03, tilt=0.1)))
    line = bt.Beamline([e, bt.Drift("d", length=1.0)])
    assert loads(dumps(line)) == line
    with pytest.raises(bt.ParameterError, match="DipoleEdge 'e'"):
        bt.DipoleEdge("e", h=math.nan)
    with pytest.raises(TypeError, match="lenght"):
        track_dipole_edge(p, h=0.1, lenght=1.0)


def test_offsets_shift_the_kick():
    """An offset edge kicks the particle by -h tan(e1) x_offset (the kick acts on the
    distance from the edge centre)."""
    p = make_particles("numpy", np.zeros((1, 6)), p0c=P0C, mc2=ELECTRON_MC2)
    out = to_np(track_dipole_edge(p, h=0.4, e1=0.12, x_offset=1e-3, y_offset=2e-3))[:, 0]
    assert out[1] == pytest.approx(-0.4 * math.tan(0.12) * 1e-3, rel=1e-14)
    assert out[3] == pytest.approx(0.4 * math.tan(0.12) * 2e-3, rel=1e-14)
    np.testing.assert_array_equal(out[[0, 2, 4, 5]], 0.0)
