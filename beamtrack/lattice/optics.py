"""Linear optics of beamlines: transfer maps, Twiss functions, merged maps, parameter beams."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import array_api_compat
import numpy as np

from beamtrack.backends import backend_of
from beamtrack.backends.defaults import get_defaults, resolve
from beamtrack.lattice.beamline import Beamline
from beamtrack.lattice.elements import Element
from beamtrack.lattice.linear_map import LinearMap
from beamtrack.tracking.errors import ParameterError
from beamtrack.tracking.optics import (
    COUPLING_FIELDS,
    TWISS_FIELDS,
    TwissInit,
    periodic_twiss,
    propagate_twiss,
)
from beamtrack.tracking.parameter_beam import ParameterBeam
from beamtrack.tracking.particles import Particles
from beamtrack.tracking.species import electron

#: Default reference of optics calculations on a line without a
#: :attr:`~beamtrack.lattice.beamline.Beamline.reference`: 1 GeV/c electrons. Magnetic
#: optics with normalised strengths do not depend on it; ``R56`` and cavities do.
DEFAULT_P0C = 1.0e9


def reference_of(line: Beamline, p0c: Any = None, mc2: Any = None) -> tuple[Any, Any]:
    """``(p0c, mc2)`` [eV]: the given values, else the line's reference, else 1 GeV/c
    electrons (:data:`DEFAULT_P0C`)."""
    reference = line.reference
    if p0c is None:
        p0c = reference.p0c if reference is not None else DEFAULT_P0C
    if mc2 is None:
        mc2 = reference.mc2 if reference is not None else electron.mc2
    return p0c, mc2


def _arrays_in(line: Beamline) -> list[Any]:
    return [
        v for element in line for v in element.parameters().values()
        if array_api_compat.is_array_api_obj(v)
    ]


def infer_backend(line: Beamline, *extra: Any) -> str:
    """The backend of the first array among ``extra`` and the line's parameters, else the
    project's default backend (:func:`beamtrack.set_defaults`; NumPy unless set)."""
    for value in list(extra) + _arrays_in(line):
        if array_api_compat.is_array_api_obj(value) and not isinstance(value, np.ndarray):
            return backend_of(value).name
    return get_defaults().backend


def reference_particles(
    p0c: Any = DEFAULT_P0C, mc2: Any = electron.mc2, backend: str | None = None
) -> Particles:
    """Seven probe particles: the six unit vectors and the reference orbit (last), on
    ``backend`` (default: the project's default backend, dtype and device)."""
    coords = np.concatenate([np.eye(6), np.zeros((6, 1))], axis=1)
    target, dtype, device = resolve(backend)
    if not array_api_compat.is_array_api_obj(p0c) or isinstance(p0c, np.ndarray):
        p0c = float(p0c)
    return Particles(coords=target.asarray(coords, dtype=dtype, device=device), p0c=p0c,
                     mc2=mc2)


def _split(out: Particles) -> tuple[Any, Any]:
    coords = out.coords
    c = coords[..., :, 6]
    return coords[..., :, :6] - c[..., :, None], c


def element_maps(
    line: Beamline,
    p0c: Any = None,
    mc2: Any = None,
    backend: str | None = None,
    strict: bool = True,
) -> Iterator[tuple[Element, Any, Any, Particles]]:
    """First-order maps ``(element, R, c, probe)`` of every element, in order.

    An element without a first-order map (:class:`~beamtrack.lattice.custom.Custom`)
    raises :class:`~beamtrack.tracking.errors.ParameterError` naming it, or, with
    ``strict=False``, gives ``R = c = None`` (the probe still passes through it).

    The maps are read off the ``"linear"`` method of each element by tracking the six
    unit vectors and the reference orbit (linear maps are affine, so this is exact);
    ``probe`` is the probe record after the element (its ``s`` and ``p0c``).
    """
    p0c, mc2 = reference_of(line, p0c, mc2)
    probe = reference_particles(p0c, mc2, backend or infer_backend(line))
    for element in line:
        if element.method not in (None, "linear"):
            element = element.replace(method=None)
        if strict and not element.affine_when_linear:
            raise ParameterError(
                f"{element.kind} {element.name!r}: a custom element has no first-order map "
                "that beamtrack can read off; replace it by a LinearMap (e.g. its Jacobian "
                "from torch.func.jacrev or jax.jacfwd) for optics and ParameterBeam tracking")
        out = element.track(probe, "linear")
        r, c = _split(out) if element.affine_when_linear else (None, None)
        probe = Particles.from_fields(probe.coords, out.s, out.p0c, out.mc2, probe.alive)
        yield element, r, c, probe


