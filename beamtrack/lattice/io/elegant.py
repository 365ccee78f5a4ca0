"""Elegant lattice files (``.lte``): reader.

Elegant (M. Borland, APS) writes ``label: TYPE, NAME=value, ...`` definitions with
``!`` comments, ``&`` continuations, quoted names and values, lines
``L: LINE=(A, 2*B, -C)``, ``USE`` and ``#include``. The reader maps the element
types and parameters of :data:`ELEGANT_KINDS` (names and units from elegant's
parameter tables) to beamtrack records; see ``docs/formats/elegant.md``.

Elegant files hold no beam momentum: the line's :attr:`~Beamline.reference` is
``None``; set it with ``line.with_reference(bt.Reference.from_energy(...))``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from beamtrack.lattice.beamline import Beamline
from beamtrack.lattice.elements import ELEMENT_KINDS, Element
from beamtrack.lattice.errors import LatticeError, LatticeFileError
from beamtrack.lattice.io.expressions import MATH_CONSTANTS, parse
from beamtrack.lattice.io.statements import (
    LineEntry,
    Statement,
    build_line,
    expand_chosen,
    find_top,
    included_path,
    iter_pieces,
    parse_members,
    read_text,
    split_statements,
    split_top,
    unquote,
)
from beamtrack.tracking.errors import ParameterError

_MISALIGN = {"dx": "x_offset", "dy": "y_offset", "tilt": "tilt"}
_DRIFT = ("Drift", {"l": "length"})
_QUAD = ("Quadrupole", {"l": "length", "k1": "k1", **_MISALIGN})
_SEXT = ("Sextupole", {"l": "length", "k2": "k2", **_MISALIGN})
_BEND = {"l": "length", "angle": "angle", "k1": "k1", "e1": "e1", "e2": "e2",
         "tilt": "ref_tilt", "etilt": "tilt", "hgap": "hgap", "fint": "fint",
         "dx": "x_offset", "dy": "y_offset"}
_MONITOR = ("Monitor", {"l": "length", **_MISALIGN})
_COLLIMATOR = {"l": "length", "x_max": "x_limit", "y_max": "y_limit", "dx": "x_offset",
               "dy": "y_offset"}

#: THE table: Elegant type -> (beamtrack kind, {Elegant parameter: beamtrack parameter}).
#: Units agree (m, rad, 1/m^n, V, Hz) except RFCA's PHASE [deg] (converted with
#: elegant's convention by :func:`_derive`, listed in :data:`DERIVED`).
ELEGANT_KINDS: dict[str, tuple[str, dict[str, str]]] = {
    "drif": _DRIFT, "drift": _DRIFT, "edrift": _DRIFT, "csrdrift": _DRIFT, "lscdrift": _DRIFT,
    "quad": _QUAD, "kquad": _QUAD,
    "sext": _SEXT, "ksext": _SEXT,
    "sben": ("SBend", dict(_BEND)), "sbend": ("SBend", dict(_BEND)),
    "csbend": ("SBend", dict(_BEND)), "csrcsbend": ("SBend", dict(_BEND)),
    "rben": ("RBend", dict(_BEND)), "rbend": ("RBend", dict(_BEND)),
    "hkick": ("HKicker", {"l": "length", "kick": "kick", "tilt": "tilt"}),
    "vkick": ("VKicker", {"l": "length", "kick": "kick", "tilt": "tilt"}),
    "kicker": ("Kicker", {"l": "length", "hkick": "hkick", "vkick": "vkick", "tilt": "tilt"}),
    "rfca": ("RFCavity", {"l": "length", "volt": "voltage", "freq": "frequency",
                          "dx": "x_offset", "dy": "y_offset"}),
    "mark": ("Marker", {}), "marker": ("Marker", {}), "watch": ("Marker", {}),
    "moni": _MONITOR, "hmon": _MONITOR, "vmon": _MONITOR,
    "ematrix": ("LinearMap", {"l": "length"}),
    "maxamp": ("Aperture", {"x_max": "x_limit", "y_max": "y_limit"}),
    "rcol": ("Collimator", dict(_COLLIMATOR)), "ecol": ("Collimator", dict(_COLLIMATOR)),
    "sole": ("Solenoid", {"l": "length", "ks": "ks", "dx": "x_offset", "dy": "y_offset"}),
    "mult": ("Multipole", {"tilt": "tilt", "dx": "x_offset", "dy": "y_offset"}),
}
ELEGANT_KINDS["rfcw"] = ELEGANT_KINDS["rfca"]
#: Other spellings elegant accepts for the same types.
ALIASES = {"kick": "kicker", "quadrupole": "quad", "sextupole": "sext", "drif": "drif",
           "monitor": "moni", "solenoid": "sole", "multipole": "mult"}

#: Parameters converted by :func:`_derive` before the table is applied.
DERIVED: dict[str, frozenset[str]] = {
    "bend": frozenset({"fint1", "fint2", "edge1_effects", "edge2_effects", "fse",
                       "fse_dipole", "fse_quadrupole", "h1", "h2", "k2", "etilt_sign"}),
    "quad": frozenset({"fse"}), "sext": frozenset({"fse"}),
    "rfca": frozenset({"phase", "change_p0", "end1_focus", "end2_focus", "standing_wave",
                       "n_kicks", "body_focus_model"}),
    "kick": frozenset({"calibration", "hcalibration", "vcalibration"}),
    "mult": frozenset({"knl", "order", "factor", "l"}),
    "sole": frozenset({"b"}),
    "ematrix": frozenset({f"c{i}" for i in range(1, 7)}
                         | {f"r{i}{j}" for i in range(1, 7) for j in range(1, 7)}),
    "maxamp": frozenset({"elliptical", "exponent", "yexponent", "open_side"}),
    "col": frozenset({"open_side", "exponent", "yexponent", "invert"}),
}
#: Parameters with no effect on the modelled tracking (integration, radiation,
#: bookkeeping): read silently.
IGNORED = frozenset({
    "n_kicks", "n_slices", "integration_order", "nonlinear", "synch_rad", "isr", "isr1part",
    "order", "edge_order", "sqrt_order", "expand_hamiltonian", "sr_in_ordinary_matrix",
    "matrix_order", "weight", "calibration", "steering", "hsteering", "vsteering",
    "filename", "mode", "interval", "start_pass", "end_pass", "label", "flush_interval",
    "disable", "fraction", "x_data", "y_data", "coordinates", "exclude_slices", "lerad",
    "use_bn", "transport", "xkick", "ykick", "malign_method", "phase_reference", "q",
    "change_t", "fiducial", "linearize", "lock_phase", "t_reference", "bore", "btipl",
    "group", "bunched_beam_mode", "inputfile", "outputfile", "lsc", "bins", "smoothing",
    "sg_halfwidth", "sg_order", "high_frequency_cutoff0", "high_frequency_cutoff1",
    "interpolate", "lsc_bins", "use_stupakov", "csr", "ls_interpolate", "radius",
    "dz", "spread", "attenuation_length", "zwakefile", "trwakefile", "tcolumn",
    "wxcolumn", "wycolumn", "wzcolumn", "zwake", "trwake", "sigma_half_gap",
    "edge1_kick_limit", "edge2_kick_limit", "kick_limit_scaling", "expansion_order",
    "deltap", "angle", "yaw", "pitch", "eyaw", "epitch",
})
#: beamtrack parameters :func:`_derive` adds under their own names.
_ADDED = frozenset({"fint_exit", "fringe_type", "dg", "phi0", "cavity_type", "shape"})
#: Elegant types that are not lattice elements (skipped with a warning).
NOT_ELEMENTS = frozenset({"charge"})

_NAME = re.compile(r"[^\s,()\"'=&!;]+")
_PARAMETER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

#: Elegant RPN: operators and functions of one or two arguments (a subset).
_RPN_BINARY: Mapping[str, Callable[[float, float], float]] = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
    "/": lambda a, b: a / b, "pow": math.pow,
}
_RPN_UNARY: Mapping[str, Callable[[float], float]] = {
    "sqrt": math.sqrt, "sin": math.sin, "cos": math.cos, "tan": math.tan, "exp": math.exp,
    "ln": math.log, "asin": math.asin, "acos": math.acos, "atan": math.atan, "abs": abs,
    "chs": lambda a: -a, "sqr": lambda a: a * a,
}
_RPN_CONSTANTS = {"pi": math.pi, "c_mks": 299792458.0, "mev": 0.51099895069,
                  "e_mks": 1.602176634e-19, "me_mks": 9.1093837139e-31}


@dataclass
class _Definition:
    name: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    where: dict[str, int] = field(default_factory=dict)
    statement: Statement | None = None
    offset: int = 0

    def error(self, parameter: str | None, message: str) -> LatticeFileError:
        assert self.statement is not None
        offset = self.where.get(parameter or "", self.offset)
        label = f"{self.kind.upper()} {self.name!r}"
        prefix = f"{label}: {parameter.upper()} " if parameter else f"{label}: "
        return self.statement.error(prefix + message, offset)

    def warn(self, parameter: str | None, message: str) -> None:
        assert self.statement is not None
        offset = self.where.get(parameter or "", self.offset)
        self.statement.warn(f"{self.kind.upper()} {self.name!r}: {message}", offset)

    def number(self, parameter: str, default: float = 0.0) -> float:
        value = self.params.get(parameter, default)
        if not isinstance(value, float):
            raise self.error(parameter, f"must be a number, got {value!r}")
        return value


class _Reader:
    def __init__(self, root: str) -> None:
        self.root = root
        self.variables: dict[str, float] = {}
        self.definitions: dict[str, _Definition] = {}
        self.lines: dict[str, list[LineEntry]] = {}
        self.line_order: list[str] = []
        self.use: tuple[str, Statement, int] | None = None
        self.depth = 0
        self.warned: set[str] = set()

    def warn_once(self, key: str, statement: Statement, message: str, offset: int = 0) -> None:
        if key not in self.warned:
            self.warned.add(key)
            statement.warn(message, offset)

    def read(self, text: str, source: str) -> None:
        self.depth += 1
        if self.depth > 20:
            raise LatticeFileError("#include nested more than 20 deep", file=source)
        for statement in split_statements(text, source, comment_chars="!#",
                                          hash_comment_lines=True, semicolons=True):
            if self.statement(statement) == "stop":
                break
        self.depth -= 1

    # -- values -----------------------------------------------------------------------
    def rpn(self, statement: Statement, text: str, offset: int) -> tuple[float | None, str]:
        """Evaluate elegant RPN ``text``; returns (value on the stack or None, last name
        stored with ``sto``)."""
        stack: list[float] = []
        stored = ""
        tokens = text.split()
        i = 0
        try:
            while i < len(tokens):
                token = tokens[i]
                low = token.lower()
                if low == "sto":
                    if i + 1 >= len(tokens) or not stack:
                        raise statement.error("'sto' needs a value and a name", offset)
                    stored = tokens[i + 1].lower()
                    self.variables[stored] = stack[-1]
                    i += 2
                    continue
                if low in _RPN_BINARY:
                    b, a = stack.pop(), stack.pop()
                    stack.append(_RPN_BINARY[low](a, b))
                elif low in _RPN_UNARY:
                    stack.append(_RPN_UNARY[low](stack.pop()))
                elif low == "pop":
                    stack.pop()
                elif low in self.variables:
                    stack.append(self.variables[low])
                elif low in _RPN_CONSTANTS:
                    stack.append(_RPN_CONSTANTS[low])
                else:
                    try:
                        stack.append(float(token))
                    except ValueError:
                        raise statement.error(f"RPN expression {text!r}: unsupported token "
                                              f"{token!r} (beamtrack reads numbers, variables "
                                              "from 'sto', + - * / pow and a few functions)",
                                              offset) from None
                if stack and not math.isfinite(stack[-1]):
                    raise statement.error(f"RPN expression {text!r} is not finite", offset)
                i += 1
        except IndexError:
            raise statement.error(f"RPN expression {text!r}: stack underflow", offset) from None
        except (ValueError, ZeroDivisionError, OverflowError) as exc:
            raise statement.error(f"RPN expression {text!r}: {exc}", offset) from None
        return (stack[-1] if stack else None), stored

    def value(self, statement: Statement, text: str, offset: int) -> Any:
        if text[:1] in "\"'":
            inner = unquote(text)
            if not inner.strip():
                return inner
            try:
                float(inner)
                return float(inner)
            except ValueError:
                pass
            if any(c.isspace() for c in inner.strip()) or inner.strip().lower() in \
                    self.variables:
                result, _ = self.rpn(statement, inner, offset)
                if result is None:
                    raise statement.error(f"RPN expression {inner!r} leaves no value", offset)
                return result
            return inner  # a word: a file name, a mode, ...
        line, column = statement.at(offset)
        try:
            return parse(text, source=statement.source, line=line, column=column).evaluate(
                lambda name: self._name(name))
        except LatticeFileError:
            if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.+\-]*", text):
                return text  # a bare word
            raise

    def _name(self, name: str) -> float:
        key = name.lower()
        if key in self.variables:
            return self.variables[key]
        if key in MATH_CONSTANTS:
            return MATH_CONSTANTS[key]
        raise KeyError(name)

    # -- statements -------------------------------------------------------------------
    def statement(self, statement: Statement) -> str | None:
        text = statement.text
        lowered = text.lower()
        if text.startswith("%"):
            self.rpn(statement, text[1:], 1)
            return None
        if lowered.startswith("#include"):
            name = text[8:].lstrip(": \t")
            if not name:
                raise statement.error("#include needs a file name")
            path = included_path(unquote(name.strip()), statement.source, self.root,
                                 statement, len(text) - len(name))
            self.read(read_text(path, statement), path)
            return None
        match = re.match(r"[A-Za-z_]+", lowered)
        word = match.group() if match else ""
        rest = lowered[len(word):].lstrip()[:1]
        if word == "return" and rest == "":
            return "stop"
        if word == "use" and rest in (",", ""):
            pieces = split_top(statement)[1:]
            if not pieces or not pieces[0].text:
                raise statement.error("USE needs a line name")
            self.use = (unquote(pieces[0].text).lower(), statement, pieces[0].offset)
            return None
        colon = find_top(statement, ":")
        if colon <= 0:
            raise statement.error(f"unrecognised statement {_short(text)!r}")
        label = unquote(text[:colon].strip())
        if not label or not _NAME.fullmatch(label):
            raise statement.error(f"invalid name {text[:colon].strip()!r}")
        name = label.lower()
        pieces = split_top(statement, ",", colon + 1)
        head = pieces[0]
        equals = head.text.find("=")
        if equals >= 0 and head.text[:equals].strip().lower() == "line":
            body = head.text[equals + 1:]
            body_at = head.offset + equals + 1 + len(body) - len(body.lstrip())
            body = body.strip()
            if len(pieces) > 1 or not (body.startswith("(") and body.endswith(")")):
                raise statement.error("LINE needs its members in one pair of parentheses",
                                      body_at)
            if name not in self.lines:
                self.line_order.append(name)
            self.lines[name] = parse_members(statement, body_at + 1, body_at + len(body) - 1,
                                             _NAME)
            return None
        if equals >= 0:
            raise statement.error(f"unrecognised definition {_short(head.text)!r}",
                                  head.offset)
        kind_text = unquote(head.text).lower()
        kind = ALIASES.get(kind_text, kind_text)
        if kind in self.definitions:
            parent = self.definitions[kind]
            definition = _Definition(name, parent.kind, dict(parent.params), dict(parent.where),
                                     statement, 0)
        elif re.fullmatch(r"[a-z][a-z0-9_]*", kind):
            definition = _Definition(name, kind, statement=statement, offset=0)
        else:
            raise statement.error(f"invalid element type {head.text!r}", head.offset)
        for parameter, value, name_at, value_at in iter_pieces(pieces[1:]):
            key = parameter.lower()
            if not _PARAMETER.fullmatch(key):
                raise statement.error(f"invalid parameter name {parameter!r}", name_at)
            if value is None or value == "":
                raise statement.error(f"parameter {parameter!r} needs '= value'", name_at)
            definition.params[key] = self.value(statement, value, value_at)
            definition.where[key] = name_at
        self.definitions[name] = definition
        return None

    def expand(self, sequence: str | None, source: str) -> tuple[str, list[str]]:
        return expand_chosen(self.lines, self.line_order, self.use,
                             self.definitions.__contains__, sequence, source, "LINE")


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _family(kind: str) -> str:
    target = ELEGANT_KINDS.get(kind, ("", {}))[0]
    if target in ("SBend", "RBend"):
        return "bend"
    if kind in ("rfca", "rfcw"):
        return "rfca"
    if target in ("HKicker", "VKicker", "Kicker"):
        return "kick"
    if kind in ("rcol", "ecol"):
        return "col"
    if target == "Quadrupole":
        return "quad"
    if target == "Sextupole":
        return "sext"
    return kind


def _derive(d: _Definition) -> tuple[str, dict[str, Any]]:
    """The beamtrack kind and the parameters in the table's names."""
    kind = d.kind
    target, _ = ELEGANT_KINDS[kind]
    params = dict(d.params)
    family = _family(kind)
    if family == "bend":
        if d.number("k2") != 0.0:
            raise d.error("k2", "(a sextupole component of a bend) is not supported")
        for face in ("h1", "h2"):
            if d.number(face) != 0.0:
                d.warn(face, f"{face.upper()} (pole-face curvature) is not modelled; skipped")
        fint = d.number("fint", 0.5)  # elegant's default FINT is 0.5
        params["fint"] = d.number("fint1", -1.0) if d.number("fint1", -1.0) >= 0 else fint
        fint2 = d.number("fint2", -1.0)
        params["fint_exit"] = fint2 if fint2 >= 0 else fint
        edges = (d.number("edge1_effects", 1.0) != 0, d.number("edge2_effects", 1.0) != 0)
        if edges[0] != edges[1]:
            raise d.error("edge1_effects", "differs from EDGE2_EFFECTS; beamtrack switches "
                          "the edge effects of a bend on or off together")
        params["fringe_type"] = "linear_edge" if edges[0] else "none"
        fse = d.number("fse")
        length, angle = d.number("l"), d.number("angle")
        fse_dipole = fse + d.number("fse_dipole")
        if fse_dipole != 0.0:
            if length == 0.0:
                raise d.error("fse", "needs a length")
            params["dg"] = fse_dipole * angle / length
        params["k1"] = d.number("k1") * (1 + fse + d.number("fse_quadrupole"))
    elif family == "quad":
        params["k1"] = d.number("k1") * (1 + d.number("fse"))
        for kick in ("hkick", "vkick"):
            if d.number(kick) != 0.0:
                raise d.error(kick, "(a steering kick in a quadrupole) is not supported")
    elif family == "sext":
        params["k2"] = d.number("k2") * (1 + d.number("fse"))
        for extra in ("k1", "j1"):
            if d.number(extra) != 0.0:
                raise d.error(extra, "(a quadrupole error of a sextupole) is not supported")
    elif family == "kick":
        if target == "Kicker":
            params["hkick"] = d.number("hkick") * d.number("hcalibration", 1.0)
            params["vkick"] = d.number("vkick") * d.number("vcalibration", 1.0)
        else:
            params["kick"] = d.number("kick") * d.number("calibration", 1.0)
        if d.number("b2") != 0.0:
            raise d.error("b2", "(a sextupole term of a corrector) is not supported")
    elif family == "rfca":
        phase = d.number("phase")
        params.setdefault("freq", 500e6)  # elegant's default FREQ
        if d.number("change_p0") != 0.0:
            # elegant: dE = V sin(phase + w (t - t0)), 90 deg on crest; beamtrack's
            # LCavity: dE = V cos(2 pi phi0 + w (t - t0)).
            target = "LCavity"
            params["phi0"] = (phase - 90.0) / 360.0
            focus = (d.number("end1_focus") != 0, d.number("end2_focus") != 0)
            if focus[0] != focus[1]:
                raise d.error("end1_focus", "differs from END2_FOCUS; beamtrack's standing-wave "
                              "model has both edges")
            params["cavity_type"] = "standing_wave" if focus[0] else "traveling_wave"
        else:
            # beamtrack's RFCavity: dE = V sin(2 pi phi0 - w (t - t0)).
            params["phi0"] = (180.0 - phase) / 360.0
            if d.number("end1_focus") != 0 or d.number("end2_focus") != 0:
                raise d.error("end1_focus", "edge focusing needs CHANGE_P0=1 (read as an "
                              "LCavity)")
        if str(params.get("body_focus_model", "none")).lower() not in ("none", ""):
            raise d.error("body_focus_model", "is not supported")
        if kind == "rfcw":
            d.warn(None, "RFCW wakefields are not modelled; read as an RFCA")
    elif family == "sole" and d.number("ks") == 0.0 and d.number("b") != 0.0:
        raise d.error("b", "is a field; an Elegant file has no momentum to convert it: "
                      "give KS")
    elif family == "col":
        if str(params.get("open_side", "")).strip():
            raise d.error("open_side", "(a one-sided collimator) is not supported")
        if d.number("invert") != 0.0:
            raise d.error("invert", "is not supported")
        if kind == "ecol" and (d.number("exponent", 2.0) != 2.0 or
                               d.number("yexponent", 0.0) not in (0.0, 2.0)):
            raise d.error("exponent", "other than 2 (an ellipse) is not supported")
        params["shape"] = "elliptical" if kind == "ecol" else "rectangular"
    elif family == "maxamp":
        if str(params.get("open_side", "")).strip():
            raise d.error("open_side", "(a one-sided aperture) is not supported")
        params["shape"] = "elliptical" if d.number("elliptical") != 0 else "rectangular"
    return target, params


