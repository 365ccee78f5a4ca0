"""Element records: immutable descriptions of beamline elements.

A record holds an element's name and physical parameters and knows which tracking
function serves it; it computes nothing itself. Each kind is declared once: a frozen
dataclass made by :func:`element_kind` whose fields are
:class:`~beamtrack.lattice.parameters.Parameter` declarations (unit, meaning, role,
rule), with the shared blocks :data:`~beamtrack.lattice.parameters.MISALIGNMENT` and
:data:`~beamtrack.lattice.parameters.SLICING`. Validation, :meth:`Element.parameters`,
:meth:`Element.arrays`, the JAX pytree, the docstring's parameter list and the lattice
files all read that declaration.

Parameters are Python numbers or arrays of any backend (with optional batch
dimensions), so a beamline is a differentiable function of its parameters. Compilers
(``jax_scan``, ``torch_compile``) use :meth:`Element.signature`,
:meth:`Element.arrays` and :meth:`Element.rebuild`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import math
import numbers
import re
import textwrap
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import array_api_compat
import numpy as np

from beamtrack.backends import backend_of
from beamtrack.backends.pytrees import ensure_registered, register_pytree
from beamtrack.lattice.errors import UnknownParameterError
from beamtrack.lattice.parameters import LENGTH, MISALIGNMENT, SLICING, Parameter, param
from beamtrack.lattice.validation import check_value
from beamtrack.tracking.aperture import (
    APERTURE_SHAPES,
    aperture_factor,
    track_aperture,
    track_collimator,
)
from beamtrack.tracking.bend import (
    FRINGE_TYPES,
    UNSUPPORTED_FRINGE_TYPES,
    check_bend_geometry,
    rbend_to_sbend,
    track_dipole_edge,
    track_rbend,
    track_sbend,
)
from beamtrack.tracking.cavity import (
    CAVITY_TYPES,
    track_crab_cavity,
    track_lcavity,
    track_rfcavity,
)
from beamtrack.tracking.diagnostics import SCREEN_DEPOSITS, monitor_reading, screen_image
from beamtrack.tracking.drift import track_drift
from beamtrack.tracking.errors import ParameterError
from beamtrack.tracking.kicker import track_hkicker, track_kicker, track_vkicker
from beamtrack.tracking.moment_diagnostics import (
    gaussian_transmission,
    monitor_reading_moments,
    screen_image_moments,
)
from beamtrack.tracking.multipole import (
    track_multipole,
    track_octupole,
    track_sextupole,
    track_thick_multipole,
)
from beamtrack.tracking.parameter_beam import ParameterBeam
from beamtrack.tracking.particles import Particles
from beamtrack.tracking.quadrupole import track_quadrupole
from beamtrack.tracking.solenoid import track_solenoid
from beamtrack.tracking.space_charge import DEFAULT_GRID_SIGMAS, track_space_charge
from beamtrack.tracking.stepping import METHODS

#: Element kinds by name (the class name, as in lattice files), filled by
#: :func:`element_kind`.
ELEMENT_KINDS: dict[str, type[Element]] = {}

@contextlib.contextmanager
def _labelled(label: str) -> Iterator[None]:
    """Relabel a :class:`ParameterError` raised inside with the element ``label``."""
    try:
        yield
    except ParameterError as exc:
        relabelled = exc.for_element(label)
        if relabelled is exc:
            raise
        raise relabelled from exc


class _CheckedCall:
    """Checks the arguments of an element's constructor before the dataclass sees them."""

    #: Names of the dataclass fields, set by :func:`element_kind` (read here without
    #: ``dataclasses.fields``, which ``torch.compile`` cannot trace on a class).
    _field_names: ClassVar[tuple[str, ...]] = ("name", "method")

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        valid = cls._field_names
        unknown = sorted(set(kwargs) - set(valid))
        label = f"{cls.__name__} {kwargs.get('name', args[0] if args else '?')!r}"
        if unknown:
            raise UnknownParameterError(
                f"unknown parameter(s) {', '.join(unknown)}; valid parameters: "
                f"{', '.join(sorted(set(valid) - {'name'}))}", element=label)
        if len(args) > 1:
            raise ParameterError("only the name is positional; pass parameters by keyword, "
                                 "e.g. length=0.5", element=label)
        return super().__new__(cls)


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Element(_CheckedCall):
    """Base of all element records.

    An element kind is a frozen, keyword-only dataclass made by :func:`element_kind`
    whose fields declare its parameters (:func:`~beamtrack.lattice.parameters.param`).
    The constructor validates every parameter by its declared rule; an unknown keyword
    raises :class:`~beamtrack.lattice.errors.UnknownParameterError`.

    Parameters
    ----------
    name
        Unique name of the element in its beamline.
    method
        Tracking method for this element (one of
        :data:`~beamtrack.tracking.stepping.METHODS`); ``None`` uses the beamline's.
    """

    name: str
    method: str | None = dataclasses.field(default=None, kw_only=True)

    #: Tracking function serving this kind; ``None`` for elements without a body.
    tracker: ClassVar[Callable[..., Particles] | None] = None
    #: Whether runs of this kind in "linear" mode may be fused into one map by
    #: ``Beamline.merged`` (False for elements that observe or limit the beam or change
    #: the reference energy).
    mergeable: ClassVar[bool] = True
    #: Whether the "linear" method gives an affine map that optics can read off by
    #: tracking unit vectors (False for user functions, :class:`Custom`).
    affine_when_linear: ClassVar[bool] = True
    #: Observation function of diagnostics, ``(particles, **parameters) -> array``
    #: (Monitor reading, Screen image); ``None`` for elements that observe nothing.
    observer: ClassVar[Callable[..., Any] | None] = None
    #: Differentiable survival factor of limiting elements (Aperture),
    #: ``(particles, **parameters) -> (*batch, n)`` in [0, 1]; ``None`` otherwise.
    survival: ClassVar[Callable[..., Any] | None] = None
    #: Observation function of diagnostics for a moment beam (``ParameterBeam``),
    #: ``(beam, **parameters) -> array``; ``None`` for elements that observe nothing.
    moment_observer: ClassVar[Callable[..., Any] | None] = None
    #: Approximate transmitted fraction of a moment beam through limiting elements,
    #: ``(beam, **parameters) -> (*batch)``; ``None`` for elements that limit nothing.
    moment_transmission: ClassVar[Callable[..., Any] | None] = None
    #: Checks across parameters: ``(check, names)`` pairs, called as
    #: ``check(*values, label)`` after each parameter passed its own rule.
    checks: ClassVar[tuple[tuple[Callable[..., None], tuple[str, ...]], ...]] = ()
    #: The declaration (see :meth:`declaration`), set by :func:`element_kind`.
    _declaration: ClassVar[Mapping[str, Parameter]] = MappingProxyType({})

    def __post_init__(self) -> None:
        ensure_registered()
        if not isinstance(self.name, str) or not self.name:
            raise ParameterError(f"name must be a non-empty string, got {self.name!r}",
                                 element=self.kind)
        label = self._label
        if self.method is not None and self.method not in METHODS:
            raise ParameterError(f"parameter 'method' must be one of {', '.join(METHODS)} "
                                 f"or None, got {self.method!r}", element=label)
        reserved = frozenset(self._field_names)
        try:
            with _labelled(label):
                for key, spec in self.declaration().items():
                    value = check_value(spec, key, getattr(self, key), reserved)
                    object.__setattr__(self, key, value)
                for check, keys in self.checks:
                    check(*(getattr(self, key) for key in keys), label)
        except NotImplementedError as exc:
            raise NotImplementedError(f"{label}: {exc}") from None

    # -- declaration -------------------------------------------------------------------
    @classmethod
    def declaration(cls) -> Mapping[str, Parameter]:
        """The declared parameters of this kind, ``{name: Parameter}``, in order.

        Everything except ``name`` and ``method``; read-only.
        """
        return cls._declaration

    @property
    def kind(self) -> str:
        """Element kind (the class name, as in Bmad)."""
        return type(self).__name__

    @property
    def _label(self) -> str:
        return f"{self.kind} {self.name!r}"

    def parameters(self) -> dict[str, Any]:
        """Physical parameters (everything except ``name`` and ``method``), in order.

        The entries of a ``"mapping"`` parameter (``Custom.values``) appear one by one.
        """
        out: dict[str, Any] = {}
        for key, spec in self.declaration().items():
            value = getattr(self, key)
            if spec.role == "mapping":
                out.update(value)
            else:
                out[key] = value
        return out

    def arrays(self) -> dict[str, Any]:
        """The differentiable parameters: numbers, arrays and sequences of them.

        Leaves out static parameters (integers such as ``num_steps`` and ``seed``,
        choices, fixed tuples such as a screen's ``resolution``, functions) and unset
        optional values (``None``). These are the leaves of the element as a JAX pytree
        and what :meth:`rebuild` replaces.
        """
        out: dict[str, Any] = {}
        for key, spec in self.declaration().items():
            value = getattr(self, key)
            if spec.role == "mapping":
                out.update(value)
            elif spec.differentiable and value is not None:
                out[key] = value
        return out

    def numeric_parameters(self) -> dict[str, Any]:
        """The same as :meth:`arrays` (the name used by ``Beamline.parameters``)."""
        return self.arrays()

    def signature(self, method: str = "bmad") -> tuple[Any, ...]:
        """What must agree for two elements to share one compiled tracking function.

        Parameters
        ----------
        method
            Tracking method of the line; the element's own ``method`` takes precedence.

        Returns
        -------
        tuple
            Hashable ``(kind class, method, static parameters as (name, value) pairs,
            names of the arrays)``; the name and the array values are not part of it.
        """
        arrays = self.arrays()
        static = tuple((k, v) for k, v in self.parameters().items() if k not in arrays)
        return (type(self), self.method or method, static, tuple(arrays))

    def rebuild(self, arrays: Mapping[str, Any]) -> Element:
        """A copy with new values of some differentiable parameters, without validation.

        Parameters
        ----------
        arrays
            ``{name: value}`` for names of :meth:`arrays` (or unset optional
            parameters); values may be JAX tracers or torch tensors of any shape.

        Returns
        -------
        Element
            The same kind, name and method, with ``arrays`` replaced.
        """
        declaration = self.declaration()
        allowed = set(self.arrays()) | {k for k, s in declaration.items()
                                        if s.differentiable and s.role != "mapping"}
        unknown = sorted(set(arrays) - allowed)
        if unknown:
            raise UnknownParameterError(
                f"rebuild: {', '.join(unknown)} are not differentiable parameters; they "
                f"are {', '.join(sorted(self.arrays()))}", element=self._label)
        return _assemble(type(self), vars(self), arrays)

    # -- geometry ----------------------------------------------------------------------
    @property
    def length(self) -> Any:
        """Length [m] (zero for elements without a ``length`` parameter)."""
        return self.parameters().get("length", 0.0)

    @property
    def path_length(self) -> Any:
        """Length of the reference orbit through the element [m]: the advance of ``s``.

        Equal to :attr:`length` except for elements whose ``length`` is a chord
        (:class:`RBend`).
        """
        return self.length

    @property
    def has_body(self) -> bool:
        """Whether tracking changes the particles (False for markers and diagnostics)."""
        return self.tracker is not None

    # -- tracking ----------------------------------------------------------------------
    def track(self, particles: Particles, method: str = "bmad") -> Particles:
        """Track ``particles`` with this element's tracking function.

        ``method`` is used unless the element fixes its own ``method``. Errors of the
        tracking function name this element.
        """
        if self.tracker is None:
            return particles
        with _labelled(self._label):
            return type(self).tracker(particles, **self.parameters(), method=self.method or method)

    def observe(self, particles: Particles) -> Any:
        """What this element observes of ``particles``; ``None`` if it observes nothing.

        A :class:`Monitor` gives its reading ``(*batch, 2)``, a :class:`Screen` its
        image ``(*batch, ny, nx)``. ``particles`` may be a moment beam
        (:class:`~beamtrack.tracking.parameter_beam.ParameterBeam`): see
        :mod:`~beamtrack.tracking.moment_diagnostics`.
        """
        if isinstance(particles, ParameterBeam):
            observer = type(self).moment_observer
            if observer is None:
                return None
            with _labelled(self._label):
                return observer(particles, **self.observed_parameters())
        observer = type(self).observer
        if observer is None:
            return None
        with _labelled(self._label):
            return observer(particles, **self.parameters())

    def observed_parameters(self) -> dict[str, Any]:
        """The parameters an observer or transmission function takes (those of
        :meth:`parameters` without the length, which zero-length diagnostics lack)."""
        return {k: v for k, v in self.parameters().items() if k != "length"}

    def transmission(self, beam: ParameterBeam) -> Any:
        """Approximate fraction ``(*batch)`` of the moment beam ``beam`` that passes
        this element's opening (see
        :func:`~beamtrack.tracking.moment_diagnostics.gaussian_transmission`); ``None``
        for elements that limit nothing."""
        function = type(self).moment_transmission
        if function is None:
            return None
        with _labelled(self._label):
            return function(beam, **self.observed_parameters())

    def survival_factor(self, particles: Particles) -> Any:
        """Differentiable survival factor in [0, 1] of ``particles`` arriving here.

        Geometry only (``alive`` is not looked at); ``None`` for elements without an
        aperture. See :class:`Aperture` and :meth:`Beamline.observe
        <beamtrack.lattice.beamline.Beamline.observe>`.
        """
        survival = type(self).survival
        if survival is None:
            return None
        with _labelled(self._label):
            return survival(particles, **self.parameters())

    # -- copies, comparison, display -----------------------------------------------------
    def replace(self, **params: Any) -> Element:
        """A copy with some parameters replaced (validated like the constructor).

        Entries of a ``"mapping"`` parameter (``Custom.values``) can be replaced one by
        one by their names.
        """
        fields = {key: getattr(self, key) for key in self._field_names}
        mappings = [k for k, s in self.declaration().items() if s.role == "mapping"]
        for key in mappings:
            fields[key] = dict(fields[key])
        unknown = []
        for key, value in params.items():
            entry = next((m for m in mappings if key in fields[m]), None)
            if key in fields:
                fields[key] = value
            elif entry is not None:
                fields[entry][key] = value
            else:
                unknown.append(key)
        if unknown:
            raise UnknownParameterError(
                f"unknown parameter(s) {', '.join(sorted(unknown))}; its parameters are "
                f"{', '.join(self.parameters()) or '(none)'}", element=self._label)
        if mappings or "name" in params or "method" in params:
            return type(self)(**fields)
        return self._replaced(params)

    def _replaced(self, params: Mapping[str, Any]) -> Element:
        """:meth:`replace` of declared parameters: only the new values are checked by
        their rules (the others were checked when this record was made; checking an
        array costs a copy to the host), then the checks across parameters run."""
        label = self._label
        declaration = self.declaration()
        reserved = frozenset(self._field_names)
        try:
            with _labelled(label):
                new = {key: check_value(declaration[key], key, value, reserved)
                       for key, value in params.items()}
                element = _assemble(type(self), vars(self), new)
                for check, keys in self.checks:
                    check(*(getattr(element, key) for key in keys), label)
        except NotImplementedError as exc:
            raise NotImplementedError(f"{label}: {exc}") from None
        return element

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Element)
        if (self.name, self.method) != (other.name, other.method):
            return False
        mine, theirs = self.parameters(), other.parameters()
        return mine.keys() == theirs.keys() and all(_values_equal(mine[k], theirs[k])
                                                    for k in mine)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        parts = [repr(self.name)] + [f"{k}={_short_repr(v)}" for k, v in self.parameters().items()]
        if self.method:
            parts.append(f"method={self.method!r}")
        return f"{self.kind}({', '.join(parts)})"


