"""Bmad lattice files (``.bmad``, ``.lat``): reader and writer.

The reader covers the linac and transfer-line subset of the Bmad language (see
``docs/formats/bmad.md``): element definitions with inheritance, attribute settings
after definition, variables (Bmad's immediate evaluation), arithmetic with Bmad's
constants and functions, element attribute references (``q[k1]``), ``parameter``,
``beginning`` and MAD-style ``beam`` statements, ``call, file=`` (confined to the
top file's folder or ``root``), lines with repetition and reflection, ``use``, and
superposition (placed by :mod:`beamtrack.lattice.io.bmad_superposition`).

Every Bmad attribute the reader understands is named in :data:`BMAD_KINDS`, the one
table of Bmad names, beamtrack parameters and unit factors; the writer reads the same
table backwards. Units agree with beamtrack's (SI, RF phases in rad/2pi), so every
factor is 1 except where noted.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import array_api_compat
import numpy as np

from beamtrack.backends import backend_of
from beamtrack.lattice.beamline import Beamline
from beamtrack.lattice.elements import ELEMENT_KINDS, Element
from beamtrack.lattice.errors import LatticeError, LatticeFileError, LatticeFileWarning
from beamtrack.lattice.io import bmad_superposition as superposition
from beamtrack.lattice.io.bmad_superposition import ORIGINS, Placement
from beamtrack.lattice.io.expressions import MATH_FUNCTIONS, Expression, parse
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
from beamtrack.lattice.reference import Reference
from beamtrack.tracking.errors import ParameterError
from beamtrack.tracking.species import (
    DEUTERON_MC2,
    ELECTRON_MC2,
    MUON_MC2,
    PROTON_MC2,
)

#: Speed of light [m/s].
C_LIGHT = 299792458.0

#: Bmad's named constants (Bmad manual, "Physical and mathematical constants"); the
#: masses are beamtrack's species values (CODATA 2022, as current Bmad uses).
CONSTANTS: Mapping[str, float] = {
    "pi": math.pi,
    "twopi": 2 * math.pi,
    "fourpi": 4 * math.pi,
    "e": math.e,
    "e_log": math.e,
    "sqrt_2": math.sqrt(2.0),
    "degrad": 180.0 / math.pi,
    "degrees": math.pi / 180.0,
    "raddeg": math.pi / 180.0,
    "m_electron": ELECTRON_MC2,
    "m_proton": PROTON_MC2,
    "m_deuteron": DEUTERON_MC2,
    "m_muon": MUON_MC2,
    "m_neutron": 939565420.52,
    "m_pion_0": 134.9766e6,
    "m_pion_charged": 139.57018e6,
    "c_light": C_LIGHT,
    "r_e": 2.8179403262e-15,
    "r_p": 1.5346982647e-18,
    "e_charge": 1.602176634e-19,
    "h_planck": 4.135667696e-15,
    "h_bar_planck": 6.582118990e-16,
    "fine_struct_const": 0.0072973525693,
    "anom_moment_electron": 0.00115965218128,
    "anom_moment_proton": 1.792854734463,
    "anom_moment_muon": 0.00116592089,
    "anom_moment_deuteron": -0.1425617662,
    "anom_moment_he3": -4.184153686,
    "emass": ELECTRON_MC2 * 1e-9,
    "pmass": PROTON_MC2 * 1e-9,
}


def _random(*_: float) -> float:
    raise ValueError("random numbers (ran, ran_gauss) are not supported: a lattice read by "
                     "beamtrack must be the same every time")


def _factorial(n: float) -> float:
    if n != int(n) or n < 0 or n > 170:
        raise ValueError("factorial needs a whole number from 0 to 170")
    return float(math.factorial(int(n)))


#: Bmad's intrinsic functions (Bmad manual, "Intrinsic functions").
FUNCTIONS: Mapping[str, Callable[..., float]] = {
    **MATH_FUNCTIONS,
    "cot": lambda x: 1.0 / math.tan(x),
    "coth": lambda x: 1.0 / math.tanh(x),
    "acoth": lambda x: math.atanh(1.0 / x),
    "factorial": _factorial,
    "int": lambda x: float(math.trunc(x)),
    "nint": lambda x: math.copysign(math.floor(abs(x) + 0.5), x),
    "ceiling": lambda x: float(math.ceil(x)),
    "modulo": lambda a, p: a - math.floor(a / p) * p,
    "ran": _random,
    "ran_gauss": _random,
}

#: A Bmad name as it appears in expressions, with an optional ``[attribute]``.
NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_.#\\]*(?:\[[A-Za-z0-9_]+\])?"
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.#\\]*")
_WRITABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.]*")

_MISALIGN = {"x_offset": "x_offset", "y_offset": "y_offset", "tilt": "tilt"}
_STEPS = {"num_steps": "num_steps"}
_BEND = {"l": "length", "angle": "angle", "e1": "e1", "e2": "e2", "k1": "k1",
         "fint": "fint", "fintx": "fint_exit", "hgap": "hgap", "hgapx": "hgap_exit",
         "fringe_type": "fringe_type", "ref_tilt": "ref_tilt", "roll": "tilt",
         "x_offset": "x_offset", "y_offset": "y_offset", "num_steps": "num_steps",
         "dg": "dg"}
_CAVITY = {"l": "length", "voltage": "voltage", "phi0": "phi0", "rf_frequency": "frequency",
           "n_rf_steps": "num_steps", **_MISALIGN}
_OPENING = {"l": "length", "x_limit": "x_limit", "y_limit": "y_limit", **_MISALIGN}

#: THE table: Bmad element class -> (beamtrack kind, {Bmad attribute: beamtrack
#: parameter}). All units agree (m, rad, 1/m^n, V, Hz, rad/2pi), so the unit factor of
#: every entry is 1; attributes that need conversion (``g``, ``gradient``, fields,
#: ``KnL``/``Tn``, ``An``/``Bn``, ...) are derived into these names first by
#: :func:`_derive` and listed in :data:`DERIVED`.
BMAD_KINDS: dict[str, tuple[str, dict[str, str]]] = {
    "drift": ("Drift", {"l": "length"}),
    "pipe": ("Drift", {"l": "length"}),
    "quadrupole": ("Quadrupole", {"l": "length", "k1": "k1", **_MISALIGN, **_STEPS}),
    "sextupole": ("Sextupole", {"l": "length", "k2": "k2", **_MISALIGN, **_STEPS}),
    "octupole": ("Octupole", {"l": "length", "k3": "k3", **_MISALIGN, **_STEPS}),
    "thick_multipole": ("ThickMultipole", {"l": "length", **_MISALIGN, **_STEPS}),
    "multipole": ("Multipole", {"tilt": "tilt", "x_offset": "x_offset",
                                "y_offset": "y_offset"}),
    "ab_multipole": ("Multipole", {"tilt": "tilt", "x_offset": "x_offset",
                                   "y_offset": "y_offset"}),
    "sbend": ("SBend", dict(_BEND)),
    "rbend": ("RBend", dict(_BEND)),
    "hkicker": ("HKicker", {"l": "length", "kick": "kick", **_MISALIGN, **_STEPS}),
    "vkicker": ("VKicker", {"l": "length", "kick": "kick", **_MISALIGN, **_STEPS}),
    "kicker": ("Kicker", {"l": "length", "hkick": "hkick", "vkick": "vkick", **_MISALIGN,
                          **_STEPS}),
    "solenoid": ("Solenoid", {"l": "length", "ks": "ks", **_MISALIGN, **_STEPS}),
    "rfcavity": ("RFCavity", dict(_CAVITY)),
    "lcavity": ("LCavity", {**_CAVITY, "cavity_type": "cavity_type"}),
    "crab_cavity": ("CrabCavity", dict(_CAVITY)),
    "marker": ("Marker", {}),
    "monitor": ("Monitor", {"l": "length", **_MISALIGN}),
    "instrument": ("Monitor", {"l": "length", **_MISALIGN}),
    "ecollimator": ("Collimator", dict(_OPENING)),
    "rcollimator": ("Collimator", dict(_OPENING)),
}

#: Attributes turned into the table's names before mapping (see :func:`_derive`).
DERIVED: dict[str, frozenset[str]] = {
    "bend": frozenset({"g", "rho", "l_arc", "l_chord", "l_rectangle", "b_field", "db_field",
                       "b1_gradient", "k2", "b2_gradient", "h1", "h2"}),
    "quadrupole": frozenset({"b1_gradient"}),
    "sextupole": frozenset({"b2_gradient"}),
    "octupole": frozenset({"b3_gradient"}),
    "solenoid": frozenset({"bs_field"}),
    "cavity": frozenset({"gradient", "gradient_err", "voltage_err", "phi0_err",
                         "phi0_multipass", "harmon", "harmon_master"}),
    "collimator": frozenset({"x1_limit", "x2_limit", "y1_limit", "y2_limit",
                             "aperture_type"}),
    "kicker": frozenset({"bl_kick", "bl_hkick", "bl_vkick"}),
}

#: Attributes with no effect on "bmad_standard" tracking of these elements (labels,
#: method choices, radiation and bookkeeping switches): read silently.
IGNORED = frozenset({
    "type", "alias", "descrip", "tracking_method", "mat6_calc_method",
    "spin_tracking_method", "ptc_integration_type", "integrator_order", "field_calc",
    "csr_method", "space_charge_method", "ds_step", "field_master", "symplectify",
    "taylor_order", "ptc_field_geometry", "ptc_fringe_geometry", "fiducial_pt",
    "exact_multipoles", "autoscale_amplitude", "autoscale_phase", "field_autoscale",
    "phi0_autoscale", "n_cell", "longitudinal_mode", "e_loss", "scale_multipoles",
    "r0_mag", "r0_elec", "multipoles_on", "create_jumbo_slave", "lord_pad1", "lord_pad2",
    "offset_moves_aperture", "aperture_at", "sr_wake_file", "lr_wake_file", "osc_amplitude",
    "noise", "crunch", "crunch_calib", "de_eta_meas", "n_sample", "tilt_calib",
    "x_gain_calib", "y_gain_calib", "x_gain_err", "y_gain_err", "x_offset_calib",
    "y_offset_calib", "l_active", "num_steps_done", "static_linear_map",
    "spin_fringe_on", "ref_time_start", "ptc_canonical_coords", "ref_species",
    "k0l_status", "is_on",
})
#: Aperture attributes on elements that are not collimators: beamtrack does not check
#: them there (warned once per element).
APERTURE_ATTRIBUTES = frozenset({"x1_limit", "x2_limit", "y1_limit", "y2_limit",
                                 "x_limit", "y_limit", "aperture", "aperture_type"})
#: Attributes whose values are words (switches), not arithmetic.
SWITCHES = frozenset({"fringe_type", "cavity_type", "aperture_type", "aperture_at",
                      "tracking_method", "mat6_calc_method", "spin_tracking_method",
                      "field_calc", "fiducial_pt", "ptc_field_geometry", "k0l_status",
                      "ptc_integration_type", "field_master", "is_on", "harmon_master",
                      "fringe_at", "csr_method", "space_charge_method", "ref_species",
                      "symplectify", "exact_multipoles", "multipoles_on",
                      "scale_multipoles", "autoscale_amplitude", "autoscale_phase",
                      "ptc_fringe_geometry", "offset_moves_aperture", "create_jumbo_slave",
                      "spin_fringe_on", "superimpose", "wrap_superimpose", "ref", "ref_origin",
                      "ele_origin"})
#: Attributes that place an element by superposition (see ``bmad_superposition``); the
#: ``ref_beginning``-style flags are Bmad's older spelling of the origins.
SUPERPOSITION_ATTRIBUTES = frozenset({
    "superimpose", "wrap_superimpose", "ref", "offset", "ref_origin", "ele_origin",
    "ref_beginning", "ref_center", "ref_end", "ele_beginning", "ele_center", "ele_end"})
#: Bmad fringe_type values -> beamtrack's.
FRINGE_TYPES = {"none": "none", "linear_edge": "linear_edge", "hard_edge_only": "hard_edge",
                "soft_edge_only": "soft_edge", "basic_bend": "basic_bend",
                "sad_full": "sad_full", "full": "full"}
#: Misalignments beamtrack does not model: setting them non-zero is an error.
UNSUPPORTED_MISALIGNMENTS = frozenset({"x_pitch", "y_pitch", "z_offset", "x_pitch_tot",
                                       "y_pitch_tot", "z_offset_tot"})
#: Steering kicks Bmad allows on any magnet; beamtrack models them only in kickers.
STEERING = frozenset({"hkick", "vkick", "bl_hkick", "bl_vkick"})

#: Bmad element classes beamtrack does not model (tracked as drifts, with a warning).
OTHER_CLASSES = frozenset({
    "ac_kicker", "beambeam", "beginning_ele", "capillary", "converter", "crystal", "custom",
    "detector", "diffraction_plate", "e_gun", "elseparator", "em_field", "feedback",
    "fiducial", "fixer", "floor_shift", "foil", "fork", "photon_fork", "gkicker", "hybrid",
    "mask", "match", "mirror", "multilayer_mirror", "null_ele", "patch", "photon_init",
    "rf_bend", "sad_mult", "sample", "sol_quad", "taylor", "wiggler", "undulator",
})
#: Controller classes (defined with ``name: overlay = {...}``); skipped with a warning.
CONTROLLERS = frozenset({"overlay", "group", "girder", "ramper", "feedback"})

#: Commands with no effect on the line (skipped silently).
_QUIET_COMMANDS = frozenset({"expand_lattice", "no_digested", "no_superimpose", "debug_marker",
                             "write_digested", "parser_debug", "print", "end_file", "return",
                             "calc_reference_orbit"})

_SPECIES = {"electron": "electron", "positron": "positron", "proton": "proton",
            "antiproton": "antiproton", "deuteron": "deuteron", "muon": "muon",
            "antimuon": "antimuon", "muon+": "antimuon", "muon-": "muon"}


@dataclass
class _Definition:
    """An element definition being read: its class, attributes and location."""

    name: str
    kind: str
    attrs: dict[str, Any] = field(default_factory=dict)
    where: dict[str, tuple[Statement, int]] = field(default_factory=dict)
    statement: Statement | None = None
    offset: int = 0
    serial: int = 0


class _Reader:
    """The state of one read: variables, definitions, lines and parameters."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.variables: dict[str, float] = {}
        self.definitions: dict[str, _Definition] = {}
        self.lines: dict[str, list[LineEntry]] = {}
        self.line_order: list[str] = []
        self.use: tuple[str, Statement, int] | None = None
        self.parameter: dict[str, Any] = {}
        self.beginning: dict[str, Any] = {}
        self.warned: set[str] = set()
        self.depth = 0
        self.skip_next = False
        self.reference_where: dict[str, tuple[Statement, int]] = {}
        self.serial = 0
        self.superimpose_commands: list[tuple[int, Placement]] = []

    # -- warnings -------------------------------------------------------------------
    def warn_once(self, key: str, statement: Statement, message: str, offset: int = 0) -> None:
        if key not in self.warned:
            self.warned.add(key)
            statement.warn(message, offset)

    # -- expressions ----------------------------------------------------------------
    def resolve(self, name: str) -> float:
        key = name.lower()
        if "[" in key:
            owner, attribute = key[:-1].split("[", 1)
            if owner in ("parameter", "beginning"):
                table = self.parameter if owner == "parameter" else self.beginning
                value = table.get(attribute, 0.0)
                if not isinstance(value, float):
                    raise ValueError(f"{name} is not a number")
                return value
            definition = self.definitions.get(owner)
            if definition is None:
                raise KeyError(name)
            value = definition.attrs.get(attribute, 0.0)
            if isinstance(value, bool):
                return float(value)
            if not isinstance(value, float):
                raise ValueError(f"{name} is not a number")
            return value
        if key in self.variables:
            return self.variables[key]
        if key in CONSTANTS:
            return CONSTANTS[key]
        raise KeyError(name)

    def evaluate(self, statement: Statement, text: str, offset: int) -> float:
        line, column = statement.at(offset)
        expression: Expression = parse(text, source=statement.source, line=line, column=column,
                                       name_pattern=NAME_PATTERN)
        try:
            return expression.evaluate(self.resolve, FUNCTIONS)
        except LatticeFileError:
            raise
        except (ValueError, TypeError, OverflowError, ZeroDivisionError, RecursionError) as exc:
            raise statement.error(f"cannot evaluate {text!r}: {exc}", offset) from None

    # -- files ------------------------------------------------------------------------
    def read(self, text: str, source: str) -> None:
        self.depth += 1
        if self.depth > 20:
            raise LatticeFileError("call statements nested more than 20 deep", file=source)
        statements = split_statements(text, source, implicit_continuation=True)
        for statement in statements:
            if self.skip_next:
                self.skip_next = False
                continue
            if self.statement(statement) == "stop":
                break
        self.depth -= 1

    def statement(self, statement: Statement) -> str | None:
        text = statement.text
        lowered = text.lower()
        start = 0
        redefine = False
        if lowered.startswith("redef:"):
            redefine = True
            start = 6 + len(text[6:]) - len(text[6:].lstrip())
        match = re.match(r"[A-Za-z_][A-Za-z0-9_]*", lowered[start:])
        word = match.group() if match else ""
        after = lowered[start + len(word):].lstrip()[:1]
        if word and (after in ("", ",")) and start == 0:
            return self.command(statement, word)
        colon = -1 if redefine else _definition_colon(statement)
        if colon >= 0:
            self.definition(statement, colon)
            return None
        equals = find_top(statement, "=", start)
        if equals > start:
            lhs_end = equals - 1 if text[equals - 1] == ":" else equals
            self.assignment(statement, start, lhs_end, equals + 1, redefine)
            return None
        raise statement.error(f"unrecognised statement {_short(text)!r}")

    def command(self, statement: Statement, word: str) -> str | None:
        pieces = split_top(statement)[1:]
        if word == "use":
            if not pieces or not pieces[0].text:
                raise statement.error("use needs a line name")
            if len(pieces) > 1:
                self.warn_once("use-several", statement, "use with several lines (branches): "
                               "only the first is read", pieces[1].offset)
            self.use = (pieces[0].text.lower(), statement, pieces[0].offset)
            return None
        if word == "call":
            return self.call(statement, pieces)
        if word in ("end_file", "return"):
            return "stop"
        if word == "title":
            if not pieces:
                self.skip_next = True  # the title is the next line
            return None
        if word == "beam":
            self.beam(statement, pieces)
            return None
        if word in _QUIET_COMMANDS:
            return None
        if word == "superimpose":
            self.superimpose_command(statement, pieces)
            return None
        if word in ("merge_elements", "remove_elements", "slice_lattice",
                    "combine_consecutive_elements", "start_branch_at"):
            raise statement.error(f"the {word!r} command is not supported (it changes the "
                                  "line; expand the lattice with Bmad first)")
        if word in self.definitions or word in self.lines:
            raise statement.error(f"unrecognised statement {_short(statement.text)!r}")
        self.warn_once(f"command:{word}", statement, f"statement {word!r} is not supported "
                       "and is skipped")
        return None

    def superimpose_command(self, statement: Statement, pieces: list) -> None:
        """Bmad's ``superimpose, element = name, ref = ..., offset = ...`` command."""
        values: dict[str, Any] = {}
        where: dict[str, int] = {}
        for name, value, name_at, value_at in iter_pieces(pieces):
            key = name.lower()
            if key in ("ref_beginning", "ref_center", "ref_end", "ele_beginning", "ele_center",
                       "ele_end") and value is None:
                values[key[:3] + "_origin"] = key[4:]
                continue
            if value is None:
                raise statement.error(f"superimpose: {name!r} needs a value", name_at)
            where[key] = value_at
            if key == "offset":
                values[key] = self.evaluate(statement, value, value_at)
            elif key in ("element", "ref", "ref_origin", "ele_origin", "wrap_superimpose"):
                values[key] = unquote(value).lower()
            else:
                raise statement.error(f"superimpose: unknown setting {name!r}", name_at)
        if "element" not in values:
            raise statement.error("superimpose needs element = <name>")
        if values["element"] not in self.definitions:
            raise statement.error(f"superimpose: no element named {values['element']!r}",
                                  where["element"])
        for key in ("ref_origin", "ele_origin"):
            if values.get(key, "center") not in ORIGINS:
                raise statement.error(f"superimpose: {key} = {values[key]!r} is not one of "
                                      f"{', '.join(ORIGINS)}", where.get(key, 0))
        self.serial += 1
        self.superimpose_commands.append((self.serial, Placement(
            values["element"], values.get("ref"), values.get("offset", 0.0),
            values.get("ref_origin", "center"), values.get("ele_origin", "center"),
            statement, 0)))

    def placements(self) -> list[Placement]:
        """Every superposition of the file, in the order the file gives them."""
        found = list(self.superimpose_commands)
        for definition in self.definitions.values():
            placement = _placement(definition, self)
            if placement is not None:
                found.append((definition.serial, placement))
        found.sort(key=lambda item: item[0])
        return [placement for _, placement in found]

    def call(self, statement: Statement, pieces: list) -> None:
        for name, value, _, value_at in iter_pieces(pieces):
            if name.lower() == "file" and value:
                path = included_path(unquote(value), statement.source, self.root, statement,
                                     value_at)
                self.read(read_text(path, statement, value_at), path)
                return
        raise statement.error("call needs file = <name>")

    def beam(self, statement: Statement, pieces: list) -> None:
        for name, value, name_at, value_at in iter_pieces(pieces):
            key = name.lower()
            if value is None:
                raise statement.error(f"beam attribute {name!r} needs a value", name_at)
            if key == "particle":
                self.parameter["particle"] = value.lower()
            elif key == "energy":
                self.parameter["e_tot"] = 1e9 * self.evaluate(statement, value, value_at)
            elif key == "pc":
                self.parameter["p0c"] = 1e9 * self.evaluate(statement, value, value_at)
            elif key != "n_part":
                self.warn_once(f"beam:{key}", statement, f"beam attribute {name!r} is skipped",
                               name_at)

    def assignment(self, statement: Statement, start: int, lhs_end: int, value_at: int,
                   redefine: bool) -> None:
        text = statement.text
        lhs = text[start:lhs_end].strip()
        rhs = text[value_at:]
        rhs_at = value_at + len(rhs) - len(rhs.lstrip())
        rhs = rhs.strip()
        if not rhs:
            raise statement.error("missing value after '='", value_at)
        bracket = lhs.find("[")
        if bracket < 0:
            name = lhs.lower()
            if not _NAME.fullmatch(name):
                raise statement.error(f"invalid variable name {lhs!r}", start)
            if name in self.variables and not redefine:
                raise statement.error(f"variable {lhs!r} is already defined; Bmad constants "
                                      "cannot be redefined (use 'redef:')", start)
            self.variables[name] = self.evaluate(statement, rhs, rhs_at)
            return
        if not lhs.endswith("]"):
            raise statement.error(f"invalid assignment target {lhs!r}", start)
        owner = lhs[:bracket].strip().lower()
        attribute = lhs[bracket + 1:-1].strip().lower()
        attr_at = start + bracket + 1
        if owner in ("parameter", "beginning"):
            self.set_parameter(statement, owner, attribute, rhs, rhs_at)
            return
        if owner in ("particle_start", "beam_start", "bmad_com", "space_charge_com",
                     "ptc_com", "csr_param", "end"):
            self.warn_once(f"owner:{owner}", statement, f"{owner}[...] settings are skipped",
                           start)
            return
        if "::" in owner or "*" in owner or "%" in owner or "%" in attribute:
            self.warn_once(f"wild:{owner}", statement, f"attribute settings of several "
                           f"elements ({lhs}) are not supported and are skipped", start)
            return
        definition = self.definitions.get(owner)
        if definition is None and (owner in BMAD_KINDS or owner in OTHER_CLASSES):
            self.warn_once(f"wild:{owner}", statement, f"attribute settings of a whole class "
                           f"({lhs}) are not supported and are skipped", start)
            return
        if definition is None:
            raise statement.error(f"no element named {owner!r} is defined", start)
        self.set_attribute(definition, statement, attribute, rhs, attr_at, rhs_at)

    def set_parameter(self, statement: Statement, owner: str, attribute: str, value: str,
                      value_at: int) -> None:
        table = self.parameter if owner == "parameter" else self.beginning
        if attribute in ("particle", "p0c", "e_tot"):
            self.reference_where[attribute] = (statement, value_at)
        if attribute in ("particle", "geometry", "lattice", "lattice_type", "machine",
                         "default_tracking_species", "photon_type", "live_branch",
                         "high_energy_space_charge_on", "absolute_time_tracking"):
            table[attribute] = unquote(value).lower()
            return
        try:
            table[attribute] = self.evaluate(statement, value, value_at)
        except LatticeFileError:
            if attribute in ("e_tot", "p0c"):
                raise
            table[attribute] = value  # a setting beamtrack does not read

    def set_attribute(self, definition: _Definition, statement: Statement, attribute: str,
                      value: str | None, attr_at: int, value_at: int) -> None:
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", attribute):
            self.warn_once(f"attr:{definition.name}:{attribute}", statement,
                           f"element {definition.name!r}: attribute {attribute!r} is not "
                           "supported and is skipped", attr_at)
            return
        definition.where[attribute] = (statement, attr_at)
        if value is None:
            definition.attrs[attribute] = _flag_value(definition.kind, attribute)
            return
        if attribute in SWITCHES or value[:1] in "\"'":
            definition.attrs[attribute] = unquote(value).lower()
            return
        if value[:1] == "{":
            definition.attrs[attribute] = value  # structured (wall, field maps, ...)
            return
        try:
            definition.attrs[attribute] = self.evaluate(statement, value, value_at)
        except LatticeFileError:
            if _known_attribute(definition.kind, attribute):
                raise
            definition.attrs[attribute] = value  # unknown anyway: warned when built

    def definition(self, statement: Statement, colon: int) -> None:
        text = statement.text
        label = text[:colon].strip()
        if "(" in label:
            raise statement.error("lines with arguments are not supported", 0)
        name = label.lower()
        if not _NAME.fullmatch(name):
            raise statement.error(f"invalid name {label!r}", 0)
        pieces = split_top(statement, ",", colon + 1)
        head = pieces[0]
        if not head.text:
            raise statement.error("missing element class after ':'", head.offset)
        equals = head.text.find("=")
        if equals >= 0:
            kind = head.text[:equals].strip().lower()
            value_at = head.offset + equals + 1
            if kind.replace(" ", "") == "line[multipass]":
                self.warn_once(f"multipass:{name}", statement, f"line {label!r}: multipass is "
                               "not supported; read as an ordinary line", head.offset)
                kind = "line"
            if kind in ("line", "list"):
                if kind == "list":
                    raise statement.error("replacement lists are not supported", head.offset)
                if name in self.definitions:
                    raise statement.error(f"{label!r} is already an element", 0)
                if name not in self.lines:
                    self.line_order.append(name)
                self.lines[name] = self.line_items(statement, value_at, len(text))
                return
            if kind in CONTROLLERS:
                self.warn_once(f"controller:{name}", statement, f"{kind} {label!r} is skipped "
                               "(controllers are not supported; their initial settings are "
                               "not applied)", head.offset)
                return
            raise statement.error(f"unrecognised definition {_short(head.text)!r}", head.offset)
        kind = head.text.lower()
        if kind not in self.definitions and kind not in BMAD_KINDS and kind not in \
                OTHER_CLASSES and len(kind) >= 3:
            # Bmad accepts a unique abbreviation of a class name ("quad").
            matches = [c for c in (*BMAD_KINDS, *OTHER_CLASSES) if c.startswith(kind)]
            if len(matches) == 1:
                kind = matches[0]
        if kind in self.definitions:
            parent = self.definitions[kind]
            definition = _Definition(name, parent.kind, dict(parent.attrs), dict(parent.where),
                                     statement, 0)
        elif kind in BMAD_KINDS or kind in OTHER_CLASSES:
            definition = _Definition(name, kind, statement=statement, offset=0)
        elif kind in CONTROLLERS:
            self.warn_once(f"controller:{name}", statement,
                           f"{kind} {label!r} is skipped (controllers are not supported)",
                           head.offset)
            return
        elif kind in self.lines:
            raise statement.error(f"{kind!r} is a line, not an element", head.offset)
        else:
            raise statement.error(f"unknown element class or element {head.text!r}",
                                  head.offset)
        if name in self.lines:
            raise statement.error(f"{label!r} is already a line", 0)
        self.serial += 1
        definition.serial = self.serial
        self.definitions[name] = definition
        for attr_name, value, name_at, value_at in iter_pieces(pieces[1:]):
            attribute = attr_name.lower()
            if not attribute:
                raise statement.error("empty attribute", name_at)
            self.set_attribute(definition, statement, attribute, value, name_at, value_at)

    def line_items(self, statement: Statement, start: int, end: int) -> list[LineEntry]:
        text = statement.text
        body = text[start:end].strip()
        body_at = start + len(text[start:end]) - len(text[start:end].lstrip())
        if not (body.startswith("(") and body.endswith(")")):
            raise statement.error("a line needs its members in parentheses", body_at)
        return parse_members(statement, body_at + 1, body_at + len(body) - 1, _NAME,
                             reversal=True)

    # -- building -------------------------------------------------------------------
    def reference(self, source: str) -> Reference | None:
        values = {**self.parameter, **self.beginning}
        particle = values.get("particle", "positron")
        name = _SPECIES.get(str(particle))

        def error(key: str, message: str) -> LatticeFileError:
            if key in self.reference_where:
                statement, offset = self.reference_where[key]
                return statement.error(message, offset)
            return LatticeFileError(message, file=source)

        if name is None:
            raise error("particle", f"parameter[particle] = {particle!r}: beamtrack knows "
                        f"{', '.join(sorted(_SPECIES))}")
        energies = {k: values[k] for k in ("p0c", "e_tot") if isinstance(values.get(k), float)
                    and values[k] != 0.0}
        if not energies:
            return None
        if len(energies) > 1:
            energies.pop("e_tot")
        try:
            return Reference.from_energy(name, **energies)
        except ParameterError as exc:
            raise error(next(iter(energies)), f"reference energy: {exc}") from None

    def expand(self, sequence: str | None, source: str) -> tuple[str, list[str]]:
        return expand_chosen(self.lines, self.line_order, self.use,
                             self.definitions.__contains__, sequence, source, "line")


