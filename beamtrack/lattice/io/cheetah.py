"""In-memory conversion of lines between beamtrack and Cheetah (``cheetah.Segment``).

:func:`from_cheetah` turns a Cheetah ``Segment`` (nested segments kept as nested
beamlines, or flattened) into a :class:`~beamtrack.lattice.beamline.Beamline`, and
:func:`to_cheetah` the reverse. Element names are kept. Cheetah's per-element
``tracking_method`` becomes the element's ``method``: ``"linear"`` (Cheetah's first-order
transfer maps), ``"second_order"``, and ``"bmad"`` for ``"drift_kick_drift"`` (Bmad-X).
Elements Cheetah tracks only linearly (solenoids, thick correctors) get the
``"linear"`` method. The beamline's method is the most common one, and elements that
use it leave their own ``method`` unset.

Which models coincide exactly and which approximately (with measured deviations) is
listed in ``docs/formats/cheetah-xsuite.md``; an approximate conversion warns once per
element kind and call (:class:`LatticeFileWarning`), and a kind without counterpart
raises :class:`LatticeError` naming the element.

cheetah (and through it torch) is imported inside the functions.
"""

from __future__ import annotations

import math
import numbers
from collections import Counter
from typing import Any

import numpy as np

from beamtrack.backends import backend_of
from beamtrack.lattice.beamline import Beamline
from beamtrack.lattice.elements import ELEMENT_KINDS, Element
from beamtrack.lattice.errors import LatticeError, OnceWarner
from beamtrack.lattice.reference import Reference

#: Cheetah tracking method -> beamtrack method.
METHOD_FROM_CHEETAH = {"linear": "linear", "second_order": "second_order",
                       "drift_kick_drift": "bmad", "cheetah": "linear", "bmadx": "bmad"}
#: beamtrack method -> Cheetah tracking method.
METHOD_TO_CHEETAH = {"linear": "linear", "second_order": "second_order",
                     "bmad": "drift_kick_drift"}


# -- Cheetah -> beamtrack ---------------------------------------------------------------
def _value(tensor: Any) -> Any:
    """A Cheetah parameter as a beamtrack parameter: a float for a scalar tensor that
    needs no gradient, else the tensor itself (batched or differentiable)."""
    if getattr(tensor, "requires_grad", False) or getattr(tensor, "ndim", 0) > 0:
        return tensor
    return float(tensor)


def _offsets(element: Any) -> dict[str, Any]:
    misalignment = getattr(element, "misalignment", None)
    if misalignment is None:
        return {}
    return {"x_offset": _value(misalignment[..., 0]), "y_offset": _value(misalignment[..., 1])}


def _is_zero(value: Any) -> bool:
    if isinstance(value, numbers.Real):
        return value == 0.0
    return bool((value == 0).all())


def _cheetah_method(element: Any) -> str | None:
    method = getattr(element, "tracking_method", None)
    return METHOD_FROM_CHEETAH.get(method) if isinstance(method, str) else None


