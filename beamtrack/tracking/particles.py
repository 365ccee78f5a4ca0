"""The :class:`Particles` record: Bmad phase-space coordinates of a bunch."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import array_api_compat

from beamtrack.backends import backend_of, get, namespace_of
from beamtrack.backends.pytrees import ensure_registered, register_pytree
from beamtrack.tracking.errors import ParameterError
from beamtrack.tracking.parameters import broadcast_shape

#: Names of the six coordinates, in storage order.
COORDINATES = ("x", "px", "y", "py", "z", "pz")


class Particles:
    """An immutable bunch of particles in Bmad coordinates.

    The coordinates are stored as one array ``coords`` of shape ``(*batch, 6, n)``
    (coordinate-major), and ``x, px, y, py, z, pz`` are views of shape ``(*batch, n)``.
    Tracking returns new records; a record is never modified.

    Parameters
    ----------
    x, px, y, py, z, pz
        Arrays of one library, broadcastable to a common shape ``(*batch, n)``:
        transverse positions [m], transverse momenta over reference momentum
        ``P_x/P0``, ``z = -beta c (t - t0)`` [m], and ``pz = (P - P0)/P0``.
        Leave them out and pass ``coords`` instead to build from one array. Python
        numbers (or lists of them) instead of arrays give arrays of the project's
        default backend, device and dtype (:func:`beamtrack.set_defaults`).
    p0c
        Reference momentum times c [eV]; a number or an array of shape ``()`` or
        ``(*batch)``.
    mc2
        Rest energy of the species [eV]; number or array like ``p0c``.
    s
        Longitudinal position of the reference particle [m].
    alive
        Boolean survival mask of shape ``(*batch, n)``; all alive by default.
    coords
        The ``(*batch, 6, n)`` array, instead of the six coordinate arrays.
    charge
        Charge number of the species (charge in units of the elementary charge, with
        sign: -1 for electrons), a Python number; ``None`` (default) when unknown, and
        then physics that needs it (space charge) raises a ``ParameterError``.
    weight
        Physical particles per macro-particle, an array of the coordinates' library
        broadcastable to ``(*batch, n)`` (or a number); ``None`` (default) means 1 for
        every particle. Differentiable (a beam's total charge lives here).

    Examples
    --------
    >>> import numpy as np
    >>> from beamtrack import Particles, electron
    >>> p = Particles(*np.zeros((6, 3)), p0c=1e9, mc2=electron.mc2)
    >>> p.coords.shape
    (6, 3)
    """

    __slots__ = ("_coords", "_s", "_p0c", "_mc2", "_alive", "_charge", "_weight")

    def __init__(
        self,
        x: Any = None,
        px: Any = None,
        y: Any = None,
        py: Any = None,
        z: Any = None,
        pz: Any = None,
        *,
        p0c: Any,
        mc2: Any,
        s: Any = 0.0,
        alive: Any = None,
        coords: Any = None,
        charge: float | None = None,
        weight: Any = None,
    ) -> None:
        ensure_registered()
        six = (x, px, y, py, z, pz)
        if coords is None:
            missing = [n for n, v in zip(COORDINATES, six) if v is None]
            if missing:
                raise ParameterError(
                    f"Particles: coordinate(s) {', '.join(missing)} missing; pass all six "
                    "(x, px, y, py, z, pz) or `coords` of shape (*batch, 6, n)"
                )
            if not any(array_api_compat.is_array_api_obj(v) for v in six):
                six = _from_numbers(*six)  # Python numbers: the default backend
            xp = namespace_of(*six)
            six = xp.broadcast_arrays(*six)
            coords = xp.stack(six, axis=-2)
        else:
            if any(v is not None for v in six):
                raise ParameterError("Particles: pass either the six coordinates or `coords`")
            if not array_api_compat.is_array_api_obj(coords):
                (coords,) = _from_numbers(coords)  # nested lists of numbers: the default
            xp = namespace_of(coords)
            if coords.ndim < 2 or coords.shape[-2] != 6:
                raise ParameterError(
                    f"Particles: coords must have shape (*batch, 6, n), got {tuple(coords.shape)}"
                )
        if xp.isdtype(coords.dtype, "complex floating"):
            raise ParameterError(
                f"Particles: coordinates must be real, got dtype {coords.dtype} (the "
                "imaginary part would be dropped)")
        if not xp.isdtype(coords.dtype, "real floating"):
            coords = xp.astype(coords, _default_float(coords))  # integers: exact in float64
        self._init_fields(xp, coords, s=s, p0c=p0c, mc2=mc2, alive=alive)
        object.__setattr__(self, "_charge", _check_charge(charge))
        object.__setattr__(self, "_weight", _weight_array(xp, weight, coords))

    def _init_fields(self, xp: Any, coords: Any, *, s: Any, p0c: Any, mc2: Any,
                     alive: Any) -> None:
        device = array_api_compat.device(coords)
        reference = {}
        for name, value in (("s", s), ("p0c", p0c), ("mc2", mc2)):
            reference[name] = _reference_array(xp, value, coords, name)
            check_reference(name, reference[name], tuple(coords.shape[:-2]))
        shape = tuple(coords.shape[:-2]) + tuple(coords.shape[-1:])
        if alive is None:
            alive = xp.ones(shape, dtype=xp.bool, device=device)
        elif array_api_compat.is_array_api_obj(alive):
            if namespace_of(alive, coords) is not xp:  # pragma: no cover - namespace_of raises
                raise ParameterError("Particles: alive must use the coordinates' library")
            if alive.dtype != xp.bool:
                alive = xp.astype(alive, xp.bool)
        else:
            alive = xp.asarray(alive, dtype=xp.bool, device=device)
        if tuple(alive.shape) != shape:
            if not _broadcasts_to(tuple(alive.shape), shape):
                raise ParameterError(
                    f"Particles: alive has shape {tuple(alive.shape)}, the coordinates "
                    f"need {shape} (*batch, n)")
            alive = xp.broadcast_to(alive, shape)
        object.__setattr__(self, "_coords", coords)
        object.__setattr__(self, "_s", reference["s"])
        object.__setattr__(self, "_p0c", reference["p0c"])
        object.__setattr__(self, "_mc2", reference["mc2"])
        object.__setattr__(self, "_alive", alive)

    @classmethod
    def from_fields(cls, coords: Any, s: Any, p0c: Any, mc2: Any, alive: Any,
                    charge: float | None = None, weight: Any = None) -> Particles:
        """A record from its stored fields, without any conversion or check.

        For code that already holds valid fields of one library: tracking functions,
        pytree unflattening, compiled tracking (``jax_scan``, ``torch_compile``). Values
        may be JAX tracers or torch tensors that require grad.

        Parameters
        ----------
        coords
            Coordinates ``(*batch, 6, n)``: ``x`` [m], ``px``, ``y`` [m], ``py``,
            ``z`` [m], ``pz``.
        s
            Longitudinal position of the reference particle [m], shape ``()`` or
            ``(*batch)``, with the dtype of ``coords``.
        p0c
            Reference momentum times c [eV], like ``s``.
        mc2
            Rest energy of the species [eV], like ``s``.
        alive
            Boolean survival mask ``(*batch, n)``.
        charge
            Charge number of the species, or ``None`` (unknown).
        weight
            Physical particles per macro-particle, an array broadcastable to
            ``(*batch, n)``, or ``None`` (1 each).

        Returns
        -------
        Particles
            The record holding exactly these arrays.
        """
        ensure_registered()
        obj = object.__new__(cls)
        object.__setattr__(obj, "_coords", coords)
        object.__setattr__(obj, "_s", s)
        object.__setattr__(obj, "_p0c", p0c)
        object.__setattr__(obj, "_mc2", mc2)
        object.__setattr__(obj, "_alive", alive)
        object.__setattr__(obj, "_charge", charge)
        object.__setattr__(obj, "_weight", weight)
        return obj

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Particles is immutable; use .replace(...) to get a modified copy")

    # -- fields --------------------------------------------------------------------
    @property
    def coords(self) -> Any:
        """All coordinates, shape ``(*batch, 6, n)``."""
        return self._coords

    @property
    def x(self) -> Any:
        """Horizontal position [m], shape ``(*batch, n)``."""
        return self._coords[..., 0, :]

    @property
    def px(self) -> Any:
        """Horizontal momentum over reference momentum, ``P_x / P0``."""
        return self._coords[..., 1, :]

    @property
    def y(self) -> Any:
        """Vertical position [m]."""
        return self._coords[..., 2, :]

    @property
    def py(self) -> Any:
        """Vertical momentum over reference momentum, ``P_y / P0``."""
        return self._coords[..., 3, :]

    @property
    def z(self) -> Any:
        """Longitudinal position relative to the reference, ``-beta c (t - t0)`` [m]."""
        return self._coords[..., 4, :]

    @property
    def pz(self) -> Any:
        """Relative momentum deviation ``(P - P0) / P0``."""
        return self._coords[..., 5, :]

    @property
    def s(self) -> Any:
        """Longitudinal position of the reference particle [m]."""
        return self._s

    @property
    def p0c(self) -> Any:
        """Reference momentum times c [eV]."""
        return self._p0c

    @property
    def mc2(self) -> Any:
        """Rest energy of the species [eV]."""
        return self._mc2

    @property
    def alive(self) -> Any:
        """Survival mask, shape ``(*batch, n)``."""
        return self._alive

    @property
    def charge(self) -> float | None:
        """Charge number of the species (-1 for electrons), or ``None`` if unknown."""
        return self._charge

    @property
    def weight(self) -> Any:
        """Physical particles per macro-particle, shape ``(*batch, n)`` (ones unless
        set)."""
        c = self._coords
        shape = c.shape[:-2] + c.shape[-1:]
        if self._weight is None:
            return self.xp.ones(shape, dtype=c.dtype, device=array_api_compat.device(c))
        if tuple(self._weight.shape) == tuple(shape):
            return self._weight
        return self.xp.broadcast_to(self._weight, shape)

    @property
    def explicit_weight(self) -> Any:
        """The weight as given (an array broadcastable to ``(*batch, n)``), or ``None``
        when every macro-particle stands for one particle. Tracking functions pass it
        on to the records they build (:meth:`from_fields`)."""
        return self._weight

    @property
    def xp(self) -> Any:
        """Array API namespace of the coordinates."""
        return array_api_compat.array_namespace(self._coords)

    @property
    def backend(self) -> str:
        """Name of the backend the coordinates live in."""
        return backend_of(self._coords).name

    @property
    def dtype(self) -> Any:
        """Floating-point dtype of the coordinates."""
        return self._coords.dtype

    @property
    def device(self) -> Any:
        """Device of the coordinates."""
        return array_api_compat.device(self._coords)

    @property
    def n(self) -> int:
        """Number of particles (per batch entry)."""
        return int(self._coords.shape[-1])

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """Batch dimensions ``(*batch)``."""
        return tuple(self._coords.shape[:-2])

    def unpack(self) -> tuple[Any, Any, Any, Any, Any, Any]:
        """The six coordinate views ``(x, px, y, py, z, pz)``."""
        c = self._coords
        return tuple(c[..., i, :] for i in range(6))  # type: ignore[return-value]

    def replace(self, **changes: Any) -> Particles:
        """A copy with some fields replaced.

        Accepts ``coords``, any of the six coordinate names, ``s``, ``p0c``, ``mc2``,
        ``alive``, ``charge`` and ``weight``.
        """
        unknown = set(changes) - set(COORDINATES) - {"coords", "s", "p0c", "mc2", "alive",
                                                     "charge", "weight"}
        if unknown:
            raise ParameterError(f"Particles.replace: unknown field(s) {sorted(unknown)}")
        fields = {"s": self._s, "p0c": self._p0c, "mc2": self._mc2, "alive": self._alive,
                  "charge": self._charge, "weight": self._weight}
        fields.update({k: v for k, v in changes.items() if k in fields})
        if "coords" in changes:
            return Particles(coords=changes["coords"], **fields)
        six = [changes.get(name, old) for name, old in zip(COORDINATES, self.unpack())]
        return Particles(*six, **fields)

    # -- construction and conversion -------------------------------------------------
    @classmethod
    def from_array(
        cls,
        array: Any,
        *,
        p0c: Any,
        mc2: Any,
        s: Any = 0.0,
        alive: Any = None,
    ) -> Particles:
        """Build from a particle-major array of shape ``(*batch, n, 6)``.

        The columns are ``x, px, y, py, z, pz`` (Bmad order). The array may be a NumPy
        array or an array of any backend; the record lives in the same library.
        """
        if not array_api_compat.is_array_api_obj(array):
            import numpy as np

            array = np.asarray(array, dtype=np.float64)
        xp = namespace_of(array)
        if array.ndim < 2 or array.shape[-1] != 6:
            raise ParameterError(
                f"Particles.from_array: expected shape (*batch, n, 6), got {tuple(array.shape)}"
            )
        return cls(coords=xp.matrix_transpose(array), p0c=p0c, mc2=mc2, s=s, alive=alive)

    @classmethod
    def from_twiss(cls, n: int, **kwargs: Any) -> Particles:
        """A beam from Twiss parameters; see :func:`beamtrack.tracking.beams.from_twiss`.

        Examples
        --------
        >>> from beamtrack import Particles, electron
        >>> beam = Particles.from_twiss(1000, beta_x=8.0, alpha_x=-1.2, emittance_x=1e-8,
        ...                             beta_y=3.0, emittance_y=1e-8, sigma_pz=1e-3,
        ...                             p0c=1e9, mc2=electron.mc2, seed=1)
        >>> beam.coords.shape
        (6, 1000)
        """
        from beamtrack.tracking.beams import from_twiss

        return from_twiss(n, **kwargs)

    @classmethod
    def from_covariance(cls, n: int, **kwargs: Any) -> Particles:
        """A Gaussian beam from a 6x6 covariance; see
        :func:`beamtrack.tracking.beams.from_covariance`."""
        from beamtrack.tracking.beams import from_covariance

        return from_covariance(n, **kwargs)

    # -- other codes: Cheetah and Xsuite (see beamtrack.tracking.conventions) ---------
    @classmethod
    def from_cheetah(cls, beam: Any) -> Particles:
        """Particles from a Cheetah ``ParticleBeam`` (torch arrays, gradients kept);
        see :func:`beamtrack.tracking.conventions.particles_from_cheetah`."""
        from beamtrack.tracking.conventions import particles_from_cheetah

        return particles_from_cheetah(beam)

    def to_cheetah(self, species: Any = None) -> Any:
        """A Cheetah ``ParticleBeam``; see
        :func:`beamtrack.tracking.conventions.particles_to_cheetah`."""
        from beamtrack.tracking.conventions import particles_to_cheetah

        return particles_to_cheetah(self, species)

    @classmethod
    def from_xsuite(cls, particles: Any) -> Particles:
        """Particles (NumPy) from an ``xtrack.Particles`` object; see
        :func:`beamtrack.tracking.conventions.particles_from_xsuite`."""
        from beamtrack.tracking.conventions import particles_from_xsuite

        return particles_from_xsuite(particles)

    def to_xsuite(self, q0: float | None = None) -> Any:
        """An ``xtrack.Particles`` object; see
        :func:`beamtrack.tracking.conventions.particles_to_xsuite`."""
        from beamtrack.tracking.conventions import particles_to_xsuite

        return particles_to_xsuite(self, q0)

    def to_array(self) -> Any:
        """Particle-major copy of the coordinates, shape ``(*batch, n, 6)``."""
        return self.xp.matrix_transpose(self._coords)

    def to_backend(self, name: str, device: Any = None, dtype: Any = None) -> Particles:
        """The same particles in another backend.

        Data go through host memory (NumPy); autodiff history is not carried over.

        Parameters
        ----------
        name
            Target backend (``"numpy"``, ``"torch"``, ``"jax"``, ``"cupy"``,
            ``"array_api_strict"``).
        device
            Target device; the backend's default when ``None``.
        dtype
            Target floating dtype (name or dtype); keeps the current precision when
            ``None``.
        """
        source = backend_of(self._coords)
        target = get(name)
        if dtype is None:
            dtype = str(source.to_numpy(self._coords[..., :0, :0]).dtype)

        def move(a: Any, dt: Any) -> Any:
            return target.asarray(source.to_numpy(a), dtype=dt, device=device)

        return Particles.from_fields(
            move(self._coords, dtype),
            move(self._s, dtype),
            move(self._p0c, dtype),
            move(self._mc2, dtype),
            move(self._alive, "bool"),
            self._charge,
            None if self._weight is None else move(self._weight, dtype),
        )

    def numpy(self) -> Particles:
        """The same particles as NumPy arrays."""
        return self.to_backend("numpy")

    def __repr__(self) -> str:
        return (
            f"Particles(n={self.n}, batch={self.batch_shape}, backend={self.backend!r}, "
            f"dtype={self.dtype})"
        )


def _from_numbers(*values: Any) -> list[Any]:
    """Python numbers or nested sequences of them as arrays (at least 1-d) of the
    project's default backend, dtype and device (:mod:`beamtrack.backends.defaults`)."""
    import numpy as np

    from beamtrack.backends.defaults import resolve

    target, dtype, device = resolve()
    return [target.asarray(np.atleast_1d(np.asarray(v, dtype=np.float64)), dtype=dtype,
                           device=device) for v in values]


def _default_float(array: Any) -> Any:
    return array_api_compat.array_namespace(array).float64


def _reference_array(xp: Any, value: Any, coords: Any, name: str) -> Any:
    device = array_api_compat.device(coords)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return xp.asarray(float(value), dtype=coords.dtype, device=device)
    if array_api_compat.is_array_api_obj(value):
        try:
            same = array_api_compat.array_namespace(value, coords) is xp
        except TypeError:
            same = False
        if not same:
            raise ParameterError(
                f"Particles: {name} is an array of another library than the coordinates"
            )
        return value if value.dtype == coords.dtype else xp.astype(value, coords.dtype)
    raise ParameterError(f"Particles: {name} must be a number or an array, got {value!r}")


def _check_charge(charge: Any) -> float | None:
    if charge is None:
        return None
    if (isinstance(charge, bool) or not isinstance(charge, numbers.Real)
            or not math.isfinite(charge)):
        raise ParameterError(f"Particles: charge must be a finite number (the species' "
                             f"charge number) or None, got {charge!r}")
    return float(charge)


def _broadcasts_to(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    try:
        return broadcast_shape(shape, target) == target
    except ValueError:
        return False


#: Rules of the reference fields, checked where their values are known (not on JAX
#: tracers): (test, what the value must be).
_REFERENCE_RULES = {
    "p0c": (lambda v: v > 0.0, "finite and > 0 [eV]"),
    "mc2": (lambda v: v >= 0.0, "finite and >= 0 [eV]"),
    "s": (lambda v: v == v, "finite [m]"),
}


def check_reference(name: str, value: Any, batch: tuple[int, ...]) -> None:
    """Check a reference field (``s``, ``p0c`` or ``mc2``) of particles with batch shape
    ``batch``: its shape must be ``()`` or broadcast to ``batch``, and its values must
    be finite, ``p0c > 0`` and ``mc2 >= 0``.

    Values inside a JAX or torch transformation (tracers) and torch ``meta`` tensors
    have no data: only their shape is checked; tracking then flags the particles lost
    (non-finite results) instead.

    Raises
    ------
    ParameterError
        Naming the field and giving the shapes or the offending value.
    """
    shape = tuple(value.shape)
    if shape and not _broadcasts_to(shape, batch):
        raise ParameterError(
            f"Particles: {name} has shape {shape}, which does not broadcast to the "
            f"particles' batch shape {batch}"
        )
    backend = backend_of(value)
    if not backend.has_values(value):
        return
    xp = array_api_compat.array_namespace(value)
    test, rule = _REFERENCE_RULES[name]
    good = xp.isfinite(value) & test(value)
    if not bool(xp.all(good)):
        bad = backend.to_numpy(value[~good] if shape else value)
        raise ParameterError(f"Particles: {name} must be {rule}, got {float(bad.ravel()[0])!r}")


def _weight_array(xp: Any, weight: Any, coords: Any) -> Any:
    """``weight`` as an array of the coordinates' library and dtype (``None`` kept)."""
    if weight is None:
        return None
    if isinstance(weight, numbers.Real) and not isinstance(weight, bool):
        return xp.asarray(float(weight), dtype=coords.dtype,
                          device=array_api_compat.device(coords))
    if not array_api_compat.is_array_api_obj(weight):
        raise ParameterError(f"Particles: weight must be a number or an array, got "
                             f"{type(weight).__name__}")
    try:
        same = array_api_compat.array_namespace(weight, coords) is xp
    except TypeError:
        same = False
    if not same:
        raise ParameterError("Particles: weight is an array of another library than the "
                             "coordinates")
    return weight if weight.dtype == coords.dtype else xp.astype(weight, coords.dtype)


def _flatten(p: Particles) -> tuple[tuple[Any, ...], Any]:
    return (p._coords, p._s, p._p0c, p._mc2, p._alive, p._weight), p._charge


def _unflatten(aux: Any, children: Sequence[Any]) -> Particles:
    return Particles.from_fields(*children[:5], charge=aux, weight=children[5])


register_pytree(Particles, _flatten, _unflatten)
