"""Compile time and compiled speed of long lines under jax.jit and torch.compile.

For each lattice (a drift/quadrupole FODO, and a cell with bends, sextupoles and
monitors), repeated to about ``--elements`` elements:

* JAX: ``jax.jit`` of a beam-size loss (``Beamline.track`` scans over repeated cells)
  and of its gradient with respect to every quadrupole strength: trace + compile time,
  then the median run time.
* torch: ``backends.torch_compile.compile_beamline`` (one compiled function per element
  signature): time of the first forward call and of the first backward pass (which
  compile), then median run times, and eager tracking for comparison.
* The same at ``--unrolled-elements`` elements for a fully unrolled compilation (a
  plain Python loop over the elements under ``jax.jit`` / ``torch.compile``), so that
  the compiled runs can be compared with the unrolled ones.

    python benchmarks/compile_time.py [--elements 1000] [--unrolled-elements 44]
        [--particles 1000] [--torch-threads 1] [--skip-torch] [--json out.json]

Medians over ``--repeats`` runs; quote ratios from one run (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import beamtrack as bt

SIGMA = [1e-3, 1e-4, 1e-3, 1e-4, 1e-3, 1e-3]


def fodo_cell(i: int) -> list[bt.Element]:
    """Drift/quadrupole FODO cell: 4 elements, 2 signatures."""
    return [bt.Quadrupole(f"qf{i}", length=0.2, k1=1.2), bt.Drift(f"da{i}", length=1.0),
            bt.Quadrupole(f"qd{i}", length=0.2, k1=-1.2), bt.Drift(f"db{i}", length=1.0)]


def arc_cell(i: int) -> list[bt.Element]:
    """Arc cell with bends, sextupoles and a monitor: 11 elements, 5 signatures."""
    return [bt.Quadrupole(f"qf{i}", length=0.3, k1=1.0), bt.Drift(f"d1{i}", length=0.3),
            bt.SBend(f"b1{i}", length=1.0, angle=0.02), bt.Drift(f"d2{i}", length=0.3),
            bt.Sextupole(f"sf{i}", length=0.1, k2=2.0),
            bt.Quadrupole(f"qd{i}", length=0.3, k1=-1.0), bt.Drift(f"d3{i}", length=0.3),
            bt.SBend(f"b2{i}", length=1.0, angle=0.02), bt.Drift(f"d4{i}", length=0.3),
            bt.Sextupole(f"sd{i}", length=0.1, k2=-2.0), bt.Monitor(f"bpm{i}")]


LATTICES: dict[str, Callable[[int], list[bt.Element]]] = {"fodo": fodo_cell, "arc": arc_cell}


def build(cell: Callable[[int], list[bt.Element]], elements: int) -> bt.Beamline:
    items: list[bt.Element] = []
    i = 0
    while len(items) < elements:
        items += cell(i)
        i += 1
    return bt.Beamline(items, name=f"{cell.__name__}_{len(items)}")


def median_ms(fn: Callable[[], Any], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return 1e3 * statistics.median(samples)


def jax_row(line: bt.Beamline, particles: int, repeats: int, unrolled: bool) -> dict:
    import jax
    import jax.numpy as jnp

    bt.backends.get("jax").enable_float64()
    beam = bt.gaussian_particles(particles, sigma=SIGMA, p0c=1e9, mc2=bt.electron.mc2,
                                 backend="jax")
    params = {k: jnp.asarray(v) for k, v in line.parameters("q*.k1").items()}

    def loss(p: dict) -> Any:
        new = line.with_parameters(p)
        if unrolled:
            out = beam
            for element in new:  # a Python loop: one XLA computation per element
                out = element.track(out)
        else:
            out = new.track(beam)
        return bt.beam_statistics(out)["sigma_x"]

    row: dict[str, Any] = {"framework": "jax", "mode": "unrolled" if unrolled else "scan",
                           "elements": len(line)}
    for kind, fn in (("forward", loss), ("gradient", jax.grad(loss))):
        start = time.perf_counter()
        compiled = jax.jit(fn).lower(params).compile()
        row[f"{kind}_compile_s"] = time.perf_counter() - start
        jax.block_until_ready(compiled(params))
        row[f"{kind}_ms"] = median_ms(lambda c=compiled: jax.block_until_ready(c(params)),
                                      repeats)
    return row


def torch_row(line: bt.Beamline, particles: int, repeats: int, unrolled: bool) -> dict:
    import torch

    from beamtrack.backends.torch_compile import _CACHE, compile_beamline

    _CACHE.clear()  # measure a cold compile
    torch._dynamo.reset()
    beam = bt.gaussian_particles(particles, sigma=SIGMA, p0c=1e9, mc2=bt.electron.mc2,
                                 backend="torch")
    keys = list(line.parameters("q*.k1"))

    def params(grad: bool) -> dict:
        return {k: torch.tensor(float(v), dtype=torch.float64, requires_grad=grad)
                for k, v in line.parameters("q*.k1").items()}

    if unrolled:
        def track_line(coords: Any, *values: Any) -> Any:
            p = bt.Particles(coords=coords, p0c=1e9, mc2=bt.electron.mc2)
            return line.with_parameters(dict(zip(keys, values))).track(p).coords

        whole = torch.compile(track_line, fullgraph=True)

        def loss(p: dict) -> Any:
            coords = whole(beam.coords, *p.values())
            return bt.beam_statistics(beam.replace(coords=coords))["sigma_x"]
    else:
        def loss(p: dict) -> Any:
            return bt.beam_statistics(compile_beamline(line.with_parameters(p))(beam))[
                "sigma_x"]

    def eager(p: dict) -> Any:
        return bt.beam_statistics(line.with_parameters(p).track(beam))["sigma_x"]

    def forward(fn: Callable) -> None:
        with torch.no_grad():
            fn(params(False))

    def gradient(fn: Callable) -> None:
        fn(params(True)).backward()

    row: dict[str, Any] = {"framework": "torch",
                           "mode": "unrolled" if unrolled else "per-signature",
                           "elements": len(line)}
    start = time.perf_counter()
    forward(loss)
    row["forward_compile_s"] = time.perf_counter() - start
    start = time.perf_counter()
    gradient(loss)
    row["gradient_compile_s"] = time.perf_counter() - start
    row["forward_ms"] = median_ms(lambda: forward(loss), repeats)
    row["gradient_ms"] = median_ms(lambda: gradient(loss), repeats)
    if not unrolled:
        row["eager_forward_ms"] = median_ms(lambda: forward(eager), repeats)
        row["eager_gradient_ms"] = median_ms(lambda: gradient(eager), repeats)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elements", type=int, default=1000)
    parser.add_argument("--unrolled-elements", type=int, default=44)
    parser.add_argument("--torch-unrolled-elements", type=int, default=12,
                        help="torch.compile of the unrolled 44-element FODO crashed gcc "
                             "here (internal compiler error on a 400-argument kernel)")
    parser.add_argument("--particles", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--lattices", default="fodo,arc")
    parser.add_argument("--torch-threads", type=int, default=None)
    parser.add_argument("--skip-torch", action="store_true")
    parser.add_argument("--skip-jax", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    available = bt.backends.available()
    if args.torch_threads and "torch" in available:
        import torch

        torch.set_num_threads(args.torch_threads)

    rows = []
    runs = {"jax": (jax_row, args.unrolled_elements),
            "torch": (torch_row, args.torch_unrolled_elements)}
    for name in args.lattices.split(","):
        for framework, (measure, small) in runs.items():
            if framework not in available or getattr(args, f"skip_{framework}"):
                continue
            for elements, unrolled in ((small, True), (small, False),
                                       (args.elements, False)):
                line = build(LATTICES[name], elements)
                try:
                    row = measure(line, args.particles, args.repeats, unrolled)
                except Exception as exc:  # a compiler failure is a result here
                    print(f"{name} {framework} unrolled={unrolled} {len(line)} el: failed: "
                          f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
                    continue
                rows.append({"lattice": name, **row})
                print_row(rows[-1])
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"particles": args.particles, "rows": rows}, handle, indent=2)


def print_row(r: dict) -> None:
    eager = ""
    if "eager_forward_ms" in r:
        eager = f" | eager {r['eager_forward_ms']:.1f} / {r['eager_gradient_ms']:.1f} ms"
    print(f"{r['lattice']:<5} {r['framework']:<6} {r['mode']:<14} {r['elements']:>5} el | "
          f"compile fwd {r['forward_compile_s']:6.1f} s grad {r['gradient_compile_s']:6.1f} s"
          f" | run fwd {r['forward_ms']:8.2f} ms grad {r['gradient_ms']:8.2f} ms{eager}",
          flush=True)


if __name__ == "__main__":
    main()
