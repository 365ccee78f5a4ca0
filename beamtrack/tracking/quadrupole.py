"""Quadrupole: Bmad's "bmad_standard" body and its first-order map."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import array_api_compat

from beamtrack.tracking import frames
from beamtrack.tracking.frames import from_element_frame
from beamtrack.tracking.kinematics import inverse_gamma0_squared, low_energy_z_correction
from beamtrack.tracking.linear import matrix6, rotation_matrix
from beamtrack.tracking.losses import report_overflow
from beamtrack.tracking.parameters import is_number
from beamtrack.tracking.particles import Particles
from beamtrack.tracking.special import (
    HYPERBOLIC_LIMIT,
    cos_sinc,
    cos_sinc_pair,
    hyperbolic_in_range,
    sinc_derivative,
)
from beamtrack.tracking.stepping import (
    Body,
    Build,
    Six,
    check_num_steps,
    physical,
    prepare,
    track_element,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from beamtrack.tracking.frames import Misalignment


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
    return _plane(cos_sinc(k * length * length), k, length, rel_p)


def _plane(cs: tuple[Any, Any], k: Any, length: Any,
           rel_p: Any) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """:func:`quadrupole_plane` from ``cs = cos_sinc(k L^2)``."""
    cos_term, sinc_term = cs
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
    cs_x, cs_y = cos_sinc_pair(k * length * length)
    (ax, bx, cx, dx), (z1x, z2x, z3x) = _plane(cs_x, k, length, rel_p)
    (ay, by, cy, dy), (z1y, z2y, z3y) = _plane(cs_y, -k, length, rel_p)
    z = z + z1x * x * x + z2x * x * px + z3x * px * px + z1y * y * y + z2y * y * py + z3y * py * py
    x, px = ax * x + bx * px, cx * x + dx * px
    y, py = ay * y + by * py, cy * y + dy * py
    z = z + low_energy_z_correction(pz, p0c, mc2, length)
    return (x, px, y, py, z, pz)


def _plane_functions(k: Any, length: Any) -> tuple[Any, Any, Any, Any]:
    """``C, S`` of a plane with strength ``k`` and their derivatives ``dC/dk, dS/dk``."""
    u = k * length * length
    c, s = cos_sinc(u)
    return c, length * s, -0.5 * length * length * s, length**3 * sinc_derivative(u)


def quadrupole_map(
    length: Any,
    k1: Any,
    p0c: Any,
    mc2: Any,
    x_offset: Any = 0.0,
    y_offset: Any = 0.0,
    tilt: Any = 0.0,
) -> tuple[Any, Any]:
    """First-order map ``(R, c)`` of the "bmad" quadrupole about the reference orbit.

    ``R`` (shape ``(*batch, 6, 6)``) is the Jacobian of the "bmad" tracking map at the
    laboratory reference orbit (all coordinates zero) and ``c`` (shape ``(*batch, 6)``)
    the image of that orbit, so ``coords -> R @ coords + c`` is the exact first-order
    Taylor map. For an aligned quadrupole ``c = 0`` and the horizontal block is
    ``[[C, S], [-k1 S, C]]`` with ``C = cos(sqrt(k1) L)``, ``S = sin(sqrt(k1) L)/sqrt(k1)``
    (hyperbolic for ``k1 < 0``), the vertical block the same with ``-k1``, and
    ``R56 = L / gamma0^2``. An offset magnet puts the reference orbit off its axis, where
    the chromatic focusing ``K1/(1+pz)`` gives ``R16, R26, R36, R46`` and the path length
    gives ``R51..R54`` and a ``z`` shift; these are included, so the map stays the
    Jacobian of the "bmad" map (and symplectic).
    """
    xp = array_api_compat.array_namespace(k1)
    # Python-number defaults become arrays of k1's library (torch and the strict
    # namespace accept arrays only in their elementwise functions).
    x_offset, y_offset, tilt = (0.0 * k1 + v for v in (x_offset, y_offset, tilt))
    cx, sx, dcx, dsx = _plane_functions(k1, length)
    cy, sy, dcy, dsy = _plane_functions(-k1, length)
    ct, st = xp.cos(tilt), xp.sin(tilt)
    # Reference orbit in the element frame: the magnet axis is displaced by the offsets.
    x0 = -(ct * x_offset + st * y_offset)
    y0 = -(-st * x_offset + ct * y_offset)
    # Path-length coefficient c1 = -k (L - S C)/4 of each plane and its k-derivative.
    c1x = -k1 * (length - sx * cx) / 4.0
    c1y = k1 * (length - sy * cy) / 4.0
    dc1x = -(length - sx * cx) / 4.0 + k1 * (dsx * cx + sx * dcx) / 4.0
    dc1y = -(length - sy * cy) / 4.0 - k1 * (dsy * cy + sy * dcy) / 4.0
    # k_x = K1/(1+pz) and k_y = -K1/(1+pz): d k_x/d pz = -K1, d k_y/d pz = +K1.
    r56 = length * inverse_gamma0_squared(p0c, mc2)
    body = matrix6(
        {
            (0, 0): cx, (0, 1): sx, (1, 0): -k1 * sx, (1, 1): cx,
            (2, 2): cy, (2, 3): sy, (3, 2): k1 * sy, (3, 3): cy,
            (0, 5): -k1 * dcx * x0, (1, 5): k1 * k1 * dsx * x0,
            (2, 5): k1 * dcy * y0, (3, 5): k1 * k1 * dsy * y0,
            (4, 0): 2.0 * c1x * x0, (4, 1): k1 * sx * sx / 2.0 * x0,
            (4, 2): 2.0 * c1y * y0, (4, 3): -k1 * sy * sy / 2.0 * y0,
            (4, 5): r56 - k1 * dc1x * x0 * x0 + k1 * dc1y * y0 * y0,
        },
        k1 + length + x0 + y0,
    )
    zero = xp.zeros_like(x0)
    image = (cx * x0, -k1 * sx * x0, cy * y0, k1 * sy * y0,
             c1x * x0 * x0 + c1y * y0 * y0, zero)
    lab_image = from_element_frame(image, x_offset, y_offset, tilt)
    rot = rotation_matrix(tilt + zero)
    r = xp.matmul(xp.matrix_transpose(rot), xp.matmul(body, rot))
    return r, xp.stack(xp.broadcast_arrays(*lab_image), axis=-1)


#: Where the entries ``(C_x, C_y, S_x, S_y, k_x S_x, k_y S_y)`` of an aligned quadrupole
#: go in its 6x6 matrix (row-major index, sign): ``R11 = R22 = C_x``, ``R12 = S_x``,
#: ``R21 = -k_x S_x`` and the same for y with ``k_y = -K1``.
_ALIGNED_PLACES = (((0, 1.0), (7, 1.0)), ((14, 1.0), (21, 1.0)), ((1, 1.0),), ((15, 1.0),),
                   ((6, -1.0),), ((20, -1.0),))


def aligned_quadrupole_matrix(length: Any, k1: Any, p0c: Any, mc2: Any) -> Any:
    """First-order map of an aligned quadrupole in few array operations,
    shape ``(*batch, 6, 6)``.

    The closed form of :func:`quadrupole_map` without offsets or tilt (kept for speed:
    eager torch pays per operation, forward and backward): both planes' ``cos_sinc``
    in one evaluation, the entries placed by one product with a constant matrix, plus
    the identity of the longitudinal plane and ``R56 = L / gamma0^2``.

    Parameters
    ----------
    length
        Length [m], a number or an array.
    k1
        Normalised gradient [1/m^2], an array of shape ``(*batch)``.
    p0c, mc2
        Reference momentum and rest energy [eV], arrays.
    """
    if is_number(k1):
        k1 = array_api_compat.array_namespace(p0c).asarray(
            float(k1), dtype=p0c.dtype, device=array_api_compat.device(p0c))
    xp = array_api_compat.array_namespace(k1)
    dtype, device = k1.dtype, array_api_compat.device(k1)
    length_b = length if is_number(length) else length[..., None]
    k_planes = k1[..., None] * xp.asarray([1.0, -1.0], dtype=dtype, device=device)
    c, s = cos_sinc(k_planes * (length_b * length_b))
    big_s = s * length_b
    entries = xp.concat([c, big_s, k_planes * big_s], axis=-1)
    place = [[0.0] * 36 for _ in range(6)]
    for row, targets in zip(place, _ALIGNED_PLACES):
        for index, sign in targets:
            row[index] = sign
    placed = entries @ xp.asarray(place, dtype=dtype, device=device)
    body = xp.reshape(placed, tuple(placed.shape[:-1]) + (6, 6))
    r56 = length * inverse_gamma0_squared(p0c, mc2)
    longitudinal = [[0.0] * 6 for _ in range(6)]
    longitudinal[4][4] = longitudinal[5][5] = 1.0
    unit56 = [[0.0] * 6 for _ in range(6)]
    unit56[4][5] = 1.0
    return (body + xp.asarray(longitudinal, dtype=dtype, device=device)
            + r56[..., None, None] * xp.asarray(unit56, dtype=dtype, device=device))


def quadrupole_matrix(length: Any, k1: Any, p0c: Any, mc2: Any) -> Any:
    """First-order map of an aligned quadrupole, shape ``(*batch, 6, 6)``.

    See :func:`quadrupole_map`; for an aligned magnet the constant vector vanishes.
    """
    return aligned_quadrupole_matrix(length, k1, p0c, mc2)


def _quadrupole_body(num_steps: int) -> Build:
    """The "bmad" quadrupole as a :class:`~beamtrack.tracking.stepping.Body`:
    ``num_steps`` exact paraxial slices, each losing particles left unphysical."""

    def build(p: dict[str, Any], p0c: Any, mc2: Any) -> Body:
        step_length = p["length"] / num_steps

        def step(six: Six) -> tuple[Six, Any]:
            # Slices so strong that cosh overflows lose their particles (the capped
            # values they compute on keep gradients finite).
            new = quadrupole_body_step(six, p["k1"], step_length, p0c, mc2)
            in_range = hyperbolic_in_range(p["k1"] / (1.0 + six[5])
                                           * (step_length * step_length))
            report_overflow(in_range, six)
            return new, physical(new) & in_range

        return Body([step] * num_steps, offsets=frames.offsets(p))

    return build


def track_quadrupole(
    particles: Particles,
    *,
    length: Any,
    k1: Any,
    num_steps: int = 1,
    method: str = "bmad",
    **misalignment: Unpack[Misalignment],
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
        slice, so slicing only matters for loss checks.
    method
        ``"bmad"``: Bmad's "bmad_standard" quadrupole (paraxial body, chromatic
        focusing ``K1/(1+pz)``, path-length terms and the low-energy z correction).
        ``"linear"``: first-order map about the reference orbit (closed form,
        :func:`quadrupole_map`). ``"second_order"``: second-order Taylor map of the
        ``"bmad"`` model.
    **misalignment
        ``tilt`` [rad], ``x_offset``, ``y_offset`` [m] of the magnet
        (:class:`~beamtrack.tracking.frames.Misalignment`; 0 by default);
        ``tilt = pi/4`` makes a skew quadrupole.

    Returns
    -------
    Particles
        Outgoing particles, ``s`` advanced by ``length``. Every parameter may have
        batch shape ``(*batch)``, broadcast against particles of shape ``(*batch, n)``.
    """
    element = "quadrupole"
    num_steps = check_num_steps(num_steps, element)
    p = prepare(particles, element, method, numbers=frames.MISALIGNMENT_KEYS + ("length",),
                length=length, k1=k1, **frames.misalignment(misalignment, element))
    return track_element(
        particles, _quadrupole_body(num_steps), p, length=p["length"], method=method,
        linear=lambda: _linear_map(p, particles))


def _linear_map(p: dict[str, Any], particles: Particles) -> tuple[Any, Any]:
    """``(R, c)`` of the "linear" method: :func:`aligned_quadrupole_matrix` and no
    constant (``None``) when offsets and tilt are Python zeros, else
    :func:`quadrupole_map`."""
    if frames.offsets(p) is None:
        r, c = aligned_quadrupole_matrix(p["length"], p["k1"], particles.p0c,
                                         particles.mc2), None
    else:
        r, c = quadrupole_map(p["length"], p["k1"], particles.p0c, particles.mc2,
                              p["x_offset"], p["y_offset"], p["tilt"])
    if is_number(p["k1"]) and is_number(p["length"]):
        if abs(p["k1"]) * p["length"] ** 2 <= HYPERBOLIC_LIMIT:
            return r, c  # the common case: no array operation for the check
    # Beyond the cap of cos_sinc the map would be wrong: its particles are lost.
    return r, c, hyperbolic_in_range(p["k1"] * p["length"] * p["length"] + 0.0 * r[..., 0, 0])
