"""A neural-network surrogate inside a beamline, trained on tracking data, used for tuning.

    python examples/surrogate_element.py [--train-steps 1500] [--tune-steps 150]

The "component" is a sextupole-corrected quadrupole (a quadrupole of variable strength
followed by a fixed thin sextupole: nonlinear). A small network learns its map
``(x, px, y, py; k1) -> (x, px, y, py)`` from tracking data of the real element at random
strengths, and goes into the line as a :class:`beamtrack.Custom` element whose ``k1`` is
a differentiable parameter. The tuning loop then sets an upstream quadrupole and the
surrogate's ``k1`` by gradient descent (gradients through the network) to reach a target
beam size; finally the real component replaces the surrogate at the tuned settings to
check the result.
"""

from __future__ import annotations

import argparse

import numpy as np

import beamtrack as bt

P0C, MC2 = 1e9, bt.electron.mc2
SIGMA = [5e-4, 5e-5, 5e-4, 5e-5, 0.0, 0.0]
TARGET = 3e-4  # m, RMS size in x and y at the end
K1_RANGE = (-4.0, 4.0)
SCALE = np.array([2e-3, 4e-4, 2e-3, 4e-4])  # normalisation of (x, px, y, py)


def component(k1=1.0) -> bt.Beamline:
    """The real component: a quadrupole of strength ``k1`` and a fixed thin sextupole."""
    return bt.Beamline([bt.Quadrupole("qc", length=0.3, k1=k1),
                        bt.Multipole("sext", knl=(0.0, 0.0, 50.0))], name="component")


def train_surrogate(steps: int, seed: int = 0, progress: bool = True):
    """Fit a network to the component's map; returns it and its final relative error."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    n = 20_000
    k1 = rng.uniform(*K1_RANGE, n)
    coords = np.zeros((6, n))
    coords[:4] = rng.standard_normal((4, n)) * SCALE[:, None] / 2
    out = _per_particle(coords, k1)
    inputs = torch.tensor(np.vstack([coords[:4] / SCALE[:, None], k1[None] / 4.0]).T)
    targets = torch.tensor(((np.asarray(out.coords)[:4] - coords[:4]) / SCALE[:, None]).T)
    network = torch.nn.Sequential(torch.nn.Linear(5, 64, dtype=torch.float64), torch.nn.Tanh(),
                                  torch.nn.Linear(64, 64, dtype=torch.float64), torch.nn.Tanh(),
                                  torch.nn.Linear(64, 4, dtype=torch.float64))
    optimizer = torch.optim.Adam(network.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    iterator = range(steps)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="surrogate")
    for _ in iterator:
        batch = torch.randint(0, n, (2048,))
        loss = ((network(inputs[batch]) - targets[batch]) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    with torch.no_grad():
        error = float(((network(inputs) - targets) ** 2).mean() / (targets**2).mean())
    return network, error


def _per_particle(coords: np.ndarray, k1: np.ndarray) -> bt.Particles:
    """Track each particle with its own strength: ``k1`` as a batch of one-particle beams."""
    particles = bt.Particles(coords=coords.T[:, :, None], p0c=P0C, mc2=MC2)  # (n, 6, 1)
    out = component(k1).track(particles)
    return bt.Particles(coords=np.asarray(out.coords)[:, :, 0].T, p0c=P0C, mc2=MC2)


def surrogate_element(network) -> bt.Custom:
    """The network as a beamline element with a differentiable parameter ``k1``."""
    import torch

    scale = torch.tensor(SCALE)

    def function(particles: bt.Particles, k1):
        c = particles.coords
        u = c[..., :4, :] / scale[:, None]
        k = torch.broadcast_to(k1 / 4.0, u[..., 0, :].shape)
        features = torch.cat([torch.movedim(u, -2, -1), k[..., None]], dim=-1)
        delta = torch.movedim(network(features), -1, -2) * scale[:, None]
        return particles.replace(coords=torch.cat([c[..., :4, :] + delta, c[..., 4:, :]],
                                                  dim=-2))

    return bt.Custom("surrogate", function=function, length=0.3, values={"k1": 1.0})


def main(train_steps: int = 1500, tune_steps: int = 150, progress: bool = True,
         threads: int | None = 1) -> dict:
    """Train the surrogate, tune through it, check with the real component."""
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    network, fit_error = train_surrogate(train_steps, progress=progress)
    for p in network.parameters():
        p.requires_grad_(False)
    beam = bt.gaussian_particles(2000, sigma=SIGMA, p0c=P0C, mc2=MC2, seed=1,
                                 backend="torch")
    drift = bt.Drift("d", length=1.0)
    q1 = bt.Quadrupole("q1", length=0.2, k1=0.0)
    line = bt.Beamline([drift, q1, bt.Drift("d2", length=0.5), surrogate_element(network),
                        bt.Drift("d3", length=1.5)])
    knobs = torch.tensor([1.0, -1.0], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([knobs], lr=0.05)
    losses = []
    for _ in range(tune_steps):
        tuned = line.with_parameters({"q1.k1": knobs[0], "surrogate.k1": knobs[1]})
        size = bt.statistics.rms_size(tuned.track(beam))
        loss = ((size[0] - TARGET) ** 2 + (size[2] - TARGET) ** 2) / TARGET**2
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    k_q1, k_c = (float(v) for v in knobs.detach())
    real_line = bt.Beamline([drift, q1.replace(k1=k_q1), bt.Drift("d2", length=0.5),
                             component(k_c), bt.Drift("d3", length=1.5)])
    with torch.no_grad():
        real_size = bt.statistics.rms_size(real_line.track(beam))
        model_size = bt.statistics.rms_size(line.with_parameters(
            {"q1.k1": k_q1, "surrogate.k1": k_c}).track(beam))
    result = {"fit_error": fit_error, "loss_start": losses[0], "loss_end": losses[-1],
              "k1": (k_q1, k_c),
              "size_surrogate": (float(model_size[0]), float(model_size[2])),
              "size_real": (float(real_size[0]), float(real_size[2]))}
    print(f"surrogate relative MSE {fit_error:.1e}; tuning loss {losses[0]:.3g} -> "
          f"{losses[-1]:.3g} at k1 = ({k_q1:.3f}, {k_c:.3f}); sizes through the surrogate "
          f"{1e3 * result['size_surrogate'][0]:.4f}, {1e3 * result['size_surrogate'][1]:.4f} "
          f"mm, through the real component {1e3 * result['size_real'][0]:.4f}, "
          f"{1e3 * result['size_real'][1]:.4f} mm (target {1e3 * TARGET} mm)")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-steps", type=int, default=1500)
    parser.add_argument("--tune-steps", type=int, default=150)
    args = parser.parse_args()
    main(args.train_steps, args.tune_steps)
