"""Property tests of the failure modes (issue 12): for random parameters of every element
kind, in wide ranges including extreme values, and random particles (some unphysical,
some non-finite), tracking never produces NaN for a particle it keeps alive, never
revives one, leaves the particles that were lost on entry exactly as they came, and
has finite gradients. And the JSON reader, fuzzed: a beamline or a LatticeFileError.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import ELECTRON_MC2, P0C, backend_or_skip
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import beamtrack as bt

#: Deterministic and cheap: a fixed example sequence, no deadline (eager torch).
SETTINGS = settings(max_examples=20, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


def wide(limit: float) -> st.SearchStrategy[float]:
    """Floats in ``[-limit, limit]`` with the extremes and zero favoured."""
    return st.one_of(st.sampled_from([0.0, limit, -limit, 1e-12]),
                     st.floats(-limit, limit, allow_nan=False, allow_subnormal=False))


lengths = st.one_of(st.sampled_from([0.0, 1e-9, 50.0]), st.floats(1e-6, 50.0))
signed_lengths = st.one_of(lengths, lengths.map(lambda v: -v))
steps = st.integers(1, 3)
misalignments = st.fixed_dictionaries({"x_offset": wide(1.0), "y_offset": wide(1.0),
                                       "tilt": wide(10.0)})

#: element kind -> strategy of its keyword arguments (the first numeric one, named in
#: GRADIENT, gets a gradient).
KINDS = {
    "Drift": st.fixed_dictionaries({"length": signed_lengths}),
    "Quadrupole": st.fixed_dictionaries({"length": signed_lengths, "k1": wide(1e7),
                                         "num_steps": steps}),
    "SBend": st.fixed_dictionaries({"length": st.floats(1e-6, 50.0), "angle": wide(10.0),
                                    "k1": wide(1e7),
                                    "e1": wide(1.5), "e2": wide(1.5)}),
    "Sextupole": st.fixed_dictionaries({"length": signed_lengths, "k2": wide(1e9),
                                        "num_steps": steps}),
    "Octupole": st.fixed_dictionaries({"length": signed_lengths, "k3": wide(1e12)}),
    "Multipole": st.fixed_dictionaries({"knl": st.tuples(wide(1e3), wide(1e5), wide(1e8))}),
    "Solenoid": st.fixed_dictionaries({"length": signed_lengths, "ks": wide(1e4)}),
    "Kicker": st.fixed_dictionaries({"length": signed_lengths, "hkick": wide(10.0),
                                     "vkick": wide(10.0)}),
    "RFCavity": st.fixed_dictionaries({"length": lengths, "voltage": wide(1e10),
                                       "frequency": st.floats(1e3, 1e11),
                                       "phi0": wide(1.0)}),
    "LCavity": st.fixed_dictionaries({"length": lengths, "voltage": wide(1e10),
                                      "frequency": st.floats(1e3, 1e11), "phi0": wide(1.0)}),
    "Aperture": st.fixed_dictionaries({"x_limit": st.floats(0.0, 1.0),
                                       "y_limit": st.floats(0.0, 1.0)}),
}
GRADIENT = {"Drift": "length", "Quadrupole": "k1", "SBend": "k1", "Sextupole": "k2",
            "Octupole": "k3", "Solenoid": "ks", "Kicker": "hkick", "RFCavity": "voltage",
            "LCavity": "voltage"}
#: Elements that change the reference: lost particles are re-expressed at its exit.
REFERENCE_CHANGING = {"LCavity"}


def coordinate() -> st.SearchStrategy[float]:
    return st.one_of(st.floats(-1e-2, 1e-2), st.sampled_from([0.0, 0.9, -1.5, 1e3]),
                     st.sampled_from([np.nan, np.inf, -np.inf]))


beams = st.lists(st.lists(coordinate(), min_size=6, max_size=6), min_size=1, max_size=6)


@pytest.mark.parametrize("name", ["numpy", "torch"])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_tracking_keeps_alive_particles_finite_and_lost_ones_frozen(name, kind):
    backend = backend_or_skip(name)

    @SETTINGS
    @given(params=KINDS[kind], rows=beams, dead=st.lists(st.booleans(), min_size=6,
                                                          max_size=6),
           offsets=misalignments, misaligned=st.booleans())
    def check(params, rows, dead, offsets, misaligned):
        beam = np.array(rows, dtype=np.float64).T  # (6, n)
        n = beam.shape[1]
        alive_in = ~np.array(dead[:n])
        if misaligned and kind not in ("Multipole", "Drift"):
            params = {**params, **offsets}
        differentiable = GRADIENT.get(kind)
        values = dict(params)
        leaf = None
        if name == "torch" and differentiable:
            torch = backend.module()
            leaf = torch.tensor(values[differentiable], dtype=torch.float64,
                                requires_grad=True)
            values[differentiable] = leaf
        element = getattr(bt, kind)("e", **values)
        p = bt.Particles(coords=backend.asarray(beam), p0c=P0C, mc2=ELECTRON_MC2,
                         alive=backend.asarray(alive_in))
        out = element.track(p)
        coords = backend.to_numpy(out.coords)
        alive = backend.to_numpy(out.alive)
        assert not (alive & ~alive_in).any(), "a lost particle came back"
        assert np.isfinite(coords[:, alive]).all(), "NaN or inf on an alive particle"
        bad_input = ~np.isfinite(beam).all(axis=0)
        assert not (alive & bad_input).any(), "a non-finite particle stayed alive"
        if kind not in REFERENCE_CHANGING:
            np.testing.assert_array_equal(coords[:, ~alive_in], beam[:, ~alive_in])
            np.testing.assert_array_equal(coords[:, bad_input], beam[:, bad_input])
        lost_inside = alive_in & ~alive & ~bad_input
        assert np.isfinite(coords[:, lost_inside]).all(), "a particle was lost as NaN"
        if leaf is not None:
            torch = backend.module()
            kept = torch.where(out.alive, out.coords, 0.0)
            (torch.sum(kept * kept) + torch.sum(out.alive.to(torch.float64))).backward()
            assert torch.isfinite(leaf.grad), "non-finite gradient"

    check()


# -- the JSON reader, fuzzed ---------------------------------------------------------------

VALID = bt.dumps(bt.Beamline([bt.Drift("d1", length=1.0),
                              bt.Quadrupole("q1", length=0.2, k1=1.2),
                              bt.Beamline([bt.Marker("m1")], name="inner")], name="line"))

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
              st.text(max_size=8), st.sampled_from(["Drift", "Beamline", "Quadrupole"])),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(["kind", "name", "elements", "length", "k1",
                                         "method", "array", "dtype", "x"]),
                        children, max_size=5)),
    max_leaves=20)


def _read(text: str) -> None:
    try:
        line = bt.loads(text)
    except bt.LatticeFileError as error:
        assert str(error).startswith("<string>")
    else:
        assert isinstance(line, bt.Beamline)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(beamline=json_values)
def test_json_reader_random_documents(beamline):
    _read(json.dumps({"format": "beamtrack-lattice", "version": 1, "beamline": beamline}))


@settings(max_examples=40, deadline=None, derandomize=True)
@given(position=st.integers(0, len(VALID) - 1), cut=st.integers(0, 20),
       insert=st.text(alphabet='{}[]",:0123456789.eE-truefalsn ', max_size=10))
def test_json_reader_corrupted_files(position, cut, insert):
    _read(VALID[:position] + insert + VALID[position + cut:])


@settings(max_examples=40, deadline=None, derandomize=True)
@given(data=st.binary(max_size=64))
def test_json_reader_binary_files(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "lattice.json"
    path.write_bytes(data)
    try:
        bt.load(path)
    except bt.LatticeFileError as error:
        assert str(error).startswith(str(path))
