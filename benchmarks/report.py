"""The suite's table, its JSON and ``RESULTS.md``; machine and versions.

Columns of every row:

* **beamtrack**: beamtrack's measurement, in the row's metric (below);
* **peer**: what it is compared with: Cheetah or Xsuite measured in the same process,
  calls interleaved with beamtrack's, or the issue's target where no code is compared;
* **ratio**: beamtrack's speed (or economy) over the peer's: > 1 means beamtrack is
  faster (uses less memory, compiles sooner, meets the target).
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

#: metric -> (unit shown, definition, whether smaller is better).
METRICS: dict[str, tuple[str, str, bool]] = {
    "time_ms": ("ms", "median wall time of one call", True),
    "rate_pe_s": ("pe/s", "particle-elements per second: particles x elements / median "
                  "time of one call", False),
    "bytes_per_particle": ("B/part", "peak memory of one call over the memory before it, "
                           "per particle (see benchmarks/memory.py)", True),
    "compile_s": ("s", "cold compile + first call, one run", True),
    "times_forward": ("x fwd", "median gradient time over median forward time", True),
}


def ratio(metric: str, value: float | None, peer: float | None) -> float | None:
    """beamtrack speed / peer speed (> 1: beamtrack better)."""
    if value is None or peer is None or not value or not peer:
        return None
    smaller_better = METRICS[metric][2]
    return peer / value if smaller_better else value / peer


def fmt(metric: str, value: float | None) -> str:
    """A value with its unit."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    unit = METRICS[metric][0]
    if metric == "rate_pe_s":
        return f"{value:.2e} {unit}"
    if metric == "bytes_per_particle":
        return f"{value:.0f} {unit}"
    if metric == "time_ms":
        return f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{value:.2f} {unit}" if metric == "times_forward" else f"{value:.1f} {unit}"


def _git_revision() -> str:
    try:
        revision = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                  capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return revision + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _version(module: str) -> str | None:
    try:
        return str(__import__(module).__version__)
    except ImportError:
        return None


def machine(torch_threads: int, device: str) -> dict[str, Any]:
    """Machine, versions, date and load of this run."""
    from . import peers

    info: dict[str, Any] = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "platform": platform.platform(), "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(), "python": platform.python_version(),
        "numpy": _version("numpy"), "torch": _version("torch"), "jax": _version("jax"),
        **peers.versions(), "beamtrack": _version("beamtrack"),
        "beamtrack_revision": _git_revision(), "torch_threads": torch_threads,
        "device": device, "command": " ".join([Path(sys.executable).name, "-m", "benchmarks",
                                               *sys.argv[1:]]),
    }
    try:
        info["load_average_at_start"] = os.getloadavg()
    except OSError:
        pass
    try:
        cpu = Path("/proc/cpuinfo").read_text()
        names = [line.split(":", 1)[1].strip() for line in cpu.splitlines()
                 if line.startswith("model name")]
        if names:
            info["cpu_model"] = names[0]
    except OSError:
        pass
    if device == "cuda":
        try:
            import torch

            info["gpu"] = torch.cuda.get_device_name(0)
        except Exception:  # noqa: BLE001 - the name is informative only
            info["gpu"] = None
    return info


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as one Markdown table."""
    lines = ["| id | workload | beamtrack | peer | peer value | ratio |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        rate = "-" if r.get("ratio") is None else f"{r['ratio']:.2f}x"
        note = ""
        if r.get("max_abs_dx") is not None:
            note = f" (max abs dx {r['max_abs_dx']:.1e} m)"
        for key, value in r.items():
            if key.endswith("_bytes_per_particle") and not key.startswith("peak"):
                note += f" ({key.removesuffix('_bytes_per_particle')} {value:.0f} B/part)"
        errors = r.get("errors") or ({"beamtrack": r["error"]} if r.get("error") else {})
        for who, message in errors.items():
            note += f" ({who} failed: {message.splitlines()[0][:70]})"
        lines.append(f"| {r['id']} | {r['workload']}{note} | {fmt(r['metric'], r['beamtrack'])}"
                     f" | {r.get('peer') or '-'} | {fmt(r['metric'], r.get('peer_value'))} "
                     f"| {rate} |")
    return "\n".join(lines)


def definitions() -> str:
    """What each column and metric means."""
    lines = ["Columns: **beamtrack** is beamtrack's measurement; **peer** the code compared "
             "(measured in the same process, calls interleaved with beamtrack's, medians "
             "over repeats) or the issue's target; **ratio** is beamtrack's speed over the "
             "peer's (for memory and compile rows: the peer's value over beamtrack's; for "
             "targets: target over measured): > 1 means beamtrack is better.", "",
             "Metrics:"]
    lines += [f"- `{unit}`: {text}" for unit, text, _ in METRICS.values()]
    return "\n".join(lines)


def write_json(path: str | Path, meta: dict[str, Any], rows: list[dict[str, Any]],
               extra: dict[str, Any] | None = None) -> None:
    """``{"meta", "rows", ...}`` to ``path``."""
    Path(path).write_text(json.dumps({"meta": meta, "rows": rows, **(extra or {})},
                                     indent=2, default=str))


def write_results(path: str | Path, meta: dict[str, Any], rows: list[dict[str, Any]],
                  notes: list[str]) -> None:
    """``benchmarks/RESULTS.md``: the table, definitions, machine, versions, command."""
    keys = ("date", "command", "platform", "cpu_model", "cpu_count", "load_average_at_start",
            "torch_threads", "device", "gpu", "python", "numpy", "torch", "jax", "cheetah",
            "xtrack", "xobjects", "beamtrack", "beamtrack_revision")
    facts = "\n".join(f"- {k}: {meta[k]}" for k in keys if k in meta)
    load = meta.get("load_average_at_start"), meta.get("load_average_at_end")
    notes = [f"Load averages (1, 5, 15 min) at start {load[0]} and end {load[1]} on "
             f"{meta.get('cpu_count')} CPUs: a load above the CPU count means other "
             "processes competed for the CPUs; ratios (interleaved calls) are more "
             "trustworthy than absolute times.", *notes]
    text = (f"# Benchmark results\n\nLatest run of `python -m benchmarks` "
            f"(written by `--results`).\n\n{facts}\n\n"
            + "".join(f"{n}\n\n" for n in notes)
            + f"{definitions()}\n\n{table(rows)}\n")
    Path(path).write_text(text)


def main(argv: list[str] | None = None) -> None:
    """Re-render a run's JSON: ``python -m benchmarks.report RUN.json [RESULTS.md]``."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("json")
    parser.add_argument("results", nargs="?", default=None)
    args = parser.parse_args(argv)
    data = json.loads(Path(args.json).read_text())
    if args.results:
        write_results(args.results, data["meta"], data["rows"], data.get("notes", []))
    else:
        print(table(data["rows"]))


if __name__ == "__main__":
    main()
