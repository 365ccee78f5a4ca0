"""Gradient checkpointing of beamline tracking: less reverse-mode memory for some time.

Reverse mode keeps what each element computed until the backward pass: about 0.5 kB
per particle and element for the ``"bmad"`` method in torch, so a million particles
through a thousand elements cannot be differentiated. Checkpointing keeps only the
particles entering each *segment* of elements and recomputes the segment's
intermediates during the backward pass (about one more forward pass).

* torch (eager :meth:`Beamline.track <beamtrack.lattice.beamline.Beamline.track>` and
  :func:`~beamtrack.backends.torch_compile.compile_beamline`): the line is cut into
  segments of about ``sqrt(elements) / 3`` elements (``"bmad"``; longer for
  ``"linear"``, :func:`segment_length`), each tracked by an
  ``autograd.Function`` that saves its incoming particles and the parameter tensors
  that need gradients (:func:`track_segments`);
* JAX (under a transformation, :mod:`~beamtrack.backends.jax_scan`): ``jax.checkpoint``
  in the scans, per step and, above the size, over chunks of steps too.

The switch is the ``checkpoint`` argument: ``True`` on, ``False`` off, ``None``
(default) on when particles x elements reaches :data:`AUTO_CHECKPOINT_SIZE` (see
:func:`wanted`). Results and gradients are the same either way. A checkpointed torch
segment is differentiable once (no Hessians through it: pass ``checkpoint=False``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

AUTO_CHECKPOINT_SIZE = 1_000_000
"""``checkpoint=None`` turns checkpointing on from this many particle-elements
(particles, times batch entries, times elements with a body): about 0.5 GB saved for
the gradient of ``"bmad"`` tracking in torch without it."""


def particle_elements(particles: Any, elements: int) -> int:
    """Particles (all batch entries) times ``elements``."""
    shape = particles.coords.shape
    return math.prod(shape[:-2]) * shape[-1] * elements


def wanted(checkpoint: bool | None, particles: Any, elements: int) -> bool:
    """Whether to checkpoint: ``checkpoint`` itself unless ``None``; then whether
    particles x elements reaches :data:`AUTO_CHECKPOINT_SIZE`."""
    if checkpoint is not None:
        if not isinstance(checkpoint, bool):
            raise TypeError(f"checkpoint must be True, False or None, got {checkpoint!r}")
        return checkpoint
    return particle_elements(particles, elements) >= AUTO_CHECKPOINT_SIZE


def segment_length(plan: Sequence[tuple[Any, str]]) -> int:
    """Elements per checkpointed segment of ``plan`` (``(element, method)`` pairs).

    Between the forward and the backward pass one particle state (49 bytes per
    particle) is held per segment; during the backward pass one segment's
    intermediates are recomputed at a time, about :data:`SAVED_BYTES` per particle and
    element. The length ``sqrt(elements * 49 / saved)`` minimises the sum: for 100
    ``"bmad"`` elements 25 segments of 4, for 100 ``"linear"`` ones 8 of 14.
    """
    n = len(plan)
    if n == 0:
        return 1
    saved = sum(SAVED_BYTES.get(method, SAVED_BYTES["bmad"]) for _, method in plan) / n
    return max(1, math.ceil(math.sqrt(n * 49 / saved)))


#: Bytes per particle a torch element saves for reverse mode, by method (measured on
#: quadrupoles and drifts; used only to size segments).
SAVED_BYTES = {"bmad": 500.0, "second_order": 500.0, "linear": 26.0}


def torch_records_graph(particles: Any, tensors: Sequence[Any]) -> bool:
    """Whether torch autograd will record tracking ``particles`` with ``tensors``
    (grad mode on, something requires grad, and no ``torch.func`` transform active,
    under which the plain graph is kept). Particles whose weights require grad (a
    differentiable bunch charge) keep the plain graph too: segments would not pass
    the weights' gradient on."""
    import torch

    if not torch.is_grad_enabled() or torch._C._are_functorch_transforms_active():
        return False
    if getattr(particles.explicit_weight, "requires_grad", False):
        return False
    fields = (particles.coords, particles.s, particles.p0c, particles.mc2)
    return any(t.requires_grad for t in (*fields, *tensors))


def grad_tensors(elements: Sequence[Any]) -> list[Any]:
    """Tensor parameters of ``elements`` (entries of tuples included) that require grad."""
    import torch

    out = []
    for element in elements:
        for value in element.arrays().values():
            for v in value if isinstance(value, tuple) else (value,):
                if isinstance(v, torch.Tensor) and v.requires_grad:
                    out.append(v)
    return out


