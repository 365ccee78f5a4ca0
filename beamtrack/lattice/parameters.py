"""Parameter declarations: what an element kind's parameters are, written once.

Every parameter of every element kind is declared by one :class:`Parameter`: its
default, unit, meaning, role and validation rule. An element record is a plain frozen
dataclass whose fields carry these declarations (made by :func:`param`); the record's
validation, its ``parameters()`` and ``arrays()``, its JAX pytree, its docstring and
the lattice files all read them. Parameters that many kinds share are declared once in
blocks (:data:`MISALIGNMENT`, :data:`SLICING`) that a kind includes
(:func:`~beamtrack.lattice.elements.element_kind`).

Roles
-----
``"number"``
    A differentiable number or array (optional batch dimensions).
``"optional"``
    Like ``"number"``, or ``None`` for "unset" (a bend's ``fint_exit``).
``"orders"``
    Multipole strengths order by order: a tuple of numbers or arrays (a list becomes a
    tuple), or one array whose first axis runs over the orders.
``"mapping"``
    Named numbers or arrays (``Custom.values``); each entry is a parameter of its own.
``"integer"``
    A static Python integer ``>= minimum`` (``num_steps``, ``seed``): it sets loop
    lengths or random streams, so it is part of a compiled signature.
``"choice"``
    One of a few strings (``choices``); ``unsupported`` values raise
    ``NotImplementedError``.
``"tuple"``
    A fixed tuple of ``size`` positive Python numbers of type ``entry`` (a screen's
    ``resolution``).
``"callable"``
    A Python function (``Custom.function``).

The first four are differentiable (:attr:`Parameter.differentiable`); the others are
static.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Literal

#: Roles of a parameter (see the module docstring).
Role = Literal["number", "optional", "orders", "mapping", "integer", "choice", "tuple",
               "callable"]
#: Roles whose values are differentiable numbers or arrays.
DIFFERENTIABLE_ROLES: frozenset[str] = frozenset({"number", "optional", "orders", "mapping"})
#: Default of a parameter that must be given (no default).
REQUIRED: Any = dataclasses.MISSING

_TYPE_TEXT = {
    "number": "float or array",
    "optional": "float or array or None",
    "orders": "tuple of float or array, or array",
    "mapping": "mapping of str to float or array",
    "callable": "callable",
}


@dataclasses.dataclass(frozen=True, eq=False)
class Parameter:
    """Declaration of one element parameter.

    Parameters
    ----------
    default
        Default value (:data:`REQUIRED` if it must be given).
    unit
        Unit, e.g. ``"m"``, ``"1/m^2"``, ``"rad"``, ``"eV"``, ``"Hz"``; ``""`` for a
        dimensionless or non-numeric parameter.
    meaning
        One line saying what it is (written into the kind's docstring).
    role
        One of :data:`Role` (see the module docstring).
    nonnegative
        Numbers (and every entry of arrays) must be ``>= 0``.
    minimum
        Smallest allowed value of an ``"integer"``.
    choices
        Allowed strings of a ``"choice"``.
    unsupported
        Strings of a ``"choice"`` that are known but not implemented (they raise
        ``NotImplementedError`` rather than :class:`~beamtrack.tracking.errors.ParameterError`).
    size
        Number of entries of a ``"tuple"``.
    entry
        Type of the entries of a ``"tuple"`` (``int`` or ``float``).
    """

    default: Any
    unit: str
    meaning: str
    role: Role = "number"
    nonnegative: bool = False
    minimum: int = 1
    choices: tuple[str, ...] = ()
    unsupported: tuple[str, ...] = ()
    size: int = 0
    entry: type = float

    @property
    def differentiable(self) -> bool:
        """Whether values are differentiable numbers or arrays (not static)."""
        return self.role in DIFFERENTIABLE_ROLES

    @property
    def type_text(self) -> str:
        """The NumPy-docstring type of the parameter with its unit (``"float or array,
        in m"``); choices are listed with the default first."""
        if self.role == "integer":
            text = f"int >= {self.minimum}"
        elif self.role == "choice":
            ordered = sorted(self.choices, key=lambda choice: choice != self.default)
            text = "{" + ", ".join(repr(choice) for choice in ordered) + "}"
        elif self.role == "tuple":
            text = f"tuple of {self.size} {self.entry.__name__} > 0"
        else:
            text = _TYPE_TEXT[self.role] + (" >= 0" if self.nonnegative else "")
        return f"{text}, in {self.unit}" if self.unit else text

    def field(self) -> Any:
        """A keyword-only dataclass field carrying this declaration (as metadata)."""
        metadata = {"parameter": self}
        if self.default is REQUIRED:
            return dataclasses.field(kw_only=True, metadata=metadata)
        if isinstance(self.default, Mapping):
            default = dict(self.default)
            return dataclasses.field(kw_only=True, default_factory=lambda: dict(default),
                                     metadata=metadata)
        return dataclasses.field(kw_only=True, default=self.default, metadata=metadata)


def param(default: Any = REQUIRED, unit: str = "", meaning: str = "", **rule: Any) -> Any:
    """Declare a parameter as a dataclass field of an element record.

    Parameters
    ----------
    default
        Default value; leave out for a required parameter.
    unit
        Unit (``""`` for none), e.g. ``"m"``.
    meaning
        One line of meaning.
    **rule
        The other fields of :class:`Parameter`. Without ``role``, ``choices`` makes a
        ``"choice"``, ``size`` a ``"tuple"``, ``minimum`` an ``"integer"``; otherwise
        the role is ``"number"``.

    Returns
    -------
    dataclasses.Field
        Use as the default of an annotated class attribute,
        ``length: Any = param(0.0, "m", "Length.")``.
    """
    if "role" not in rule:
        inferred = [role for key, role in (("choices", "choice"), ("size", "tuple"),
                                           ("minimum", "integer")) if key in rule]
        rule["role"] = inferred[0] if inferred else "number"
    return Parameter(default, unit, meaning, **rule).field()


#: Length of an element body along the reference orbit, shared by most kinds.
LENGTH = Parameter(0.0, "m", "Length.")

#: Misalignment of a magnet or detector: roll about s and transverse offsets.
MISALIGNMENT: Mapping[str, Parameter] = MappingProxyType({
    "tilt": Parameter(0.0, "rad", "Rotation about s (roll), a misalignment."),
    "x_offset": Parameter(0.0, "m", "Horizontal offset, a misalignment."),
    "y_offset": Parameter(0.0, "m", "Vertical offset, a misalignment."),
})

#: Slicing of an element body.
SLICING: Mapping[str, Parameter] = MappingProxyType({
    "num_steps": Parameter(1, "", "Number of body slices (kick-drift-kick steps of "
                                  "thin-kick models).", role="integer", minimum=1),
})
