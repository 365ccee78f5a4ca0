"""Generating particle distributions: Gaussian, uniform, waterbag and KV beams.

Random numbers are drawn on the host with NumPy's PCG64 generator (through the
backends layer) and then moved to the target backend, so one seed gives the same
beam on NumPy, PyTorch, JAX, CuPy and array-api-strict. Beam parameters (Twiss
parameters, emittances, spreads, a covariance matrix) may be numbers or arrays of the
target backend; the particles are then a differentiable function of them. Without
``backend=``, ``dtype=`` or ``device=``, beams are created where the project's defaults
say (:mod:`beamtrack.backends.defaults`: NumPy and float64 unless set).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import array_api_compat
import numpy as np

from beamtrack.backends import get
from beamtrack.backends.defaults import resolve
from beamtrack.tracking.errors import ParameterError
from beamtrack.tracking.parameters import as_parameter
from beamtrack.tracking.particles import Particles
from beamtrack.tracking.reference import Reference
from beamtrack.tracking.species import ELEMENTARY_CHARGE

#: Distributions :func:`from_twiss` can draw.
DISTRIBUTIONS = ("gaussian", "uniform", "waterbag", "kv")


def _check_n(n: Any, where: str) -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ParameterError(f"{where}: n must be a positive integer, got {n!r}")
    return int(n)


def unit_samples(n: int, distribution: str, seed: int) -> np.ndarray:
    """``(6, n)`` host samples with zero mean and unit variance in every coordinate.

    ``gaussian``: independent normal numbers. ``uniform``: independent uniform numbers
    on ``[-sqrt(3), sqrt(3)]``. ``waterbag``: the four transverse coordinates uniform
    inside a 4-ball of radius ``sqrt(6)``; ``kv`` (Kapchinsky-Vladimirsky): uniform on
    the 4-sphere of radius 2. For waterbag and KV, ``z`` and ``pz`` are Gaussian.
    """
    if distribution not in DISTRIBUTIONS:
        raise ParameterError(
            f"unknown distribution {distribution!r}; choose one of {', '.join(DISTRIBUTIONS)}"
        )
    numpy_backend = get("numpy")
    normal = numpy_backend.normal((6, n), seed)
    if distribution == "gaussian":
        return normal
    uniform = numpy_backend.uniform((6, n), seed + 1)
    if distribution == "uniform":
        return math.sqrt(3.0) * (2.0 * uniform - 1.0)
    direction = normal[:4] / np.linalg.norm(normal[:4], axis=0)
    if distribution == "waterbag":
        radius = math.sqrt(6.0) * uniform[0] ** 0.25
    else:
        radius = 2.0
    return np.concatenate([radius * direction, normal[4:]], axis=0)


def reference_fields(p0c: Any, mc2: Any, reference: Reference | None,
                     where: str) -> tuple[Any, Any]:
    """``(p0c, mc2)`` [eV]: those given, else those of ``reference``.

    Raises
    ------
    ParameterError
        Neither the value nor a reference is given.
    """
    if reference is not None:
        p0c = reference.p0c if p0c is None else p0c
        mc2 = reference.mc2 if mc2 is None else mc2
    missing = [k for k, v in (("p0c", p0c), ("mc2", mc2)) if v is None]
    if missing:
        raise ParameterError(f"{where}: give {' and '.join(missing)} [eV], or reference= "
                             "(for example a loaded line's line.reference)")
    return p0c, mc2


def bunch_fields(particles: Particles, total_charge: Any, charge: float | None,
                 reference: Reference | None, where: str) -> Particles:
    """``particles`` with the species ``charge`` and, for a ``total_charge`` [C] (its
    magnitude counts: 1e-9 and -1e-9 are the same electron bunch), equal
    macro-particle weights ``|total_charge| / (n e |charge|)``.

    ``charge`` defaults to the charge number of ``reference``'s species. A
    ``total_charge`` may be an array of the particles' library (differentiable; shape
    ``()`` or ``(*batch)``).

    Raises
    ------
    ParameterError
        A ``total_charge`` without a charge number, or of another library.
    """
    if charge is None and reference is not None:
        charge = reference.charge
    if total_charge is None:
        return particles if charge is None else particles.replace(charge=charge)
    if charge is None or charge == 0:
        raise ParameterError(f"{where}: total_charge needs the species' charge number: give "
                             "parameter 'charge' (e.g. -1 for electrons) or reference=")
    like = particles.coords
    total = as_parameter(total_charge, like, "total_charge", element=where)
    xp = particles.xp
    per_particle = xp.abs(total) / (particles.n * ELEMENTARY_CHARGE * abs(charge))
    weight = per_particle[..., None] * xp.ones_like(like[..., 0, :])
    return particles.replace(charge=charge, weight=weight)


def _geometric_emittance(
    geometric: Any, normalized: Any, p0c: Any, mc2: Any, plane: str
) -> Any:
    if (geometric is None) == (normalized is None):
        raise ParameterError(
            f"give exactly one of emittance_{plane} and normalized_emittance_{plane}"
        )
    if geometric is not None:
        return geometric
    return normalized * mc2 / p0c  # eps = eps_n / (beta0 gamma0), beta0 gamma0 = p0c/mc2


def from_twiss(
    n: int,
    *,
    beta_x: Any,
    beta_y: Any,
    p0c: Any = None,
    mc2: Any = None,
    reference: Reference | None = None,
    alpha_x: Any = 0.0,
    alpha_y: Any = 0.0,
    emittance_x: Any = None,
    emittance_y: Any = None,
    normalized_emittance_x: Any = None,
    normalized_emittance_y: Any = None,
    sigma_z: Any = 0.0,
    sigma_pz: Any = 0.0,
    dispersion_x: Any = 0.0,
    dispersion_px: Any = 0.0,
    dispersion_y: Any = 0.0,
    dispersion_py: Any = 0.0,
    mean: Sequence[float] | Any | None = None,
    distribution: str = "gaussian",
    seed: int = 0,
    backend: str | None = None,
    dtype: Any = None,
    device: Any = None,
    s: Any = 0.0,
    total_charge: Any = None,
    charge: float | None = None,
) -> Particles:
    """A beam with given Twiss parameters, emittances and spreads.

    Each transverse plane is ``u = sqrt(eps beta) a``,
    ``pu = sqrt(eps / beta) (b - alpha a)`` with unit samples ``a, b``, plus
    dispersion ``u += D pz``, ``pu += D' pz``.

    Parameters
    ----------
    n
        Number of particles.
    beta_x, beta_y
        Beta functions [m].
    p0c, mc2
        Reference momentum and rest energy [eV]; by default those of ``reference``.
    reference
        A :class:`~beamtrack.tracking.reference.Reference` (e.g. a loaded line's
        ``line.reference``) for ``p0c`` and ``mc2`` not given.
    alpha_x, alpha_y
        Alpha functions.
    emittance_x, emittance_y
        Geometric RMS emittances [m]; or give ``normalized_emittance_*``
        (``beta0 gamma0 eps``) [m].
    sigma_z, sigma_pz
        RMS bunch length [m] and relative momentum spread.
    dispersion_x, dispersion_px, dispersion_y, dispersion_py
        Dispersion ``dx/dpz`` [m] and its derivative ``dpx/dpz``.
    mean
        Centroid of the six coordinates (zero by default).
    distribution
        ``"gaussian"``, ``"uniform"``, ``"waterbag"`` or ``"kv"`` (see
        :func:`unit_samples`).
    seed
        Random seed; the same seed gives the same beam on every backend.
    backend, dtype, device
        Where the particles live; by default the project's defaults
        (:func:`beamtrack.set_defaults`: NumPy, float64, unless set).
    s
        Longitudinal position [m].
    total_charge
        Bunch charge [C] (a number, or an array of the target library: differentiable):
        equal macro-particle ``weight`` s of ``|total_charge| / (n e |charge|)``;
        ``None``: weight 1.
    charge
        Charge number of the species (-1 for electrons); by default that of
        ``reference``'s species, else unknown (``None``).

    Returns
    -------
    Particles
        Alive particles of shape ``(6, n)`` (batch dimensions of array parameters
        broadcast in front).
    """
    n = _check_n(n, "from_twiss")
    p0c, mc2 = reference_fields(p0c, mc2, reference, "from_twiss")
    target, dtype, device = resolve(backend, dtype, device)
    unit = target.asarray(unit_samples(n, distribution, seed), dtype=dtype, device=device)
    xp = array_api_compat.array_namespace(unit)

    def param(value: Any, name: str) -> Any:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ParameterError(f"from_twiss: {name} must be finite, got {value!r}")
            return float(value)
        if not array_api_compat.is_array_api_obj(value):
            raise ParameterError(f"from_twiss: {name} must be a number or an array")
        return value[..., None]

    for name, value in (("beta_x", beta_x), ("beta_y", beta_y)):
        if isinstance(value, numbers.Real) and not value > 0:
            raise ParameterError(f"from_twiss: {name} must be positive, got {value!r}")
    eps = [
        _geometric_emittance(emittance_x, normalized_emittance_x, p0c, mc2, "x"),
        _geometric_emittance(emittance_y, normalized_emittance_y, p0c, mc2, "y"),
    ]
    for plane, value in zip("xy", eps):
        if isinstance(value, numbers.Real) and not value >= 0:
            raise ParameterError(f"from_twiss: emittance_{plane} must be >= 0, got {value!r}")
    coords = []
    for k, (beta, alpha, e, plane) in enumerate(
        ((beta_x, alpha_x, eps[0], "x"), (beta_y, alpha_y, eps[1], "y"))
    ):
        b = param(beta, f"beta_{plane}")
        a = param(alpha, f"alpha_{plane}")
        e = param(e, f"emittance_{plane}")
        u, v = unit[2 * k, ...], unit[2 * k + 1, ...]
        coords += [(e * b) ** 0.5 * u, (e / b) ** 0.5 * (v - a * u)]
    pz = param(sigma_pz, "sigma_pz") * unit[5, ...]
    coords += [param(sigma_z, "sigma_z") * unit[4, ...], pz]
    for index, (d, name) in enumerate(
        ((dispersion_x, "dispersion_x"), (dispersion_px, "dispersion_px"),
         (dispersion_y, "dispersion_y"), (dispersion_py, "dispersion_py"))
    ):
        coords[index] = coords[index] + param(d, name) * pz
    if mean is not None:
        mean_arr = mean if array_api_compat.is_array_api_obj(mean) else target.asarray(
            np.asarray(mean, dtype=np.float64), dtype=unit.dtype, device=device
        )
        if mean_arr.shape[-1:] != (6,):
            raise ParameterError("from_twiss: mean needs six values (x, px, y, py, z, pz)")
        coords = [c + mean_arr[..., i, None] for i, c in enumerate(coords)]
    coords = xp.broadcast_arrays(*coords)
    return bunch_fields(Particles(*coords, p0c=p0c, mc2=mc2, s=s), total_charge, charge,
                        reference, "from_twiss")


def from_covariance(
    n: int,
    *,
    covariance: Any,
    p0c: Any = None,
    mc2: Any = None,
    reference: Reference | None = None,
    mean: Sequence[float] | Any | None = None,
    seed: int = 0,
    backend: str | None = None,
    dtype: Any = None,
    device: Any = None,
    s: Any = 0.0,
    total_charge: Any = None,
    charge: float | None = None,
) -> Particles:
    """A Gaussian beam with a given 6x6 covariance matrix (Bmad coordinates).

    For a covariance given as numbers (nested lists or a NumPy array), the factor
    ``L`` with ``L L^T = covariance`` comes from an eigen-decomposition on the host, so
    positive semi-definite matrices (e.g. zero energy spread) work. For a backend array
    (differentiable), ``L`` is its Cholesky factor, which needs a positive-definite
    matrix. ``p0c`` and ``mc2`` [eV] default to those of ``reference``. ``backend``,
    ``dtype`` and ``device`` default to the project's defaults
    (:func:`beamtrack.set_defaults`). ``total_charge`` [C] and ``charge`` set the
    macro-particle weights and the species' charge number as in :func:`from_twiss`.
    """
    n = _check_n(n, "from_covariance")
    p0c, mc2 = reference_fields(p0c, mc2, reference, "from_covariance")
    target, dtype, device = resolve(backend, dtype, device)
    unit = target.asarray(unit_samples(n, "gaussian", seed), dtype=dtype, device=device)
    xp = array_api_compat.array_namespace(unit)
    if array_api_compat.is_array_api_obj(covariance) and not isinstance(covariance, np.ndarray):
        factor = xp.linalg.cholesky(covariance)
    else:
        cov = np.asarray(covariance, dtype=np.float64)
        if cov.shape != (6, 6) or not np.all(np.isfinite(cov)):
            raise ParameterError("from_covariance: covariance must be a finite 6x6 matrix")
        if not np.allclose(cov, cov.T, rtol=1e-12, atol=0):
            raise ParameterError("from_covariance: covariance must be symmetric")
        w, v = np.linalg.eigh(cov)
        if np.min(w) < -1e-12 * max(np.max(np.abs(w)), 1e-300):
            raise ParameterError("from_covariance: covariance is not positive semi-definite")
        factor = target.asarray(v * np.sqrt(np.clip(w, 0.0, None)), dtype=unit.dtype,
                                device=device)
    coords = xp.matmul(factor, unit)
    if mean is not None:
        mean_arr = mean if array_api_compat.is_array_api_obj(mean) else target.asarray(
            np.asarray(mean, dtype=np.float64), dtype=unit.dtype, device=device
        )
        coords = coords + mean_arr[..., None]
    return bunch_fields(Particles(coords=coords, p0c=p0c, mc2=mc2, s=s), total_charge,
                        charge, reference, "from_covariance")


def gaussian_particles(
    n: int,
    *,
    sigma: Sequence[float],
    p0c: float | None = None,
    mc2: float | None = None,
    reference: Reference | None = None,
    mean: Sequence[float] | None = None,
    seed: int = 0,
    backend: str | None = None,
    dtype: Any = None,
    device: Any = None,
    total_charge: Any = None,
    charge: float | None = None,
) -> Particles:
    """An uncorrelated Gaussian bunch.

    Parameters
    ----------
    n
        Number of particles.
    sigma
        RMS spreads of ``x [m], px, y [m], py, z [m], pz``.
    p0c, mc2
        Reference momentum and rest energy [eV]; by default those of ``reference``.
    reference
        A :class:`~beamtrack.tracking.reference.Reference` (e.g. a loaded line's
        ``line.reference``) for ``p0c`` and ``mc2`` not given.
    mean
        Centroid of the six coordinates (zero by default).
    seed
        Random seed (same beam on every backend).
    backend, dtype, device
        Where the particles live; by default the project's defaults
        (:func:`beamtrack.set_defaults`: NumPy, float64, unless set).
    total_charge
        Bunch charge [C] (a number, or an array of the target library: differentiable):
        equal macro-particle ``weight`` s of ``|total_charge| / (n e |charge|)``;
        ``None``: weight 1.
    charge
        Charge number of the species (-1 for electrons); by default that of
        ``reference``'s species, else unknown (``None``).
    """
    n = _check_n(n, "gaussian_particles")
    p0c, mc2 = reference_fields(p0c, mc2, reference, "gaussian_particles")
    sigma_arr = np.asarray(sigma, dtype=np.float64)
    mean_arr = np.zeros(6) if mean is None else np.asarray(mean, dtype=np.float64)
    if sigma_arr.shape != (6,) or mean_arr.shape != (6,):
        raise ParameterError("gaussian_particles: sigma and mean need six values each")
    if not np.all(np.isfinite(sigma_arr)) or np.any(sigma_arr < 0):
        raise ParameterError(f"gaussian_particles: sigma must be finite and >= 0, got {sigma}")
    coords = mean_arr[:, None] + sigma_arr[:, None] * unit_samples(n, "gaussian", seed)
    target, dtype, device = resolve(backend, dtype, device)
    particles = Particles(
        coords=target.asarray(coords, dtype=dtype, device=device), p0c=p0c, mc2=mc2
    )
    return bunch_fields(particles, total_charge, charge, reference, "gaussian_particles")