def _build(d: _Definition, reader: _Reader) -> list[Element]:
    kind, name = d.kind, d.name
    assert d.statement is not None
    if kind in NOT_ELEMENTS:
        reader.warn_once(f"skip:{name}", d.statement, f"{kind.upper()} {name!r} is not a "
                         "lattice element (it sets the beam charge) and is skipped")
        return []
    if kind not in ELEGANT_KINDS:
        reader.warn_once(f"kind:{name}", d.statement, f"{kind.upper()} {name!r}: element type "
                         "not supported; tracked as a drift of its length")
        return [_element("Drift", name, {"length": d.number("l")}, d)]
    target, params = _derive(d)
    table = ELEGANT_KINDS[kind][1]
    derived = DERIVED.get(_family(kind), frozenset())
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key in table and not (kind == "mult" and key == "l"):
            parameter = table[key]
            if target == "Monitor" and parameter == "length":
                continue
            if not isinstance(value, float):
                raise d.error(key, f"must be a number, got {value!r}")
            out[parameter] = value
        elif key in _ADDED:
            out[key] = value
        elif key in derived or key in IGNORED:
            continue
        else:
            reader.warn_once(f"param:{name}:{key}", d.statement, f"{kind.upper()} {name!r}: "
                             f"parameter {key.upper()} is not supported and is skipped",
                             d.where.get(key, 0))
    if kind == "maxamp":
        reader.warn_once(f"maxamp:{name}", d.statement, f"MAXAMP {name!r}: elegant applies it "
                         "to every following element; beamtrack checks it here only")
    if kind == "mult":
        order = d.number("order", 1.0)
        if order != int(order) or order < 1 or order > 21:
            raise d.error("order", "must be a whole number from 1 to 21 (a dipole MULT does "
                          "not bend the reference orbit in elegant)")
        knl = [0.0] * int(order) + [d.number("knl") * d.number("factor", 1.0)]
        out["knl"] = tuple(knl)
        if d.number("l") > 0.0:
            target = "ThickMultipole"
            out["length"] = d.number("l")
    if kind == "ematrix":
        out.update(_ematrix(d))
    if target == "Monitor":
        length = d.number("l")
        monitor = _element("Monitor", name, out, d)
        if length == 0.0:
            return [monitor]
        half = _element("Drift", f"{name}__body", {"length": length / 2}, d)
        return [half, monitor, half]
    return [_element(target, name, out, d)]


