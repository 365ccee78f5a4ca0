"""In-memory conversion of lines between beamtrack and Xsuite (``xtrack.Line``).

:func:`from_xsuite` turns an ``xtrack.Line`` into a :class:`~beamtrack.lattice.beamline.Beamline`
and :func:`to_xsuite` the reverse; element names are kept, and a name that occurs at
several places of the Xsuite line is one beamtrack element at several places. The
models that coincide exactly and those that agree only approximately (with measured
deviations) are listed in ``docs/formats/cheetah-xsuite.md``; an approximate
conversion warns once per element kind and call (:class:`LatticeFileWarning`), and a
kind without counterpart raises :class:`LatticeError` naming the element.

xtrack is imported inside the functions (an optional dependency).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from beamtrack.backends import backend_of
from beamtrack.lattice.beamline import Beamline
from beamtrack.lattice.elements import ELEMENT_KINDS, Element
from beamtrack.lattice.errors import LatticeError, OnceWarner
from beamtrack.lattice.reference import Reference
from beamtrack.tracking.species import SPECIES, Species

#: Half-widths at or above this [m] mean "no limit" (Xsuite's open LimitRect sides).
_OPEN = 1e9


# -- helpers --------------------------------------------------------------------------


def _number(value: Any) -> float:
    """A Python float of a number or a one-element array of any backend."""
    if isinstance(value, numbers.Real):
        return float(value)
    array = np.asarray(backend_of(value).to_numpy(value))
    if array.size != 1:
        raise LatticeError(f"Xsuite holds one value per parameter, got an array of shape "
                           f"{array.shape} (batched parameters cannot be converted)")
    return float(array.reshape(()))


def _label(element: Any, name: str) -> str:
    return f"{type(element).__name__} {name!r}"


def _field(element: Any, key: str, default: float = 0.0) -> float:
    return float(getattr(element, key, default))


def _array(element: Any, key: str) -> np.ndarray:
    value = getattr(element, key, None)
    return np.zeros(0) if value is None else np.asarray(value, dtype=float)


def _trimmed(values: np.ndarray) -> tuple[float, ...]:
    nonzero = np.flatnonzero(values)
    return tuple(float(v) for v in values[: nonzero[-1] + 1]) if nonzero.size else ()


def _check_frame(element: Any, name: str, *, rotation_ok: bool = True) -> dict[str, float]:
    """``x_offset``, ``y_offset``, ``tilt`` of an Xsuite element; other frame changes raise."""
    for key in ("shift_s", "rot_x_rad", "rot_y_rad", "rot_s_rad_no_frame"):
        if _field(element, key) != 0.0:
            raise LatticeError(f"{_label(element, name)}: {key} = {_field(element, key)!r} has "
                               "no beamtrack counterpart (only shift_x, shift_y and rot_s_rad "
                               "convert)")
    out = {"x_offset": _field(element, "shift_x"), "y_offset": _field(element, "shift_y"),
           "tilt": _field(element, "rot_s_rad")}
    if not rotation_ok and out["tilt"] != 0.0:
        raise LatticeError(f"{_label(element, name)}: rot_s_rad has no counterpart here")
    return out


def _no_body_multipoles(element: Any, name: str, main: dict[int, str]) -> None:
    """Raise if the magnet carries multipole components beyond its main ones."""
    for key in ("knl", "ksl"):
        values = _array(element, key)
        if np.any(values != 0.0):
            raise LatticeError(f"{_label(element, name)}: {key} = {values.tolist()} (multipole "
                               "errors in a magnet body) has no beamtrack counterpart")
    for key in main.values():
        if _field(element, key) != 0.0:
            raise LatticeError(f"{_label(element, name)}: skew component {key} = "
                               f"{_field(element, key)!r} has no beamtrack counterpart; "
                               "use rot_s_rad for a rotated magnet")


def _num_steps(element: Any) -> int:
    return max(1, int(getattr(element, "num_multipole_kicks", 0) or 0))


def _species(mass0: float, q0: float) -> Species:
    for known in SPECIES.values():
        if abs(known.mc2 - mass0) <= 1e-9 * mass0 and known.charge == q0:
            return known
    return Species(f"mass0={mass0:g} eV, q0={q0:+g}", float(mass0), float(q0))


# -- Xsuite -> beamtrack ------------------------------------------------------------------
def _bend_fringe(element: Any, name: str, warn: OnceWarner) -> dict[str, Any]:
    """Edge parameters of an Xsuite Bend/RBend as beamtrack SBend parameters."""
    kind = type(element).__name__
    sides = {}
    for side in ("entry", "exit"):
        active = bool(getattr(element, f"edge_{side}_active", 1))
        model = str(getattr(element, f"edge_{side}_model", "linear"))
        if _field(element, f"edge_{side}_angle_fdown") != 0.0:
            raise LatticeError(f"{_label(element, name)}: edge_{side}_angle_fdown has no "
                               "beamtrack counterpart")
        if not active or model == "suppressed":
            model = "suppressed"
        elif model not in ("linear", "full"):
            raise LatticeError(f"{_label(element, name)}: edge model {model!r} has no "
                               "beamtrack counterpart (linear, full and suppressed convert)")
        sides[side] = (model, _field(element, f"edge_{side}_angle"),
                       _field(element, f"edge_{side}_fint"), _field(element, f"edge_{side}_hgap"))
    models = {m for m, *_ in sides.values()}
    if models == {"suppressed"}:
        fringe_type = "none"
    elif "full" in models:
        if models != {"full"}:
            raise LatticeError(f"{_label(element, name)}: a 'full' edge on one side only "
                               "has no beamtrack counterpart")
        fringe_type = "basic_bend"
        warn(kind, "full_edge", "Xsuite's 'full' edge (exact wedge and fringe) becomes "
             "Bmad's second-order basic_bend edge; they agree to second order (measured "
             "5e-12 m at 1e-3 amplitudes)")
    else:
        fringe_type = "linear_edge"
    out: dict[str, Any] = {"fringe_type": fringe_type}
    for side, (e, f, h) in (("entry", ("e1", "fint", "hgap")), ("exit", ("e2", "fint_exit",
                                                                          "hgap_exit"))):
        model, angle, fint, hgap = sides[side]
        if model == "suppressed" and fringe_type == "linear_edge":
            # A linear edge with zero face angle and fringe integral kicks nothing.
            angle, fint = 0.0, 0.0
        out[e], out[f], out[h] = angle, fint, hgap
    if out["fint_exit"] == out["fint"] and out["hgap_exit"] == out["hgap"]:
        out["fint_exit"] = out["hgap_exit"] = None  # beamtrack's "same as the entrance"
    return out


def _from_bend(element: Any, name: str, warn: OnceWarner, rbend: bool) -> Element:
    kind = type(element).__name__
    length = _field(element, "length")
    angle = _field(element, "angle")
    h = _field(element, "h", angle / length if length else 0.0)
    raw_k0 = getattr(element, "k0", 0.0)
    if isinstance(raw_k0, str) or bool(getattr(element, "k0_from_h", False)):
        k0 = h  # Xsuite's k0 = "from_h"
    else:
        k0 = float(raw_k0)
    _no_body_multipoles(element, name, {})
    if _field(element, "k2") != 0.0:
        raise LatticeError(f"{_label(element, name)}: k2 in a bend has no beamtrack "
                           "counterpart")
    params: dict[str, Any] = {"length": length, "angle": angle, "k1": _field(element, "k1"),
                              "num_steps": _num_steps(element)}
    if not math.isclose(k0, h, rel_tol=1e-12, abs_tol=1e-15):
        if "dg" not in ELEMENT_KINDS["SBend"].declaration():
            raise LatticeError(f"{_label(element, name)}: k0 = {k0!r} differs from the "
                               f"curvature h = {h!r}; this beamtrack has no bend field error "
                               "(dg)")
        params["dg"] = k0 - h
    params.update(_bend_fringe(element, name, warn))
    frame = _check_frame(element, name)
    params["ref_tilt"] = frame.pop("tilt")
    if frame["x_offset"] or frame["y_offset"]:
        warn(kind, "offset", "bend offsets: beamtrack (Bmad) shifts the magnet at the middle "
             "of its arc, Xsuite about its rot_shift_anchor; they differ by terms of order "
             "offset * angle")
    params.update(frame)
    model = str(getattr(element, "model", "adaptive"))
    if params["k1"] != 0.0:
        warn(kind, "k1", "a combined-function bend body differs between Bmad (bmad_standard) "
             "and Xsuite's models (measured 1e-7 at 1e-3 amplitudes, length 0.5 m, angle "
             "0.1, k1 0.5)")
    elif model not in ("bend-kick-bend",):
        warn(kind, "model", f"Xsuite bend model {model!r} is an expanded body; beamtrack's "
             "exact body equals Xsuite's 'bend-kick-bend' (measured 2e-9 at 1e-3 "
             "amplitudes otherwise)")
    if rbend:
        if str(getattr(element, "rbend_model", "adaptive")) == "straight-body" or \
                _field(element, "rbend_shift") != 0.0:
            raise LatticeError(f"{_label(element, name)}: a straight-body RBend (or "
                               "rbend_shift) has no beamtrack counterpart")
        half = 0.5 * angle
        params["length"] = _field(element, "length_straight",
                                  length * (math.sin(half) / half if half else 1.0))
        return ELEMENT_KINDS["RBend"](name, **params)
    return ELEMENT_KINDS["SBend"](name, **params)


def _from_multipole(element: Any, name: str, warn: OnceWarner) -> Element:
    knl, ksl = _array(element, "knl"), _array(element, "ksl")
    hxl = _field(element, "hxl")
    frame = _check_frame(element, name)
    knl0 = float(knl[0]) if knl.size else 0.0
    ksl0 = float(ksl[0]) if ksl.size else 0.0
    higher = np.any(knl[1:] != 0.0) or np.any(ksl[1:] != 0.0)
    if hxl == 0.0 and (knl0 or ksl0) and not higher:
        # A thin corrector: Xsuite kicks by -knl[0] and ksl[0] without dispersive terms.
        if ksl0 == 0.0:
            return ELEMENT_KINDS["HKicker"](name, kick=-knl0, **frame)
        if knl0 == 0.0:
            return ELEMENT_KINDS["VKicker"](name, kick=ksl0, **frame)
        return ELEMENT_KINDS["Kicker"](name, hkick=-knl0, vkick=ksl0, **frame)
    if not math.isclose(hxl, knl0, rel_tol=1e-12, abs_tol=0.0) or ksl0 != 0.0:
        raise LatticeError(f"{_label(element, name)}: a thin multipole with a dipole "
                           f"component (knl[0] = {knl0!r}, ksl[0] = {ksl0!r}) other than a "
                           f"bend of the reference (hxl = knl[0] = {hxl!r}) or a pure "
                           "corrector has no beamtrack counterpart")
    # Xsuite's length of a thin multipole is the curved reference's (MAD-X lrad): the
    # weak focusing -knl[0] (hxl / length) x, which is beamtrack's ref_length.
    return ELEMENT_KINDS["Multipole"](name, knl=_trimmed(knl), ksl=_trimmed(ksl),
                                      ref_length=_field(element, "length"), **frame)


def _from_cavity(element: Any, name: str, warn: OnceWarner, q0: float) -> Element:
    for key in ("harmonic", "absolute_time", "lag_taper"):
        if _field(element, key) != 0.0:
            raise LatticeError(f"{_label(element, name)}: {key} has no beamtrack counterpart")
    length = _field(element, "length")
    frame = _check_frame(element, name)
    if length:
        warn("Cavity", "thick", "a thick cavity: Bmad's rfcavity (half kicks at the ends) and "
             "Xsuite's thick cavity place the energy kicks differently (measured 5e-7 in "
             "pz at 1e-3 amplitudes, 1 m, 3 MV, 400 MHz)")
    return ELEMENT_KINDS["RFCavity"](
        name, length=length, voltage=q0 * _field(element, "voltage"),
        frequency=_field(element, "frequency"), phi0=0.5 - _field(element, "lag") / 360.0,
        num_steps=max(1, int(getattr(element, "num_kicks", 1) or 1)), **frame)


def _from_limit(element: Any, name: str, elliptical: bool) -> Element:
    frame = _check_frame(element, name)
    if elliptical:
        a_squ, b_squ = _field(element, "a_squ"), _field(element, "b_squ")
        a, b = math.sqrt(a_squ), math.sqrt(b_squ)
        return ELEMENT_KINDS["Aperture"](name, shape="elliptical", x_limit=a, y_limit=b,
                                         **frame)
    params: dict[str, Any] = {}
    for axis in ("x", "y"):
        low, high = _field(element, f"min_{axis}"), _field(element, f"max_{axis}")
        if high - low >= 2 * _OPEN:
            params[f"{axis}_limit"] = 0.0
            if low != -high:
                raise LatticeError(f"{_label(element, name)}: an open but asymmetric "
                                   f"{axis} range has no beamtrack counterpart")
        else:
            params[f"{axis}_limit"] = 0.5 * (high - low)
            params[f"{axis}_offset"] = 0.5 * (high + low)
    x_offset = frame.pop("x_offset") + params.pop("x_offset", 0.0)
    y_offset = frame.pop("y_offset") + params.pop("y_offset", 0.0)
    if frame["tilt"] and (x_offset or y_offset):
        raise LatticeError(f"{_label(element, name)}: a rotated, off-centre LimitRect has no "
                           "beamtrack counterpart")
    return ELEMENT_KINDS["Aperture"](name, shape="rectangular", x_offset=x_offset,
                                     y_offset=y_offset, **params, **frame)


def _convert_xsuite_element(element: Any, name: str, warn: OnceWarner, q0: float,
                            exact_drifts: bool) -> Element:
    kind = type(element).__name__
    if kind == "Drift":
        model = str(getattr(element, "model", "adaptive"))
        if model != "exact" and not (model == "adaptive" and exact_drifts):
            warn(kind, "expanded", "Xsuite's expanded drift is the paraxial approximation of "
                 "beamtrack's exact drift (measured 1.4e-9 m over 1.3 m at 1e-3 amplitudes; "
                 "use model='exact' in Xsuite for agreement to rounding)")
        return ELEMENT_KINDS["Drift"](name, length=_field(element, "length"))
    if kind == "Marker":
        return ELEMENT_KINDS["Marker"](name)
    if kind == "Quadrupole":
        _no_body_multipoles(element, name, {1: "k1s"})
        model = str(getattr(element, "model", "adaptive"))
        if model.startswith("drift-kick-drift"):
            warn(kind, "model", f"Xsuite quadrupole model {model!r} approximates the thick "
                 "quadrupole that beamtrack's bmad method and Xsuite's default model share "
                 "(measured 3e-8 with 50 kicks)")
        return ELEMENT_KINDS["Quadrupole"](name, length=_field(element, "length"),
                                           k1=_field(element, "k1"),
                                           num_steps=_num_steps(element),
                                           **_check_frame(element, name))
    if kind in ("Bend", "RBend"):
        return _from_bend(element, name, warn, rbend=kind == "RBend")
    if kind in ("Sextupole", "Octupole"):
        order, key = (2, "k2") if kind == "Sextupole" else (3, "k3")
        _no_body_multipoles(element, name, {order: f"{key}s"})
        warn(kind, "integrator", "thick multipole slicing differs: Bmad kicks at the slice "
             "ends (half kicks at the magnet ends), Xsuite's integrators elsewhere; both "
             "converge with num_steps = num_multipole_kicks (measured 4e-8 at 1e-3 "
             "amplitudes for a 0.2 m sextupole with k2 = 30 and one kick, 7e-10 with 4 "
             "teapot kicks)")
        return ELEMENT_KINDS[kind](name, length=_field(element, "length"),
                                   **{key: _field(element, key)},
                                   num_steps=_num_steps(element), **_check_frame(element, name))
    if kind == "Multipole":
        return _from_multipole(element, name, warn)
    if kind in ("UniformSolenoid", "Solenoid"):
        if _field(element, "ksi") != 0.0:
            raise LatticeError(f"{_label(element, name)}: ksi has no beamtrack counterpart")
        for key in ("x0", "y0"):
            if _field(element, key) != 0.0:
                raise LatticeError(f"{_label(element, name)}: {key} has no beamtrack "
                                   "counterpart")
        _no_body_multipoles(element, name, {})
        return ELEMENT_KINDS["Solenoid"](name, length=_field(element, "length"),
                                         ks=_field(element, "ks"),
                                         **_check_frame(element, name))
    if kind == "Cavity":
        return _from_cavity(element, name, warn, q0)
    if kind in ("LimitRect", "LimitEllipse"):
        return _from_limit(element, name, elliptical=kind == "LimitEllipse")
    if kind == "DipoleEdge" and "DipoleEdge" in ELEMENT_KINDS:
        model = str(getattr(element, "model", "linear"))
        if model != "linear" or _field(element, "e1_fd") != 0.0:
            raise LatticeError(f"{_label(element, name)}: only the linear DipoleEdge model "
                               "converts")
        frame = _check_frame(element, name)
        if frame["x_offset"] or frame["y_offset"]:
            raise LatticeError(f"{_label(element, name)}: offsets of an edge do not convert")
        return ELEMENT_KINDS["DipoleEdge"](name, h=_field(element, "k"),
                                           e1=_field(element, "e1"),
                                           fint=_field(element, "fint"),
                                           hgap=_field(element, "hgap"), tilt=frame["tilt"])
    if kind in ("XYShift", "Translation"):
        if _field(element, "shift_s") != 0.0:
            raise LatticeError(f"{_label(element, name)}: shift_s has no beamtrack "
                               "counterpart")
        dx = _field(element, "dx") if kind == "XYShift" else _field(element, "shift_x")
        dy = _field(element, "dy") if kind == "XYShift" else _field(element, "shift_y")
        c = np.array([-dx, 0.0, -dy, 0.0, 0.0, 0.0])
        return ELEMENT_KINDS["LinearMap"](name, r=np.eye(6), c=c)
    if kind in ("SRotation", "Rotation"):
        if kind == "Rotation" and (_field(element, "rot_x_rad") or _field(element, "rot_y_rad")):
            raise LatticeError(f"{_label(element, name)}: only rotations about s convert")
        angle = _field(element, "angle") * math.pi / 180.0 if kind == "SRotation" else \
            _field(element, "rot_s_rad")
        return ELEMENT_KINDS["LinearMap"](name, r=_rotation(angle))
    raise LatticeError(f"{kind} {name!r}: the Xsuite element kind {kind} has no beamtrack "
                       "counterpart")


def _rotation(angle: float) -> np.ndarray:
    """Xsuite's SRotation: coordinates of the frame rotated by ``angle`` about s."""
    c, s = math.cos(angle), math.sin(angle)
    r = np.eye(6)
    r[0, 0], r[0, 2], r[2, 0], r[2, 2] = c, s, -s, c
    r[1, 1], r[1, 3], r[3, 1], r[3, 3] = c, s, -s, c
    return r


