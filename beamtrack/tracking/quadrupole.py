"""Quadrupole: Bmad's "bmad_standard" body and its first-order map."""

from __future__ import annotations

from typing import Any

import array_api_compat

from beamtrack.tracking.frames import from_element_frame, to_element_frame
from beamtrack.tracking.kinematics import (
    inverse_gamma0_squared,
    low_energy_z_correction,
    unphysical_momentum,
)
from beamtrack.tracking.linear import apply_linear_map, matrix6, misaligned
from beamtrack.tracking.parameters import as_parameter, per_particle
from beamtrack.tracking.particles import Particles
from beamtrack.tracking.special import cos_sinc
from beamtrack.tracking.stepping import (
    Six,
    assemble,
    check_method,
    check_num_steps,
    freeze,
    safe,
)


def quadrupole_plane(k: Any, length: Any, rel_p: Any) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """Paraxial map of one plane of a quadrupole and its path-length coefficients.

    Parameters
    ----------
    k
        Focusing strength of this plane seen by the particle, ``K1 / (1+pz)`` [1/m^2]
        (positive focuses).
    length
        Length [m].
    rel_p
        ``1 + pz``.

    Returns
    -------
    (m11, m12, m21, m22), (c1, c2, c3)
        The 2x2 map of ``(x, px)`` (``px = P_x/P0``), and the coefficients of
        ``dz = c1 x0^2 + c2 x0 px0 + c3 px0^2 = -1/2 Integral (px/(1+pz))^2 ds``.
        Exact for either sign of ``k`` and at ``k = 0``.
    """
    cos_term, sinc_term = cos_sinc(k * length * length)
    s = length * sinc_term
    sc = s * cos_term
    matrix = (cos_term, s / rel_p, -k * s * rel_p, cos_term)
    z_coef = (
        -k * (length - sc) / 4.0,
        k * s * s / (2.0 * rel_p),
        -(length + sc) / (4.0 * rel_p * rel_p),
    )
    return matrix, z_coef


def quadrupole_body_step(six: Six, k1: Any, length: Any, p0c: Any, mc2: Any) -> Six:
    """One slice of Bmad's quadrupole body in the element frame (alive particles only).

    The path-length terms are added with the coordinates at the start of the slice,
    then the 2x2 maps act, then the low-energy z correction ``L (beta/beta0 - 1)``.
    """
    x, px, y, py, z, pz = six
    rel_p = 1.0 + pz
    k = k1 / rel_p
    (ax, bx, cx, dx), (z1x, z2x, z3x) = quadrupole_plane(k, length, rel_p)
    (ay, by, cy, dy), (z1y, z2y, z3y) = quadrupole_plane(-k, length, rel_p)
    z = z + z1x * x * x + z2x * x * px + z3x * px * px + z1y * y * y + z2y * y * py + z3y * py * py
    x, px = ax * x + bx * px, cx * x + dx * px
    y, py = ay * y + by * py, cy * y + dy * py
    z = z + low_energy_z_correction(pz, p0c, mc2, length)
    return (x, px, y, py, z, pz)


def quadrupole_matrix(length: Any, k1: Any, p0c: Any, mc2: Any) -> Any:
    """First-order map of an aligned quadrupole body, shape ``(*batch, 6, 6)``.

    The horizontal block is ``[[C, S], [-k1 S, C]]`` with ``C = cos(sqrt(k1) L)`` and
    ``S = sin(sqrt(k1) L)/sqrt(k1)`` (hyperbolic for ``k1 < 0``), the vertical block
    the same with ``-k1``, and ``R56 = L / gamma0^2``.
    """
    cx, sx = cos_sinc(k1 * length * length)
    cy, sy = cos_sinc(-k1 * length * length)
    sx, sy = length * sx, length * sy
    return matrix6(
        {
            (0, 0): cx, (0, 1): sx, (1, 0): -k1 * sx, (1, 1): cx,
            (2, 2): cy, (2, 3): sy, (3, 2): k1 * sy, (3, 3): cy,
            (4, 5): length * inverse_gamma0_squared(p0c, mc2),
        },
        k1,
    )


def track_quadrupole(
    particles: Particles,
    *,
    length: Any,
    k1: Any,
    num_steps: int = 1,
    tilt: Any = 0.0,
    x_offset: Any = 0.0,
    y_offset: Any = 0.0,
    method: str = "bmad",
) -> Particles:
    """Track through a quadrupole.

    Parameters
    ----------
    particles
        Incoming particles (any backend).
    length
        Length [m].
    k1
        Normalised gradient ``K1 = (dB_y/dx) / (B rho)`` [1/m^2]; positive focuses
        horizontally (for the reference species, as in Bmad). Any sign, and zero.
    num_steps
        Number of body slices (``"bmad"`` method). The paraxial body is exact per
        slice, so slicing only matters for loss checks and later for multipoles.
    tilt
        Rotation about the s axis [rad]; ``pi/4`` makes a skew quadrupole.
    x_offset, y_offset
        Transverse offsets of the magnet [m].
    method
        ``"bmad"``: Bmad's "bmad_standard" quadrupole (paraxial body, chromatic
        focusing ``K1/(1+pz)``, path-length terms and the low-energy z correction).
        ``"linear"``: first-order map about the reference orbit.

    Returns
    -------
    Particles
        Outgoing particles, ``s`` advanced by ``length``. Every parameter may have
        batch shape ``(*batch)``, broadcast against particles of shape ``(*batch, n)``.
    """
    check_method(method, "quadrupole")
    num_steps = check_num_steps(num_steps, "quadrupole")
    c = particles.coords
    length = as_parameter(length, c, "length")
    k1 = as_parameter(k1, c, "k1")
    tilt = as_parameter(tilt, c, "tilt")
    x_offset = as_parameter(x_offset, c, "x_offset")
    y_offset = as_parameter(y_offset, c, "y_offset")
    if method == "linear":
        body = quadrupole_matrix(length, k1, particles.p0c, particles.mc2)
        r, const = misaligned(body, x_offset, y_offset, tilt)
        return apply_linear_map(particles, r, const, length)

    xp = array_api_compat.array_namespace(c)
    p0c, mc2 = per_particle(particles.p0c), per_particle(particles.mc2)
    k1_n, step = per_particle(k1), per_particle(length / num_steps)
    offsets = (per_particle(x_offset), per_particle(y_offset), per_particle(tilt))
    lab = particles.unpack()
    alive = particles.alive & ~unphysical_momentum(lab[1], lab[3], lab[5])
    body = to_element_frame(lab, *offsets)
    for _ in range(num_steps):
        new = quadrupole_body_step(safe(xp, alive, body), k1_n, step, p0c, mc2)
        alive = alive & ~unphysical_momentum(new[1], new[3], new[5])
        body = freeze(xp, alive, new, body)
    # Particles lost before this element keep their coordinates exactly; those lost
    # inside keep the laboratory coordinates of their point of loss.
    out = freeze(xp, particles.alive, from_element_frame(body, *offsets), lab)
    return assemble(particles, out, alive, length)
