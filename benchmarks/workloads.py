"""The suite's workloads: each function measures one family of rows.

Lattices are the drift/quadrupole FODO of ``compile_time.py`` (``fodo_cell``: 4
elements per cell, every quadrupole its own strength), cut to 20, 100, 1000 or 3800
elements; particles are Gaussian (``SIGMA``) electrons at 1 GeV/c. Rows are dicts made
by :func:`beamtrack_row`, one per (workload, peer); ``ratio`` is always beamtrack's
speed over the peer's (> 1: beamtrack faster), stated per metric in ``report.METRICS``.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from array_api_compat import array_namespace

import beamtrack as bt

from . import peers
from .compile_time import SIGMA, build, fodo_cell
from .timing import Contender, interleaved

P0C = 1e9
MC2 = bt.electron.mc2
#: Backends of the tracking rows by device ("torch.compile": ``compile_beamline``;
#: "jax": ``jax.jit``).
TRACKING_BACKENDS = {"cpu": ("numpy", "torch", "torch.compile", "jax"),
                     "cuda": ("torch", "torch.compile", "jax", "cupy")}


class Selection:
    """Which rows to run: ``--only`` patterns (comma-separated; a pattern matches a row id
    as a glob, or as a prefix ending at a ``-``: ``track-bmad`` selects
    ``track-bmad-1e4-numpy``, ``compile-jax-100`` not ``compile-jax-1000-fwd``); no
    patterns: every row."""

    def __init__(self, patterns: str | None = None) -> None:
        self.patterns = [p.strip() for p in (patterns or "").split(",") if p.strip()]

    def __call__(self, row_id: str) -> bool:
        return not self.patterns or any(
            fnmatch.fnmatchcase(row_id, p) or row_id.startswith(p.rstrip("-") + "-")
            for p in self.patterns)

    def explicit(self, word: str) -> bool:
        """Whether a pattern names ``word`` (rows ``--quick`` skips unless asked for)."""
        return any(word in p for p in self.patterns)


@dataclass
class Settings:
    """What every workload needs to know about the run."""

    device: str = "cpu"
    dtype: str = "float64"
    repeats: int = 7
    quick: bool = False
    selected: Selection = field(default_factory=Selection)
    log: Callable[[str], None] = print


def fodo(elements: int, method: str = "bmad") -> bt.Beamline:
    """The FODO of ``compile_time.py`` with ``elements`` elements, tracked with ``method``,
    carrying its reference (electrons at 1 GeV/c) for the converters."""
    line = build(fodo_cell, elements)
    return bt.Beamline(line.items, name=f"fodo_{elements}", method=method,
                       reference=bt.Reference(bt.electron, P0C))


def beam(n: int, backend: str, settings: Settings) -> bt.Particles:
    """``n`` Gaussian particles on ``backend`` (numpy-like backends on the host)."""
    device = None
    if settings.device == "cuda" and backend == "torch":
        device = "cuda"
    return bt.gaussian_particles(n, sigma=SIGMA, p0c=P0C, mc2=MC2, backend=backend,
                                 dtype=settings.dtype, device=device)


def short(n: int) -> str:
    """1000 -> '1e3' (row ids)."""
    exponent = round(math.log10(n))
    return f"1e{exponent}" if 10 ** exponent == n else str(n)


def beamtrack_row(row_id: str, workload: str, metric: str, value: float | None,
                  peer: str | None = None, peer_value: float | None = None,
                  **extra: Any) -> dict[str, Any]:
    """One row: ``metric`` in ``report.METRICS``; ratio = beamtrack speed / peer speed."""
    from .report import ratio

    return {"id": row_id, "workload": workload, "metric": metric, "beamtrack": value,
            "peer": peer, "peer_value": peer_value,
            "ratio": ratio(metric, value, peer_value), **extra}


def _median(result: dict[str, Any]) -> float | None:
    return result.get("median_s")


# -- torch eager: build the line from tensors, track, loss, backward --------------------
def std_loss(x: Any) -> Any:
    """The loss of the gradient rows, the same code for beamtrack and Cheetah: the sum
    over configurations of the standard deviation of the final ``x``."""
    xp = array_namespace(x)
    return xp.sum(xp.std(x, axis=-1))


def eager_gradient_rows(settings: Settings, method: str, configs: int | None,
                        merge: bool = False) -> list[dict]:
    """torch eager, 20-element FODO: quadrupole strengths made as fresh tensors that
    require grad, line built from them, tracked, ``std_loss``, backward. ``configs``:
    every strength has shape ``(configs,)`` (100 particles), else scalar (1000).

    ``merge`` (``"linear"`` only): the line is ``Beamline.merged()`` before tracking, one
    map for the run of linear elements, built from the 20 element maps inside the timed
    call. Cheetah's ``Segment.track`` does the same by itself for a segment of linear
    elements, so the Cheetah column is the same in both rows."""
    import torch

    prefix = "batch" if configs else "eager"
    row_id = f"{prefix}-{method}" + ("-merged" if merge else "")
    if not settings.selected(row_id):
        return []
    particles = 100 if configs else 1000
    line = fodo(20, method)
    values: dict[str, Any] = {k: float(v) for k, v in line.parameters("q*.k1").items()}
    if configs:
        values = {k: v * np.linspace(0.9, 1.1, configs) for k, v in values.items()}
    incoming = beam(particles, "torch", settings)
    dtype, device = incoming.coords.dtype, incoming.coords.device

    def call() -> None:
        params = {k: torch.tensor(v, dtype=dtype, device=device, requires_grad=True)
                  for k, v in values.items()}
        tracked = line.with_parameters(params)
        if merge:
            tracked = tracked.merged(p0c=P0C, mc2=MC2)
        out = tracked.track(incoming)
        std_loss(out.x).backward()

    contenders = {"beamtrack": Contender(call)}
    peer = ("Cheetah linear (merges itself)" if method == "linear"
            else "Cheetah drift_kick_drift")
    if peers.installed("cheetah"):
        contenders[peer] = peers.cheetah_gradient(line, incoming, values, std_loss)
    result = interleaved(contenders, settings.repeats)
    shape = f"k1 of shape ({configs},), " if configs else ""
    workload = (f"torch eager: line from tensors + track + loss + backward, 20-element FODO, "
                f"{shape}{particles} particles, {method}"
                + (", merged inside the call" if merge else ""))
    bt_s = _median(result["beamtrack"])
    peer_s = _median(result.get(peer, {}))
    return [beamtrack_row(row_id, workload, "time_ms", None if bt_s is None else 1e3 * bt_s,
                          peer if peer in result else None,
                          None if peer_s is None else 1e3 * peer_s,
                          errors={k: v["error"] for k, v in result.items() if "error" in v})]


# -- tracking rates: numpy / torch eager / torch.compile / jax.jit ----------------------
def _tracker(backend: str, line: bt.Beamline, method: str,
             incoming: bt.Particles) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """(call that tracks and waits, call that returns the final particles)."""
    to_numpy = bt.backends.get("torch" if backend == "torch.compile" else backend).to_numpy
    if backend == "jax":
        import jax

        params = {k: bt.backends.get("jax").asarray(v) for k, v in line.parameters().items()}
        jitted = jax.jit(lambda p, b: line.with_parameters(p).track(b, method=method).coords)

        def final() -> Any:
            return incoming.replace(coords=jitted(params, incoming))
    elif backend == "torch.compile":
        from beamtrack.backends.torch_compile import compile_beamline

        compiled = compile_beamline(line, method)

        def final() -> Any:
            import torch

            with torch.no_grad():
                return compiled(incoming)
    else:
        def final() -> Any:
            if backend != "torch":
                return line.track(incoming, method=method)
            import torch

            with torch.no_grad():
                return line.track(incoming, method=method)

    def call() -> None:
        to_numpy(final().coords[..., :1, :1])

    return call, final


def tracking_rows(settings: Settings, method: str, n: int, elements: int = 100) -> list[dict]:
    """Rate of tracking ``n`` particles through the ``elements``-element FODO with
    ``method`` ("bmad", "linear" or "merged": the line's linear maps merged into one,
    merged once outside the timing, as Cheetah's ``transfer_maps_merged``) on every
    backend, interleaved with Cheetah (torch eager) and, for "bmad", Xsuite (CPU)."""
    line = fodo(elements, "linear" if method == "merged" else method)
    ids = {b: f"track-{method}-{short(n)}-{b}" for b in TRACKING_BACKENDS[settings.device]}
    wanted = [b for b, i in ids.items() if settings.selected(i)
              and bt.backends.get("torch" if b == "torch.compile" else b).is_installed()]
    if settings.quick and not settings.selected.explicit("torch.compile"):
        wanted = [b for b in wanted if b != "torch.compile"]
    if not wanted:
        return []
    contenders: dict[str, Contender] = {}
    finals: dict[str, Any] = {}
    for backend in wanted:
        name = "torch" if backend == "torch.compile" else backend
        incoming = beam(n, name, settings)
        tracked = line
        if method == "merged":
            tracked = bt.merged(line, p0c=P0C, mc2=MC2, method="linear", backend=name)
        call, final = _tracker(backend, tracked, "linear" if method == "merged" else method,
                               incoming)
        contenders[backend] = Contender(call)
        finals[backend] = final
    torch_beam = beam(n, "torch", settings) if peers.installed("cheetah") else None
    peer_x: dict[str, np.ndarray] = {}
    if torch_beam is not None:
        # Cheetah's Segment.track multiplies the maps of a run of linear elements
        # before applying them: its "linear" is a merged map too.
        label = {"merged": "Cheetah merged", "linear": "Cheetah linear (merges itself)",
                 "bmad": "Cheetah drift_kick_drift"}[method]
        contenders[label] = peers.cheetah_tracking(line, torch_beam, method == "merged")
        peer_x[label] = peers.cheetah_final_x(line, torch_beam, method == "merged")
    if method == "bmad" and settings.device == "cpu" and peers.installed("xtrack"):
        numpy_beam = beam(n, "numpy", settings)
        contenders["Xsuite"], xsuite_x = peers.xsuite_tracking(line, numpy_beam, P0C, MC2)
        peer_x["Xsuite"] = xsuite_x()
    settings.log(f"  tracking {method} {n} particles: {', '.join(contenders)}")
    repeats = max(3, settings.repeats // 2) if n >= 1_000_000 else settings.repeats
    result = interleaved(contenders, repeats)
    rows = []
    for backend in wanted:
        bt_s = _median(result[backend])
        rate = None if bt_s is None else n * elements / bt_s
        workload = (f"{backend}{' jit' if backend == 'jax' else ''}: track, {elements}-element "
                    f"FODO, {n:.0e} particles, {method}")
        x = finals[backend]().x if bt_s is not None else None
        for label, px in peer_x.items():
            peer_s = _median(result[label])
            rows.append(beamtrack_row(
                ids[backend], workload, "rate_pe_s", rate, label,
                None if peer_s is None else n * elements / peer_s,
                max_abs_dx=None if x is None else peers.agreement(x, px),
                errors={k: result[k]["error"] for k in (backend, label)
                        if "error" in result[k]}))
        if not peer_x:
            rows.append(beamtrack_row(ids[backend], workload, "rate_pe_s", rate))
    return rows


# -- gradient / forward ----------------------------------------------------------------
def gradient_rows(settings: Settings, particles: int, quads: int = 100) -> list[dict]:
    """Reverse-mode gradient with respect to ``quads`` quadrupole strengths over one
    forward pass (``gradients_and_batching.gradient_cost``: torch eager, jax jitted);
    the peer column is the issue's target, 3 forward passes."""
    from .gradients_and_batching import gradient_cost

    rows = []
    # Default (checkpointing automatic: on here, 2e6 particle-elements) and off.
    for checkpoint, suffix, note in ((None, "", "checkpointing automatic (on)"),
                                     (False, "-nocheckpoint", "checkpoint=False")):
        ids = [f"grad-{b}{suffix}" for b in ("jax", "torch")]
        if not any(settings.selected(i) for i in ids):
            continue
        for r in gradient_cost(quads, settings.repeats, particles, checkpoint):
            row_id = f"grad-{r['backend']}{suffix}"
            if not settings.selected(row_id):
                continue
            mode = "jitted" if r["backend"] == "jax" else "eager"
            rows.append(beamtrack_row(
                row_id, f"{r['backend']} {mode}: gradient / forward, {quads} parameters, "
                f"{2 * quads}-element line, {particles:.0e} particles, bmad, {note}",
                "times_forward", r["gradient_over_forward"], "target", 3.0,
                forward_ms=r["forward_ms"], gradient_ms=r["gradient_ms"]))
    return rows


# -- compile time against line length --------------------------------------------------
def compile_rows(settings: Settings, lengths: tuple[int, ...], particles: int = 1000
                 ) -> list[dict]:
    """Cold compile + first call of ``compile_beamline`` (torch, inductor caches off)
    and ``jax.jit`` (scan) of a beam-size loss, forward and forward+backward, for the
    FODO of each length (``compile_time.torch_row`` / ``jax_row``)."""
    from .compile_time import jax_row, torch_row

    rows = []
    for framework in ("torch", "jax"):
        if not bt.backends.get(framework).is_installed():
            continue
        for length in lengths:
            ids = {kind: f"compile-{framework}-{length}-{kind}" for kind in ("fwd", "fwdbwd")}
            if not any(settings.selected(i) for i in ids.values()):
                continue
            settings.log(f"  compile {framework} {length} elements")
            line = build(fodo_cell, length)
            try:
                if framework == "torch":
                    import torch._inductor.config as inductor

                    with inductor.patch(force_disable_caches=True):
                        r = torch_row(line, particles, 1, unrolled=False)
                else:
                    r = jax_row(line, particles, 1, unrolled=False)
            except Exception as exc:  # a compiler failure is a result
                r = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
            what = ("torch compile_beamline, first call (cold)" if framework == "torch"
                    else "jax.jit (scan): lower + compile")
            for kind, key, label in (("fwd", "forward", "forward"),
                                     ("fwdbwd", "gradient", "forward+backward")):
                extra = {k: v for k, v in r.items() if k.endswith("_ms")}
                rows.append(beamtrack_row(
                    ids[kind], f"{what}, {length}-element FODO, {label}, "
                    f"{particles} particles", "compile_s", r.get(f"{key}_compile_s"),
                    "target", 20.0, error=r.get("error"), **extra))
    return rows