def from_xsuite(line: Any, name: str = "xsuite_line") -> Beamline:
    """A beamline from an Xsuite line.

    Parameters
    ----------
    line
        An ``xtrack.Line``. Its ``particle_ref`` (if set) becomes the beamline's
        :attr:`~beamtrack.lattice.beamline.Beamline.reference` and its ``q0`` folds the
        charge into cavity voltages.
    name
        Name of the beamline (an Xsuite line has none).

    Returns
    -------
    Beamline
        Method ``"bmad"``; element names kept; Xsuite's ``num_multipole_kicks`` becomes
        ``num_steps``.

    Raises
    ------
    LatticeError
        An element kind (or a feature such as ``shift_s`` or body multipole errors)
        without beamtrack counterpart; the message names the element.

    Warns
    -----
    LatticeFileWarning
        Once per kind whose models agree only approximately (see
        ``docs/formats/cheetah-xsuite.md``).
    """
    warn = OnceWarner("from_xsuite")
    reference = None
    q0 = 1.0
    ref = getattr(line, "particle_ref", None)
    if ref is not None:
        q0 = float(np.atleast_1d(ref.q0)[0])
        mass0 = float(np.atleast_1d(ref.mass0)[0])
        p0c = float(np.atleast_1d(ref.p0c)[0])
        reference = Reference(_species(mass0, q0), p0c)
    config = getattr(line, "config", None)
    exact_drifts = bool(getattr(config, "XTRACK_USE_EXACT_DRIFTS", False)) if config else False
    converted: dict[str, Element] = {}
    items = []
    for element_name in line.element_names:
        if element_name not in converted:
            converted[element_name] = _convert_xsuite_element(
                line.element_dict[element_name], element_name, warn, q0, exact_drifts)
        items.append(converted[element_name])
    return Beamline(items, name=name, method="bmad", reference=reference)


