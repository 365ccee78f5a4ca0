"""Errors raised for bad tracking input."""

from __future__ import annotations


class ParameterError(ValueError):
    """An element or tracking parameter is invalid (wrong type, value or backend).

    The message names the element (where known) and the parameter.
    """