def _assemble(cls: type[Element], fields: Mapping[str, Any], arrays: Mapping[str, Any]) -> Any:
    """An element of ``cls`` from all its ``fields`` with ``arrays`` put in, unchecked.

    Names of ``arrays`` that are not fields go into the ``"mapping"`` parameter.
    """
    declaration = cls.declaration()
    values = dict(fields)
    mappings = [k for k, s in declaration.items() if s.role == "mapping"]
    for key in mappings:
        values[key] = dict(values[key])
    for key, value in arrays.items():
        if key in declaration:
            values[key] = value
        else:
            values[mappings[0]][key] = value
    element = object.__new__(cls)
    for key, value in values.items():
        object.__setattr__(element, key, value)
    return element


def _flatten_element(element: Element) -> tuple[tuple[Any, ...], Any]:
    """JAX pytree: the arrays are the children, everything else is static."""
    arrays = element.arrays()
    declaration = element.declaration()
    static = tuple(
        (key, () if key in declaration and declaration[key].role == "mapping" else value)
        for key, value in vars(element).items() if key not in arrays)
    return tuple(arrays.values()), (type(element), tuple(arrays), static)


def _unflatten_element(aux: Any, children: Any) -> Element:
    cls, keys, static = aux
    return _assemble(cls, dict(static), dict(zip(keys, children)))


