"""Space-charge rows: one 3D space-charge kick, beamtrack against Cheetah's
``SpaceChargeKick`` in the same process.

Workload: a Gaussian electron bunch (``SIGMA``: 1 mm x 1 mm x 2 mm, 5 MeV/c, 1 nC),
one kick of effective length 0.1 m on a 32^3 grid that follows the beam (3 RMS sizes
on each side, Cheetah's default extent). Forward: the kick. Forward+backward: the kick,
the loss ``std(px)`` of the kicked bunch, backward to the incoming coordinates.
Memory: the bytes autograd saves for the backward pass, per particle
(``memory.saved_bytes``; jax: XLA's temporary plus output bytes of the compiled
gradient). ``agreement`` in a torch row: the relative difference of the RMS
horizontal kick of beamtrack and Cheetah (two codes, the same physics).
"""

from __future__ import annotations

from typing import Any

import beamtrack as bt
from beamtrack.tracking.space_charge import track_space_charge

from . import peers
from .memory import saved_bytes
from .timing import Contender, interleaved
from .workloads import Settings, _median, beamtrack_row, short

P0C = 5e6
SIGMA = (1e-3, 1e-5, 1e-3, 1e-5, 2e-3, 1e-4)
TOTAL_CHARGE = 1e-9
LENGTH = 0.1
GRID = (32, 32, 32)
EXTENT_SIGMAS = 3.0


def bunch(n: int, backend: str, settings: Settings) -> bt.Particles:
    """The workload's electron bunch on ``backend``."""
    device = "cuda" if settings.device == "cuda" and backend == "torch" else None
    return bt.gaussian_particles(n, sigma=SIGMA, p0c=P0C, mc2=bt.electron.mc2,
                                 backend=backend, dtype=settings.dtype, device=device,
                                 total_charge=TOTAL_CHARGE, charge=-1.0, seed=3)


def kick(p: bt.Particles) -> bt.Particles:
    """beamtrack's kick of the workload."""
    return track_space_charge(p, length=LENGTH, grid_shape=GRID, grid_sigmas=EXTENT_SIGMAS)


def _cheetah(p: bt.Particles) -> tuple[Any, Any]:
    """Cheetah's kick element and incoming beam (charges from the weights)."""
    import cheetah
    import torch

    beam = p.to_cheetah(peers.SPECIES)
    charges = p.weight * 1.602176634e-19
    beam = cheetah.ParticleBeam(beam.particles, beam.energy, particle_charges=charges,
                                species=beam.species)
    element = cheetah.SpaceChargeKick(
        torch.tensor(LENGTH, dtype=p.dtype), grid_shape=GRID,
        grid_extent_x=torch.tensor(EXTENT_SIGMAS), grid_extent_y=torch.tensor(EXTENT_SIGMAS),
        grid_extent_tau=torch.tensor(EXTENT_SIGMAS), dtype=p.dtype)
    return element, beam


def space_charge_rows(settings: Settings, n: int = 100_000) -> list[dict]:
    """Rows ``space-charge-{fwd,fwdbwd,memory}-{backend}``."""
    rows: list[dict] = []
    tag = short(n)
    available = bt.backends.available()
    if "torch" in available:
        rows += _torch_rows(settings, n, tag)
    if "numpy" in available and settings.selected(f"space-charge-fwd-{tag}-numpy"):
        p = bunch(n, "numpy", settings)
        result = interleaved({"beamtrack": Contender(lambda: kick(p))}, settings.repeats)
        rows.append(_row(f"space-charge-fwd-{tag}-numpy", f"numpy: one space-charge kick, "
                         f"32^3 grid, {n:.0e} particles", result))
    if "jax" in available and settings.device == "cpu":
        rows += _jax_rows(settings, n, tag)
    return rows


def _row(row_id: str, workload: str, result: dict, peer: str | None = None,
         **extra: Any) -> dict:
    bt_s = _median(result["beamtrack"])
    peer_s = _median(result.get(peer, {})) if peer else None
    return beamtrack_row(row_id, workload, "time_ms", None if bt_s is None else 1e3 * bt_s,
                         peer if peer and peer in result else None,
                         None if peer_s is None else 1e3 * peer_s,
                         errors={k: v["error"] for k, v in result.items() if "error" in v},
                         **extra)


