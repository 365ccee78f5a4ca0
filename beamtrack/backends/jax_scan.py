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

The scan body does no more work than the unrolled line. Parameters whose values are
concrete on the host (not traced) and the same for every element a body serves (the
drift length of a FODO, the zero misalignment of aligned magnets) enter the body as the
Python numbers the unrolled line would see, not as stacked arrays; and whether an
element's misalignment (``x_offset``, ``y_offset``, ``tilt``) is exactly zero on the
host is part of its signature, so aligned elements get a body without the frame change.

Checkpointing (``checkpoint=True``, the default) also cuts long scans in two levels:
an outer scan over chunks of about ``sqrt(steps)`` steps whose body is itself
rematerialised, so reverse mode holds about ``2 sqrt(steps)`` particle states instead
of one per step, for one more forward pass of recomputation.
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
#: Misalignment parameters: an element whose values of these are exact host zeros is
#: "aligned" (a static part of its signature) and is tracked with Python zeros.
ALIGNMENT_KEYS = ("x_offset", "y_offset", "tilt")
#: With ``checkpoint=True``, scans of at least this many steps are checkpointed in two
#: levels (chunks of about ``sqrt(steps)`` steps); shorter ones rematerialise each step.
NESTED_CHECKPOINT_STEPS = 4
#: The same with ``checkpoint=None`` (automatic).
AUTO_NESTED_STEPS = 64


def _signature(element: Any, method: str) -> tuple[Any, ...]:
    """What must agree for elements to share one compiled branch (not the name): the
    element's own signature plus the structure and shapes of its arrays (stacked)."""
    import jax

    arrays = element.arrays()
    leaves, treedef = jax.tree_util.tree_flatten(arrays)
    aligned = tuple(k for k in ALIGNMENT_KEYS if k in arrays and _is_zero(arrays[k]))
    return (element.signature(method), treedef, tuple(np.shape(leaf) for leaf in leaves),
            aligned)


def _is_host(value: Any) -> bool:
    """Whether ``value`` is concrete on the host (a number or NumPy data, not traced)."""
    return isinstance(value, (int, float, np.ndarray, np.generic)) and not isinstance(
        value, bool)


def _is_zero(value: Any) -> bool:
    """Whether ``value`` is a host number or array that is exactly (+)0 everywhere."""
    if not _is_host(value):
        return False
    a = np.asarray(value, dtype=np.float64)
    return bool(np.all(a == 0.0) and not np.any(np.signbit(a)))


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


