"""Cost of gradients and the gain of vectorisation.

1. Gradient of a scalar loss with respect to N quadrupole strengths (reverse mode)
   against one forward pass, on torch and jax (jitted), and the cost of central finite
   differences (2N forward passes) for comparison.
2. B corrector settings tracked in one vectorised call (a (B,) kick) against a Python
   loop of B calls, on NumPy.

    python benchmarks/gradients_and_batching.py [--quads 100] [--configs 1000] [--json out.json]

Medians over repeats; quote ratios from one run (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import beamtrack as bt


def median_time(fn, repeats: int) -> float:
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def quad_line(n: int) -> bt.Beamline:
    items = []
    for i in range(n):
        items += [bt.Quadrupole(f"q{i}", length=0.1, k1=1.5 if i % 2 == 0 else -1.5),
                  bt.Drift(f"d{i}", length=0.5)]
    return bt.Beamline(items, name=f"fodo_{n}")


def gradient_cost(n_quads: int, repeats: int, particles: int) -> list[dict]:
    rows = []
    line = quad_line(n_quads)
    keys = list(line.parameters("q*.k1"))
    for name in ("torch", "jax"):
        if name not in bt.backends.available():
            continue
        backend = bt.backends.get(name)
        if name == "jax":
            backend.enable_float64()
        beam = bt.gaussian_particles(particles, sigma=[1e-3, 1e-4, 1e-3, 1e-4, 1e-3, 1e-3],
                                     p0c=1e9, mc2=bt.electron.mc2, backend=name)

        def loss(params, beam=beam):
            return bt.beam_statistics(line.with_parameters(params).track(beam))["sigma_x"]

        params = {k: backend.asarray(v) for k, v in line.parameters("q*.k1").items()}
        forward = loss
        grad = backend.value_and_grad(loss)
        if name == "jax":
            forward, grad = backend.jit(forward), backend.jit(grad)

        def sync(value, backend=backend):
            return backend.to_numpy(value if not isinstance(value, tuple) else value[0])

        t_forward = median_time(lambda f=forward, p=params: sync(f(p)), repeats)
        t_grad = median_time(lambda g=grad, p=params: sync(g(p)), repeats)
        rows.append({"backend": name, "parameters": len(keys), "forward_ms": 1e3 * t_forward,
                     "gradient_ms": 1e3 * t_grad, "gradient_over_forward": t_grad / t_forward,
                     "finite_differences_over_forward": 2 * len(keys)})
    return rows


def batching_gain(configs: int, repeats: int, particles: int) -> dict:
    import numpy as np

    line = bt.Beamline([bt.Drift("d0", length=1.0), bt.HKicker("hk", kick=0.0),
                        bt.Quadrupole("q", length=0.2, k1=2.0), bt.Drift("d1", length=2.0),
                        bt.Monitor("bpm")])
    beam = bt.gaussian_particles(particles, sigma=[1e-3, 1e-4, 1e-3, 1e-4, 1e-3, 1e-3],
                                 p0c=1e9, mc2=bt.electron.mc2)
    kicks = np.linspace(-1e-3, 1e-3, configs)

    def vectorised():
        return bt.statistics.centroid(line.replace("hk", kick=kicks).track(beam))

    def loop():
        return [bt.statistics.centroid(line.replace("hk", kick=float(k)).track(beam))
                for k in kicks]

    t_vec = median_time(vectorised, repeats)
    t_loop = median_time(loop, max(1, repeats // 3))
    return {"configs": configs, "particles": particles, "vectorised_ms": 1e3 * t_vec,
            "loop_ms": 1e3 * t_loop, "speedup": t_loop / t_vec}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quads", type=int, default=100)
    parser.add_argument("--configs", type=int, default=1000)
    parser.add_argument("--particles", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    grads = gradient_cost(args.quads, args.repeats, args.particles)
    print(f"gradient w.r.t. {args.quads} quadrupole strengths, {args.particles} particles")
    print(f"{'backend':<8} {'forward [ms]':>13} {'gradient [ms]':>14} {'grad/forward':>13} "
          f"{'FD/forward':>11}")
    for r in grads:
        print(f"{r['backend']:<8} {r['forward_ms']:>13.2f} {r['gradient_ms']:>14.2f} "
              f"{r['gradient_over_forward']:>12.2f}x {r['finite_differences_over_forward']:>10d}x")
    batch = batching_gain(args.configs, args.repeats, args.particles)
    print(f"\n{batch['configs']} corrector settings, {batch['particles']} particles (NumPy): "
          f"vectorised {batch['vectorised_ms']:.1f} ms, loop {batch['loop_ms']:.1f} ms, "
          f"speed-up {batch['speedup']:.0f}x")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"gradients": grads, "batching": batch}, handle, indent=2)


if __name__ == "__main__":
    main()