def _definition_colon(statement: Statement) -> int:
    """Offset of the ``:`` that ends a definition's label, or -1."""
    text = statement.text
    i = find_top(statement, ":")
    while i >= 0:
        following = text[i + 1:i + 2]
        if following == "=":
            return -1
        if following == ":" or text[i - 1:i] == ":":
            i = find_top(statement, ":", i + 2)
            continue
        equals = find_top(statement, "=")
        return i if equals < 0 or i < equals else -1
    return -1


def _truth(definition: _Definition, attribute: str) -> bool:
    value = definition.attrs.get(attribute, False)
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return value != 0.0
    if value in ("t", "true", ".true."):
        return True
    if value in ("f", "false", ".false."):
        return False
    raise _attribute_error(definition, attribute, f"= {value!r} is not T or F")


def _placement(definition: _Definition, reader: _Reader) -> Placement | None:
    """The superposition that ``definition`` asks for, or ``None``."""
    attrs = definition.attrs
    if not _truth(definition, "superimpose"):
        for attribute in ("ref", "offset", "ref_origin", "ele_origin"):
            if attribute in attrs:
                _warn_at(reader, f"superimpose:{definition.name}", definition, attribute,
                         f"{attribute} without superimpose: the element is not "
                         "superimposed")
                break
        return None
    origins = {}
    for side in ("ref", "ele"):
        origin = attrs.get(f"{side}_origin", "center")
        for flag in ("beginning", "center", "end"):
            if f"{side}_{flag}" in attrs and _truth(definition, f"{side}_{flag}"):
                origin = flag
        if origin not in ORIGINS:
            raise _attribute_error(definition, f"{side}_origin", f"= {origin!r} is not one "
                                   f"of {', '.join(ORIGINS)}")
        origins[side] = origin
    ref = attrs.get("ref")
    if ref is not None and not isinstance(ref, str):
        raise _attribute_error(definition, "ref", "must be an element name")
    statement, at = definition.where.get("superimpose",
                                         (definition.statement, definition.offset))
    assert statement is not None
    return Placement(definition.name, ref, _number(definition, "offset"), origins["ref"],
                     origins["ele"], statement, at)


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _flag_value(kind: str, attribute: str) -> Any:
    """The value of an attribute given without ``= value``."""
    if attribute in ("fint", "fintx"):
        return 0.5
    if attribute == "tilt":
        return {"quadrupole": math.pi / 4, "sextupole": math.pi / 6,
                "octupole": math.pi / 8}.get(kind, True)
    match = re.fullmatch(r"t(\d+)", attribute)
    if match and kind == "multipole":
        return math.pi / (2 * int(match.group(1)) + 2)
    return True


