"""The project's default backend, device and dtype for creating arrays.

Everything that *creates* particles from scratch (the beam generators,
:class:`~beamtrack.tracking.particles.Particles` built from Python numbers, the probe
particles of ``twiss`` and ``merged``, the ``beamtrack`` command) uses these defaults
where no ``backend=``, ``device=`` or ``dtype=`` is given. Tracking is not affected: it
always follows the data it is given.

Three ways to set them, from the broadest to the narrowest:

- environment variables ``BEAMTRACK_BACKEND``, ``BEAMTRACK_DEVICE`` and
  ``BEAMTRACK_DTYPE``, read once, when beamtrack is imported (for scripts and batch
  jobs);
- :func:`set_defaults`, for the whole process;
- the :func:`defaults` context manager, for one block (in the current thread or
  asyncio task only, like ``jax.default_device``); it restores the previous values on
  exit, also when the block raises.

This module imports no array library: JAX is imported only when JAX becomes the
default with float64 (to switch on ``jax_enable_x64``, see :func:`set_defaults`).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from beamtrack.backends.base import Backend
from beamtrack.backends.errors import BackendError, BackendUnavailableError
from beamtrack.backends.registry import KNOWN, get

#: Environment variables read at import, by setting.
ENVIRONMENT = {
    "backend": "BEAMTRACK_BACKEND",
    "device": "BEAMTRACK_DEVICE",
    "dtype": "BEAMTRACK_DTYPE",
}
#: Floating dtypes a default may name.
DTYPES = ("float64", "float32")

_DEVICE_PATTERN = re.compile(r"^[A-Za-z_]+(:\d+)?$|^\d+$")


class DefaultsError(BackendError, ValueError):
    """A default backend, device or dtype that beamtrack cannot use; the message names
    the setting (and the environment variable, where it came from one)."""


@dataclass(frozen=True)
class Defaults:
    """The defaults in force.

    Attributes
    ----------
    backend
        Name of the backend new arrays are created in (``"numpy"`` unless set).
    device
        Device on that backend (a string such as ``"cuda:1"``, a device number, or a
        library device object), or ``None`` for the backend's default device.
    dtype
        ``"float64"`` (unless set) or ``"float32"``.
    """

    backend: str = "numpy"
    device: Any = None
    dtype: str = "float64"


class _Unchanged:
    """Marks a setting that a call leaves as it is."""

    def __repr__(self) -> str:
        return "UNCHANGED"


_UNSET: Any = _Unchanged()


def _where(setting: str, source: str | None) -> str:
    if source is None:
        return f"default {setting}"
    return f"environment variable {source} (default {setting})"


def _check_backend(value: Any, source: str | None = None) -> str:
    where = _where("backend", source)
    if not isinstance(value, str) or value not in KNOWN:
        raise DefaultsError(
            f"{where}: unknown backend {value!r}; choose one of {', '.join(KNOWN)}"
        )
    get(value)  # raises BackendUnavailableError when it is not installed
    return value


def _check_dtype(value: Any, source: str | None = None) -> str:
    where = _where("dtype", source)
    if value is None:
        return "float64"
    if isinstance(value, str):
        name = value
    else:
        import numpy as np

        try:
            name = np.dtype(value).name
        except TypeError:  # torch.float32 and the like
            name = str(value).rsplit(".", 1)[-1]
    if name not in DTYPES:
        raise DefaultsError(f"{where}: dtype must be one of {', '.join(DTYPES)}, got {value!r}")
    return name


def _check_device(value: Any, source: str | None = None) -> Any:
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return value
    if isinstance(value, str):
        if not _DEVICE_PATTERN.match(value):
            raise DefaultsError(
                f"{_where('device', source)}: {value!r} is not a device name; use for example "
                "'cpu', 'cuda', 'cuda:1', 'gpu' or a device number"
            )
        return int(value) if value.isdigit() else value
    if isinstance(value, bool | int | float):
        raise DefaultsError(f"{_where('device', source)}: {value!r} is not a device")
    return value  # a library device object (torch.device, a jax Device, ...)


def read_environment(environ: Mapping[str, str]) -> Defaults:
    """The defaults named by the variables of :data:`ENVIRONMENT` in ``environ`` (such
    as ``os.environ``; unset or empty variables keep the built-in values).

    Raises
    ------
    DefaultsError
        A value beamtrack cannot use, or a backend that is not installed; the
        message names the variable.
    """
    values: dict[str, Any] = {}
    for setting, variable in ENVIRONMENT.items():
        text = environ.get(variable, "").strip()
        if text:
            values[setting] = text
    try:
        backend = _check_backend(values.get("backend", "numpy"), ENVIRONMENT["backend"])
    except BackendUnavailableError as exc:
        raise DefaultsError(f"environment variable {ENVIRONMENT['backend']}: {exc}") from exc
    dtype = _check_dtype(values.get("dtype"), ENVIRONMENT["dtype"])
    device = _check_device(values.get("device"), ENVIRONMENT["device"])
    return Defaults(backend=backend, device=device, dtype=dtype)


_process_defaults = read_environment(os.environ)

#: Overrides of the :func:`defaults` blocks in force in this thread / task.
_block: contextvars.ContextVar[Defaults | None] = contextvars.ContextVar(
    "beamtrack_defaults", default=None
)


def get_defaults() -> Defaults:
    """The defaults in force here: the innermost :func:`defaults` block's, else the
    process's (:func:`set_defaults`, else the environment variables, else
    ``numpy`` / the backend's default device / ``float64``)."""
    block = _block.get()
    return _process_defaults if block is None else block


