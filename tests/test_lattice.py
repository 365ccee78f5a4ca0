"""Element records and Beamline: construction, look-up, replacement, tracking, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import make_particles, random_beam, to_np

import beamtrack as bt
from beamtrack.tracking import track_drift, track_quadrupole


def fodo() -> bt.Beamline:
    return bt.Beamline(
        [
            bt.Marker("start"),
            bt.Quadrupole("qf", length=0.2, k1=2.0),
            bt.Drift("d1", length=1.0),
            bt.Beamline(
                [bt.Quadrupole("qd", length=0.2, k1=-2.0, tilt=0.01), bt.Drift("d2", length=1.0)],
                name="inner",
            ),
            bt.Marker("end"),
        ],
        name="fodo",
    )


def test_name_positional_or_keyword_and_parameters():
    a = bt.Quadrupole("qf", length=0.2, k1=1.2)
    b = bt.Quadrupole(name="qf", length=0.2, k1=1.2)
    assert a == b
    assert a.kind == "Quadrupole"
    assert a.parameters() == {"length": 0.2, "k1": 1.2, "num_steps": 1, "tilt": 0.0,
                              "x_offset": 0.0, "y_offset": 0.0}
    assert bt.Marker("m").length == 0.0


def test_records_are_immutable():
    q = bt.Quadrupole("qf", length=0.2, k1=1.2)
    with pytest.raises(AttributeError):
        q.k1 = 3.0  # type: ignore[misc]
    line = fodo()
    with pytest.raises(AttributeError):
        line.name = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (lambda: bt.Quadrupole("qf", length=0.2, kk=1.0), ["Quadrupole", "'qf'", "kk"]),
        (lambda: bt.Drift("d1", length=math.nan), ["Drift", "'d1'", "length", "finite"]),
        (lambda: bt.Drift("d1", length=math.inf), ["'d1'", "length", "finite"]),
        (lambda: bt.Quadrupole("q", k1="1.0"), ["'q'", "k1", "str"]),
        (lambda: bt.Quadrupole("q", k1=True), ["'q'", "k1", "bool"]),
        (lambda: bt.Quadrupole("q", num_steps=0), ["'q'", "num_steps", "integer"]),
        (lambda: bt.Quadrupole("q", num_steps=2.0), ["'q'", "num_steps"]),
        (lambda: bt.Quadrupole("q", length=np.array([1.0, np.nan])), ["'q'", "length", "finite"]),
        (lambda: bt.Quadrupole("q", length=np.array([1, 2])), ["'q'", "length", "floating"]),
        (lambda: bt.Drift("", length=1.0), ["Drift", "name"]),
        (lambda: bt.Drift("d", method="fast"), ["'d'", "method", "fast"]),
        (lambda: bt.Drift("d", 1.0), ["'d'", "keyword"]),
    ],
)
def test_bad_parameters_name_element_and_parameter(build, words):
    with pytest.raises((bt.ParameterError, TypeError)) as info:
        build()
    for word in words:
        assert word in str(info.value)


def test_unknown_parameter_error_type():
    with pytest.raises(bt.UnknownParameterError):
        bt.Drift("d", lenght=1.0)
    with pytest.raises(bt.UnknownParameterError, match="'qf'.*k2"):
        bt.Quadrupole("qf").replace(k2=1.0)


def test_two_definitions_under_one_name_rejected():
    with pytest.raises(bt.LatticeError, match="two different definitions named 'd1'"):
        bt.Beamline([bt.Drift("d1", length=1.0), bt.Drift("d1", length=2.0)])
    inner = bt.Beamline([bt.Drift("d1", length=1.0)], name="inner")
    with pytest.raises(bt.LatticeError, match="two different definitions named 'd1'"):
        bt.Beamline([bt.Drift("d1", length=3.0), inner])
    with pytest.raises(bt.LatticeError, match="two different definitions named 'inner'"):
        bt.Beamline([bt.Marker("inner"), inner])


def test_wrong_entry_type_rejected():
    with pytest.raises(bt.LatticeError, match="entry 1 is a str"):
        bt.Beamline([bt.Drift("d1"), "d2"])
    with pytest.raises(bt.ParameterError, match="method"):
        bt.Beamline([bt.Drift("d1")], method="exact")


def test_lookup_iteration_length():
    line = fodo()
    assert line.names() == ["start", "qf", "d1", "qd", "d2", "end"]
    assert [e.name for e in line] == line.names()
    assert len(line) == 6
    assert len(line.items) == 5
    assert line["qd"].k1 == -2.0
    assert isinstance(line["inner"], bt.Beamline)
    assert line[1].name == "qf"
    assert "d2" in line and "nope" not in line
    assert line.length == pytest.approx(2.4, abs=1e-15)
    with pytest.raises(KeyError, match="nope"):
        line["nope"]


def test_replace_nested_returns_new_line():
    line = fodo()
    new = line.replace("qd", k1=-3.0)
    assert new["qd"].k1 == -3.0 and line["qd"].k1 == -2.0
    assert new["qd"].tilt == 0.01
    assert new.replace("inner", method="linear")["inner"].method == "linear"
    with pytest.raises(KeyError):
        line.replace("zz", k1=1.0)
    with pytest.raises(bt.LatticeError, match="only 'method'"):
        line.replace("inner", length=1.0)


def test_track_equals_sequence_of_tracking_functions(xp):
    beam = random_beam(20, seed=3)
    p = make_particles(xp.name, beam)
    out = fodo().track(p)
    expected = track_quadrupole(p, length=0.2, k1=2.0)
    expected = track_drift(expected, length=1.0)
    expected = track_quadrupole(expected, length=0.2, k1=-2.0, tilt=0.01)
    expected = track_drift(expected, length=1.0)
    np.testing.assert_array_equal(to_np(out), to_np(expected))
    assert float(xp.to_numpy(out.s)) == pytest.approx(2.4, abs=1e-15)


def test_method_precedence():
    beam = random_beam(10, seed=4)
    p = make_particles("numpy", beam)
    quad = dict(length=0.3, k1=4.0)
    lin = track_quadrupole(p, **quad, method="linear")
    exact = track_quadrupole(p, **quad)
    assert np.abs(to_np(lin) - to_np(exact)).max() > 1e-9  # the methods really differ
    line = bt.Beamline([bt.Quadrupole("q", **quad)], method="linear")
    np.testing.assert_array_equal(to_np(line.track(p)), to_np(lin))
    np.testing.assert_array_equal(to_np(line.track(p, method="bmad")), to_np(exact))
    fixed = bt.Beamline([bt.Quadrupole("q", **quad, method="bmad")], method="linear")
    np.testing.assert_array_equal(to_np(fixed.track(p, method="linear")), to_np(exact))
    nested = bt.Beamline([bt.Beamline([bt.Quadrupole("q", **quad)], name="in", method="linear")])
    np.testing.assert_array_equal(to_np(nested.track(p)), to_np(lin))
    with pytest.raises(bt.ParameterError, match="exact"):
        line.track(p, method="exact")


def test_track_each_yields_every_element():
    p = make_particles("numpy", random_beam(5, seed=1))
    steps = list(fodo().track_each(p))
    assert [e.name for e, _ in steps] == fodo().names()
    np.testing.assert_array_equal(to_np(steps[-1][1]), to_np(fodo().track(p)))


def test_array_parameters_batch(xp):
    """A (B,) parameter in a beamline tracks B configurations at once."""
    k1 = np.array([1.0, 2.0, -1.5])
    p = make_particles(xp.name, random_beam(7, seed=2))
    line = fodo().replace("qf", k1=xp.asarray(k1))
    out = to_np(line.track(p))
    assert out.shape == (3, 6, 7)
    for b, value in enumerate(k1):
        single = to_np(fodo().replace("qf", k1=float(value)).track(p))
        np.testing.assert_allclose(out[b], single, rtol=0, atol=1e-15)


def test_parameter_from_other_library_raises(xp):
    if xp.name == "numpy":
        pytest.skip("needs a non-NumPy backend")
    p = make_particles(xp.name, random_beam(3, seed=0))
    line = fodo().replace("qf", k1=np.asarray(2.0))
    with pytest.raises(bt.ParameterError, match="k1"):
        line.track(p)


def test_rbend_path_length_is_the_arc():
    from beamtrack.lattice.elements import RBend

    chord, angle = 1.0, 0.3
    arc = chord * (angle / 2) / math.sin(angle / 2)
    line = bt.Beamline([RBend("r", length=chord, angle=angle), bt.Drift("d", length=0.5)])
    assert line.length == pytest.approx(arc + 0.5, rel=1e-15)
    out = line.track(make_particles("numpy", random_beam(3, seed=0)))
    assert float(out.s) == pytest.approx(arc + 0.5, rel=1e-15)
    batched = RBend("rb", length=np.array([1.0, 2.0]), angle=angle).path_length
    np.testing.assert_allclose(batched, [arc, 2 * arc], rtol=1e-15)
