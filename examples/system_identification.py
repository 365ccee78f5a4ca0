"""System identification: recover quadrupole offsets and strength errors from BPM data.

Several steered orbits (a corrector at different settings, tracked as one batch) are
read by BPMs after every quadrupole; L-BFGS (PyTorch autograd gradients) adjusts the
model's offsets and strength errors until its readings match the "measured" ones.

    python examples/system_identification.py [--steps 100]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import beamtrack as bt

N_QUADS = 6
TRUE_OFFSETS = np.array([2e-4, -1e-4, 1.5e-4, -2e-4, 0.5e-4, 1e-4])
TRUE_DK1 = np.array([0.02, -0.03, 0.01, 0.04, -0.02, 0.03])


def build_line(offsets, dk1) -> bt.Beamline:
    items = [bt.HKicker("steer", kick=0.0), bt.Drift("d_in", length=1.0)]
    for i in range(N_QUADS):
        k1 = (1.2 if i % 2 == 0 else -1.2) + dk1[i]
        items += [bt.Quadrupole(f"q{i}", length=0.3, k1=k1, x_offset=offsets[i]),
                  bt.Drift(f"d{i}", length=1.0), bt.Monitor(f"bpm{i}")]
    return bt.Beamline(items, name="transport")


def readings(line: bt.Beamline, kicks, beam) -> torch.Tensor:
    obs = line.replace("steer", kick=kicks).observe(beam)
    return torch.stack([obs.readings[f"bpm{i}"][..., 0] for i in range(N_QUADS)], dim=-1)


def main(steps: int = 100) -> dict:
    kicks = torch.linspace(-5e-4, 5e-4, 5, dtype=torch.float64)
    beam = bt.Particles(*torch.zeros((6, 1), dtype=torch.float64), p0c=1e9,
                        mc2=bt.electron.mc2)
    measured = readings(build_line(torch.tensor(TRUE_OFFSETS), torch.tensor(TRUE_DK1)),
                        kicks, beam).detach()
    offsets = torch.zeros(N_QUADS, dtype=torch.float64, requires_grad=True)
    dk1 = torch.zeros(N_QUADS, dtype=torch.float64, requires_grad=True)
    # A least-squares problem: L-BFGS with a line search converges in a few dozen steps.
    optimiser = torch.optim.LBFGS([offsets, dk1], lr=1.0, max_iter=steps,
                                  line_search_fn="strong_wolfe", tolerance_grad=1e-12,
                                  tolerance_change=1e-15)
    scale = 1e-4

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        # Parameters are optimised in units of 0.1 mm and 0.1 m^-2 for similar scales.
        model = build_line(list(offsets * scale), list(dk1 * 0.1))
        loss = torch.mean(((readings(model, kicks, beam) - measured) / 1e-6) ** 2)
        loss.backward()
        return loss

    optimiser.step(closure)
    loss = closure()
    found_offsets = offsets.detach().numpy() * scale
    found_dk1 = dk1.detach().numpy() * 0.1
    result = {
        "rms_residual_um": float(loss.detach().sqrt()),
        "offset_error_max": float(np.max(np.abs(found_offsets - TRUE_OFFSETS))),
        "dk1_error_max": float(np.max(np.abs(found_dk1 - TRUE_DK1))),
    }
    print(f"BPM residual {result['rms_residual_um']:.3g} um rms; largest offset error "
          f"{1e6 * result['offset_error_max']:.3g} um, largest k1 error "
          f"{result['dk1_error_max']:.3g} m^-2")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="L-BFGS iterations")
    main(parser.parse_args().steps)
