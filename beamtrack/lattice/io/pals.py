"""PALS lattice files (``.pals.yaml``, ``.pals.json``), the Particle Accelerator
Lattice Standard, validated with ``pals-schema`` when it is installed.

A file written here is ``{"PALS": {"version": ..., "facility": [...]}}``: every element
definition once (in order of first use), then the nested beamlines, then the line
itself (the last ``BeamLine``); lines name their entries, so a repeated element is
one definition. The reference particle is a ``BeginningEle`` with ``ReferenceP``
(``species_ref``, ``pc_ref``) at the start of the line.

Mapping (beamtrack -> PALS; reading is the inverse):

==============  =====================================================================
Drift           ``Drift``
Quadrupole      ``Quadrupole``, ``MagneticMultipoleP.Kn1`` = k1 (per length)
Sextupole       ``Sextupole``, ``Kn2`` = k2; Octupole: ``Octupole``, ``Kn3`` = k3
Multipole       ``Multipole`` of zero length, ``KnNL``/``KsNL`` = knl/ksl (integrated)
ThickMultipole  ``Multipole`` with its length, ``KnNL``/``KsNL``
HKicker         ``Kicker``, ``Kn0L = -kick``; VKicker: ``Ks0L = kick``; Kicker: both
Solenoid        ``Solenoid``, ``SolenoidP.Ksol`` = ks
RFCavity        ``RFCavity``, ``RFP`` (voltage, frequency, phase = 2 pi phi0 [rad])
LCavity         ``RFCavity`` with ``ReferenceChangeP.dE_ref`` = voltage cos(2 pi phi0)
SBend, RBend    ``SBend``/``RBend``, ``length`` = arc, ``BendP`` (angle, g_ref, e1, e2 or
                e1_rect, e2_rect and L_chord, edge_int = fint hgap, tilt_ref = ref_tilt),
                ``Kn1`` = k1
Marker          ``Marker``; Monitor, Screen: ``Instrument`` of zero length
Aperture        ``Marker`` with ``ApertureP``; Collimator: ``Mask`` with ``ApertureP``
                (``location: EXIT_END``)
misalignment    ``BodyShiftP`` (x_offset, y_offset, z_rot = tilt)
==============  =====================================================================

What PALS has no place for (``num_steps``, per-element ``method``, the split of
``edge_int`` into ``fint`` and ``hgap``, the exact ``phi0``, a bend's ``fringe_type``,
diagnostics settings, which of two beamtrack kinds a PALS kind stands for) goes into
an extra ``BeamtrackP`` group that other readers ignore; the standard groups stay
authoritative: a ``BeamtrackP`` that disagrees with them is dropped with a warning.
CrabCavity, LinearMap, Custom and array-valued parameters cannot be written.
"""

from __future__ import annotations

import copy
import json
import math
import os
import warnings
from collections.abc import Mapping
from typing import Any

import array_api_compat
import numpy as np

from beamtrack.backends import backend_of
from beamtrack.lattice.beamline import Beamline
from beamtrack.lattice.elements import ELEMENT_KINDS, Element
from beamtrack.lattice.errors import LatticeError, LatticeFileError, LatticeFileWarning
from beamtrack.lattice.reference import Reference
from beamtrack.tracking.errors import ParameterError
from beamtrack.tracking.species import SPECIES, Species

#: PALS version written into files.
VERSION = "0.3"
#: Name of beamtrack's extension parameter group.
EXTRA = "BeamtrackP"
_C_LIGHT = 299792458.0
_TWO_PI = 2.0 * math.pi
#: Parameter groups with no physics for beamtrack, ignored when reading.
_IGNORED_GROUPS = frozenset({"FloorP", "MetaP", "ReferenceP", "TrackingP"})
_MISALIGNMENT = ("x_offset", "y_offset", "tilt")


class _Fail(Exception):
    """Internal: a problem with one element, turned into LatticeFileError by the caller."""


# =======================================================================================
# numbers
# =======================================================================================
def _float(value: Any, where: str) -> float:
    """A parameter value as a Python float (0-d arrays included); arrays refused."""
    if array_api_compat.is_array_api_obj(value):
        array = backend_of(value).to_numpy(value)
        if array.ndim != 0:
            raise _Fail(f"{where}: an array of shape {array.shape} cannot be written to PALS")
        value = array.item()
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise _Fail(f"{where}: expected a number, got {value!r}")
    return float(value)


def _orders(value: Any, where: str) -> list[float]:
    if array_api_compat.is_array_api_obj(value):
        array = backend_of(value).to_numpy(value)
        if array.ndim != 1:
            raise _Fail(f"{where}: an array of shape {array.shape} cannot be written to PALS")
        return [float(v) for v in array]
    return [_float(v, f"{where}[{i}]") for i, v in enumerate(value)]


def _read_number(value: Any, where: str) -> float:
    if isinstance(value, str):  # PyYAML reads 2.0e9 (no exponent sign) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Fail(f"{where}: expected a number, got {value!r}")
    try:
        return float(value)
    except OverflowError:
        raise _Fail(f"{where}: number {value!r} too large") from None


