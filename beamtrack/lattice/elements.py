"""Element records: immutable descriptions of beamline elements.

A record holds an element's name and physical parameters and knows which tracking
function serves it; it computes nothing itself. Parameters are Python numbers or
arrays of any backend (with optional batch dimensions), so a beamline is a
differentiable function of its parameters.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable
from typing import Any, ClassVar

from beamtrack.backends.pytrees import ensure_registered, register_pytree
from beamtrack.lattice.errors import UnknownParameterError
from beamtrack.lattice.validation import (
    check_choice,
    check_parameter,
    check_sequence,
    check_tuple,
    short_repr,
    values_equal,
)
from beamtrack.tracking.aperture import APERTURE_SHAPES, aperture_factor, track_aperture
from beamtrack.tracking.bend import (
    FRINGE_TYPES,
    check_bend_geometry,
    check_fringe_type,
    rbend_to_sbend,
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
from beamtrack.tracking.multipole import (
    track_multipole,
    track_octupole,
    track_sextupole,
    track_thick_multipole,
)
from beamtrack.tracking.particles import Particles
from beamtrack.tracking.quadrupole import track_quadrupole
from beamtrack.tracking.solenoid import track_solenoid
from beamtrack.tracking.stepping import METHODS

#: Element kinds by name, filled by :func:`element_record`.
ELEMENT_KINDS: dict[str, type[Element]] = {}


def element_record(cls: type) -> type:
    """Make ``cls`` a frozen element dataclass with checked construction.

    ``name`` stays the one positional field; all parameters are keyword-only. An
    unknown keyword raises :class:`UnknownParameterError` naming the element and the
    parameter, and the kind is registered for lattice files.
    """
    cls = dataclasses.dataclass(frozen=True, kw_only=True, eq=False, repr=False)(cls)
    generated_init = cls.__init__
    valid = {f.name for f in dataclasses.fields(cls)}

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        unknown = sorted(set(kwargs) - valid)
        if unknown:
            name = kwargs.get("name", args[0] if args else "?")
            raise UnknownParameterError(
                f"{cls.__name__} {name!r}: unknown parameter(s) {', '.join(unknown)}; "
                f"valid parameters: {', '.join(sorted(valid - {'name'}))}"
            )
        if len(args) > 1:
            raise ParameterError(
                f"{cls.__name__} {args[0]!r}: only the name is positional; pass parameters "
                "by keyword, e.g. length=0.5"
            )
        generated_init(self, *args, **kwargs)

    __init__.__doc__ = generated_init.__doc__
    __init__.__signature__ = __import__("inspect").signature(generated_init)  # type: ignore[attr-defined]
    cls.__init__ = __init__
    ELEMENT_KINDS[cls.__name__] = cls
    register_pytree(cls, _flatten_element, _unflatten_element)
    return cls


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Element:
    """Base of all element records.

    Parameters
    ----------
    name
        Unique name of the element in its beamline.
    method
        Tracking method for this element (``"bmad"`` or ``"linear"``); ``None`` uses
        the beamline's choice.
    """

    name: str
    method: str | None = dataclasses.field(default=None, kw_only=True)

    #: Tracking function serving this kind; ``None`` for elements without a body.
    tracker: ClassVar[Callable[..., Particles] | None] = None
    #: Parameters that must be Python integers (they set loop lengths).
    integer_parameters: ClassVar[tuple[str, ...]] = ()
    #: Whether runs of this kind in "linear" mode may be fused into one map by
    #: ``Beamline.merged`` (False for elements that observe or limit the beam or change
    #: the reference energy).
    mergeable: ClassVar[bool] = True
    #: Whether the "linear" method gives an affine map that optics can read off by
    #: tracking unit vectors (False for user functions, :class:`Custom`).
    affine_when_linear: ClassVar[bool] = True
    #: Parameters given order by order (multipole strengths): a tuple of numbers or
    #: arrays (a list is stored as a tuple), or one array whose first axis runs over
    #: the orders.
    sequence_parameters: ClassVar[tuple[str, ...]] = ()
    #: Parameters that must be >= 0 (numbers, every entry of arrays; integers listed
    #: in ``integer_parameters`` may then be 0).
    nonnegative_parameters: ClassVar[tuple[str, ...]] = ()
    #: Parameters that take one of a few strings: ``{name: choices}``.
    choice_parameters: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: Parameters that are tuples of positive Python numbers: ``{name: (size, type)}``
    #: with type ``int`` or ``float``. Lists (as read from lattice files) become tuples.
    tuple_parameters: ClassVar[dict[str, tuple[int, type]]] = {}
    #: Parameters that hold a Python callable (the function of :class:`Custom`).
    callable_parameters: ClassVar[tuple[str, ...]] = ()
    #: Observation function of diagnostics, ``(particles, **parameters) -> array``
    #: (Monitor reading, Screen image); ``None`` for elements that observe nothing.
    observer: ClassVar[Callable[..., Any] | None] = None
    #: Differentiable survival factor of limiting elements (Aperture),
    #: ``(particles, **parameters) -> (*batch, n)`` in [0, 1]; ``None`` otherwise.
    survival: ClassVar[Callable[..., Any] | None] = None

    def __post_init__(self) -> None:
        ensure_registered()
        kind = type(self).__name__
        if not isinstance(self.name, str) or not self.name:
            raise ParameterError(f"{kind}: name must be a non-empty string, got {self.name!r}")
        if self.method is not None and self.method not in METHODS:
            raise ParameterError(
                f"{kind} {self.name!r}: parameter 'method' must be one of "
                f"{', '.join(METHODS)} or None, got {self.method!r}"
            )
        for key, value in self.parameters().items():
            if key in self.sequence_parameters:
                object.__setattr__(self, key, check_sequence(kind, self.name, key, value))
                continue
            if key in self.callable_parameters:
                if not callable(value):
                    raise ParameterError(f"{kind} {self.name!r}: parameter {key!r} must be "
                                         f"callable, got {type(value).__name__}")
            elif key in self.choice_parameters:
                check_choice(kind, self.name, key, value, self.choice_parameters[key])
            elif key in self.tuple_parameters:
                size, entry_type = self.tuple_parameters[key]
                object.__setattr__(
                    self, key, check_tuple(kind, self.name, key, value, size, entry_type)
                )
            else:
                check_parameter(kind, self.name, key, value, key in self.integer_parameters,
                                 key in self.nonnegative_parameters)

    @property
    def kind(self) -> str:
        """Element kind (the class name, as in Bmad)."""
        return type(self).__name__

    def parameters(self) -> dict[str, Any]:
        """Physical parameters (everything except ``name`` and ``method``)."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("name", "method")
        }

    def numeric_parameters(self) -> dict[str, Any]:
        """The continuous (differentiable) parameters: numbers, arrays and sequences of them.

        Leaves out integers (``num_steps``, ``seed``), choices (strings), fixed tuples
        (screen ``resolution``) and unset optional values (``None``).
        """
        fixed = (set(self.integer_parameters) | set(self.choice_parameters)
                 | set(self.tuple_parameters) | set(self.callable_parameters))
        return {k: v for k, v in self.parameters().items() if k not in fixed and v is not None}

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

    def track(self, particles: Particles, method: str = "bmad") -> Particles:
        """Track ``particles`` with this element's tracking function.

        ``method`` is used unless the element fixes its own ``method``.
        """
        if self.tracker is None:
            return particles
        try:
            return type(self).tracker(particles, **self.parameters(), method=self.method or method)
        except ParameterError as exc:
            raise ParameterError(f"{self.kind} {self.name!r}: {exc}") from exc

    def observe(self, particles: Particles) -> Any:
        """What this element observes of ``particles``; ``None`` if it observes nothing.

        A :class:`Monitor` gives its reading ``(*batch, 2)``, a :class:`Screen` its
        image ``(*batch, ny, nx)``.
        """
        observer = type(self).observer
        if observer is None:
            return None
        try:
            return observer(particles, **self.parameters())
        except ParameterError as exc:
            raise ParameterError(f"{self.kind} {self.name!r}: {exc}") from exc

    def survival_factor(self, particles: Particles) -> Any:
        """Differentiable survival factor in [0, 1] of ``particles`` arriving here.

        Geometry only (``alive`` is not looked at); ``None`` for elements without an
        aperture. See :class:`Aperture` and :meth:`Beamline.observe
        <beamtrack.lattice.beamline.Beamline.observe>`.
        """
        survival = type(self).survival
        if survival is None:
            return None
        try:
            return survival(particles, **self.parameters())
        except ParameterError as exc:
            raise ParameterError(f"{self.kind} {self.name!r}: {exc}") from exc

    @classmethod
    def _rebuild(cls, name: str, method: str | None, static: dict[str, Any],
                 numeric: dict[str, Any]) -> Element:
        """An element from its parts, without validation (values may be JAX tracers)."""
        element = object.__new__(cls)
        object.__setattr__(element, "name", name)
        object.__setattr__(element, "method", method)
        for key, value in {**static, **numeric}.items():
            object.__setattr__(element, key, value)
        return element

    @property
    def has_body(self) -> bool:
        """Whether tracking changes the particles (False for markers and diagnostics)."""
        return self.tracker is not None

    def replace(self, **params: Any) -> Element:
        """A copy with some parameters replaced (validated like the constructor)."""
        unknown = sorted(set(params) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise UnknownParameterError(
                f"{self.kind} {self.name!r}: unknown parameter(s) {', '.join(unknown)}"
            )
        return dataclasses.replace(self, **params)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Element)
        if (self.name, self.method) != (other.name, other.method):
            return False
        mine, theirs = self.parameters(), other.parameters()
        return all(values_equal(mine[k], theirs[k]) for k in mine)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        parts = [repr(self.name)] + [f"{k}={short_repr(v)}" for k, v in self.parameters().items()]
        if self.method:
            parts.append(f"method={self.method!r}")
        return f"{self.kind}({', '.join(parts)})"


