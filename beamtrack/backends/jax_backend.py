"""JAX backend: CPU/GPU arrays, ``jax.grad`` and ``jax.jit``.

beamtrack computes in float64, which JAX provides only with ``jax_enable_x64``. When
float64 is asked for while that flag is off, :class:`PrecisionError` says how to turn
it on; beamtrack never computes silently in float32.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from beamtrack.backends.base import Backend
from beamtrack.backends.errors import PrecisionError

X64_HELP = (
    "JAX is computing in float32 only: enable float64 with "
    "`jax.config.update('jax_enable_x64', True)` before creating arrays "
    "(or set the environment variable JAX_ENABLE_X64=1), or ask for dtype='float32' "
    "explicitly"
)


class JaxBackend(Backend):
    """Arrays of JAX on any of its devices, differentiable with ``jax.grad``."""

    name = "jax"
    module_name = "jax"

    def namespace(self) -> Any:
        return self.module().numpy

    def default_device(self) -> Any:
        return self.module().devices()[0]

    def devices(self) -> list[Any]:
        return list(self.module().devices())

    def owns(self, array: Any) -> bool:
        jax = sys.modules.get("jax")
        return jax is not None and isinstance(array, jax.Array)

    def x64_enabled(self) -> bool:
        """Whether ``jax_enable_x64`` is on."""
        return bool(self.module().config.read("jax_enable_x64"))

    def enable_float64(self) -> None:
        """Turn on ``jax_enable_x64`` (affects every JAX array created afterwards)."""
        self.module().config.update("jax_enable_x64", True)

    def resolve_dtype(self, dtype: Any) -> Any:
        jnp = self.module().numpy
        if dtype is None:
            dtype = jnp.float64
        elif isinstance(dtype, str):
            dtype = getattr(jnp, dtype)
        if np.dtype(dtype).itemsize == 8 and not self.x64_enabled():
            raise PrecisionError(X64_HELP)
        return dtype

    def asarray(self, data: Any, dtype: Any = None, device: Any = None) -> Any:
        jax = self.module()
        dtype = self.resolve_dtype(dtype)
        out = jax.numpy.asarray(data, dtype=dtype)
        if device is not None:
            out = jax.device_put(out, device)
        return out

    def to_numpy(self, array: Any) -> np.ndarray:
        return np.asarray(array)

    def scatter_add(self, target: Any, indices: Any, values: Any) -> Any:
        return target.at[indices].add(values)

    def value_and_grad(self, fn: Callable[..., Any], argnums: int = 0) -> Callable[..., Any]:
        return self.module().value_and_grad(fn, argnums=argnums)

    def jit(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        return self.module().jit(fn)

    def is_traced(self, array: Any) -> bool:
        jax = sys.modules.get("jax")
        return jax is not None and isinstance(array, jax.core.Tracer)
