"""beamtrack's benchmark suite: one table of beamtrack against Cheetah and Xsuite.

    python -m benchmarks [--quick] [--only ROWS] [--json PATH] [--results PATH]
        [--repeats N] [--skip-compile] [--skip-memory] [--torch-threads 1]
        [--particles 10000,100000,1000000] [--device cpu|cuda] [--dtype float64|float32]

Rows (``--only`` takes comma-separated ids, globs or prefixes, e.g. ``eager``,
``track-merged-1e5-*``, ``memory``):

* ``eager-{linear,bmad}``: torch eager, quadrupole strengths as fresh tensors, line
  built from them, track, loss, backward; 20-element FODO, 1000 particles; against
  Cheetah (``linear`` / ``drift_kick_drift``) doing the same.
* ``batch-{linear,bmad}``: the same with every strength of shape (1000,), 100 particles.
* ``{eager,batch}-linear-merged``: the same with ``Beamline.merged()`` inside the timed
  call, like-for-like with Cheetah, whose ``Segment.track`` merges a run of linear
  elements by itself.
* ``track-{merged,linear,bmad}-{N}-{backend}``: tracking rate of the 100-element FODO
  on numpy, torch eager, torch.compile (``compile_beamline``), jax (``jax.jit``) and,
  on CUDA, cupy; against Cheetah (torch eager) and, for ``bmad``, Xsuite (CPU, 1 thread).
* ``grad-{jax,torch}[-nocheckpoint]``: gradient time over forward time, 100 parameters,
  against the target 3, with automatic checkpointing (on for this size) and without.
* ``memory-{fwd,fwdbwd}-{backend}-{method}``: peak memory per particle (1e6 particles,
  20-element FODO; ``benchmarks/memory.py`` says what is measured); torch against Cheetah.
* ``compile-{torch,jax}-{100,1000,3800}-{fwd,fwdbwd}``: cold compile + first call
  against the target 20 s.
* ``space-charge-{fwd,fwdbwd,memory}-{N}-{backend}``: one 3D space-charge kick (32^3
  grid, 1e5 particles, 1e4 with ``--quick``) on torch eager against Cheetah's
  ``SpaceChargeKick``, numpy and jax (``jax.jit``); memory saved for backward per
  particle (``benchmarks/space_charge.py``).

Medians over ``--repeats`` rounds, beamtrack's and the peers' calls interleaved in one
process. ``--quick``: 1e4 particles, 3 repeats, no torch.compile or compile rows
unless ``--only`` names them, memory at 1e5 particles (about two minutes).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import beamtrack as bt

from . import memory, report, space_charge, workloads
from .workloads import Selection, Settings

FULL_PARTICLES = (10_000, 100_000, 1_000_000)
COMPILE_LENGTHS = (100, 1000, 3800)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and few repeats (a smoke run)")
    parser.add_argument("--only", default=None, help="comma-separated row ids, globs or "
                        "prefixes (eager, batch, track, grad, memory, compile, ...)")
    parser.add_argument("--json", default=None, help="write the rows and metadata here")
    parser.add_argument("--results", default=None,
                        help="write the Markdown table here (benchmarks/RESULTS.md)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed rounds per row (default 7, --quick 3)")
    parser.add_argument("--skip-compile", action="store_true", help="no compile-time rows")
    parser.add_argument("--skip-memory", action="store_true", help="no memory rows")
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--particles", default=None,
                        help="particle counts of the tracking rows, comma-separated")
    parser.add_argument("--memory-particles", type=int, default=None,
                        help="particles of the memory rows (default 1e6, --quick 1e5)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    return parser.parse_args(argv)


def memory_rows(settings: Settings, particles: int, only: str | None,
                torch_threads: int) -> list[dict[str, Any]]:
    """Table rows from :func:`memory.run_isolated` (torch rows against Cheetah's)."""
    measured = memory.run_isolated(particles, settings.device, settings.dtype,
                                   ("bmad", "linear"), only, torch_threads)
    cheetah = {(r["kind"], r["method"]): r for r in measured if r["backend"] == "cheetah"}
    rows = []
    for r in measured:
        if r["backend"] == "cheetah":
            continue
        peer = cheetah.get((r["kind"], r["method"])) if r["backend"] == "torch" else None
        label = {"fwd": "forward", "fwdbwd": "forward+backward"}[r["kind"]]
        extra = {k: v for k, v in r.items() if k.endswith("_per_particle")
                 and not k.startswith("peak")}
        rows.append(workloads.beamtrack_row(
            r["id"], f"{r['backend']}{' jit' if r['backend'] == 'jax' else ''}: peak memory "
            f"of {label}, 20-element FODO, {particles:.0e} particles, {r['method']}",
            "bytes_per_particle", r.get("peak_bytes_per_particle"),
            f"Cheetah {r['method']}" if peer else None,
            peer.get("peak_bytes_per_particle") if peer else None, **extra))
    return rows


def run(args: argparse.Namespace) -> tuple[dict[str, Any], list[dict[str, Any]], list[str]]:
    """Measure every selected row; returns (metadata, rows, notes)."""
    started = time.perf_counter()
    available = bt.backends.available()
    if "torch" in available:
        import torch

        torch.set_num_threads(args.torch_threads)
    if "jax" in available:
        bt.backends.get("jax").enable_float64()
    selection = Selection(args.only)
    repeats = args.repeats or (3 if args.quick else 7)
    settings = Settings(device=args.device, dtype=args.dtype, repeats=repeats,
                        quick=args.quick, selected=selection,
                        log=lambda text: print(text, file=sys.stderr, flush=True))
    meta = report.machine(args.torch_threads, args.device)
    meta.update({"repeats": repeats, "dtype": args.dtype, "quick": args.quick})
    notes: list[str] = []
    rows: list[dict[str, Any]] = []

    def extend(label: str, new: list[dict[str, Any]]) -> None:
        rows.extend(new)
        if new:
            settings.log(f"{label}: {len(new)} rows, {time.perf_counter() - started:.0f} s")

    if "torch" in available:
        for configs in (None, 1000):
            for method in ("linear", "bmad"):
                extend(f"{'batch' if configs else 'eager'} {method}",
                       workloads.eager_gradient_rows(settings, method, configs))
            extend(f"{'batch' if configs else 'eager'} linear merged",
                   workloads.eager_gradient_rows(settings, "linear", configs, merge=True))
    counts = (tuple(int(float(c)) for c in args.particles.split(",")) if args.particles
              else (10_000,) if args.quick else FULL_PARTICLES)
    for n in counts:
        for method in ("merged", "linear", "bmad"):
            extend(f"track {method} {n}", workloads.tracking_rows(settings, method, n))
    if args.device == "cpu" or selection.explicit("grad"):
        extend("gradient", workloads.gradient_rows(settings, 1_000 if args.quick else 10_000))
    else:
        notes.append("grad rows skipped on CUDA (gradients_and_batching.gradient_cost "
                     "places torch tensors on the CPU)")
    extend("space charge", space_charge.space_charge_rows(
        settings, 10_000 if args.quick else 100_000))
    memory_asked = not selection.patterns or any(
        "memory" in p or "*" in p for p in selection.patterns)
    if not args.skip_memory and memory_asked:
        particles = args.memory_particles or (100_000 if args.quick else 1_000_000)
        try:
            extend("memory", memory_rows(settings, particles, args.only, args.torch_threads))
        except RuntimeError as exc:
            notes.append(str(exc))
    compile_asked = selection.explicit("compile")
    if args.skip_compile or (args.quick and not compile_asked):
        notes.append("Compile rows not run (--skip-compile or --quick).")
    else:
        extend("compile", workloads.compile_rows(settings, COMPILE_LENGTHS))
    if args.quick and not selection.explicit("torch.compile"):
        notes.append("--quick: torch.compile tracking rows not run.")
    meta["wall_s"] = round(time.perf_counter() - started, 1)
    try:
        import os

        meta["load_average_at_end"] = os.getloadavg()
    except OSError:
        pass
    return meta, rows, notes


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Run the suite, print its table, write JSON / Markdown as asked; returns the rows."""
    args = parse(argv)
    meta, rows, notes = run(args)
    print(f"beamtrack {meta['beamtrack']} ({meta['beamtrack_revision']}), {meta['platform']}, "
          f"{meta['cpu_count']} CPUs, device {args.device}, {args.dtype}, torch threads "
          f"{args.torch_threads}, median of {meta['repeats']}, {meta['wall_s']} s")
    for note in notes:
        print(note)
    print(report.definitions())
    print(report.table(rows))
    if args.json:
        report.write_json(args.json, meta, rows, {"notes": notes})
    if args.results:
        report.write_results(args.results, meta, rows, notes)
    return rows


if __name__ == "__main__":
    main()