def _flatten_element(element: Element) -> tuple[tuple[Any, ...], Any]:
    """JAX pytree: the numeric parameters are children, everything else static."""
    numeric = element.numeric_parameters()
    keys = tuple(numeric)
    static = tuple((k, v) for k, v in element.parameters().items() if k not in numeric)
    return tuple(numeric[k] for k in keys), (type(element), element.name, element.method,
                                             keys, static)


def _unflatten_element(aux: Any, children: Any) -> Element:
    cls, name, method, keys, static = aux
    return cls._rebuild(name, method, dict(static), dict(zip(keys, children)))


@element_record
class Drift(Element):
    """Field-free drift (Bmad ``drift``).

    Parameters
    ----------
    name
        Element name.
    length
        Length [m].
    """

    length: Any = 0.0

    tracker = staticmethod(track_drift)


@element_record
class Quadrupole(Element):
    """Quadrupole magnet (Bmad ``quadrupole``, "bmad_standard" tracking).

    Parameters
    ----------
    name
        Element name.
    length
        Length [m].
    k1
        Normalised gradient [1/m^2]; positive focuses horizontally.
    num_steps
        Number of body slices.
    tilt
        Rotation about s [rad].
    x_offset, y_offset
        Magnet offsets [m].
    """

    length: Any = 0.0
    k1: Any = 0.0
    num_steps: int = 1
    tilt: Any = 0.0
    x_offset: Any = 0.0
    y_offset: Any = 0.0

    tracker = staticmethod(track_quadrupole)
    integer_parameters = ("num_steps",)


