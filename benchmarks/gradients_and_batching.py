"""Cost of gradients and the gain of vectorisation.

1. Gradient of a scalar loss with respect to N quadrupole strengths (reverse mode)
   against one forward pass, on torch and jax (jitted), and the cost of central finite
   differences (2N forward passes) for comparison.
2. B corrector settings tracked in one vectorised call (a (B,) kick) against a Python
   loop of B calls, on NumPy and torch, for a ParameterBeam and for 1 to 1000
   particles.

    python benchmarks/gradients_and_batching.py [--quads 100] [--configs 1000]
        [--torch-threads 1] [--json out.json]

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


def gradient_cost(n_quads: int, repeats: int, particles: int,
                  checkpoint: bool | None = None) -> list[dict]:
    """Reverse-mode gradient time over forward time, torch eager and jax jitted;
    ``checkpoint`` as in ``Beamline.track`` (``None``: automatic)."""
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
            tracked = line.with_parameters(params).track(beam, checkpoint=checkpoint)
            return bt.beam_statistics(tracked)["sigma_x"]

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


def batching_gain(configs: int, repeats: int, particles: int | None,
                  backend: str = "numpy") -> dict:
    """``configs`` corrector settings in one call (a ``(configs,)`` kick) vs a loop.

    ``particles=None`` tracks a :class:`~beamtrack.ParameterBeam` (centroid and second
    moments through the first-order maps) instead of particles.
    """
    import numpy as np

    line = bt.Beamline([bt.Drift("d0", length=1.0), bt.HKicker("hk", kick=0.0),
                        bt.Quadrupole("q", length=0.2, k1=2.0), bt.Drift("d1", length=2.0),
                        bt.Monitor("bpm")])
    b = bt.backends.get(backend)
    sigma = [1e-3, 1e-4, 1e-3, 1e-4, 1e-3, 1e-3]
    if particles is None:
        beam = bt.ParameterBeam(b.asarray(np.zeros(6)), b.asarray(np.diag(sigma) ** 2),
                                p0c=1e9, mc2=bt.electron.mc2)

        def centroid(out):
            return out.mean
    else:
        beam = bt.gaussian_particles(particles, sigma=sigma, p0c=1e9, mc2=bt.electron.mc2,
                                     backend=backend)
        centroid = bt.statistics.centroid
    kicks = np.linspace(-1e-3, 1e-3, configs)
    batched = b.asarray(kicks)

    def vectorised():
        return b.to_numpy(centroid(line.replace("hk", kick=batched).track(beam)))

    def loop():
        return [b.to_numpy(centroid(line.replace("hk", kick=float(k)).track(beam)))
                for k in kicks]

    np.testing.assert_allclose(vectorised()[:3], np.stack(loop()[:3]), rtol=1e-12,
                               atol=1e-18)
    t_vec = median_time(vectorised, repeats)
    t_loop = median_time(loop, max(1, repeats // 3))
    return {"backend": backend, "configs": configs,
            "particles": "ParameterBeam" if particles is None else particles,
            "vectorised_ms": 1e3 * t_vec, "loop_ms": 1e3 * t_loop, "speedup": t_loop / t_vec}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quads", type=int, default=100)
    parser.add_argument("--configs", type=int, default=1000)
    parser.add_argument("--particles", type=int, default=100,
                        help="particles for the gradient measurement")
    parser.add_argument("--batch-particles", default="beam,1,10,100,1000",
                        help="particle counts of the batching table ('beam': ParameterBeam)")
    parser.add_argument("--batch-backends", default="numpy,torch")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--torch-threads", type=int, default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.torch_threads and "torch" in bt.backends.available():
        import torch

        torch.set_num_threads(args.torch_threads)

    grads = gradient_cost(args.quads, args.repeats, args.particles)
    print(f"gradient w.r.t. {args.quads} quadrupole strengths, {args.particles} particles")
    print(f"{'backend':<8} {'forward [ms]':>13} {'gradient [ms]':>14} {'grad/forward':>13} "
          f"{'FD/forward':>11}")
    for r in grads:
        print(f"{r['backend']:<8} {r['forward_ms']:>13.2f} {r['gradient_ms']:>14.2f} "
              f"{r['gradient_over_forward']:>12.2f}x {r['finite_differences_over_forward']:>10d}x")
    print(f"\n{args.configs} corrector settings: one vectorised call vs a Python loop")
    print(f"{'backend':<8} {'particles':>13} {'vectorised [ms]':>16} {'loop [ms]':>10} "
          f"{'speed-up':>9}")
    batches = []
    for backend in args.batch_backends.split(","):
        if backend not in bt.backends.available():
            continue
        for count in args.batch_particles.split(","):
            r = batching_gain(args.configs, args.repeats,
                              None if count == "beam" else int(count), backend)
            batches.append(r)
            print(f"{backend:<8} {r['particles']!s:>13} {r['vectorised_ms']:>16.1f} "
                  f"{r['loop_ms']:>10.1f} {r['speedup']:>8.0f}x", flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"gradients": grads, "batching": batches}, handle, indent=2)


if __name__ == "__main__":
    main()