def _short_repr(value: Any) -> str:
    if array_api_compat.is_array_api_obj(value):
        return f"<{type(value).__module__.split('.')[0]} array {tuple(value.shape)}>"
    return repr(value)


def _values_equal(a: Any, b: Any) -> bool:
    if isinstance(a, tuple) or isinstance(b, tuple):
        return (isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b)
                and all(_values_equal(u, v) for u, v in zip(a, b)))
    a_arr = array_api_compat.is_array_api_obj(a)
    b_arr = array_api_compat.is_array_api_obj(b)
    if not a_arr and not b_arr:
        return bool(a == b)
    to_np = [backend_of(v).to_numpy(v) if array_api_compat.is_array_api_obj(v) else np.asarray(v)
             for v in (a, b)]
    return to_np[0].shape == to_np[1].shape and bool(np.array_equal(to_np[0], to_np[1]))


# -- declaring kinds ---------------------------------------------------------------------
_SECTION = re.compile(r"^(Notes|Examples|See Also|References|Warnings)\n-+$", re.MULTILINE)


def _entry(name: str, type_text: str, meaning: str) -> str:
    body = textwrap.fill(meaning, 84, initial_indent="    ", subsequent_indent="    ")
    return f"{name} : {type_text}\n{body}"


def _document(cls: type[Element], summary: str) -> str:
    """``summary`` with a Parameters section generated from the declaration."""
    entries = [_entry("name", "str", "Element name, unique in its beamline.")]
    entries += [_entry(key, spec.type_text, spec.meaning)
                for key, spec in cls.declaration().items()]
    entries.append(_entry("method", "{" + ", ".join(map(repr, (None, *METHODS))) + "}",
                          "Tracking method of this element; None uses the beamline's."))
    section = "Parameters\n----------\n" + "\n".join(entries)
    summary = inspect.cleandoc(summary)
    match = _SECTION.search(summary)
    if match is None:
        return f"{summary}\n\n{section}\n"
    return f"{summary[:match.start()]}{section}\n\n{summary[match.start():]}"


