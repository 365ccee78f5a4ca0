"""The ``LinearMap`` element: a given first-order map, e.g. the fusion of linear elements."""

from __future__ import annotations

from typing import Any

from beamtrack.lattice.elements import Element, element_record
from beamtrack.tracking.linear import track_linear_map


@element_record
class LinearMap(Element):
    """A first-order map ``coords -> R @ coords + c`` over a length.

    :meth:`Beamline.merged` builds these from runs of consecutive ``"linear"``
    elements; users can also give one directly (e.g. a measured response matrix).

    Parameters
    ----------
    name
        Element name.
    r
        Matrix ``(*batch, 6, 6)`` (array of any backend).
    c
        Constant vector ``(*batch, 6)`` (array) or 0.
    length
        Length [m].
    """

    r: Any
    c: Any = 0.0
    length: Any = 0.0

    tracker = staticmethod(track_linear_map)
