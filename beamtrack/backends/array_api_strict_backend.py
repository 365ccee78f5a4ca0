"""array-api-strict backend: the Array API standard and nothing else.

It has no practical use for tracking; it is the judge that beamtrack's tracking code
uses only what the standard defines.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from beamtrack.backends.base import Backend


class ArrayApiStrictBackend(Backend):
    """The reference implementation of the Array API standard (CPU, no autodiff)."""

    name = "array_api_strict"
    module_name = "array_api_strict"
    distribution = "array-api-strict"

    def namespace(self) -> Any:
        return self.module()

    def default_device(self) -> Any:
        return self.module().Device("CPU_DEVICE")

    def devices(self) -> list[Any]:
        return [self.default_device()]

    def owns(self, array: Any) -> bool:
        if not self.is_installed():
            return False
        return isinstance(array, self.module()._array_object.Array)

    def asarray(self, data: Any, dtype: Any = None, device: Any = None) -> Any:
        xp = self.module()
        if not self.owns(data):
            data = np.asarray(data)
        return xp.asarray(data, dtype=self.resolve_dtype(dtype), device=device)

    def to_numpy(self, array: Any) -> np.ndarray:
        return np.array(np.from_dlpack(array), copy=True)

    def scatter_add(self, target: Any, indices: Any, values: Any) -> Any:
        out = self.to_numpy(target).copy()
        np.add.at(out, self.to_numpy(indices), self.to_numpy(values))
        return self.asarray(out, dtype=target.dtype, device=target.device)