def _family(kind: str) -> str:
    if kind in ("sbend", "rbend"):
        return "bend"
    if kind in ("rfcavity", "lcavity", "crab_cavity"):
        return "cavity"
    if kind in ("ecollimator", "rcollimator"):
        return "collimator"
    if kind in ("hkicker", "vkicker", "kicker"):
        return "kicker"
    return kind


_MULTIPOLE_ATTRIBUTE = re.compile(r"(k(\d+)s?l|t(\d+)|a(\d+)|b(\d+))")


def _known_attribute(kind: str, attribute: str) -> bool:
    if kind in BMAD_KINDS and attribute in BMAD_KINDS[kind][1]:
        return True
    if attribute in DERIVED.get(_family(kind), ()):
        return True
    if kind in ("multipole", "ab_multipole", "thick_multipole") and \
            _MULTIPOLE_ATTRIBUTE.fullmatch(attribute):
        return True
    return attribute in ("l", "offset")


def _number(definition: _Definition, attribute: str, default: float = 0.0) -> float:
    value = definition.attrs.get(attribute, default)
    if isinstance(value, bool):
        return float(value)
    if not isinstance(value, float):
        raise _attribute_error(definition, attribute, f"must be a number, got {value!r}")
    return value


def _attribute_error(definition: _Definition, attribute: str, message: str) -> LatticeFileError:
    statement, offset = definition.where.get(attribute, (definition.statement, definition.offset))
    assert statement is not None
    return statement.error(f"element {definition.name!r}: {attribute} {message}", offset)


