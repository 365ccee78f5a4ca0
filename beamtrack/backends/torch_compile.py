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
from collections.abc import Callable
from typing import Any

#: Compiled step functions by element signature, shared by every compiled beamline (a
#: new line, or new parameter values, reuses them).
_CACHE: dict[Any, Callable[..., Any]] = {}


def compile_beamline(line: Any, method: str | None = None, **options: Any) -> Callable[..., Any]:
    """A function ``particles -> particles`` tracking torch particles through ``line``.

    Parameters
    ----------
    line
        The :class:`~beamtrack.lattice.beamline.Beamline`.
    method
        Tracking method, as in ``Beamline.track``.
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

    plan = list(line._plan(method))
    cache = _CACHE

    def compiled_for(element: Any, element_method: str,
                     record: type) -> tuple[Callable[..., Any], list[Any]]:
        # ``record`` is the particles' class (backends/ does not import tracking/).
        numeric = {k: v for k, v in element.numeric_parameters().items()
                   if not isinstance(v, tuple)}
        static = tuple((k, v) for k, v in element.parameters().items() if k not in numeric)
        key = (type(element), element_method, static, tuple(numeric), tuple(sorted(options)),
               record)
        if key not in cache:
            keys = tuple(numeric)
            fixed = dict(static)
            kind, name = type(element), element.name

            def step(coords: Any, s: Any, p0c: Any, mc2: Any, alive: Any, *values: Any) -> Any:
                particles = record._from_fields(coords, s, p0c, mc2, alive)
                rebuilt = kind._rebuild(name, element_method, fixed, dict(zip(keys, values)))
                out = rebuilt.track(particles, element_method)
                return out.coords, out.s, out.p0c, out.mc2, out.alive

            # torch.compile caches compiled code on the function's code object, which
            # every closure made here shares: give each signature its own code object,
            # so signatures do not evict one another (recompile limit) or pay guards.
            code = step.__code__.replace(co_name=f"step_{kind.__name__}_{len(cache)}")
            own = types.FunctionType(code, step.__globals__, code.co_name, None,
                                     step.__closure__)
            cache[key] = torch.compile(own, fullgraph=True, **options)
        values = [v if isinstance(v, torch.Tensor) else torch.tensor(float(v), dtype=torch.float64)
                  for v in numeric.values()]
        return cache[key], values

    # The line is immutable, so which compiled function serves each element, and its
    # parameter tensors, are worked out once (tensors are passed by reference: values
    # an optimiser updates in place are seen).
    steps: list[tuple[Callable[..., Any], list[Any]]] = []

    def run(particles: Any) -> Any:
        if not steps:
            steps.extend(compiled_for(element, element.method or element_method,
                                      type(particles))
                         for element, element_method in plan if element.has_body)
        if (torch.is_grad_enabled() and not particles.coords.requires_grad
                and any(v.requires_grad for _, values in steps for v in values)):
            # Coordinates that need no gradient would get their own compiled variant of
            # the first element (a guard on requires_grad); a detached copy that
            # requires grad reuses the variant every later element needs anyway.
            particles = particles.replace(coords=particles.coords.detach().requires_grad_(True))
        for fn, values in steps:
            out = fn(particles.coords, particles.s, particles.p0c, particles.mc2,
                     particles.alive, *values)
            particles = type(particles)._from_fields(*out)
        return particles

    run.compiled = cache  # type: ignore[attr-defined]
    return run