# -- beamtrack -> Xsuite ------------------------------------------------------------------
def _frame(element: Element, tilt_key: str = "tilt") -> dict[str, float]:
    params = element.parameters()
    return {"shift_x": _number(params.get("x_offset", 0.0)),
            "shift_y": _number(params.get("y_offset", 0.0)),
            "rot_s_rad": _number(params.get(tilt_key, 0.0))}


def _to_bend(xt: Any, element: Element, warn: OnceWarner) -> Any:
    p = {k: (v if isinstance(v, str) or v is None else _number(v))
         for k, v in element.parameters().items()}
    kind = element.kind
    if p["tilt"] != 0.0:
        raise LatticeError(f"{kind} {element.name!r}: a rolled bend (tilt) has no Xsuite "
                           "counterpart here; ref_tilt converts to rot_s_rad")
    fringe = {"linear_edge": "linear", "none": "suppressed", "basic_bend": "full"}
    if p["fringe_type"] not in fringe:
        raise LatticeError(f"{kind} {element.name!r}: fringe_type {p['fringe_type']!r} has "
                           "no Xsuite counterpart (linear_edge, none, basic_bend convert)")
    if p["fringe_type"] == "basic_bend":
        warn(kind, "full_edge", "Bmad's second-order basic_bend edge becomes Xsuite's 'full' "
             "edge; they agree to second order (measured 5e-12 m at 1e-3 amplitudes)")
    if p["k1"] != 0.0:
        warn(kind, "k1", "a combined-function bend body differs between Bmad (bmad_standard) "
             "and Xsuite's models (measured 1e-7 at 1e-3 amplitudes, length 0.5 m, angle "
             "0.1, k1 0.5)")
    if p["x_offset"] or p["y_offset"]:
        warn(kind, "offset", "bend offsets: beamtrack (Bmad) shifts the magnet at the middle "
             "of its arc, Xsuite about its rot_shift_anchor; they differ by terms of order "
             "offset * angle")
    arc = p["length"]
    if kind == "RBend":
        half = 0.5 * p["angle"]
        arc = p["length"] * (half / math.sin(half) if half else 1.0)
    if arc <= 0.0:
        raise LatticeError(f"{kind} {element.name!r}: Xsuite needs a bend of positive length")
    h = p["angle"] / arc
    model = fringe[p["fringe_type"]]
    fint_exit = p["fint"] if p["fint_exit"] is None else p["fint_exit"]
    hgap_exit = p["hgap"] if p["hgap_exit"] is None else p["hgap_exit"]
    common = dict(
        angle=p["angle"], k0=h + p.get("dg", 0.0), k1=p["k1"],
        model="bend-kick-bend" if p["k1"] == 0.0 else "adaptive",
        num_multipole_kicks=int(p["num_steps"]),
        edge_entry_angle=p["e1"], edge_exit_angle=p["e2"],
        edge_entry_fint=p["fint"], edge_entry_hgap=p["hgap"],
        edge_exit_fint=fint_exit, edge_exit_hgap=hgap_exit,
        edge_entry_model=model, edge_exit_model=model,
        shift_x=p["x_offset"], shift_y=p["y_offset"], rot_s_rad=p["ref_tilt"])
    if kind == "RBend":
        return xt.RBend(length_straight=p["length"], rbend_model="curved-body", **common)
    return xt.Bend(length=arc, **common)


