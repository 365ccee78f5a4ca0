"""The MAD-X writer: a beamline as MAD-X text.

It writes a ``beam`` (from the beamline's reference), one definition per element name
and one ``sequence`` with ``refer=entry``; nested lines are flattened and drifts become
gaps between placements. Elements MAD-X cannot represent (misalignments, bend rolls,
tilted solenoids, ...) are refused with a :class:`LatticeFileError` naming them.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from typing import Any

from beamtrack.lattice.beamline import Beamline
from beamtrack.lattice.elements import Element
from beamtrack.lattice.errors import LatticeFileError, LatticeFileWarning
from beamtrack.lattice.io.madx_beam import beam_statement
from beamtrack.lattice.io.madx_elements import phi0_to_lag


def _number(value: Any, what: str) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise LatticeFileError(f"{what}: only numbers can be written to MAD-X, got "
                               f"{type(value).__name__}") from None
    if not math.isfinite(number):
        raise LatticeFileError(f"{what}: {number} cannot be written")
    return repr(number)


def _definition(element: Element) -> tuple[str, float]:
    """MAD-X definition of one element and the length it occupies in a sequence."""
    kind = element.kind
    name = element.name
    p = element.parameters() if hasattr(element, "parameters") else {}

    def value(key: str) -> Any:
        return getattr(element, key)

    def num(key: str) -> str:
        return _number(value(key), f"{kind} {name!r}: {key}")

    def zero(key: str) -> bool:
        try:
            return float(value(key)) == 0.0
        except (TypeError, ValueError):
            return False

    del p
    for offset in ("x_offset", "y_offset"):
        if hasattr(element, offset) and not zero(offset):
            raise LatticeFileError(f"{kind} {name!r}: {offset} (a misalignment) cannot be "
                                   "written in a MAD-X element definition")
    length = float(value("length")) if hasattr(element, "length") else 0.0
    parts: list[str]
    if kind == "Quadrupole":
        parts = ["quadrupole", f"l={num('length')}", f"k1={num('k1')}", f"tilt={num('tilt')}"]
    elif kind in ("Sextupole", "Octupole"):
        k = "k2" if kind == "Sextupole" else "k3"
        parts = [kind.lower(), f"l={num('length')}", f"{k}={num(k)}", f"tilt={num('tilt')}"]
    elif kind in ("SBend", "RBend"):
        if not zero("tilt"):
            raise LatticeFileError(f"{kind} {name!r}: tilt (a roll of the magnet about its "
                                   "chord) has no MAD-X attribute; MAD-X's tilt is ref_tilt")
        extra = []
        if "dg" in element.declaration() and not zero("dg"):
            # MAD-X's k0 is the field; the reader takes dg = k0 - angle/arc back
            arc = float(value("length")) if kind == "SBend" else float(element.path_length)
            if arc == 0:
                raise LatticeFileError(f"{kind} {name!r}: dg of a zero-length bend")
            extra.append(f"k0={_number(float(value('angle')) / arc + float(value('dg')), name)}")
        if value("fringe_type") != "linear_edge":
            warnings.warn(f"{kind} {name!r}: fringe_type {value('fringe_type')!r} is written "
                          "as MAD-X's default linear edge model", LatticeFileWarning,
                          stacklevel=3)
        parts = [kind.lower(), f"l={num('length')}", f"angle={num('angle')}",
                 f"k1={num('k1')}", f"e1={num('e1')}", f"e2={num('e2')}",
                 f"fint={num('fint')}", f"hgap={num('hgap')}", f"tilt={num('ref_tilt')}",
                 *extra]
        if value("fint_exit") is not None:
            parts.append(f"fintx={num('fint_exit')}")
        if value("hgap_exit") is not None and float(value("hgap_exit")) != float(value("hgap")):
            raise LatticeFileError(f"{kind} {name!r}: MAD-X has one hgap for both edges")
        if kind == "RBend":
            length = float(element.path_length)
    elif kind == "Multipole":
        knl = ", ".join(_number(v, f"{name!r} knl") for v in value("knl"))
        ksl = ", ".join(_number(v, f"{name!r} ksl") for v in value("ksl"))
        parts = ["multipole", f"knl={{{knl}}}", f"ksl={{{ksl}}}", f"tilt={num('tilt')}"]
        if not zero("ref_length"):
            dipoles = [v for v in (value("knl")[:1], value("ksl")[:1]) for v in v]
            if not zero("tilt") and any(float(v) != 0 for v in dipoles):
                raise LatticeFileError(
                    f"Multipole {name!r}: a rolled curved reference (ref_length with tilt "
                    "and K0L or K0SL) cannot be written: MAD-X's lrad weak focusing uses "
                    "the rolled strengths plane by plane")
            parts.append(f"lrad={num('ref_length')}")
    elif kind in ("HKicker", "VKicker"):
        parts = [kind.lower(), f"l={num('length')}", f"kick={num('kick')}",
                 f"tilt={num('tilt')}"]
    elif kind == "Kicker":
        parts = ["kicker", f"l={num('length')}", f"hkick={num('hkick')}",
                 f"vkick={num('vkick')}", f"tilt={num('tilt')}"]
    elif kind == "Solenoid":
        if not zero("tilt"):
            raise LatticeFileError(f"Solenoid {name!r}: MAD-X solenoids have no tilt")
        parts = ["solenoid", f"l={num('length')}", f"ks={num('ks')}"]
    elif kind == "RFCavity":
        if not zero("tilt"):
            raise LatticeFileError(f"RFCavity {name!r}: MAD-X cavities have no tilt")
        parts = ["rfcavity", f"l={num('length')}",
                 f"volt={_number(float(value('voltage')) * 1e-6, name)}",
                 f"lag={_number(phi0_to_lag(float(value('phi0'))), name)}",
                 f"freq={_number(float(value('frequency')) * 1e-6, name)}"]
    elif kind == "Marker":
        parts = ["marker"]
    elif kind in ("Monitor", "Screen"):
        if not zero("tilt"):
            raise LatticeFileError(f"{kind} {name!r}: tilt cannot be written to MAD-X")
        if kind == "Screen":
            warnings.warn(f"Screen {name!r} is written as a MAD-X instrument (its pixels are "
                          "lost)", LatticeFileWarning, stacklevel=3)
            parts = ["instrument"]
        else:
            parts = ["monitor"]
    elif kind in ("Aperture", "Collimator"):
        if not zero("tilt"):
            raise LatticeFileError(f"{kind} {name!r}: tilt cannot be written to MAD-X")
        shape = {"rectangular": "rectangle", "elliptical": "ellipse"}[value("shape")]
        if kind == "Aperture":
            if "smooth" in element.declaration() and not zero("smooth"):
                raise LatticeFileError(f"Aperture {name!r}: smooth edges cannot be written")
            parts = ["marker"]
        else:
            parts = ["rcollimator" if shape == "rectangle" else "ecollimator",
                     f"l={num('length')}"]
        parts += [f"apertype={shape}", f"aperture={{{num('x_limit')}, {num('y_limit')}}}"]
    elif kind == "DipoleEdge":
        parts = ["dipedge", f"h={num('h')}", f"e1={num('e1')}", f"fint={num('fint')}",
                 f"hgap={num('hgap')}", f"tilt={num('tilt')}"]
    else:
        raise LatticeFileError(f"{kind} {name!r} cannot be represented in MAD-X")
    return f"{name}: {', '.join(parts)};", length


def dumps(line: Beamline) -> str:
    """MAD-X text of ``line``: a ``beam`` (from ``line.reference``), one definition per
    element name and one ``sequence`` with ``refer=entry`` (nested lines flattened,
    drifts turned into gaps).

    Raises
    ------
    LatticeFileError
        An element MAD-X cannot represent (named), or array-valued parameters.
    """
    if not isinstance(line, Beamline):
        raise LatticeFileError(f"expected a Beamline, got {type(line).__name__}")
    name = re.sub(r"[^a-z0-9_.]", "_", line.name.lower()) or "line"
    if not re.match(r"[a-z]", name):
        name = "l_" + name
    out = [f"! {name}: written by beamtrack", ""]
    reference = line.reference
    if reference is not None:
        out.append(beam_statement(reference))
        out.append("")
    definitions: dict[str, tuple[str, float]] = {}
    placements: list[tuple[str, float]] = []
    s = 0.0
    used = set()
    for element in line:
        lowered = element.name.lower()
        if not re.fullmatch(r"[a-z][a-z0-9_.$]*", lowered):
            raise LatticeFileError(f"element name {element.name!r} is not a MAD-X name")
        if element.kind == "Drift":
            s += float(element.length)
            continue
        if lowered in used and lowered not in definitions:
            raise LatticeFileError(f"two elements named {element.name!r} (MAD-X names are "
                                   "case-insensitive)")
        if lowered not in definitions:
            definitions[lowered] = _definition(element)
            definitions[lowered] = (definitions[lowered][0].replace(
                f"{element.name}:", f"{lowered}:", 1), definitions[lowered][1])
        used.add(lowered)
        placements.append((lowered, s))
        s += definitions[lowered][1]
    out.extend(text for text, _ in definitions.values())
    out.append("")
    out.append(f"{name}: sequence, l={s!r}, refer=entry;")
    out.extend(f"  {element}, at={position!r};" for element, position in placements)
    out.append("endsequence;")
    out.append(f"use, sequence={name};")
    return "\n".join(out) + "\n"


def save(line: Beamline, path: str | os.PathLike[str]) -> None:
    """Write ``line`` to a MAD-X file (see :func:`dumps`)."""
    text = dumps(line)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


__all__ = ["dumps", "save"]
