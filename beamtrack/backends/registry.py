"""Which array libraries are installed, and which one an array belongs to."""

from __future__ import annotations

from typing import Any

import array_api_compat

from beamtrack.backends.array_api_strict_backend import ArrayApiStrictBackend
from beamtrack.backends.base import Backend
from beamtrack.backends.cupy_backend import CupyBackend
from beamtrack.backends.errors import BackendError, BackendUnavailableError
from beamtrack.backends.jax_backend import JaxBackend
from beamtrack.backends.numpy_backend import NumpyBackend
from beamtrack.backends.torch_backend import TorchBackend

_BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (NumpyBackend(), TorchBackend(), JaxBackend(), CupyBackend(), ArrayApiStrictBackend())
}

#: Names of all backends beamtrack knows, installed or not.
KNOWN = tuple(_BACKENDS)


def available() -> list[str]:
    """Names of the backends whose library is installed here.

    CuPy counts only when it is installed *and* a CUDA device is visible.
    """
    names = []
    for name, backend in _BACKENDS.items():
        if not backend.is_installed():
            continue
        if name == "cupy":
            try:
                if not backend.devices():
                    continue
            except Exception:  # noqa: BLE001 - any CUDA failure means "not usable"
                continue
        names.append(name)
    return names


def get(name: str) -> Backend:
    """The backend called ``name``.

    Raises
    ------
    BackendUnavailableError
        If the name is unknown or its library is not installed.
    """
    if name not in _BACKENDS:
        raise BackendUnavailableError(
            f"unknown backend {name!r}; known backends: {', '.join(KNOWN)}"
        )
    backend = _BACKENDS[name]
    if not backend.is_installed():
        raise BackendUnavailableError(
            f"backend {name!r} is not installed; install it with `pip install beamtrack[{name}]`"
        )
    return backend


def backend_of(array: Any) -> Backend:
    """The backend that owns ``array``.

    Raises
    ------
    BackendError
        If ``array`` belongs to none of the known libraries.
    """
    for backend in _BACKENDS.values():
        if backend.name == "array_api_strict" or backend.is_installed():
            if backend.owns(array):
                return backend
    raise BackendError(f"{type(array).__name__} is not an array of any beamtrack backend")


def namespace_of(*arrays: Any) -> Any:
    """The Array API namespace shared by ``arrays``.

    Raises
    ------
    BackendError
        If the arrays belong to different libraries (beamtrack never moves data
        between libraries silently).
    """
    try:
        return array_api_compat.array_namespace(*arrays)
    except TypeError as exc:
        kinds = sorted({type(a).__module__.split(".")[0] for a in arrays})
        raise BackendError(
            f"arrays of different libraries ({', '.join(kinds)}) cannot be mixed; move "
            "them to one backend first (Particles.to_backend / beamtrack.backends.get)"
        ) from exc
