"""Building a beamline from what the MAD-X reader recorded.

:class:`Builder` expands the chosen sequence or line into beamtrack elements:
sequences place their entries with ``at``/``from`` and ``refer`` (sub-sequences with
``refpos``) and fill the gaps with drifts (gaps up to :data:`GAP_TOLERANCE` are left
out, overlaps up to :data:`OVERLAP_TOLERANCE` accepted, as MAD-X does); lines repeat
(``2*a``) and reflect (``-a``) their members. Each element name is converted once
(:func:`beamtrack.lattice.io.madx_elements.convert`) and shared by its placements;
the reference particle comes from ``beam``.
"""

from __future__ import annotations

import math
import re
import warnings

from beamtrack.lattice.beamline import Beamline
from beamtrack.lattice.elements import ELEMENT_KINDS, Element
from beamtrack.lattice.errors import LatticeError, LatticeFileError, LatticeFileWarning
from beamtrack.lattice.io.madx_beam import beam_reference
from beamtrack.lattice.io.madx_definitions import (
    MAX_NESTING,
    LineDef,
    SequenceDef,
    SequenceEntry,
    Value,
)
from beamtrack.lattice.io.madx_elements import convert
from beamtrack.lattice.io.madx_reader import Reader
from beamtrack.lattice.io.madx_statements import NAME, MadxStatement, split_top_text
from beamtrack.lattice.reference import Reference
from beamtrack.tracking.errors import ParameterError

#: Most elements a line may expand to.
MAX_ELEMENTS = 5_000_000
#: Overlap [m] between consecutive sequence elements still accepted (rounding).
OVERLAP_TOLERANCE = 1e-6
#: Gaps [m] up to this are not filled with a drift, as in MAD-X (which then shortens the
#: line by the gap; checked with cpymad 1.20, MAD-X 5.09).
GAP_TOLERANCE = 1e-6