# =======================================================================================
# writing
# =======================================================================================
def _body_shift(e: Element) -> dict[str, float]:
    out = {}
    for key, pals_key in (("x_offset", "x_offset"), ("y_offset", "y_offset"), ("tilt", "z_rot")):
        if key in e.declaration():
            value = _float(getattr(e, key), key)
            if value != 0.0:
                out[pals_key] = value
    return out


def _aperture(e: Element, location: str) -> dict[str, Any]:
    def limits(v: float) -> list[Any]:
        return [-v, v] if v > 0 else [None, None]

    group: dict[str, Any] = {
        "x_limits": limits(_float(e.x_limit, "x_limit")),
        "y_limits": limits(_float(e.y_limit, "y_limit")),
        "shape": e.shape.upper(),
        "location": location,
    }
    if _body_shift(e):
        group["aperture_shifts_with_body"] = True
    return group


def _standard(e: Element) -> tuple[str, dict[str, Any]]:
    """The PALS kind and the standard groups (and length) of ``e``."""
    kind = e.kind
    out: dict[str, Any] = {}
    if "length" in e.declaration():
        out["length"] = _float(e.length, "length")
    mm: dict[str, float] = {}
    if kind == "Drift":
        pals = "Drift"
    elif kind in ("Quadrupole", "Sextupole", "Octupole"):
        order = {"Quadrupole": 1, "Sextupole": 2, "Octupole": 3}[kind]
        pals = kind
        mm[f"Kn{order}"] = _float(getattr(e, f"k{order}"), f"k{order}")
    elif kind in ("Multipole", "ThickMultipole"):
        pals = "Multipole"
        out.setdefault("length", 0.0)
        for prefix, key in (("Kn", "knl"), ("Ks", "ksl")):
            for n, v in enumerate(_orders(getattr(e, key), key)):
                mm[f"{prefix}{n}L"] = v
    elif kind in ("HKicker", "VKicker", "Kicker"):
        pals = "Kicker"
        if kind == "HKicker":
            mm["Kn0L"] = -_float(e.kick, "kick")
        elif kind == "VKicker":
            mm["Ks0L"] = _float(e.kick, "kick")
        else:
            mm["Kn0L"] = -_float(e.hkick, "hkick")
            mm["Ks0L"] = _float(e.vkick, "vkick")
    elif kind == "Solenoid":
        pals = "Solenoid"
        out["SolenoidP"] = {"Ksol": _float(e.ks, "ks")}
    elif kind in ("RFCavity", "LCavity"):
        pals = "RFCavity"
        phi0 = _float(e.phi0, "phi0")
        voltage = _float(e.voltage, "voltage")
        out["RFP"] = {"voltage": voltage, "frequency": _float(e.frequency, "frequency"),
                      "phase": _TWO_PI * phi0}
        if kind == "LCavity":
            out["ReferenceChangeP"] = {"dE_ref": voltage * math.cos(_TWO_PI * phi0)}
    elif kind in ("SBend", "RBend"):
        pals = kind
        angle = _float(e.angle, "angle")
        arc = _float(e.path_length, "length")
        out["length"] = arc
        fint, hgap = _float(e.fint, "fint"), _float(e.hgap, "hgap")
        fint_x = fint if e.fint_exit is None else _float(e.fint_exit, "fint_exit")
        hgap_x = hgap if e.hgap_exit is None else _float(e.hgap_exit, "hgap_exit")
        bend: dict[str, Any] = {"angle": angle, "g_ref": angle / arc if arc > 0 else 0.0}
        if kind == "SBend":
            bend.update(e1=_float(e.e1, "e1"), e2=_float(e.e2, "e2"))
        else:
            bend.update(e1_rect=_float(e.e1, "e1"), e2_rect=_float(e.e2, "e2"),
                        L_chord=_float(e.length, "length"))
        bend.update(edge_int1=fint * hgap, edge_int2=fint_x * hgap_x,
                    tilt_ref=_float(e.ref_tilt, "ref_tilt"))
        out["BendP"] = {k: v for k, v in bend.items() if v != 0.0 or k in ("angle", "g_ref")}
        strengths = {"Kn1": _float(e.k1, "k1")}
        if "dg" in e.declaration():
            strengths["Kn0"] = _float(e.dg, "dg")
        mm.update({k: v for k, v in strengths.items() if v != 0.0})
    elif kind == "Marker":
        pals = "Marker"
    elif kind in ("Monitor", "Screen"):
        pals = "Instrument"
        out["length"] = 0.0
    elif kind == "Aperture":
        pals = "Marker"
        out["ApertureP"] = _aperture(e, "ENTRANCE_END")
    elif kind == "Collimator":
        pals = "Mask"
        out["ApertureP"] = _aperture(e, "EXIT_END")
    else:
        raise _Fail(f"PALS has no element kind that holds a beamtrack {kind}")
    if mm:
        out["MagneticMultipoleP"] = mm
    shift = _body_shift(e)
    if shift:
        out["BodyShiftP"] = shift
    return pals, out


