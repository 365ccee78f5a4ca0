"""The ``Custom`` element: any function ``Particles -> Particles`` in a beamline.

A custom element stands for a component beamtrack does not model, a measured map or a
neural-network surrogate. It takes part in tracking, gradients (torch and jax), batching
(``jax.vmap``, batch dimensions of its parameters), ``jax.jit`` and ``torch.compile`` like
any other element; its named parameters appear in ``Beamline.parameters()`` as
``"name.parameter"``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from beamtrack.lattice.elements import Element, element_kind
from beamtrack.lattice.parameters import REQUIRED, param
from beamtrack.tracking.errors import ParameterError
from beamtrack.tracking.parameters import as_parameter, per_particle
from beamtrack.tracking.particles import Particles


@element_kind
class Custom(Element):
    """A user function ``function(particles, **values) -> particles`` as an element.

    The function is used for both tracking methods. Each entry of ``values`` is a
    parameter of its own (``"name.gain"`` in ``Beamline.parameters()``), passed to
    ``function`` as an array of the particles' library and dtype with a trailing axis of
    length 1, so that a value of shape ``(*batch)`` broadcasts against coordinates of
    shape ``(*batch, n)``.

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

    function: Callable[..., Particles] = param(
        REQUIRED, "", "Takes Particles and the values as keyword arguments and returns the "
        "outgoing Particles. It should use the particles' own array library "
        "(particles.xp), keep p0c, mc2 and the particle count, and mark particles it loses "
        "in alive.", role="callable")
    length: Any = param(0.0, "m", "Length; the outgoing s is the incoming s plus length.",
                        nonnegative=True)
    values: Mapping[str, Any] = param({}, "", "Named numeric parameters {'gain': 1.0, ...} "
                                      "(numbers or arrays, optional batch dimensions), "
                                      "differentiable and replaceable like any parameter.",
                                      role="mapping")

    mergeable = False
    affine_when_linear = False

    @property
    def has_body(self) -> bool:
        """Always True: the function is tracked."""
        return True

    def track(self, particles: Particles, method: str = "bmad") -> Particles:
        """Apply ``function`` (for either method) and advance ``s`` by ``length``."""
        coords = particles.coords
        try:
            values = {key: per_particle(as_parameter(value, coords, key))
                      for key, value in self.values.items()}
        except ParameterError as exc:
            raise exc.for_element(self._label) from exc
        out = self.function(particles, **values)
        if not isinstance(out, Particles):
            raise ParameterError(f"function must return Particles, got {type(out).__name__}",
                                 element=self._label)
        if out.coords.shape[-1] != particles.coords.shape[-1]:
            raise ParameterError(
                f"function changed the number of particles from {particles.coords.shape[-1]} "
                f"to {out.coords.shape[-1]}; mark lost particles in 'alive' instead",
                element=self._label)
        return Particles.from_fields(out.coords, particles.s + self.length, out.p0c, out.mc2,
                                     out.alive, charge=particles.charge,
                                     weight=particles.explicit_weight)