def _updated(base: Defaults, backend: Any, device: Any, dtype: Any) -> Defaults:
    changes: dict[str, Any] = {}
    if backend is not _UNSET:
        changes["backend"] = _check_backend("numpy" if backend is None else backend)
        if device is _UNSET and changes["backend"] != base.backend:
            changes["device"] = None  # a device belongs to its backend
    if device is not _UNSET:
        changes["device"] = _check_device(device)
    if dtype is not _UNSET:
        changes["dtype"] = _check_dtype(dtype)
    new = replace(base, **changes)
    _ensure_float64(new)
    return new


def _ensure_float64(chosen: Defaults) -> None:
    """Switch on ``jax_enable_x64`` when JAX with float64 is the default, so that JAX
    never computes silently in float32 (beamtrack's float64 policy)."""
    if chosen.backend == "jax" and chosen.dtype == "float64":
        get("jax").enable_float64()


def set_defaults(backend: Any = _UNSET, device: Any = _UNSET, dtype: Any = _UNSET) -> Defaults:
    """Set the process-wide defaults; settings not given keep their value.

    Parameters
    ----------
    backend
        Name of the backend (``"numpy"``, ``"torch"``, ``"jax"``, ``"cupy"``,
        ``"array_api_strict"``); ``None`` restores ``"numpy"``. Changing the backend
        without giving ``device`` resets the device to the backend's default.
    device
        A device of that backend (``"cpu"``, ``"cuda"``, ``"cuda:1"``; for JAX also
        ``"cpu"``, ``"gpu"``, ``"gpu:1"``; for CuPy a device number), a library device
        object, or ``None`` for the backend's default device.
    dtype
        ``"float64"``, ``"float32"`` or an equivalent dtype object; ``None`` restores
        ``"float64"``.

    Returns
    -------
    Defaults
        The previous defaults (pass their fields back to restore them).

    Raises
    ------
    DefaultsError
        A value beamtrack cannot use; the message names the setting.
    BackendUnavailableError
        The backend is not installed.

    Notes
    -----
    With ``backend="jax"`` and ``float64``, JAX's global ``jax_enable_x64`` flag is
    switched on here (and stays on), since JAX would otherwise create float32 arrays.
    """
    global _process_defaults
    previous = _process_defaults
    _process_defaults = _updated(previous, backend, device, dtype)
    return previous