def compose(maps: list[tuple[Any, Any]]) -> tuple[Any, Any]:
    """The map of consecutive maps ``[(R1, c1), (R2, c2), ...]`` (first applied first)."""
    r, c = maps[0]
    if not maps[1:]:
        return r, c
    xp = array_api_compat.array_namespace(r)
    for r_next, c_next in maps[1:]:
        c = xp.matmul(r_next, c[..., None])[..., 0] + c_next
        r = xp.matmul(r_next, r)
    return r, c


def transfer_map(
    line: Beamline, p0c: Any = None, mc2: Any = None, backend: str | None = None
) -> tuple[Any, Any]:
    """First-order map ``(R, c)`` of the whole beamline: the product of the element maps.

    ``p0c`` and ``mc2`` [eV] default to the line's reference (else 1 GeV/c electrons).

    ``R`` has shape ``(*batch, 6, 6)``, ``c`` shape ``(*batch, 6)``; ``R56`` follows
    Bmad's sign (``z = -beta c dt``: a higher-momentum particle moves ahead, so a drift
    has ``R56 = L / gamma0^2 > 0``). Convert to MAD-X's ``(t, pt)`` with
    ``R_madx = T R T^-1``, ``T = diag(1, 1, 1, 1, 1/beta0, beta0)``.
    """
    maps = [(r, c) for _, r, c, _ in element_maps(line, p0c, mc2, backend)]
    if not maps:
        raise ParameterError(f"Beamline {line.name!r} has no elements")
    return compose(maps)


@dataclass(frozen=True)
class TwissTable:
    """Twiss functions at the start and after every element of a beamline.

    Every field is an array of shape ``(*batch, n_elements + 1)`` of the backend the
    calculation ran on. ``names[0]`` is ``"(start)"``.

    With linear coupling, ``beta_x, alpha_x, mu_x`` and ``beta_y, alpha_y, mu_y`` are
    the Edwards-Teng normal-mode functions (the x-like mode ``a`` and the y-like mode
    ``b``), as MAD-X's ``betx, alfx, mux, bety, alfy, muy``, and ``r11, r12, r21, r22``
    the elements of the coupling matrix ``R`` as MAD-X's TWISS columns of the same names
    (``r12`` [m], ``r21`` [1/m]); see :mod:`beamtrack.tracking.optics`. Uncoupled,
    ``R = 0`` and the functions are those of the x and y planes. ``tune_x`` and
    ``tune_y`` (periodic solutions only) are the normal-mode tunes, ``mu / (2 pi)`` at
    the end.
    """

    names: tuple[str, ...]
    s: Any
    beta_x: Any
    alpha_x: Any
    mu_x: Any
    dx: Any
    dpx: Any
    beta_y: Any
    alpha_y: Any
    mu_y: Any
    dy: Any
    dpy: Any
    r11: Any = None
    r12: Any = None
    r21: Any = None
    r22: Any = None
    tune_x: Any = None
    tune_y: Any = None

    def __getitem__(self, name: str) -> dict[str, Any]:
        """All functions at the exit of element ``name``."""
        if name not in self.names:
            raise KeyError(f"no element {name!r} in this Twiss table")
        i = self.names.index(name)
        return {f: getattr(self, f)[..., i] for f in ("s",) + TWISS_FIELDS + COUPLING_FIELDS}


def twiss(
    line: Beamline,
    initial: TwissInit | None = None,
    *,
    p0c: Any = None,
    mc2: Any = None,
    backend: str | None = None,
) -> TwissTable:
    """Twiss functions along ``line``.

    Parameters
    ----------
    line
        The beamline. Its elements' first-order (``"linear"``) maps are used, whatever
        tracking method the elements are set to.
    initial
        Initial conditions of a single pass. ``None`` computes the periodic solution
        of the line taken as a ring or a periodic cell, and fills ``tune_x`` and
        ``tune_y`` (total phase advance over 2 pi). With linear coupling (skew or
        rolled quadrupoles, solenoids) the functions are MAD-X's Edwards-Teng
        normal-mode functions and coupling matrix (see :class:`TwissTable`); a single
        pass starts from the coupling matrix of ``initial`` (zero by default: an
        uncoupled beam, as MAD-X's TWISS with ``betx, bety, ...`` only).
    p0c, mc2
        Reference momentum and rest energy [eV] (matter for R56 and cavities only);
        by default the line's :attr:`~beamtrack.lattice.beamline.Beamline.reference`,
        else 1 GeV/c electrons.
    backend
        Where to compute; by default the backend of array-valued initial conditions
        or element parameters, else NumPy.

    Returns
    -------
    TwissTable
        Values at the start and after each element (phase advances in radians).

    Raises
    ------
    ParameterError
        If the periodic solution does not exist (an unstable plane or normal mode,
        or unstable coupled motion), or the normal modes flip along the line (coupling
        too strong for the Edwards-Teng parametrisation).
    """
    extra = [] if initial is None else [getattr(initial, f)
                                        for f in TWISS_FIELDS + COUPLING_FIELDS]
    backend = backend or infer_backend(line, *extra)
    maps = list(element_maps(line, p0c, mc2, backend))
    if not maps:
        raise ParameterError(f"Beamline {line.name!r} has no elements")
    matrices = [r for _, r, _, _ in maps]
    periodic = initial is None
    if periodic:
        xp = array_api_compat.array_namespace(matrices[0])
        one_turn = matrices[0]
        for r in matrices[1:]:
            one_turn = xp.matmul(r, one_turn)
        initial = periodic_twiss(one_turn)
    table = propagate_twiss(matrices, initial)
    xp = array_api_compat.array_namespace(table["beta_x"])
    s_values = [xp.zeros_like(maps[0][3].s)] + [probe.s for _, _, _, probe in maps]
    s = xp.stack(xp.broadcast_arrays(*s_values), axis=-1)
    tunes = {}
    if periodic:
        tunes = {"tune_x": table["mu_x"][..., -1] / (2.0 * math.pi),
                 "tune_y": table["mu_y"][..., -1] / (2.0 * math.pi)}
    return TwissTable(names=("(start)", *line.names()), s=s, **table, **tunes)


