"""The :class:`Beamline`: an ordered, named sequence of elements and nested beamlines."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Union

import numpy as np

from beamtrack.backends import backend_of
from beamtrack.backends.pytrees import ensure_registered, register_pytree
from beamtrack.lattice.elements import Element, Screen
from beamtrack.lattice.errors import LatticeError
from beamtrack.tracking.errors import ParameterError
from beamtrack.tracking.parameter_beam import ParameterBeam
from beamtrack.tracking.particles import Particles
from beamtrack.tracking.stepping import METHODS

Item = Union[Element, "Beamline"]


class Beamline:
    """An ordered sequence of elements and nested beamlines, all uniquely named.

    Parameters
    ----------
    items
        Elements and nested :class:`Beamline` objects, in beam order.
    name
        Name of the beamline (must be unique among the names of a containing line).
    method
        Default tracking method of the elements (one of
        :data:`~beamtrack.tracking.stepping.METHODS`). An element's own ``method``
        takes precedence.

    Notes
    -----
    Iterating over a beamline yields its elements in tracking order, with nested lines
    flattened; ``len`` counts those elements. ``items`` holds the top-level entries.
    Beamlines are immutable: :meth:`replace` returns a new one.

    Examples
    --------
    >>> import beamtrack as bt
    >>> line = bt.Beamline([bt.Drift("d1", length=0.5),
    ...                     bt.Quadrupole("qf", length=0.2, k1=1.2)], name="cell")
    >>> float(line.length)
    0.7
    """

    __slots__ = ("_items", "_name", "_method", "_index")

    def __init__(self, items: Iterable[Item], name: str = "beamline", method: str = "bmad"):
        ensure_registered()
        items = tuple(items)
        if not isinstance(name, str) or not name:
            raise LatticeError(f"Beamline: name must be a non-empty string, got {name!r}")
        if method not in METHODS:
            raise ParameterError(
                f"parameter 'method' must be one of {', '.join(METHODS)}, got {method!r}",
                element=f"Beamline {name!r}")
        for position, item in enumerate(items):
            if not isinstance(item, (Element, Beamline)):
                raise LatticeError(
                    f"Beamline {name!r}: entry {position} is a {type(item).__name__}, "
                    "not an element or a beamline"
                )
        index: dict[str, tuple[int, ...]] = {}
        for position, item in enumerate(items):
            entries = [(item.name, (position,))]
            if isinstance(item, Beamline):
                entries += [(n, (position, *path)) for n, path in item._index.items()]
            for entry_name, path in entries:
                if entry_name in index or entry_name == name:
                    raise LatticeError(
                        f"Beamline {name!r}: duplicate name {entry_name!r}; names of elements "
                        "and nested beamlines must be unique"
                    )
                index[entry_name] = path
        object.__setattr__(self, "_items", items)
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_method", method)
        object.__setattr__(self, "_index", index)

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("Beamline is immutable; use .replace(...)")

    # -- structure ---------------------------------------------------------------------
    @property
    def name(self) -> str:
        """Name of the beamline."""
        return self._name

    @property
    def method(self) -> str:
        """Default tracking method of its elements."""
        return self._method

    @property
    def items(self) -> tuple[Item, ...]:
        """Top-level entries (elements and nested beamlines)."""
        return self._items

    def __iter__(self) -> Iterator[Element]:
        for item in self._items:
            if isinstance(item, Beamline):
                yield from item
            else:
                yield item

    def __len__(self) -> int:
        return sum(len(i) if isinstance(i, Beamline) else 1 for i in self._items)

    def names(self) -> list[str]:
        """Names of the elements in tracking order (nested lines flattened)."""
        return [e.name for e in self]

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __getitem__(self, key: str | int) -> Item:
        """Look up an element or nested beamline by name, or a top-level entry by index."""
        if isinstance(key, int):
            return self._items[key]
        if key not in self._index:
            raise KeyError(f"Beamline {self._name!r} has no element or beamline named {key!r}")
        item: Item = self
        for position in self._index[key]:
            assert isinstance(item, Beamline)
            item = item._items[position]
        return item

    @property
    def length(self) -> Any:
        """Total length of the reference orbit [m] (an array if any length is an array).

        The sum of the elements' :attr:`~beamtrack.lattice.elements.Element.path_length`
        (the arc of an RBend, whose ``length`` is its chord).
        """
        total: Any = 0.0
        for element in self:
            total = total + element.path_length
        return total

    def replace(self, name: str, **params: Any) -> Beamline:
        """A new beamline with parameters of the element ``name`` replaced.

        For a nested beamline ``name``, ``method`` may be replaced.
        """
        return self._replace_grouped({name: params})

    def _replace_grouped(self, grouped: dict[str, dict[str, Any]]) -> Beamline:
        """Replace ``{element name: {parameter: value}}`` in one pass over the line."""
        for name in grouped:
            if name not in self._index:
                raise KeyError(
                    f"Beamline {self._name!r} has no element or beamline named {name!r}")
        return self._replace_many(grouped)

    def _replace_many(self, grouped: dict[str, dict[str, Any]]) -> Beamline:
        """:meth:`_replace_grouped` after its name check."""
        items = []
        for item in self._items:
            if isinstance(item, Beamline):
                inner = {k: v for k, v in grouped.items() if k in item._index}
                if inner:
                    item = item._replace_many(inner)
            if item.name in grouped:
                item = _replaced(item, grouped[item.name])
            items.append(item)
        return Beamline(items, self._name, self._method)

    # -- tracking ------------------------------------------------------------------------
    def _resolved(self, method: str | None) -> Iterator[tuple[Element, str]]:
        line_method = method or self._method
        for item in self._items:
            if isinstance(item, Beamline):
                yield from item._resolved(method or item._method)
            else:
                yield item, line_method

    def track(self, particles: Any, method: str | None = None) -> Any:
        """Track ``particles`` through the whole beamline.

        Parameters
        ----------
        particles
            Incoming :class:`~beamtrack.tracking.particles.Particles` (any backend), or a
            :class:`~beamtrack.tracking.parameter_beam.ParameterBeam`, which is tracked
            with the first-order maps (``mean -> R mean + c``,
            ``Sigma -> R Sigma R^T``) whatever the method.
        method
            Tracking method for elements that do not fix their own; the beamline's
            ``method`` when ``None``.
        """
        if isinstance(particles, ParameterBeam):
            from beamtrack.lattice.optics import track_parameter_beam

            return track_parameter_beam(self, particles)
        if self._traced_by_jax(particles):
            # Under a JAX transformation: one lax.scan over the elements with a
            # lax.switch over element signatures, so compile time scales with the
            # number of element kinds, not elements.
            from beamtrack.backends.jax_scan import scan_track

            self.plan(method)  # validates the method
            return scan_track(self, particles, method)
        for element, element_method in self.plan(method):
            particles = element.track(particles, element_method)
        return particles

    def parameters(self, pattern: str | None = None) -> dict[str, Any]:
        """Numeric parameters of every element as a flat mapping ``"element.parameter"``.

        Parameters
        ----------
        pattern
            Optional shell-style pattern on the keys (``"q*.k1"``, ``"*.x_offset"``).

        Returns
        -------
        dict
            ``{"qf.k1": value, ...}`` in tracking order; values as stored (numbers or
            arrays, sequences such as ``knl`` as tuples).
        """
        import fnmatch

        out = {}
        for element in self:
            for key, value in element.arrays().items():
                name = f"{element.name}.{key}"
                if pattern is None or fnmatch.fnmatchcase(name, pattern):
                    out[name] = value
        return out

    def with_parameters(self, values: dict[str, Any]) -> Beamline:
        """A new beamline with the given ``"element.parameter"`` values replaced.

        Values may be numbers or arrays (with batch dimensions). Unknown elements or
        parameters raise ``KeyError`` / ``UnknownParameterError``.
        """
        grouped: dict[str, dict[str, Any]] = {}
        for key, value in values.items():
            element, sep, parameter = key.rpartition(".")
            if not sep or not element:
                raise KeyError(f"parameter key {key!r} must look like 'element.parameter'")
            grouped.setdefault(element, {})[parameter] = value
        return self._replace_grouped(grouped)

    def merged(
        self,
        p0c: Any,
        mc2: Any,
        backend: str | None = None,
        method: str | None = None,
    ) -> Beamline:
        """This line with every run of consecutive ``"linear"`` elements fused into one map.

        See :func:`beamtrack.lattice.optics.merged` (valid for a fixed reference
        ``p0c``, ``mc2``; observing, limiting and energy-changing elements stay in place).
        """
        from beamtrack.lattice.optics import merged

        return merged(self, p0c=p0c, mc2=mc2, backend=backend, method=method)

    def _traced_by_jax(self, particles: Particles) -> bool:
        backend = backend_of(particles.coords)
        if backend.name != "jax" or len(self) < 2:
            return False
        if backend.is_traced(particles.coords):
            return True
        return any(
            backend.is_traced(value)
            for element in self
            for value in element.arrays().values()
            if not isinstance(value, tuple)
        )

    def track_each(
        self, particles: Particles, method: str | None = None
    ) -> Iterator[tuple[Element, Particles]]:
        """Track element by element, yielding ``(element, particles after it)``."""
        for element, element_method in self.plan(method):
            particles = element.track(particles, element_method)
            yield element, particles

    def observe(self, particles: Particles, method: str | None = None) -> Observation:
        """Track through the beamline and record what happens on the way, in one pass.

        Collects the reading of every :class:`~beamtrack.lattice.elements.Monitor`,
        the image of every :class:`~beamtrack.lattice.elements.Screen`, the element
        where each particle is lost, and a differentiable survival weight. The
        particles at the end are exactly those of :meth:`track` (which stays free of
        this bookkeeping). Works on every backend, with batch dimensions, and inside
        ``jax.jit`` (the result is a pytree; no Python control flow on array values).

        Parameters
        ----------
        particles
            Incoming particles, any backend.
        method
            As in :meth:`track`.

        Returns
        -------
        Observation
            ``particles``, ``lost_at``, ``weight``, ``readings`` and ``images``; see
            :class:`Observation`.

        Examples
        --------
        >>> import numpy as np
        >>> import beamtrack as bt
        >>> from beamtrack.lattice.elements import Aperture, Monitor
        >>> line = bt.Beamline([bt.Drift("d1", length=1.0), Monitor("bpm1"),
        ...                     Aperture("ap1", x_limit=1e-3)])
        >>> x = np.array([0.0, 2e-3, 5e-4])
        >>> p = bt.Particles(x, *np.zeros((5, 3)), p0c=1e9, mc2=bt.electron.mc2)
        >>> obs = line.observe(p)
        >>> obs.lost_at.tolist(), int(obs.lost_in("ap1"))
        ([-1, 2, -1], 1)
        >>> [round(float(v), 6) for v in obs.readings["bpm1"]]
        [0.000833, 0.0]
        """
        plan = self.plan(method)
        xp = particles.xp
        lost_at = xp.full_like(particles.alive, -1, dtype=xp.int32)
        weight = xp.astype(particles.alive, particles.dtype)
        readings: dict[str, Any] = {}
        images: dict[str, Any] = {}
        for index, (element, element_method) in enumerate(plan):
            factor = element.survival_factor(particles)
            before = particles.alive
            particles = element.track(particles, element_method)
            lost_here = before & ~particles.alive
            lost_at = xp.where(lost_here, xp.full_like(lost_at, index), lost_at)
            if factor is None:
                weight = xp.where(lost_here, xp.zeros_like(weight), weight)
            else:
                weight = xp.where(before, weight * factor, weight)
            seen = element.observe(particles)
            if seen is not None:
                (images if isinstance(element, Screen) else readings)[element.name] = seen
        return Observation(
            particles=particles,
            lost_at=lost_at,
            weight=weight,
            readings=readings,
            images=images,
            names=tuple(element.name for element, _ in plan),
            spans=self._spans(),
        )

    def _spans(self, start: int = 0) -> dict[str, tuple[int, int]]:
        """``{name: (first, stop)}``: tracking-order index range of every element and line."""
        spans: dict[str, tuple[int, int]] = {}
        position = start
        for item in self._items:
            if isinstance(item, Beamline):
                inner = item._spans(position)
                spans.update(inner)
                position = inner[item.name][1]
            else:
                spans[item.name] = (position, position + 1)
                position += 1
        spans[self._name] = (start, position)
        return spans

    def plan(self, method: str | None = None) -> tuple[tuple[Element, str], ...]:
        """The compile plan: every element in tracking order with the method it uses.

        This is what tracking and the compilers (``jax_scan``, ``torch_compile``) walk:
        nested beamlines are flattened, and each element's method is its own
        ``method``, else that of the innermost beamline setting one, else ``method``.

        Parameters
        ----------
        method
            Tracking method for elements that do not fix their own (one of
            :data:`~beamtrack.tracking.stepping.METHODS`); the beamline's when ``None``.

        Returns
        -------
        tuple of (Element, str)
            ``(element, method)`` pairs; ``element.track(particles, method)`` in this
            order is :meth:`track`.
        """
        if method is not None and method not in METHODS:
            raise ParameterError(
                f"unknown tracking method {method!r}; choose one of {', '.join(METHODS)}",
                element=f"Beamline {self._name!r}")
        return tuple((element, element.method or line_method)
                     for element, line_method in self._resolved(method))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Beamline):
            return NotImplemented
        return (self._name, self._method) == (other._name, other._method) and len(
            self._items
        ) == len(other._items) and all(a == b for a, b in zip(self._items, other._items))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Beamline({self._name!r}, {len(self)} elements, method={self._method!r})"


def _replaced(item: Item, params: dict[str, Any]) -> Item:
    """``item`` with ``params`` replaced (only ``method`` for a nested beamline)."""
    if isinstance(item, Beamline):
        unknown = set(params) - {"method"}
        if unknown:
            raise LatticeError(
                f"Beamline {item.name!r}: only 'method' can be replaced, not "
                f"{', '.join(sorted(unknown))}"
            )
        return Beamline(item._items, item._name, params.get("method", item._method))
    return item.replace(**params)


def _flatten_line(line: Beamline) -> tuple[tuple[Any, ...], Any]:
    return line._items, (line._name, line._method, tuple(line._index.items()))


def _unflatten_line(aux: Any, items: Any) -> Beamline:
    name, method, index = aux
    line = object.__new__(Beamline)
    object.__setattr__(line, "_items", tuple(items))
    object.__setattr__(line, "_name", name)
    object.__setattr__(line, "_method", method)
    object.__setattr__(line, "_index", dict(index))
    return line


register_pytree(Beamline, _flatten_line, _unflatten_line)


class Observation:
    """What :meth:`Beamline.observe` saw: final particles, losses, readings and images.

    Attributes
    ----------
    particles
        Particles at the end of the beamline (the same as :meth:`Beamline.track`).
    lost_at
        Integer array (int32) of shape ``(*batch, n)``: for each particle, the index in
        ``names`` (``Beamline.names()``) of the element where it was lost, or ``-1`` if
        it was not lost in this beamline (survivors, and particles already lost when
        they entered).
    weight
        Float array ``(*batch, n)``: a differentiable survival weight. It starts as the
        incoming ``alive`` flags; every aperture multiplies in its smooth survival
        factor (:func:`~beamtrack.tracking.aperture.aperture_factor`, width ``smooth``)
        for the particles that reach it alive, and a loss at any other element (an
        unphysical momentum) sets it to 0. With ``smooth = 0`` everywhere it equals the
        final ``alive`` flags as 0/1; with ``smooth > 0``, ``sum(weight)`` is a smooth
        stand-in for the transmission whose gradient reaches upstream magnets.
    readings
        ``{monitor name: reading (*batch, 2)}`` (x, y) [m] after the monitor.
    images
        ``{screen name: image (*batch, ny, nx)}``.
    names
        Element names in tracking order.

    Notes
    -----
    Registered as a JAX pytree, so a jitted function can return it.
    """

    __slots__ = ("particles", "lost_at", "weight", "readings", "images", "names", "_spans")

    def __init__(
        self,
        *,
        particles: Particles,
        lost_at: Any,
        weight: Any,
        readings: dict[str, Any],
        images: dict[str, Any],
        names: tuple[str, ...],
        spans: dict[str, tuple[int, int]],
    ) -> None:
        for key, value in (("particles", particles), ("lost_at", lost_at), ("weight", weight),
                           ("readings", readings), ("images", images), ("names", names),
                           ("_spans", spans)):
            object.__setattr__(self, key, value)

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("Observation is immutable")

    def index(self, name: str) -> int:
        """Index of the element ``name`` in ``names`` (the value ``lost_at`` uses)."""
        first, stop = self._span(name)
        if stop != first + 1 or self.names[first] != name:
            raise KeyError(f"{name!r} is a beamline, not an element; use lost_in({name!r})")
        return first

    def _span(self, name: str) -> tuple[int, int]:
        if name not in self._spans:
            raise KeyError(f"no element or beamline named {name!r} was observed")
        return self._spans[name]

    def lost_in(self, name: str) -> Any:
        """Number of particles lost in element ``name`` (or anywhere in the nested
        beamline ``name``), per batch entry: an integer array of shape ``(*batch)``."""
        first, stop = self._span(name)
        xp = self.particles.xp
        inside = (self.lost_at >= first) & (self.lost_at < stop)
        return xp.sum(xp.astype(inside, self.lost_at.dtype), axis=-1)

    def loss_summary(self) -> dict[str, int]:
        """``{element name: particles lost there}`` for the elements that lost any,
        summed over batch entries (Python integers; not for use inside ``jax.jit``)."""
        lost_at = backend_of(self.lost_at).to_numpy(self.lost_at)
        counts = np.bincount(lost_at[lost_at >= 0].ravel(), minlength=len(self.names))
        return {self.names[i]: int(c) for i, c in enumerate(counts) if c > 0}

    def __repr__(self) -> str:
        return (
            f"Observation({self.particles!r}, {len(self.readings)} readings, "
            f"{len(self.images)} images, {len(self.names)} elements)"
        )


def _flatten_observation(obs: Observation) -> tuple[tuple[Any, ...], Any]:
    reading_names, image_names = tuple(obs.readings), tuple(obs.images)
    children = (obs.particles, obs.lost_at, obs.weight,
                tuple(obs.readings[k] for k in reading_names),
                tuple(obs.images[k] for k in image_names))
    aux = (reading_names, image_names, obs.names, tuple(obs._spans.items()))
    return children, aux


def _unflatten_observation(aux: Any, children: Sequence[Any]) -> Observation:
    reading_names, image_names, names, spans = aux
    particles, lost_at, weight, readings, images = children
    return Observation(particles=particles, lost_at=lost_at, weight=weight,
                       readings=dict(zip(reading_names, readings)),
                       images=dict(zip(image_names, images)), names=names, spans=dict(spans))


register_pytree(Observation, _flatten_observation, _unflatten_observation)