@contextlib.contextmanager
def defaults(backend: Any = _UNSET, device: Any = _UNSET, dtype: Any = _UNSET
             ) -> Iterator[Defaults]:
    """Use other defaults inside a ``with`` block; settings not given are inherited.

    The previous defaults come back when the block ends, also on an exception. Blocks
    nest; they apply to the current thread (or asyncio task) only. Parameters as in
    :func:`set_defaults`. A :func:`set_defaults` call inside a block takes effect
    when the block ends (the block's settings win while it lasts).

    Yields
    ------
    Defaults
        The defaults in force inside the block.

    Examples
    --------
    >>> import beamtrack as bt
    >>> with bt.defaults(dtype="float32"):
    ...     beam = bt.gaussian_particles(4, sigma=[1e-3] * 6, p0c=1e9, mc2=bt.electron.mc2)
    >>> beam.dtype
    dtype('float32')
    """
    chosen = _updated(get_defaults(), backend, device, dtype)
    token = _block.set(chosen)
    try:
        yield chosen
    finally:
        _block.reset(token)


def resolve(backend: str | None = None, dtype: Any = None, device: Any = None
            ) -> tuple[Backend, Any, Any]:
    """Where to create new arrays: ``(Backend, dtype, device)`` with the defaults applied.

    For code that creates particles from scratch. ``backend=None`` means the default
    backend; ``dtype=None`` the default dtype; ``device=None`` the default device when
    the backend is the default backend, else that backend's own default device.
    Device names are turned into devices where the library needs objects (JAX:
    ``"cpu"``, ``"gpu:1"``; CuPy: ``"1"``).

    Returns
    -------
    tuple
        The :class:`~beamtrack.backends.base.Backend`, a dtype name or object for its
        ``asarray``, and a device (or ``None``).
    """
    chosen = get_defaults()
    name = chosen.backend if backend is None else backend
    target = get(name)
    if dtype is None:
        dtype = chosen.dtype
    if device is None and name == chosen.backend:
        device = chosen.device
    if name == "jax" and dtype == "float64" and backend is None:
        _ensure_float64(chosen)  # the default came from the environment
    _check_floating(target, dtype)
    return target, dtype, resolve_device(target, device)


def _check_floating(target: Backend, dtype: Any) -> None:
    """Particles are real floating point: an integer dtype would truncate every
    coordinate to zero, a complex one would carry a meaningless imaginary part."""
    try:
        resolved = target.resolve_dtype(dtype)
        floating = target.namespace().isdtype(resolved, "real floating")
    except (AttributeError, TypeError):
        floating = False
    if not floating:
        raise DefaultsError(f"dtype {dtype!r} is not a real floating-point type of "
                            f"{target.name}; use 'float64' or 'float32'")


def resolve_device(target: Backend, device: Any) -> Any:
    """``device`` as ``target``'s ``asarray`` takes it (names to JAX and CuPy devices).

    Raises
    ------
    DefaultsError
        A JAX device name that matches no device of ``jax.devices()``.
    """
    if not isinstance(device, str):
        return device
    if target.name == "cupy" and device.isdigit():
        return int(device)
    if target.name != "jax":
        return device
    jax = target.module()
    platform, _, index = device.partition(":")
    platform = {"cuda": "gpu", "rocm": "gpu"}.get(platform.lower(), platform.lower())
    try:
        found = jax.devices(platform)
    except RuntimeError as exc:
        raise DefaultsError(f"device {device!r}: JAX has no {platform!r} devices") from exc
    position = int(index) if index else 0
    if position >= len(found):
        raise DefaultsError(
            f"device {device!r}: JAX has {len(found)} {platform!r} device(s)"
        )
    return found[position]