def _encode_extra(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_encode_extra(v) for v in value]
    if array_api_compat.is_array_api_obj(value):
        return _orders(value, "value") if backend_of(value).to_numpy(value).ndim else _float(
            value, "value")
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def _element_entry(e: Element) -> dict[str, Any]:
    """The PALS definition ``{kind, length, groups..., BeamtrackP}`` of ``e``."""
    pals, entry = _standard(e)
    entry = {"kind": pals, **entry}
    back_kind, back = _from_standard(e.name, entry, None)
    extra: dict[str, Any] = {}
    if back_kind != e.kind:
        extra["kind"] = e.kind
    declaration = e.declaration()
    for key, spec in declaration.items():
        if spec.role == "callable":
            raise _Fail("holds a Python function, which PALS cannot store")
        value = getattr(e, key)
        if key not in back or not _same(back[key], value):
            if key not in back and _same(spec.default, value):
                continue
            extra[key] = _encode_extra(value)
    if e.method is not None:
        extra["method"] = e.method
    if extra:
        entry[EXTRA] = extra
    return entry


def _same(a: Any, b: Any) -> bool:
    from beamtrack.lattice.elements import _values_equal  # the one equality rule

    try:
        return _values_equal(a, b)
    except Exception:  # noqa: BLE001 - incomparable values are different
        return False


def _unique(name: str, taken: set[str]) -> str:
    candidate, i = name, 1
    while candidate in taken:
        i += 1
        candidate = f"{name}_{i}"
    return candidate


def to_document(line: Beamline) -> dict[str, Any]:
    """The PALS document (plain dictionaries) of a beamline.

    Raises
    ------
    LatticeFileError
        An element PALS cannot hold (named in the message).
    """
    definitions: dict[str, dict[str, Any]] = {}
    lines: dict[str, dict[str, Any]] = {}

    def visit(bl: Beamline, top: bool) -> dict[str, Any]:
        entries: list[Any] = []
        for item in bl.items:
            if isinstance(item, Beamline):
                if item.name not in lines:
                    lines[item.name] = {item.name: visit(item, False)}
                entries.append(item.name)
                continue
            if item.name not in definitions:
                try:
                    definitions[item.name] = {item.name: _element_entry(item)}
                except _Fail as exc:
                    raise LatticeFileError(f"{item.kind} {item.name!r}: {exc}") from None
            entries.append(item.name)
        body: dict[str, Any] = {"kind": "BeamLine", "line": entries}
        if bl.method != "bmad":
            body[EXTRA] = {"method": bl.method}
        return body

    body = visit(line, True)
    reference = getattr(line, "reference", None)
    if reference is not None:
        taken = set(definitions) | set(lines) | {line.name}
        begin: dict[str, Any] = {"kind": "BeginningEle", "ReferenceP": {
            "species_ref": reference.species.name, "pc_ref": float(reference.p0c),
            "location": "UPSTREAM_END"}}
        if SPECIES.get(reference.species.name) != reference.species:
            begin[EXTRA] = {"mc2": reference.species.mc2, "charge": reference.species.charge}
        body["line"].insert(0, {_unique("beginning", taken): begin})
    facility = list(definitions.values()) + list(lines.values()) + [{line.name: body}]
    return {"PALS": {"version": VERSION, "facility": facility}}


def _dump(document: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(document, indent=2, allow_nan=True)
    import yaml

    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False)


def dumps(line: Beamline, *, format: str = "yaml") -> str:
    """PALS text of a beamline, ``format`` ``"yaml"`` (default) or ``"json"``.

    Raises
    ------
    LatticeFileError
        An element PALS cannot hold (CrabCavity, LinearMap, Custom, array parameters).
    """
    if format not in ("yaml", "json"):
        raise LatticeFileError(f"unknown PALS text format {format!r}; use 'yaml' or 'json'")
    document = to_document(line)
    _validate(document, "<output>")
    return _dump(document, format)


def _text_format(path: str) -> str:
    return "json" if path.lower().endswith(".json") else "yaml"


def save(line: Beamline, path: str | os.PathLike[str]) -> None:
    """Write a beamline to a PALS file; ``.json`` gives JSON, anything else YAML."""
    source = os.fspath(path)
    text = dumps(line, format=_text_format(source))
    with open(source, "w", encoding="utf-8") as handle:
        handle.write(text)


# =======================================================================================
# validation with pals-schema
# =======================================================================================
def _validate(document: Any, source: str) -> None:
    """Check ``document`` against pals-schema (when installed)."""
    try:
        import pals
    except ImportError:  # pragma: no cover - pals-schema is a test dependency
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pals.PALSroot(**copy.deepcopy(document))
    except RecursionError:
        raise LatticeFileError("not a valid PALS document (nested too deeply)",
                               file=source) from None
    except Exception as exc:  # noqa: BLE001 - pydantic, TypeError, ValueError, ...
        first = str(exc).strip().splitlines()
        detail = " ".join(first[:3]) if first else type(exc).__name__
        raise LatticeFileError(f"not a valid PALS document (pals-schema: {detail})",
                               file=source) from None