@element_record
class Marker(Element):
    """Zero-length marker: a named point of the beamline; particles pass unchanged."""


@element_record
class Monitor(Element):
    """Beam position monitor (Bmad ``monitor``), zero length.

    Particles pass unchanged under every tracking method. Its reading
    (:meth:`~Element.observe`, or ``Beamline.observe(...).readings[name]``) is the
    centroid ``(x, y)`` of the alive particles in the monitor frame plus optional
    Gaussian noise; see :func:`~beamtrack.tracking.diagnostics.monitor_reading`.

    Parameters
    ----------
    name
        Element name.
    x_offset, y_offset
        Monitor offsets [m] (the reading is relative to the monitor centre).
    tilt
        Rotation of the monitor about s [rad].
    resolution
        RMS measurement noise [m] per plane (>= 0; 0 for an ideal monitor).
    seed
        Seed of the noise (integer >= 0): the same noise on every backend and call.
    """

    x_offset: Any = 0.0
    y_offset: Any = 0.0
    tilt: Any = 0.0
    resolution: Any = 0.0
    seed: int = 0

    observer = staticmethod(monitor_reading)
    mergeable = False
    integer_parameters = ("seed",)
    nonnegative_parameters = ("resolution", "seed")


@element_record
class Screen(Element):
    """Imaging screen (a Bmad ``instrument`` with a pixel detector), zero length.

    Particles pass unchanged under every tracking method. Its image
    (:meth:`~Element.observe`, or ``Beamline.observe(...).images[name]``) has shape
    ``(*batch, ny, nx)``; see :func:`~beamtrack.tracking.diagnostics.screen_image`.

    Parameters
    ----------
    name
        Element name.
    resolution
        ``(nx, ny)``: number of pixels along x and y.
    pixel_size
        ``(dx, dy)``: pixel width and height [m]; the grid is centred on the screen.
    x_offset, y_offset, tilt
        Screen position [m] and rotation about s [rad].
    deposit
        ``"histogram"`` (counts, no gradient), ``"cic"`` (cloud in cell, bilinear) or
        ``"kde"`` (Gaussian kernel density); the last two are differentiable.
    bandwidth
        Standard deviation of the ``"kde"`` kernel [m]; 0 uses the pixel size.
    """

    resolution: tuple[int, int] = (100, 100)
    pixel_size: tuple[float, float] = (1.0e-4, 1.0e-4)
    x_offset: Any = 0.0
    y_offset: Any = 0.0
    tilt: Any = 0.0
    deposit: str = "histogram"
    bandwidth: Any = 0.0

    observer = staticmethod(screen_image)
    mergeable = False
    choice_parameters = {"deposit": SCREEN_DEPOSITS}
    tuple_parameters = {"resolution": (2, int), "pixel_size": (2, float)}
    nonnegative_parameters = ("bandwidth",)


