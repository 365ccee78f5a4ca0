"""The :class:`Beamline`: an ordered, named sequence of elements and nested beamlines."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Union

import numpy as np

from beamtrack.backends import backend_of
from beamtrack.backends.pytrees import ensure_registered, register_pytree
from beamtrack.lattice.elements import Element, Screen
from beamtrack.lattice.errors import LatticeError
from beamtrack.tracking import losses
from beamtrack.tracking.errors import ParameterError
from beamtrack.tracking.losses import LossReason
from beamtrack.tracking.parameter_beam import ParameterBeam
from beamtrack.tracking.particles import Particles
from beamtrack.tracking.reference import Reference
from beamtrack.tracking.stepping import METHODS, check_particles

Item = Union[Element, "Beamline"]


class Beamline:
    """An ordered sequence of elements and nested beamlines.

    Parameters
    ----------
    items
        Elements and nested :class:`Beamline` objects, in beam order.
    name
        Name of the beamline.
    method
        Default tracking method of the elements (one of
        :data:`~beamtrack.tracking.stepping.METHODS`). An element's own ``method``
        takes precedence.
    reference
        The reference particle the line is designed for (species and ``p0c``), or
        ``None``. Lines read from lattice files carry the file's; :func:`twiss`,
        :meth:`merged` and the command line use it when no ``p0c``/``mc2`` is given.

    Notes
    -----
    Iterating over a beamline yields its elements in tracking order, with nested lines
    flattened; ``len`` counts those elements. ``items`` holds the top-level entries.
    Beamlines are immutable: :meth:`replace` returns a new one.

    A name means one definition, as in MAD-X and Bmad: the same element (or nested
    beamline) may occur at several places, and :meth:`replace`, :meth:`parameters`,
    :meth:`with_parameters` and gradients treat its occurrences as one. Two different
    definitions under one name raise :class:`~beamtrack.lattice.errors.LatticeError`.
    :meth:`occurrences` and :meth:`replace_at` address one occurrence (to misalign one
    magnet, say).

    Examples
    --------
    >>> import beamtrack as bt
    >>> line = bt.Beamline([bt.Drift("d1", length=0.5),
    ...                     bt.Quadrupole("qf", length=0.2, k1=1.2)], name="cell")
    >>> float(line.length)
    0.7
    """

    __slots__ = ("_items", "_name", "_method", "_index", "_reference")

    def __init__(
        self,
        items: Iterable[Item],
        name: str = "beamline",
        method: str = "bmad",
        reference: Reference | None = None,
    ):
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
        if reference is not None and not isinstance(reference, Reference):
            raise LatticeError(f"Beamline {name!r}: reference must be a Reference, "
                               f"got {type(reference).__name__}")
        object.__setattr__(self, "_items", items)
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_method", method)
        object.__setattr__(self, "_index", _build_index(name, items))
        object.__setattr__(self, "_reference", reference)

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
    def reference(self) -> Reference | None:
        """The reference particle (species and ``p0c``), or ``None`` if not set."""
        return self._reference

    def with_reference(self, reference: Reference | None) -> Beamline:
        """This line with ``reference`` as its reference particle."""
        return Beamline(self._items, self._name, self._method, reference)

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
        """Names of the elements in tracking order (nested lines flattened; a name
        occurs once per occurrence of its element)."""
        return [e.name for e in self]

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __getitem__(self, key: str | int) -> Item:
        """Look up an element or nested beamline by name (its definition), or a
        top-level entry by index."""
        if isinstance(key, int):
            return self._items[key]
        return self._at(self._paths(key)[0])

    def _paths(self, name: str) -> tuple[tuple[int, ...], ...]:
        if name not in self._index:
            raise KeyError(f"Beamline {self._name!r} has no element or beamline named {name!r}")
        return self._index[name]

    def _at(self, path: tuple[int, ...]) -> Item:
        item: Item = self
        for position in path:
            assert isinstance(item, Beamline)
            item = item._items[position]
        return item

    def occurrences(self, name: str) -> tuple[int, ...]:
        """Where the element ``name`` occurs: its positions in tracking order.

        Parameters
        ----------
        name
            An element name (for a nested beamline, the position of its first element
            in each of its occurrences).

        Returns
        -------
        tuple of int
            Indices into :meth:`names` (and into ``Observation.names``), ascending; use
            one with :meth:`replace_at`.
        """
        self._paths(name)
        return tuple(first for first, _ in self._spans()[name])

    def replace_at(self, position: int, *, name: str | None = None, **params: Any) -> Beamline:
        """A new beamline with one occurrence of an element replaced, the others kept.

        Parameters
        ----------
        position
            Index of the occurrence in tracking order (an index into :meth:`names`, for
            example from :meth:`occurrences`).
        name
            Name of the replaced occurrence. It must differ from the definition's once
            the parameters differ; by default ``"<name>#<k>"`` for the ``k``-th
            occurrence (1-based) of an element that occurs several times. Nested
            beamlines that hold the occurrence and occur several times are renamed the
            same way, since they now differ from their other occurrences.
        **params
            Parameters to replace, as in :meth:`replace`.

        Examples
        --------
        >>> import beamtrack as bt
        >>> qf = bt.Quadrupole("qf", length=0.2, k1=1.0)
        >>> line = bt.Beamline([qf, bt.Drift("d", length=1.0), qf])
        >>> line.occurrences("qf")
        (0, 2)
        >>> line.replace_at(2, x_offset=1e-4).names()
        ['qf', 'd', 'qf#2']
        """
        total = len(self)
        if isinstance(position, bool) or not isinstance(position, int) or not (
                -total <= position < total):
            raise IndexError(f"Beamline {self._name!r}: position {position!r} is not an index "
                             f"into its {total} elements")
        return self._replace_position(position % total, name, params, self._spans())

    def _replace_position(self, position: int, new_name: str | None, params: dict[str, Any],
                          spans: dict[str, list[tuple[int, int]]], start: int = 0) -> Beamline:
        items = list(self._items)
        offset = start
        for i, item in enumerate(items):
            size = len(item) if isinstance(item, Beamline) else 1
            if offset <= position < offset + size:
                if isinstance(item, Beamline):
                    replaced: Item = item._replace_position(position, new_name, params, spans,
                                                            offset)
                    renamed = _occurrence_name(item.name, offset, spans)
                else:
                    replaced = item.replace(**params) if params else item
                    renamed = new_name or _occurrence_name(item.name, offset, spans)
                if renamed != item.name:
                    replaced = _renamed(replaced, renamed)
                items[i] = replaced
                break
            offset += size
        return Beamline(items, self._name, self._method, self._reference)

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

    def _replace_many(self, grouped: dict[str, dict[str, Any]],
                      done: dict[int, Item] | None = None) -> Beamline:
        """:meth:`_replace_grouped` after its name check.

        ``done`` maps ``id(item)`` to its replacement, so every occurrence of one
        definition is replaced once and by the same object.
        """
        done = {} if done is None else done
        items = []
        for item in self._items:
            key = id(item)
            if key not in done:
                new = item
                if isinstance(item, Beamline):
                    inner = {k: v for k, v in grouped.items() if k in item._index}
                    if inner:
                        new = item._replace_many(inner, done)
                if new.name in grouped:
                    new = _replaced(new, grouped[new.name])
                done[key] = new
            items.append(done[key])
        return Beamline(items, self._name, self._method, self._reference)

    # -- tracking ------------------------------------------------------------------------
    def _resolved(self, method: str | None) -> Iterator[tuple[Element, str]]:
        line_method = method or self._method
        for item in self._items:
            if isinstance(item, Beamline):
                yield from item._resolved(method or item._method)
            else:
                yield item, line_method

    def track(self, particles: Any, method: str | None = None,
              checkpoint: bool | None = None) -> Any:
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
        checkpoint
            Gradient checkpointing (:mod:`~beamtrack.backends.checkpointing`): keep only
            the particles between segments of elements for reverse mode and recompute
            the rest in the backward pass (less memory, about one more forward pass).
            ``None`` (default): on from
            :data:`~beamtrack.backends.checkpointing.AUTO_CHECKPOINT_SIZE` particles x
            elements; ``True``/``False``: on/off. Acts on torch tracking that records
            gradients and under JAX transformations; results are the same either way.
        """
        if checkpoint is not None and not isinstance(checkpoint, bool):
            raise TypeError(f"checkpoint must be True, False or None, got {checkpoint!r}")
        if isinstance(particles, ParameterBeam):
            from beamtrack.lattice.optics import track_parameter_beam

            return track_parameter_beam(self, particles)
        check_particles(particles, f"Beamline {self._name!r}")
        if self._traced_by_jax(particles):
            # Under a JAX transformation: one lax.scan over the elements with a
            # lax.switch over element signatures, so compile time scales with the
            # number of element kinds, not elements.
            from beamtrack.backends.jax_scan import scan_track

            self.plan(method)  # validates the method
            return scan_track(self, particles, method, checkpoint=checkpoint)
        plan = self.plan(method)
        if checkpoint is not False and backend_of(particles.coords).name == "torch":
            from beamtrack.backends import checkpointing as ck

            if (ck.wanted(checkpoint, particles, len(plan)) and ck.torch_records_graph(
                    particles, ck.grad_tensors([e for e, _ in plan]))):
                runs, tensors = ck.checkpointed_plan_segments(
                    plan, ck.segment_length(plan))
                return ck.track_segments(particles, runs, tensors)
        for element, element_method in plan:
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
            ``{"qf.k1": value, ...}`` in tracking order, one entry per definition (an
            element that occurs several times is one parameter); values as stored
            (numbers or arrays, sequences such as ``knl`` as tuples).
        """
        import fnmatch

        out = {}
        seen: set[str] = set()
        for element in self:
            if element.name in seen:
                continue
            seen.add(element.name)
            for key, value in element.arrays().items():
                name = f"{element.name}.{key}"
                if pattern is None or fnmatch.fnmatchcase(name, pattern):
                    out[name] = value
        return out

    def with_parameters(self, values: dict[str, Any]) -> Beamline:
        """A new beamline with the given ``"element.parameter"`` values replaced.

        Values may be numbers or arrays (with batch dimensions); a value replaces the
        parameter at every occurrence of the element. Unknown elements or parameters
        raise ``KeyError`` / ``UnknownParameterError``.
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
        p0c: Any = None,
        mc2: Any = None,
        backend: str | None = None,
        method: str | None = None,
    ) -> Beamline:
        """This line with every run of consecutive ``"linear"`` elements fused into one map.

        See :func:`beamtrack.lattice.optics.merged` (valid for a fixed reference
        ``p0c``, ``mc2``, by default the line's :attr:`reference`; observing, limiting
        and energy-changing elements stay in place).
        """
        from beamtrack.lattice.optics import merged

        return merged(self, p0c=p0c, mc2=mc2, backend=backend, method=method)

    def with_space_charge(self, every: float, *, prefix: str = "sc_",
                          **kick: Any) -> Beamline:
        """This line with :class:`~beamtrack.lattice.elements.SpaceCharge` kicks
        interleaved: each element cut into slices of at most ``every`` [m] with a kick
        in the middle of each (split-step, second order); see
        :func:`~beamtrack.lattice.space_charge_lines.with_space_charge`.

        Parameters
        ----------
        every
            Longest slice between two kicks [m].
        prefix
            Kicks are named ``prefix + element name``.
        **kick
            Parameters of the kicks (``grid_shape``, ``grid_extent_x``, ...,
            ``grid_sigmas``).
        """
        from beamtrack.lattice.space_charge_lines import with_space_charge

        return with_space_charge(self, every, prefix=prefix, **kick)

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
        self, particles: Particles | ParameterBeam, method: str | None = None
    ) -> Iterator[tuple[Element, Any]]:
        """Track element by element, yielding ``(element, particles after it)``.

        A :class:`~beamtrack.tracking.parameter_beam.ParameterBeam` is tracked with the
        first-order maps whatever the method (as in :meth:`track`); an element without
        one (:class:`~beamtrack.lattice.custom.Custom`) raises
        :class:`~beamtrack.tracking.errors.ParameterError`.
        """
        if isinstance(particles, ParameterBeam):
            yield from self._track_each_moments(particles)
            return
        for element, element_method in self.plan(method):
            particles = element.track(particles, element_method)
            yield element, particles

    def _track_each_moments(self, beam: ParameterBeam) -> Iterator[tuple[Element, Any]]:
        from beamtrack.lattice.optics import element_maps

        s_before: Any = 0.0
        for element, r, c, probe in element_maps(self, beam.p0c, beam.mc2,
                                                 backend_of(beam.mean).name):
            beam = beam.transformed(r, c, probe.s - s_before, p0c=probe.p0c)
            s_before = probe.s
            yield element, beam

    def _observe_moments(self, beam: ParameterBeam) -> Observation:
        """:meth:`observe` for a moment beam: readings, images and the transmission."""
        xp = beam.xp
        weight = xp.ones_like(beam.mean[..., 0])
        readings: dict[str, Any] = {}
        images: dict[str, Any] = {}
        spans = self._spans()
        names = []
        for index, (element, beam) in enumerate(self._track_each_moments(beam)):  # noqa: B020
            names.append(element.name)
            passed = element.transmission(beam)
            if passed is not None:
                weight = weight * passed
            seen = element.observe(beam)
            if seen is not None:
                key = _occurrence_name(element.name, index, spans)
                (images if isinstance(element, Screen) else readings)[key] = seen
        return Observation(particles=beam, lost_at=None, weight=weight, readings=readings,
                           images=images, names=tuple(names), spans=spans)

    def observe(self, particles: Particles | ParameterBeam,
                method: str | None = None) -> Observation:
        """Track through the beamline and record what happens on the way, in one pass.

        Collects the reading of every :class:`~beamtrack.lattice.elements.Monitor`,
        the image of every :class:`~beamtrack.lattice.elements.Screen`, the element
        where each particle is lost, and a differentiable survival weight. The
        particles at the end are exactly those of :meth:`track` (which stays free of
        this bookkeeping). Works on every backend, with batch dimensions, and inside
        ``jax.jit`` (the result is a pytree; no Python control flow on array values).

        A moment beam (:class:`~beamtrack.tracking.parameter_beam.ParameterBeam`) is
        observed too (first-order maps, as in :meth:`track`): a monitor reads its
        centroid, a screen shows its Gaussian integrated over each pixel (normalised to
        probabilities, differentiable), and ``weight`` is the product of the apertures'
        approximate transmissions, shape ``(*batch)``
        (:mod:`~beamtrack.tracking.moment_diagnostics`); ``lost_at`` is ``None``.

        Parameters
        ----------
        particles
            Incoming particles, any backend, or a ``ParameterBeam``.
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
        if isinstance(particles, ParameterBeam):
            self.plan(method)  # validates the method
            return self._observe_moments(particles)
        check_particles(particles, f"Beamline {self._name!r}")
        plan = self.plan(method)
        xp = particles.xp
        lost_at = xp.full_like(particles.alive, -1, dtype=xp.int32)
        lost_reason = xp.zeros_like(lost_at)
        weight = xp.astype(particles.alive, particles.dtype)
        readings: dict[str, Any] = {}
        images: dict[str, Any] = {}
        spans = self._spans()
        for index, (element, element_method) in enumerate(plan):
            factor = element.survival_factor(particles)
            before = particles.alive
            entry = before & ~losses.finite(particles.coords)
            with losses.collecting() as found:
                particles = element.track(particles, element_method)
            lost_here = before & ~particles.alive
            lost_at = xp.where(lost_here, xp.full_like(lost_at, index), lost_at)
            reason = _reason(xp, lost_here, entry, found,
                             LossReason.APERTURE if factor is not None else LossReason.OTHER)
            lost_reason = xp.where(lost_here, reason, lost_reason)
            if factor is None:
                weight = xp.where(lost_here, xp.zeros_like(weight), weight)
            else:
                weight = xp.where(before, weight * factor, weight)
            seen = element.observe(particles)
            if seen is not None:
                key = _occurrence_name(element.name, index, spans)
                (images if isinstance(element, Screen) else readings)[key] = seen
        return Observation(
            particles=particles,
            lost_at=lost_at,
            lost_reason=lost_reason,
            weight=weight,
            readings=readings,
            images=images,
            names=tuple(element.name for element, _ in plan),
            spans=spans,
        )

    def _spans(self) -> dict[str, list[tuple[int, int]]]:
        """``{name: [(first, stop), ...]}``: the tracking-order index range of every
        occurrence of every element and nested line (and of the line itself)."""
        spans: dict[str, list[tuple[int, int]]] = {}

        def walk(line: Beamline, start: int) -> int:
            position = start
            for item in line._items:
                if isinstance(item, Beamline):
                    stop = walk(item, position)
                else:
                    stop = position + 1
                spans.setdefault(item.name, []).append((position, stop))
                position = stop
            return position

        spans[self._name] = [(0, walk(self, 0))]
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
        return (self._name, self._method, self._reference) == (
            other._name, other._method, other._reference) and len(
            self._items
        ) == len(other._items) and all(a is b or a == b for a, b in zip(self._items, other._items))

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
        return Beamline(item._items, item._name, params.get("method", item._method),
                        item._reference)
    return item.replace(**params)


def _renamed(item: Item, name: str) -> Item:
    """``item`` under another name."""
    if isinstance(item, Beamline):
        return Beamline(item._items, name, item._method, item._reference)
    return dataclasses.replace(item, name=name)


def _occurrence_name(name: str, position: int, spans: dict[str, list[tuple[int, int]]]) -> str:
    """``name`` if it occurs once, else ``"<name>#<k>"`` for the occurrence starting at
    ``position`` (``k`` counted from 1)."""
    starts = [first for first, _ in spans[name]]
    return name if len(starts) == 1 else f"{name}#{starts.index(position) + 1}"


def _same_definition(a: Item, b: Item) -> bool:
    """Whether two items under one name are the same definition (identity first; an
    equality that cannot be decided, such as on traced values, counts as different)."""
    if a is b:
        return True
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:  # noqa: BLE001 - e.g. a JAX tracer cannot be compared eagerly
        return False


def _build_index(name: str, items: tuple[Item, ...]) -> dict[str, tuple[tuple[int, ...], ...]]:
    """``{name: (path, ...)}`` for every occurrence of every element and nested line.

    Raises
    ------
    LatticeError
        Two different definitions share a name, or an entry has the line's own name.
    """
    index: dict[str, list[tuple[int, ...]]] = {}
    first: dict[str, Item] = {}
    for position, item in enumerate(items):
        entries: list[tuple[str, Item, tuple[tuple[int, ...], ...]]] = [
            (item.name, item, ((position,),))]
        if isinstance(item, Beamline):
            entries += [(n, item._at(paths[0]), tuple((position, *p) for p in paths))
                        for n, paths in item._index.items()]
        for entry_name, entry, paths in entries:
            if entry_name == name:
                raise LatticeError(f"Beamline {name!r}: an entry has the beamline's own name "
                                   f"{name!r}")
            if entry_name in first:
                if not _same_definition(first[entry_name], entry):
                    raise LatticeError(
                        f"Beamline {name!r}: two different definitions named {entry_name!r}: "
                        f"{_describe(first[entry_name])} and {_describe(entry)}; a name means "
                        "one definition (rename one, or use replace_at)")
            else:
                first[entry_name] = entry
            index.setdefault(entry_name, []).extend(paths)
    return {k: tuple(v) for k, v in index.items()}


def _describe(item: Item) -> str:
    return repr(item) if isinstance(item, Beamline) else _short(repr(item))


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _flatten_line(line: Beamline) -> tuple[tuple[Any, ...], Any]:
    return line._items, (line._name, line._method, tuple(line._index.items()), line._reference)


def _unflatten_line(aux: Any, items: Any) -> Beamline:
    name, method, index, reference = aux
    line = object.__new__(Beamline)
    object.__setattr__(line, "_items", tuple(items))
    object.__setattr__(line, "_name", name)
    object.__setattr__(line, "_method", method)
    object.__setattr__(line, "_index", dict(index))
    object.__setattr__(line, "_reference", reference)
    return line


register_pytree(Beamline, _flatten_line, _unflatten_line)


def _reason(xp: Any, lost: Any, entry: Any, found: list[tuple[Any, Any]],
            default: LossReason) -> Any:
    """Loss codes of the particles ``lost`` in one element: non-finite on entry first,
    then the first loss the element reported for each particle, else ``default``
    (apertures, and elements that report nothing)."""
    reason = xp.where(entry, xp.full_like(lost, int(LossReason.NON_FINITE_ENTRY),
                                          dtype=xp.int32),
                      xp.zeros_like(lost, dtype=xp.int32))
    for mask, code in found:
        if not hasattr(code, "shape"):
            code = xp.full_like(lost, int(code), dtype=xp.int32)
        reason = xp.where(mask & (reason == 0), code, reason)
    return xp.where(reason == 0, xp.full_like(reason, int(default)), reason)


class Observation:
    """What :meth:`Beamline.observe` saw: final particles, losses, readings and images.

    Attributes
    ----------
    particles
        Particles at the end of the beamline (the same as :meth:`Beamline.track`), or
        the :class:`~beamtrack.tracking.parameter_beam.ParameterBeam` there.
    lost_at
        Integer array (int32) of shape ``(*batch, n)``: for each particle, the index in
        ``names`` (``Beamline.names()``) of the element where it was lost, or ``-1`` if
        it was not lost in this beamline (survivors, and particles already lost when
        they entered). ``None`` for a moment beam.
    lost_reason
        Integer array (int32) like ``lost_at``: why each particle was lost there, a
        :class:`~beamtrack.tracking.losses.LossReason` code (0: not lost in this
        beamline; 1 aperture, 2 unphysical momentum, 3 below rest energy, 4 overflow or
        another non-finite result, 5 non-finite coordinates on entry, 6 other; the
        table of the "Failure modes" page). ``None`` for a moment beam.
    weight
        Float array ``(*batch, n)``: a differentiable survival weight. It starts as the
        incoming ``alive`` flags; every aperture multiplies in its smooth survival
        factor (:func:`~beamtrack.tracking.aperture.aperture_factor`, width ``smooth``)
        for the particles that reach it alive, and a loss at any other element (an
        unphysical momentum) sets it to 0. With ``smooth = 0`` everywhere it equals the
        final ``alive`` flags as 0/1; with ``smooth > 0``, ``sum(weight)`` is a smooth
        stand-in for the transmission whose gradient reaches upstream magnets. For a
        moment beam, shape ``(*batch)``: the product of the apertures' approximate
        transmissions.
    readings
        ``{monitor name: reading (*batch, 2)}`` (x, y) [m] after the monitor. A
        monitor that occurs several times has one reading per occurrence, keyed
        ``"<name>#<k>"`` (``k`` from 1, as :meth:`Beamline.replace_at` names them).
    images
        ``{screen name: image (*batch, ny, nx)}``, keyed like ``readings``.
    names
        Element names in tracking order.

    Notes
    -----
    Registered as a JAX pytree, so a jitted function can return it.
    """

    __slots__ = ("particles", "lost_at", "lost_reason", "weight", "readings", "images",
                 "names", "_spans")

    def __init__(
        self,
        *,
        particles: Particles | ParameterBeam,
        lost_at: Any,
        weight: Any,
        readings: dict[str, Any],
        images: dict[str, Any],
        names: tuple[str, ...],
        spans: dict[str, list[tuple[int, int]]],
        lost_reason: Any = None,
    ) -> None:
        if lost_reason is None and lost_at is not None:  # None: a moment beam
            lost_reason = backend_of(lost_at).namespace().zeros_like(lost_at)
        for key, value in (("particles", particles), ("lost_at", lost_at),
                           ("lost_reason", lost_reason), ("weight", weight),
                           ("readings", readings), ("images", images), ("names", names),
                           ("_spans", spans)):
            object.__setattr__(self, key, value)

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("Observation is immutable")

    def index(self, name: str) -> int:
        """Index of the element ``name`` in ``names`` (the value ``lost_at`` uses)."""
        spans = self._span(name)
        first, stop = spans[0]
        if stop != first + 1 or self.names[first] != name:
            raise KeyError(f"{name!r} is a beamline, not an element; use lost_in({name!r})")
        if len(spans) > 1:
            raise KeyError(f"element {name!r} occurs {len(spans)} times, at "
                           f"{[a for a, _ in spans]}; use lost_in({name!r}) for all of them")
        return first

    def _span(self, name: str) -> list[tuple[int, int]]:
        if name not in self._spans:
            raise KeyError(f"no element or beamline named {name!r} was observed")
        return self._spans[name]

    def _need_particles(self, what: str) -> None:
        if self.lost_at is None:
            raise ParameterError(f"Observation.{what}: a ParameterBeam loses no particles; "
                                 "its transmission is the observation's weight")

    def lost_in(self, name: str) -> Any:
        """Number of particles lost in element ``name`` (or anywhere in the nested
        beamline ``name``), over all its occurrences, per batch entry: an integer array
        of shape ``(*batch)``."""
        self._need_particles("lost_in")
        xp = self.particles.xp
        inside = None
        for first, stop in self._span(name):
            here = (self.lost_at >= first) & (self.lost_at < stop)
            inside = here if inside is None else inside | here
        return xp.sum(xp.astype(inside, self.lost_at.dtype), axis=-1)

    def loss_summary(self) -> dict[str, int]:
        """``{element name: particles lost there}`` for the elements that lost any,
        summed over batch entries (Python integers; not for use inside ``jax.jit``)."""
        self._need_particles("loss_summary")
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
    children = (obs.particles, obs.lost_at, obs.lost_reason, obs.weight,
                tuple(obs.readings[k] for k in reading_names),
                tuple(obs.images[k] for k in image_names))
    aux = (reading_names, image_names, obs.names,
           tuple((k, tuple(v)) for k, v in obs._spans.items()))
    return children, aux


def _unflatten_observation(aux: Any, children: Sequence[Any]) -> Observation:
    reading_names, image_names, names, spans = aux
    particles, lost_at, lost_reason, weight, readings, images = children
    return Observation(particles=particles, lost_at=lost_at, lost_reason=lost_reason,
                       weight=weight,
                       readings=dict(zip(reading_names, readings)),
                       images=dict(zip(image_names, images)), names=names,
                       spans={k: list(v) for k, v in spans})


register_pytree(Observation, _flatten_observation, _unflatten_observation)
