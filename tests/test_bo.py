"""beamtrack.bo: the beamline prior mean for Bayesian optimisation."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="beamtrack.bo needs torch")
pytest.importorskip("botorch", reason="beamtrack.bo needs the 'bo' extra")

import beamtrack as bt  # noqa: E402
from beamtrack.bo import BeamlinePriorMean  # noqa: E402

KEYS = ["qf1.k1", "qd2.k1"]
SIGMA = np.array([5e-4, 5e-5, 5e-4, 5e-5, 1e-3, 1e-3])


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Small batched problems run fastest on one thread (two contend on a shared CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def moment_beam() -> bt.ParameterBeam:
    return bt.ParameterBeam(torch.zeros(6, dtype=torch.float64),
                            torch.diag(torch.tensor(SIGMA**2)), p0c=1e9, mc2=bt.electron.mc2)


def size_x(beam) -> torch.Tensor:
    return -bt.statistics.rms_size(beam)[..., 0] / 1e-3


def reference_size_x(k: np.ndarray) -> float:
    """-sigma_x [mm] at the end from the NumPy transfer map of the whole line."""
    line = bt.load(bt.EXAMPLE_LATTICE).with_parameters(dict(zip(KEYS, k)))
    r, _ = bt.transfer_map(line)
    return -float(np.sqrt((r @ np.diag(SIGMA**2) @ r.T)[0, 0])) / 1e-3


def test_prior_mean_is_the_objective_at_every_input_of_a_batch():
    mean = BeamlinePriorMean(bt.load(bt.EXAMPLE_LATTICE), KEYS, objective=size_x,
                             beam=moment_beam())
    x = torch.tensor([[[2.0, -2.0], [1.0, -3.0], [0.5, 0.5]],
                      [[3.0, -1.0], [-1.0, 1.0], [2.5, -2.5]]], dtype=torch.float64)
    value = mean(x)
    assert value.shape == (2, 3)
    expected = [[reference_size_x(k) for k in row] for row in x.numpy()]
    np.testing.assert_allclose(value.detach().numpy(), expected, rtol=1e-10)


def test_prior_mean_in_the_unit_cube_and_its_gradient():
    bounds = torch.tensor([[-5.0, -5.0], [5.0, 5.0]], dtype=torch.float64)
    mean = BeamlinePriorMean(bt.load(bt.EXAMPLE_LATTICE), KEYS, objective=size_x,
                             beam=moment_beam(), bounds=bounds)
    u = torch.tensor([[0.7, 0.3]], dtype=torch.float64, requires_grad=True)
    value = mean(u)
    assert float(value) == pytest.approx(reference_size_x(np.array([2.0, -2.0])), rel=1e-10)
    value.sum().backward()
    h = 1e-6
    for i in range(2):
        step = np.zeros(2)
        step[i] = h
        fd = (reference_size_x(np.array([2.0, -2.0]) + 10 * step)
              - reference_size_x(np.array([2.0, -2.0]) - 10 * step)) / (2 * h)
        assert float(u.grad[0, i]) == pytest.approx(fd, rel=1e-5)


def test_particle_beam_prior_agrees_with_the_moment_beam():
    particles = bt.gaussian_particles(4000, sigma=list(SIGMA), p0c=1e9, mc2=bt.electron.mc2,
                                      seed=0, backend="torch")
    line = bt.load(bt.EXAMPLE_LATTICE)
    mean = BeamlinePriorMean(line, KEYS, objective=size_x, beam=particles, method="linear")
    x = torch.tensor([[2.0, -2.0], [1.0, -3.0]], dtype=torch.float64)
    expected = [reference_size_x(k) for k in x.numpy()]
    # 4000 particles: RMS size within 5 % (statistical error about 1.1 %).
    np.testing.assert_allclose(mean(x).detach().numpy(), expected, rtol=0.05)


def test_calibration_parameters_correct_a_wrong_model():
    """The "machine" gives twice the model's objective plus 1 at inputs shifted by 0.1:
    fitting the calibration (here by least squares; in BO together with the GP's
    hyperparameters) recovers scale 2, offset 1 and the input shift."""
    line = bt.load(bt.EXAMPLE_LATTICE)
    mean = BeamlinePriorMean(line, KEYS, objective=size_x, beam=moment_beam(),
                             calibrate=True)
    assert {n for n, _ in mean.named_parameters()} == {"input_offset", "output_scale",
                                                       "output_offset"}
    x = torch.tensor([[2.0, -2.0], [1.0, -3.0], [3.0, -1.0], [1.5, -1.5], [2.5, -3.5],
                      [0.5, -0.5], [3.5, -2.5], [1.2, -2.2]], dtype=torch.float64)
    shift = np.array([0.1, -0.1])
    y = torch.tensor([2.0 * reference_size_x(k + shift) + 1.0 for k in x.numpy()],
                     dtype=torch.float64)
    optimizer = torch.optim.LBFGS(mean.parameters(), max_iter=200, tolerance_grad=1e-12,
                                  tolerance_change=1e-14, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = ((mean(x) - y) ** 2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    assert float(mean.output_scale) == pytest.approx(2.0, rel=1e-4)
    assert float(mean.output_offset) == pytest.approx(1.0, rel=1e-4)
    np.testing.assert_allclose(mean.input_offset.detach().numpy(), shift, atol=1e-4)


def test_prior_mean_refuses_numpy_beams_and_unknown_parameters():
    np_beam = bt.ParameterBeam(np.zeros(6), np.diag(SIGMA**2), p0c=1e9, mc2=bt.electron.mc2)
    line = bt.load(bt.EXAMPLE_LATTICE)
    with pytest.raises(bt.ParameterError, match="torch"):
        BeamlinePriorMean(line, KEYS, objective=size_x, beam=np_beam)
    with pytest.raises(bt.ParameterError, match="no parameter"):
        BeamlinePriorMean(line, ["qf1.k7"], objective=size_x, beam=moment_beam())
