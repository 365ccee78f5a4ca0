"""The JSON lattice format: exact round trips and clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

import beamtrack as bt
from beamtrack.lattice.io import load_beam


def awkward_line() -> bt.Beamline:
    return bt.Beamline(
        [
            bt.Marker("m0"),
            bt.Quadrupole("q1", length=0.1 + 0.2, k1=-1 / 3, num_steps=4, tilt=1e-17,
                          x_offset=2.5e-300, y_offset=-7.0e-5, method="linear"),
            bt.Beamline([bt.Drift("d1", length=np.pi)], name="sub", method="linear"),
            bt.Quadrupole("q2", length=0.5, k1=np.array([1.0 / 7, -2.0, 0.1 + 0.2])),
        ],
        name="awkward",
    )


def test_round_trip_is_exact(tmp_path):
    line = awkward_line()
    path = tmp_path / "line.json"
    bt.save(line, path)
    again = bt.load(path)
    assert again == line
    assert again["q1"].length == 0.1 + 0.2  # bit-exact float
    assert again["q1"].k1 == -1 / 3
    assert again["q1"].x_offset == 2.5e-300
    np.testing.assert_array_equal(again["q2"].k1, line["q2"].k1)
    assert again["q1"].method == "linear" and again["sub"].method == "linear"
    assert bt.dumps(again) == bt.dumps(line)


def test_round_trip_of_torch_parameters():
    torch = pytest.importorskip("torch")
    line = bt.Beamline([bt.Quadrupole("q", length=0.2,
                                      k1=torch.tensor([1.0, 2.0], dtype=torch.float64))])
    again = bt.loads(bt.dumps(line))
    np.testing.assert_array_equal(again["q"].k1, np.array([1.0, 2.0]))


def test_bundled_example_loads_and_has_beam():
    line = bt.load(bt.EXAMPLE_LATTICE)
    assert len(line) == 10
    assert line.length == pytest.approx(4.8)
    beam = load_beam(bt.EXAMPLE_LATTICE)
    assert beam["species"] == "electron" and beam["p0c"] == 1e9


def document(elements):
    return json.dumps({"format": "beamtrack-lattice", "version": 1,
                       "beamline": {"kind": "Beamline", "name": "l", "elements": elements}})


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{not json", ["not valid JSON"]),
        (json.dumps({"version": 1}), ["not a beamtrack lattice"]),
        (json.dumps({"format": "beamtrack-lattice", "version": 99}), ["version 99"]),
        (document([{"kind": "Wiggler", "name": "w1"}]), ["'w1'", "Wiggler"]),
        (document([{"kind": "Drift", "name": "d1", "lenght": 1.0}]), ["'d1'", "lenght"]),
        (document([{"kind": "Drift", "name": "d1", "length": "1"}]), ["'d1'", "length"]),
        (document([{"kind": "Drift", "name": "d", "length": {"array": [1.0]}}]), ["'d'", "dtype"]),
        (document([{"kind": "Drift", "name": "d"}, {"kind": "Marker", "name": "d"}]),
         ["two different definitions", "'d'"]),
    ],
)
def test_bad_files_raise_clear_errors(text, words):
    with pytest.raises((bt.LatticeFileError, bt.ParameterError, bt.LatticeError)) as info:
        bt.loads(text)
    for word in words:
        assert word in str(info.value)


def test_non_finite_values_cannot_be_written_or_read():
    with pytest.raises(bt.LatticeFileError, match="Drift .d.: parameter .length. must be finite"):
        bt.loads(document([{"kind": "Drift", "name": "d", "length": float("nan")}]))