@element_record
class Aperture(Element):
    """Zero-length aperture (Bmad's limit parameters as an element of its own).

    Particles outside are lost (``alive`` cleared, coordinates kept); the cut is the
    same under the ``"bmad"`` and ``"linear"`` methods. See
    :func:`~beamtrack.tracking.aperture.track_aperture` for the exact Bmad rules.

    Parameters
    ----------
    name
        Element name.
    shape
        ``"rectangular"`` or ``"elliptical"``.
    x_limit, y_limit
        Half-widths [m] (Bmad's symmetric ``x1_limit = x2_limit``, ...); 0 means no
        limit in that plane.
    x_offset, y_offset, tilt
        Aperture position [m] and rotation about s [rad].
    smooth
        Softness length [m] of the differentiable survival weight
        (:func:`~beamtrack.tracking.aperture.aperture_factor`, collected by
        ``Beamline.observe``); 0 gives the hard 0/1 weight. It never changes the cut.
    """

    shape: str = "rectangular"
    x_limit: Any = 0.0
    y_limit: Any = 0.0
    x_offset: Any = 0.0
    y_offset: Any = 0.0
    tilt: Any = 0.0
    smooth: Any = 0.0

    tracker = staticmethod(track_aperture)
    mergeable = False
    survival = staticmethod(aperture_factor)
    choice_parameters = {"shape": APERTURE_SHAPES}
    nonnegative_parameters = ("x_limit", "y_limit", "smooth")


@element_record
class Sextupole(Element):
    """Sextupole magnet (Bmad ``sextupole``, "bmad_standard" kick-drift-kick tracking).

    Parameters
    ----------
    name
        Element name.
    length
        Length [m].
    k2
        Normalised strength ``(d^2 B_y/dx^2) / (B rho)`` [1/m^3].
    num_steps
        Number of kick-drift-kick slices.
    tilt
        Rotation about s [rad] (``pi/6``: skew sextupole).
    x_offset, y_offset
        Magnet offsets [m].
    """

    length: Any = 0.0
    k2: Any = 0.0
    num_steps: int = 1
    tilt: Any = 0.0
    x_offset: Any = 0.0
    y_offset: Any = 0.0

    tracker = staticmethod(track_sextupole)
    integer_parameters = ("num_steps",)