def _torch_rows(settings: Settings, n: int, tag: str) -> list[dict]:
    import torch

    rows: list[dict] = []
    if not any(settings.selected(f"space-charge-{k}-{tag}-torch")
               for k in ("fwd", "fwdbwd", "memory")):
        return rows
    p = bunch(n, "torch", settings)
    have_cheetah = peers.installed("cheetah")
    peer = "Cheetah SpaceChargeKick"
    if have_cheetah:
        element, beam = _cheetah(p)

    def bt_forward() -> Any:
        with torch.no_grad():
            return kick(p).px[:1].cpu()

    def bt_backward() -> None:
        coords = p.coords.detach().requires_grad_(True)
        out = kick(p.replace(coords=coords))
        torch.std(out.px).backward()

    def ch_forward() -> Any:
        with torch.no_grad():
            return element.track(beam).particles[:1, :1].cpu()

    def ch_backward() -> None:
        import cheetah

        particles = beam.particles.detach().requires_grad_(True)
        incoming = cheetah.ParticleBeam(particles, beam.energy,
                                        particle_charges=beam.particle_charges,
                                        species=beam.species)
        out = element.track(incoming)
        torch.std(out.particles[:, 1]).backward()

    extra: dict[str, Any] = {}
    if have_cheetah:
        with torch.no_grad():
            ours = (kick(p).px - p.px).std().item()
            theirs = (element.track(beam).particles[:, 1] - beam.particles[:, 1]).std().item()
        extra["agreement"] = abs(ours / theirs - 1)
    for kind, mine, theirs, label in (("fwd", bt_forward, ch_forward, "forward"),
                                      ("fwdbwd", bt_backward, ch_backward,
                                       "forward+backward")):
        row_id = f"space-charge-{kind}-{tag}-torch"
        if not settings.selected(row_id):
            continue
        contenders = {"beamtrack": Contender(mine)}
        if have_cheetah:
            contenders[peer] = Contender(theirs)
        result = interleaved(contenders, settings.repeats)
        rows.append(_row(row_id, f"torch eager: one space-charge kick {label}, 32^3 grid, "
                         f"{n:.0e} particles", result, peer if have_cheetah else None,
                         **extra))
    row_id = f"space-charge-memory-{tag}-torch"
    if settings.selected(row_id):
        mine = saved_bytes(bt_backward) / n
        theirs = saved_bytes(ch_backward) / n if have_cheetah else None
        rows.append(beamtrack_row(row_id, f"torch: bytes saved for backward by one "
                                  f"space-charge kick, {n:.0e} particles",
                                  "bytes_per_particle", mine,
                                  peer if have_cheetah else None, theirs))
    return rows


def _jax_rows(settings: Settings, n: int, tag: str) -> list[dict]:
    import jax
    import jax.numpy as jnp

    rows: list[dict] = []
    if not any(settings.selected(f"space-charge-{k}-{tag}-jax")
               for k in ("fwd", "fwdbwd", "memory")):
        return rows
    p = bunch(n, "jax", settings)
    forward = jax.jit(lambda q: kick(q).coords)

    def loss(coords: Any) -> Any:
        return jnp.std(kick(p.replace(coords=coords)).px)

    gradient = jax.jit(jax.grad(loss))
    for kind, fn, arg, label in (("fwd", forward, p, "forward"),
                                 ("fwdbwd", gradient, p.coords, "forward+backward")):
        row_id = f"space-charge-{kind}-{tag}-jax"
        if not settings.selected(row_id):
            continue
        result = interleaved({"beamtrack": Contender(
            lambda fn=fn, arg=arg: jax.block_until_ready(fn(arg)))}, settings.repeats)
        rows.append(_row(row_id, f"jax.jit: one space-charge kick {label}, 32^3 grid, "
                         f"{n:.0e} particles", result))
    row_id = f"space-charge-memory-{tag}-jax"
    if settings.selected(row_id):
        analysis = gradient.lower(p.coords).compile().memory_analysis()
        value = None
        if analysis is not None:
            value = (analysis.temp_size_in_bytes + analysis.output_size_in_bytes) / n
        rows.append(beamtrack_row(row_id, f"jax.jit: XLA temporary + output bytes of the "
                                  f"space-charge kick gradient, {n:.0e} particles",
                                  "bytes_per_particle", value))
    return rows


def main() -> None:
    """Print the rows (``python -m benchmarks.space_charge``)."""
    import sys

    from . import report

    if "torch" in bt.backends.available():
        import torch

        torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
    if "jax" in bt.backends.available():
        bt.backends.get("jax").enable_float64()
    settings = Settings(repeats=5)
    rows = space_charge_rows(settings)
    print(report.table(rows))
    for row in rows:
        print(row["id"], {k: v for k, v in row.items() if k not in ("workload", "id")})


if __name__ == "__main__":
    main()
