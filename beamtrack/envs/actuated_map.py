"""The first-order map of a beamline as a fast function of a few actuated parameters.

An environment changes a handful of magnet settings thousands of times per second. The
maps of everything else never change, so :class:`ActuatedMap` composes the fixed runs
between actuated elements once, and per call computes only the actuated elements'
maps, all of a kind at once (one batched tracking call of the probe particles for,
say, four quadrupoles of equal length), then chains a few 6x6 products.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from beamtrack.lattice.beamline import Beamline
from beamtrack.lattice.elements import Element
from beamtrack.lattice.optics import compose, element_maps, reference_of, reference_particles
from beamtrack.tracking.errors import ParameterError

#: Degree of the Chebyshev series of tabulated element maps.
DEGREE = 24


def split_key(key: str) -> tuple[str, str]:
    """``"q1.k1" -> ("q1", "k1")``, refusing keys without an element part."""
    element, sep, parameter = key.rpartition(".")
    if not sep or not element:
        raise ParameterError(f"parameter key {key!r} must look like 'element.parameter'")
    return element, parameter


def _segment_map(elements: Sequence[Element], p0c: float, mc2: float) -> tuple[Any, Any,
                                                                            float]:
    """Composed map ``(R, c)`` of a fixed run and the ``p0c`` [eV] after it."""
    maps = []
    for _, r, c, probe in element_maps(Beamline(elements, name="segment"), p0c, mc2,
                                       "numpy"):
        maps.append((r, c))
        p0c = float(probe.p0c)
    if not maps:
        return np.eye(6), np.zeros(6), p0c
    r, c = compose(maps)
    return np.asarray(r), np.asarray(c), p0c


class ActuatedMap:
    """First-order map ``(R, c)`` from the start of ``line`` to the exit of element
    ``until``, as a function of the parameters ``actuators`` (NumPy, float64).

    Parameters
    ----------
    line
        The beamline (its other parameters are frozen at construction).
    actuators
        ``"element.parameter"`` keys, e.g. ``["qf1.k1", "qd1.k1"]``.
    until
        Name of the last element included (its first occurrence); the whole line when
        ``None``.
    p0c, mc2
        Reference momentum and rest energy [eV]; the line's reference by default.
    ranges
        ``{key: (low, high)}``: where given for every actuated parameter of a kind of
        element, the maps of those elements are tabulated once as Chebyshev series of
        degree :data:`DEGREE` in the parameter over its range (element maps are smooth
        in their parameters) and evaluated with two array operations per call; the
        series is checked against tracking at 16 random points (relative 1e-10) and
        dropped if it misses. Values outside the range are tracked directly.

    Notes
    -----
    The reference energy after an actuated element is that at its value in ``line``
    (an actuated cavity voltage would change it; track with :meth:`Beamline.track`
    for that).
    """

    def __init__(self, line: Beamline, actuators: Sequence[str], until: str | None = None,
                 p0c: float | None = None, mc2: float | None = None,
                 ranges: Mapping[str, tuple[float, float]] | None = None):
        p0c, mc2 = (float(v) for v in reference_of(line, p0c, mc2))
        self.keys = tuple(actuators)
        wanted: dict[str, list[tuple[int, str]]] = {}
        for column, key in enumerate(self.keys):
            element, parameter = split_key(key)
            if element not in line:
                raise ParameterError(f"Beamline {line.name!r} has no element {element!r} "
                                     f"(actuator {key!r})")
            wanted.setdefault(element, []).append((column, parameter))
        elements = list(line)
        if until is not None:
            names = [e.name for e in elements]
            if until not in names:
                raise ParameterError(f"Beamline {line.name!r} has no element {until!r}")
            elements = elements[: names.index(until) + 1]
        known = line.parameters()
        missing = [k for k in self.keys if k not in known]
        if missing:
            raise ParameterError(f"Beamline {line.name!r} has no parameter(s) "
                                 f"{', '.join(missing)}")
        #: The line's own values of the actuators.
        self.defaults = np.array([float(known[k]) for k in self.keys])
        # Steps: ("fixed", R, c) or ("group", index into groups, slot in group)
        self._steps: list[tuple[Any, ...]] = []
        self._groups: list[dict[str, Any]] = []
        run: list[Element] = []
        for element in elements:
            if element.name not in wanted:
                run.append(element)
                continue
            if run:
                r, c, p0c = _segment_map(run, p0c, mc2)
                self._steps.append(("fixed", r, c))
                run = []
            columns = wanted[element.name]
            if type(element).tracker is None or not element.affine_when_linear:
                raise ParameterError(f"{element.kind} {element.name!r} has no first-order map "
                                     "to actuate")
            # One template per kind and frozen parameters: actuated parameters zeroed.
            template = dataclasses.replace(element, name="actuated",
                                           **{p: 0.0 for _, p in columns})
            group = next((g for g in self._groups if g["template"] == template
                          and g["p0c"] == p0c
                          and [p for _, p in g["columns"][0]] == [p for _, p in columns]),
                         None)
            if group is None:
                validated = template.replace(**{p: element.parameters()[p] for _, p in columns})
                frozen = {k: v for k, v in validated.parameters().items()
                          if k not in {p for _, p in columns}}
                group = {"template": template, "p0c": p0c, "columns": [],
                         "tracker": type(element).tracker, "frozen": frozen,
                         "probe": reference_particles(p0c, mc2, "numpy")}
                self._groups.append(group)
            group["columns"].append(columns)
            self._steps.append(("group", self._groups.index(group),
                                len(group["columns"]) - 1))
            # The reference energy after an actuated element: that of its default map.
            *_, probe = next(iter(element_maps(Beamline([element]), p0c, mc2, "numpy")))
            p0c = float(probe.p0c)
        if run:
            r, c, p0c = _segment_map(run, p0c, mc2)
            self._steps.append(("fixed", r, c))
        self.p0c_end = p0c
        self.mc2 = mc2
        self._tables: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        if ranges:
            for index, group in enumerate(self._groups):
                table = self._tabulate(index, group, ranges)
                if table is not None:
                    self._tables[index] = table

    def _group_columns(self, group: dict[str, Any]) -> list[int] | None:
        """The actuator column of each slot of a group with one parameter per slot."""
        if any(len(cols) != 1 for cols in group["columns"]):
            return None
        return [cols[0][0] for cols in group["columns"]]

    def _tabulate(self, index: int, group: dict[str, Any],
                  ranges: Mapping[str, tuple[float, float]]) -> Any:
        columns = self._group_columns(group)
        if columns is None or any(self.keys[c] not in ranges for c in columns):
            return None
        low = np.array([float(ranges[self.keys[c]][0]) for c in columns])
        high = np.array([float(ranges[self.keys[c]][1]) for c in columns])
        nodes = np.cos(np.pi * (np.arange(DEGREE + 1) + 0.5) / (DEGREE + 1))
        values = np.zeros((DEGREE + 1, len(self.keys)))
        values[:, columns] = low + (nodes[:, None] + 1.0) * 0.5 * (high - low)
        r, c = self._direct(group, values)
        samples = np.concatenate([r.reshape(DEGREE + 1, len(columns), 36), c], axis=-1)
        # Chebyshev coefficients from the values at the Chebyshev nodes: (degree+1, G, 42)
        basis = np.cos(np.arange(DEGREE + 1)[None, :] * np.arccos(nodes)[:, None])
        coefficients = np.einsum("jk,jgm->gkm", basis, samples) * (2.0 / (DEGREE + 1))
        coefficients[:, 0] *= 0.5  # (G, degree + 1, 42)
        table = (low, high, coefficients)
        check = np.zeros((16, len(self.keys)))
        rng = np.random.default_rng(0)
        check[:, columns] = rng.uniform(low, high, size=(16, len(columns)))
        r_direct, c_direct = self._direct(group, check)
        r_table, c_table = self._from_table(table, check[:, columns])
        scale = max(1.0, float(np.max(np.abs(r_direct))))
        if (np.max(np.abs(r_table - r_direct)) > 1e-10 * scale
                or np.max(np.abs(c_table - c_direct)) > 1e-10 * max(
                    1.0, float(np.max(np.abs(c_direct))))):
            return None
        return table

    @staticmethod
    def _from_table(table: tuple[np.ndarray, np.ndarray, np.ndarray],
                    values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        low, high, coefficients = table
        t = np.clip((2.0 * values - (low + high)) / (high - low), -1.0, 1.0).T  # (G, N)
        terms = [np.ones_like(t), t]
        for _ in range(coefficients.shape[1] - 2):
            terms.append(2.0 * t * terms[-1] - terms[-2])
        basis = np.stack(terms, axis=-1)  # (G, N, degree + 1): Chebyshev polynomials
        flat = np.swapaxes(np.matmul(basis, coefficients), 0, 1)  # (N, G, 42)
        n, g = values.shape
        return flat[..., :36].reshape(n, g, 6, 6), flat[..., 36:]

    def _direct(self, group: dict[str, Any], values: np.ndarray) -> tuple[Any, Any]:
        """Maps ``(N, G, 6, 6)``, ``(N, G, 6)`` of a group's elements by tracking."""
        n = values.shape[0]
        params = dict(group["frozen"])
        for position, (_, parameter) in enumerate(group["columns"][0]):
            params[parameter] = np.stack([values[:, cols[position][0]]
                                          for cols in group["columns"]], axis=-1)
        # The element's tracking function on the cached probe: the element records
        # would validate every value again, which costs more than the map itself.
        coords = group["tracker"](group["probe"], **params, method="linear").coords
        c = coords[..., :, 6]
        r = coords[..., :, :6] - c[..., :, None]
        size = len(group["columns"])
        return np.broadcast_to(r, (n, size, 6, 6)), np.broadcast_to(c, (n, size, 6))

    def __call__(self, values: Any) -> tuple[np.ndarray, np.ndarray]:
        """Maps for actuator settings ``values`` of shape ``(N, len(actuators))``.

        Returns
        -------
        R, c
            Shapes ``(N, 6, 6)`` and ``(N, 6)``.
        """
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != len(self.keys):
            raise ParameterError(f"actuator values must have shape (N, {len(self.keys)}), "
                                 f"got {values.shape}")
        n = values.shape[0]
        group_maps = []
        for index, group in enumerate(self._groups):
            table = self._tables.get(index)
            if table is not None:
                columns = values[:, self._group_columns(group)]
                if np.all((columns >= table[0]) & (columns <= table[1])):
                    group_maps.append(self._from_table(table, columns))
                    continue
            group_maps.append(self._direct(group, values))
        r_total: Any = None
        c_total: Any = None
        for step in self._steps:
            if step[0] == "fixed":
                r, c = step[1], step[2]
            else:
                r, c = group_maps[step[1]][0][:, step[2]], group_maps[step[1]][1][:, step[2]]
            if r_total is None:
                r_total, c_total = r, c
            else:
                c_total = np.matmul(r, c_total[..., None])[..., 0] + c
                r_total = np.matmul(r, r_total)
        if r_total is None:
            return np.broadcast_to(np.eye(6), (n, 6, 6)), np.zeros((n, 6))
        return np.broadcast_to(r_total, (n, 6, 6)), np.broadcast_to(c_total, (n, 6))