def element_kind(cls: type | None = None, *, blocks: tuple[Mapping[str, Parameter], ...] = (),
                 order: tuple[str, ...] | None = None, register: bool = True) -> Any:
    """Make an element kind: a frozen, keyword-only dataclass of declared parameters.

    Parameters
    ----------
    cls
        The class (a subclass of :class:`Element`) whose annotated fields are
        :func:`~beamtrack.lattice.parameters.param` declarations.
    blocks
        Shared blocks of parameters (:data:`~beamtrack.lattice.parameters.MISALIGNMENT`,
        :data:`~beamtrack.lattice.parameters.SLICING`) added after the class's own
        fields, in the order given.
    order
        The order of all new fields (own and block), where it is not that one.
    register
        Add the kind to :data:`ELEMENT_KINDS` and write its docstring's Parameters
        section (False for private bases shared by several kinds).

    Returns
    -------
    type
        The dataclass (``dataclasses.dataclass(frozen=True, kw_only=True, eq=False,
        repr=False)``), registered as a JAX pytree.
    """
    def build(cls: type) -> type:
        summary = cls.__dict__.get("__doc__") or ""
        annotations = dict(cls.__dict__.get("__annotations__", {}))
        for block in blocks:
            for key, spec in block.items():
                annotations[key] = "int" if spec.role == "integer" else "Any"
                setattr(cls, key, spec.field())
        if order is not None:
            if sorted(order) != sorted(annotations):
                raise TypeError(f"{cls.__name__}: order {order} must name the fields "
                                f"{tuple(annotations)}")
            annotations = {key: annotations[key] for key in order}
        cls.__annotations__ = annotations
        cls = dataclasses.dataclass(frozen=True, kw_only=True, eq=False, repr=False)(cls)
        fields = dataclasses.fields(cls)
        undeclared = [f.name for f in fields
                      if f.name not in ("name", "method") and "parameter" not in f.metadata]
        if undeclared:
            raise TypeError(f"{cls.__name__}: declare {', '.join(undeclared)} with param()")
        cls._field_names = tuple(f.name for f in fields)
        cls._declaration = MappingProxyType({f.name: f.metadata["parameter"] for f in fields
                                             if "parameter" in f.metadata})
        if register:
            cls.__doc__ = _document(cls, summary)
            ELEMENT_KINDS[cls.__name__] = cls
            register_pytree(cls, _flatten_element, _unflatten_element)
        return cls

    return build if cls is None else build(cls)


