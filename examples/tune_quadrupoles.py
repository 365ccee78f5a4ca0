"""Gradient-based tuning: Adam (PyTorch) sets 10 quadrupoles for a round 0.5 mm beam.

    python examples/tune_quadrupoles.py [--steps 200] [--particles 2000]
"""

from __future__ import annotations

import argparse

import torch

import beamtrack as bt
from beamtrack.backends.torch_module import beamline_module


def build_line() -> bt.Beamline:
    items = []
    for i in range(10):
        items += [bt.Quadrupole(f"q{i}", length=0.2, k1=1.0 if i % 2 == 0 else -1.0),
                  bt.Drift(f"d{i}", length=0.8)]
    items.append(bt.Screen("screen", resolution=(64, 64), pixel_size=(5e-5, 5e-5)))
    return bt.Beamline(items, name="matching_section")


def main(steps: int = 200, particles: int = 2000, target: float = 5e-4) -> dict:
    line = build_line()
    beam = bt.Particles.from_twiss(particles, beta_x=10.0, alpha_x=1.0, emittance_x=2e-8,
                                   beta_y=5.0, alpha_y=-0.5, emittance_y=2e-8,
                                   sigma_pz=1e-3, p0c=1e9, mc2=bt.electron.mc2,
                                   backend="torch", seed=1)
    module = beamline_module(line, ["q*.k1"])
    optimiser = torch.optim.Adam(module.parameters(), lr=0.02)

    def objective() -> torch.Tensor:
        stats = bt.beam_statistics(module(beam))
        sx, sy = stats["sigma_x"], stats["sigma_y"]
        return ((sx - target) / target) ** 2 + ((sy - target) / target) ** 2

    first = objective().item()
    for _ in range(steps):
        optimiser.zero_grad()
        loss = objective()
        loss.backward()
        optimiser.step()
    stats = bt.beam_statistics(module(beam))
    result = {"loss_start": first, "loss_end": objective().item(),
              "sigma_x": stats["sigma_x"].item(), "sigma_y": stats["sigma_y"].item()}
    print(f"loss {result['loss_start']:.3g} -> {result['loss_end']:.3g}; "
          f"sigma_x = {1e3 * result['sigma_x']:.3f} mm, sigma_y = {1e3 * result['sigma_y']:.3f} mm "
          f"(target {1e3 * target:.3f} mm)")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--particles", type=int, default=2000)
    args = parser.parse_args()
    main(args.steps, args.particles)