def _convert_cheetah_element(element: Any, species_charge: float,
                             warn: OnceWarner) -> tuple[Element, str | None]:
    """The beamtrack element and the method Cheetah tracks it with (None: irrelevant)."""
    kind = type(element).__name__
    name = element.name
    label = f"{kind} {name!r}"
    method = _cheetah_method(element)
    if kind == "Drift":
        return ELEMENT_KINDS["Drift"](name, length=_value(element.length)), method
    if kind == "Quadrupole":
        return ELEMENT_KINDS["Quadrupole"](
            name, length=_value(element.length), k1=_value(element.k1),
            tilt=_value(element.tilt), num_steps=int(element.num_steps),
            **_offsets(element)), method
    if kind in ("Dipole", "RBend"):
        return _from_dipole(element, kind, method, warn), method
    if kind == "Sextupole":
        if method == "second_order":
            warn(kind, "second_order", "Cheetah's second-order map is that of the thick "
                 "sextupole, beamtrack's that of its one-step kick-drift-kick model: they "
                 "differ at second order (measured 4e-8 at 1e-3 amplitudes, 1% of the kick, "
                 "for 0.2 m and k2 = 30)")
        return ELEMENT_KINDS["Sextupole"](name, length=_value(element.length),
                                          k2=_value(element.k2), tilt=_value(element.tilt),
                                          **_offsets(element)), method
    if kind in ("HorizontalCorrector", "VerticalCorrector", "CombinedCorrector"):
        length = _value(element.length)
        if not _is_zero(length):
            warn(kind, "thick", "Cheetah kicks a thick corrector at its exit, beamtrack in its "
                 "middle (x differs by length * kick / 2)")
        if kind == "CombinedCorrector":
            out = ELEMENT_KINDS["Kicker"](name, length=length,
                                          hkick=_value(element.horizontal_angle),
                                          vkick=_value(element.vertical_angle))
        else:
            target = "HKicker" if kind == "HorizontalCorrector" else "VKicker"
            out = ELEMENT_KINDS[target](name, length=length, kick=_value(element.angle))
        return out, ("linear" if not _is_zero(length) else None)
    if kind == "Solenoid":
        return ELEMENT_KINDS["Solenoid"](name, length=_value(element.length),
                                         ks=2.0 * _value(element.k),
                                         **_offsets(element)), "linear"
    if kind == "Cavity":
        warn(kind, "model", "Cheetah's cavity (Rosenzweig-Serafini transverse map, its own "
             "longitudinal map) and Bmad's lcavity agree in the reference energy gain but "
             "only approximately in the particles' (measured 8e-6 in pz at 1e-3 amplitudes "
             "for 3 MV at 1.3 GHz and 13 MeV)")
        return ELEMENT_KINDS["LCavity"](
            name, length=_value(element.length),
            voltage=-species_charge * _value(element.voltage),
            phi0=-_value(element.phase) / 360.0, frequency=_value(element.frequency),
            cavity_type=element.cavity_type), None
    if kind == "TransverseDeflectingCavity":
        return ELEMENT_KINDS["CrabCavity"](
            name, length=_value(element.length),
            voltage=-species_charge * _value(element.voltage), phi0=_value(element.phase),
            frequency=_value(element.frequency), tilt=_value(element.tilt), num_steps=1,
            **_offsets(element)), "bmad"
    if kind == "BPM":
        return ELEMENT_KINDS["Monitor"](name, **_offsets(element)), None
    if kind == "Screen":
        if element.is_blocking:
            warn(kind, "blocking", "a blocking Cheetah screen becomes a transparent beamtrack "
                 "Screen")
        binning = int(element.binning)
        deposit = {"histogram": "histogram", "kde": "kde", "cloud-in-cell": "cic"}[
            element.method]
        sensor = (int(element.resolution[0]), int(element.resolution[1]))
        if sensor[0] % binning == 0 and sensor[1] % binning == 0:
            params: dict[str, Any] = {
                "resolution": sensor, "binning": binning,
                "pixel_size": tuple(float(v) for v in element.pixel_size)}
        else:  # the binned pixels as the screen's own
            params = {"resolution": (sensor[0] // binning, sensor[1] // binning),
                      "pixel_size": tuple(float(v) * binning for v in element.pixel_size)}
        params.update(deposit=deposit, **_offsets(element))
        if deposit == "kde":
            params["bandwidth"] = float(element.kde_bandwidth)
        return ELEMENT_KINDS["Screen"](name, **params), None
    if kind == "Marker":
        return ELEMENT_KINDS["Marker"](name), None
    if kind == "Aperture":
        if not element.is_active:
            warn(kind, "inactive", "an inactive Cheetah aperture becomes a Marker")
            return ELEMENT_KINDS["Marker"](name), None
        limits = {}
        for axis, key in (("x", "x_max"), ("y", "y_max")):
            value = _value(getattr(element, key))
            limits[f"{axis}_limit"] = 0.0 if isinstance(value, float) and math.isinf(value) \
                else value
        return ELEMENT_KINDS["Aperture"](name, shape=element.shape, **limits), None
    raise LatticeError(f"{label}: the Cheetah element kind {kind} has no beamtrack "
                       "counterpart")


def _from_dipole(element: Any, kind: str, method: str | None, warn: OnceWarner) -> Element:
    name = element.name
    angle = _value(element.angle)
    length = _value(element.length)
    params: dict[str, Any] = {
        "angle": angle, "k1": _value(element.k1),
        "fint": _value(element.fringe_integral), "hgap": 0.5 * _value(element.gap),
        "ref_tilt": _value(element.tilt)}
    fint_exit = _value(element.fringe_integral_exit)
    hgap_exit = 0.5 * _value(element.gap_exit)
    if fint_exit is not element.fringe_integral and not _same(fint_exit, params["fint"]):
        params["fint_exit"] = fint_exit
    if not _same(hgap_exit, params["hgap"]):
        params["hgap_exit"] = hgap_exit
        if method == "linear":
            warn(kind, "gap_exit", "Cheetah's linear dipole map uses gap (not gap_exit) at "
                 "the exit; beamtrack uses gap_exit")
    e1 = _value(element.dipole_e1 if kind == "Dipole" else element.rbend_e1)
    e2 = _value(element.dipole_e2 if kind == "Dipole" else element.rbend_e2)
    fringe_at = element.fringe_at
    if method == "linear" or fringe_at == "both":
        params["fringe_type"] = "linear_edge"
    elif fringe_at == "neither":
        params["fringe_type"] = "none"
    else:
        # A linear edge with zero face angle and fringe integral kicks nothing.
        params["fringe_type"] = "linear_edge"
        if fringe_at == "entrance":
            e2, params["fint_exit"] = 0.0 * e2, 0.0
        else:
            e1, params["fint"] = 0.0 * e1, 0.0
            params.setdefault("fint_exit", _value(element.fringe_integral_exit))
    if method == "bmad" and not _is_zero(params["k1"]):
        warn(kind, "k1", "Cheetah's drift_kick_drift dipole ignores k1; beamtrack's bmad "
             "method tracks the combined-function bend")
    params["e1"], params["e2"] = e1, e2
    if kind == "RBend":
        half = 0.5 * angle
        chord = length * (math.sin(half) / half if half else 1.0) if isinstance(
            half, float) else length * _sinc_tensor(half)
        return ELEMENT_KINDS["RBend"](name, length=chord, **params)
    return ELEMENT_KINDS["SBend"](name, length=length, **params)


def _sinc_tensor(x: Any) -> Any:
    import torch

    return torch.sinc(x / math.pi)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b
    return a is b


def from_cheetah(segment: Any, *, flatten: bool = False,
                 reference: Reference | None = None) -> Beamline:
    """A beamline from a Cheetah segment.

    Parameters
    ----------
    segment
        A ``cheetah.Segment``.
    flatten
        Flatten nested segments into one line; by default they become nested
        beamlines of the same names.
    reference
        The reference particle to attach (a Cheetah segment has none; the beam
        carries it). Its charge converts cavity voltages (Cheetah's are physical
        voltages, beamtrack's energy gains); electrons are assumed when ``None``.

    Returns
    -------
    Beamline
        Element parameters as Python floats, or the Cheetah tensors themselves where
        they are batched or require a gradient (so gradients flow through).

    Raises
    ------
    LatticeError
        An element kind without beamtrack counterpart, named in the message.
    """
    warn = OnceWarner("from_cheetah")
    charge = reference.charge if reference is not None else -1.0
    line = _segment(segment, flatten, charge, warn, top=True)
    return line.with_reference(reference) if reference is not None else line


def _segment(segment: Any, flatten: bool, charge: float, warn: OnceWarner,
             top: bool = False) -> Beamline:
    converted: list[tuple[Any, str | None]] = []
    for element in segment.elements:
        if type(element).__name__ == "Segment":
            if flatten:
                inner = _segment(element, True, charge, warn)
                converted += [(e, e.method or inner.method) for e in inner.items]
            else:
                converted.append((_segment(element, False, charge, warn), None))
        else:
            converted.append(_convert_cheetah_element(element, charge, warn))
    methods = Counter(m for item, m in converted if m is not None and isinstance(item, Element))
    line_method = methods.most_common(1)[0][0] if methods else "linear"
    items = []
    for item, method in converted:
        if isinstance(item, Element):
            wanted = None if method in (None, line_method) else method
            if item.method != wanted:
                item = item.replace(method=wanted)
        items.append(item)
    return Beamline(items, name=segment.name, method=line_method)


# -- beamtrack -> Cheetah -----------------------------------------------------------------
def _tensor(value: Any, dtype: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, numbers.Real):
        return torch.tensor(float(value), dtype=dtype)
    return torch.as_tensor(np.asarray(backend_of(value).to_numpy(value)), dtype=dtype)


def _require_zero(element: Element, keys: tuple[str, ...], why: str) -> None:
    p = element.parameters()
    for key in keys:
        value = p.get(key)
        if value is not None and not _is_zero(value):
            raise LatticeError(f"{element.kind} {element.name!r}: {key} {why}")


def _misalignment(element: Element, dtype: Any) -> Any:
    import torch

    p = element.parameters()
    return torch.stack([_tensor(p["x_offset"], dtype), _tensor(p["y_offset"], dtype)], dim=-1)


def _to_cheetah_element(cheetah: Any, element: Element, method: str, charge: float,
                        warn: OnceWarner, dtype: Any) -> Any:
    kind = element.kind
    p = element.parameters()
    t = lambda key: _tensor(p[key], dtype)  # noqa: E731
    common = {"name": element.name, "sanitize_name": False, "dtype": dtype}
    tracking = METHOD_TO_CHEETAH[method]
    if kind == "Drift":
        return cheetah.Drift(t("length"), tracking_method=tracking, **common)
    if kind == "Quadrupole":
        return cheetah.Quadrupole(t("length"), k1=t("k1"), tilt=t("tilt"),
                                  misalignment=_misalignment(element, dtype),
                                  num_steps=int(p["num_steps"]), tracking_method=tracking,
                                  **common)
    if kind in ("SBend", "RBend"):
        return _to_dipole(cheetah, element, tracking, warn, dtype, common)
    if kind == "Sextupole":
        if method == "bmad":
            warn(kind, "bmad", "Cheetah has no bmad sextupole; its second_order map is used "
                 "(the second-order Taylor map of beamtrack's)")
            tracking = "second_order"
        return cheetah.Sextupole(t("length"), k2=t("k2"), tilt=t("tilt"),
                                 misalignment=_misalignment(element, dtype),
                                 tracking_method=tracking, **common)
    if kind in ("HKicker", "VKicker", "Kicker"):
        _require_zero(element, ("tilt", "x_offset", "y_offset"),
                      "of a corrector has no Cheetah counterpart")
        if not _is_zero(p["length"]):
            warn(kind, "thick", "Cheetah kicks a thick corrector at its exit, beamtrack in its "
                 "middle (x differs by length * kick / 2)")
        if kind == "Kicker":
            return cheetah.CombinedCorrector(t("length"), horizontal_angle=t("hkick"),
                                             vertical_angle=t("vkick"), **common)
        cls = cheetah.HorizontalCorrector if kind == "HKicker" else cheetah.VerticalCorrector
        return cls(t("length"), angle=t("kick"), **common)
    if kind == "Solenoid":
        if method != "linear":
            warn(kind, "linear", "Cheetah tracks solenoids with their linear map only")
        return cheetah.Solenoid(t("length"), k=0.5 * t("ks"),
                                misalignment=_misalignment(element, dtype), **common)
    if kind == "LCavity":
        _require_zero(element, ("x_offset", "y_offset", "tilt"),
                      "of a cavity has no Cheetah counterpart")
        warn(kind, "model", "Cheetah's cavity (Rosenzweig-Serafini transverse map, its own "
             "longitudinal map) and Bmad's lcavity agree in the reference energy gain but "
             "only approximately in the particles' (measured 8e-6 in pz at 1e-3 amplitudes "
             "for 3 MV at 1.3 GHz and 13 MeV)")
        return cheetah.Cavity(t("length"), voltage=t("voltage") / -charge,
                              phase=-360.0 * t("phi0"), frequency=t("frequency"),
                              cavity_type=p["cavity_type"], **common)
    if kind == "CrabCavity":
        if int(p["num_steps"]) != 1:
            raise LatticeError(f"CrabCavity {element.name!r}: Cheetah's deflecting cavity "
                               "kicks once; num_steps must be 1")
        if method != "bmad":
            warn(kind, "method", "Cheetah tracks deflecting cavities with drift_kick_drift")
        return cheetah.TransverseDeflectingCavity(
            t("length"), voltage=t("voltage") / -charge, phase=t("phi0"),
            frequency=t("frequency"), tilt=t("tilt"),
            misalignment=_misalignment(element, dtype), **common)
    if kind == "Monitor":
        _require_zero(element, ("tilt", "resolution"), "of a monitor has no Cheetah "
                      "counterpart")
        return cheetah.BPM(misalignment=_misalignment(element, dtype), **common)
    if kind == "Screen":
        _require_zero(element, ("tilt",), "of a screen has no Cheetah counterpart")
        deposit = {"histogram": "histogram", "kde": "kde", "cic": "cloud-in-cell"}[p["deposit"]]
        extra = {}
        if deposit == "kde" and not _is_zero(p["bandwidth"]):
            extra["kde_bandwidth"] = t("bandwidth")
        return cheetah.Screen(resolution=tuple(int(v) for v in p["resolution"]),
                              pixel_size=_tensor(np.asarray(p["pixel_size"], dtype=float),
                                                 dtype),
                              misalignment=_misalignment(element, dtype), method=deposit,
                              binning=int(p["binning"]), **extra, **common)
    if kind == "Marker":
        return cheetah.Marker(**common)
    if kind == "Aperture":
        _require_zero(element, ("x_offset", "y_offset", "tilt"),
                      "of an aperture has no Cheetah counterpart")
        limits = {}
        for axis, key in (("x", "x_max"), ("y", "y_max")):
            value = p[f"{axis}_limit"]
            limits[key] = _tensor(math.inf if _is_zero(value) else value, dtype)
        return cheetah.Aperture(shape=p["shape"], is_active=True, **limits, **common)
    raise LatticeError(f"{kind} {element.name!r}: beamtrack's {kind} has no Cheetah "
                       "counterpart")


def _to_dipole(cheetah: Any, element: Element, tracking: str, warn: OnceWarner, dtype: Any,
               common: dict[str, Any]) -> Any:
    p = element.parameters()
    kind = element.kind
    _require_zero(element, ("tilt", "x_offset", "y_offset", "dg"),
                  "of a bend has no Cheetah counterpart (ref_tilt converts to Cheetah's tilt)")
    fringe = {"linear_edge": "both", "none": "neither"}
    if p["fringe_type"] not in fringe:
        raise LatticeError(f"{kind} {element.name!r}: fringe_type {p['fringe_type']!r} has "
                           "no Cheetah counterpart (linear_edge and none convert)")
    if p["fringe_type"] == "none" and tracking == "linear" and not (
            _is_zero(p["e1"]) and _is_zero(p["e2"])):
        warn(kind, "none", "Cheetah's linear dipole map always includes the edges")
    if tracking == "drift_kick_drift" and not _is_zero(p["k1"]):
        warn(kind, "k1", "Cheetah's drift_kick_drift dipole ignores k1; beamtrack's bmad "
             "method tracks the combined-function bend")
    if tracking == "drift_kick_drift" and int(p["num_steps"]) != 1:
        warn(kind, "num_steps", "Cheetah's dipole has no num_steps (the exact body does not "
             "need it)")
    t = lambda key: _tensor(p[key], dtype)  # noqa: E731
    gap = 2.0 * t("hgap")
    gap_exit = None if p["hgap_exit"] is None else 2.0 * t("hgap_exit")
    fint_exit = None if p["fint_exit"] is None else t("fint_exit")
    args = dict(angle=t("angle"), k1=t("k1"), tilt=t("ref_tilt"), gap=gap, gap_exit=gap_exit,
                fringe_integral=t("fint"), fringe_integral_exit=fint_exit,
                fringe_at=fringe[p["fringe_type"]], tracking_method=tracking, **common)
    if kind == "RBend":
        angle = args["angle"]
        arc = t("length") / _sinc_tensor(0.5 * angle)
        return cheetah.RBend(arc, rbend_e1=t("e1"), rbend_e2=t("e2"), **args)
    return cheetah.Dipole(t("length"), dipole_e1=t("e1"), dipole_e2=t("e2"), **args)


def to_cheetah(line: Beamline, dtype: Any = None) -> Any:
    """A Cheetah segment from a beamline.

    Parameters
    ----------
    line
        The beamline; nested beamlines become nested segments. Each element's method
        (its own, else its line's) becomes Cheetah's ``tracking_method``.
    dtype
        torch dtype of the new tensors; ``torch.float64`` by default. Parameters that
        are torch tensors are passed as they are, so gradients flow.

    Returns
    -------
    cheetah.Segment

    Raises
    ------
    LatticeError
        An element kind or feature without Cheetah counterpart, named in the message.
    """
    import cheetah
    import torch

    warn = OnceWarner("to_cheetah")
    reference = getattr(line, "reference", None)
    charge = reference.charge if reference is not None else -1.0
    return _to_segment(cheetah, line, line.method, charge, warn, dtype or torch.float64)


def _to_segment(cheetah: Any, line: Beamline, method: str, charge: float, warn: OnceWarner,
                dtype: Any) -> Any:
    elements = []
    for item in line.items:
        if isinstance(item, Beamline):
            elements.append(_to_segment(cheetah, item, item.method, charge, warn, dtype))
        else:
            elements.append(_to_cheetah_element(cheetah, item, item.method or method, charge,
                                                warn, dtype))
    return cheetah.Segment(elements, name=line.name, sanitize_name=False)


__all__ = ["METHOD_FROM_CHEETAH", "METHOD_TO_CHEETAH", "from_cheetah", "to_cheetah"]