# =======================================================================================
# reading
# =======================================================================================
class _Multipoles:
    """The ``MagneticMultipoleP`` entries of one element, as ``K`` values."""

    def __init__(self, group: Any, length: float, reference: Reference | None) -> None:
        if group is None:
            group = {}
        if not isinstance(group, dict):
            raise _Fail("MagneticMultipoleP must be a mapping")
        self.values: dict[tuple[str, int], tuple[float, bool]] = {}  # (n|s, N) -> (K, integ.)
        self.tilts: dict[int, float] = {}
        self.length = length
        for key, value in group.items():
            if not isinstance(key, str):
                raise _Fail(f"MagneticMultipoleP: bad key {key!r}")
            number = _read_number(value, f"MagneticMultipoleP.{key}")
            integrated = key.endswith("L")
            base = key[:-1] if integrated else key
            if base.startswith("tilt") and not integrated and base[4:].isdigit():
                self.tilts[int(base[4:])] = number
                continue
            prefix, digits = base[:2], base[2:]
            if prefix not in ("Kn", "Ks", "Bn", "Bs") or not digits.isdigit():
                raise _Fail(f"MagneticMultipoleP: unsupported parameter {key!r}")
            order = int(digits)
            if prefix[0] == "B":
                if reference is None:
                    raise _Fail(f"MagneticMultipoleP.{key}: a field strength needs the "
                                "reference particle (a BeginningEle with ReferenceP)")
                number = number * reference.charge * _C_LIGHT / reference.p0c
            slot = ("n" if prefix[1] == "n" else "s", order)
            if slot in self.values:
                raise _Fail(f"MagneticMultipoleP: order {order} given twice")
            self.values[slot] = (number, integrated)

    def take(self, slot: tuple[str, int], *, integrated: bool) -> float | None:
        """The strength of ``slot`` per length (or integrated), removed from the set."""
        if slot not in self.values:
            return None
        value, is_integrated = self.values.pop(slot)
        if is_integrated == integrated:
            return value
        if integrated:
            return value * self.length
        if self.length == 0.0:
            if value == 0.0:
                return 0.0
            raise _Fail(f"integrated strength of order {slot[1]} on an element of zero "
                        "length: beamtrack needs a Multipole there")
        return value / self.length

    def finish(self, allowed_tilts: tuple[int, ...] = ()) -> float:
        """Refuse what is left; return the tilt of ``allowed_tilts`` (0 if none)."""
        left = [f"K{k}{n}" for (k, n), (v, _) in self.values.items() if v != 0.0]
        if left:
            raise _Fail(f"MagneticMultipoleP: {', '.join(left)} not supported on this kind")
        tilt = 0.0
        for order, value in self.tilts.items():
            if order in allowed_tilts:
                tilt += value
            elif value != 0.0:
                raise _Fail(f"MagneticMultipoleP: tilt{order} not supported on this kind")
        return tilt


