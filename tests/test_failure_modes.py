"""Failure modes (issue 12): one error hierarchy, validated input, losses with a reason
instead of NaN, finite gradients at overflow, and a CLI that never shows a traceback."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import ELECTRON_MC2, P0C, alive_np, backend_or_skip, make_particles, to_np

import beamtrack as bt
from beamtrack import cli
from beamtrack.backends.errors import NoAutodiffError, PrecisionError
from beamtrack.lattice.errors import UnknownParameterError
from beamtrack.tracking.losses import LossReason

# -- one error hierarchy -----------------------------------------------------------------


@pytest.mark.parametrize("error, standard", [
    (bt.ParameterError, ValueError), (bt.LatticeError, ValueError),
    (bt.LatticeFileError, ValueError), (UnknownParameterError, TypeError),
    (bt.BackendError, RuntimeError), (bt.backends.BackendUnavailableError, RuntimeError),
    (PrecisionError, RuntimeError), (NoAutodiffError, RuntimeError),
    (bt.backends.DefaultsError, ValueError),
])
def test_every_documented_error_is_a_beamtrack_error_and_keeps_its_standard_base(
        error, standard):
    assert issubclass(error, bt.BeamtrackError)
    assert issubclass(error, standard)


# -- validated reference and particle input -------------------------------------------------

def _particles(**kw):
    return bt.Particles(*np.full((6, 3), 1e-3), **{"p0c": P0C, "mc2": ELECTRON_MC2, **kw})


@pytest.mark.parametrize("field, value", [
    ("p0c", 0.0), ("p0c", -1e9), ("p0c", math.nan), ("p0c", math.inf),
    ("mc2", -1.0), ("mc2", math.nan), ("s", math.inf),
])
def test_bad_reference_values_are_rejected_with_the_field_named(field, value):
    with pytest.raises(bt.ParameterError, match=field):
        _particles(**{field: value})


def test_bad_reference_arrays_are_rejected_on_every_backend(xp):
    coords = xp.asarray(np.full((2, 6, 3), 1e-3))
    with pytest.raises(bt.ParameterError, match="p0c"):
        bt.Particles(coords=coords, p0c=xp.asarray(np.array([1e9, -1e9])), mc2=ELECTRON_MC2)
    with pytest.raises(bt.ParameterError, match=r"\(3,\).*\(2,\)"):
        bt.Particles(coords=coords, p0c=xp.asarray(np.full(3, 1e9)), mc2=ELECTRON_MC2)


def test_massless_reference_is_allowed():
    assert float(_particles(mc2=0.0).mc2) == 0.0


def test_integer_coordinates_become_float64_exactly_and_complex_ones_are_rejected():
    p = bt.Particles(coords=np.arange(18, dtype=np.int32).reshape(6, 3), p0c=P0C,
                     mc2=ELECTRON_MC2)
    assert p.dtype == np.float64
    np.testing.assert_array_equal(p.coords, np.arange(18).reshape(6, 3))
    with pytest.raises(bt.ParameterError, match="real"):
        bt.Particles(*(np.zeros((6, 3)) + 1j), p0c=P0C, mc2=ELECTRON_MC2)


def test_integer_beam_dtype_is_rejected_not_truncated():
    with pytest.raises(bt.BeamtrackError, match="int32"):
        bt.gaussian_particles(10, sigma=[1e-3] * 6, reference=bt.Reference(bt.electron, 1e9),
                              dtype="int32")


def test_alive_of_the_wrong_shape_is_rejected_and_a_broadcastable_one_accepted():
    with pytest.raises(bt.ParameterError, match=r"\(5,\).*\(3,\)"):
        _particles(alive=np.ones(5, dtype=bool))
    p = bt.Particles(coords=np.zeros((2, 6, 3)), p0c=P0C, mc2=ELECTRON_MC2,
                     alive=np.array([True, False, True]))
    assert p.alive.shape == (2, 3)


def test_tracking_a_non_particles_object_says_what_was_expected():
    line = bt.Beamline([bt.Drift("d1", length=1.0), bt.Drift("d2", length=1.0)])
    for track in (line.track, line.observe, bt.Drift("d", length=1.0).track):
        with pytest.raises(bt.ParameterError, match="expected a beamtrack Particles"):
            track(np.zeros((6, 3)))


@pytest.mark.parametrize("element, parameter", [
    (bt.Drift("d1", length=np.ones(4)), "length"),
    (bt.Quadrupole("q1", length=0.5, k1=np.ones(4)), "k1"),
    (bt.SBend("b1", length=1.0, angle=np.full(4, 0.1)), "angle"),
])
def test_batch_shape_mismatch_names_element_parameter_and_shapes(element, parameter):
    p = bt.Particles(coords=np.zeros((3, 6, 5)), p0c=P0C, mc2=ELECTRON_MC2)
    with pytest.raises(bt.ParameterError) as info:
        element.track(p)
    message = str(info.value)
    assert element.name in message and repr(parameter) in message
    assert "(4,)" in message and "(3,)" in message


# -- losses with a reason ------------------------------------------------------------------

def _reason_beam(name):
    """Six particles: alive, outside the aperture, fine, NaN x, unphysical px, fine."""
    beam = np.zeros((6, 6))
    beam[:, 0] = [0.0, 2e-3, 5e-4, np.nan, 0.0, 1e-3]
    beam[4, 1] = 1.5
    return make_particles(name, beam)


def _reason_line(k1=-1e6):
    return bt.Beamline([bt.Drift("d1", length=1.0), bt.Aperture("ap1", x_limit=1.5e-3),
                        bt.Quadrupole("q1", length=1.0, k1=k1), bt.Drift("d2", length=1.0)])


#: Backends of the eager tests (JAX runs op by op eagerly, slowly: it is tested jitted).
EAGER = ["numpy", "torch", "array_api_strict"]


@pytest.mark.parametrize("method", ["bmad", "linear"])
@pytest.mark.parametrize("name", EAGER)
def test_observe_reports_where_and_why_each_particle_was_lost(name, method):
    backend_or_skip(name)
    obs = _reason_line().observe(_reason_beam(name), method=method)
    lost_at = np.asarray(to_np_int(obs.lost_at))
    reason = np.asarray(to_np_int(obs.lost_reason))
    # Particle 3 (NaN x) is lost at the first element, for its entry.
    assert lost_at[3] == 0 and reason[3] == LossReason.NON_FINITE_ENTRY
    assert lost_at[1] == 1 and reason[1] == LossReason.APERTURE
    # The quadrupole's cosh overflows: every particle reaching it is lost there.
    for i in (0, 2, 5):
        assert lost_at[i] == 2 and reason[i] == LossReason.NON_FINITE
    if method == "bmad":  # exact drift: px = 1.5 cannot move forward
        assert lost_at[4] == 0 and reason[4] == LossReason.UNPHYSICAL_MOMENTUM
    assert not alive_np(obs.particles).any()
    coords = to_np(obs.particles)
    finite = np.isfinite(coords).all(axis=0)
    assert finite[[0, 1, 2, 4, 5]].all()  # frozen, finite; particle 3 keeps its NaN
    np.testing.assert_array_equal(coords[:, 3], to_np(_reason_beam("numpy"))[:, 3])


def to_np_int(array):
    return bt.backends.backend_of(array).to_numpy(array)


def test_below_rest_energy_is_its_own_reason():
    p = bt.Particles(*np.zeros((6, 3)), p0c=1e6, mc2=ELECTRON_MC2)
    line = bt.Beamline([bt.LCavity("c1", length=1.0, voltage=-5e6, frequency=1e9),
                        bt.Drift("d1", length=1.0)])
    obs = line.observe(p)
    assert obs.lost_reason.tolist() == [LossReason.BELOW_REST_ENERGY] * 3


def test_survivors_and_particles_lost_before_have_reason_zero_and_track_is_unchanged():
    beam = np.zeros((6, 4))
    beam[0] = [0.0, 1e-4, 2e-4, 3e-3]
    p = bt.Particles(*beam, p0c=P0C, mc2=ELECTRON_MC2, alive=[True, True, False, True])
    line = _reason_line(k1=1.2)
    obs = line.observe(p)
    assert obs.lost_reason.tolist() == [0, 0, 0, LossReason.APERTURE]
    np.testing.assert_array_equal(obs.particles.coords, line.track(p).coords)


def test_observe_reasons_under_jax_jit_and_finite_jax_gradients():
    jax = backend_or_skip("jax").module()
    line = _reason_line()
    p = _reason_beam("jax")
    reference = line.observe(_reason_beam("numpy"))
    jitted = jax.jit(line.observe)(p)
    np.testing.assert_array_equal(np.asarray(jitted.lost_reason), reference.lost_reason)
    np.testing.assert_array_equal(np.asarray(jitted.lost_at), reference.lost_at)

    def loss(k1):
        out = bt.Quadrupole("q1", length=1.0, k1=k1).track(p)
        return jax.numpy.sum(jax.numpy.where(out.alive, out.x, 0.0) ** 2 + out.px ** 2)

    grad = jax.jit(jax.grad(loss))(jax.numpy.asarray(-1e6))
    assert np.isfinite(float(grad))


@pytest.mark.parametrize("name", EAGER)
def test_nan_entry_is_lost_and_frozen_in_every_element_kind(name):
    backend_or_skip(name)
    beam = np.full((6, 2), 1e-4)
    beam[2, 1] = np.inf
    for element in _elements():
        out = element.track(make_particles(name, beam.T))
        assert alive_np(out).tolist() == [True, False], element.name
        got = to_np(out)
        assert np.isfinite(got[:, 0]).all(), element.name
        if element.name != "lc":  # an lcavity re-expresses lost ones at its exit p0c
            np.testing.assert_array_equal(got[:, 1], beam[:, 1], err_msg=element.name)


def _elements():
    return [
        bt.Drift("d", length=0.5), bt.Quadrupole("q", length=0.3, k1=2.0),
        bt.SBend("b", length=1.0, angle=0.1, k1=0.3), bt.Sextupole("s", length=0.2, k2=10.0),
        bt.Octupole("o", length=0.2, k3=100.0), bt.Solenoid("sol", length=0.5, ks=0.5),
        bt.RFCavity("rf", length=0.5, voltage=1e6, frequency=1e9),
        bt.LCavity("lc", length=0.5, voltage=1e6, frequency=1e9),
        bt.HKicker("hk", length=0.1, kick=1e-4), bt.Multipole("m", knl=(0.0, 0.1, 1.0)),
    ]


@pytest.mark.parametrize("k1", [-1e6, 1e6, -4e4])
@pytest.mark.parametrize("kind", ["quadrupole", "sbend", "linear quadrupole"])
def test_overflow_is_a_loss_with_finite_gradients(k1, kind):
    ad = backend_or_skip("torch")
    xp = ad.namespace()
    p = make_particles(ad.name, np.random.default_rng(0).normal(0.0, 1e-3, (5, 6)))

    def loss(k):
        if kind == "sbend":
            element = bt.SBend("b", length=1.0, angle=0.1, k1=k)
        else:
            element = bt.Quadrupole("q", length=1.0, k1=k,
                                    method="linear" if kind.startswith("linear") else None)
        out = element.track(p)
        return xp.sum(out.coords ** 2) + xp.sum(xp.astype(out.alive, out.dtype))

    value, grad = ad.value_and_grad(loss)(ad.asarray(k1))
    assert math.isfinite(float(ad.to_numpy(value)))
    assert math.isfinite(float(ad.to_numpy(grad)))


def test_gradients_stay_finite_when_a_particle_enters_with_nan():
    torch = backend_or_skip("torch").module()
    beam = np.random.default_rng(1).normal(0.0, 1e-3, (4, 6))
    beam[2, 0] = np.nan
    p = make_particles("torch", beam)
    k1 = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    line = bt.Beamline([bt.Quadrupole("q", length=0.3, k1=k1), bt.Drift("d", length=1.0)])
    out = line.track(p)
    torch.sum(torch.where(out.alive, out.x, 0.0) ** 2).backward()
    assert torch.isfinite(k1.grad)
    assert out.alive.tolist() == [True, True, False, True]


# -- the command line ------------------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["track", "--p0c", "0"], "--p0c"), (["track", "--p0c=-1e9"], "--p0c"),
    (["track", "--p0c", "nan"], "--p0c"), (["track", "--particles", "0"], "--particles"),
    (["crosscheck", "--tolerance", "nan"], "--tolerance"),
    (["crosscheck", "--tolerance", "inf"], "--tolerance"),
])
def test_cli_rejects_bad_numbers_in_one_line(capsys, argv, message):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("beamtrack: error: ") and message in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("content", [
    bytes(range(256)),
    b'{"format": "beamtrack-lattice", "version": 1, "beamline": '
    + b"[" * 50_000 + b"]" * 50_000 + b"}",
    b'{"format": "beamtrack-lattice", "version": 1, "beamline": {"kind": "Beamline", '
    b'"name": "l", "elements": [{"kind": "Drift", "length": 1' + b"0" * 400 + b"}]}}",
    b'{"format": "beamtrack-lattice", "version": 1, "beamline": {"kind": "Beamline", '
    b'"name": "l", "elements": [{"kind": 3}]}}',
])
def test_cli_reports_malformed_files_in_one_line(tmp_path, capsys, content):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    assert cli.main(["track", str(path), "--particles", "10"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"beamtrack: error: {path}") and err.count("\n") == 1


def test_cli_plot_writes_the_named_file(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    target = tmp_path / "out"
    assert cli.main(["optics", "--plot", str(target)]) == 0
    assert target.is_file() and not (tmp_path / "out.png").exists()
    assert target.read_bytes()[:4] == b"\x89PNG"


# -- negative lengths ---------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda length: bt.Drift("d", length=length),
    lambda length: bt.Quadrupole("q", length=length, k1=1.5),
    lambda length: bt.Solenoid("s", length=length, ks=0.4),
], ids=["drift", "quadrupole", "solenoid"])
def test_a_negative_length_undoes_the_positive_one(make):
    beam = np.random.default_rng(3).normal(0.0, 1e-3, (6, 5))
    p = bt.Particles(*beam, p0c=P0C, mc2=ELECTRON_MC2)
    there = make(0.7).track(p)
    back = make(-0.7).track(there)
    assert float(back.s) == 0.0 and back.alive.all()
    np.testing.assert_allclose(back.coords, p.coords, rtol=0.0, atol=1e-15)


def test_bends_reject_a_negative_length():
    with pytest.raises(bt.ParameterError, match="length"):
        bt.SBend("b", length=-1.0, angle=0.1)