def merged(
    line: Beamline,
    p0c: Any = None,
    mc2: Any = None,
    backend: str | None = None,
    method: str | None = None,
) -> Beamline:
    """A flat beamline in which every run of consecutive ``"linear"`` elements is fused
    into one :class:`~beamtrack.lattice.linear_map.LinearMap`.

    Elements tracked with ``"bmad"``, elements without a body (markers) and elements
    that observe or limit the beam or change the reference energy (``mergeable`` is
    False: monitors, screens, apertures, accelerating cavities) stay in place, so
    readings and losses happen where they did. Merging is valid because linear maps
    compose exactly; it needs a fixed reference (``p0c``, ``mc2``, as for tracking)
    and no observation inside a run. The result tracks the same particles to rounding
    (1e-13 relative) and is faster: one matrix product per run instead of one per
    element.

    Parameters
    ----------
    line
        The beamline.
    p0c, mc2
        Reference momentum and rest energy [eV] of the particles that will be tracked
        (the maps depend on them through ``R56``); by default the line's reference,
        else 1 GeV/c electrons.
    backend
        Backend of the fused matrices (default: inferred from the line, else NumPy).
    method
        The tracking method the line will be tracked with (as in :meth:`Beamline.track`).
    """
    backend = backend or infer_backend(line)
    maps = [(r, c) for _, r, c, _ in element_maps(line, p0c, mc2, backend, strict=False)]
    items: list[Element] = []
    run: list[tuple[int, Element]] = []
    fused_names: dict[str, int] = {}
    renamed: dict[tuple[int, str], Element] = {}

    def with_method(element: Element, chosen: str) -> Element:
        # one object per definition, so repeated elements stay one definition
        key = (id(element), chosen)
        if key not in renamed:
            renamed[key] = element.replace(method=chosen)
        return renamed[key]

    def flush() -> None:
        if len(run) == 1:
            items.append(with_method(run[0][1], "linear"))
        elif run:
            r, c = compose([maps[i] for i, _ in run])
            length: Any = 0.0
            for _, e in run:
                length = length + e.path_length
            name = f"{run[0][1].name}..{run[-1][1].name}"
            count = fused_names[name] = fused_names.get(name, 0) + 1
            items.append(LinearMap(name if count == 1 else f"{name}#{count}", r=r, c=c,
                                   length=length, method="linear"))
        run.clear()

    for position, (element, effective) in enumerate(line.plan(method)):
        if effective == "linear" and element.has_body and element.mergeable:
            run.append((position, element))
            continue
        flush()
        items.append(element if element.method else with_method(element, effective))
    flush()
    return Beamline(items, name=line.name, method=method or line.method,
                    reference=line.reference)


def track_parameter_beam(
    line: Beamline, beam: ParameterBeam, backend: str | None = None
) -> ParameterBeam:
    """Track a :class:`ParameterBeam` through ``line`` with the first-order maps.

    ``mean -> R mean + c`` and ``Sigma -> R Sigma R^T`` element by element; ``s`` and
    ``p0c`` follow the reference (an accelerating cavity changes ``p0c``).
    """
    backend = backend or backend_of(beam.mean).name
    s_before: Any = 0.0
    for _, r, c, probe in element_maps(line, beam.p0c, beam.mc2, backend):
        beam = beam.transformed(r, c, probe.s - s_before, p0c=probe.p0c)
        s_before = probe.s
    return beam