# -- the kinds ---------------------------------------------------------------------------
_THIN_LENGTH = Parameter(0.0, "m", "Length (zero: a thin kick).")


@element_kind
class Drift(Element):
    """Field-free drift (Bmad ``drift``)."""

    length: Any = LENGTH.field()

    tracker = staticmethod(track_drift)


@element_kind(blocks=(SLICING, MISALIGNMENT))
class Quadrupole(Element):
    """Quadrupole magnet (Bmad ``quadrupole``, "bmad_standard" tracking)."""

    length: Any = LENGTH.field()
    k1: Any = param(0.0, "1/m^2", "Normalised gradient; positive focuses horizontally.")

    tracker = staticmethod(track_quadrupole)


@element_kind
class Marker(Element):
    """Zero-length marker: a named point of the beamline; particles pass unchanged."""


@element_kind(blocks=(MISALIGNMENT,),
              order=("x_offset", "y_offset", "tilt", "resolution", "seed"))
class Monitor(Element):
    """Beam position monitor (Bmad ``monitor``), zero length.

    Particles pass unchanged under every tracking method. Its reading
    (:meth:`~Element.observe`, or ``Beamline.observe(...).readings[name]``) is the
    centroid ``(x, y)`` of the alive particles in the monitor frame (relative to the
    monitor centre, rotated by its tilt) plus optional Gaussian noise; see
    :func:`~beamtrack.tracking.diagnostics.monitor_reading`.
    """

    resolution: Any = param(0.0, "m", "RMS measurement noise per plane (0: an ideal "
                                      "monitor).", nonnegative=True)
    seed: int = param(0, "", "Seed of the noise: the same noise on every backend and "
                             "call.", minimum=0)

    observer = staticmethod(monitor_reading)
    moment_observer = staticmethod(monitor_reading_moments)
    mergeable = False


@element_kind(blocks=(MISALIGNMENT,),
              order=("resolution", "pixel_size", "x_offset", "y_offset", "tilt", "deposit",
                     "bandwidth", "binning"))
class Screen(Element):
    """Imaging screen (a Bmad ``instrument`` with a pixel detector), zero length.

    Particles pass unchanged under every tracking method. Its image
    (:meth:`~Element.observe`, or ``Beamline.observe(...).images[name]``) has shape
    ``(*batch, ny, nx)`` on a pixel grid centred on the screen; see
    :func:`~beamtrack.tracking.diagnostics.screen_image`.
    """

    resolution: tuple[int, int] = param((100, 100), "", "(nx, ny): number of pixels "
                                         "along x and y.", size=2, entry=int)
    pixel_size: tuple[float, float] = param((1.0e-4, 1.0e-4), "m", "(dx, dy): pixel width "
                                            "and height.", size=2, entry=float)
    deposit: str = param("histogram", "", "How particles make the image: counts (no "
                         "gradient), cloud in cell (bilinear) or a Gaussian kernel density; "
                         "the last two are differentiable.", choices=SCREEN_DEPOSITS)
    bandwidth: Any = param(0.0, "m", "Standard deviation of the 'kde' kernel; 0 uses the "
                                     "pixel size.", nonnegative=True)
    binning: int = param(1, "", "Camera binning: blocks of binning x binning sensor pixels "
                                "are summed, so the image has (ny, nx) // binning pixels of "
                                "pixel_size * binning (as Cheetah's Screen).", minimum=1)

    observer = staticmethod(screen_image)
    moment_observer = staticmethod(screen_image_moments)
    mergeable = False


