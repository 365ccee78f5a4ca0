"""Errors raised for bad tracking input."""

from __future__ import annotations

from beamtrack.backends.errors import BeamtrackError


class ParameterError(BeamtrackError, ValueError):
    """An element or tracking parameter is invalid (wrong type, value or backend).

    The message names the element (where known) and the parameter.

    Parameters
    ----------
    message
        What is wrong, naming the parameter (``"parameter 'k1' must be finite"``).
    element
        Who raised it: a tracking function's label (``"quadrupole"``) or an element
        (``"Quadrupole 'qf'"``); it prefixes the message.
    """

    def __init__(self, message: str, *, element: str | None = None) -> None:
        self.detail = message
        self.element = element
        super().__init__(f"{element}: {message}" if element else message)

    def for_element(self, element: str) -> ParameterError:
        """The same error, labelled with ``element`` instead of its current label.

        Element records use this so that an error raised inside a tracking function
        names the element once (``"Sextupole 's1': parameter 'k2' ..."``), not twice.
        """
        if self.element is None and self.detail.startswith(f"{element}:"):
            return self
        return type(self)(self.detail, element=element)