def scan_track(line: Any, particles: Any, method: str | None = None,
               checkpoint: bool | None = None) -> Any:
    """Track ``particles`` (JAX arrays) through ``line`` with one scan per segment.

    Equivalent to :meth:`Beamline.track`; used automatically by it when tracking JAX
    arrays under a JAX transformation. Element parameters must have the same shape
    within one signature (they are stacked); particles are broadcast up front to the
    batch shape of all parameters.

    Parameters
    ----------
    line
        The :class:`~beamtrack.lattice.beamline.Beamline`.
    particles
        Incoming particles (JAX arrays).
    method
        Tracking method, as in ``Beamline.track``.
    checkpoint
        Reverse-mode memory: ``False`` saves every intermediate of every step (most
        memory); ``None`` (default) rematerialises each step (saves only the particles
        entering it) and checkpoints scans of at least :data:`AUTO_NESTED_STEPS` steps in
        two levels; ``True`` checkpoints every scan of at least
        :data:`NESTED_CHECKPOINT_STEPS` steps in two levels (least memory, about one
        more forward pass). Results and gradients are the same.
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
    nested = {False: None, None: AUTO_NESTED_STEPS, True: NESTED_CHECKPOINT_STEPS}[checkpoint]
    remat = checkpoint is not False

    position = 0
    for start, period, repeats in [*find_cells(kinds), (len(plan), 0, 0)]:
        if start > position:
            state = _switch_scan(plan, kinds, state, position, start, dtype, remat, nested)
        if repeats:
            state = _cell_scan(plan, state, start, period, repeats, dtype, remat, nested)
        position = start + period * repeats
    return state


def _columns(elements: Sequence[Any], dtype: Any) -> tuple[list[Any], list[Any]]:
    """Parameter leaves of same-signature elements: ``(constants, stacked)``.

    ``constants`` has one entry per leaf: the value every element shares when it is a
    concrete host value (a Python number for scalars, as the unrolled line would pass),
    else ``None``; ``stacked`` holds, in order, the other leaves stacked along a new
    axis 0.
    """
    import jax
    import jax.numpy as jnp

    rows = [jax.tree_util.tree_leaves(e) for e in elements]
    constants: list[Any] = []
    stacked: list[Any] = []
    for j in range(len(rows[0])):
        column = [row[j] for row in rows]
        if all(_is_host(v) for v in column):
            host = np.asarray(column, dtype=np.float64)
            if all(np.array_equal(host[0], h) and np.array_equal(
                    np.signbit(host[0]), np.signbit(h)) for h in host[1:]):
                # The same concrete value everywhere: a constant of the body.
                first = column[0]
                constants.append(float(first) if np.ndim(first) == 0
                                 else jnp.asarray(host[0], dtype=dtype))
                continue
            # Concrete numbers: stack on the host, one constant per parameter.
            constants.append(None)
            stacked.append(jnp.asarray(host, dtype=dtype))
        else:
            constants.append(None)
            stacked.append(jnp.stack([jnp.asarray(v, dtype=dtype) for v in column]))
    return constants, stacked


def _tracker(template: Any, element_method: str, constants: Sequence[Any]) -> Any:
    """``(state, stacked leaves) -> state`` for elements of ``template``'s signature,
    with the leaves of ``constants`` (see :func:`_columns`) fixed."""
    import jax
    import jax.numpy as jnp

    arrays = template.arrays()
    # The element's leaves are those of its arrays in order (not of a dict: sorted keys).
    treedef = jax.tree_util.tree_structure(tuple(arrays.values()))

    def track(state: Any, stacked: Any) -> Any:
        given = iter(stacked)
        leaves = [next(given) if c is None else c for c in constants]
        values = jax.tree_util.tree_unflatten(treedef, leaves)
        out = template.rebuild(dict(zip(arrays, values))).track(state, element_method)
        # Keep the carry's shape and dtype fixed from step to step.
        return jax.tree_util.tree_map(
            lambda new, old: jnp.broadcast_to(
                jax.lax.convert_element_type(new, old.dtype), old.shape), out, state)

    return track


def _scan(body: Any, state: Any, xs: Any, length: int, remat: bool,
          nested: int | None) -> Any:
    """``lax.scan`` of ``body`` (``(state, x) -> state``) over ``length`` steps.

    With ``remat`` each step is rematerialised; with ``nested`` (a number of steps) a
    scan at least that long runs as an outer scan over rematerialised chunks of about
    ``sqrt(length)`` steps, then the remaining steps.
    """
    import jax

    def step(state: Any, x: Any) -> tuple[Any, None]:
        return body(state, x), None

    if remat:
        # prevent_cse=False: scan already keeps XLA from merging the recomputation
        # into the forward pass, and the flag costs ~20% of the gradient's run time.
        step = jax.checkpoint(step, prevent_cse=False)
    if nested is None or length < nested:
        return jax.lax.scan(step, state, xs, length=length)[0]
    inner = max(2, round(length ** 0.5))
    outer = length // inner
    head = outer * inner
    chunks = jax.tree_util.tree_map(
        lambda a: a[:head].reshape((outer, inner) + a.shape[1:]), xs)

    @partial(jax.checkpoint, prevent_cse=False)
    def chunk(state: Any, x: Any) -> tuple[Any, None]:
        return jax.lax.scan(step, state, x, length=inner)[0], None

    state = jax.lax.scan(chunk, state, chunks, length=outer)[0]
    if head < length:
        rest = jax.tree_util.tree_map(lambda a: a[head:], xs)
        state = jax.lax.scan(step, state, rest, length=length - head)[0]
    return state


def _cell_scan(plan: Sequence[tuple[Any, str]], state: Any, start: int, period: int,
               repeats: int, dtype: Any, remat: bool, nested: int | None) -> Any:
    """Scan over ``repeats`` back-to-back cells of ``period`` elements from ``start``."""
    trackers, xs = [], []
    for j in range(period):
        constants, stacked = _columns(
            [plan[start + r * period + j][0] for r in range(repeats)], dtype)
        trackers.append(_tracker(*plan[start + j], constants))
        xs.append(stacked)

    def body(state: Any, cell_leaves: Any) -> Any:
        for track, leaves in zip(trackers, cell_leaves):
            state = track(state, leaves)
        return state

    return _scan(body, state, xs, repeats, remat, nested)


def _switch_scan(plan: Sequence[tuple[Any, str]], kinds: Sequence[int], state: Any,
                 start: int, stop: int, dtype: Any, remat: bool,
                 nested: int | None) -> Any:
    """Scan over elements ``start:stop`` with a ``lax.switch`` over their signatures."""
    import jax
    import jax.numpy as jnp

    if stop - start == 1:
        # One element: tracked as the unrolled line would be.
        leaves = jax.tree_util.tree_leaves(plan[start][0])
        return _tracker(*plan[start], [None] * len(leaves))(state, leaves)
    members: dict[int, list[int]] = {}
    for i in range(start, stop):
        members.setdefault(kinds[i], []).append(i)
    order = list(members)
    branch_of = [order.index(kinds[i]) for i in range(start, stop)]
    # Each branch's parameters have one row per element of the segment; rows of
    # other kinds repeat a valid row (they are never used).
    stacked, trackers = [], []
    for kind in order:
        row_of = {i: row for row, i in enumerate(members[kind])}
        rows = jnp.asarray([row_of.get(i, 0) for i in range(start, stop)])
        constants, columns = _columns([plan[i][0] for i in members[kind]], dtype)
        stacked.append([jnp.take(column, rows, axis=0) for column in columns])
        trackers.append(_tracker(*plan[members[kind][0]], constants))
    branches = [partial(_branch, trackers, b) for b in range(len(order))]

    def body(state: Any, xs: Any) -> Any:
        which, params = xs
        if len(branches) == 1:
            return branches[0]((state, params))
        return jax.lax.switch(which, branches, (state, params))

    return _scan(body, state, (jnp.asarray(branch_of), stacked), stop - start, remat, nested)


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
        charge=particles.charge,
        weight=None if particles.explicit_weight is None
        else fix(particles.explicit_weight, batch + (n,)),
    )