def _group(fields: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = fields.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Fail(f"{name} must be a mapping")
    return value


def _get(group: Mapping[str, Any], key: str, where: str, default: float = 0.0) -> float:
    if key not in group or group[key] is None:
        return default
    return _read_number(group[key], f"{where}.{key}")


def _misalignment(fields: Mapping[str, Any], params: dict[str, Any]) -> None:
    shift = _group(fields, "BodyShiftP")
    for key in ("z_offset", "x_rot", "y_rot"):
        if _get(shift, key, "BodyShiftP") != 0.0:
            raise _Fail(f"BodyShiftP.{key} is not supported (only x_offset, y_offset, z_rot)")
    params["x_offset"] = _get(shift, "x_offset", "BodyShiftP")
    params["y_offset"] = _get(shift, "y_offset", "BodyShiftP")
    params["tilt"] = params.get("tilt", 0.0) + _get(shift, "z_rot", "BodyShiftP")


def _read_aperture(fields: Mapping[str, Any], params: dict[str, Any], thick: bool) -> None:
    group = _group(fields, "ApertureP")
    for axis in ("x", "y"):
        limits = group.get(f"{axis}_limits", [None, None])
        if not isinstance(limits, list) or len(limits) != 2:
            raise _Fail(f"ApertureP.{axis}_limits must be a list of two limits")
        lo, hi = (None if v is None else _read_number(v, f"ApertureP.{axis}_limits")
                  for v in limits)
        if lo is None and hi is None:
            params[f"{axis}_limit"] = 0.0
        elif lo is None or hi is None or lo != -hi or hi <= 0:
            raise _Fail(f"ApertureP.{axis}_limits {limits}: beamtrack holds only symmetric "
                        "limits [-a, a]")
        else:
            params[f"{axis}_limit"] = hi
    shape = group.get("shape", "RECTANGULAR")
    if shape not in ("RECTANGULAR", "ELLIPTICAL"):
        raise _Fail(f"ApertureP.shape {shape!r} not supported (RECTANGULAR, ELLIPTICAL)")
    params["shape"] = shape.lower()
    location = group.get("location", "ENTRANCE_END")
    if thick and location != "EXIT_END":
        raise _Fail(f"ApertureP.location {location!r}: beamtrack checks a thick aperture at "
                    "its EXIT_END only")
    if not group.get("aperture_shifts_with_body", False):
        params["x_offset"] = params["y_offset"] = params["tilt"] = 0.0


def _from_standard(name: str, fields: Mapping[str, Any],
                   reference: Reference | None) -> tuple[str, dict[str, Any]]:
    """beamtrack kind and parameters from the standard PALS groups of one element."""
    pals = fields.get("kind")
    length = _get(fields, "length", "length") if "length" in fields else 0.0
    if length < 0 or not math.isfinite(length):
        raise _Fail(f"length {length!r} must be finite and >= 0")
    for group in ("ElectricMultipoleP",):
        if any(v != 0 for v in _group(fields, group).values()):
            raise _Fail(f"{group} is not supported")
    if pals != "RFCavity" and _group(fields, "ReferenceChangeP"):
        if any(_get(_group(fields, "ReferenceChangeP"), k, "ReferenceChangeP") != 0.0
               for k in ("dE_ref", "extra_dtime_ref")):
            raise _Fail("ReferenceChangeP is supported only on an RFCavity")
    if pals not in ("Marker", "Mask") and _group(fields, "ApertureP"):
        warnings.warn(f"PALS element {name!r}: ApertureP on a {pals} is skipped (beamtrack "
                      "has apertures as elements of their own)", LatticeFileWarning,
                      stacklevel=6)
    mm = _Multipoles(fields.get("MagneticMultipoleP"), length, reference)
    params: dict[str, Any] = {}
    if pals == "Drift":
        kind, params["length"] = "Drift", length
        mm.finish()
    elif pals in ("Quadrupole", "Sextupole", "Octupole"):
        kind = pals
        order = {"Quadrupole": 1, "Sextupole": 2, "Octupole": 3}[pals]
        strength = mm.take(("n", order), integrated=False)
        params.update(length=length, **{f"k{order}": strength or 0.0})
        params["tilt"] = mm.finish((order,))
        _misalignment(fields, params)
    elif pals == "Multipole":
        kind = "ThickMultipole" if length > 0 else "Multipole"
        top = {k: max([n for kk, n in mm.values if kk == k], default=-1) for k in "ns"}
        knl = [mm.take(("n", n), integrated=True) or 0.0 for n in range(top["n"] + 1)]
        ksl = [mm.take(("s", n), integrated=True) or 0.0 for n in range(top["s"] + 1)]
        params.update(knl=tuple(knl), ksl=tuple(ksl))
        if length > 0:
            params["length"] = length
        mm.finish()
        _misalignment(fields, params)
    elif pals == "Kicker":
        has_n, has_s = ("n", 0) in mm.values, ("s", 0) in mm.values
        kn = mm.take(("n", 0), integrated=True)
        ks = mm.take(("s", 0), integrated=True)
        if has_n and not has_s:
            kind, params["kick"] = "HKicker", -(kn or 0.0)
        elif has_s and not has_n:
            kind, params["kick"] = "VKicker", ks or 0.0
        else:
            kind = "Kicker"
            params.update(hkick=-(kn or 0.0), vkick=ks or 0.0)
        params["length"] = length
        mm.finish()
        _misalignment(fields, params)
    elif pals == "Solenoid":
        kind = "Solenoid"
        sol = _group(fields, "SolenoidP")
        ks = _get(sol, "Ksol", "SolenoidP")
        if _get(sol, "Bsol", "SolenoidP") != 0.0:
            if reference is None:
                raise _Fail("SolenoidP.Bsol needs the reference particle")
            ks += _get(sol, "Bsol", "SolenoidP") * reference.charge * _C_LIGHT / reference.p0c
        params.update(length=length, ks=ks)
        mm.finish()
        _misalignment(fields, params)
    elif pals == "RFCavity":
        rf = _group(fields, "RFP")
        kind = "LCavity" if "ReferenceChangeP" in fields else "RFCavity"
        if _get(rf, "gradient", "RFP") != 0.0 and "voltage" not in rf:
            voltage = _get(rf, "gradient", "RFP") * length
        else:
            voltage = _get(rf, "voltage", "RFP")
        if _get(rf, "harmon", "RFP") != 0.0 and _get(rf, "frequency", "RFP") == 0.0:
            raise _Fail("RFP.harmon without a frequency is not supported")
        params.update(length=length, voltage=voltage, frequency=_get(rf, "frequency", "RFP"),
                      phi0=_get(rf, "phase", "RFP") / _TWO_PI)
        mm.finish()
        _misalignment(fields, params)
    elif pals in ("SBend", "RBend"):
        kind = pals
        bend = _group(fields, "BendP")
        if "angle" in bend:
            angle = _get(bend, "angle", "BendP")
        else:
            angle = (_get(bend, "g_ref", "BendP") or _get(bend, "g", "BendP")) * length
        half = 0.5 * angle
        def face(native: str, other: str, shift: float) -> float:
            if native in bend or other not in bend:
                return _get(bend, native, "BendP")
            return _get(bend, other, "BendP") + shift

        if pals == "SBend":
            e1, e2 = face("e1", "e1_rect", half), face("e2", "e2_rect", half)
            params["length"] = length
        else:
            e1, e2 = face("e1_rect", "e1", -half), face("e2_rect", "e2", -half)
            chord = _get(bend, "L_chord", "BendP", default=-1.0)
            params["length"] = chord if chord >= 0 else (
                length * math.sin(half) / half if half != 0 else length)
        for key in ("h1", "h2"):
            if _get(bend, key, "BendP") != 0.0:
                raise _Fail(f"BendP.{key} (curved pole faces) is not supported")
        int1 = _get(bend, "edge_int1", "BendP")
        int2 = _get(bend, "edge_int2", "BendP", default=int1)
        # Only fint * hgap matters; split it as fint = 1/2 (BeamtrackP keeps the exact split).
        params.update(angle=angle, e1=e1, e2=e2, fint=0.5 if int1 else 0.0, hgap=2.0 * int1,
                      ref_tilt=_get(bend, "tilt_ref", "BendP"))
        if int2 != int1:
            params.update(fint_exit=0.5 if int2 else 0.0, hgap_exit=2.0 * int2)
        params["k1"] = mm.take(("n", 1), integrated=False) or 0.0
        if "dg" in ELEMENT_KINDS[kind].declaration():
            params["dg"] = mm.take(("n", 0), integrated=False) or 0.0
        params["tilt"] = 0.0
        mm.finish()
        _misalignment(fields, params)
    elif pals == "Marker":
        mm.finish()
        if "ApertureP" in fields:
            kind = "Aperture"
            _misalignment(fields, params)
            _read_aperture(fields, params, thick=False)
        else:
            kind = "Marker"
    elif pals == "Mask":
        kind = "Collimator"
        mm.finish()
        params["length"] = length
        _misalignment(fields, params)
        _read_aperture(fields, params, thick=length > 0)
    elif pals == "Instrument":
        mm.finish()
        if length > 0:
            warnings.warn(f"PALS element {name!r}: an Instrument of length {length} is read as a "
                          "Drift", LatticeFileWarning, stacklevel=6)
            kind, params["length"] = "Drift", length
        else:
            kind = "Monitor"
            _misalignment(fields, params)
    else:
        raise _Fail(f"PALS kind {pals!r} is not supported by beamtrack")
    return kind, params


def _build(name: str, fields: Mapping[str, Any], reference: Reference | None) -> Element:
    """A beamtrack element from one PALS definition (standard groups, then BeamtrackP)."""
    kind, params = _from_standard(name, fields, reference)
    extra = _group(fields, EXTRA)
    chosen = extra.get("kind", kind)
    if chosen not in ELEMENT_KINDS:
        raise _Fail(f"{EXTRA}.kind {chosen!r} is not a beamtrack kind")
    cls = ELEMENT_KINDS[chosen]
    declaration = cls.declaration()
    base = {k: v for k, v in params.items() if k in declaration}
    dropped = {k: v for k, v in params.items() if k not in declaration and v not in (0.0, ())}
    method = extra.get("method")
    overrides = {k: v for k, v in extra.items() if k not in ("kind", "method")}
    for key, value in overrides.items():
        if key not in declaration:
            raise _Fail(f"{EXTRA}.{key}: not a parameter of {chosen}")
        if isinstance(value, list):
            overrides[key] = tuple(value)
    if dropped or chosen not in _ALTERNATES.get(kind, (kind,)):
        raise _Fail(f"{EXTRA}.kind {chosen!r} cannot stand for a PALS {fields.get('kind')}")
    try:
        standard = cls(name, **base)
        element = cls(name, **{**base, **overrides}, method=method)
    except (ParameterError, TypeError, ValueError) as exc:
        raise _Fail(f"{EXTRA}: {exc}") from None
    if overrides and not _agrees(element, fields):
        warnings.warn(f"PALS element {name!r}: {EXTRA} disagrees with the standard parameter "
                      "groups; it is ignored", LatticeFileWarning, stacklevel=5)
        element = standard if method is None else standard.replace(method=method)
    return element


#: beamtrack kinds a PALS reading may be replaced with through ``BeamtrackP.kind``.
_ALTERNATES = {
    "Monitor": ("Monitor", "Screen"),
    "Multipole": ("Multipole", "ThickMultipole"),
    "ThickMultipole": ("ThickMultipole", "Multipole"),
    "HKicker": ("HKicker", "Kicker"),
    "VKicker": ("VKicker", "Kicker"),
    "Kicker": ("Kicker", "HKicker", "VKicker"),
    "Collimator": ("Collimator",),
}


def _agrees(element: Element, fields: Mapping[str, Any]) -> bool:
    """Whether ``element`` writes the standard groups ``fields`` holds (to 1e-12)."""
    try:
        _, written = _standard(element)
    except _Fail:
        return False
    given = {k: v for k, v in fields.items() if k not in (EXTRA, "kind", "name")
             and k not in _IGNORED_GROUPS}
    return _close(written, given)


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = set(a) | set(b)
        return all(_close(a.get(k, 0.0), b.get(k, 0.0)) for k in keys)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(u, v) for u, v in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(
            a, bool) and not isinstance(b, bool):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-300) or a == b
    return a == b