def _ematrix(d: _Definition) -> dict[str, Any]:
    """EMATRIX's first-order map in Bmad coordinates.

    Elegant's coordinates are ``(x, x', y, y', s, delta)``; to first order about the
    reference ``x' = px``, ``delta = pz`` and, for a relativistic beam, ``s = -z``
    (a later particle has travelled further), so ``R_bmad = S R S`` and
    ``c_bmad = S c`` with ``S = diag(1, 1, 1, 1, -1, 1)``.
    """
    for key in d.params:
        if re.fullmatch(r"t\d{3}|u\d{4}", key) and d.number(key) != 0.0:
            raise d.error(key, "(a second-order term) is not supported")
    if d.number("deltap") != 0.0:
        raise d.error("deltap", "(a change of the reference momentum) is not supported")
    r = np.array([[d.number(f"r{i}{j}") for j in range(1, 7)] for i in range(1, 7)])
    c = np.array([d.number(f"c{i}") for i in range(1, 7)])
    flip = np.diag([1.0, 1.0, 1.0, 1.0, -1.0, 1.0])
    return {"r": flip @ r @ flip, "c": flip @ c}


def _element(kind: str, name: str, params: dict[str, Any], d: _Definition) -> Element:
    try:
        return ELEMENT_KINDS[kind](name, **params)
    except (ParameterError, LatticeError, NotImplementedError, ValueError, TypeError,
            OverflowError) as exc:
        raise d.error(None, str(exc)) from None


