"""The JSON lattice format: exact round trips and clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
    assert line.reference == bt.Reference(bt.electron, 1e9)
    beam = load_beam(bt.EXAMPLE_LATTICE)
    assert beam["sigma"] == [5e-4, 5e-5, 5e-4, 5e-5, 1e-3, 1e-3]


def test_first_layout_beam_section_gives_the_reference():
    text = json.dumps({"format": "beamtrack-lattice", "version": 1,
                       "beam": {"species": "proton", "p0c": 2e9},
                       "beamline": {"kind": "Beamline", "name": "l",
                                    "elements": [{"kind": "Drift", "name": "d"}]}})
    assert bt.loads(text).reference == bt.Reference(bt.proton, 2e9)


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


_JUNK = [None, True, -1, 0, 10**400, 1e308, "x", "Beamline", [], {}, [1, 2],
         {"array": [1.0], "dtype": "float64"}, {"array": "a", "dtype": "-1"}]


def _mutated(document, choices):
    """``document`` with values replaced, keys deleted or added along random paths."""
    import copy

    document = copy.deepcopy(document)
    for path, action, junk in choices:
        node = document
        for step in path:
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            if not keys:
                break
            key = keys[step % len(keys)]
            if not isinstance(node[key], (dict, list)) or action == "replace":
                if action == "delete" and isinstance(node, dict):
                    del node[key]
                else:
                    node[key] = copy.deepcopy(junk)
                break
            node = node[key]
        else:
            if isinstance(node, dict):
                node[["kind", "name", "method", "elements", "k1", "zz"][junk.__hash__() % 6
                      if isinstance(junk, (int, str)) else 0]] = copy.deepcopy(junk)
    return document


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.lists(st.integers(0, 50), min_size=1, max_size=6),
                          st.sampled_from(["replace", "delete", "descend"]),
                          st.sampled_from(_JUNK)), min_size=1, max_size=3))
def test_mutated_json_files_raise_only_lattice_file_errors(choices):
    import warnings

    base = json.loads(bt.dumps(bt.load(bt.EXAMPLE_LATTICE)))
    text = json.dumps(_mutated(base, choices))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            bt.loads(text)
        except bt.LatticeFileError as exc:
            assert exc.file == "<string>"


def test_binary_and_deeply_nested_json_files(tmp_path):
    binary = tmp_path / "noise.json"
    binary.write_bytes(bytes(range(256)))
    with pytest.raises(bt.LatticeFileError, match="not UTF-8"):
        bt.load(binary)
    with pytest.raises(bt.LatticeFileError, match="nested too deeply|not valid JSON"):
        bt.loads("[" * 100_000 + "]" * 100_000)


def test_a_feature_not_implemented_is_a_lattice_file_error():
    """A file may ask for a model beamtrack does not have (Bmad's full fringe)."""
    text = document([{"kind": "SBend", "name": "b", "length": 1.0, "angle": 0.1,
                      "fringe_type": "full"}])
    with pytest.raises(bt.LatticeFileError, match="'full' is not implemented"):
        bt.loads(text)
