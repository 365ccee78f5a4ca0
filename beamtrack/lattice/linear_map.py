"""The ``LinearMap`` element: a given first-order map, e.g. the fusion of linear elements."""

from __future__ import annotations

from typing import Any

from beamtrack.lattice.elements import Element, element_kind
from beamtrack.lattice.parameters import LENGTH, REQUIRED, param
from beamtrack.tracking.linear import track_linear_map


@element_kind
class LinearMap(Element):
    """A first-order map ``coords -> R @ coords + c`` over a length.

    :meth:`Beamline.merged` builds these from runs of consecutive ``"linear"``
    elements; users can also give one directly (e.g. a measured response matrix).
    """

    r: Any = param(REQUIRED, "", "Matrix (*batch, 6, 6), an array of any backend (mixed "
                                 "units: the coordinates' own).")
    c: Any = param(0.0, "", "Constant vector (*batch, 6), an array, or 0.")
    length: Any = LENGTH.field()

    tracker = staticmethod(track_linear_map)