#: The opening of apertures and collimators (Bmad's limits in their symmetric form).
_OPENING = {
    "shape": Parameter("rectangular", "", "Shape of the opening (rectangular; elliptical).",
                       role="choice", choices=APERTURE_SHAPES),
    "x_limit": Parameter(0.0, "m", "Horizontal half-width (Bmad's symmetric x1_limit = "
                                   "x2_limit); 0: no limit.", nonnegative=True),
    "y_limit": Parameter(0.0, "m", "Vertical half-width; 0: no limit.", nonnegative=True),
}


@element_kind(blocks=(MISALIGNMENT,),
              order=("shape", "x_limit", "y_limit", "x_offset", "y_offset", "tilt", "smooth"))
class Aperture(Element):
    """Zero-length aperture (Bmad's limit parameters as an element of its own).

    Particles outside are lost (``alive`` cleared, coordinates kept); the cut is the
    same under every tracking method. See
    :func:`~beamtrack.tracking.aperture.track_aperture` for the exact Bmad rules.
    """

    shape: str = _OPENING["shape"].field()
    x_limit: Any = _OPENING["x_limit"].field()
    y_limit: Any = _OPENING["y_limit"].field()
    smooth: Any = param(0.0, "m", "Softness length of the differentiable survival weight "
                                  "(aperture_factor, collected by Beamline.observe); 0 gives "
                                  "the hard 0/1 weight. It never changes the cut.",
                        nonnegative=True)

    tracker = staticmethod(track_aperture)
    mergeable = False
    survival = staticmethod(aperture_factor)
    moment_transmission = staticmethod(gaussian_transmission)


@element_kind(blocks=(MISALIGNMENT,))
class Collimator(Element):
    """Collimator (Bmad ``rcollimator`` and ``ecollimator``, MAD-X ``collimator``): a
    field-free drift whose opening is checked at its exit, Bmad's default
    ``aperture_at = exit_end`` (see :func:`~beamtrack.tracking.aperture.track_collimator`).
    The cut applies under every tracking method."""

    length: Any = LENGTH.field()
    shape: str = _OPENING["shape"].field()
    x_limit: Any = _OPENING["x_limit"].field()
    y_limit: Any = _OPENING["y_limit"].field()

    tracker = staticmethod(track_collimator)
    mergeable = False
    moment_transmission = staticmethod(gaussian_transmission)


@element_kind(blocks=(SLICING, MISALIGNMENT))
class Sextupole(Element):
    """Sextupole magnet (Bmad ``sextupole``, "bmad_standard" kick-drift-kick tracking);
    ``tilt = pi/6`` makes a skew sextupole."""

    length: Any = LENGTH.field()
    k2: Any = param(0.0, "1/m^3", "Normalised strength (d^2 B_y/dx^2) / (B rho).")

    tracker = staticmethod(track_sextupole)


@element_kind(blocks=(SLICING, MISALIGNMENT))
class Octupole(Element):
    """Octupole magnet (Bmad ``octupole``, "bmad_standard" kick-drift-kick tracking);
    ``tilt = pi/8`` makes a skew octupole."""

    length: Any = LENGTH.field()
    k3: Any = param(0.0, "1/m^4", "Normalised strength (d^3 B_y/dx^3) / (B rho).")

    tracker = staticmethod(track_octupole)


_KNL = Parameter((), "m^-n", "Integrated normal strengths K_nL, entry n of order n: a tuple "
                 "(or list) of numbers or arrays, or one array whose first axis runs over "
                 "the orders. K0L bends the reference orbit (Bmad and MAD-X convention).",
                 role="orders")
_KSL = Parameter((), "m^-n", "Integrated skew strengths K_nSL, order by order as knl.",
                 role="orders")


@element_kind(blocks=(SLICING, MISALIGNMENT))
class ThickMultipole(Element):
    """Straight thick multipole (Bmad ``thick_multipole``), kick-drift-kick tracking."""

    length: Any = LENGTH.field()
    knl: Any = _KNL.field()
    ksl: Any = _KSL.field()

    tracker = staticmethod(track_thick_multipole)


@element_kind(blocks=(MISALIGNMENT,))
class Multipole(Element):
    """Thin multipole of any order (Bmad ``multipole``, MAD-X ``MULTIPOLE``)."""

    knl: Any = _KNL.field()
    ksl: Any = _KSL.field()
    ref_length: Any = param(0.0, "m", "Length of the curved reference orbit the multipole "
                                      "stands for (MAD-X lrad, Xsuite length): adds the "
                                      "curvature terms of h = K0L/ref_length (weak focusing "
                                      "-K0L^2/ref_length); 0: none.", nonnegative=True)

    tracker = staticmethod(track_multipole)


@element_kind(blocks=(SLICING, MISALIGNMENT), register=False)
class _SinglePlaneCorrector(Element):
    """Parameters shared by :class:`HKicker` and :class:`VKicker` (not a kind)."""

    length: Any = _THIN_LENGTH.field()
    kick: Any = param(0.0, "", "Change of px = P_x/P0 (HKicker) or py = P_y/P0 (VKicker) "
                               "over the element, not divided by 1 + pz.")


