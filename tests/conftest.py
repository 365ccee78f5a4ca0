"""Shared fixtures: one ``xp`` fixture over every backend, an ``ad`` fixture over the
autodiff backends, and helpers to build particles on a backend.

JAX computes in float32 unless ``jax_enable_x64`` is set before any JAX array exists,
so it is switched on here, at import, before any test module runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import mpmath
import numpy as np
import pytest

try:
    import jax

    jax.config.update("jax_enable_x64", True)
except ImportError:  # pragma: no cover - jax is an optional extra
    pass

from beamtrack import backends
from beamtrack.tracking import Particles

#: Every backend beamtrack knows; physics tests run on each one that is usable here.
BACKEND_NAMES = ("numpy", "torch", "jax", "array_api_strict", "cupy")
#: Backends with automatic differentiation.
AUTODIFF_NAMES = ("torch", "jax")

DATA = Path(__file__).parent / "data"

#: Generic test beam settings: 1 GeV/c electrons.
P0C = 1.0e9
ELECTRON_MC2 = 510998.95069
PROTON_MC2 = 938272089.43

#: The symplectic form: block-diag of [[0, 1], [-1, 0]] for (x, px), (y, py), (z, pz).
SYMPLECTIC_J = np.kron(np.eye(3), np.array([[0.0, 1.0], [-1.0, 0.0]]))


def backend_or_skip(name: str) -> backends.Backend:
    """The backend called ``name``, or skip the test with the reason it is unusable."""
    try:
        backend = backends.get(name)
    except backends.BackendUnavailableError:
        pytest.skip(f"{name} not installed")
    if name not in backends.available():  # cupy installed, but no GPU visible
        pytest.skip("no CUDA GPU")
    return backend


@pytest.fixture(params=BACKEND_NAMES)
def xp(request: pytest.FixtureRequest) -> backends.Backend:
    """The :class:`~beamtrack.backends.Backend` object of each backend in turn."""
    return backend_or_skip(request.param)


@pytest.fixture(params=AUTODIFF_NAMES)
def ad(request: pytest.FixtureRequest) -> backends.Backend:
    """Each installed autodiff backend (torch, jax) in turn."""
    return backend_or_skip(request.param)


def make_particles(
    name: str, array: np.ndarray, *, p0c: float = P0C, mc2: float = ELECTRON_MC2, **kw
) -> Particles:
    """Particles on backend ``name`` from a NumPy particle-major ``(*batch, n, 6)`` array."""
    return Particles.from_array(np.asarray(array, dtype=np.float64), p0c=p0c, mc2=mc2,
                                **kw).to_backend(name)


def to_np(particles: Particles) -> np.ndarray:
    """Coordinates of ``particles`` as a NumPy ``(*batch, 6, n)`` array."""
    return backends.backend_of(particles.coords).to_numpy(particles.coords)


def alive_np(particles: Particles) -> np.ndarray:
    """Survival mask of ``particles`` as a NumPy bool array."""
    return backends.backend_of(particles.alive).to_numpy(particles.alive)


def random_beam(n: int, seed: int, scale: float = 1e-3) -> np.ndarray:
    """``(n, 6)`` particle-major NumPy beam with coordinates of size ``scale``."""
    return scale * np.random.default_rng(seed).standard_normal((n, 6))


@pytest.fixture(scope="session")
def bmad_reference() -> dict:
    """The Bmad/Tao single-particle reference data (tests/data copy)."""
    with open(DATA / "bmad_tao_reference.json") as f:
        return json.load(f)


def value_and_grad_np(
    backend: backends.Backend, fn, x: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Value and gradient of the scalar ``fn`` at ``x`` with ``backend``'s autodiff, in NumPy."""
    value, grad = compiled(backend, backend.value_and_grad(fn))(backend.asarray(x))
    return backend.to_numpy(value), backend.to_numpy(grad)


def compiled(backend: backends.Backend, fn):
    """``backend.jit(fn)`` for JAX (eager JAX is slow op by op); ``fn`` itself otherwise
    (``torch.compile`` would take far longer than the eager run it replaces)."""
    return backend.jit(fn) if backend.name == "jax" else fn


def mp_beta(pz, p0c, mc2):
    """Velocity over c for momentum deviation ``pz``, in mpmath (40 digits)."""
    with mpmath.workdps(40):
        pc = (1 + mpmath.mpf(float(pz))) * mpmath.mpf(p0c)
        return pc / mpmath.sqrt(pc**2 + mpmath.mpf(mc2) ** 2)
