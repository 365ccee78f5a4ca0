"""Speed of the working tree against an earlier git revision, in one process.

The package of the old revision is exported into a temporary folder under another
name (``beamtrack_old``), both versions are loaded side by side, and their calls are
interleaved, so that both see the same machine noise (on a shared machine, separate
processes differ by tens of percent). Prints the median time per call of each version
and their ratio for the bundled FODO (markers dropped, ``--cells`` copies) under
``"bmad"``, ``"linear"`` and the merged linear map, and optionally writes JSON:

    python benchmarks/compare_revisions.py REV [--particles 100000] [--repeats 9]
        [--cells 10] [--backends numpy torch jax] [--quiet-allocator] [--json out.json]

``--quiet-allocator`` re-runs the script with glibc's mmap threshold raised, so that
large arrays are not mapped and unmapped at every call: the page faults that causes
depend on the order of allocations, not on the code, and add about 15% of noise at
1e5 particles.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tracking_speed import build_line

ROOT = Path(__file__).resolve().parents[1]
_QUIET = {"MALLOC_MMAP_THRESHOLD_": "1000000000", "MALLOC_TRIM_THRESHOLD_": "1000000000"}


def export_revision(revision: str, folder: Path) -> None:
    """Write ``revision``'s ``beamtrack`` package to ``folder/beamtrack_old``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "beamtrack"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    package = folder / "beamtrack_old"
    (folder / "beamtrack").rename(package)
    for path in package.rglob("*.py"):
        text = path.read_text()
        text = re.sub(r"\bbeamtrack\.", "beamtrack_old.", text)
        text = re.sub(r"\b(from|import) beamtrack\b", r"\1 beamtrack_old", text)
        text = text.replace('_files("beamtrack")', '_files("beamtrack_old")')
        path.write_text(text)


def workloads(bt, backend: str, particles: int, cells: int) -> dict:
    """The calls timed for one version: ``{method: callable}``."""
    line = build_line(cells, bt)
    beam = bt.gaussian_particles(particles, sigma=[5e-4, 5e-5, 5e-4, 5e-5, 1e-3, 1e-3],
                                 p0c=1e9, mc2=bt.electron.mc2, backend=backend)
    fused = bt.merged(line, p0c=1e9, mc2=bt.electron.mc2, method="linear", backend=backend)
    to_numpy = bt.backends.get(backend).to_numpy

    def done(out):  # wait for asynchronous backends
        to_numpy(out.coords[..., :1, :1])

    return {"bmad": lambda: done(line.track(beam, method="bmad")),
            "linear": lambda: done(line.track(beam, method="linear")),
            "merged": lambda: done(fused.track(beam))}


def compare(old, new, backend: str, args: argparse.Namespace) -> list[dict]:
    """Interleaved medians of both versions for one backend."""
    calls = {"old": workloads(old, backend, args.particles, args.cells),
             "new": workloads(new, backend, args.particles, args.cells)}
    rows = []
    for method in calls["new"]:
        samples: dict[str, list[float]] = {"old": [], "new": []}
        for side in samples:
            calls[side][method]()  # warm-up
        for _ in range(args.repeats):
            for side in samples:
                start = time.perf_counter()
                calls[side][method]()
                samples[side].append(time.perf_counter() - start)
        old_ms = 1e3 * statistics.median(samples["old"])
        new_ms = 1e3 * statistics.median(samples["new"])
        rows.append({"backend": backend, "method": method, "old_ms": old_ms,
                     "new_ms": new_ms, "new_over_old": new_ms / old_ms})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revision", help="git revision to compare with, e.g. HEAD~3")
    parser.add_argument("--particles", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--cells", type=int, default=10)
    parser.add_argument("--backends", nargs="+", default=["numpy", "torch", "jax"])
    parser.add_argument("--quiet-allocator", action="store_true")
    parser.add_argument("--json", default=None, help="write the results to this file")
    args = parser.parse_args()
    if args.quiet_allocator and os.environ.get("MALLOC_MMAP_THRESHOLD_") is None:
        os.execvpe(sys.executable, [sys.executable, *sys.argv], {**os.environ, **_QUIET})

    import beamtrack as new

    if "torch" in args.backends:
        import torch

        torch.set_num_threads(1)
    if "jax" in args.backends:
        new.backends.get("jax").enable_float64()
    with tempfile.TemporaryDirectory() as folder:
        export_revision(args.revision, Path(folder))
        sys.path.insert(0, folder)
        import beamtrack_old as old

        rows = [row for backend in args.backends if backend in new.backends.available()
                for row in compare(old, new, backend, args)]
    print(f"{args.revision} (old) vs working tree (new): {args.cells * 8} elements, "
          f"{args.particles} particles, median of {args.repeats} interleaved calls"
          f"{', quiet allocator' if os.environ.get('MALLOC_MMAP_THRESHOLD_') else ''}")
    print(f"{'backend':<8} {'method':<8} {'old [ms]':>10} {'new [ms]':>10} {'new/old':>8}")
    for r in rows:
        print(f"{r['backend']:<8} {r['method']:<8} {r['old_ms']:>10.2f} {r['new_ms']:>10.2f} "
              f"{r['new_over_old']:>8.2f}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