@element_kind
class HKicker(_SinglePlaneCorrector):
    """Horizontal orbit corrector (Bmad ``hkicker``); ``tilt`` rotates the kick."""

    tracker = staticmethod(track_hkicker)


@element_kind
class VKicker(_SinglePlaneCorrector):
    """Vertical orbit corrector (Bmad ``vkicker``); ``tilt`` rotates the kick."""

    tracker = staticmethod(track_vkicker)


@element_kind(blocks=(SLICING, MISALIGNMENT))
class Kicker(Element):
    """Horizontal and vertical orbit corrector (Bmad ``kicker``)."""

    length: Any = _THIN_LENGTH.field()
    hkick: Any = param(0.0, "", "Change of px over the element, not divided by 1 + pz.")
    vkick: Any = param(0.0, "", "Change of py over the element, not divided by 1 + pz.")

    tracker = staticmethod(track_kicker)


@element_kind(blocks=(SLICING, MISALIGNMENT))
class Solenoid(Element):
    """Solenoid (Bmad ``solenoid``, exact hard-edge "bmad_standard" tracking, exact per
    slice); its tilt has no effect (the field is axially symmetric)."""

    length: Any = LENGTH.field()
    ks: Any = param(0.0, "1/m", "Normalised longitudinal field Bs / (B rho).")

    tracker = staticmethod(track_solenoid)


@element_kind(blocks=(SLICING, MISALIGNMENT), register=False)
class _Cavity(Element):
    """Parameters shared by the RF cavity records (not a kind)."""

    length: Any = LENGTH.field()
    voltage: Any = param(0.0, "eV", "Energy gain amplitude of the reference species, charge "
                                    "folded in (CrabCavity: deflecting voltage, a kick of "
                                    "voltage / P0c at the crest).")
    phi0: Any = param(0.0, "rad/2pi", "RF phase (LCavity: 0 is on crest).")
    frequency: Any = param(0.0, "Hz", "RF frequency (may be 0 only with zero voltage).")


@element_kind
class RFCavity(_Cavity):
    """RF cavity without reference energy change (Bmad ``rfcavity``, kick-drift-kick).

    The energy kick is ``voltage sin(2 pi (phi0 + f (t0 - t)))``; ``num_steps`` drifts
    with ``num_steps + 1`` energy kicks (half kicks at the ends). The misalignments have
    no effect on this axially symmetric model.
    """

    tracker = staticmethod(track_rfcavity)


@element_kind
class LCavity(_Cavity):
    """Accelerating cavity (Bmad ``lcavity``, stair-step standing-wave model).

    The reference momentum changes by the reference particle's energy gain
    ``voltage cos(2 pi phi0)``; ``num_steps`` is Bmad's ``n_rf_steps``.
    """

    cavity_type: str = param("standing_wave", "", "Standing wave, or traveling wave (no "
                             "ponderomotive kicks).", choices=CAVITY_TYPES)

    tracker = staticmethod(track_lcavity)
    #: Changes the reference momentum: a fused linear map cannot carry that.
    mergeable = False


@element_kind
class CrabCavity(_Cavity):
    """Transverse deflecting (crab) cavity (Bmad ``crab_cavity``).

    The kick is ``px += voltage/P0c sin(2 pi (phi0 + f (t0 - t)))`` in ``num_steps``
    thin kicks; ``tilt = pi/2`` deflects vertically.
    """

    tracker = staticmethod(track_crab_cavity)


@element_kind(blocks=(MISALIGNMENT, SLICING), register=False,
              order=("length", "angle", "e1", "e2", "k1", "dg", "fint", "hgap", "fint_exit",
                     "hgap_exit", "fringe_type", "tilt", "ref_tilt", "x_offset", "y_offset",
                     "num_steps"))
class _Bend(Element):
    """Parameters and checks shared by the bend records (not a kind)."""

    length: Any = param(0.0, "m", "Arc length of the reference orbit (RBend: the chord); "
                                  "> 0 when the angle is not zero.", nonnegative=True)
    angle: Any = param(0.0, "rad", "Bending angle (positive bends towards -x).")
    e1: Any = param(0.0, "rad", "Entrance pole-face angle (RBend: from the rectangular "
                                "face).")
    e2: Any = param(0.0, "rad", "Exit pole-face angle (RBend: from the rectangular face).")
    k1: Any = param(0.0, "1/m^2", "Quadrupole strength (combined-function bend).")
    dg: Any = param(0.0, "1/m", "Field offset (Bmad dg): the field bends with curvature "
                                "angle/length + dg while the reference orbit keeps "
                                "angle/length (a field error; Xsuite k0 - h).")
    fint: Any = param(0.0, "", "Entrance fringe-field integral.")
    hgap: Any = param(0.0, "m", "Entrance half gap.")
    fint_exit: Any = param(None, "", "Exit fringe-field integral (Bmad fintx); None: same "
                                     "as fint.", role="optional")
    hgap_exit: Any = param(None, "m", "Exit half gap (Bmad hgapx); None: same as hgap.",
                           role="optional")
    fringe_type: str = param("linear_edge", "", "Edge model (hard_edge and soft_edge are "
                             "Bmad's hard_edge_only and soft_edge_only; basic_bend is Bmad's "
                             "default).", choices=FRINGE_TYPES,
                             unsupported=UNSUPPORTED_FRINGE_TYPES)
    ref_tilt: Any = param(0.0, "rad", "Rotation of the bend and its reference orbit about s "
                                      "(Bmad ref_tilt); tilt is the magnet's roll about its "
                                      "chord (Bmad roll).")

    checks = ((check_bend_geometry, ("length", "angle")),)


