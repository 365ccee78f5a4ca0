"""NumPy backend: the reference and default."""

from __future__ import annotations

from typing import Any

import numpy as np

from beamtrack.backends.base import Backend


class NumpyBackend(Backend):
    """Arrays on the host CPU with NumPy; no automatic differentiation."""

    name = "numpy"
    module_name = "numpy"

    def namespace(self) -> Any:
        import array_api_compat.numpy as xp

        return xp

    def default_device(self) -> Any:
        return "cpu"

    def owns(self, array: Any) -> bool:
        return isinstance(array, (np.ndarray, np.generic))

    def asarray(self, data: Any, dtype: Any = None, device: Any = None) -> Any:
        if device not in (None, "cpu"):
            raise ValueError(f"numpy arrays live on 'cpu' only, not {device!r}")
        return np.asarray(data, dtype=self.resolve_dtype(dtype))

    def to_numpy(self, array: Any) -> np.ndarray:
        return np.asarray(array)

    def scatter_add(self, target: Any, indices: Any, values: Any) -> Any:
        indices = np.asarray(indices)
        if target.ndim == 1 and indices.ndim == 1 and np.ndim(values) == 1:
            # One pass over the values (np.add.at is several times slower).
            added = np.bincount(indices, weights=values, minlength=target.shape[0])
            return np.asarray(target + added.astype(target.dtype, copy=False))
        out = np.array(target, copy=True)
        np.add.at(out, indices, values)
        return out