@element_record
class Octupole(Element):
    """Octupole magnet (Bmad ``octupole``, "bmad_standard" kick-drift-kick tracking).

    Parameters
    ----------
    name
        Element name.
    length
        Length [m].
    k3
        Normalised strength ``(d^3 B_y/dx^3) / (B rho)`` [1/m^4].
    num_steps
        Number of kick-drift-kick slices.
    tilt
        Rotation about s [rad] (``pi/8``: skew octupole).
    x_offset, y_offset
        Magnet offsets [m].
    """

    length: Any = 0.0
    k3: Any = 0.0
    num_steps: int = 1
    tilt: Any = 0.0
    x_offset: Any = 0.0
    y_offset: Any = 0.0

    tracker = staticmethod(track_octupole)
    integer_parameters = ("num_steps",)


@element_record
class ThickMultipole(Element):
    """Straight thick multipole (Bmad ``thick_multipole``), kick-drift-kick tracking.

    Parameters
    ----------
    name
        Element name.
    length
        Length [m].
    knl, ksl
        Integrated normal and skew strengths ``K_nL``, ``K_nSL`` [m^-n], entry ``n`` of
        order ``n``: a tuple (or list) of numbers or arrays, or one array whose first
        axis runs over the orders.
    num_steps
        Number of kick-drift-kick slices.
    tilt
        Rotation about s [rad].
    x_offset, y_offset
        Magnet offsets [m].
    """

    length: Any = 0.0
    knl: Any = ()
    ksl: Any = ()
    num_steps: int = 1
    tilt: Any = 0.0
    x_offset: Any = 0.0
    y_offset: Any = 0.0

    tracker = staticmethod(track_thick_multipole)
    integer_parameters = ("num_steps",)
    sequence_parameters = ("knl", "ksl")


@element_record
class Multipole(Element):
    """Thin multipole of any order (Bmad ``multipole``, MAD-X ``MULTIPOLE``).

    Parameters
    ----------
    name
        Element name.
    knl, ksl
        Integrated normal and skew strengths ``K_nL``, ``K_nSL`` [m^-n], order by order
        (as for :class:`ThickMultipole`). ``K0L``/``K0SL`` bend the reference orbit
        (zero-length bend, Bmad and MAD-X convention).
    tilt
        Rotation about s [rad].
    x_offset, y_offset
        Offsets [m].
    """

    knl: Any = ()
    ksl: Any = ()
    tilt: Any = 0.0
    x_offset: Any = 0.0
    y_offset: Any = 0.0

    tracker = staticmethod(track_multipole)
    sequence_parameters = ("knl", "ksl")


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class _SinglePlaneCorrector(Element):
    """Parameters shared by :class:`HKicker` and :class:`VKicker` (not a kind)."""

    length: Any = 0.0
    kick: Any = 0.0
    num_steps: int = 1
    tilt: Any = 0.0
    x_offset: Any = 0.0
    y_offset: Any = 0.0

    integer_parameters = ("num_steps",)


@element_record
class HKicker(_SinglePlaneCorrector):
    """Horizontal orbit corrector (Bmad ``hkicker``).

    Parameters
    ----------
    name
        Element name.
    length
        Length [m] (zero: thin kick).
    kick
        Change of ``px = P_x/P0`` over the element (not divided by ``1 + pz``).
    num_steps
        Number of kick-drift-kick slices.
    tilt
        Rotation about s [rad] of the kick direction.
    x_offset, y_offset
        Offsets [m].
    """

    tracker = staticmethod(track_hkicker)


@element_record
class VKicker(_SinglePlaneCorrector):
    """Vertical orbit corrector (Bmad ``vkicker``).

    Parameters
    ----------
    name
        Element name.
    length
        Length [m] (zero: thin kick).
    kick
        Change of ``py = P_y/P0`` over the element (not divided by ``1 + pz``).
    num_steps
        Number of kick-drift-kick slices.
    tilt
        Rotation about s [rad] of the kick direction.
    x_offset, y_offset
        Offsets [m].
    """

    tracker = staticmethod(track_vkicker)