def _field_scale(definition: _Definition, attribute: str, context: _Context) -> float:
    """Factor from a field [T, T/m^n] to a normalised strength: ``c q / P0``."""
    if context.reference is None:
        raise _attribute_error(definition, attribute, "is a field and needs the reference "
                               "momentum (parameter[particle] and beginning[p0c] or e_tot)")
    if context.has_lcavity:
        raise _attribute_error(definition, attribute, "is a field: converting it after an "
                               "lcavity (which changes the reference momentum) is not "
                               "supported; give the normalised strength")
    return C_LIGHT * context.reference.charge / context.reference.p0c


@dataclass
class _Context:
    reference: Reference | None
    has_lcavity: bool


def _derive(definition: _Definition, context: _Context) -> dict[str, Any]:
    """Bmad attributes of ``definition`` in the table's names (``g`` -> ``angle``, ...)."""
    kind = definition.kind
    family = _family(kind)
    attrs = dict(definition.attrs)
    number = lambda a, d=0.0: _number(definition, a, d)  # noqa: E731
    if family == "bend":
        if "k2" in attrs or "b2_gradient" in attrs:
            if number("k2") != 0.0 or number("b2_gradient") != 0.0:
                raise _attribute_error(definition, "k2", "(a sextupole component of a bend) "
                                       "is not supported")
        for face in ("h1", "h2"):
            if number(face) != 0.0:
                definition_warn(definition, face, "pole-face curvature is not modelled (as in "
                                "Bmad's bmad_standard tracking) and is skipped")
        g = None
        if "g" in attrs:
            g = number("g")
        elif "rho" in attrs:
            rho = number("rho")
            if rho == 0.0:
                raise _attribute_error(definition, "rho", "must not be zero")
            g = 1.0 / rho
        elif "b_field" in attrs:
            g = number("b_field") * _field_scale(definition, "b_field", context)
        if "db_field" in attrs and number("db_field") != 0.0:
            attrs["dg"] = number("dg") + number("db_field") * _field_scale(
                definition, "db_field", context)
        if "b1_gradient" in attrs:
            attrs["k1"] = number("b1_gradient") * _field_scale(definition, "b1_gradient",
                                                               context)
        chord = None
        arc = None
        if kind == "rbend":
            if "l_arc" in attrs:
                arc = number("l_arc")
            elif "l" in attrs or "l_chord" in attrs:
                chord = number("l") if "l" in attrs else number("l_chord")
        else:
            if "l" in attrs:
                arc = number("l")
            elif "l_chord" in attrs:
                chord = number("l_chord")
        angle = number("angle") if "angle" in attrs else None
        if angle is None and g is not None:
            if arc is not None:
                angle = g * arc
            elif chord is not None:
                ratio = chord * g / 2
                if abs(ratio) > 1:
                    raise _attribute_error(definition, "g", "and the chord length give no arc")
                angle = 2 * math.asin(ratio)
        if angle is None:
            angle = 0.0
        if arc is None and chord is None and g is not None and g != 0.0:
            arc = angle / g
        if kind == "rbend":
            if chord is None:
                arc = arc or 0.0
                half = angle / 2
                chord = arc if half == 0 else arc * math.sin(half) / half
            attrs["l"] = chord
        else:
            if arc is None:
                chord = chord or 0.0
                half = angle / 2
                arc = chord if half == 0 else chord * half / math.sin(half)
            attrs["l"] = arc
        attrs["angle"] = angle
        fringe = attrs.get("fringe_type", "basic_bend")
        if fringe not in FRINGE_TYPES:
            raise _attribute_error(definition, "fringe_type", f"= {fringe!r} is not a Bmad "
                                   f"fringe type ({', '.join(FRINGE_TYPES)})")
        attrs["fringe_type"] = FRINGE_TYPES[fringe]
    elif family == "quadrupole" and "b1_gradient" in attrs:
        attrs["k1"] = number("b1_gradient") * _field_scale(definition, "b1_gradient", context)
    elif family == "sextupole" and "b2_gradient" in attrs:
        attrs["k2"] = number("b2_gradient") * _field_scale(definition, "b2_gradient", context)
    elif family == "octupole" and "b3_gradient" in attrs:
        attrs["k3"] = number("b3_gradient") * _field_scale(definition, "b3_gradient", context)
    elif family == "solenoid" and "bs_field" in attrs:
        attrs["ks"] = number("bs_field") * _field_scale(definition, "bs_field", context)
    elif family == "cavity":
        length = number("l")
        if "gradient" in attrs or "gradient_err" in attrs:
            voltage = (number("gradient") + number("gradient_err")) * length
        else:
            voltage = number("voltage")
        attrs["voltage"] = voltage + number("voltage_err")
        attrs["phi0"] = number("phi0") + number("phi0_err") + number("phi0_multipass")
        if "rf_frequency" not in attrs and number("harmon") != 0.0 and attrs["voltage"] != 0:
            raise _attribute_error(definition, "harmon", "needs the ring's revolution time; "
                                   "give rf_frequency")
        if kind == "lcavity":
            cavity_type = attrs.get("cavity_type", "standing_wave")
            if cavity_type not in ("standing_wave", "traveling_wave"):
                raise _attribute_error(definition, "cavity_type", f"= {cavity_type!r} is not "
                                       "supported (standing_wave, traveling_wave)")
    elif family == "collimator":
        for plane in ("x", "y"):
            lower, upper = f"{plane}1_limit", f"{plane}2_limit"
            if lower in attrs or upper in attrs:
                if number(lower) != number(upper):
                    raise _attribute_error(definition, lower, "differs from "
                                           f"{upper}: only symmetric openings are supported")
                attrs[f"{plane}_limit"] = number(lower)
    elif family == "kicker":
        for bl, target in (("bl_kick", "kick"), ("bl_hkick", "hkick"), ("bl_vkick", "vkick")):
            if bl in attrs:
                scale = _field_scale(definition, bl, context)
                # A positive field integral kicks towards -x for positive charge
                # (Bmad: kick = -q BL / P0 for hkick, +q BL / P0 for vkick).
                sign = -1.0 if target in ("kick", "hkick") and kind != "vkicker" else 1.0
                attrs[target] = sign * number(bl) * scale
    return attrs


