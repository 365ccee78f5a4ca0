"""Bmad superposition (``superimpose``, ``ref``, ``offset``, ``ref_origin``, ``ele_origin``).

Bmad places a superimposed element at a longitudinal position measured from a
reference element (Bmad manual, "Superposition"): the point ``ref_origin``
(``beginning``, ``center`` or ``end``, default ``center``) of every occurrence of the
element ``ref`` (the beginning of the line when there is no ``ref``), shifted by
``offset`` [m], is where the point ``ele_origin`` (default ``center``) of the new
element goes. Elements are superimposed in the order the file gives them; a
superimposed element may serve as the reference of a later one.

What beamtrack builds (always with ``s`` positions unchanged):

- A thick element over drifts: the drifts it covers are cut; the parts that remain are
  drifts named ``<drift>#1``, ``<drift>#2``, ... as in Bmad.
- A zero-length element inside a drift: the drift is cut in two at that point.
- A zero-length element inside a quadrupole, sextupole, octupole or solenoid (straight
  elements without edge fields, whose body maps compose exactly): the element is cut
  in two pieces ``<name>#1``, ``<name>#2`` with the same strengths and misalignments
  and ``num_steps`` shared in proportion to their lengths (rounded up). This is Bmad's
  super-lord with two slaves, flattened.
- A zero-length element at a boundary between elements goes there: directly before
  the reference element when placed at its beginning with ``offset = 0``, directly
  after it when placed at its end or centre of a zero-length reference, else after
  every element that ends at that point.

Everything else Bmad would turn into lord and slave elements (a thick element over a
non-drift, a zero-length element inside a bend, cavity, kicker, thick monitor, ...;
anything reaching outside the line, which Bmad wraps or extends) is refused with a
:class:`~beamtrack.lattice.errors.LatticeFileError` at the superposition.
Pieces of one drift or element that differ between its occurrences get the next free
``#k`` suffix, so that one name keeps meaning one definition.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable
from dataclasses import dataclass

from beamtrack.lattice.elements import Element
from beamtrack.lattice.io.statements import Statement

#: Positions closer than this are the same point [m] (Bmad's significant length is
#: 1e-10 m; real files add up thousands of lengths given to 12 digits).
TOLERANCE = 1e-9
#: Bmad classes whose elements may be cut in two by a zero-length element.
SPLITTABLE = frozenset({"quadrupole", "sextupole", "octupole", "solenoid", "pipe"})
#: Values of ``ref_origin`` and ``ele_origin`` -> fraction of the element's length.
ORIGINS = {"beginning": 0.0, "center": 0.5, "end": 1.0}


@dataclass
class Placement:
    """One superposition request, as read from the file.

    Attributes
    ----------
    name
        The superimposed element's definition name.
    ref
        The reference element's name (``None``: the beginning of the line). Bmad's
        wildcards ``*`` and ``%`` and an occurrence number ``name##k`` are accepted.
    offset
        Shift of the element from the reference point [m].
    ref_origin, ele_origin
        ``"beginning"``, ``"center"`` or ``"end"``.
    statement, at
        Where the superposition is written (for messages).
    """

    name: str
    ref: str | None
    offset: float
    ref_origin: str
    ele_origin: str
    statement: Statement
    at: int


@dataclass
class Slot:
    """A stretch ``[start, end]`` of the line [m] and the elements that fill it."""

    origin: str
    instance: int
    kind: str
    elements: list[Element]
    start: float
    end: float
    whole: Element | None = None      # the element this slot is a piece of
    pieces_of: tuple[str, int] | None = None


def _length(elements: list[Element]) -> float:
    return sum(float(e.path_length) for e in elements)


def line_slots(names: list[str], built: dict[str, list[Element]],
               kinds: dict[str, str]) -> list[Slot]:
    """The expanded line as slots (one per occurrence of a definition)."""
    slots = []
    s = 0.0
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
        length = _length(built[name])
        slots.append(Slot(name, counts[name], kinds[name], list(built[name]), s, s + length))
        s += length
    return slots


def apply(slots: list[Slot], placements: list[Placement],
          build: Callable[[str], tuple[str, list[Element]]],
          warn: Callable[[Placement, str], None]) -> list[Slot]:
    """Superimpose ``placements`` (in order) onto ``slots``.

    ``build(name)`` gives a definition's Bmad class and beamtrack elements.
    ``warn(placement, message)`` reports a reference missing from the line.
    """
    for placement in placements:
        if not math.isfinite(placement.offset):
            raise placement.statement.error(f"superposition of {placement.name!r}: offset is "
                                            f"{placement.offset}", placement.at)
        points = _reference_points(slots, placement, warn)
        if not points:
            continue
        kind, elements = build(placement.name)
        length = _length(elements)
        count = sum(1 for s in slots if s.origin == placement.name)
        for point, anchor in points:
            count += 1
            s1 = point + placement.offset - ORIGINS[placement.ele_origin] * length
            new = Slot(placement.name, count, kind, list(elements), s1, s1 + length)
            if length <= TOLERANCE:
                new.end = new.start
                slots = _insert_point(slots, new, placement, anchor)
            else:
                slots = _insert_thick(slots, new, placement)
    return slots


def _instances(slots: list[Slot]) -> dict[tuple[str, int], list[int]]:
    groups: dict[tuple[str, int], list[int]] = {}
    for i, slot in enumerate(slots):
        key = slot.pieces_of or (slot.origin, slot.instance)
        groups.setdefault(key, []).append(i)
    return groups


def _reference_points(slots: list[Slot], placement: Placement,
                      warn: Callable[[Placement, str], None]
                      ) -> list[tuple[float, tuple[str, int, str] | None]]:
    """The reference points [m], each with ``(origin, instance, side)`` of its element."""
    ref = placement.ref
    if ref is None or ref == "beginning":
        return [(0.0, None)]
    total = slots[-1].end if slots else 0.0
    if ref == "end":
        return [(total, None)]
    if "::" in ref:
        raise placement.statement.error(f"superposition of {placement.name!r}: ref = {ref!r} "
                                        "(a class-qualified reference) is not supported",
                                        placement.at)
    wanted = None
    if "##" in ref:
        ref, number = ref.split("##", 1)
        if not number.isdigit() or int(number) < 1:
            raise placement.statement.error(f"superposition of {placement.name!r}: "
                                            f"ref = {placement.ref!r}: bad occurrence number",
                                            placement.at)
        wanted = int(number)
    pattern = ref.replace("%", "?")
    points = []
    found: dict[str, int] = {}
    for (origin, instance), indices in _instances(slots).items():
        if not fnmatch.fnmatchcase(origin, pattern):
            continue
        found[origin] = found.get(origin, 0) + 1
        if wanted is not None and found[origin] != wanted:
            continue
        start, end = slots[indices[0]].start, slots[indices[-1]].end
        fraction = ORIGINS[placement.ref_origin]
        side = "after"
        if placement.offset == 0.0 and placement.ref_origin == "beginning":
            side = "before"
        points.append((start + fraction * (end - start), (origin, instance, side)))
    if not points:
        warn(placement, f"superposition of {placement.name!r}: no element {placement.ref!r} "
             "in the line; not superimposed")
    points.sort(key=lambda p: p[0])
    return points


def _check_inside(slots: list[Slot], new: Slot, placement: Placement) -> None:
    total = slots[-1].end if slots else 0.0
    if new.start < -TOLERANCE or new.end > total + TOLERANCE:
        raise placement.statement.error(
            f"superposition of {placement.name!r} at s = {new.start:.9g} .. {new.end:.9g} m "
            f"reaches outside the line (0 .. {total:.9g} m); Bmad would wrap it round a ring "
            "or extend the line, which beamtrack does not do", placement.at)


def _insert_point(slots: list[Slot], new: Slot, placement: Placement,
                  anchor: tuple[str, int, str] | None) -> list[Slot]:
    _check_inside(slots, new, placement)
    s = new.start
    if anchor is not None:
        indices = _instances(slots)[(anchor[0], anchor[1])]
        first, last = slots[indices[0]], slots[indices[-1]]
        if anchor[2] == "before" and abs(first.start - s) <= TOLERANCE:
            return slots[:indices[0]] + [new] + slots[indices[0]:]
        if abs(last.end - s) <= TOLERANCE:
            return slots[:indices[-1] + 1] + [new] + slots[indices[-1] + 1:]
    for i, slot in enumerate(slots):
        if slot.start < s - TOLERANCE and slot.end > s + TOLERANCE:
            left, right = _split(slot, s, placement)
            return slots[:i] + [left, new, right] + slots[i + 1:]
    index = 0
    for i, slot in enumerate(slots):
        if slot.end <= s + TOLERANCE:
            index = i + 1
    return slots[:index] + [new] + slots[index:]


def _insert_thick(slots: list[Slot], new: Slot, placement: Placement) -> list[Slot]:
    _check_inside(slots, new, placement)
    s1, s2 = max(new.start, 0.0), new.end
    covered = [i for i, slot in enumerate(slots)
               if slot.end > s1 + TOLERANCE and slot.start < s2 - TOLERANCE]
    for i in covered:
        slot = slots[i]
        if slot.end - slot.start <= TOLERANCE:
            raise placement.statement.error(
                f"superposition of {placement.name!r} covers the zero-length element "
                f"{slot.origin!r} at s = {slot.start:.9g} m; beamtrack superimposes thick "
                "elements on drifts only", placement.at)
        if slot.kind != "drift":
            raise placement.statement.error(
                f"superposition of {placement.name!r} (s = {s1:.9g} .. {s2:.9g} m) overlaps "
                f"{slot.origin!r} ({slot.kind}); Bmad makes lord and slave elements there, "
                "which beamtrack does not model: beamtrack superimposes thick elements on "
                "drifts only", placement.at)
    first, last = covered[0], covered[-1]
    middle: list[Slot] = []
    if slots[first].start < s1 - TOLERANCE:
        middle.append(_piece(slots[first], slots[first].start, s1))
    middle.append(new)
    if slots[last].end > s2 + TOLERANCE:
        middle.append(_piece(slots[last], s2, slots[last].end))
    return slots[:first] + middle + slots[last + 1:]


def _split(slot: Slot, s: float, placement: Placement) -> tuple[Slot, Slot]:
    if slot.kind != "drift" and (slot.kind not in SPLITTABLE or len(slot.elements) != 1):
        raise placement.statement.error(
            f"superposition of {placement.name!r} at s = {s:.9g} m falls inside "
            f"{slot.origin!r} ({slot.kind}); Bmad makes lord and slave elements there, which "
            "beamtrack does not model (it cuts drifts, quadrupoles, sextupoles, octupoles "
            "and solenoids only)", placement.at)
    return _piece(slot, slot.start, s), _piece(slot, s, slot.end)


def _piece(slot: Slot, start: float, end: float) -> Slot:
    whole = slot.whole or slot.elements[0]
    key = slot.pieces_of or (slot.origin, slot.instance)
    length = end - start
    if whole.kind == "Drift":
        element = whole.replace(length=length)
    else:
        steps = max(1, math.ceil(int(whole.num_steps) * length / float(whole.length) - 1e-9))
        element = whole.replace(length=length, num_steps=steps)
    return Slot(slot.origin, slot.instance, slot.kind, [element], start, end, whole, key)


def flatten(slots: list[Slot]) -> list[Element]:
    """The elements of ``slots`` in order, pieces named ``<name>#k`` (unique per value)."""
    pieces: dict[tuple[str, int], list[int]] = {}
    for i, slot in enumerate(slots):
        if slot.pieces_of is not None:
            pieces.setdefault(slot.pieces_of, []).append(i)
    taken: dict[str, Element] = {}
    for slot in slots:
        if slot.pieces_of is None:
            for element in slot.elements:
                taken.setdefault(element.name, element)
    out_elements: dict[int, Element] = {}
    for (origin, _), indices in pieces.items():
        for k, i in enumerate(indices, start=1):
            element = slots[i].elements[0]
            number = k
            while True:
                name = f"{origin}#{number}"
                candidate = element.replace(name=name)
                if name not in taken or taken[name] == candidate:
                    break
                number += 1
            taken[name] = candidate
            out_elements[i] = candidate
    out: list[Element] = []
    for i, slot in enumerate(slots):
        if i in out_elements:
            out.append(out_elements[i])
        else:
            out.extend(slot.elements)
    return out
