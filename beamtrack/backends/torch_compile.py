"""``torch.compile`` of beamline tracking, compiled once per element signature.

``torch.compile`` of a Python loop over a beamline unrolls it: compile time grows with
the number of elements. :func:`compile_beamline` instead compiles each element
*signature* (kind, tracking method, static parameters such as ``num_steps``) once, with
``fullgraph=True``, and calls the compiled function for every element of that
signature. Numeric parameters are passed as float64 tensors, so new values never
trigger a recompile. (Multipole strength tuples are part of the signature.)
"""

from __future__ import annotations

import types
from collections.abc import Callable, Sequence
from typing import Any

from beamtrack.backends.jax_scan import ALIGNMENT_KEYS

#: Compiled step functions by element signature, shared by every compiled beamline (a
#: new line, or new parameter values, reuses them).
_CACHE: dict[Any, Callable[..., Any]] = {}


def compile_beamline(line: Any, method: str | None = None, checkpoint: bool | None = None,
                     **options: Any) -> Callable[..., Any]:
    """A function ``particles -> particles`` tracking torch particles through ``line``.

    Parameters
    ----------
    line
        The :class:`~beamtrack.lattice.beamline.Beamline`.
    method
        Tracking method, as in ``Beamline.track``.
    checkpoint
        Gradient checkpointing over segments of elements, as in ``Beamline.track``
        (:mod:`~beamtrack.backends.checkpointing`): ``None`` (default) on from
        :data:`~beamtrack.backends.checkpointing.AUTO_CHECKPOINT_SIZE` particles x
        elements when gradients are recorded, ``True``/``False`` on/off. The compiled
        step functions are the same either way.
    **options
        Passed to ``torch.compile`` (``fullgraph=True`` is always set).

    Returns
    -------
    callable
        Tracks like ``line.track(particles, method)``. Compiled functions are cached
        by element signature across lines (the attribute ``compiled`` is that cache), so
        another line or new parameter values reuse them. The function is tied to
        ``line``: tensor parameters are read at every call (so in-place updates by an
        optimiser are seen); for other values, call ``compile_beamline`` on the new line
        (cheap: nothing is recompiled).
    """
    import torch

    from beamtrack.backends import checkpointing as ck

    plan = line.plan(method)
    cache = _CACHE
    checkpoint_length = ck.segment_length([p for p in plan if p[0].has_body])
    if checkpoint is not None and not isinstance(checkpoint, bool):
        raise TypeError(f"checkpoint must be True, False or None, got {checkpoint!r}")

    def compiled_for(element: Any, element_method: str, record: type,
                     charge: Any) -> tuple[Callable[..., Any], list[Any]]:
        # ``record`` is the particles' class (backends/ does not import tracking/).
        # Tensors are passed at each call; multipole strength tuples are fixed (keyed).
        arrays = element.arrays()
        fixed = tuple((k, v) for k, v in arrays.items() if isinstance(v, tuple))
        # Misalignments that are Python zeros stay Python zeros inside the compiled
        # function ("aligned" is part of the signature, as in the jax scan): the frame
        # change is then left out of the graph, which compiles and runs faster.
        aligned = tuple(k for k in ALIGNMENT_KEYS if k in arrays
                        and _is_python_zero(arrays[k]))
        keys = tuple(k for k in arrays
                     if not isinstance(arrays[k], tuple) and k not in aligned)
        key = (element.signature(element_method), fixed, aligned, tuple(sorted(options)),
               record, charge)
        if key not in cache:
            template = element

            def step(coords: Any, s: Any, p0c: Any, mc2: Any, alive: Any, weight: Any,
                     *values: Any) -> Any:
                particles = record.from_fields(coords, s, p0c, mc2, alive, charge=charge,
                                               weight=weight)
                rebuilt = template.rebuild(dict(zip(keys, values)))
                out = rebuilt.track(particles, element_method)
                return out.coords, out.s, out.p0c, out.mc2, out.alive

            # torch.compile caches compiled code on the function's code object, which
            # every closure made here shares: give each signature its own code object,
            # so signatures do not evict one another (recompile limit) or pay guards.
            name = f"step_{type(element).__name__}_{len(cache)}"
            code = step.__code__.replace(co_name=name)
            own = types.FunctionType(code, step.__globals__, name, None, step.__closure__)
            cache[key] = torch.compile(own, fullgraph=True, **options)
        values = [arrays[k] if isinstance(arrays[k], torch.Tensor)
                  else torch.tensor(float(arrays[k]), dtype=torch.float64) for k in keys]
        return cache[key], values

    # The line is immutable, so which compiled function serves each element, and its
    # parameter tensors, are worked out once (tensors are passed by reference: values
    # an optimiser updates in place are seen).
    steps: list[tuple[Callable[..., Any], list[Any]]] = []

    def run(particles: Any) -> Any:
        if not steps:
            steps.extend(compiled_for(element, element_method, type(particles),
                                      particles.charge)
                         for element, element_method in plan if element.has_body)
        if (torch.is_grad_enabled() and not particles.coords.requires_grad
                and any(v.requires_grad for _, values in steps for v in values)):
            # Coordinates that need no gradient would get their own compiled variant of
            # the first element (a guard on requires_grad); a detached copy that
            # requires grad reuses the variant every later element needs anyway.
            particles = particles.replace(coords=particles.coords.detach().requires_grad_(True))
        if ck.wanted(checkpoint, particles, len(steps)):
            tensors = [v for _, values in steps for v in values]
            if ck.torch_records_graph(particles, tensors):
                return ck.track_segments(particles, *_segments(steps, checkpoint_length))
        return _run_steps(particles, steps)

    run.compiled = cache  # type: ignore[attr-defined]
    return run


def _is_python_zero(value: Any) -> bool:
    """Whether ``value`` is a Python number equal to 0 (not a tensor, not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0


def _run_steps(particles: Any, steps: Sequence[tuple[Callable[..., Any], list[Any]]],
               table: dict[int, Any] | None = None) -> Any:
    """Call the compiled step functions in turn (tensors whose ``id`` is in ``table``
    replaced by its values)."""
    for fn, values in steps:
        if table:
            values = [table.get(id(v), v) for v in values]
        weight = particles.explicit_weight
        out = fn(particles.coords, particles.s, particles.p0c, particles.mc2,
                 particles.alive, weight, *values)
        particles = type(particles).from_fields(*out, charge=particles.charge, weight=weight)
    return particles


def _segments(steps: Sequence[tuple[Callable[..., Any], list[Any]]],
              length: int) -> tuple[list[Callable[..., Any]], list[list[Any]]]:
    """Checkpointed segments of ``length`` steps (see
    :func:`~beamtrack.backends.checkpointing.track_segments`)."""
    runs, tensors = [], []
    for start in range(0, len(steps), length):
        part = steps[start:start + length]
        params = list({id(v): v for _, values in part for v in values
                       if v.requires_grad}.values())

        def run(particles: Any, *values: Any, part: Any = part, params: Any = params) -> Any:
            return _run_steps(particles, part, {id(t): v for t, v in zip(params, values)})

        runs.append(run)
        tensors.append(params)
    return runs, tensors
