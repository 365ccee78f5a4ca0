"""Bayesian optimisation with a beamtrack prior mean against a constant mean.

    python examples/bo_prior_mean.py [--evaluations 30] [--seeds 5] [--plot bo.png]

Task: set the four quadrupoles of the example FODO (k1 in [-5, 5] 1/m^2) so that the
beam at its end is centred and 0.2 mm in both planes; the objective, maximised, is
``-log10(D / 1 mm^2 + 0.01)`` with the squared distance
``D = mu_x^2 + mu_y^2 + (sigma_x - 0.2 mm)^2 + (sigma_y - 0.2 mm)^2`` (the logarithm
tames the range of D, 1e-3 to 1e3 mm^2, for the GP; the floor caps the objective at 2,
so that the model's exact optima are not infinitely attractive).
The "real machine" differs from the model: every quadrupole is misaligned by 25 to
75 um and its strength is off by a few per cent, so the real optimum is not the
model's. Both optimisers start from the same two random settings and use LogEI on a
SingleTaskGP; one has a constant prior mean, the other
:class:`beamtrack.bo.BeamlinePriorMean` with calibration. The result: evaluations until
the objective first exceeds the target, per seed, and the best-so-far curves (plotted
against evaluations with ``--plot``).
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np

import beamtrack as bt

KEYS = ["qf1.k1", "qd1.k1", "qf2.k1", "qd2.k1"]
SIGMA = [5e-4, 5e-5, 5e-4, 5e-5, 1e-3, 1e-3]
TARGET_SIZE = 2e-4  # m
MM2 = 1e-6  # m^2
#: Misalignments (m) and relative strength errors of the real machine.
OFFSETS = {"qf1": (5e-5, -2.5e-5), "qd1": (-4e-5, 6e-5), "qf2": (2.5e-5, 7.5e-5),
           "qd2": (-7.5e-5, -2.5e-5)}
STRENGTH_ERRORS = {"qf1": 0.03, "qd1": -0.04, "qf2": 0.02, "qd2": 0.05}


def objective(beam) -> object:
    """The objective of a tracked moment beam (any batch shape), maximised."""
    mean, size = beam.mean, bt.statistics.rms_size(beam)
    distance = (mean[..., 0] ** 2 + mean[..., 2] ** 2 + (size[..., 0] - TARGET_SIZE) ** 2
                + (size[..., 2] - TARGET_SIZE) ** 2) / MM2
    return -(distance + 0.01).log10()


def real_machine(line: bt.Beamline) -> bt.Beamline:
    """The model with the misalignments and strength errors of the "real" machine."""
    for name, (dx, dy) in OFFSETS.items():
        line = line.replace(name, x_offset=dx, y_offset=dy)
    return line


def measure(line: bt.Beamline, beam, k1) -> object:
    """Objective of the real machine at settings ``k1`` (tensor ``(M, 4)``)."""
    values = {key: k1[:, i] * (1 + STRENGTH_ERRORS[key.split(".")[0]])
              for i, key in enumerate(KEYS)}
    return objective(line.with_parameters(values).track(beam))


def run_bo(prior: bool, seed: int, evaluations: int, initial: int, line, real, beam,
           bounds, progress: bool) -> list[float]:
    """Best-so-far objective after each evaluation."""
    import torch
    from botorch.acquisition import LogExpectedImprovement
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.transforms.input import Normalize
    from botorch.optim import optimize_acqf
    from gpytorch.mlls import ExactMarginalLogLikelihood
    from tqdm.auto import tqdm

    from beamtrack.bo import BeamlinePriorMean

    generator = torch.Generator().manual_seed(seed)
    x = bounds[0] + torch.rand(initial, 4, generator=generator, dtype=torch.float64) * (
        bounds[1] - bounds[0])
    y = measure(real, beam, x)[:, None]
    for _ in tqdm(range(evaluations - initial), disable=not progress,
                  desc="prior" if prior else "constant", leave=False):
        mean = (BeamlinePriorMean(line, KEYS, objective=objective, beam=beam, bounds=bounds,
                                  calibrate=True) if prior else None)
        gp = SingleTaskGP(x, y, mean_module=mean, input_transform=Normalize(4, bounds=bounds))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit_gpytorch_mll(ExactMarginalLogLikelihood(gp.likelihood, gp),
                             optimizer_kwargs={"options": {"maxiter": 60}})
            acquisition = LogExpectedImprovement(gp, best_f=y.max())
            # The model takes physical settings (its Normalize transform maps them to
            # the unit cube, where the prior mean and the kernel work).
            candidate, _ = optimize_acqf(acquisition, bounds=bounds, q=1, num_restarts=4,
                                         raw_samples=128, options={"maxiter": 60})
        new = candidate.detach()
        x = torch.cat([x, new])
        y = torch.cat([y, measure(real, beam, new)[:, None]])
    return np.maximum.accumulate(y[:, 0].detach().numpy()).tolist()


def main(evaluations: int = 30, seeds: int = 5, initial: int = 2, target: float = 1.4,
         plot: str | None = None, threads: int = 1, progress: bool = True) -> dict:
    """Run both optimisers ``seeds`` times; returns the curves and evaluations to target.

    ``threads``: torch threads (one is fastest for these small batched problems and
    avoids contention on a shared machine).
    """
    import torch

    torch.set_num_threads(threads)
    line = bt.load(bt.EXAMPLE_LATTICE)
    real = real_machine(line)
    beam = bt.ParameterBeam(torch.zeros(6, dtype=torch.float64),
                            torch.diag(torch.tensor(SIGMA, dtype=torch.float64) ** 2),
                            p0c=1e9, mc2=bt.electron.mc2)
    bounds = torch.tensor([[-5.0] * 4, [5.0] * 4], dtype=torch.float64)
    curves: dict[str, list[list[float]]] = {"constant": [], "prior": []}
    for seed in range(seeds):
        for name in curves:
            curves[name].append(run_bo(name == "prior", seed, evaluations, initial, line,
                                       real, beam, bounds, progress))

    def reached(curve: list[float]) -> int | None:
        hits = [i + 1 for i, v in enumerate(curve) if v >= target]
        return hits[0] if hits else None

    result = {"curves": curves, "target": target,
              "evaluations_to_target": {k: [reached(c) for c in v] for k, v in curves.items()},
              "final_best": {k: float(np.median([c[-1] for c in v])) for k, v in curves.items()}}
    for name, hits in result["evaluations_to_target"].items():
        print(f"{name:8s} mean: evaluations to reach {target}: {hits}; median final best "
              f"{result['final_best'][name]:.4f}")
    if plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
        for name, color in (("constant", "tab:gray"), ("prior", "tab:blue")):
            data = np.array(curves[name])
            steps = np.arange(1, data.shape[1] + 1)
            ax.plot(steps, np.median(data, axis=0), color=color,
                    label=f"{name} mean (median of {len(data)})")
            ax.fill_between(steps, data.min(axis=0), data.max(axis=0), color=color, alpha=0.2)
        ax.axhline(target, color="k", ls="--", lw=0.8, label="target")
        ax.set_xlabel("evaluations of the real machine")
        ax.set_ylabel(r"best objective so far, $-\log_{10}(D / \mathrm{mm}^2)$")
        ax.legend()
        fig.savefig(plot, dpi=120)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluations", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--initial", type=int, default=2)
    parser.add_argument("--target", type=float, default=1.4)
    parser.add_argument("--plot", default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    main(args.evaluations, args.seeds, args.initial, args.target, args.plot, args.threads)
