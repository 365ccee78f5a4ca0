"""Time to read and write large lattice files, and cpymad's reading time beside it.

Generates a ring of ``--elements`` elements (arc cells with bends, quadrupoles,
sextupoles and monitors, every element uniquely named, placed with ``at`` in a MAD-X
sequence; the Bmad and JSON files hold the same line) and times ``bt.load`` and
``bt.save`` for each format, and MAD-X (cpymad) reading and expanding the same MAD-X
file when cpymad is installed.

    python benchmarks/lattice_loading.py [--elements 10000] [--repeats 5] [--json out.json]

Medians over ``--repeats`` runs (the machine is shared; quote ratios from one run).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import beamtrack as bt


def ring(elements: int) -> bt.Beamline:
    """A ring of about ``elements`` uniquely named elements (10 per cell)."""
    items: list[bt.Element] = []
    for i in range(max(1, elements // 10)):
        items += [bt.Quadrupole(f"qf{i}", length=0.3, k1=0.9), bt.Drift(f"da{i}", length=0.4),
                  bt.SBend(f"ba{i}", length=2.0, angle=0.01, e1=0.005, e2=0.005),
                  bt.Drift(f"db{i}", length=0.4), bt.Sextupole(f"sf{i}", length=0.2, k2=1.5),
                  bt.Quadrupole(f"qd{i}", length=0.3, k1=-0.9), bt.Drift(f"dc{i}", length=0.4),
                  bt.SBend(f"bb{i}", length=2.0, angle=0.01, e1=0.005, e2=0.005),
                  bt.Sextupole(f"sd{i}", length=0.2, k2=-1.5), bt.Monitor(f"bpm{i}")]
    return bt.Beamline(items, name="ring", reference=bt.Reference(bt.proton, 26e9))


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall time of ``fn()`` [s]."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def madx_read(path: Path) -> None:
    """Read and expand ``path`` in MAD-X through cpymad (``use`` included)."""
    from cpymad.madx import Madx

    madx = Madx(stdout=False)
    try:
        madx.call(str(path))
        madx.use(sequence="ring")
    finally:
        madx.quit()


def run(elements: int, repeats: int) -> list[dict[str, Any]]:
    """Rows ``{format, elements, load_s, save_s}`` (and MAD-X's own reading time)."""
    line = ring(elements)
    rows = []
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore", bt.LatticeFileWarning)
        for fmt, name in (("json", "ring.json"), ("madx", "ring.madx"), ("bmad", "ring.bmad")):
            path = Path(folder) / name
            try:
                save_s = median_time(lambda path=path: bt.save(line, path), repeats)
            except ImportError as exc:  # a format module not present in this version
                print(f"{fmt}: skipped ({exc})")
                continue
            load_s = median_time(lambda path=path: bt.load(path), repeats)
            loaded = bt.load(path)
            assert len(loaded) == len(line), (fmt, len(loaded), len(line))
            rows.append({"format": fmt, "elements": len(line), "load_s": load_s,
                         "save_s": save_s, "bytes": path.stat().st_size})
            if fmt == "madx":
                try:
                    madx_s = median_time(lambda path=path: madx_read(path), repeats)
                except ImportError:
                    continue
                rows.append({"format": "madx (read by cpymad)", "elements": len(line),
                             "load_s": madx_s, "save_s": None, "bytes": path.stat().st_size})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elements", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=None, help="write the results to this file")
    args = parser.parse_args()
    rows = run(args.elements, args.repeats)
    print(f"{'format':<24} {'elements':>9} {'load [s]':>9} {'save [s]':>9} {'size [kB]':>10}")
    for row in rows:
        save = f"{row['save_s']:>9.3f}" if row["save_s"] is not None else f"{'-':>9}"
        print(f"{row['format']:<24} {row['elements']:>9d} {row['load_s']:>9.3f} {save} "
              f"{row['bytes'] / 1e3:>10.0f}")
    if args.json:
        meta = {"machine": platform.platform(), "python": platform.python_version(),
                "beamtrack": bt.__version__, "repeats": args.repeats}
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
