"""The ``Custom`` element: any function ``Particles -> Particles`` in a beamline.

A custom element stands for a component beamtrack does not model, a measured map or a
neural-network surrogate. It takes part in tracking, gradients (torch and jax), batching
(``jax.vmap``, batch dimensions of its parameters), ``jax.jit`` and ``torch.compile`` like
any other element; its named parameters appear in ``Beamline.parameters()`` as
``"name.parameter"``.
"""

from __future__ import annotations

import dataclasses
import keyword
from collections.abc import Callable, Mapping
from typing import Any

from beamtrack.lattice.elements import Element, element_record
from beamtrack.lattice.errors import UnknownParameterError
from beamtrack.tracking.errors import ParameterError
from beamtrack.tracking.parameters import as_parameter, per_particle
from beamtrack.tracking.particles import Particles

#: Names a custom parameter may not take (they are fields of every element).
_RESERVED = frozenset({"name", "method", "function", "length", "values"})


@element_record
class Custom(Element):
    """A user function ``function(particles, **values) -> particles`` as an element.

    Parameters
    ----------
    name
        Element name.
    function
        Callable taking :class:`~beamtrack.tracking.particles.Particles` and the
        ``values`` as keyword arguments, returning the outgoing ``Particles``. It should
        use the particles' own array library (``particles.xp``) so that it runs on the
        backend it is given; it must keep ``p0c``, ``mc2`` and the particle count and
        should mark particles it loses in ``alive``. It is used for both tracking
        methods.
    length
        Length [m]; the outgoing ``s`` is set to the incoming ``s`` plus ``length``.
    values
        Named numeric parameters ``{"gain": 1.0, ...}`` (numbers or arrays, with
        optional batch dimensions), passed to ``function`` as arrays of the particles'
        library and dtype with a trailing axis of length 1, so that a value of shape
        ``(*batch)`` broadcasts against coordinates of shape ``(*batch, n)``;
        differentiable and replaceable like any element parameter (``"name.gain"``).

    Notes
    -----
    A custom element has no first-order map that beamtrack can read off: optics
    (``twiss``, ``transfer_map``), ``ParameterBeam`` tracking and ``Beamline.merged``
    keep it as is or raise, and it cannot be written to a lattice file.

    Examples
    --------
    >>> import beamtrack as bt
    >>> def thin_lens(particles, strength):
    ...     x, px = particles.x, particles.px
    ...     return particles.replace(px=px - strength * x)
    >>> lens = bt.Custom("lens", function=thin_lens, values={"strength": 0.5})
    >>> bt.Beamline([lens]).parameters()
    {'lens.length': 0.0, 'lens.strength': 0.5}
    """

    function: Callable[..., Particles]
    length: Any = 0.0
    values: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    mergeable = False
    affine_when_linear = False
    callable_parameters = ("function",)
    nonnegative_parameters = ("length",)

    def __post_init__(self) -> None:
        if not isinstance(self.values, Mapping):
            raise ParameterError(f"Custom {self.name!r}: parameter 'values' must be a mapping "
                                 f"of names to numbers or arrays, got "
                                 f"{type(self.values).__name__}")
        for key in self.values:
            if (not isinstance(key, str) or not key.isidentifier() or keyword.iskeyword(key)
                    or key in _RESERVED):
                raise ParameterError(
                    f"Custom {self.name!r}: custom parameter name {key!r} must be a Python "
                    f"identifier other than {', '.join(sorted(_RESERVED))}")
        object.__setattr__(self, "values", dict(self.values))
        # Name, method, the function and every numeric value, as for any element.
        super().__post_init__()

    def parameters(self) -> dict[str, Any]:
        """``function``, ``length`` and the custom ``values``, flattened."""
        return {"function": self.function, "length": self.length, **self.values}

    @property
    def has_body(self) -> bool:
        """Always True: the function is tracked."""
        return True

    @classmethod
    def _rebuild(cls, name: str, method: str | None, static: dict[str, Any],
                 numeric: dict[str, Any]) -> Custom:
        element = object.__new__(cls)
        object.__setattr__(element, "name", name)
        object.__setattr__(element, "method", method)
        object.__setattr__(element, "function", static["function"])
        object.__setattr__(element, "length", numeric.get("length", 0.0))
        object.__setattr__(element, "values",
                           {k: v for k, v in numeric.items() if k != "length"})
        return element

    def replace(self, **params: Any) -> Custom:
        """A copy with ``function``, ``length``, ``values`` or single values replaced."""
        fields = {"name": self.name, "function": self.function, "length": self.length,
                  "values": dict(self.values), "method": self.method}
        unknown = []
        for key, value in params.items():
            if key in fields:
                fields[key] = value
            elif key in self.values:
                fields["values"][key] = value
            else:
                unknown.append(key)
        if unknown:
            raise UnknownParameterError(
                f"Custom {self.name!r}: unknown parameter(s) {', '.join(sorted(unknown))}; "
                f"its parameters are function, length, {', '.join(self.values) or '(none)'}")
        return Custom(**fields)

    def track(self, particles: Particles, method: str = "bmad") -> Particles:
        """Apply ``function`` (for either method) and advance ``s`` by ``length``."""
        coords = particles.coords
        values = {key: per_particle(as_parameter(value, coords, f"{self.name}.{key}"))
                  for key, value in self.values.items()}
        out = self.function(particles, **values)
        if not isinstance(out, Particles):
            raise ParameterError(
                f"Custom {self.name!r}: function must return Particles, got "
                f"{type(out).__name__}")
        if out.coords.shape[-1] != particles.coords.shape[-1]:
            raise ParameterError(
                f"Custom {self.name!r}: function changed the number of particles from "
                f"{particles.coords.shape[-1]} to {out.coords.shape[-1]}; mark lost "
                "particles in 'alive' instead")
        return Particles._from_fields(out.coords, particles.s + self.length, out.p0c, out.mc2,
                                      out.alive)
