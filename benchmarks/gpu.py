"""The suite on one NVIDIA GPU: torch CUDA, jax GPU and CuPy, float64 then float32.

    python -m benchmarks.gpu [--device cuda] [--quick] [--json-prefix PATH] [...]

Runs ``python -m benchmarks`` twice (``--dtype float64`` and ``--dtype float32``) with
GPU sizes: tracking rows at 1e5, 1e6 and 1e7 particles (``--quick``: 1e5), memory at
1e6 particles (``torch.cuda.max_memory_allocated``; jax's ``memory_analysis``), no
compile rows. Peers: Cheetah on the same GPU; Xsuite is not run on the GPU. Budget:
under 8 minutes on an H100-class GPU (most of it jax and torch start-up).
Any other option is passed to the suite (``--only``, ``--repeats``, ...).
``--device cpu --quick`` runs the same code on the CPU (a smoke run without a GPU).
"""

from __future__ import annotations

import argparse
from typing import Any

from .__main__ import main as suite

GPU_PARTICLES = "100000,1000000,10000000"


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Run the suite for float64 and float32; returns all rows (with their dtype)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=("cpu", "cuda"))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json-prefix", default=None,
                        help="write PREFIX_float64.json and PREFIX_float32.json")
    parser.add_argument("--dtypes", default="float64,float32")
    args, rest = parser.parse_known_args(argv)
    rows: list[dict[str, Any]] = []
    for dtype in args.dtypes.split(","):
        command = ["--device", args.device, "--dtype", dtype, "--skip-compile", *rest]
        if args.quick:
            command.append("--quick")
        if "--particles" not in rest and args.device == "cuda":
            command += ["--particles", "100000" if args.quick else GPU_PARTICLES]
        if args.json_prefix:
            command += ["--json", f"{args.json_prefix}_{dtype}.json"]
        print(f"== {dtype} on {args.device} ==", flush=True)
        rows += [{**r, "dtype": dtype} for r in suite(command)]
    return rows


if __name__ == "__main__":
    main()
