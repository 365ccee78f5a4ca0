"""MAD-X element classes as beamtrack elements, with MAD-X's conventions.

:data:`ELEMENT_CLASSES` lists the MAD-X classes the reader accepts; :func:`convert`
turns one element's attributes into a beamtrack kind and parameters. The conventions
it converts (see ``docs/formats/madx.md``): skew strengths (``k1s``, ``k2s``, ``k3s``)
become a roll, an ``rbend``'s ``l`` is its chord (its arc after ``option,
rbarc=false``), ``k0`` different from ``angle/l`` becomes a bend's ``dg``, a ``multipole`` with
``lrad`` and a dipole strength gets a curved reference, ``volt``/``freq`` are MV/MHz
and ``lag`` becomes ``phi0`` (:func:`lag_to_phi0`), ``harmon`` gives a frequency from
the ring, and classes beamtrack lacks become drifts, with a warning.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

from beamtrack.lattice.elements import ELEMENT_KINDS
from beamtrack.lattice.errors import LatticeFileError, LatticeFileWarning

#: MAD-X element classes beamtrack converts, and those it turns into drifts.
ELEMENT_CLASSES = {
    "drift", "quadrupole", "sextupole", "octupole", "sbend", "rbend", "dipedge", "multipole",
    "hkicker", "vkicker", "kicker", "tkicker", "solenoid", "rfcavity", "marker", "monitor",
    "hmonitor", "vmonitor", "instrument", "rcollimator", "ecollimator", "collimator",
    "placeholder",
    # drifts with a warning:
    "crabcavity", "elseparator", "srotation", "xrotation", "yrotation", "translation",
    "changeref", "beambeam", "matrix", "nllens", "rfmultipole", "wire", "twcavity",
}


def _warn_unsupported(name: str, cls: str, what: str, value: float) -> None:
    warnings.warn(f"{cls} {name!r}: {what} = {value:g} is not supported and is ignored",
                  LatticeFileWarning, stacklevel=4)


def _skew_rotation(normal: float, skew: float, order: int) -> tuple[float, float]:
    """Strength and roll of a normal multipole equal to ``normal + i skew`` of
    ``order`` (1: quadrupole). MAD-X and Bmad: a roll by ``theta`` turns strength
    ``K`` into ``kn = K cos((n+1) theta)``, ``ks = -K sin((n+1) theta)``."""
    strength = math.hypot(normal, skew)
    return strength, -math.atan2(skew, normal) / (order + 1)


def _rotated_orders(knl: list[float], ksl: list[float],
                    tilt: float) -> dict[str, tuple[float, ...]]:
    """``knl``, ``ksl`` of a multipole rolled by ``tilt``, as untilted strengths.

    Rolling order ``n`` by ``tilt`` multiplies ``K_nL + i K_nSL`` by
    ``exp(-i (n+1) tilt)`` (MAD-X and Bmad: a quadrupole rolled by pi/4 is a negative
    skew quadrupole).
    """
    if tilt == 0:
        return {"knl": tuple(knl), "ksl": tuple(ksl)}
    orders = max(len(knl), len(ksl))
    normal, skew = [], []
    for n in range(orders):
        a = knl[n] if n < len(knl) else 0.0
        b = ksl[n] if n < len(ksl) else 0.0
        c, s = math.cos((n + 1) * tilt), math.sin((n + 1) * tilt)
        normal.append(a * c + b * s)
        skew.append(b * c - a * s)
    return {"knl": tuple(normal), "ksl": tuple(skew)}


def convert(cls: str, name: str, get: Callable[..., float], has: Callable[[str], bool],
             array: Callable[[str], list[float]], word: Callable[[str, str], str], rbarc: bool,
             ring_length: Callable[[], float] | None,
             ring_beta: Callable[[], float] | None) -> tuple[str, dict[str, Any]]:
    """The beamtrack kind and parameters of MAD-X element ``name`` of class ``cls``.

    Parameters
    ----------
    cls, name
        The element's MAD-X class (after inheritance) and its name, for messages.
    get, has, array, word
        The element's attributes (inherited ones included): ``get(attr, default=0.0)``
        a number, ``has(attr)`` whether it is set, ``array(attr)`` a list of numbers
        (a single number as a list of one), ``word(attr, default)`` a lower-case word.
    rbarc
        MAD-X's ``option, rbarc``: whether an ``rbend``'s ``l`` is its chord.
    ring_length, ring_beta
        The ring's length [m] and the particles' speed over ``c``, for ``harmon``.

    Returns
    -------
    tuple of str and dict
        A key of :data:`~beamtrack.lattice.elements.ELEMENT_KINDS` and its parameters.

    Raises
    ------
    LatticeFileError
        An element beamtrack cannot represent (without a location: the caller adds
        the definition's).
    """
    length = get("l")
    tilt = get("tilt")
    if cls in ("drift", "placeholder"):
        return "Drift", {"length": length}
    if cls == "marker":
        return "Marker", {}
    if cls in ("monitor", "hmonitor", "vmonitor", "instrument"):
        if length != 0:
            return "Drift", {"length": length}
        return "Monitor", {}
    if cls == "quadrupole":
        k1, k1s = get("k1"), get("k1s")
        if k1s != 0:
            k1, roll = _skew_rotation(k1, k1s, 1)
            tilt += roll
        return "Quadrupole", {"length": length, "k1": k1, "tilt": tilt}
    if cls in ("sextupole", "octupole"):
        order = 2 if cls == "sextupole" else 3
        k, ks = get(f"k{order}"), get(f"k{order}s")
        if ks != 0:
            k, roll = _skew_rotation(k, ks, order)
            tilt += roll
        return cls.capitalize(), {"length": length, f"k{order}": k, "tilt": tilt}
    if cls in ("sbend", "rbend"):
        angle = get("angle")
        params: dict[str, Any] = {
            "angle": angle, "e1": get("e1"), "e2": get("e2"), "k1": get("k1"),
            "fint": get("fint"), "hgap": get("hgap"), "ref_tilt": tilt,
        }
        if has("fintx") and get("fintx") >= 0:
            params["fint_exit"] = get("fintx")
        if cls == "rbend" and not rbarc and angle != 0:
            length = length * math.sin(0.5 * angle) / (0.5 * angle)
        params["length"] = length
        arc = length if cls == "sbend" or angle == 0 else \
            length * (0.5 * angle) / math.sin(0.5 * angle)
        if has("k0"):
            k0 = get("k0")
            h = angle / arc if arc else 0.0
            if abs(k0 - h) > 1e-15 * max(abs(h), 1.0):
                if "dg" in ELEMENT_KINDS["SBend"].declaration():
                    params["dg"] = k0 - h
                else:
                    raise LatticeFileError(f"{cls} {name!r}: k0 different from angle/l needs "
                                           "the bend's dg parameter, which this beamtrack "
                                           "lacks")
        for unsupported in ("k1s", "k2", "k2s", "h1", "h2", "k3"):
            value = get(unsupported)
            if value != 0:
                _warn_unsupported(name, cls, unsupported, value)
        return ("SBend" if cls == "sbend" else "RBend"), params
    if cls == "dipedge":
        if "DipoleEdge" not in ELEMENT_KINDS:
            raise LatticeFileError(f"dipedge {name!r}: this beamtrack has no DipoleEdge "
                                   "element kind to map it to")
        return "DipoleEdge", {"h": get("h"), "e1": get("e1"), "fint": get("fint"),
                              "hgap": get("hgap"), "tilt": tilt}
    if cls == "multipole":
        knl, ksl = array("knl"), array("ksl")
        params = {"knl": tuple(knl), "ksl": tuple(ksl), "tilt": tilt}
        lrad = get("lrad")
        if lrad > 0 and any(v != 0 for v in (knl or [0.0])[:1] + (ksl or [0.0])[:1]):
            # a slice of a bend (MAKETHIN): MAD-X adds the weak focusing -knl[0]^2/lrad
            # (and -ksl[0]^2/lrad vertically), computed from the strengths after the tilt
            # rotated them; so rotate them here and leave no tilt (checked against RMATRIX)
            params.update(_rotated_orders(knl, ksl, tilt), tilt=0.0, ref_length=lrad)
        return "Multipole", params
    if cls in ("hkicker", "vkicker"):
        kick = get("kick")
        if kick == 0:
            kick = get("hkick" if cls == "hkicker" else "vkick")
        return ("HKicker" if cls == "hkicker" else "VKicker"), {
            "length": length, "kick": kick, "tilt": tilt}
    if cls in ("kicker", "tkicker"):
        return "Kicker", {"length": length, "hkick": get("hkick"), "vkick": get("vkick"),
                          "tilt": tilt}
    if cls == "solenoid":
        if get("ksi") != 0 and length == 0:
            raise LatticeFileError(f"solenoid {name!r}: thin solenoids (ksi) are not "
                                   "supported")
        return "Solenoid", {"length": length, "ks": get("ks")}
    if cls == "rfcavity":
        frequency = get("freq") * 1e6
        harmon = get("harmon")
        if frequency == 0 and harmon != 0:
            if ring_length is None or ring_beta is None:
                raise LatticeFileError(f"rfcavity {name!r}: harmon needs the ring length "
                                       "and a beam")
            frequency = harmon * ring_beta() * 299792458.0 / ring_length()
        return "RFCavity", {"length": length, "voltage": get("volt") * 1e6,
                            "phi0": lag_to_phi0(get("lag")), "frequency": frequency}
    if cls in ("rcollimator", "ecollimator", "collimator"):
        apertype = word("apertype", "ellipse" if cls == "ecollimator" else "rectangle")
        limits = array("aperture")
        if not limits:
            limits = [get("xsize"), get("ysize")]
        x_limit = limits[0] if limits else 0.0
        y_limit = limits[1] if len(limits) > 1 else x_limit
        shapes = {"rectangle": "rectangular", "ellipse": "elliptical", "circle": "elliptical"}
        if apertype not in shapes:
            raise LatticeFileError(f"{cls} {name!r}: apertype {apertype!r} is not supported "
                                   f"(only {', '.join(shapes)})")
        return "Collimator", {"length": length, "shape": shapes[apertype], "x_limit": x_limit,
                              "y_limit": y_limit}
    warnings.warn(f"{cls} {name!r} is not supported by beamtrack and becomes a drift of "
                  f"length {length:g} m", LatticeFileWarning, stacklevel=4)
    return "Drift", {"length": length}


def lag_to_phi0(lag: float) -> float:
    """Bmad's ``phi0`` [rad/2pi] of a MAD-X ``lag`` [rad/2pi].

    MAD-X gives ``pt += (q V / P0c) sin(2 pi lag - k t)``, Bmad
    ``dE = q V sin(2 pi phi0 + k z/beta)``; both are sine-like and share the sign of
    the time coordinate, which enters with opposite signs, so
    ``phi0 = 1/2 - lag`` (checked by tracking in tests/test_io_madx.py).
    """
    return 0.5 - lag


def phi0_to_lag(phi0: float) -> float:
    """MAD-X's ``lag`` [rad/2pi] of a Bmad ``phi0`` [rad/2pi] (see :func:`lag_to_phi0`)."""
    return 0.5 - phi0


__all__ = ["ELEMENT_CLASSES", "convert", "lag_to_phi0", "phi0_to_lag"]