def loads(text: str, *, source: str = "<string>", sequence: str | None = None,
          root: str | os.PathLike[str] | None = None) -> Beamline:
    """Read a beamline from Elegant lattice text.

    Parameters
    ----------
    text
        The ``.lte`` file's text.
    source
        File name for messages; ``#include`` paths are relative to its folder.
    sequence
        The line to expand; by default the one named by ``USE``, else the last line.
    root
        Folder that included files must lie in; by default the folder of ``source``.

    Returns
    -------
    Beamline
        The expanded line, named after the Elegant line (lower case). Its
        :attr:`~Beamline.reference` is ``None`` (Elegant files hold no momentum):
        set it with ``line.with_reference(bt.Reference.from_energy(...))``.

    Raises
    ------
    LatticeFileError
        Anything wrong with the text, with file, line and column.
    """
    if root is None:
        root = os.path.dirname(os.path.abspath(source)) if source != "<string>" else os.getcwd()
    reader = _Reader(os.fspath(root))
    try:
        reader.read(text, source)
        name, names = reader.expand(sequence, source)
        built: dict[str, list[Element]] = {}
        items: list[Element] = []
        for element_name in names:
            if element_name not in built:
                built[element_name] = _build(reader.definitions[element_name], reader)
            items.extend(built[element_name])
        return build_line(items, name, source)
    except RecursionError:
        raise LatticeFileError("nesting too deep", file=source) from None


def load(path: str | os.PathLike[str], *, sequence: str | None = None,
         root: str | os.PathLike[str] | None = None) -> Beamline:
    """Read a beamline from an Elegant ``.lte`` file (see :func:`loads`)."""
    source = os.fspath(path)
    return loads(read_text(source), source=source, sequence=sequence, root=root)


__all__ = ["ELEGANT_KINDS", "load", "loads"]