def definition_warn(definition: _Definition, attribute: str, message: str) -> None:
    statement, offset = definition.where.get(attribute, (definition.statement, definition.offset))
    assert statement is not None
    statement.warn(f"element {definition.name!r}: {attribute}: {message}", offset)


def _multipole_strengths(definition: _Definition, attrs: dict[str, Any]
                         ) -> tuple[list[float], list[float]]:
    """``knl``, ``ksl`` (MAD-X convention) from KnL/KnSL/Tn or An/Bn.

    Bmad: ``b_n + i a_n = (KnL + i KnSL) exp(-i (n+1) Tn) / n!`` and the kick
    ``-dpx + i dpy = (b_n + i a_n)(x + i y)^n``, MAD-X: ``knl + i ksl = n! (b_n + i a_n)``.
    """
    normal: dict[int, float] = {}
    skew: dict[int, float] = {}
    for attribute in attrs:
        match = _MULTIPOLE_ATTRIBUTE.fullmatch(attribute)
        if not match:
            continue
        value = _number(definition, attribute)
        if definition.kind == "multipole" and attribute.startswith("k"):
            order = int(match.group(2))
            tilt = _number(definition, f"t{order}")
            angle = (order + 1) * tilt
            sl = _number(definition, f"k{order}sl")
            kl = _number(definition, f"k{order}l")
            normal[order] = kl * math.cos(angle) + sl * math.sin(angle)
            skew[order] = sl * math.cos(angle) - kl * math.sin(angle)
        elif definition.kind != "multipole" and attribute[0] in "ab":
            order = int(attribute[1:])
            factor = float(math.factorial(order))
            (skew if attribute[0] == "a" else normal)[order] = value * factor
    if definition.kind == "ab_multipole" and (normal.get(0, 0.0) or skew.get(0, 0.0)):
        raise _attribute_error(definition, "b0", "a dipole term of an ab_multipole (a kick that "
                               "does not bend the reference) is not supported; use a kicker")
    orders = max([*normal, *skew], default=-1) + 1
    if orders > 22:
        raise _attribute_error(definition, "k0l", "multipole orders above 21")
    return ([normal.get(n, 0.0) for n in range(orders)],
            [skew.get(n, 0.0) for n in range(orders)])


