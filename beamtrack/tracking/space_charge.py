"""Three-dimensional space charge: a particle-in-cell kick in the beam rest frame.

The solver (:func:`space_charge_field`) takes the alive macro-particles at one ``s``,
goes to the rest frame of the reference particle (``x, y`` unchanged, longitudinal
position ``z' = gamma0 z``) and

1. deposits the macro-particle charges ``charge * e * weight`` on a regular 3D grid of
   nodes with cloud-in-cell (trilinear) weights (scatter-add through the backends);
2. solves Poisson's equation for open boundaries by Hockney's method: the potential is
   the convolution of the node charges with the integrated Green's function (IGF) of
   Qiang et al., PRSTAB 9, 044204 (2006), erratum PRSTAB 10, 129901 (2007), computed by
   FFT on the doubled grid;
3. differentiates the potential on the grid (central differences, one-sided at the
   edges) and gathers the field back to the particles with the same trilinear weights.

The IGF replaces ``1/r`` by its integral over a grid cell,
``G(d) = integral over the cell centred at d of 1/|r| d^3r`` [m^2], so that the
potential of the node charges ``Q_j`` is
``phi_i = sum_j Q_j G(r_i - r_j) / (4 pi eps0 V)`` (``V`` the cell volume); ``G`` is
evaluated from the antiderivative

``F(x, y, z) = -z^2/2 atan(xy/(zr)) - y^2/2 atan(xz/(yr)) - x^2/2 atan(yz/(xr))
+ yz ln(x+r) + xz ln(y+r) + xy ln(z+r)``, ``r = |(x, y, z)|``,

as the alternating sum over the eight corners of the cell. The corners sit at half
cell sizes, so ``F`` is never evaluated where one of its terms is singular, and the
Green's function is differentiable with respect to the cell sizes (the grid that
follows the beam).

The kick (:func:`track_space_charge`) over an effective length ``L`` follows from the
Lorentz force in the laboratory: the magnetic field of the moving bunch cancels the
transverse electric field up to ``1/gamma0^2``, so with the rest-frame field ``E'``
[V/m], ``beta0``, ``gamma0`` and ``p0c`` [eV] of the reference particle and the charge
number ``q`` of the species,

``Delta px = q E'_x L / (beta0 gamma0 p0c)``, ``Delta py = q E'_y L / (beta0 gamma0 p0c)``,
``Delta pz = q E'_z L / (beta0 p0c)``,

and ``z`` is rescaled by the particle's new over old velocity (the kick acts at fixed
time). For a bunch of fixed laboratory charge density the rest-frame field falls as
``1/gamma0``, so the transverse kick falls as ``1/(beta0^2 gamma0^3)``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import array_api_compat

from beamtrack.backends import backend_of
from beamtrack.tracking.errors import ParameterError
from beamtrack.tracking.kinematics import beta as velocity
from beamtrack.tracking.parameters import as_parameter
from beamtrack.tracking.particles import Particles
from beamtrack.tracking.species import ELEMENTARY_CHARGE, VACUUM_PERMITTIVITY

#: Default half-width of the grid that follows the beam, in RMS sizes of each plane.
DEFAULT_GRID_SIGMAS = 4.0


def bunch_charge(particles: Particles) -> Any:
    """Total charge of the alive particles [C], shape ``(*batch)``.

    ``sum(weight over alive) * charge * e``; differentiable with respect to the
    weights.

    Raises
    ------
    ParameterError
        If the particles' ``charge`` is unknown (``None``).
    """
    q = _species_charge(particles, "bunch_charge")
    xp = particles.xp
    w = particles.weight * xp.astype(particles.alive, particles.dtype)
    return xp.sum(w, axis=-1) * (q * ELEMENTARY_CHARGE)


def _species_charge(particles: Particles, where: str) -> float:
    if particles.charge is None:
        raise ParameterError(
            "parameter 'charge' of the particles is unknown (None); space charge needs "
            "the species' charge number: build them with charge=... (e.g. -1 for "
            "electrons) or total_charge=... in the beam generators", element=where)
    return particles.charge


def _triple(value: Any, name: str, where: str) -> tuple[Any, Any, Any]:
    if isinstance(value, (tuple, list)):
        if len(value) != 3:
            raise ParameterError(f"parameter '{name}' needs three values (x, y, z), got "
                                 f"{value!r}", element=where)
        return tuple(value)  # type: ignore[return-value]
    return (value, value, value)


def _check_shape(grid_shape: Sequence[int], where: str) -> tuple[int, int, int]:
    shape = _triple(grid_shape, "grid_shape", where)
    for n in shape:
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 2:
            raise ParameterError(f"parameter 'grid_shape' must be three integers >= 2, "
                                 f"got {grid_shape!r}", element=where)
    return tuple(int(n) for n in shape)  # type: ignore[return-value]


def _antiderivative(xp: Any, x: Any, y: Any, z: Any) -> Any:
    """``F`` of the module docstring (all arguments nonzero), broadcasting."""
    r = xp.sqrt(x * x + y * y + z * z)
    return (-0.5 * z * z * xp.atan(x * y / (z * r))
            - 0.5 * y * y * xp.atan(x * z / (y * r))
            - 0.5 * x * x * xp.atan(y * z / (x * r))
            + y * z * xp.log(x + r) + x * z * xp.log(y + r) + x * y * xp.log(z + r))


def _corners(xp: Any, n: int, h: Any, like: Any) -> Any:
    """Cell-corner coordinates ``(k - 1/2) h`` for ``k = 0..n+1``, shape
    ``(*batch, n+2)`` (``h`` has shape ``(*batch)``): the cells at offsets
    ``0..n``."""
    k = xp.arange(n + 2, dtype=like.dtype, device=array_api_compat.device(like))
    return (k - 0.5) * h[..., None]


def _mirror(xp: Any, g: Any, axis: int) -> Any:
    """Offsets ``0..n`` along ``axis`` to the doubled grid in FFT order:
    ``g(0), ..., g(n), g(n-1), ..., g(1)`` (the Green's function is even)."""
    n = g.shape[axis] - 1
    index = [slice(None)] * g.ndim
    index[axis] = slice(1, n)
    return xp.concat([g, xp.flip(g[tuple(index)], axis=axis)], axis=axis)


def integrated_green_function(xp: Any, shape: tuple[int, int, int], h: Sequence[Any],
                              like: Any) -> Any:
    """The integrated Green's function on the doubled grid, in FFT order.

    Parameters
    ----------
    xp
        Array namespace.
    shape
        Grid nodes per axis ``(nx, ny, nz)``.
    h
        Cell sizes ``(hx, hy, hz)`` [m], arrays of shape ``(*batch)``.
    like
        An array whose dtype and device the result takes.

    Returns
    -------
    array
        ``integral over the cell centred at (i hx, j hy, k hz) of 1/|r| d^3r`` [m^2],
        shape ``(*batch, 2nx, 2ny, 2nz)``; offsets ``-n..n-1`` stored at
        ``offset mod 2n`` (Hockney's doubled grid). Evaluated for offsets ``0..n`` and
        mirrored (the function is even in each coordinate).
    """
    nx, ny, nz = shape
    cx = _corners(xp, nx, h[0], like)[..., :, None, None]
    cy = _corners(xp, ny, h[1], like)[..., None, :, None]
    cz = _corners(xp, nz, h[2], like)[..., None, None, :]
    f = _antiderivative(xp, cx, cy, cz)
    g = f[..., 1:, :, :] - f[..., :-1, :, :]
    g = g[..., :, 1:, :] - g[..., :, :-1, :]
    g = g[..., :, :, 1:] - g[..., :, :, :-1]
    for axis in (-3, -2, -1):
        g = _mirror(xp, g, axis)
    return g


def _gradient(xp: Any, phi: Any, h: Any, axis: int) -> Any:
    """``d phi / d axis`` by central differences, one-sided at the two edges."""
    n = phi.shape[axis]

    def part(start: int, stop: int) -> Any:
        index = [slice(None)] * phi.ndim
        index[axis] = slice(start, stop)
        return phi[tuple(index)]

    inner = (part(2, n) - part(0, n - 2)) * 0.5
    first = part(1, 2) - part(0, 1)
    last = part(n - 1, n) - part(n - 2, n - 1)
    return xp.concat([first, inner, last], axis=axis) / h


def _batch_mean(xp: Any, values: Any, w: Any, total: Any) -> Any:
    return xp.sum(values * w, axis=-1) / total


def space_charge_field(
    particles: Particles,
    grid_shape: Sequence[int] = (32, 32, 32),
    grid_extent: Any = None,
    grid_sigmas: Any = DEFAULT_GRID_SIGMAS,
) -> Any:
    """Electric field of the bunch in its rest frame, at each particle.

    Parameters
    ----------
    particles
        The bunch (any backend, batch dimensions allowed); only alive particles carry
        charge. Needs ``particles.charge``; macro-particles stand for
        ``particles.weight`` particles each.
    grid_shape
        Nodes of the grid per axis ``(nx, ny, nz)`` (Python integers >= 2; fixed, so
        that compiled code keeps its shapes).
    grid_extent
        Fixed half-widths of the grid ``(ax, ay, az)`` [m] in the laboratory frame
        (``az`` in ``z``): a number or three entries, each a number, an array of shape
        ``(*batch)`` or ``None``; ``None`` (default): that plane follows the beam,
        ``grid_sigmas`` RMS sizes on each side of the centroid. The grid is centred on
        the charge centroid either way; particles outside it neither deposit charge
        nor feel a field.
    grid_sigmas
        Half-widths of the following grid in RMS sizes (a number or three).

    Returns
    -------
    array
        ``(E'_x, E'_y, E'_z)`` [V/m] in the rest frame of the reference particle, shape
        ``(*batch, 3, n)`` (zero for particles outside the grid).

    Raises
    ------
    ParameterError
        If the particles' charge is unknown, or a grid parameter is invalid.
    """
    where = "space_charge_field"
    shape = _check_shape(grid_shape, where)
    q = _species_charge(particles, where)
    xp = particles.xp
    dtype, device = particles.dtype, particles.device
    coords = particles.coords
    batch = tuple(coords.shape[:-2])
    n = int(coords.shape[-1])
    p0c, mc2 = particles.p0c, particles.mc2
    gamma0 = xp.sqrt(p0c * p0c + mc2 * mc2) / mc2
    gamma0 = xp.broadcast_to(gamma0, batch) if tuple(gamma0.shape) != batch else gamma0
    # Rest-frame positions, (*batch, n) each.
    pos = [coords[..., 0, :], coords[..., 2, :], coords[..., 4, :] * gamma0[..., None]]
    alive = xp.astype(particles.alive, dtype)
    w = particles.weight * alive
    total = xp.sum(w, axis=-1)
    safe_total = xp.where(total > 0, total, xp.ones_like(total))
    centre = [_batch_mean(xp, u, w, safe_total) for u in pos]
    sigmas = _triple(grid_sigmas, "grid_sigmas", where)
    extents = _triple(grid_extent, "grid_extent", where)
    half = []
    for i, (u, c, k, a) in enumerate(zip(pos, centre, sigmas, extents)):
        if a is None:  # follow the beam
            var = _batch_mean(xp, (u - c[..., None]) ** 2, w, safe_total)
            std = xp.sqrt(xp.where(var > 0, var, xp.ones_like(var)))
            half.append(xp.where(var > 0, k * std, xp.ones_like(var) * 1e-12))
            continue
        if not hasattr(a, "shape"):
            a = xp.asarray(float(a), dtype=dtype, device=device)
        a = xp.broadcast_to(a, batch) if tuple(a.shape) != batch else a
        half.append(a * gamma0 if i == 2 else a)
    h = [2.0 * a / (m - 1) for a, m in zip(half, shape)]
    lower = [c - a for c, a in zip(centre, half)]

    # Cloud-in-cell: cell index and fractional position along each axis.
    index, frac, inside = [], [], None
    for u, lo, step, m in zip(pos, lower, h, shape):
        t = (u - lo[..., None]) / step[..., None]
        ok = (t >= 0.0) & (t <= m - 1.0)
        t = xp.where(ok, t, xp.zeros_like(t))
        i = xp.clip(xp.floor(t), 0.0, m - 2.0)
        index.append(xp.astype(i, xp.int64))
        frac.append(t - i)
        inside = ok if inside is None else inside & ok
    w = w * xp.astype(inside, dtype)
    nx, ny, nz = shape
    cells = nx * ny * nz
    nbatch = math.prod(batch)
    offset = xp.reshape(xp.arange(nbatch, dtype=xp.int64, device=device) * cells,
                        batch + (1,))
    base = (index[0] * ny + index[1]) * nz + index[2] + offset
    # The eight corners by broadcasting: weights (2, 2, 2, *batch, n) -> (8, *batch, n).
    ones = (1,) * (len(batch) + 1)

    def pair(f: Any, axis: int) -> Any:
        lead = [1, 1, 1]
        lead[axis] = 2
        return xp.reshape(xp.stack([1.0 - f, f], axis=0), tuple(lead) + f.shape)

    weights = xp.reshape(pair(frac[0], 0) * pair(frac[1], 1) * pair(frac[2], 2),
                         (8,) + batch + (n,))
    corners = [(a * ny + b) * nz + c for a in (0, 1) for b in (0, 1) for c in (0, 1)]
    corner_offset = xp.reshape(xp.asarray(corners, dtype=xp.int64, device=device),
                               (8,) + ones)
    flat_index = xp.reshape(base[None, ...] + corner_offset, (-1,))
    backend = backend_of(coords)
    zeros = xp.zeros((nbatch * cells,), dtype=dtype, device=device)
    node_weight = backend.scatter_add(zeros, flat_index, xp.reshape(weights * w, (-1,)))
    # Node charges [C] and the potential [V].
    node_charge = xp.reshape(node_weight, batch + shape) * (q * ELEMENTARY_CHARGE)
    green = integrated_green_function(xp, shape, h, coords)
    doubled = (2 * nx, 2 * ny, 2 * nz)
    axes = (-3, -2, -1)
    spectrum = xp.fft.rfftn(node_charge, s=doubled, axes=axes) * xp.fft.rfftn(green, axes=axes)
    volume = h[0] * h[1] * h[2]
    scale = 1.0 / (4.0 * math.pi * VACUUM_PERMITTIVITY * volume)
    phi = xp.fft.irfftn(spectrum, s=doubled, axes=axes)[..., :nx, :ny, :nz]
    phi = phi * scale[..., None, None, None]
    field = xp.stack([-_gradient(xp, phi, step[..., None, None, None], axis)
                      for step, axis in zip(h, axes)], axis=-4)  # (*batch, 3, nx, ny, nz)
    # Gather with the same weights.
    moved = xp.moveaxis(field, -4, 0) if batch else field
    flat_field = xp.reshape(moved, (3, nbatch * cells))
    picked = xp.take(flat_field, flat_index, axis=1)
    picked = xp.reshape(picked, (3, 8) + batch + (n,))
    at_particles = xp.sum(picked * weights[None, ...], axis=1)  # (3, *batch, n)
    at_particles = at_particles * xp.astype(inside, dtype)
    return xp.moveaxis(at_particles, 0, -2) if batch else at_particles


def track_space_charge(
    particles: Particles,
    *,
    length: Any,
    grid_shape: Sequence[int] = (32, 32, 32),
    grid_extent_x: Any = None,
    grid_extent_y: Any = None,
    grid_extent_z: Any = None,
    grid_sigmas: Any = DEFAULT_GRID_SIGMAS,
    method: str = "bmad",
) -> Particles:
    """Apply the space-charge kick of an effective length ``length``.

    A kick of zero physical length (``s`` does not advance): with the rest-frame field
    ``E'`` of :func:`space_charge_field`, ``Delta px = q E'_x L / (beta0 gamma0 p0c)``,
    ``Delta py = q E'_y L / (beta0 gamma0 p0c)``, ``Delta pz = q E'_z L / (beta0 p0c)``
    (``q`` the charge number, ``L = length`` [m], ``p0c`` [eV]); ``z`` is scaled by the
    ratio of new to old velocity (the kick acts at fixed time). Lost particles keep
    their coordinates. The same kick under every tracking method.

    Parameters
    ----------
    particles
        The bunch; needs ``particles.charge``.
    length
        Effective length [m] of the kick (the path length it stands for): a number or
        an array of shape ``(*batch)``.
    grid_shape
        Grid nodes per axis, as in :func:`space_charge_field`.
    grid_extent_x, grid_extent_y, grid_extent_z
        Fixed half-widths of the grid [m] per plane (``z`` in the laboratory frame);
        ``None``: that plane follows the beam (``grid_sigmas`` RMS sizes).
    grid_sigmas
        Half-width of the following planes in RMS sizes.
    method
        Tracking method of the line (accepted for every method; it does not change
        the kick).

    Returns
    -------
    Particles
        The kicked particles.
    """
    where = "space_charge"
    c = particles.coords
    length = as_parameter(length, c, "length", element=where)
    extent = tuple(None if v is None else as_parameter(v, c, k, element=where)
                   for k, v in (("grid_extent_x", grid_extent_x),
                                ("grid_extent_y", grid_extent_y),
                                ("grid_extent_z", grid_extent_z)))
    sigmas = as_parameter(grid_sigmas, c, "grid_sigmas", element=where)
    xp = particles.xp
    field = space_charge_field(particles, grid_shape, extent, sigmas)
    q = particles.charge
    p0c, mc2 = particles.p0c, particles.mc2
    energy0 = xp.sqrt(p0c * p0c + mc2 * mc2)
    beta0 = p0c / energy0
    factor = (q * length / (beta0 * p0c))[..., None]  # (*batch, 1)
    gamma0 = (energy0 / mc2)[..., None]
    x, px, y, py, z, pz = particles.unpack()
    new_px = px + factor / gamma0 * field[..., 0, :]
    new_py = py + factor / gamma0 * field[..., 1, :]
    new_pz = pz + factor * field[..., 2, :]
    new_z = z * (velocity(new_pz, p0c[..., None], mc2[..., None])
                 / velocity(pz, p0c[..., None], mc2[..., None]))
    alive = particles.alive
    six = [x, xp.where(alive, new_px, px), y, xp.where(alive, new_py, py),
           xp.where(alive, new_z, z), xp.where(alive, new_pz, pz)]
    six = xp.broadcast_arrays(*six)
    return Particles.from_fields(xp.stack(six, axis=-2), particles.s, p0c, mc2, alive,
                                 charge=q, weight=particles.explicit_weight)