def _one_key(item: Any, where: str) -> tuple[str, Any]:
    if not isinstance(item, dict) or len(item) != 1:
        raise _Fail(f"{where}: expected a one-key mapping {{name: definition}}, got {item!r:.80}")
    (name, fields), = item.items()
    if not isinstance(name, str) or not name:
        raise _Fail(f"{where}: element name must be a non-empty string, got {name!r}")
    if name == "use" and isinstance(fields, str):
        return fields, None
    if not isinstance(fields, dict):
        raise _Fail(f"{where}: definition of {name!r} must be a mapping")
    return name, fields


def _reference_of(fields: Mapping[str, Any]) -> Reference:
    ref = _group(fields, "ReferenceP")
    name = ref.get("species_ref", "")
    if not isinstance(name, str) or not name:
        raise _Fail("ReferenceP.species_ref missing")
    extra = _group(fields, EXTRA)
    if name in SPECIES:
        chosen = SPECIES[name]
    elif "mc2" in extra and "charge" in extra:
        try:
            chosen = Species(name, _read_number(extra["mc2"], f"{EXTRA}.mc2"),
                             _read_number(extra["charge"], f"{EXTRA}.charge"))
        except ValueError as exc:
            raise _Fail(str(exc)) from None
    else:
        raise _Fail(f"ReferenceP.species_ref {name!r} unknown; known: {', '.join(SPECIES)}")
    pc = _get(ref, "pc_ref", "ReferenceP")
    energy = _get(ref, "E_tot_ref", "ReferenceP")
    try:
        if pc > 0:
            return Reference(chosen, pc)
        if energy > 0:
            return Reference.from_energy(chosen, e_tot=energy)
    except ParameterError as exc:
        raise _Fail(str(exc)) from None
    raise _Fail("ReferenceP needs pc_ref or E_tot_ref")