def _build(definition: _Definition, context: _Context, reader: _Reader) -> list[Element]:
    """The beamtrack elements (usually one) of a Bmad definition."""
    kind = definition.kind
    name = definition.name
    statement = definition.statement
    assert statement is not None
    if definition.attrs.get("is_on") in ("f", "false", ".false.") or \
            definition.attrs.get("is_on") is False:
        definition_warn(definition, "is_on", "the element is switched off: read as a drift")
        return [_element("Drift", name, {"length": _number(definition, "l")}, definition)]
    if kind in OTHER_CLASSES:
        reader.warn_once(f"kind:{name}", statement, f"element {name!r}: Bmad class {kind!r} is "
                         "not supported; tracked as a drift of its length", definition.offset)
        return [_element("Drift", name, {"length": _number(definition, "l")}, definition)]
    target, table = BMAD_KINDS[kind]
    attrs = _derive(definition, context)
    declared = ELEMENT_KINDS[target].declaration()
    params: dict[str, Any] = {}
    family = _family(kind)
    derived = DERIVED.get(family, frozenset())
    for attribute, value in attrs.items():
        if attribute in table:
            parameter = table[attribute]
            if parameter == "length" and target == "Monitor":
                continue
            if parameter not in declared:
                if isinstance(value, float) and value == 0.0:
                    continue
                raise _attribute_error(definition, attribute, "is not supported by this "
                                       "beamtrack version")
            if parameter == "num_steps":
                if value != int(value) or value < 1:
                    raise _attribute_error(definition, attribute, "must be a whole number >= 1")
                value = int(value)
            elif parameter in ("fringe_type", "cavity_type"):
                if not isinstance(value, str):
                    raise _attribute_error(definition, attribute, "must be a word")
            elif not isinstance(value, float):
                if isinstance(value, bool):
                    raise _attribute_error(definition, attribute, "needs a value")
                raise _attribute_error(definition, attribute, f"must be a number, got {value!r}")
            params[parameter] = value
        elif attribute in derived or attribute in IGNORED or attribute in ("l",) or \
                attribute in SUPERPOSITION_ATTRIBUTES:
            continue
        elif kind in ("multipole", "ab_multipole", "thick_multipole") and \
                _MULTIPOLE_ATTRIBUTE.fullmatch(attribute):
            continue
        elif attribute in UNSUPPORTED_MISALIGNMENTS or attribute in STEERING:
            if isinstance(value, float) and value == 0.0:
                continue
            raise _attribute_error(definition, attribute, "is not supported (it would change "
                                   "the tracking)")
        elif attribute == "tilt" and family == "bend":
            raise _attribute_error(definition, attribute, "bends have ref_tilt (rotates the "
                                   "reference orbit) and roll (a misalignment), not tilt")
        elif attribute in APERTURE_ATTRIBUTES:
            _warn_at(reader, f"aperture:{name}", definition, attribute,
                     f"apertures of {kind} elements are not checked by beamtrack "
                     "(use an Aperture or Collimator element)")
        else:
            _warn_at(reader, f"attr:{name}:{attribute}", definition, attribute,
                     f"attribute {attribute!r} of {kind} is not supported and is skipped")
    if kind in ("multipole", "ab_multipole", "thick_multipole"):
        knl, ksl = _multipole_strengths(definition, attrs)
        params["knl"] = tuple(knl)
        params["ksl"] = tuple(ksl)
    if target == "Collimator":
        params["shape"] = "elliptical" if kind == "ecollimator" else "rectangular"
        if _number(definition, "l") == 0.0:
            params.pop("length", None)
            return [_element("Aperture", name, params, definition)]
    if target in ("SBend", "RBend") and "fringe_type" not in params:
        params["fringe_type"] = "basic_bend"
    if target == "Monitor":
        length = _number(definition, "l")
        monitor = _element("Monitor", name, params, definition)
        if length == 0.0:
            return [monitor]
        half = _element("Drift", f"{name}__body", {"length": length / 2}, definition)
        return [half, monitor, half]
    return [_element(target, name, params, definition)]