def _to_aperture(xt: Any, element: Element) -> Any:
    p = element.parameters()
    x_limit, y_limit = _number(p["x_limit"]), _number(p["y_limit"])
    frame = _frame(element)
    if p["shape"] == "elliptical":
        if x_limit == 0.0 or y_limit == 0.0:
            raise LatticeError(f"Aperture {element.name!r}: an elliptical aperture open in one "
                               "plane has no Xsuite counterpart")
        return xt.LimitEllipse(a=x_limit, b=y_limit, **frame)
    rot = frame.pop("rot_s_rad")
    limits = {}
    for axis, half in (("x", x_limit), ("y", y_limit)):
        half = half if half > 0.0 else 2 * _OPEN
        limits[f"min_{axis}"], limits[f"max_{axis}"] = -half, half
    return xt.LimitRect(**limits, **frame, rot_s_rad=rot)


def _convert_element(xt: Any, element: Element, method: str, warn: OnceWarner, q0: float) -> Any:
    kind = element.kind
    p = element.parameters()
    if method != "bmad" and element.has_body and kind not in ("Aperture",):
        warn(kind, f"method-{method}", f"Xsuite tracks the full model; beamtrack's "
             f"{method!r} method of this element has no Xsuite counterpart")
    if kind == "Drift":
        return xt.Drift(length=_number(p["length"]), model="exact")
    if kind in ("Marker", "Monitor", "Screen"):
        if kind != "Marker":
            warn(kind, "marker", f"a {kind} becomes an Xsuite Marker (particles pass "
                 "unchanged in both; its reading is beamtrack's)")
        return xt.Marker()
    if kind == "Quadrupole":
        return xt.Quadrupole(length=_number(p["length"]), k1=_number(p["k1"]),
                             num_multipole_kicks=int(p["num_steps"]), **_frame(element))
    if kind in ("SBend", "RBend"):
        return _to_bend(xt, element, warn)
    if kind in ("Sextupole", "Octupole"):
        key = "k2" if kind == "Sextupole" else "k3"
        warn(kind, "integrator", "thick multipole slicing differs: Bmad kicks at the slice "
             "ends, Xsuite's teapot integrator elsewhere (measured 7e-10 at 1e-3 amplitudes "
             "for a 0.2 m sextupole with k2 = 30 and 4 steps)")
        return getattr(xt, kind)(length=_number(p["length"]), **{key: _number(p[key])},
                                 num_multipole_kicks=int(p["num_steps"]), integrator="teapot",
                                 **_frame(element))
    if kind == "Multipole":
        knl = [_number(v) for v in _orders(p["knl"])]
        ksl = [_number(v) for v in _orders(p["ksl"])]
        if ksl and ksl[0] != 0.0:
            raise LatticeError(f"Multipole {element.name!r}: ksl[0] bends the reference "
                               "vertically, which Xsuite's thin multipole cannot")
        order = max(len(knl), len(ksl), 1) - 1
        knl += [0.0] * (order + 1 - len(knl))
        ksl += [0.0] * (order + 1 - len(ksl))
        return xt.Multipole(knl=knl, ksl=ksl, hxl=knl[0], length=_number(p["ref_length"]),
                            **_frame(element))
    if kind in ("HKicker", "VKicker", "Kicker"):
        if _number(p["length"]) != 0.0:
            raise LatticeError(f"{kind} {element.name!r}: a thick corrector has no Xsuite "
                               "counterpart (zero-length ones become thin multipoles)")
        hkick = _number(p["kick"]) if kind == "HKicker" else _number(p.get("hkick", 0.0))
        vkick = _number(p["kick"]) if kind == "VKicker" else _number(p.get("vkick", 0.0))
        return xt.Multipole(knl=[-hkick], ksl=[vkick], hxl=0.0, **_frame(element))
    if kind == "Solenoid":
        return xt.UniformSolenoid(length=_number(p["length"]), ks=_number(p["ks"]),
                                  **_frame(element))
    if kind == "RFCavity":
        length = _number(p["length"])
        if length:
            warn(kind, "thick", "a thick cavity: Bmad's rfcavity (half kicks at the ends) and "
                 "Xsuite's thick cavity place the energy kicks differently (measured 5e-7 in "
                 "pz at 1e-3 amplitudes, 1 m, 3 MV, 400 MHz)")
        frame = _frame(element)
        return xt.Cavity(length=length, voltage=_number(p["voltage"]) / q0,
                         frequency=_number(p["frequency"]),
                         lag=360.0 * (0.5 - _number(p["phi0"])),
                         num_kicks=int(p["num_steps"]), **frame)
    if kind == "Aperture":
        return _to_aperture(xt, element)
    if kind == "DipoleEdge":
        if _number(p.get("x_offset", 0.0)) or _number(p.get("y_offset", 0.0)):
            raise LatticeError(f"DipoleEdge {element.name!r}: offsets of an edge have no "
                               "Xsuite counterpart")
        return xt.DipoleEdge(k=_number(p["h"]), e1=_number(p["e1"]), fint=_number(p["fint"]),
                             hgap=_number(p["hgap"]), model="linear",
                             rot_s_rad=_number(p.get("tilt", 0.0)))
    raise LatticeError(f"{kind} {element.name!r}: beamtrack's {kind} has no Xsuite "
                       "counterpart")