class _Expander:
    """Turns the facility's definitions into beamtrack objects (shared by name)."""

    def __init__(self, facility: list[Any], source: str) -> None:
        self.source = source
        self.definitions: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []
        for position, item in enumerate(facility):
            if isinstance(item, str):
                continue  # a bare name in the facility defines nothing
            name, fields = _one_key(item, f"facility entry {position}")
            if fields is None:
                continue
            if name in self.definitions:
                raise _Fail(f"facility: {name!r} defined twice")
            self.definitions[name] = fields
            self.order.append(name)
        self.elements: dict[str, Element] = {}
        self.lines: dict[str, Beamline] = {}
        self.reference: Reference | None = None

    def top(self, sequence: str | None) -> str:
        if sequence is not None:
            if self.definitions.get(sequence, {}).get("kind") not in ("BeamLine", "Lattice"):
                raise _Fail(f"no BeamLine or Lattice named {sequence!r}; lines: "
                            f"{', '.join(self.line_names()) or 'none'}")
            return sequence
        names = self.line_names()
        if not names:
            raise _Fail("the facility holds no BeamLine")
        lattices = [n for n in names if self.definitions[n].get("kind") == "Lattice"]
        return lattices[-1] if lattices else names[-1]

    def line_names(self) -> list[str]:
        return [n for n in self.order if self.definitions[n].get("kind") in ("BeamLine",
                                                                              "Lattice")]

    def line(self, name: str, fields: Mapping[str, Any], stack: tuple[str, ...],
             top: bool) -> Beamline:
        if name in stack:
            raise _Fail(f"BeamLine {name!r} contains itself")
        if name in self.lines and not top:
            return self.lines[name]
        kind = fields.get("kind")
        key = "branches" if kind == "Lattice" else "line"
        entries = fields.get(key)
        if not isinstance(entries, list):
            raise _Fail(f"{kind} {name!r}: '{key}' must be a list")
        if kind == "Lattice":
            if not entries:
                raise _Fail(f"Lattice {name!r} has no branch")
            entries = entries[:1]  # one branch: the first
        items: list[Any] = []
        for position, entry in enumerate(entries):
            where = f"{kind} {name!r} entry {position}"
            if isinstance(entry, str):
                ref_name, definition = entry, self.definitions.get(entry)
                if definition is None:
                    raise _Fail(f"{where}: {entry!r} is not defined")
                inline = False
            else:
                ref_name, definition = _one_key(entry, where)
                inline = definition is not None
                if definition is None:
                    definition = self.definitions.get(ref_name)
                    if definition is None:
                        raise _Fail(f"{where}: {ref_name!r} is not defined")
            item = self.item(ref_name, definition, stack + (name,), where, inline,
                             first=top and position == 0)
            if item is not None:
                items.append(item)
        if kind == "Lattice" and len(items) == 1 and isinstance(items[0], Beamline):
            return items[0]
        method = _group(fields, EXTRA).get("method", "bmad")
        try:
            line = Beamline(items, name=name, method=method)
        except (LatticeError, ParameterError) as exc:
            raise _Fail(str(exc)) from None
        if not top:
            self.lines[name] = line
        return line

    def item(self, name: str, fields: Mapping[str, Any], stack: tuple[str, ...], where: str,
             inline: bool, first: bool) -> Element | Beamline | None:
        kind = fields.get("kind")
        if kind in ("BeamLine", "Lattice"):
            return self.line(name, fields, stack, False)
        if kind == "BeginningEle":
            if first:
                self.reference = _reference_of(fields)
            else:
                warnings.warn(f"{self.source}: {where}: a BeginningEle that does not start the "
                              "line is skipped", LatticeFileWarning, stacklevel=5)
            return None
        if not inline and name in self.elements:
            return self.elements[name]
        try:
            element = _build(name, fields, self.reference)
        except _Fail as exc:
            raise _Fail(f"element {name!r} ({kind}): {exc}") from None
        if not inline:
            self.elements[name] = element
        return element


