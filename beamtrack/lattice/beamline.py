"""The :class:`Beamline`: an ordered, named sequence of elements and nested beamlines."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Union

from beamtrack.lattice.elements import Element
from beamtrack.lattice.errors import LatticeError
from beamtrack.tracking.errors import ParameterError
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
        Default tracking method of the elements (``"bmad"`` or ``"linear"``).
        An element's own ``method`` takes precedence.

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
        items = tuple(items)
        if not isinstance(name, str) or not name:
            raise LatticeError(f"Beamline: name must be a non-empty string, got {name!r}")
        if method not in METHODS:
            raise ParameterError(
                f"Beamline {name!r}: parameter 'method' must be one of {', '.join(METHODS)}, "
                f"got {method!r}"
            )
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
        """Total length [m] (an array if any element length is an array)."""
        total: Any = 0.0
        for element in self:
            total = total + element.length
        return total

    def replace(self, name: str, **params: Any) -> Beamline:
        """A new beamline with parameters of the element ``name`` replaced.

        For a nested beamline ``name``, ``method`` may be replaced.
        """
        if name not in self._index:
            raise KeyError(f"Beamline {self._name!r} has no element or beamline named {name!r}")
        return self._replace_path(self._index[name], params)

    def _replace_path(self, path: Sequence[int], params: dict[str, Any]) -> Beamline:
        items = list(self._items)
        head, rest = path[0], path[1:]
        target = items[head]
        if rest:
            assert isinstance(target, Beamline)
            items[head] = target._replace_path(rest, params)
        elif isinstance(target, Beamline):
            unknown = set(params) - {"method"}
            if unknown:
                raise LatticeError(
                    f"Beamline {target.name!r}: only 'method' can be replaced, not "
                    f"{', '.join(sorted(unknown))}"
                )
            method = params.get("method", target._method)
            items[head] = Beamline(target._items, target._name, method)
        else:
            items[head] = target.replace(**params)
        return Beamline(items, self._name, self._method)

    # -- tracking ------------------------------------------------------------------------
    def _resolved(self, method: str | None) -> Iterator[tuple[Element, str]]:
        line_method = method or self._method
        for item in self._items:
            if isinstance(item, Beamline):
                yield from item._resolved(method or item._method)
            else:
                yield item, line_method

    def track(self, particles: Particles, method: str | None = None) -> Particles:
        """Track ``particles`` through the whole beamline.

        Parameters
        ----------
        particles
            Incoming particles, any backend.
        method
            Tracking method for elements that do not fix their own; the beamline's
            ``method`` when ``None``.
        """
        for element, element_method in self._plan(method):
            particles = element.track(particles, element_method)
        return particles

    def track_each(
        self, particles: Particles, method: str | None = None
    ) -> Iterator[tuple[Element, Particles]]:
        """Track element by element, yielding ``(element, particles after it)``."""
        for element, element_method in self._plan(method):
            particles = element.track(particles, element_method)
            yield element, particles

    def _plan(self, method: str | None) -> Iterator[tuple[Element, str]]:
        """Elements in tracking order with the method each one uses."""
        if method is not None and method not in METHODS:
            raise ParameterError(
                f"Beamline {self._name!r}: unknown tracking method {method!r}; "
                f"choose one of {', '.join(METHODS)}"
            )
        yield from self._resolved(method)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Beamline):
            return NotImplemented
        return (self._name, self._method) == (other._name, other._method) and len(
            self._items
        ) == len(other._items) and all(a == b for a, b in zip(self._items, other._items))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Beamline({self._name!r}, {len(self)} elements, method={self._method!r})"