@element_record
class Kicker(Element):
    """Horizontal and vertical orbit corrector (Bmad ``kicker``).

    Parameters
    ----------
    name
        Element name.
    length
        Length [m] (zero: thin kick).
    hkick, vkick
        Changes of ``px`` and ``py`` over the element (not divided by ``1 + pz``).
    num_steps
        Number of kick-drift-kick slices.
    tilt
        Rotation about s [rad] of the kick directions.
    x_offset, y_offset
        Offsets [m].
    """

    length: Any = 0.0
    hkick: Any = 0.0
    vkick: Any = 0.0
    num_steps: int = 1
    tilt: Any = 0.0
    x_offset: Any = 0.0
    y_offset: Any = 0.0

    tracker = staticmethod(track_kicker)
    integer_parameters = ("num_steps",)


@element_record
class Solenoid(Element):
    """Solenoid (Bmad ``solenoid``, exact hard-edge "bmad_standard" tracking).

    Parameters
    ----------
    name
        Element name.
    length
        Length [m].
    ks
        Normalised longitudinal field ``Bs / (B rho)`` [1/m].
    num_steps
        Number of body slices (the body is exact per slice).
    tilt
        Rotation about s [rad] (no effect: the field is axially symmetric).
    x_offset, y_offset
        Offsets of the solenoid axis [m].
    """

    length: Any = 0.0
    ks: Any = 0.0
    num_steps: int = 1
    tilt: Any = 0.0
    x_offset: Any = 0.0
    y_offset: Any = 0.0

    tracker = staticmethod(track_solenoid)
    integer_parameters = ("num_steps",)


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class _Cavity(Element):
    """Parameters shared by the RF cavity records (not registered as a kind)."""

    length: Any = 0.0
    voltage: Any = 0.0
    phi0: Any = 0.0
    frequency: Any = 0.0
    num_steps: int = 1
    tilt: Any = 0.0
    x_offset: Any = 0.0
    y_offset: Any = 0.0

    integer_parameters = ("num_steps",)


@element_record
class RFCavity(_Cavity):
    """RF cavity without reference energy change (Bmad ``rfcavity``, kick-drift-kick).

    Parameters
    ----------
    name
        Element name.
    length
        Length [m].
    voltage
        Energy gain amplitude [eV] of the reference species (charge folded in).
    phi0
        RF phase [rad/2pi]; the energy kick is ``voltage sin(2 pi (phi0 + f (t0 - t)))``.
    frequency
        RF frequency [Hz] (may be 0 only with zero voltage).
    num_steps
        Number of drifts (``num_steps + 1`` energy kicks, half kicks at the ends).
    tilt, x_offset, y_offset
        Misalignments [rad, m] (no effect on this axially symmetric model).
    """

    tracker = staticmethod(track_rfcavity)


@element_record
class LCavity(_Cavity):
    """Accelerating cavity (Bmad ``lcavity``, stair-step standing-wave model); the
    reference momentum changes by the reference particle's energy gain
    ``voltage cos(2 pi phi0)``.

    Parameters
    ----------
    name
        Element name.
    length
        Length [m].
    voltage
        Energy gain amplitude [eV] of the reference species (charge folded in).
    phi0
        RF phase [rad/2pi]; 0 is on crest.
    frequency
        RF frequency [Hz] (may be 0 only with zero voltage).
    num_steps
        Number of RF steps (Bmad's ``n_rf_steps``).
    tilt, x_offset, y_offset
        Misalignments [rad, m].
    cavity_type
        ``"standing_wave"`` (default) or ``"traveling_wave"`` (no ponderomotive kicks).
    """

    cavity_type: str = "standing_wave"

    tracker = staticmethod(track_lcavity)
    #: Changes the reference momentum: a fused linear map cannot carry that.
    mergeable = False
    choice_parameters = {"cavity_type": CAVITY_TYPES}


