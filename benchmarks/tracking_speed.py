"""Tracking speed of the bundled FODO: "bmad", "linear" and merged linear maps.

Prints a table (median of repeats, milliseconds per pass) and optionally writes JSON:

    python benchmarks/tracking_speed.py [--particles 100000] [--repeats 7] [--cells 10]
                                        [--backends numpy torch jax] [--json out.json]

Quote ratios from one run only: the machine is shared and timings are noisy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import beamtrack as bt


def build_line(cells: int, package: Any = bt) -> bt.Beamline:
    """``cells`` copies of the bundled FODO cell (markers dropped), uniquely named, made
    with ``package`` (beamtrack, or an older version of it loaded under another name)."""
    cell = [e for e in package.load(package.EXAMPLE_LATTICE) if e.kind != "Marker"]
    items = [type(e)(f"{e.name}_{i}", **e.parameters()) for i in range(cells) for e in cell]
    return package.Beamline(items, name=f"fodo_x{cells}")


def timed(fn, repeats: int, sync) -> float:
    fn()
    sync()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--particles", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--cells", type=int, default=10)
    parser.add_argument("--backends", nargs="+", default=None)
    parser.add_argument("--json", default=None, help="write the results to this file")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="torch intra-op threads (1 avoids spin-waits on a busy machine)")
    args = parser.parse_args()

    if args.torch_threads is not None:
        import torch

        torch.set_num_threads(args.torch_threads)
    if "jax" in bt.backends.available():
        bt.backends.get("jax").enable_float64()
    line = build_line(args.cells)
    rows = []
    for name in args.backends or bt.backends.available():
        if name == "array_api_strict":
            continue  # a reference implementation, not meant to be fast
        backend = bt.backends.get(name)
        beam = bt.gaussian_particles(args.particles, sigma=[5e-4, 5e-5, 5e-4, 5e-5, 1e-3, 1e-3],
                                     p0c=1e9, mc2=bt.electron.mc2, backend=name)
        fused_here = bt.merged(line, p0c=1e9, mc2=bt.electron.mc2, method="linear",
                               backend=name)

        def sync(beam=beam, backend=backend):
            return backend.to_numpy(beam.coords[..., :1, :1])

        def last(out, backend=backend):
            backend.to_numpy(out.coords[..., :1, :1])

        result = {"backend": name, "particles": args.particles, "elements": len(line)}
        for label, fn in (
            ("bmad", lambda beam=beam, last=last: last(line.track(beam, method="bmad"))),
            ("linear", lambda beam=beam, last=last: last(line.track(beam, method="linear"))),
            ("merged", lambda beam=beam, last=last, f=fused_here: last(f.track(beam))),
        ):
            result[f"{label}_ms"] = 1e3 * timed(fn, args.repeats, sync)
        result["merged_speedup_vs_linear"] = result["linear_ms"] / result["merged_ms"]
        result["merged_speedup_vs_bmad"] = result["bmad_ms"] / result["merged_ms"]
        rows.append(result)

    threads = ""
    if "torch" in bt.backends.available():
        import torch

        threads = f", torch threads {torch.get_num_threads()}"
    print(f"{len(line)} elements, {args.particles} particles, median of {args.repeats}{threads}")
    print(f"{'backend':<8} {'bmad [ms]':>10} {'linear [ms]':>12} {'merged [ms]':>12} "
          f"{'merged/linear':>14} {'merged/bmad':>12}")
    for r in rows:
        print(f"{r['backend']:<8} {r['bmad_ms']:>10.2f} {r['linear_ms']:>12.2f} "
              f"{r['merged_ms']:>12.2f} {r['merged_speedup_vs_linear']:>13.1f}x "
              f"{r['merged_speedup_vs_bmad']:>11.1f}x")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
