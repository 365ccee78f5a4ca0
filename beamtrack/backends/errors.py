"""Errors raised by the backends layer, and the base of every beamtrack error.

:class:`BeamtrackError` lives here, in the lowest layer, so that every layer above can
derive its errors from it: ``except beamtrack.BeamtrackError`` catches every documented
error of the library (each also keeps a standard base class such as ``ValueError``,
so existing ``except ValueError`` code keeps working).
"""

from __future__ import annotations


class BeamtrackError(Exception):
    """Base class of every documented beamtrack error.

    Subclasses: :class:`BackendError` (and its kinds), ``ParameterError``
    (:mod:`beamtrack.tracking.errors`), ``LatticeError`` and ``LatticeFileError``
    (:mod:`beamtrack.lattice.errors`).
    """


class BackendError(BeamtrackError, RuntimeError):
    """A problem with an array library (missing, misconfigured, or mixed)."""


class BackendUnavailableError(BackendError):
    """The requested array library is not installed."""


class PrecisionError(BackendError):
    """float64 was asked for but the library is set up for float32 only (JAX)."""


class NoAutodiffError(BackendError):
    """A gradient was asked of a backend that cannot differentiate (NumPy, CuPy)."""
