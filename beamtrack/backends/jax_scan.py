"""Beamline tracking under ``jax.jit`` whose compile work scales with element kinds.

A Python loop over elements unrolls into one XLA computation per element: compile time
grows with the length of the line (about 0.25 s per element here). Instead the line is
cut into segments, each tracked by one ``lax.scan``:

* a run of a repeated *cell* (the same sequence of element signatures, such as the
  quadrupole, drift, sextupole, drift, ... of a FODO cell, repeated ``r`` times) is a
  scan over the ``r`` cells whose body tracks one cell;
* everything else is a scan over its elements whose body is a ``lax.switch`` over the
  distinct element *signatures* (kind, tracking method and static parameters such as
  ``num_steps`` or ``fringe_type``).

Either way each signature is traced a bounded number of times, whatever the length of
the line, and element parameters enter the scans as stacked arrays, so new values
never recompile. Scan bodies are rematerialised (``jax.checkpoint``): reverse mode
saves each step's incoming particles and recomputes the element's intermediates on the
way back. Saving every intermediate (scan's default) made the gradient cost about ten
forward passes on CPU, and a ``lax.switch`` body costs more in reverse mode than a cell
body (its residuals are the union of all branches'); hence the cells.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np

#: Longest cell (in elements) looked for.
MAX_CELL = 32
#: A repeated cell must occur at least this many times in a row to get its own scan.
MIN_REPEATS = 3
#: Most element bodies traced in cell scans; beyond it, cells fall back to the switch.
MAX_CELL_BODIES = 96


def _signature(element: Any, method: str) -> tuple[Any, ...]:
    """What must agree for elements to share one compiled branch (not the name): the
    element's own signature plus the structure and shapes of its arrays (stacked)."""
    import jax

    leaves, treedef = jax.tree_util.tree_flatten(element.arrays())
    return (element.signature(method), treedef, tuple(np.shape(leaf) for leaf in leaves))