@element_record
class CrabCavity(_Cavity):
    """Transverse deflecting (crab) cavity (Bmad ``crab_cavity``).

    Parameters
    ----------
    name
        Element name.
    length
        Length [m].
    voltage
        Deflecting voltage [eV] (kick ``voltage / P0 c`` at the crest; charge folded in).
    phi0
        RF phase [rad/2pi]; the kick is ``px += voltage/P0 sin(2 pi (phi0 + f (t0 - t)))``.
    frequency
        RF frequency [Hz] (may be 0 only with zero voltage).
    num_steps
        Number of thin kicks.
    tilt
        Rotation about s [rad] (``pi/2``: vertical deflection).
    x_offset, y_offset
        Offsets [m].
    """

    tracker = staticmethod(track_crab_cavity)


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class _Bend(Element):
    """Parameters and checks shared by the bend records (not registered as a kind)."""

    length: Any = 0.0
    angle: Any = 0.0
    e1: Any = 0.0
    e2: Any = 0.0
    k1: Any = 0.0
    fint: Any = 0.0
    hgap: Any = 0.0
    fint_exit: Any = None
    hgap_exit: Any = None
    fringe_type: str = "linear_edge"
    tilt: Any = 0.0
    ref_tilt: Any = 0.0
    x_offset: Any = 0.0
    y_offset: Any = 0.0
    num_steps: int = 1

    integer_parameters = ("num_steps",)
    nonnegative_parameters = ("length",)
    choice_parameters = {"fringe_type": FRINGE_TYPES}

    #: Exit fringe parameters that may be ``None`` (then the entrance values are used).
    _exit_defaults = ("fint_exit", "hgap_exit")

    def __post_init__(self) -> None:
        kind = type(self).__name__
        if self.fringe_type in ("full",):
            check_fringe_type(self.fringe_type, f"{kind} {self.name!r}")
        unset = [key for key in self._exit_defaults if getattr(self, key) is None]
        for key in unset:  # validate the others; None stands for "same as the entrance"
            object.__setattr__(self, key, 0.0)
        try:
            super().__post_init__()
        finally:
            for key in unset:
                object.__setattr__(self, key, None)
        check_bend_geometry(self.length, self.angle, f"{kind} {self.name!r}")


@element_record
class SBend(_Bend):
    """Sector bend (Bmad ``sbend``, "bmad_standard" tracking; see
    :func:`~beamtrack.tracking.bend.track_sbend`).

    Parameters
    ----------
    name
        Element name.
    length
        Arc length of the reference orbit [m].
    angle
        Bending angle [rad] (positive bends towards ``-x``).
    e1, e2
        Entrance and exit pole-face angles [rad].
    k1
        Quadrupole strength [1/m^2] (combined-function bend).
    fint, hgap
        Entrance fringe-field integral and half gap [m].
    fint_exit, hgap_exit
        Exit values (Bmad ``fintx``, ``hgapx``); ``None``: same as the entrance.
    fringe_type
        ``"none"``, ``"linear_edge"`` (default), ``"hard_edge"``, ``"soft_edge"``,
        ``"basic_bend"`` (Bmad's default), ``"sad_full"``.
    tilt
        Roll of the magnet about its chord [rad] (Bmad ``roll``), a misalignment.
    ref_tilt
        Rotation of the bend and its reference orbit about s [rad] (Bmad ``ref_tilt``).
    x_offset, y_offset
        Magnet offsets [m] at the middle of the arc.
    num_steps
        Number of body slices.
    """

    tracker = staticmethod(track_sbend)


@element_record
class RBend(_Bend):
    """Rectangular bend (Bmad ``rbend``), tracked as the equivalent sector bend (see
    :func:`~beamtrack.tracking.bend.track_rbend`).

    As in Bmad and MAD, ``length`` is the **chord** [m] and ``e1``, ``e2`` are measured
    from the rectangular faces: the sbend tracked has the arc length
    ``length / sinc(angle/2)`` (by which ``s`` advances; :attr:`length` and
    ``Beamline.length`` count the chord) and face angles ``e1 + angle/2``,
    ``e2 + angle/2``. Other parameters as for :class:`SBend`.
    """

    tracker = staticmethod(track_rbend)

    @property
    def path_length(self) -> Any:
        """Arc length ``length / sinc(angle/2)`` [m] of the reference orbit (``s`` advance)."""
        if isinstance(self.length, numbers.Real) and isinstance(self.angle, numbers.Real):
            half = 0.5 * self.angle
            return self.length if half == 0 else self.length * half / math.sin(half)
        return rbend_to_sbend(self.length, self.angle + 0.0 * self.length)[0]