def from_document(document: Any, *, source: str = "<string>",
                  sequence: str | None = None) -> Beamline:
    """A beamline from a PALS document (plain dictionaries, as YAML or JSON give).

    Raises
    ------
    LatticeFileError
        The document is malformed or holds something beamtrack cannot represent.
    """
    _validate(_rooted(document, source), source)
    try:
        facility = _rooted(document, source)["PALS"]["facility"]
        expander = _Expander(facility, source)
        name = expander.top(sequence)
        line = expander.line(name, expander.definitions[name], (), True)
        if expander.reference is not None:
            line = line.with_reference(expander.reference)
        return line
    except LatticeFileError:
        raise
    except _Fail as exc:
        raise LatticeFileError(str(exc), file=source) from None
    except (LatticeError, ParameterError, NotImplementedError, ValueError, TypeError,
            KeyError, AttributeError, ArithmeticError, RecursionError) as exc:
        raise LatticeFileError(f"{type(exc).__name__}: {exc}", file=source) from None


def _rooted(document: Any, source: str) -> dict[str, Any]:
    """``{"PALS": {"facility": [...]}}`` from a full document or a bare one-key line."""
    if isinstance(document, dict) and "PALS" in document:
        root = document["PALS"]
        if not isinstance(root, dict) or not isinstance(root.get("facility"), list):
            raise LatticeFileError("'PALS' must hold a 'facility' list", file=source)
        return document
    if isinstance(document, dict) and len(document) == 1:
        (_, body), = document.items()
        if isinstance(body, dict) and body.get("kind") in ("BeamLine", "Lattice"):
            return {"PALS": {"facility": [document]}}
    raise LatticeFileError("not a PALS document (expected a top-level 'PALS' key)", file=source)


def _parse(text: str, source: str) -> Any:
    stripped = text.lstrip()
    if stripped.startswith("{") or source.lower().endswith(".json"):
        try:
            return json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise LatticeFileError(f"not valid JSON ({exc})", file=source) from None
    try:
        import yaml
    except ImportError as exc:  # pragma: no cover - pyyaml comes with pals-schema
        raise ImportError("PALS YAML files need PyYAML: pip install 'beamtrack[pals]'") from exc
    try:
        return yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError, ValueError) as exc:
        mark = getattr(exc, "problem_mark", None)
        raise LatticeFileError(f"not valid YAML ({getattr(exc, 'problem', None) or exc})",
                               file=source, line=None if mark is None else mark.line + 1,
                               column=None if mark is None else mark.column + 1) from None


def loads(text: str, *, source: str = "<string>", sequence: str | None = None,
          root: Any = None) -> Beamline:
    """Read a beamline from PALS text (YAML, or JSON).

    Parameters
    ----------
    text
        The document.
    source
        File name for messages.
    sequence
        Name of the BeamLine (or Lattice) to read; by default the last Lattice, else the
        last BeamLine of the facility.
    root
        Unused (PALS files include no other files); accepted for the common signature.

    Returns
    -------
    Beamline
        With :attr:`~Beamline.reference` from the line's opening ``BeginningEle``.

    Raises
    ------
    LatticeFileError
        Malformed text, a schema violation, or content beamtrack cannot represent.
    """
    if not isinstance(text, str):
        raise LatticeFileError("PALS text must be a string", file=source)
    return from_document(_parse(text, source), source=source, sequence=sequence)


def load(path: str | os.PathLike[str], *, sequence: str | None = None,
         root: Any = None) -> Beamline:
    """Read a beamline from a PALS file (``.pals.yaml`` or ``.pals.json``)."""
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise LatticeFileError(f"cannot read the file ({exc})", file=source) from None
    return loads(text, source=source, sequence=sequence)


__all__ = ["dumps", "from_document", "load", "loads", "save", "to_document"]
