"""Interleaving space-charge kicks with a line's elements (split-step, second order).

:func:`with_space_charge` (also :meth:`Beamline.with_space_charge
<beamtrack.lattice.beamline.Beamline.with_space_charge>`) cuts each element of a line
into slices of at most ``every`` metres and puts one
:class:`~beamtrack.lattice.elements.SpaceCharge` kick of the slice's length in the
middle of each slice: ``E(h/2) K(h) E(h/2)``, Strang's second-order splitting of the
single-particle map ``E`` and the collective kick ``K``. The error of a slice falls as
``h^3``, the error over the line as ``h^2``.

Elements whose parameters scale with their length (drifts, quadrupoles, sextupoles,
octupoles, solenoids, thick multipoles, kickers) are sliced; other elements with a
length (bends with their edges, cavities, collimators, user elements) stay whole,
between two kicks of half their length, ``K(L/2) E K(L/2)`` (also second order). Thin
elements pass unchanged.
"""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING, Any

import numpy as np

from beamtrack.backends import backend_of
from beamtrack.lattice.elements import Element, SpaceCharge
from beamtrack.tracking.errors import ParameterError

if TYPE_CHECKING:  # pragma: no cover
    from beamtrack.lattice.beamline import Beamline

#: Kinds that are cut into slices, with their integrated parameters (scaled with the
#: slice's share of the length).
SLICEABLE: dict[str, tuple[str, ...]] = {
    "Drift": (),
    "Quadrupole": (),
    "Sextupole": (),
    "Octupole": (),
    "Solenoid": (),
    "ThickMultipole": ("knl", "ksl"),
    "Kicker": ("hkick", "vkick"),
    "HKicker": ("kick",),
    "VKicker": ("kick",),
}


def _host_length(element: Element) -> float:
    """The largest length of ``element`` over batch entries, on the host [m]."""
    length = element.length
    if isinstance(length, numbers.Real):
        return float(length)
    backend = backend_of(length)
    if backend.is_traced(length):
        raise ParameterError("with_space_charge needs lengths known outside jax "
                             "transformations (the number of slices is a Python integer); "
                             "build the line before jax.jit", element=element._label)
    return float(np.max(backend.to_numpy(length)))


def _scaled(value: Any, share: float) -> Any:
    if isinstance(value, tuple):
        return tuple(v * share for v in value)
    return value * share


def with_space_charge(line: Beamline, every: float, *, prefix: str = "sc_",
                      **kick: Any) -> Beamline:
    """``line`` with space-charge kicks interleaved (see the module docstring).

    Parameters
    ----------
    line
        The beamline; nested lines are flattened.
    every
        Longest slice [m] between two kicks (a positive number).
    prefix
        Kicks are named ``prefix + element name`` (all slices of one element share one
        kick definition).
    **kick
        Parameters of the :class:`~beamtrack.lattice.elements.SpaceCharge` kicks
        (``grid_shape``, ``grid_extent_x``, ..., ``grid_sigmas``).

    Returns
    -------
    Beamline
        A flat line of the same name, method and reference.
    """
    from beamtrack.lattice.beamline import Beamline

    if (isinstance(every, bool) or not isinstance(every, numbers.Real)
            or not math.isfinite(every) or every <= 0):
        raise ParameterError(f"parameter 'every' must be a positive length [m], got {every!r}",
                             element="with_space_charge")
    items: list[Element] = []
    for element in line:
        if isinstance(element, SpaceCharge):
            items.append(element)
            continue
        length = _host_length(element)
        if length == 0.0:
            items.append(element)
            continue
        name = prefix + element.name
        if element.kind in SLICEABLE:
            slices = max(1, math.ceil(length / every - 1e-9))
            share = 0.5 / slices
            params = {"length": element.length * share}
            params.update({k: _scaled(getattr(element, k), share)
                           for k in SLICEABLE[element.kind]})
            half = element.replace(**params)
            sc = SpaceCharge(name, length=element.length / slices, **kick)
            for _ in range(slices):
                items += [half, sc, half]
        else:
            sc = SpaceCharge(name, length=element.length * 0.5, **kick)
            items += [sc, element, sc]
    return Beamline(items, line.name, line.method, line.reference)
