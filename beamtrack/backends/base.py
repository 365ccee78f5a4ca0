"""The interface every array-library backend provides.

The Python Array API standard covers the arithmetic of tracking. What it does not
cover lives here, once per library: array creation with beamtrack's float64 default,
devices, reproducible random numbers, scatter-add and automatic differentiation.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from beamtrack.backends.errors import BackendUnavailableError, NoAutodiffError

AUTODIFF_BACKENDS = ("torch", "jax")


class Backend:
    """Base class of the array-library adapters.

    Subclasses set :attr:`name` and :attr:`module_name` and implement the methods that
    the library supports. The library itself is imported lazily, on first use, so that
    ``import beamtrack`` never imports torch, jax or cupy.
    """

    #: Name of the backend as used throughout beamtrack (``"numpy"``, ``"torch"``, ...).
    name: str = ""
    #: Name of the Python module that must be importable for the backend to exist.
    module_name: str = ""
    #: Distribution name whose version :meth:`version` reports.
    distribution: str = ""

    # -- discovery -------------------------------------------------------------------
    def is_installed(self) -> bool:
        """Whether the library can be imported here (without importing it)."""
        return importlib.util.find_spec(self.module_name) is not None

    def module(self) -> Any:
        """The imported library module; raises if it is not installed."""
        loaded = sys.modules.get(self.module_name)
        if loaded is not None:  # plain lookup: traceable by torch.compile
            return loaded
        if not self.is_installed():
            raise BackendUnavailableError(
                f"backend {self.name!r} is not installed; install it with "
                f"`pip install beamtrack[{self.name}]`"
            )
        return importlib.import_module(self.module_name)

    def version(self) -> str:
        """Installed version of the library."""
        try:
            return importlib.metadata.version(self.distribution or self.module_name)
        except importlib.metadata.PackageNotFoundError:  # pragma: no cover
            return getattr(self.module(), "__version__", "unknown")

    def namespace(self) -> Any:
        """The Array API namespace of the library (through array-api-compat)."""
        raise NotImplementedError

    def devices(self) -> list[Any]:
        """Devices on which this backend can place arrays."""
        return [self.default_device()]

    def default_device(self) -> Any:
        """The device new arrays go to when none is asked for."""
        return None

    def owns(self, array: Any) -> bool:
        """Whether ``array`` is an array of this library."""
        raise NotImplementedError

    # -- arrays ----------------------------------------------------------------------
    def asarray(self, data: Any, dtype: Any = None, device: Any = None) -> Any:
        """Convert ``data`` to an array of this library.

        Parameters
        ----------
        data
            Numbers, nested sequences, or a NumPy array.
        dtype
            Array dtype, or a name such as ``"float32"``. Defaults to float64 for
            floating-point and integer-free input (beamtrack's precision policy).
        device
            Target device; the backend's default device when ``None``.
        """
        raise NotImplementedError

    def to_numpy(self, array: Any) -> np.ndarray:
        """Copy an array of this library into a NumPy array on the host."""
        return np.asarray(array)

    def normal(
        self,
        shape: Sequence[int],
        seed: int,
        dtype: Any = None,
        device: Any = None,
    ) -> Any:
        """Standard normal random numbers, the same on every backend for one seed.

        The numbers are drawn on the host with NumPy's PCG64 generator and then moved
        to this backend, so that a seed gives identical beams on NumPy, PyTorch, JAX,
        CuPy and array-api-strict (which is what cross-backend comparisons need).

        Parameters
        ----------
        shape
            Shape of the result.
        seed
            Seed of the generator (a non-negative integer).
        dtype, device
            As in :meth:`asarray`.
        """
        values = np.random.Generator(np.random.PCG64(seed)).standard_normal(tuple(shape))
        return self.asarray(values, dtype=dtype, device=device)

    def uniform(
        self,
        shape: Sequence[int],
        seed: int,
        dtype: Any = None,
        device: Any = None,
    ) -> Any:
        """Uniform random numbers in ``[0, 1)``, the same on every backend for one seed.

        Drawn on the host with NumPy's PCG64 generator, like :meth:`normal`.
        """
        values = np.random.Generator(np.random.PCG64(seed)).random(tuple(shape))
        return self.asarray(values, dtype=dtype, device=device)

    def scatter_add(self, target: Any, indices: Any, values: Any) -> Any:
        """Return ``target`` with ``values`` added at ``indices`` along axis 0.

        Repeated indices accumulate (the deposition step of particle-in-cell codes).
        The input is not modified.
        """
        raise NotImplementedError

    # -- autodiff --------------------------------------------------------------------
    def value_and_grad(self, fn: Callable[..., Any], argnums: int = 0) -> Callable[..., Any]:
        """Wrap ``fn`` to return ``(value, gradient)`` of a scalar output."""
        raise NoAutodiffError(
            f"backend {self.name!r} has no automatic differentiation; use one of "
            f"{', '.join(AUTODIFF_BACKENDS)} (Particles.to_backend) for gradients"
        )

    def jit(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Compile ``fn`` where the library has a compiler; identity otherwise."""
        return fn

    def is_traced(self, array: Any) -> bool:
        """Whether ``array`` is an abstract value inside a transformation (no data)."""
        return False

    def has_values(self, array: Any) -> bool:
        """Whether ``array`` holds values that can be read eagerly (not a tracer inside a
        transformation, not a data-less torch ``meta`` tensor): eager input checks run
        only on such arrays."""
        return not self.is_traced(array)

    def enable_float64(self) -> None:
        """Switch the library to float64 support where that is a global setting (JAX)."""

    def resolve_dtype(self, dtype: Any) -> Any:
        """Turn a dtype name or ``None`` (float64) into this library's dtype."""
        xp = self.namespace()
        if dtype is None:
            return xp.float64
        if isinstance(dtype, str):
            return getattr(xp, dtype)
        return dtype

    def __repr__(self) -> str:
        return f"<beamtrack backend {self.name!r}>"
