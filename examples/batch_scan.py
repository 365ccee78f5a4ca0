"""Batch scan: many corrector settings in one vectorised call versus a Python loop.

    python examples/batch_scan.py [--configs 1000] [--particles 100]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import beamtrack as bt


def main(configs: int = 1000, particles: int = 100) -> dict:
    line = bt.Beamline([bt.Drift("d0", length=1.0), bt.HKicker("hk", kick=0.0),
                        bt.Quadrupole("q", length=0.2, k1=2.0), bt.Drift("d1", length=2.0)])
    beam = bt.gaussian_particles(particles, sigma=[1e-3, 1e-4, 1e-3, 1e-4, 1e-3, 1e-3],
                                 p0c=1e9, mc2=bt.electron.mc2, seed=0)
    kicks = np.linspace(-1e-3, 1e-3, configs)

    start = time.perf_counter()
    batched = bt.statistics.centroid(line.replace("hk", kick=kicks).track(beam))[:, 0]
    t_vec = time.perf_counter() - start
    start = time.perf_counter()
    looped = np.array([float(bt.statistics.centroid(line.replace("hk", kick=float(k))
                                                     .track(beam))[0]) for k in kicks])
    t_loop = time.perf_counter() - start
    deviation = float(np.max(np.abs(batched - looped)))
    print(f"{configs} settings x {particles} particles: vectorised {1e3 * t_vec:.1f} ms, "
          f"loop {1e3 * t_loop:.1f} ms, speed-up {t_loop / t_vec:.0f}x, "
          f"max difference {deviation:.1e} m")
    return {"vectorised_s": t_vec, "loop_s": t_loop, "max_difference": deviation}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=1000)
    parser.add_argument("--particles", type=int, default=100)
    args = parser.parse_args()
    main(args.configs, args.particles)
