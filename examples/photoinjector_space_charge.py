"""Space charge in a photo-injector-like beamline: sizes with space charge on and off,
and a solenoid tuned with gradients for the smallest final size.

A 5 MeV (kinetic), 100 pC electron bunch (1 mm RMS transverse and longitudinal, 1 um
normalised emittance) drifts 0.5 m, crosses a 0.2 m solenoid and drifts 2 m to a
screen. Space charge (32^3 grid following the beam, a kick every 5 cm) blows the
bunch up; PyTorch's Adam then sets the solenoid's ``ks`` that minimises the final
horizontal RMS size, once without and once with space charge. The last part measures
the convergence of the final size with the number of kicks (split-step, second order).

    python examples/photoinjector_space_charge.py [--particles 20000] [--steps 40]
        [--plot docs/space-charge]
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch

import beamtrack as bt

KINETIC = 5e6  # eV
CHARGE = 100e-12  # C


def reference() -> bt.Reference:
    """Electrons of 5 MeV kinetic energy."""
    mc2 = bt.electron.mc2
    return bt.Reference(bt.electron, math.sqrt((KINETIC + mc2) ** 2 - mc2**2))


def build_line(ks: object = 3.0) -> bt.Beamline:
    """Drift, solenoid, drift (2.7 m)."""
    return bt.Beamline([bt.Drift("d1", length=0.5), bt.Solenoid("sol", length=0.2, ks=ks),
                        bt.Drift("d2", length=2.0)], name="injector",
                       reference=reference())


def bunch(particles: int, total_charge: float = CHARGE) -> bt.Particles:
    """The electron bunch (torch tensors)."""
    ref = reference()
    gamma = math.hypot(ref.p0c, ref.mc2) / ref.mc2
    emittance = 1e-6 / math.sqrt(gamma * gamma - 1)  # geometric, from 1 um normalised
    return bt.Particles.from_twiss(particles, beta_x=1e-3**2 / emittance, emittance_x=emittance,
                                   beta_y=1e-3**2 / emittance, emittance_y=emittance,
                                   sigma_z=1e-3, sigma_pz=1e-4, reference=ref,
                                   total_charge=total_charge, backend="torch", seed=2)


def sizes_along(line: bt.Beamline, beam: bt.Particles) -> tuple[np.ndarray, np.ndarray]:
    """``s`` [m] and horizontal RMS size [m] after each element."""
    s, sigma = [0.0], [float(bt.tracking.rms_size(beam)[0])]
    with torch.no_grad():
        for _, out in line.track_each(beam):
            s.append(float(out.s))
            sigma.append(float(bt.tracking.rms_size(out)[0]))
    return np.array(s), np.array(sigma)


def tune_solenoid(beam: bt.Particles, every: float | None, steps: int,
                  grid: tuple[int, int, int]) -> tuple[float, float]:
    """Adam on the solenoid's ``ks`` for the smallest final horizontal RMS size;
    returns (ks [1/m], final size [m])."""
    ks = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.Adam([ks], lr=0.1)

    def final_size() -> torch.Tensor:
        line = build_line(ks)
        if every is not None:
            line = line.with_space_charge(every, grid_shape=grid)
        return bt.tracking.rms_size(line.track(beam))[0]

    for _ in range(steps):
        optimiser.zero_grad()
        loss = final_size() * 1e3  # mm
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        return float(ks), float(final_size())


def convergence(beam: bt.Particles, kicks: tuple[int, ...],
                grid: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Relative error of the final horizontal size for each number of kicks over the
    2.7 m line, against a run with four times the most kicks."""
    line = build_line(3.0)
    length = float(line.length)

    def final(n: int) -> float:
        with torch.no_grad():
            out = line.with_space_charge(length / n, grid_shape=grid).track(beam)
        return float(bt.tracking.rms_size(out)[0])

    best = final(4 * max(kicks))
    errors = np.array([abs(final(n) / best - 1) for n in kicks])
    return np.array(kicks), errors


def main(particles: int = 20000, steps: int = 40, every: float = 0.05,
         grid: tuple[int, int, int] = (32, 32, 32), kicks: tuple[int, ...] = (4, 8, 16, 32),
         plot: str | None = None) -> dict:
    beam = bunch(particles)
    line = build_line()
    s_off, off = sizes_along(line, beam)
    s_on, on = sizes_along(line.with_space_charge(every, grid_shape=grid), beam)
    ks_off, size_off = tune_solenoid(beam, None, steps, grid)
    ks_on, size_on = tune_solenoid(beam, every, steps, grid)
    n_kicks, errors = convergence(beam, kicks, grid)
    result = {"final_off": off[-1], "final_on": on[-1], "ks_off": ks_off, "ks_on": ks_on,
              "tuned_off": size_off, "tuned_on": size_on, "kicks": n_kicks.tolist(),
              "errors": errors.tolist()}
    print(f"final sigma_x at ks = 3: {1e3 * off[-1]:.3f} mm without, {1e3 * on[-1]:.3f} mm "
          f"with space charge")
    print(f"tuned ks: {ks_off:.3f} 1/m -> {1e3 * size_off:.3f} mm without space charge, "
          f"{ks_on:.3f} 1/m -> {1e3 * size_on:.3f} mm with it")
    print("kicks over the line: " + ", ".join(f"{n}: {e:.1e}" for n, e in zip(n_kicks, errors)))
    if plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.2))
        ax.plot(s_off, 1e3 * off, label="space charge off")
        ax.plot(s_on, 1e3 * on, label=f"space charge on ({CHARGE * 1e12:.0f} pC)")
        ax.axvspan(0.5, 0.7, color="0.85", label="solenoid")
        ax.set_xlabel("s [m]")
        ax.set_ylabel("RMS size x [mm]")
        ax.legend(frameon=False)
        fig.tight_layout()
        fig.savefig(f"{plot}-sizes.png", dpi=90)
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.loglog(n_kicks, errors, "o-", label="final RMS size")
        ax.loglog(n_kicks, errors[0] * (n_kicks[0] / n_kicks) ** 2, "k--",
                  label="second order, 1/N^2")
        ax.set_xlabel("kicks N over the 2.7 m line")
        ax.set_ylabel("relative error")
        ax.legend(frameon=False)
        fig.tight_layout()
        fig.savefig(f"{plot}-convergence.png", dpi=90)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--particles", type=int, default=20000)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--plot", default=None, help="prefix of the PNG files to write")
    args = parser.parse_args()
    main(args.particles, args.steps, plot=args.plot)