def _orders(value: Any) -> list[Any]:
    if isinstance(value, (tuple, list)):
        return list(value)
    return list(np.atleast_1d(backend_of(value).to_numpy(value)))


def to_xsuite(line: Beamline, p0c: float | None = None, mc2: float | None = None,
              q0: float | None = None) -> Any:
    """An Xsuite line from a beamline.

    Parameters
    ----------
    line
        The beamline (nested lines are flattened; a name at several places is one
        Xsuite element at several places).
    p0c
        Reference momentum times c [eV] of the line's ``particle_ref``; by default
        ``line.reference.p0c``.
    mc2
        Rest energy [eV]; by default ``line.reference.mc2``.
    q0
        Charge number; by default ``line.reference.charge``, else that of the known
        species of rest energy ``mc2`` (Xsuite's cavity voltage is ``voltage / q0``).

    Returns
    -------
    xtrack.Line
        With ``particle_ref`` set; drifts use Xsuite's exact model and bends without
        ``k1`` the exact ``"bend-kick-bend"`` model, so that these agree with
        beamtrack's ``"bmad"`` method to rounding.

    Raises
    ------
    LatticeError
        No reference given, an element kind without Xsuite counterpart, or batched
        parameters.
    """
    import xtrack as xt

    warn = OnceWarner("to_xsuite")
    reference = getattr(line, "reference", None)
    if p0c is None or mc2 is None:
        if reference is None:
            raise LatticeError(f"to_xsuite: beamline {line.name!r} has no reference; give p0c "
                               "and mc2 (an Xsuite line needs its reference particle)")
        p0c = reference.p0c if p0c is None else p0c
        mc2 = reference.mc2 if mc2 is None else mc2
    if q0 is None:
        if reference is not None and abs(reference.mc2 - float(mc2)) <= 1e-9 * float(mc2):
            q0 = reference.charge
        else:
            from beamtrack.tracking.conventions import _species_for

            q0 = _species_for(float(mc2), None, "to_xsuite").charge
    elements: dict[str, Any] = {}
    names: list[str] = []
    for element, method in line.plan():
        if element.name not in elements:
            elements[element.name] = _convert_element(xt, element, method, warn, float(q0))
        names.append(element.name)
    xline = xt.Line(elements=elements, element_names=names)
    xline.particle_ref = xt.Particles(p0c=float(p0c), mass0=float(mc2), q0=float(q0))
    return xline


__all__ = ["from_xsuite", "to_xsuite"]