@element_kind
class SBend(_Bend):
    """Sector bend (Bmad ``sbend``, "bmad_standard" tracking; see
    :func:`~beamtrack.tracking.bend.track_sbend`); offsets act at the middle of the arc."""

    tracker = staticmethod(track_sbend)


@element_kind
class RBend(_Bend):
    """Rectangular bend (Bmad ``rbend``), tracked as the equivalent sector bend (see
    :func:`~beamtrack.tracking.bend.track_rbend`).

    As in Bmad and MAD, ``length`` is the **chord** [m] and ``e1``, ``e2`` are measured
    from the rectangular faces: the sbend tracked has the arc length
    ``length / sinc(angle/2)`` (by which ``s`` advances; :attr:`length` and
    ``Beamline.length`` count the chord) and face angles ``e1 + angle/2``,
    ``e2 + angle/2``.
    """

    tracker = staticmethod(track_rbend)

    @property
    def path_length(self) -> Any:
        """Arc length ``length / sinc(angle/2)`` [m] of the reference orbit (``s`` advance)."""
        if isinstance(self.length, numbers.Real) and isinstance(self.angle, numbers.Real):
            half = 0.5 * self.angle
            return self.length if half == 0 else self.length * half / math.sin(half)
        return rbend_to_sbend(self.length, self.angle + 0.0 * self.length)[0]


@element_kind(blocks=(MISALIGNMENT,),
              order=("h", "e1", "fint", "hgap", "tilt", "x_offset", "y_offset"))
class DipoleEdge(Element):
    """Thin dipole edge (MAD-X ``dipedge``, Xsuite ``DipoleEdge``), zero length: the
    entrance-edge kick of a bend, the same as :class:`SBend`'s default
    ``fringe_type="linear_edge"`` (see
    :func:`~beamtrack.tracking.bend.track_dipole_edge`). A bend's exit edge is a
    ``DipoleEdge`` with ``e1`` set to the bend's ``e2``; ``tilt`` is the bend's
    ``ref_tilt`` (MAD-X's ``tilt`` of a ``dipedge``).
    """

    h: Any = param(0.0, "1/m", "Curvature of the bend's field (angle/length + dg).")
    e1: Any = param(0.0, "rad", "Pole-face angle (for a bend's exit edge: its e2).")
    fint: Any = param(0.0, "", "Fringe-field integral.")
    hgap: Any = param(0.0, "m", "Half gap.")

    tracker = staticmethod(track_dipole_edge)


_GRID_EXTENT = "Fixed half-width of the space-charge grid in {plane} [m]{frame}; None: " \
    "the grid follows the beam in this plane (grid_sigmas RMS sizes)."


@element_kind
class SpaceCharge(Element):
    """Space-charge kick (a collective effect), zero physical length.

    Kicks the particles with the field of the whole bunch over an effective length
    ``length``: a 3D particle-in-cell solver in the beam rest frame (cloud-in-cell
    deposit, FFT Poisson solve with the integrated Green's function); see
    :func:`~beamtrack.tracking.space_charge.track_space_charge`. The particles need
    their species ``charge`` (and ``weight`` for the bunch charge). ``s`` does not
    advance and :attr:`path_length` is zero: interleave kicks with the line's elements
    by :meth:`Beamline.with_space_charge
    <beamtrack.lattice.beamline.Beamline.with_space_charge>`. The kick is the same under
    every tracking method.
    """

    length: Any = param(0.0, "m", "Effective length of the kick: the path length of beam "
                                  "it stands for.", nonnegative=True)
    grid_shape: tuple[int, int, int] = param((32, 32, 32), "", "(nx, ny, nz): grid nodes "
                                             "along x, y and z.", size=3, entry=int)
    grid_extent_x: Any = param(None, "m", _GRID_EXTENT.format(plane="x", frame=""),
                               role="optional")
    grid_extent_y: Any = param(None, "m", _GRID_EXTENT.format(plane="y", frame=""),
                               role="optional")
    grid_extent_z: Any = param(None, "m", _GRID_EXTENT.format(
        plane="z", frame=", laboratory frame"), role="optional")
    grid_sigmas: Any = param(DEFAULT_GRID_SIGMAS, "", "Half-width of a grid that follows "
                                                      "the beam, in RMS sizes.",
                             nonnegative=True)

    tracker = staticmethod(track_space_charge)
    #: A collective kick: no map to fuse, nothing for optics to read off.
    mergeable = False
    affine_when_linear = False

    @property
    def path_length(self) -> Any:
        """Zero: a kick (its ``length`` is the effective length it stands for)."""
        return 0.0