def _warn_at(reader: _Reader, key: str, definition: _Definition, attribute: str,
             message: str) -> None:
    statement, offset = definition.where.get(attribute, (definition.statement, definition.offset))
    assert statement is not None
    reader.warn_once(key, statement, f"element {definition.name!r}: {message}", offset)


def _element(kind: str, name: str, params: dict[str, Any], definition: _Definition) -> Element:
    try:
        return ELEMENT_KINDS[kind](name, **params)
    except (ParameterError, LatticeError, NotImplementedError, ValueError, TypeError,
            OverflowError) as exc:
        statement = definition.statement
        assert statement is not None
        raise statement.error(f"element {name!r} ({definition.kind}): {exc}",
                              definition.offset) from None


def loads(text: str, *, source: str = "<string>", sequence: str | None = None,
          root: str | os.PathLike[str] | None = None) -> Beamline:
    """Read a beamline from Bmad lattice text.

    Parameters
    ----------
    text
        The lattice file's text.
    source
        File name for messages; ``call`` paths are relative to its folder.
    sequence
        The line to expand; by default the one named by ``use``, else the last line.
    root
        Folder that ``call``-ed files must lie in; by default the folder of
        ``source`` (the current folder for ``"<string>"``).

    Returns
    -------
    Beamline
        The expanded line, named after the Bmad line, with its
        :attr:`~Beamline.reference` from ``parameter[particle]`` and
        ``beginning[p0c]``/``beginning[e_tot]`` (``None`` if no energy is given; the
        particle defaults to Bmad's positron).

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
        reference = reader.reference(source)
        placements = reader.placements()
        used = set(names) | {p.name for p in placements}
        has_lcavity = any(d.kind == "lcavity" for d in reader.definitions.values()
                          if d.name in used)
        context = _Context(reference, has_lcavity)
        built: dict[str, list[Element]] = {}

        def build(element_name: str) -> tuple[str, list[Element]]:
            if element_name not in built:
                built[element_name] = _build(reader.definitions[element_name], context, reader)
            return reader.definitions[element_name].kind, built[element_name]

        kinds = {n: build(n)[0] for n in names}
        if placements:
            def warn(placement: Placement, message: str) -> None:
                reader.warn_once(f"superimpose-missing:{placement.name}:{placement.ref}",
                                 placement.statement, message, placement.at)

            slots = superposition.line_slots(names, built, kinds)
            slots = superposition.apply(slots, placements, build, warn)
            items = superposition.flatten(slots)
        else:
            items = [element for n in names for element in built[n]]
        return build_line(items, name, source, reference)
    except RecursionError:
        raise LatticeFileError("nesting too deep", file=source) from None


def load(path: str | os.PathLike[str], *, sequence: str | None = None,
         root: str | os.PathLike[str] | None = None) -> Beamline:
    """Read a beamline from a Bmad lattice file (see :func:`loads`)."""
    source = os.fspath(path)
    return loads(read_text(source), source=source, sequence=sequence, root=root)


# -- writer ---------------------------------------------------------------------------
#: beamtrack kind -> Bmad class written (Aperture: a zero-length collimator; Screen: an
#: instrument).
WRITE_CLASSES: dict[str, str] = {
    "Drift": "drift", "Quadrupole": "quadrupole", "Sextupole": "sextupole",
    "Octupole": "octupole", "ThickMultipole": "thick_multipole", "Multipole": "multipole",
    "SBend": "sbend", "RBend": "rbend", "HKicker": "hkicker", "VKicker": "vkicker",
    "Kicker": "kicker", "Solenoid": "solenoid", "RFCavity": "rfcavity", "LCavity": "lcavity",
    "CrabCavity": "crab_cavity", "Marker": "marker", "Monitor": "monitor",
    "Screen": "instrument", "Collimator": "rcollimator", "Aperture": "rcollimator",
}
#: Parameters of beamtrack records that a Bmad file cannot hold; written only when
#: they have their default value (else a warning says they are dropped).
_NOT_WRITTEN = {"Monitor": ("resolution", "seed"),
                "Screen": ("resolution", "pixel_size", "deposit", "bandwidth", "binning"),
                "Aperture": ("smooth",)}


def _scalar(value: Any, element: Element, parameter: str) -> float:
    if array_api_compat.is_array_api_obj(value):
        array = backend_of(value).to_numpy(value)
        if array.size != 1:
            raise LatticeFileError(f"{element.kind} {element.name!r}: parameter {parameter!r} "
                                   "is a batch of values; a Bmad file holds one")
        value = array.reshape(()).item()
    value = float(value)
    if not math.isfinite(value):
        raise LatticeFileError(f"{element.kind} {element.name!r}: parameter {parameter!r} "
                               f"is {value}")
    return value


def _format(value: float) -> str:
    text = repr(float(value))
    return text


def _element_line(element: Element) -> str:
    kind = element.kind
    if kind not in WRITE_CLASSES:
        raise LatticeFileError(f"{kind} {element.name!r}: the Bmad format has no element for "
                               f"this kind (writable: {', '.join(sorted(WRITE_CLASSES))})")
    bmad_class = WRITE_CLASSES[kind]
    if kind in ("Collimator", "Aperture") and element.shape == "elliptical":
        bmad_class = "ecollimator"
    parts = [f"{element.name}: {bmad_class}"]
    if element.method is not None:
        warnings.warn(f"{kind} {element.name!r}: its own tracking method {element.method!r} "
                      "has no Bmad equivalent and is not written", LatticeFileWarning,
                      stacklevel=3)
    declared = element.declaration()
    table = BMAD_KINDS.get(bmad_class, ("", {}))[1]
    inverse = {parameter: attribute for attribute, parameter in table.items()}
    for parameter, spec in declared.items():
        value = getattr(element, parameter)
        if parameter in _NOT_WRITTEN.get(kind, ()):
            if not _values_equal(value, spec.default):
                warnings.warn(f"{kind} {element.name!r}: parameter {parameter!r} has no Bmad "
                              "equivalent and is not written", LatticeFileWarning, stacklevel=3)
            continue
        if parameter in ("shape",):
            continue
        if parameter == "ref_length":  # MAD-X lrad: Bmad's multipole has no curved reference
            if not _values_equal(value, 0.0):
                raise LatticeFileError(f"{kind} {element.name!r}: a curved reference "
                                       "(ref_length, MAD-X lrad) has no Bmad equivalent")
            continue
        if parameter in ("knl", "ksl"):
            prefix = "k{}l" if parameter == "knl" else "k{}sl"
            values = _orders(value, element, parameter)
            if kind == "ThickMultipole":
                prefix = "b{}" if parameter == "knl" else "a{}"
                values = [v / math.factorial(n) for n, v in enumerate(values)]
            for order, strength in enumerate(values):
                if strength != 0.0:
                    parts.append(f"{prefix.format(order)} = {_format(strength)}")
            if kind == "Multipole" and parameter == "knl" and values and values[0] != 0.0:
                parts.append("k0l_status = bends_reference")
            continue
        attribute = inverse.get(parameter)
        if attribute is None:
            if kind == "Aperture" and parameter in ("x_limit", "y_limit", "x_offset",
                                                    "y_offset", "tilt"):
                attribute = parameter
            else:
                raise LatticeFileError(f"{kind} {element.name!r}: parameter {parameter!r} "
                                       "has no Bmad equivalent")
        if value is None:
            continue
        if parameter == "fringe_type":
            bmad_value = {v: k for k, v in FRINGE_TYPES.items()}[value]
            parts.append(f"{attribute} = {bmad_value}")
            continue
        if parameter == "cavity_type":
            parts.append(f"{attribute} = {value}")
            continue
        if parameter == "num_steps":
            if value != spec.default:
                parts.append(f"{attribute} = {int(value)}")
            continue
        number = _scalar(value, element, parameter)
        if number == 0.0 and parameter not in ("length",) and spec.default == 0.0:
            continue
        parts.append(f"{attribute} = {_format(number)}")
    return ", ".join(parts)


def _orders(value: Any, element: Element, parameter: str) -> list[float]:
    if array_api_compat.is_array_api_obj(value):
        array = np.asarray(backend_of(value).to_numpy(value), dtype=float)
        if array.ndim != 1:
            raise LatticeFileError(f"{element.kind} {element.name!r}: parameter {parameter!r} "
                                   "holds a batch of values; a Bmad file holds one")
        return [float(v) for v in array]
    return [_scalar(v, element, parameter) for v in value]


def _values_equal(a: Any, b: Any) -> bool:
    try:
        return bool(np.all(np.asarray(a) == np.asarray(b)))
    except Exception:  # noqa: BLE001 - arrays of other libraries
        return False


def dumps(line: Beamline) -> str:
    """Bmad lattice text of ``line``.

    The file holds ``parameter[geometry] = open``, the particle and ``beginning[p0c]``
    (from :attr:`~Beamline.reference`, when set), one definition per element name
    (an element used at several places is defined once), one Bmad line per nested
    :class:`Beamline`, and ``use`` of the top line. Numbers are written with Python's
    shortest round-trip representation, so reading the file back gives the same
    values.

    Raises
    ------
    LatticeFileError
        An element kind or parameter Bmad cannot hold, a batched parameter, or a name
        that is not a valid Bmad name (Bmad names are case-insensitive: two names that
        differ only in case collide).
    """
    out = ["! Written by beamtrack", "parameter[geometry] = open"]
    reference = getattr(line, "reference", None)
    if reference is not None:
        particle = {v: k for k, v in _SPECIES.items() if "+" not in k and "-" not in k}.get(
            reference.species.name)
        if particle is None:
            raise LatticeFileError(f"species {reference.species.name!r} has no Bmad name here")
        out.append(f"parameter[particle] = {particle}")
        out.append(f"beginning[p0c] = {_format(reference.p0c)}")
    out.append("")
    defined: dict[str, Any] = {}
    lines: list[str] = []
    definitions: list[str] = []

    def check_name(name: str, item: Any) -> bool:
        if not _WRITABLE_NAME.fullmatch(name):
            raise LatticeFileError(f"{name!r} is not a valid Bmad name (a letter, then "
                                   "letters, digits, '_' or '.')")
        key = name.lower()
        if key in ("parameter", "beginning", "line", "use", "call", "beam", "end"):
            raise LatticeFileError(f"{name!r} is a Bmad keyword and cannot name an element")
        if key in defined:
            if defined[key] is item or (isinstance(item, Element) and defined[key] == item):
                return False
            raise LatticeFileError(f"two different definitions named {name!r} (Bmad names are "
                                   "case-insensitive)")
        defined[key] = item
        return True

    def write_line(beamline: Beamline) -> None:
        members = []
        for item in beamline.items:
            if isinstance(item, Beamline):
                if check_name(item.name, item):
                    write_line(item)
            elif check_name(item.name, item):
                definitions.append(_element_line(item))
            members.append(item.name)
        if not members:
            raise LatticeFileError(f"line {beamline.name!r} is empty; Bmad lines need members")
        lines.append(_wrap(f"{beamline.name}: line = (", members))

    check_name(line.name, line)
    write_line(line)
    out.extend(definitions)
    out.append("")
    out.extend(lines)
    out.append("")
    out.append(f"use, {line.name}")
    return "\n".join(out) + "\n"


def _wrap(head: str, members: list[str], width: int = 90) -> str:
    text = head
    current = len(head)
    for i, member in enumerate(members):
        piece = member + (", " if i < len(members) - 1 else ")")
        if current + len(piece) > width and current > len(head):
            text = text.rstrip() + " &\n    "
            current = 4
        text += piece
        current += len(piece)
    return text


def save(line: Beamline, path: str | os.PathLike[str]) -> None:
    """Write ``line`` to a Bmad lattice file (see :func:`dumps`)."""
    text = dumps(line)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


__all__ = ["BMAD_KINDS", "CONSTANTS", "FUNCTIONS", "dumps", "load", "loads", "save"]