def find_cells(kinds: Sequence[int], max_cell: int = MAX_CELL,
               min_repeats: int = MIN_REPEATS,
               max_bodies: int = MAX_CELL_BODIES) -> list[tuple[int, int, int]]:
    """Runs of a repeated cell in a sequence of signature labels.

    Scanning left to right, at each position the cell length ``p <= max_cell`` whose
    back-to-back repeats cover the most elements is taken (the shortest on ties) when it
    repeats at least ``min_repeats`` times. Cells are then kept by decreasing coverage
    while their total length stays within ``max_bodies``.

    Returns
    -------
    list of (start, period, repeats)
        Non-overlapping runs, in line order.
    """
    n = len(kinds)
    runs = []
    i = 0
    while i < n:
        best = (0, 0)  # (coverage, period)
        for p in range(1, min(max_cell, (n - i) // min_repeats) + 1):
            cell = kinds[i:i + p]
            r = 1
            while i + (r + 1) * p <= n and kinds[i + r * p:i + (r + 1) * p] == cell:
                r += 1
            if r >= min_repeats and r * p > best[0]:
                best = (r * p, p)
        if best[0]:
            runs.append((i, best[1], best[0] // best[1]))
            i += best[0]
        else:
            i += 1
    kept, bodies = [], 0
    for run in sorted(runs, key=lambda r: -r[1] * r[2]):
        if bodies + run[1] <= max_bodies:
            kept.append(run)
            bodies += run[1]
    return sorted(kept)


def scan_track(line: Any, particles: Any, method: str | None = None) -> Any:
    """Track ``particles`` (JAX arrays) through ``line`` with one scan per segment.

    Equivalent to :meth:`Beamline.track`; used automatically by it when tracking JAX
    arrays under a JAX transformation. Element parameters must have the same shape
    within one signature (they are stacked); particles are broadcast up front to the
    batch shape of all parameters.
    """
    import jax
    import jax.numpy as jnp

    plan = list(line.plan(method))
    labels: dict[Any, int] = {}
    kinds = [labels.setdefault(_signature(e, m), len(labels)) for e, m in plan]
    # Broadcast the particles to the batch shape of every parameter.
    shapes = [np.shape(leaf) for element, _ in plan
              for leaf in jax.tree_util.tree_leaves(element)]
    batch = jnp.broadcast_shapes(particles.coords.shape[:-2], *shapes)
    state = _broadcast_particles(particles, batch)
    dtype = particles.dtype

    position = 0
    for start, period, repeats in [*find_cells(kinds), (len(plan), 0, 0)]:
        if start > position:
            state = _switch_scan(plan, kinds, state, position, start, dtype)
        if repeats:
            state = _cell_scan(plan, state, start, period, repeats, dtype)
        position = start + period * repeats
    return state


def _stack(elements: Sequence[Any], dtype: Any) -> list[Any]:
    """Parameter leaves of same-signature elements, stacked along a new axis 0."""
    import jax
    import jax.numpy as jnp

    rows = [jax.tree_util.tree_leaves(e) for e in elements]
    columns = []
    for j in range(len(rows[0])):
        column = [row[j] for row in rows]
        if all(isinstance(v, (int, float, np.ndarray, np.generic)) for v in column):
            # Concrete numbers: stack on the host, one constant per parameter.
            columns.append(jnp.asarray(np.asarray(column, dtype=np.float64), dtype=dtype))
        else:
            columns.append(jnp.stack([jnp.asarray(v, dtype=dtype) for v in column]))
    return columns


def _tracker(template: Any, element_method: str) -> Any:
    """``(state, leaves) -> state`` for elements of ``template``'s signature."""
    import jax
    import jax.numpy as jnp

    arrays = template.arrays()
    # The element's leaves are those of its arrays in order (not of a dict: sorted keys).
    treedef = jax.tree_util.tree_structure(tuple(arrays.values()))

    def track(state: Any, leaves: Any) -> Any:
        values = jax.tree_util.tree_unflatten(treedef, leaves)
        out = template.rebuild(dict(zip(arrays, values))).track(state, element_method)
        # Keep the carry's shape and dtype fixed from step to step.
        return jax.tree_util.tree_map(
            lambda new, old: jnp.broadcast_to(
                jax.lax.convert_element_type(new, old.dtype), old.shape), out, state)

    return track


def _cell_scan(plan: Sequence[tuple[Any, str]], state: Any, start: int, period: int,
               repeats: int, dtype: Any) -> Any:
    """Scan over ``repeats`` back-to-back cells of ``period`` elements from ``start``."""
    import jax

    trackers = [_tracker(*plan[start + j]) for j in range(period)]
    xs = [_stack([plan[start + r * period + j][0] for r in range(repeats)], dtype)
          for j in range(period)]

    # prevent_cse=False: scan already keeps XLA from merging the recomputation into
    # the forward pass, and the flag costs ~20% of the gradient's run time here.
    @partial(jax.checkpoint, prevent_cse=False)
    def body(state: Any, cell_leaves: Any) -> tuple[Any, None]:
        for track, leaves in zip(trackers, cell_leaves):
            state = track(state, leaves)
        return state, None

    return jax.lax.scan(body, state, xs)[0]


def _switch_scan(plan: Sequence[tuple[Any, str]], kinds: Sequence[int], state: Any,
                 start: int, stop: int, dtype: Any) -> Any:
    """Scan over elements ``start:stop`` with a ``lax.switch`` over their signatures."""
    import jax
    import jax.numpy as jnp

    if stop - start == 1:
        return _tracker(*plan[start])(state, jax.tree_util.tree_leaves(plan[start][0]))
    members: dict[int, list[int]] = {}
    for i in range(start, stop):
        members.setdefault(kinds[i], []).append(i)
    order = list(members)
    branch_of = [order.index(kinds[i]) for i in range(start, stop)]
    # Each branch's parameters have one row per element of the segment; rows of
    # other kinds repeat a valid row (they are never used).
    stacked = []
    for kind in order:
        row_of = {i: row for row, i in enumerate(members[kind])}
        rows = [row_of.get(i, 0) for i in range(start, stop)]
        stacked.append([jnp.take(column, jnp.asarray(rows), axis=0)
                        for column in _stack([plan[i][0] for i in members[kind]], dtype)])
    trackers = [_tracker(*plan[members[kind][0]]) for kind in order]
    branches = [partial(_branch, trackers, b) for b in range(len(order))]

    @partial(jax.checkpoint, prevent_cse=False)
    def body(state: Any, xs: Any) -> tuple[Any, None]:
        which, params = xs
        if len(branches) == 1:
            return branches[0]((state, params)), None
        return jax.lax.switch(which, branches, (state, params)), None

    return jax.lax.scan(body, state, (jnp.asarray(branch_of), stacked))[0]


def _branch(trackers: Sequence[Any], b: int, args: tuple[Any, Any]) -> Any:
    """Branch ``b`` of the switch: track ``args[0]`` with the ``b``-th parameter rows."""
    return trackers[b](args[0], args[1][b])


def _broadcast_particles(particles: Any, batch: tuple[int, ...]) -> Any:
    import jax
    import jax.numpy as jnp

    n = particles.coords.shape[-1]

    def fix(a: Any, shape: tuple[int, ...]) -> Any:
        return jax.lax.convert_element_type(jnp.broadcast_to(a, shape), a.dtype)

    # The particles' own class: backends/ does not import tracking/.
    return type(particles).from_fields(
        fix(particles.coords, batch + (6, n)),
        fix(particles.s, batch),
        fix(particles.p0c, batch),
        fix(particles.mc2, batch),
        fix(particles.alive, batch + (n,)),
    )
