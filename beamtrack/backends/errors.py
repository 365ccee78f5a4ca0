"""Errors raised by the backends layer."""

from __future__ import annotations


class BackendError(RuntimeError):
    """A problem with an array library (missing, misconfigured, or mixed)."""


class BackendUnavailableError(BackendError):
    """The requested array library is not installed."""


class PrecisionError(BackendError):
    """float64 was asked for but the library is set up for float32 only (JAX)."""


class NoAutodiffError(BackendError):
    """A gradient was asked of a backend that cannot differentiate (NumPy, CuPy)."""
