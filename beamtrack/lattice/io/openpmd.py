"""Particle beams in openPMD files with the beamphysics extension (HDF5).

Files follow the openPMD standard 2.0 with the ``BeamPhysics`` and ``SpeciesType``
extensions, as written and read by openPMD-beamphysics (``ParticleGroup``):

- ``position/x, y, z`` [m], ``momentum/x, y, z`` (stored in eV/c, ``unitSI = e/c``),
  ``time`` [s], ``weight`` [C per macro-particle], ``particleStatus`` (1 alive),
  plus ``chargeState`` and ``mass`` constant records and the ``speciesType``,
  ``numParticles``, ``totalCharge`` attributes of the species group.
- One iteration (``/data/0/``) holding one species.

beamtrack particles sit at one ``s`` with per-particle ``z = -beta c (t - t_ref)``, so
they are written as at the fixed plane ``position/z = s`` with per-particle arrival
``time = t_ref - z / (beta c)`` (:func:`~beamtrack.tracking.conventions.to_openpmd`).
Reading converts back; files whose particles are at a fixed time (per-particle
``position/z``) are refused with a clear message.

Only ``h5py`` is needed (the ``openpmd`` extra installs it).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import array_api_compat
import numpy as np

from beamtrack.backends import backend_of, get
from beamtrack.lattice.errors import LatticeFileError
from beamtrack.tracking.conventions import C_LIGHT, from_openpmd, to_openpmd
from beamtrack.tracking.errors import ParameterError
from beamtrack.tracking.particles import Particles
from beamtrack.tracking.species import SPECIES, Species
from beamtrack.tracking.species import species as species_named

#: Elementary charge [C] (exact, SI).
E_CHARGE = 1.602176634e-19
#: SI value of 1 eV/c [kg m/s].
EV_PER_C_SI = E_CHARGE / C_LIGHT
#: SI value of 1 eV/c^2 [kg].
EV_PER_C2_SI = E_CHARGE / C_LIGHT**2

#: Attributes beamtrack adds to the species group (other readers ignore them).
P0C_ATTR = "beamtrack_p0c"
T_REF_ATTR = "beamtrack_t_ref"

_DIMENSIONS = {  # openPMD unitDimension (L, M, T, I, theta, N, J)
    "m": (1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    "eV/c": (1.0, 1.0, -1.0, 0.0, 0.0, 0.0, 0.0),
    "s": (0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0),
    "C": (0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0),
    "1": (0.0,) * 7,
    "eV/c^2": (0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0),
}
_UNIT_SI = {"m": 1.0, "eV/c": EV_PER_C_SI, "s": 1.0, "C": 1.0, "1": 1.0,
            "eV/c^2": EV_PER_C2_SI}


@dataclass(frozen=True)
class ParticleFile:
    """Everything :func:`read_particle_file` finds in a file.

    Attributes
    ----------
    particles
        The beam in Bmad coordinates, with the species' ``charge`` and the
        macro-particle ``weight`` (``weights / (|charge| e)`` physical particles each).
    species
        The particle species.
    weights
        Charge per macro-particle [C], NumPy array ``(n,)``.
    t_ref
        Reference arrival time [s] used for ``z``.
    """

    particles: Particles
    species: Species
    weights: np.ndarray
    t_ref: float


def _h5py() -> Any:
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - h5py is installed in the test env
        raise ImportError("openPMD files need h5py: pip install 'beamtrack[openpmd]'") from exc
    return h5py


def _infer_species(mc2: float, charge: float | None = None) -> Species:
    for candidate in SPECIES.values():  # electron before positron, proton before antiproton
        if math.isclose(candidate.mc2, mc2, rel_tol=1e-9) and (
                charge is None or candidate.charge == charge):
            return candidate
    raise ParameterError(f"save_particles: cannot tell the species from mc2 = {mc2!r} eV; "
                         "pass species=")


def _species(value: Species | str | None, mc2: float, charge: float | None = None) -> Species:
    if value is None:
        return _infer_species(mc2, charge)
    chosen = value if isinstance(value, Species) else species_named(value)
    if not math.isclose(chosen.mc2, mc2, rel_tol=1e-9):
        raise ParameterError(f"save_particles: species {chosen.name!r} has mc2 = {chosen.mc2} eV "
                             f"but the particles have mc2 = {mc2} eV")
    return chosen


def _write_record(group: Any, name: str, data: Any, unit: str, n: int) -> None:
    """A record component of ``n`` particles: a dataset, or a constant record (``value``
    and ``shape`` attributes) for a scalar."""
    if np.ndim(data) == 0:
        item = group.create_group(name)
        item.attrs["value"] = data
        item.attrs["shape"] = np.asarray([n], dtype=np.int64)
    else:
        item = group.create_dataset(name, data=data)
    item.attrs["unitSI"] = np.float64(_UNIT_SI[unit])
    item.attrs["unitDimension"] = np.asarray(_DIMENSIONS[unit], dtype=np.float64)
    item.attrs["unitSymbol"] = unit


def save_particles(
    particles: Particles,
    path: str | os.PathLike[str],
    *,
    species: Species | str | None = None,
    weights: Any = None,
    t_ref: float = 0.0,
) -> None:
    """Write particles to an openPMD beamphysics HDF5 file.

    Parameters
    ----------
    particles
        One beam (no batch dimensions), any backend; lost particles are written with
        ``particleStatus = 0`` and their frozen coordinates.
    path
        The HDF5 file to create (overwritten).
    species
        A :class:`~beamtrack.tracking.species.Species` or a known name; by default
        inferred from ``mc2`` and the particles' ``charge`` where known (electron for
        the electron mass without a charge: pass ``species="positron"`` or particles
        with ``charge=1`` for positrons).
    weights
        Charge per macro-particle [C], a number or an array ``(n,)``; by default
        ``|charge| e`` times the particles' ``weight`` (1 unless set).
    t_ref
        Arrival time of the reference particle at the plane [s]: ``time = t_ref -
        z / (beta c)``.

    Raises
    ------
    ParameterError
        Batched particles, an unknown species or one whose mass does not match.
    """
    h5py = _h5py()
    if particles.batch_shape:
        raise ParameterError(f"save_particles: one beam per file; these particles have batch "
                             f"shape {particles.batch_shape}")
    p = particles.numpy()
    mc2 = float(p.mc2)
    p0c = float(p.p0c)
    chosen = _species(species, mc2, p.charge)
    n = p.n
    if weights is None and p.explicit_weight is not None:
        weights = np.broadcast_to(np.asarray(p.explicit_weight), (n,)) * (
            abs(chosen.charge) * E_CHARGE)
    if weights is None:
        weight: Any = np.float64(abs(chosen.charge) * E_CHARGE)
    else:
        if array_api_compat.is_array_api_obj(weights):
            weights = backend_of(weights).to_numpy(weights)
        weight = np.asarray(weights, dtype=np.float64)
        if weight.ndim > 1 or (weight.ndim == 1 and weight.shape != (n,)):
            raise ParameterError(f"save_particles: weights must be a number or shape ({n},), "
                                 f"got shape {weight.shape}")
        if weight.ndim == 0:
            weight = np.float64(weight)
    total = float(np.sum(np.broadcast_to(weight, (n,))))
    absolute = {k: np.asarray(v, dtype=np.float64)
                for k, v in to_openpmd(p, t_ref=float(t_ref)).items()}
    status = np.where(np.asarray(p.alive), 1, 0).astype(np.int64)
    with h5py.File(path, "w") as f:
        f.attrs["openPMD"] = np.bytes_(b"2.0.0")
        f.attrs["openPMDextension"] = np.bytes_(b"BeamPhysics;SpeciesType")
        f.attrs["basePath"] = np.bytes_(b"/data/%T/")
        f.attrs["particlesPath"] = np.bytes_(b"particles/")
        f.attrs["dataType"] = np.bytes_(b"openPMD")
        f.attrs["software"] = np.bytes_(b"beamtrack")
        iteration = f.create_group("data/0")
        iteration.attrs["time"] = np.float64(0.0)
        iteration.attrs["dt"] = np.float64(0.0)
        iteration.attrs["timeUnitSI"] = np.float64(1.0)
        group = iteration.create_group(f"particles/{chosen.name}")
        group.attrs["speciesType"] = np.bytes_(chosen.name.encode())
        group.attrs["numParticles"] = np.int64(n)
        group.attrs["totalCharge"] = np.float64(total)
        group.attrs["chargeUnitSI"] = np.float64(1.0)
        group.attrs[P0C_ATTR] = np.float64(p0c)
        group.attrs[T_REF_ATTR] = np.float64(t_ref)
        position = group.create_group("position")
        _write_record(position, "x", absolute["x"], "m", n)
        _write_record(position, "y", absolute["y"], "m", n)
        _write_record(position, "z", np.float64(p.s), "m", n)
        momentum = group.create_group("momentum")
        for axis in ("x", "y", "z"):
            _write_record(momentum, axis, absolute["p" + axis], "eV/c", n)
        _write_record(group, "time", absolute["t"], "s", n)
        _write_record(group, "weight", weight, "C", n)
        _write_record(group, "particleStatus", status, "1", n)
        _write_record(group, "chargeState", np.float64(chosen.charge), "1", n)
        _write_record(group, "mass", np.float64(mc2), "eV/c^2", n)



# -- reading ----------------------------------------------------------------------------
class _Reader:
    """Reads records of one species group, raising LatticeFileError naming file and dataset."""

    def __init__(self, path: str, group: Any) -> None:
        self.path = path
        self.group = group

    def fail(self, what: str, message: str) -> LatticeFileError:
        return LatticeFileError(f"{what}: {message}", file=self.path)

    def attr(self, obj: Any, key: str, default: Any = None) -> Any:
        value = obj.attrs.get(key, default)
        if isinstance(value, np.ndarray) and value.size == 1:
            value = value.reshape(()).item()
        if isinstance(value, (bytes, np.bytes_)):
            value = value.decode("utf-8", "replace")
        return value

    def record(self, name: str, n: int, unit: str, *, required: bool = True,
               default: float | None = None) -> np.ndarray | None:
        """``name`` (with its ``...Offset`` record added) in beamtrack units, shape ``(n,)``."""
        where = f"{self.group.name}/{name}"
        if name not in self.group:
            if required:
                raise self.fail(where, "dataset missing")
            return None if default is None else np.full(n, default)
        values = self._component(self.group[name], n, where)
        head, _, tail = name.partition("/")
        offset = f"{head}Offset/{tail}" if tail else f"{head}Offset"
        if offset in self.group:
            values = values + self._component(self.group[offset], n, f"{self.group.name}/"
                                              f"{offset}")
        scale = _UNIT_SI[unit]
        return values if scale == 1.0 else values / scale

    def _component(self, item: Any, n: int, where: str) -> np.ndarray:
        h5py = _h5py()
        try:
            unit_si = float(self.attr(item, "unitSI", 1.0))
            if isinstance(item, h5py.Dataset):
                raw = np.asarray(item[()], dtype=np.float64)
            elif "value" in item.attrs:
                raw = np.full(n, float(self.attr(item, "value")))
            else:
                raise self.fail(where, "neither a dataset nor a constant record (value, shape)")
        except LatticeFileError:
            raise
        except (TypeError, ValueError, OSError) as exc:
            raise self.fail(where, f"cannot read numbers ({exc})") from None
        if raw.shape == (1,) and n != 1:
            raw = np.full(n, raw[0])
        if raw.shape != (n,):
            raise self.fail(where, f"shape {raw.shape} does not match numParticles = {n}")
        return raw * unit_si if unit_si != 1.0 else raw


def _species_group(f: Any, path: str) -> Any:
    h5py = _h5py()

    def fail(message: str) -> LatticeFileError:
        return LatticeFileError(message, file=path)

    base = f.attrs.get("basePath", b"/data/%T/")
    particles = f.attrs.get("particlesPath", b"particles/")
    base = base.decode() if isinstance(base, (bytes, np.bytes_)) else str(base)
    particles = particles.decode() if isinstance(particles, (bytes, np.bytes_)) else str(particles)
    if "%T" in base:
        head = base.split("%T")[0]
        if head not in f or not isinstance(f[head], h5py.Group):
            raise fail(f"{head}: group of iterations missing (basePath {base!r})")
        steps = list(f[head])
        if len(steps) != 1:
            raise fail(f"{head}: {len(steps)} iterations; beamtrack reads files with one")
        base = base.replace("%T", steps[0])
    where = (base.rstrip("/") + "/" + particles.strip("/")).replace("//", "/")
    if where not in f or not isinstance(f[where], h5py.Group):
        raise fail(f"{where}: particle group missing")
    group = f[where]
    if "speciesType" in group.attrs or "position" in group:
        return group
    names = [k for k in group if isinstance(group[k], h5py.Group)]
    if len(names) != 1:
        raise fail(f"{where}: {len(names)} species; beamtrack reads files with one")
    return group[names[0]]


def _file_species(reader: _Reader, group: Any, n: int) -> Species:
    name = reader.attr(group, "speciesType")
    where = group.name
    known = None
    if isinstance(name, str):
        try:
            known = species_named(name)
        except ValueError:
            known = None
    mass = reader.record("mass", n, "eV/c^2", required=False)
    charge = reader.record("chargeState", n, "1", required=False)
    if known is None:
        if mass is None or charge is None:
            raise reader.fail(f"{where}", f"unknown speciesType {name!r} and no mass and "
                                          "chargeState records to define it")
        try:
            return Species(str(name), float(mass[0]), float(charge[0]))
        except ValueError as exc:
            raise reader.fail(f"{where}/mass", str(exc)) from None
    if mass is not None and not np.allclose(mass, known.mc2, rtol=1e-6, atol=0.0):
        raise reader.fail(f"{where}/mass", f"{float(mass[0])} eV/c^2 disagrees with speciesType "
                                           f"{name!r} ({known.mc2} eV/c^2)")
    if charge is not None and not np.all(charge == known.charge):
        raise reader.fail(f"{where}/chargeState", f"{float(charge[0])} disagrees with "
                                                  f"speciesType {name!r} ({known.charge})")
    return known


def read_particle_file(
    path: str | os.PathLike[str],
    *,
    backend: str = "numpy",
    p0c: float | None = None,
    t_ref: float | None = None,
) -> ParticleFile:
    """Read particles, species and weights from an openPMD beamphysics HDF5 file.

    Parameters
    ----------
    path
        The file (one iteration, one species).
    backend
        Backend of the returned particles.
    p0c
        Reference momentum times c [eV]; by default the value beamtrack stored in the
        file, else the mean total momentum of the alive particles.
    t_ref
        Reference arrival time [s]; by default the value beamtrack stored, else the
        mean time of the alive particles.

    Returns
    -------
    ParticleFile

    Raises
    ------
    LatticeFileError
        The file is not readable HDF5, misses a record, or holds particles at a fixed
        time instead of a fixed ``z``; the message names the file and the dataset.
    """
    h5py = _h5py()
    source = os.fspath(path)
    try:
        f = h5py.File(source, "r")
    except (OSError, ValueError) as exc:
        raise LatticeFileError(f"not a readable HDF5 file ({exc})", file=source) from None
    with f:
        group = _species_group(f, source)
        reader = _Reader(source, group)
        try:
            n = int(reader.attr(group, "numParticles"))
        except (TypeError, ValueError):
            raise reader.fail(group.name, "attribute numParticles missing or not an "
                                          "integer") from None
        if n < 1:
            raise reader.fail(group.name, f"numParticles = {n}: no particles")
        chosen = _file_species(reader, group, n)
        x = reader.record("position/x", n, "m")
        y = reader.record("position/y", n, "m")
        z = reader.record("position/z", n, "m")
        px = reader.record("momentum/x", n, "eV/c")
        py = reader.record("momentum/y", n, "eV/c")
        ps = reader.record("momentum/z", n, "eV/c")
        t = reader.record("time", n, "s", required=False)
        status = reader.record("particleStatus", n, "1", required=False, default=1.0)
        weights = reader.record("weight", n, "C", required=False)
        if weights is None:
            total = float(reader.attr(group, "totalCharge", 0.0) or 0.0)
            weights = np.full(n, total / n)
        stored_p0c = reader.attr(group, P0C_ATTR)
        stored_t_ref = reader.attr(group, T_REF_ATTR)
    assert x is not None and y is not None and z is not None and status is not None
    assert px is not None and py is not None and ps is not None
    if t is None:
        raise reader.fail(f"{group.name}/time", "dataset missing; beamtrack needs each "
                                                "particle's time at a fixed z")
    spread = float(np.max(z) - np.min(z))
    if spread > 1e-12 * max(1.0, float(np.max(np.abs(z)))):
        raise reader.fail(f"{group.name}/position/z",
                          f"particles are not at one z (spread {spread:.3g} m): the beam is at "
                          "a fixed time; drift it to a common z first (e.g. openPMD-beamphysics "
                          "ParticleGroup.drift_to_z()) and write that")
    alive = status == 1
    if not np.all(np.isfinite(np.stack([x, y, px, py, ps, t]))):
        raise reader.fail(group.name, "non-finite coordinates")
    if p0c is None:
        p0c = float(stored_p0c) if stored_p0c is not None else None
    if p0c is None:
        if not np.any(alive):
            raise reader.fail(f"{group.name}/particleStatus", "no alive particle to take the "
                                                              "reference momentum from; pass p0c=")
        p0c = float(np.mean(np.sqrt(px[alive] ** 2 + py[alive] ** 2 + ps[alive] ** 2)))
    if t_ref is None:
        t_ref = float(stored_t_ref) if stored_t_ref is not None else (
            float(np.mean(t[alive])) if np.any(alive) else 0.0)
    if not (math.isfinite(p0c) and p0c > 0):
        raise LatticeFileError(f"reference momentum p0c = {p0c!r} eV is not positive",
                               file=source)
    particles = from_openpmd(x, px, y, py, ps, t, p0c=p0c, mc2=chosen.mc2, t_ref=t_ref,
                             s=float(z[0]), alive=alive)
    # The species' charge number and the macro-particle weights (physical particles
    # each) travel with the particles: the bunch charge of space charge.
    macro = None
    if chosen.charge != 0:
        macro = np.asarray(weights, dtype=np.float64) / (abs(chosen.charge) * E_CHARGE)
    particles = particles.replace(charge=chosen.charge, weight=macro)
    if backend != "numpy":
        get(backend)  # a clear error for unknown backends
        particles = particles.to_backend(backend)
    return ParticleFile(particles, chosen, np.asarray(weights, dtype=np.float64), float(t_ref))


def load_particles(
    path: str | os.PathLike[str],
    *,
    backend: str = "numpy",
    p0c: float | None = None,
) -> Particles:
    """Read particles from an openPMD beamphysics HDF5 file (at a fixed ``z``).

    Parameters
    ----------
    path
        The file.
    backend
        Backend of the returned particles (``"numpy"``, ``"torch"``, ``"jax"``, ...).
    p0c
        Reference momentum times c [eV]; by default the one beamtrack stored in the
        file, else the mean total momentum of the alive particles.

    Returns
    -------
    Particles
        ``s`` is the file's ``position/z``; ``particleStatus != 1`` gives lost
        particles. See :func:`read_particle_file` for species and weights.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from beamtrack import Particles, electron
    >>> from beamtrack.lattice.io.openpmd import load_particles, save_particles
    >>> beam = Particles(*np.full((6, 3), 1e-3), p0c=1e9, mc2=electron.mc2)
    >>> path = os.path.join(tempfile.mkdtemp(), "beam.h5")
    >>> save_particles(beam, path)
    >>> bool(np.allclose(load_particles(path).coords, beam.coords, rtol=0, atol=1e-15))
    True
    """
    return read_particle_file(path, backend=backend, p0c=p0c).particles


__all__ = ["ParticleFile", "load_particles", "read_particle_file", "save_particles"]