def _substitute(element: Any, table: dict[int, Any]) -> Any:
    """``element`` with the tensors whose ``id`` is in ``table`` replaced."""
    arrays = element.arrays()
    new = {}
    for key, value in arrays.items():
        if isinstance(value, tuple):
            if any(id(v) in table for v in value):
                new[key] = tuple(table.get(id(v), v) for v in value)
        elif id(value) in table:
            new[key] = table[id(value)]
    return element.rebuild(new) if new else element


def track_segments(particles: Any, segments: Sequence[Callable[..., Any]],
                   tensors: Sequence[Sequence[Any]]) -> Any:
    """Track torch ``particles`` through checkpointed segments.

    Parameters
    ----------
    particles
        Incoming torch particles.
    segments
        Per segment, ``run(particles, *tensors) -> particles`` tracking through it with
        the given parameter tensors (in the order of ``tensors``).
    tensors
        Per segment, the parameter tensors that need gradients.

    Returns
    -------
    Particles
        As plain tracking; the backward pass recomputes one segment at a time.
    """
    # The record's own class (backends/ does not import tracking/); the species charge
    # and the macro-particle weights are the same before and after every element.
    record = functools.partial(type(particles).from_fields, charge=particles.charge,
                               weight=particles.explicit_weight)
    for run, params in zip(segments, tensors):
        fields = _Segment.apply(record, run, len(params), particles.coords, particles.s,
                                particles.p0c, particles.mc2, particles.alive, *params)
        particles = record(*fields)
    return particles


def checkpointed_plan_segments(plan: Sequence[tuple[Any, str]],
                               length: int) -> tuple[list[Callable[..., Any]], list[list[Any]]]:
    """Segments of ``length`` elements of ``plan`` for :func:`track_segments`."""
    runs, tensors = [], []
    for start in range(0, len(plan), length):
        part = plan[start:start + length]
        params = grad_tensors([element for element, _ in part])

        def run(particles: Any, *values: Any, part: Any = part, params: Any = params) -> Any:
            table = {id(t): v for t, v in zip(params, values)}
            for element, element_method in part:
                particles = _substitute(element, table).track(particles, element_method)
            return particles

        runs.append(run)
        tensors.append(params)
    return runs, tensors


def _segment_function() -> type:
    import torch
    from torch.autograd.function import once_differentiable

    class Segment(torch.autograd.Function):
        """Track through a segment without saving its intermediates; recompute them
        in the backward pass."""

        @staticmethod
        def forward(ctx: Any, record: Callable[..., Any], run: Callable[..., Any], n_params: int,
                    coords: Any, s: Any, p0c: Any, mc2: Any, alive: Any,
                    *params: Any) -> tuple[Any, ...]:
            ctx.record, ctx.run = record, run
            ctx.save_for_backward(coords, s, p0c, mc2, alive, *params)
            out = run(record(coords, s, p0c, mc2, alive), *params)
            ctx.mark_non_differentiable(out.alive)
            return out.coords, out.s, out.p0c, out.mc2, out.alive

        @staticmethod
        @once_differentiable
        def backward(ctx: Any, *grads: Any) -> tuple[Any, ...]:
            saved = ctx.saved_tensors
            needs = ctx.needs_input_grad[3:]
            inputs = [t.detach().requires_grad_(need and t.is_floating_point())
                      for t, need in zip(saved, needs)]
            with torch.enable_grad():
                out = ctx.run(ctx.record(*inputs[:5]), *inputs[5:])
            pairs = [(o, g) for o, g in zip((out.coords, out.s, out.p0c, out.mc2), grads)
                     if g is not None and o.requires_grad]
            wanted_inputs = [t for t in inputs if t.requires_grad]
            found = iter(torch.autograd.grad([o for o, _ in pairs], wanted_inputs,
                                             [g for _, g in pairs], allow_unused=True)
                         if pairs and wanted_inputs else [None] * len(wanted_inputs))
            result = [next(found) if t.requires_grad else None for t in inputs]
            return (None, None, None, *result)

    return Segment


class _LazySegment:
    """Creates the ``autograd.Function`` on first use (this module does not import
    torch at import time)."""

    cls: type | None = None

    def apply(self, *args: Any) -> Any:
        if _LazySegment.cls is None:
            _LazySegment.cls = _segment_function()
        return _LazySegment.cls.apply(*args)


_Segment = _LazySegment()
