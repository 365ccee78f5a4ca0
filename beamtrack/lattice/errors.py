"""Errors raised for bad lattice input."""

from __future__ import annotations

from beamtrack.tracking.errors import ParameterError


class LatticeError(ValueError):
    """A beamline is inconsistent (duplicate names, unknown element, bad nesting)."""


class UnknownParameterError(ParameterError, TypeError):
    """An element was given a parameter its kind does not have."""


class LatticeFileError(LatticeError):
    """A lattice file cannot be read (syntax, format version, unknown element kind)."""
