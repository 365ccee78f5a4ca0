"""Large parameter scans spread over processes or machines with Dask.

:func:`scan_parameters` tracks one beam through a beamline for each of many parameter
sets and reduces every result with an objective, on a ``dask.distributed`` cluster
(local processes, or machines joined to a scheduler). Install the extra with
``pip install "beamtrack[distributed]"``; Dask is imported only when a scan runs.

Many parameter sets can also be tracked in *one* call with batch dimensions (an
array parameter of shape ``(m,)`` tracks ``m`` configurations at once, see the
tracking rules); a Dask scan is for more sets than one device holds, for work spread
over several machines, or for objectives that are not array code.
"""

from __future__ import annotations

import copyreg
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from beamtrack.lattice.beamline import Beamline
from beamtrack.tracking.particles import Particles

INSTALL_HINT = 'install Dask with `pip install "beamtrack[distributed]"`'


# -- pickling of the immutable records (they refuse attribute assignment) -------------
def _beamline(items: tuple[Any, ...], name: str, method: str, reference: Any) -> Beamline:
    return Beamline(items, name=name, method=method, reference=reference)


def _reduce_beamline(line: Beamline) -> tuple[Any, ...]:
    return _beamline, (line.items, line.name, line.method, line.reference)


def _reduce_particles(p: Particles) -> tuple[Any, ...]:
    return Particles.from_fields, (p.coords, p.s, p.p0c, p.mc2, p.alive, p.charge,
                                   p.explicit_weight)


copyreg.pickle(Beamline, _reduce_beamline)
copyreg.pickle(Particles, _reduce_particles)


def _run_chunk(
    line: Beamline,
    chunk: Sequence[Mapping[str, Any]],
    particles: Particles,
    objective: Callable[[Particles], Any],
    method: str | None,
) -> list[Any]:
    return [objective(line.with_parameters(dict(values)).track(particles, method))
            for values in chunk]


def _import_distributed() -> Any:
    try:
        import dask.distributed
    except ImportError as exc:
        raise ImportError(f"scan_parameters needs dask.distributed; {INSTALL_HINT}") from exc
    return dask.distributed


def scan_parameters(
    line: Beamline,
    values: Sequence[Mapping[str, Any]],
    particles: Particles,
    objective: Callable[[Particles], Any],
    client: Any = None,
    *,
    chunk_size: int | None = None,
    method: str | None = None,
) -> list[Any]:
    """``objective(line.with_parameters(v).track(particles))`` for every ``v`` in
    ``values``, computed on a Dask cluster; results in the order of ``values``.

    The line and the beam are sent to every worker once; the parameter sets go in
    chunks (one task per chunk), so that short tracks do not drown in scheduling.

    Parameters
    ----------
    line
        The beamline.
    values
        Parameter sets, each a mapping ``{"element.parameter": value}`` as taken by
        :meth:`~beamtrack.lattice.beamline.Beamline.with_parameters`.
    particles
        The beam tracked for every set (any backend installed on the workers).
    objective
        Function of the tracked particles whose result is returned (for example a
        beam size as a float). It runs on the workers, so it must be picklable
        (``cloudpickle`` handles lambdas and local functions); returning a plain
        number keeps the transfers small.
    client
        A ``dask.distributed.Client``; by default the current one
        (``dask.distributed.get_client()``), i.e. the last client created in this
        process.
    chunk_size
        Parameter sets per task; by default the sets are split into about four tasks
        per worker thread.
    method
        Tracking method passed to :meth:`~beamtrack.lattice.beamline.Beamline.track`.

    Returns
    -------
    list
        One objective value per parameter set, in order.

    Raises
    ------
    ImportError
        Dask is not installed.
    ValueError
        No client is given and none exists, or ``chunk_size`` is not positive.

    Examples
    --------
    >>> from dask.distributed import Client, LocalCluster          # doctest: +SKIP
    >>> client = Client(LocalCluster(n_workers=4))                 # doctest: +SKIP
    >>> grid = [{"qf1.k1": k} for k in np.linspace(1.0, 3.0, 1000)]  # doctest: +SKIP
    >>> sizes = scan_parameters(line, grid, beam,                  # doctest: +SKIP
    ...                         lambda out: float(bt.beam_statistics(out)["sigma_x"]))
    """
    distributed = _import_distributed()
    if client is None:
        try:
            client = distributed.get_client()
        except ValueError as exc:
            raise ValueError(
                "scan_parameters: no Dask client; create one first, e.g. "
                "`dask.distributed.Client(dask.distributed.LocalCluster())`, or pass "
                "client=" ) from exc
    values = list(values)
    if not values:
        return []
    if chunk_size is None:
        threads = max(1, sum(client.nthreads().values()))
        chunk_size = max(1, math.ceil(len(values) / (4 * threads)))
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"scan_parameters: chunk_size must be a positive integer, "
                         f"got {chunk_size!r}")
    line_future, particles_future = client.scatter([line, particles], broadcast=True,
                                                     hash=False)
    chunks = [values[i:i + chunk_size] for i in range(0, len(values), chunk_size)]
    futures = [
        client.submit(_run_chunk, line_future, chunk, particles_future, objective, method,
                      pure=False)
        for chunk in chunks
    ]
    results: list[Any] = []
    for chunk_result in client.gather(futures):
        results.extend(chunk_result)
    return results