class Builder:
    """Beamlines from the definitions of a :class:`~beamtrack.lattice.io.madx_reader.Reader`.

    Parameters
    ----------
    reader
        A reader that has read its input.
    ring
        The sequence or line whose length and beam an ``rfcavity``'s ``harmon`` refers
        to (the one being built).
    """

    def __init__(self, reader: Reader, ring: str | None):
        self.reader = reader
        self.ring = ring or ""

    def ring_length(self) -> float:
        """The ring's length, for ``harmon``: its sequence's ``l``."""
        sequence = self.reader.sequences.get(self.ring)
        if sequence is not None and "l" in sequence.attrs:
            return self.reader.number(sequence.attrs["l"], "sequence l")
        raise LatticeFileError("harmon needs the ring length (a sequence's l)")

    def ring_beta(self) -> float:
        """The speed of the ring's particles over ``c``, for ``harmon``."""
        reference = self.reference(self.ring)
        if reference is None:
            raise LatticeFileError("harmon needs a beam (for the particles' speed)")
        return reference.p0c / reference.e_tot

    def reference(self, target: str) -> Reference | None:
        """The reference particle of ``beam`` for ``target`` (else the ``beam`` without
        ``sequence=``), or ``None`` without one."""
        key = target if target in self.reader.beams else None
        if key not in self.reader.beams:
            return None
        args = self.reader.beams[key]
        file, line, column = self.reader.beam_location[key]
        try:
            return beam_reference(args, self.reader.number)
        except (ParameterError, ValueError, TypeError, OverflowError, ZeroDivisionError) as exc:
            if isinstance(exc, LatticeFileError):
                raise
            raise LatticeFileError(f"beam: {exc}", file=file, line=line, column=column) from None

    def build(self, target: str | None) -> Beamline:
        """The beamline of sequence or line ``target`` (default: the one ``use`` named,
        else the last one defined)."""
        reader = self.reader
        if target is None:
            target = reader.used
        if target is None:
            if not reader.order:
                raise LatticeFileError("the file defines no sequence or line", file=reader.source)
            target = reader.order[-1]
        target = target.lower()
        if target not in reader.sequences and target not in reader.lines:
            raise LatticeFileError(f"no sequence or line named {target!r}; defined: "
                                   f"{', '.join(reader.order) or 'none'}", file=reader.source)
        current = reader.current
        if current is not None:
            raise LatticeFileError(f"sequence {current.name!r} has no endsequence",
                                   file=current.file, line=current.line, column=current.column)
        self.built: dict[str, Element] = {}
        self.drifts: dict[float, Element] = {}
        self.drift_names = set(reader.elements) | set(reader.sequences) | set(reader.lines)
        items = self.expand(target, 0)
        reference = self.reference(target)
        try:
            return Beamline(items, name=target, reference=reference)
        except (LatticeError, ParameterError, ValueError, TypeError) as exc:
            raise LatticeFileError(f"cannot build {target!r}: {exc}",
                                   file=reader.source) from None

    def expand(self, name: str, depth: int) -> list[Element]:
        if depth > MAX_NESTING:
            raise LatticeFileError(f"lines and sequences nested deeper than {MAX_NESTING} "
                                   f"(or {name!r} contains itself)", file=self.reader.source)
        if name in self.reader.sequences:
            return self.expand_sequence(self.reader.sequences[name], depth)
        if name in self.reader.lines:
            return self.expand_line(self.reader.lines[name], depth)
        return [self.element(name)]

    def expand_line(self, definition: LineDef, depth: int) -> list[Element]:
        file, line, column = definition.offset
        statement = MadxStatement(definition.body, file, line, column)
        out = self._line_items(statement, 0, len(definition.body), depth, 0)
        return out

    def _line_items(self, statement: MadxStatement, start: int, end: int, depth: int,
                    nest: int) -> list[Element]:
        if nest > MAX_NESTING:
            raise statement.error("line nested too deeply", start)
        out: list[Element] = []
        text = statement.text[:end]
        for piece, offset in split_top_text(text, start):
            match = re.fullmatch(r"\s*(-)?\s*(?:([0-9]+)\s*\*\s*)?(-)?\s*(?:(" + NAME
                                 + r")|\((.*)\))\s*", piece, re.S)
            if match is None:
                raise statement.error(f"cannot read line item {piece.strip()!r}", offset)
            minus1, count, minus2, name, inner = match.groups()
            if name is not None:
                if name not in self.reader.elements and name not in self.reader.lines \
                        and name not in self.reader.sequences:
                    raise statement.error(f"unknown element or line {name!r}",
                                          offset + match.start(4))
                items = self.expand(name, depth + 1)
            else:
                inner_start = offset + match.start(5)
                items = self._line_items(statement, inner_start, offset + match.end(5),
                                         depth, nest + 1)
            if (minus1 is not None) != (minus2 is not None):
                items = items[::-1]
            repeat = int(count) if count is not None else 1
            if len(items) * repeat + len(out) > MAX_ELEMENTS:
                raise statement.error(f"line expands to more than {MAX_ELEMENTS} elements",
                                      offset)
            out.extend(items * repeat)
        return out

    def expand_sequence(self, sequence: SequenceDef, depth: int) -> list[Element]:
        def located(value: Value | None, what: str, entry: SequenceEntry | None) -> float:
            if value is None:
                return 0.0
            try:
                return self.reader.number(value, what)
            except LatticeFileError as exc:
                if exc.line is None and entry is not None:
                    raise LatticeFileError(exc.message, file=entry.file, line=entry.line,
                                           column=entry.column) from None
                raise

        length = located(sequence.attrs.get("l"), f"sequence {sequence.name!r} l", None)
        refer_value = sequence.attrs.get("refer")
        refer = refer_value.payload if refer_value is not None else "centre"
        if refer == "center":
            refer = "centre"
        if refer not in ("centre", "entry", "exit"):
            raise LatticeFileError(f"sequence {sequence.name!r}: refer must be entry, centre "
                                   f"or exit, got {refer!r}", file=sequence.file,
                                   line=sequence.line, column=sequence.column)
        shift = {"centre": 0.0, "entry": 0.5, "exit": -0.5}[refer]
        positions: dict[str, float] = {}
        placed: list[tuple[float, float, SequenceEntry, list[Element]]] = []
        for entry in sequence.entries:
            at = located(entry.at, f"{entry.name!r} at", entry)
            if entry.origin is not None:
                if entry.origin not in positions:
                    raise LatticeFileError(f"{entry.name!r}: from={entry.origin!r} names no "
                                           "element placed before it in this sequence",
                                           file=entry.file, line=entry.line, column=entry.column)
                at += positions[entry.origin]
            positions.setdefault(entry.name, at)
            if entry.name in self.reader.sequences:
                sub = self.reader.sequences[entry.name]
                sub_length = located(sub.attrs.get("l"), f"sequence {sub.name!r} l", entry)
                refpos = sub.attrs.get("refpos")
                items = self.expand(entry.name, depth + 1)
                if refpos is not None and refpos.kind == "word":
                    start = at - self._refpos(sub, refpos.payload, entry)
                else:  # the outer sequence's refer places the sub-sequence
                    start = at + (shift - 0.5) * sub_length
                placed.append((start, start + sub_length, entry, items))
                continue
            element = self.element(entry.name, entry)
            body = self.madx_length(entry.name)
            start = at + (shift - 0.5) * body
            placed.append((start, start + body, entry, [element]))
        out: list[Element] = []
        end = 0.0
        previous: SequenceEntry | None = None
        for start, stop, entry, items in placed:
            gap = start - end
            if gap < -OVERLAP_TOLERANCE:
                before = f"{previous.name!r} (ends at s = {end:.9g} m)" if previous else \
                    "the sequence start"
                raise LatticeFileError(
                    f"sequence {sequence.name!r}: {entry.name!r} (starts at s = {start:.9g} m) "
                    f"overlaps {before} by {-gap:.3g} m (negative drift)",
                    file=entry.file, line=entry.line, column=entry.column)
            if gap > GAP_TOLERANCE:
                out.append(self.drift(gap))
            out.extend(items)
            end = max(end, stop)
            previous = entry
        gap = length - end
        if gap < -OVERLAP_TOLERANCE:
            raise LatticeFileError(
                f"sequence {sequence.name!r}: its last element {previous.name!r} ends at "
                f"s = {end:.9g} m, beyond its length l = {length:.9g} m",
                file=sequence.file, line=sequence.line, column=sequence.column)
        if gap > GAP_TOLERANCE:
            out.append(self.drift(gap))
        if len(out) > MAX_ELEMENTS:
            raise LatticeFileError(f"sequence {sequence.name!r} expands to more than "
                                   f"{MAX_ELEMENTS} elements", file=sequence.file,
                                   line=sequence.line)
        return out

    def _refpos(self, sub: SequenceDef, name: str, entry: SequenceEntry) -> float:
        """Distance from the start of ``sub`` to the centre of its element ``name``."""
        s = 0.0
        for element in self.expand_sequence(sub, 0):
            length = float(getattr(element, "path_length", element.length)) \
                if hasattr(element, "length") else 0.0
            if element.name == name:
                return s + 0.5 * length
            s += length
        raise LatticeFileError(f"refpos={name!r} is not in sequence {sub.name!r}",
                               file=entry.file, line=entry.line, column=entry.column)

    def drift(self, length: float) -> Element:
        element = self.drifts.get(length)
        if element is None:
            index = len(self.drifts)
            name = f"drift_{index}"
            while name in self.drift_names:
                index += 1
                name = f"drift_{index}"
            self.drift_names.add(name)
            element = ELEMENT_KINDS["Drift"](name, length=length)
            self.drifts[length] = element
        return element

    def madx_length(self, name: str) -> float:
        """The length MAD-X gives ``name`` in a sequence (an rbend's arc with rbarc)."""
        value = self.reader.lookup_attr(name, "l")
        length = self.reader.number(value, f"{name!r} l") if value is not None else 0.0
        if self.reader.base_class(name) == "rbend" and self.reader.rbarc:
            angle_value = self.reader.lookup_attr(name, "angle")
            angle = self.reader.number(angle_value, f"{name!r} angle") if angle_value else 0.0
            if angle != 0 and length != 0:
                length = length * (0.5 * angle) / math.sin(0.5 * angle)
        return length

    def element(self, name: str, entry: SequenceEntry | None = None) -> Element:
        cached = self.built.get(name)
        if cached is not None:
            return cached
        definition = self.reader.elements.get(name)
        if definition is None:
            raise LatticeFileError(f"unknown element {name!r}", file=self.reader.source,
                                   line=entry.line if entry else None,
                                   column=entry.column if entry else None)
        cls = self.reader.base_class(name)
        where = {"file": definition.file, "line": definition.line, "column": definition.column}
        lookup_attr, number = self.reader.lookup_attr, self.reader.number

        def get(attr: str, default: float = 0.0) -> float:
            value = lookup_attr(name, attr)
            if value is None:
                return default
            try:
                return number(value, f"{name}->{attr}")
            except LatticeFileError as exc:
                if exc.line is None:
                    raise LatticeFileError(exc.message, **where) from None
                raise

        def has(attr: str) -> bool:
            return lookup_attr(name, attr) is not None

        def array(attr: str) -> list[float]:
            value = lookup_attr(name, attr)
            if value is None:
                return []
            if value.kind != "array":
                return [number(value, f"{name}->{attr}")]
            return [number(v, f"{name}->{attr}") for v in value.payload]

        def word(attr: str, default: str) -> str:
            value = lookup_attr(name, attr)
            if value is None:
                return default
            return value.payload.lower() if value.kind == "word" else default

        try:
            kind, params = convert(cls, name, get, has, array, word, self.reader.rbarc,
                                    self.ring_length, self.ring_beta)
            element = ELEMENT_KINDS[kind](name, **params)
        except LatticeFileError as exc:
            if exc.line is None:
                raise LatticeFileError(exc.message, **where) from None
            raise
        except (ParameterError, LatticeError, ValueError, TypeError, OverflowError,
                ZeroDivisionError, NotImplementedError) as exc:
            raise LatticeFileError(f"element {name!r} ({cls}): {exc}", **where) from None
        if cls == "solenoid":
            self._warn_frozen_ks(name)
        self.built[name] = element
        return element

    def _warn_frozen_ks(self, name: str) -> None:
        """Warn where a solenoid's ``ks`` frozen at definition differs from the value
        its ``:=`` expression has at the end of the input."""
        holder, seen = name, 0
        while holder in self.reader.elements and seen < MAX_NESTING:
            if "ks" in self.reader.elements[holder].attrs:
                break
            holder = self.reader.elements[holder].parent or ""
            seen += 1
        if holder not in self.reader.frozen_ks:
            return
        deferred, frozen = self.reader.frozen_ks[holder]
        if self.reader.elements[holder].attrs["ks"] is not frozen:
            return  # changed later by an attribute statement
        final = self.reader.number(deferred, f"{holder}->ks")
        if final != frozen.payload:
            warnings.warn(f"{self.reader.source}: solenoid {name!r}: ks := ... is evaluated when "
                          f"{holder!r} is defined (ks = {frozen.payload:g}), as MAD-X does "
                          "for thick "
                          f"solenoids; at the end of the input it would be {final:g}",
                          LatticeFileWarning, stacklevel=3)


__all__ = ["GAP_TOLERANCE", "MAX_ELEMENTS", "OVERLAP_TOLERANCE", "Builder"]
