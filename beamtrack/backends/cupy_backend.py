"""CuPy backend: arrays on NVIDIA GPUs (no automatic differentiation).

Install the binary wheel with ``pip install beamtrack[cupy]`` (``cupy-cuda12x``).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from beamtrack.backends.base import Backend


class CupyBackend(Backend):
    """Arrays of CuPy on a CUDA device."""

    name = "cupy"
    module_name = "cupy"
    distribution = "cupy-cuda12x"

    def version(self) -> str:
        return str(self.module().__version__)

    def namespace(self) -> Any:
        import array_api_compat.cupy as xp

        return xp

    def default_device(self) -> Any:
        return self.module().cuda.Device(0)

    def devices(self) -> list[Any]:
        cp = self.module()
        return [cp.cuda.Device(i) for i in range(cp.cuda.runtime.getDeviceCount())]

    def owns(self, array: Any) -> bool:
        cp = sys.modules.get("cupy")
        return cp is not None and isinstance(array, cp.ndarray)

    def asarray(self, data: Any, dtype: Any = None, device: Any = None) -> Any:
        cp = self.module()
        dtype = self.resolve_dtype(dtype)
        if device is None:
            return cp.asarray(data, dtype=dtype)
        with device if hasattr(device, "__enter__") else cp.cuda.Device(device):
            return cp.asarray(data, dtype=dtype)

    def resolve_dtype(self, dtype: Any) -> Any:
        if dtype is None:
            return np.float64
        return np.dtype(dtype)

    def to_numpy(self, array: Any) -> np.ndarray:
        return self.module().asnumpy(array)

    def scatter_add(self, target: Any, indices: Any, values: Any) -> Any:
        import cupyx

        out = target.copy()
        cupyx.scatter_add(out, indices, values)
        return out
