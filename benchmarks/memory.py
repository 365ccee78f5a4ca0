"""Peak memory of forward and forward+backward tracking, in bytes per particle.

What is measured, per row (20-element FODO, ``N`` particles, ``"bmad"`` or ``"linear"``):

* ``peak`` (CPU): the rise of the process's resident memory during one call over the
  resident memory just before it: the kernel's high-water mark ``VmHWM`` is reset
  through ``/proc/self/clear_refs`` before the call and read after it. The
  measurements run in a child process whose glibc ``malloc`` maps every block above
  64 kB (``MALLOC_MMAP_THRESHOLD_=65536``), so that freed arrays leave resident memory
  at once and the high-water mark is that of live arrays. It counts every allocation
  (torch, NumPy, XLA, Python), the output included, after one warm-up call.
  On CUDA: ``torch.cuda.max_memory_allocated`` over the allocated memory before.
* ``saved`` (torch): bytes of the tensors autograd saves for backward
  (``torch.autograd.graph.saved_tensors_hooks``, ``numel * element_size`` summed over
  distinct storages): what forward+backward must keep beyond a forward pass.
* ``xla`` (jax): ``jax.jit(...).lower(...).compile().memory_analysis()``: temporary
  plus output bytes of the compiled computation.

Run by the suite as ``python -m benchmarks.memory --particles N --json PATH``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
_MMAP_ALL = {"MALLOC_MMAP_THRESHOLD_": "65536"}


def _status(key: str) -> int:
    text = Path("/proc/self/status").read_text()
    match = re.search(rf"{key}:\s+(\d+) kB", text)
    return 1024 * int(match.group(1)) if match else 0


def peak_bytes(fn: Callable[[], Any], device: str = "cpu") -> int:
    """Rise of memory during one call of ``fn`` (after one warm-up call): resident memory
    on the CPU, torch's allocated memory on CUDA."""
    fn()
    gc.collect()
    if device == "cuda":
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return int(torch.cuda.max_memory_allocated() - base)
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    base = _status("VmRSS")
    fn()
    return max(0, _status("VmHWM") - base)


def saved_bytes(fn: Callable[[], Any]) -> int:
    """Bytes of the distinct tensors autograd saves during ``fn`` (a forward pass)."""
    import torch

    seen: dict[tuple[int, int], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        seen[(storage.data_ptr(), storage.nbytes())] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


def measure(particles: int, device: str, dtype: str, methods: tuple[str, ...],
            selected: Callable[[str], bool]) -> list[dict[str, Any]]:
    """Rows ``{id, backend, method, kind, peak_bytes, saved_bytes, xla_bytes}``."""
    from .workloads import Settings

    settings = Settings(device=device, dtype=dtype)
    out: list[dict[str, Any]] = []

    def add(backend: str, method: str, kind: str, **values: Any) -> None:
        per = {k.replace("_bytes", "_bytes_per_particle"): v / particles
               for k, v in values.items() if v is not None}
        out.append({"id": f"memory-{kind}-{backend}-{method}", "backend": backend,
                    "method": method, "kind": kind, "particles": particles, **values, **per})

    for method in methods:
        _measure_method(method, particles, settings, selected, add)
    return out


def _measure_method(method: str, particles: int, settings: Any,
                    selected: Callable[[str], bool], add: Callable[..., None]) -> None:
    """The rows of one tracking method (see :func:`measure`)."""
    import beamtrack as bt

    from . import peers
    from .workloads import beam, fodo, std_loss

    device = settings.device
    available = bt.backends.available()
    line = fodo(20, method)
    if "numpy" in available and device == "cpu" and selected(f"memory-fwd-numpy-{method}"):
        numpy_beam = beam(particles, "numpy", settings)
        add("numpy", method, "fwd", peak_bytes=peak_bytes(lambda: line.track(numpy_beam)))
    if "torch" in available:
        import torch

        incoming = beam(particles, "torch", settings)

        def params(grad: bool) -> dict[str, Any]:
            return {k: torch.tensor(float(v), dtype=incoming.coords.dtype,
                                    device=incoming.coords.device, requires_grad=grad)
                    for k, v in line.parameters("q*.k1").items()}

        def forward() -> None:
            with torch.no_grad():
                line.with_parameters(params(False)).track(incoming)

        def loss() -> Any:
            return std_loss(line.with_parameters(params(True)).track(incoming).x)

        if selected(f"memory-fwd-torch-{method}"):
            add("torch", method, "fwd", peak_bytes=peak_bytes(forward, device))
        if selected(f"memory-fwdbwd-torch-{method}"):
            add("torch", method, "fwdbwd",
                peak_bytes=peak_bytes(lambda: loss().backward(), device),
                saved_bytes=saved_bytes(loss))
        if peers.installed("cheetah") and selected(f"memory-fwd-cheetah-{method}"):
            values = {k: float(v) for k, v in line.parameters("q*.k1").items()}
            grad_call = peers.cheetah_gradient(line, incoming, values, std_loss).fn
            track = peers.cheetah_tracking(line, incoming, merged=False).fn
            add("cheetah", method, "fwd", peak_bytes=peak_bytes(track, device))
            add("cheetah", method, "fwdbwd", peak_bytes=peak_bytes(grad_call, device))
    if "jax" in available and selected(f"memory-fwd-jax-{method}"):
        import jax

        bt.backends.get("jax").enable_float64()
        jax_beam = beam(particles, "jax", settings)
        jnp_params = {k: bt.backends.get("jax").asarray(v)
                      for k, v in line.parameters("q*.k1").items()}

        def jloss(p: dict[str, Any]) -> Any:
            return std_loss(line.with_parameters(p).track(jax_beam).x)

        for kind, fn in (("fwd", jloss), ("fwdbwd", jax.grad(jloss))):
            compiled = jax.jit(fn).lower(jnp_params).compile()
            analysis = compiled.memory_analysis()
            xla = None
            if analysis is not None:
                xla = int(analysis.temp_size_in_bytes + analysis.output_size_in_bytes)
            peak = peak_bytes(lambda c=compiled: jax.block_until_ready(c(jnp_params)),
                              "cpu") if device == "cpu" else None
            add("jax", method, kind, peak_bytes=peak, xla_bytes=xla)


def run_isolated(particles: int, device: str, dtype: str, methods: tuple[str, ...],
                 only: str | None, torch_threads: int) -> list[dict[str, Any]]:
    """:func:`measure` in a child process with every large block mapped (see above)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "memory.json"
        command = [sys.executable, "-m", "benchmarks.memory", "--particles", str(particles),
                   "--device", device, "--dtype", dtype, "--methods", ",".join(methods),
                   "--torch-threads", str(torch_threads), "--json", str(path)]
        if only:
            command += ["--only", only]
        done = subprocess.run(command, cwd=ROOT, env={**os.environ, **_MMAP_ALL},
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"memory measurement failed:\n{done.stderr[-2000:]}")
        return json.loads(path.read_text())


def main(argv: list[str] | None = None) -> None:
    """Command line of the child process."""
    from .workloads import Selection

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--particles", type=int, default=1_000_000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float64")
    parser.add_argument("--methods", default="bmad,linear")
    parser.add_argument("--only", default=None)
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--json", required=True)
    args = parser.parse_args(argv)
    try:
        import torch

        torch.set_num_threads(args.torch_threads)
    except ImportError:
        pass
    rows = measure(args.particles, args.device, args.dtype, tuple(args.methods.split(",")),
                   Selection(args.only))
    Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
