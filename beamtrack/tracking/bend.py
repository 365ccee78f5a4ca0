"""Bends: Bmad's "bmad_standard" sector bend (``sbend``, ``rbend``) and its first-order map.

Model (Bmad ``track_a_bend``, ``bend_edge_kick``; Bmad manual, "Bends: Rbend and Sbend",
"Fringe Fields"), for particles of the reference species (the field bends them exactly
as it bends the reference particle; Bmad's ``dg``/``db_field`` is not modelled):

* **Body, ``k1 = 0``: exact.** In the curvilinear frame of the reference arc
  (curvature ``g = angle / length``) a particle moves on a circle of radius
  ``pt / g`` (``pt = sqrt((1+pz)^2 - py^2)``) and drifts uniformly in ``y``. Bmad's
  "general case" solution is used, rewritten so that it has no cancellation and no
  division by ``g``: with ``ps = sqrt((1+pz)^2 - px^2 - py^2)`` and ``theta = g L``,

  - ``px2 = px cos(theta) + (ps - 1 - g x) sin(theta)``,
  - ``x2 = x cos(theta) + px L sinc(theta) + D (px + px2) / (ps + ps2)
    + (ps - 1) g L^2 cosc(theta)`` with ``D = (px - px2) / g
    = px g L^2 cosc(theta) + (g x - ps + 1) L sinc(theta)``,
    ``ps2 = sqrt(pt^2 - px2^2)`` and ``cosc(t) = (1 - cos t) / t^2``,
  - the particle turns by ``theta + delta``, ``delta = asin(px/pt) - asin(px2/pt)``,
    ``sin(delta) / g = D (px (px + px2) / (ps + ps2) + ps) / pt^2``,
  - ``y2 = y + py (L + delta/g)``,
    ``z2 = z + L (beta/beta0 - 1) - pz L - (1+pz) delta/g`` (the path length is
    ``(1+pz)(L + delta/g)``; the low-energy ``z`` correction is part of it).

  A particle on the design orbit stays exactly on it; ``angle -> 0`` gives the exact
  drift continuously (all removable singularities are in
  :mod:`~beamtrack.tracking.special`). Particles that do not reach the exit face
  (``px2^2 >= pt^2``) are lost; so are particles whose direction deviates from the
  design direction change by 90 degrees or more (``cos(delta) <= 0``, far outside any
  beam; Bmad tracks those).
* **Body, ``k1 != 0``: Bmad's ``sbend_body_with_k1_map``.** The paraxial map of the
  second-order Hamiltonian ``-(1+g x)(1+pz) + (px^2+py^2)/(2(1+pz)) + g x + (g^2+k1)
  x^2/2 - k1 y^2/2``: linear in ``x, px, y, py`` with the chromatic strengths
  ``(k1 + g^2)/(1+pz)`` and ``-k1/(1+pz)`` and the off-momentum orbit
  ``g pz / (k1 + g^2)`` (in closed forms that stay finite where ``k1 + g^2 = 0``),
  ``z`` from the paraxial path length ``-Integral (g x + x'^2/2 + y'^2/2) ds`` plus
  the low-energy correction ``L (beta/beta0 - 1)``. It is the exact flow of that
  Hamiltonian, so symplectic, with the full ``1/(1+pz)`` dependence of the focusing and
  dispersion; against the exact equations of motion it is exact to first order and
  errs at second order in the amplitudes (``pz`` included), from the dropped cubic
  term ``g x (px^2+py^2)/(2(1+pz))`` (a few 1e-6 at millimetre and per-cent
  amplitudes in a 0.6 m, 0.3 rad bend).
  As in Bmad, the exact body is used when ``k1`` is exactly zero; gradients with
  respect to ``k1`` there are those of the ``k1 != 0`` map (its one-sided limit).
  With ``angle = 0`` it is Bmad's quadrupole.
* **Edges** (in the body frame, before and after the body), ``fringe_type``:
  ``"none"``; ``"linear_edge"`` (Bmad ``linear_bend_edge_kick``, MAD's edge focusing:
  ``px += g tan(e) x``, ``py -= g tan(e - 2 g F (1 + sin^2 e)/cos e) y``,
  ``F = fint hgap``); ``"hard_edge"`` (Bmad ``hard_edge_only``: Hwang and Lee's
  second-order hard-edge map with the ``k1`` terms, "Bend Second Order Fringe Map" of
  the Bmad manual, without the ``fint hgap`` term); ``"basic_bend"`` (Bmad's default
  for bends: the same map with the ``fint hgap`` term); ``"soft_edge"`` (Bmad
  ``soft_edge_only``: SAD's soft-edge map only, no edge-angle focusing, nothing when
  ``fint hgap = 0``; its ``y^3`` kick grows like ``1/(fint hgap)`` as the field
  integral shrinks, as the Bmad manual explains); ``"sad_full"`` (SAD's soft edge plus
  the hard-edge map). ``"full"`` (PTC's exact wedge and fringe) raises
  ``NotImplementedError``. The second-order hard-edge map is a truncated Lie map, as in
  Bmad: symplectic to second order in the amplitudes (``hard_edge``, ``sad_full``),
  and with the ``fint hgap`` term (``basic_bend``) to first order only, with an error
  proportional to ``fint hgap``. ``linear_edge`` and ``soft_edge`` are symplectic.
* **Frames.** ``ref_tilt`` rotates the bend and the reference orbit about the
  entrance ``s`` axis (a coordinate rotation before the entrance edge and its inverse
  after the exit edge; MAD's ``tilt`` of bends). Misalignments follow Bmad's geometry
  for bends: ``x_offset`` and ``y_offset`` displace the magnet in the frame at the
  middle of the reference arc, and ``tilt`` is Bmad's ``roll`` of bends: a rotation of
  the magnet about its chord, which leaves the reference orbit in place (Bmad bends
  have no ``tilt``). Particles are carried into the displaced, rolled body frame and
  back by exact 3D rotations and drifts (:func:`~beamtrack.tracking.frames.change_frame`).

The ``"linear"`` method is the exact first-order Taylor map of all of this about the
laboratory reference orbit (edges, ``ref_tilt`` and misalignments included), computed
by running the ``"bmad"`` map on first-order jets (:mod:`~beamtrack.tracking.jets`).

An ``rbend`` is converted to the equivalent ``sbend`` as Bmad does: its ``length`` is
the chord ``Lc`` (MAD's convention), the arc is ``Lc / sinc(angle/2)`` and
``angle/2`` is added to ``e1`` and ``e2`` (so ``e1 = e2 = 0`` is a rectangular
magnet).
"""

from __future__ import annotations

import numbers
from typing import Any

import array_api_compat

from beamtrack.tracking import jets
from beamtrack.tracking.errors import ParameterError
from beamtrack.tracking.frames import change_frame, from_element_frame, to_element_frame
from beamtrack.tracking.kinematics import (
    beta_ratio_minus_one,
    low_energy_z_correction,
    unphysical_momentum,
)
from beamtrack.tracking.linear import apply_linear_map
from beamtrack.tracking.parameters import as_parameter, per_particle
from beamtrack.tracking.particles import Particles
from beamtrack.tracking.quadrupole import quadrupole_plane
from beamtrack.tracking.special import (
    atanc,
    atanc_derivative,
    cos_sinc,
    cos_sinc_ratios,
    one_minus_cos_ratio,
    sqrt1,
)
from beamtrack.tracking.stepping import (
    Six,
    assemble,
    check_method,
    check_num_steps,
    freeze,
    safe,
)

#: Edge models of bends (Bmad's ``fringe_type`` values; ``hard_edge`` is Bmad's
#: ``hard_edge_only`` and ``soft_edge`` its ``soft_edge_only``).
FRINGE_TYPES = ("none", "linear_edge", "hard_edge", "soft_edge", "basic_bend", "sad_full")
#: Bmad edge models that beamtrack does not implement.
UNSUPPORTED_FRINGE_TYPES = ("full",)

_HWANG = ("hard_edge", "basic_bend", "sad_full")
_SOFT = ("soft_edge", "sad_full")


def check_fringe_type(fringe_type: Any, element: str = "sbend") -> str:
    """Validate a bend's ``fringe_type``.

    Raises
    ------
    NotImplementedError
        For Bmad's ``"full"`` (PTC's exact wedge and fringe maps), which beamtrack does
        not implement.
    ParameterError
        For anything else that is not one of :data:`FRINGE_TYPES`.
    """
    if fringe_type in UNSUPPORTED_FRINGE_TYPES:
        raise NotImplementedError(
            f"{element}: fringe_type {fringe_type!r} (Bmad's exact PTC wedge and fringe "
            f"maps) is not implemented; use one of {', '.join(FRINGE_TYPES)}"
        )
    if not isinstance(fringe_type, str) or fringe_type not in FRINGE_TYPES:
        raise ParameterError(
            f"{element}: parameter 'fringe_type' must be one of {', '.join(FRINGE_TYPES)}, "
            f"got {fringe_type!r}"
        )
    return fringe_type


def _is_zero(value: Any) -> bool:
    """True for a Python number equal to zero (a static fact, known without arrays)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and value == 0


def check_bend_geometry(length: Any, angle: Any, element: str = "sbend") -> None:
    """Check Python-number ``length`` and ``angle``: ``length >= 0``, and ``> 0`` when the
    angle is nonzero (arrays are not inspected: their values may be traced)."""
    if isinstance(length, numbers.Real) and not isinstance(length, bool):
        if length < 0:
            raise ParameterError(f"{element}: parameter 'length' must be >= 0, got {length!r}")
        if length == 0 and not _is_zero(angle):
            raise ParameterError(
                f"{element}: parameter 'length' must be > 0 for a bend with a nonzero "
                f"angle (thin bends are not supported), got length={length!r}, "
                f"angle={angle!r}"
            )


# -- small 3x3 algebra on nested tuples of arrays (rows) -------------------------------


def _mat_mul(a: Any, b: Any) -> Any:
    return tuple(
        tuple(a[i][0] * b[0][j] + a[i][1] * b[1][j] + a[i][2] * b[2][j] for j in range(3))
        for i in range(3)
    )


def _mat_t(a: Any) -> Any:
    return tuple(tuple(a[j][i] for j in range(3)) for i in range(3))


def _mat_vec(a: Any, v: Any) -> Any:
    return tuple(a[i][0] * v[0] + a[i][1] * v[1] + a[i][2] * v[2] for i in range(3))


def _misalignment_frames(
    angle: Any, length: Any, ref_tilt: Any, tilt: Any, x_offset: Any, y_offset: Any
) -> dict[str, Any]:
    """Rigid transforms between the (ref_tilt-rotated) laboratory frames and the body.

    Bmad's ``offset_particle`` for bends: the misalignment ``(W, L)`` acts in the frame
    at the middle of the reference arc, ``W`` the roll about the chord and ``L`` the
    offsets plus the shift that keeps the chord in place. With ``S(d)`` the frame
    shift by ``d`` along the arc (rotation ``R_d``, displacement ``t_d``) and
    ``h = length/2``, the body entrance frame seen from the laboratory entrance frame is
    ``S(h) (W, L) S(-h)`` and the laboratory exit frame seen from the body exit frame
    the inverse of ``S(-h) (W, L) S(h)``. The roll parts cancel in the translations
    (the chord ends stay fixed), which leaves
    ``rotation_in = I + R_h (W - I) R_h^T``, ``origin_in = R_h o``,
    ``rotation_out = I + R_h^T (W - I) R_h``, ``origin_out = R_h^T o``, with the offset
    vector ``o = (x_offset', y_offset', 0)`` in the ref_tilt-rotated axes.
    """
    xp = array_api_compat.array_namespace(angle)
    zero = xp.zeros_like(angle + length + ref_tilt + tilt + x_offset + y_offset)
    one = zero + 1.0
    half = 0.5 * angle
    ch, sh = xp.cos(half) + zero, xp.sin(half) + zero
    # R_h: columns are the axes of the frame at the arc middle (bending towards -x).
    r_h = ((ch, zero, -sh), (zero, one, zero), (sh, zero, ch))
    sr = xp.sin(tilt)
    sin_half = xp.sin(0.5 * tilt)
    w_minus_i = (
        (-2.0 * sin_half * sin_half + zero, -sr + zero, zero),
        (sr + zero, -2.0 * sin_half * sin_half + zero, zero),
        (zero, zero, zero),
    )
    ct, st = xp.cos(ref_tilt), xp.sin(ref_tilt)
    offset = (ct * x_offset + st * y_offset + zero, -st * x_offset + ct * y_offset + zero, zero)
    eye = ((one, zero, zero), (zero, one, zero), (zero, zero, one))

    def plus_eye(m: Any) -> Any:
        return tuple(tuple(eye[i][j] + m[i][j] for j in range(3)) for i in range(3))

    r_h_t = _mat_t(r_h)
    rot_in = plus_eye(_mat_mul(r_h, _mat_mul(w_minus_i, r_h_t)))
    origin_in = _mat_vec(r_h, offset)
    rot_out_fwd = plus_eye(_mat_mul(r_h_t, _mat_mul(w_minus_i, r_h)))
    origin_out_fwd = _mat_vec(r_h_t, offset)
    # Laboratory exit frame seen from the body exit frame: the inverse transform.
    rot_out = _mat_t(rot_out_fwd)
    origin_out = tuple(-v for v in _mat_vec(rot_out, origin_out_fwd))
    return {"rot_in": rot_in, "origin_in": origin_in, "rot_out": rot_out,
            "origin_out": origin_out}


def _edge_coefficients(
    fringe_type: str, g: Any, k1: Any, e: Any, fint: Any, hgap: Any, entrance: bool
) -> dict[str, Any]:
    """Constants of one edge kick (parameters only, shape ``(*batch)``)."""
    xp = array_api_compat.array_namespace(g)
    out: dict[str, Any] = {}
    f_h = fint * hgap
    cos_e, sin_e = xp.cos(e), xp.sin(e)
    tan_e = sin_e / cos_e
    if fringe_type == "linear_edge":
        out["hx"] = g * tan_e
        out["hy"] = -g * xp.tan(e - 2.0 * f_h * g * (1.0 + sin_e * sin_e) / cos_e)
    if fringe_type in _HWANG:
        sec_e = 1.0 / cos_e
        f_hard = f_h if fringe_type == "basic_bend" else 0.0 * f_h
        out["g"] = g
        out["gt"] = g * tan_e
        out["gt2"] = g * tan_e * tan_e
        out["gs2"] = g * sec_e * sec_e
        out["k1t"] = k1 * tan_e
        out["ggt12"] = g * g * tan_e * (1.0 + 2.0 * tan_e * tan_e)
        out["fg"] = 2.0 * f_hard * g * g * sec_e**3 * (1.0 + sin_e * sin_e)
    if fringe_type in _SOFT:
        f1 = 12.0 * f_h
        on = f1 != 0.0
        f1_safe = xp.where(on, f1, xp.ones_like(f1))
        zero = xp.zeros_like(f1 + g)
        g_signed = g if entrance else -g
        out["c1"] = xp.where(on, f1 * f1 * g_signed / 24.0 + zero, zero)
        out["c2"] = xp.where(on, f1 * g * g / 6.0 + zero, zero)
        out["c3"] = xp.where(on, 2.0 * g * g / (3.0 * f1_safe) + zero, zero)
    return out


# -- the pieces of the map, on coordinates of alive particles (arrays or jets) ---------


def _linear_edge(six: Six, c: dict[str, Any]) -> Six:
    x, px, y, py, z, pz = six
    return (x, px + c["hx"] * x, y, py + c["hy"] * y, z, pz)


def _hwang_edge(six: Six, c: dict[str, Any], entrance: bool) -> Six:
    """Bmad's second-order hard-edge map (Hwang and Lee, with Iselin's k1 terms)."""
    x, px, y, py, z, pz = six
    inv_p = 1.0 / (1.0 + pz)
    g, gt, gt2, gs2, k1t, fg = c["g"], c["gt"], c["gt2"], c["gs2"], c["k1t"], c["fg"]
    xx, yy, xy = x * x, y * y, x * y
    common = yy * fg + x * xx * (4.0 * k1t - gt * gt2) / 6.0 + x * yy * (gt * gs2 - 4.0 * k1t) / 2.0
    if entrance:
        dx = (gs2 * yy - gt2 * xx) * inv_p / 2.0
        dpx = (c["ggt12"] * yy / 2.0 + gt2 * (x * px - y * py) + k1t * (xx - yy)) * inv_p
        dy = gt2 * xy * inv_p
        dpy = (fg * y - gt2 * x * py - (g + gt2) * px * y - 2.0 * k1t * xy) * inv_p
        dz = (common + (xx * px - 2.0 * xy * py) * gt2 - px * yy * gs2) * inv_p * inv_p / 2.0
    else:
        dx = (gt2 * xx - gs2 * yy) * inv_p / 2.0
        dpx = (gt2 * (y * py - x * px) + k1t * (xx - yy) - gt * gt2 * (xx + yy) / 2.0) * inv_p
        dy = -gt2 * xy * inv_p
        dpy = (fg * y + gt2 * x * py + (g + gt2) * px * y + (gt * gs2 - 2.0 * k1t) * xy) * inv_p
        dz = (common - (xx * px - 2.0 * xy * py) * gt2 + px * yy * gs2) * inv_p * inv_p / 2.0
    return (x + dx, px + dpx + gt * x, y + dy, py + dpy - gt * y, z + dz, pz)


def _soft_edge(six: Six, c: dict[str, Any]) -> Six:
    """SAD's soft-edge dipole fringe map (Bmad ``sad_soft_bend_edge_kick``)."""
    x, px, y, py, z, pz = six
    inv_p = 1.0 / (1.0 + pz)
    c1, c2, c3 = c["c1"], c["c2"], c["c3"]
    yy = y * y
    return (
        x + c1 * pz * inv_p,
        px,
        y,
        py + (c2 - c3 * yy) * y * inv_p,
        z + (c1 * px + (c2 / 2.0 - c3 * yy / 4.0) * yy) * inv_p * inv_p,
        pz,
    )


def _edge(six: Six, fringe_type: str, c: dict[str, Any], entrance: bool) -> Six:
    if fringe_type == "linear_edge":
        return _linear_edge(six, c)
    if fringe_type in ("hard_edge", "basic_bend"):
        return _hwang_edge(six, c, entrance)
    if fringe_type == "soft_edge":
        return _soft_edge(six, c)
    if fringe_type == "sad_full":
        if entrance:
            return _hwang_edge(_soft_edge(six, c), c, entrance)
        return _soft_edge(_hwang_edge(six, c, entrance), c)
    return six


def _atanc(t: Any) -> Any:
    """:func:`~beamtrack.tracking.special.atanc` on arrays and on jets."""
    if isinstance(t, jets.Jet):
        return jets.Jet(atanc(t.v), t.d * atanc_derivative(t.v)[..., None])
    return atanc(t)


def exact_sbend_body(six: Six, c: dict[str, Any], p0c: Any, mc2: Any) -> tuple[Six, Any]:
    """One slice of the exact sector-bend body (``k1 = 0``), see the module docstring.

    ``c`` holds ``g`` [1/m], the slice length ``step`` [m] and the functions of the
    slice angle ``theta = g step``: ``cos``, ``sin``, ``sinc`` and ``cosc``
    (``(1 - cos theta)/theta^2``). Returns the coordinates and the mask of particles
    lost in the slice.
    """
    xp = array_api_compat.array_namespace(six[0])
    x, px, y, py, z, pz = six
    g, ell = c["g"], c["step"]
    cos_t, sin_t, sinc_t, cosc_t = c["cos"], c["sin"], c["sinc"], c["cosc"]
    rel_p = 1.0 + pz
    pt2 = rel_p * rel_p - py * py
    a = sqrt1(pz * (2.0 + pz) - px * px - py * py)  # ps - 1, no cancellation
    ps = 1.0 + a
    px2 = px * cos_t + (a - g * x) * sin_t
    ps2_sq = pt2 - px2 * px2
    reaches = ps2_sq > 0.0
    ps2 = xp.sqrt(xp.where(reaches, ps2_sq, xp.ones_like(ps2_sq)))
    gll_cosc = g * ell * ell * cosc_t
    d = px * gll_cosc + (g * x - a) * ell * sinc_t  # (px - px2) / g
    sum_ratio = (px + px2) / (ps + ps2)
    x2 = x * cos_t + px * ell * sinc_t + d * sum_ratio + a * gll_cosc
    sin_delta_g = d * (px * sum_ratio + ps) / pt2  # sin(delta) / g
    cos_delta = (ps * ps2 + px * px2) / pt2
    forward = cos_delta > 0.0
    cos_safe = xp.where(forward, cos_delta, xp.ones_like(cos_delta))
    delta_g = sin_delta_g / cos_safe * _atanc(g * sin_delta_g / cos_safe)  # delta / g
    y2 = y + py * (ell + delta_g)
    z2 = z + ell * beta_ratio_minus_one(pz, p0c, mc2) - pz * ell - rel_p * delta_g
    return (x2, px2, y2, py, z2, pz), ~(reaches & forward)


def paraxial_sbend_body(six: Six, c: dict[str, Any], p0c: Any, mc2: Any) -> Six:
    """One slice of Bmad's ``sbend_body_with_k1_map`` (combined-function body).

    ``c`` holds ``g`` [1/m], ``k1`` [1/m^2] and the slice length ``step`` [m]. Written
    with entire functions of ``u = (k1 + g^2) step^2 / (1+pz)``
    (:func:`~beamtrack.tracking.special.cos_sinc_ratios`), so it is finite and smooth for
    any ``k1`` and ``g``, including ``k1 + g^2 = 0``.
    """
    x, px, y, py, z, pz = six
    g, k1, ell = c["g"], c["k1"], c["step"]
    rel_p = 1.0 + pz
    kx = k1 + g * g
    u = kx * ell * ell / rel_p
    cx, sx, d_x, f_x = cos_sinc_ratios(u)
    s_x = ell * sx
    ell2 = ell * ell
    r_sc = f_x + sx * d_x  # (1 - sin(2w)/(2w)) / u = (1 - S C / L) / u, w^2 = u
    one_minus_sc = u * r_sc
    gp = g * pz / rel_p  # the off-momentum orbit is g pz / (k1 + g^2)
    x1 = cx * x + s_x * px / rel_p + gp * ell2 * d_x
    px1 = -kx * s_x * x + g * pz * s_x + cx * px
    (ay, by, cy, dy), (z1y, z2y, z3y) = quadrupole_plane(-k1 / rel_p, ell, rel_p)
    y1 = ay * y + by * py
    py1 = cy * y + dy * py
    # -Integral(g x + x'^2/2 + y'^2/2) ds, with x' = homogeneous + (g pz/(1+pz)) S(s).
    xp_n = px / rel_p
    dz = (
        -g * (x * s_x + xp_n * ell2 * d_x + gp * ell * ell2 * f_x)
        - (kx / rel_p) * ell * one_minus_sc * x * x / 4.0
        + (kx / rel_p) * s_x * s_x * x * xp_n / 2.0
        - ell * (2.0 - one_minus_sc) * xp_n * xp_n / 4.0
        + 0.5 * gp * (x * ell * one_minus_sc - xp_n * s_x * s_x)
        - 0.25 * gp * gp * ell * ell2 * r_sc
        + z1y * y * y + z2y * y * py + z3y * py * py
        + low_energy_z_correction(pz, p0c, mc2, ell)
    )
    return (x1, px1, y1, py1, z + dz, pz)


def _body(six: Six, c: dict[str, Any], body: str, p0c: Any, mc2: Any) -> tuple[Six, Any]:
    """One slice: exact (``k1 = 0``), paraxial (``k1 != 0``), or chosen per entry of an
    array ``k1`` (exact where it is zero, with the ``k1`` gradient of the paraxial map)."""
    xp = array_api_compat.array_namespace(six[0])
    if body == "paraxial":
        out = paraxial_sbend_body(six, c, p0c, mc2)
        return out, (0.0 * six[0]) > 1.0  # nobody is lost in the paraxial body itself
    exact, lost = exact_sbend_body(six, c, p0c, mc2)
    if body == "exact":
        return exact, lost
    par = paraxial_sbend_body(six, c, p0c, mc2)
    par0 = paraxial_sbend_body(six, {**c, "k1": 0.0 * c["k1"]}, p0c, mc2)
    k1 = c["k1"]
    is_zero = (k1.v if isinstance(k1, jets.Jet) else k1) == 0.0
    out = tuple(xp.where(is_zero, e + (p - q), p) for e, p, q in zip(exact, par, par0))
    return out, lost & is_zero  # type: ignore[return-value]


def _sbend_map(
    lab: Six,
    alive: Any,
    c: dict[str, Any],
    fringe_type: str,
    body: str,
    misaligned: bool,
    num_steps: int,
    p0c: Any,
    mc2: Any,
) -> tuple[Six, Any]:
    """The whole "bmad" map from laboratory to laboratory coordinates.

    Particles lost inside keep the coordinates of their point of loss, rotated back to
    the laboratory orientation (``-ref_tilt``); those lost before the element or at its
    entrance keep their coordinates exactly.
    """
    xp = array_api_compat.array_namespace(lab[0])
    zero = 0.0 * c["ref_tilt"]
    entering = alive & ~unphysical_momentum(lab[1], lab[3], lab[5])
    alive = entering
    cur = to_element_frame(lab, zero, zero, c["ref_tilt"])
    if misaligned:
        new, lost = change_frame(safe(xp, alive, cur), c["rot_in"], c["origin_in"])
        alive = alive & ~lost
        cur = freeze(xp, alive, new, cur)
    cur = freeze(xp, alive, _edge(safe(xp, alive, cur), fringe_type, c["entrance"], True), cur)
    alive = alive & ~unphysical_momentum(cur[1], cur[3], cur[5])
    for _ in range(num_steps):
        new, lost = _body(safe(xp, alive, cur), c, body, p0c, mc2)
        alive = alive & ~lost
        alive = alive & ~unphysical_momentum(new[1], new[3], new[5])
        cur = freeze(xp, alive, new, cur)
    cur = freeze(xp, alive, _edge(safe(xp, alive, cur), fringe_type, c["exit"], False), cur)
    alive = alive & ~unphysical_momentum(cur[1], cur[3], cur[5])
    if misaligned:
        new, lost = change_frame(safe(xp, alive, cur), c["rot_out"], c["origin_out"])
        alive = alive & ~lost
        cur = freeze(xp, alive, new, cur)
    out = from_element_frame(cur, zero, zero, c["ref_tilt"])
    return freeze(xp, entering, out, lab), alive


def _constants(
    length: Any,
    angle: Any,
    e1: Any,
    e2: Any,
    k1: Any,
    fint: Any,
    hgap: Any,
    fint_exit: Any,
    hgap_exit: Any,
    fringe_type: str,
    ref_tilt: Any,
    tilt: Any,
    x_offset: Any,
    y_offset: Any,
    num_steps: int,
    misaligned: bool,
) -> dict[str, Any]:
    """Parameter-only quantities of the map, broadcast per particle (``(*batch, 1)``)."""
    xp = array_api_compat.array_namespace(length)
    positive = length > 0.0
    g = xp.where(positive, angle / xp.where(positive, length, xp.ones_like(length)),
                 xp.zeros_like(angle + length))
    theta = angle / num_steps
    theta2 = theta * theta
    c: dict[str, Any] = {
        "g": g,
        "k1": k1 + 0.0 * g,
        "step": length / num_steps + 0.0 * g,
        "cos": xp.cos(theta) + 0.0 * g,
        "sin": xp.sin(theta) + 0.0 * g,
        "sinc": cos_sinc(theta2)[1] + 0.0 * g,
        "cosc": one_minus_cos_ratio(theta2) + 0.0 * g,
        "ref_tilt": ref_tilt + 0.0 * g,
    }
    ends = {
        "entrance": _edge_coefficients(fringe_type, g, k1, e1, fint, hgap, True),
        "exit": _edge_coefficients(fringe_type, g, k1, e2, fint_exit, hgap_exit, False),
    }
    out: dict[str, Any] = {k: per_particle(v) for k, v in c.items()}
    out.update({end: {k: per_particle(v) for k, v in d.items()} for end, d in ends.items()})
    if misaligned:
        frames = _misalignment_frames(angle, length, ref_tilt, tilt, x_offset, y_offset)
        for key in ("rot_in", "rot_out"):
            out[key] = tuple(tuple(per_particle(v) for v in row) for row in frames[key])
        for key in ("origin_in", "origin_out"):
            out[key] = tuple(per_particle(v) for v in frames[key])
    return out


def _as_jets(tree: Any) -> Any:
    """Every array in a (nested) constants tree as a constant jet."""
    if isinstance(tree, dict):
        return {k: _as_jets(v) for k, v in tree.items()}
    if isinstance(tree, tuple):
        return tuple(_as_jets(v) for v in tree)
    return jets.constant(tree)


def sbend_map(
    length: Any,
    angle: Any,
    p0c: Any,
    mc2: Any,
    *,
    e1: Any = 0.0,
    e2: Any = 0.0,
    k1: Any = 0.0,
    fint: Any = 0.0,
    hgap: Any = 0.0,
    fint_exit: Any = None,
    hgap_exit: Any = None,
    fringe_type: str = "linear_edge",
    ref_tilt: Any = 0.0,
    tilt: Any = 0.0,
    x_offset: Any = 0.0,
    y_offset: Any = 0.0,
) -> tuple[Any, Any]:
    """First-order map ``(R, c)`` of the "bmad" sector bend about the reference orbit.

    ``R`` (shape ``(*batch, 6, 6)``) is the Jacobian of the "bmad" tracking map (edges,
    ``ref_tilt`` and misalignments included) at the laboratory reference orbit (all
    coordinates zero), ``c`` (shape ``(*batch, 6)``) the image of that orbit, so
    ``coords -> R @ coords + c`` is its exact first-order Taylor map. Both come from
    running the map on first-order jets (exact derivatives, no finite differences).
    For an aligned bend ``c = 0`` and the body block is the sector-bend matrix
    (``R11 = cos(angle)``, ``R16 = (1 - cos(angle))/g``,
    ``R56 = L/gamma0^2 - (angle - sin(angle))/g``, ...). ``length`` is an array; the
    other parameters are arrays of its library or numbers, as in :func:`track_sbend`;
    ``p0c`` and ``mc2`` [eV] have shape ``()`` or ``(*batch)``.
    """
    check_fringe_type(fringe_type)
    fint_exit = fint if fint_exit is None else fint_exit
    hgap_exit = hgap if hgap_exit is None else hgap_exit
    misaligned = not (_is_zero(tilt) and _is_zero(x_offset) and _is_zero(y_offset))
    body = _body_kind(k1)
    like = length + 0.0
    names = ("length", "angle", "e1", "e2", "k1", "fint", "hgap", "fint_exit", "hgap_exit",
             "ref_tilt", "tilt", "x_offset", "y_offset")
    given = (length, angle, e1, e2, k1, fint, hgap, fint_exit, hgap_exit, ref_tilt, tilt,
             x_offset, y_offset)
    p = {name: v + 0.0 * like for name, v in zip(names, given)}
    return _first_order(p, p0c + 0.0 * like, mc2 + 0.0 * like, fringe_type, misaligned, body)


def _first_order(p: dict[str, Any], p0c: Any, mc2: Any, fringe_type: str, misaligned: bool,
                 body: str) -> tuple[Any, Any]:
    """The map run on jets seeded at the reference orbit (one particle per batch entry)."""
    like = p["length"]
    xp = array_api_compat.array_namespace(like)
    c = _constants(p["length"], p["angle"], p["e1"], p["e2"], p["k1"], p["fint"], p["hgap"],
                   p["fint_exit"], p["hgap_exit"], fringe_type, p["ref_tilt"], p["tilt"],
                   p["x_offset"], p["y_offset"], 1, misaligned)
    shape = xp.broadcast_arrays(*p.values(), p0c, mc2)[0].shape
    zero = xp.zeros(tuple(shape) + (1,), dtype=like.dtype, device=array_api_compat.device(like))
    lab = jets.seed([zero] * 6)
    out, _ = _sbend_map(lab, zero == 0.0, _as_jets(c), fringe_type, body, misaligned, 1,
                        jets.constant(per_particle(p0c)), jets.constant(per_particle(mc2)))
    return jets.first_order_map(out)


def _body_kind(k1: Any) -> str:
    if _is_zero(k1):
        return "exact"
    if isinstance(k1, numbers.Real) and not isinstance(k1, bool):
        return "paraxial"
    return "mixed"


def track_sbend(
    particles: Particles,
    *,
    length: Any,
    angle: Any,
    e1: Any = 0.0,
    e2: Any = 0.0,
    k1: Any = 0.0,
    fint: Any = 0.0,
    hgap: Any = 0.0,
    fint_exit: Any = None,
    hgap_exit: Any = None,
    fringe_type: str = "linear_edge",
    tilt: Any = 0.0,
    ref_tilt: Any = 0.0,
    x_offset: Any = 0.0,
    y_offset: Any = 0.0,
    num_steps: int = 1,
    method: str = "bmad",
) -> Particles:
    """Track through a sector bend (Bmad ``sbend``, "bmad_standard").

    Parameters
    ----------
    particles
        Incoming particles (any backend), of the species the bend is set for.
    length
        Arc length of the reference orbit [m] (``> 0`` if ``angle != 0``).
    angle
        Bending angle [rad]; ``g = angle / length`` [1/m] is the curvature. Positive
        bends towards ``-x`` (Bmad). The field is the one that bends the reference
        particle on the arc, so the species' charge does not enter.
    e1, e2
        Entrance and exit pole-face angles [rad] (Bmad/MAD sign; ``e1 = e2 = angle/2``
        is a rectangular magnet).
    k1
        Quadrupole strength [1/m^2] (combined-function bend; Bmad's paraxial
        ``sbend_body_with_k1_map`` body when nonzero, the exact body when zero).
    fint, hgap
        Entrance fringe-field integral [1] and half gap [m]; only ``fint * hgap``
        matters. Default 0 (hard edge, Bmad's default).
    fint_exit, hgap_exit
        The same at the exit (Bmad ``fintx``, ``hgapx``); ``None`` uses ``fint``,
        ``hgap`` (MAD's convention, which Bmad follows).
    fringe_type
        Edge model: ``"none"``, ``"linear_edge"`` (default; MAD's linear edge
        focusing), ``"hard_edge"``, ``"soft_edge"``, ``"basic_bend"`` (Bmad's default),
        ``"sad_full"``; see the module docstring. ``"full"`` raises
        ``NotImplementedError``.
    tilt
        Roll of the magnet about its chord [rad], a misalignment that leaves the
        reference orbit in place (Bmad's ``roll``; Bmad bends have no ``tilt``).
    ref_tilt
        Rotation of the bend together with its reference orbit about the entrance
        ``s`` axis [rad] (Bmad's ``ref_tilt``, MAD's ``tilt`` of bends): ``pi/2`` with
        a positive angle bends downwards (towards ``-y``).
    x_offset, y_offset
        Offsets of the magnet [m] in the frame at the middle of the arc (Bmad).
    num_steps
        Number of body slices (the slice maps are exact compositions, so slicing only
        matters for loss checks).
    method
        ``"bmad"`` or ``"linear"`` (first-order map about the reference orbit,
        :func:`sbend_map`).

    Returns
    -------
    Particles
        Outgoing particles, ``s`` advanced by ``length``. Every parameter may have
        batch shape ``(*batch)``, broadcast against particles of shape ``(*batch, n)``.
    """
    check_method(method, "sbend")
    num_steps = check_num_steps(num_steps, "sbend")
    fringe_type = check_fringe_type(fringe_type)
    check_bend_geometry(length, angle, "sbend")
    fint_exit = fint if fint_exit is None else fint_exit
    hgap_exit = hgap if hgap_exit is None else hgap_exit
    misaligned = not (_is_zero(tilt) and _is_zero(x_offset) and _is_zero(y_offset))
    body = _body_kind(k1)
    coords = particles.coords
    names = ("length", "angle", "e1", "e2", "k1", "fint", "hgap", "fint_exit", "hgap_exit",
             "ref_tilt", "tilt", "x_offset", "y_offset")
    given = (length, angle, e1, e2, k1, fint, hgap, fint_exit, hgap_exit, ref_tilt, tilt,
             x_offset, y_offset)
    p = {name: as_parameter(v, coords, name) for name, v in zip(names, given)}
    if method == "linear":
        like = 0.0 * p["length"]
        r, const = _first_order(p, particles.p0c + like, particles.mc2 + like, fringe_type,
                                misaligned, body)
        return apply_linear_map(particles, r, const, p["length"])
    c = _constants(p["length"], p["angle"], p["e1"], p["e2"], p["k1"], p["fint"], p["hgap"],
                   p["fint_exit"], p["hgap_exit"], fringe_type, p["ref_tilt"], p["tilt"],
                   p["x_offset"], p["y_offset"], num_steps, misaligned)
    lab = particles.unpack()
    out, alive = _sbend_map(lab, particles.alive, c, fringe_type, body, misaligned, num_steps,
                            per_particle(particles.p0c), per_particle(particles.mc2))
    return assemble(particles, out, alive, p["length"])


def rbend_to_sbend(length: Any, angle: Any, e1: Any = 0.0, e2: Any = 0.0) -> tuple[Any, Any, Any]:
    """Bmad's rbend -> sbend conversion: ``(arc length, e1, e2)`` of the equivalent sbend.

    ``length`` is the rbend's chord [m]; the arc is ``length / sinc(angle/2)`` and
    ``angle/2`` is added to the face angles.
    """
    half = 0.5 * angle
    return length / cos_sinc(half * half)[1], e1 + half, e2 + half


def track_rbend(
    particles: Particles,
    *,
    length: Any,
    angle: Any,
    e1: Any = 0.0,
    e2: Any = 0.0,
    k1: Any = 0.0,
    fint: Any = 0.0,
    hgap: Any = 0.0,
    fint_exit: Any = None,
    hgap_exit: Any = None,
    fringe_type: str = "linear_edge",
    tilt: Any = 0.0,
    ref_tilt: Any = 0.0,
    x_offset: Any = 0.0,
    y_offset: Any = 0.0,
    num_steps: int = 1,
    method: str = "bmad",
) -> Particles:
    """Track through a rectangular bend (Bmad ``rbend``), as its equivalent sbend.

    Parameters are those of :func:`track_sbend` except: ``length`` is the **chord**
    [m] (Bmad's and MAD's ``l`` of an rbend), and ``e1``, ``e2`` are measured from the
    rectangular faces (``e1 = e2 = 0``: both faces perpendicular to the chord). The
    sbend tracked has the arc length ``length / sinc(angle/2)`` and face angles
    ``e1 + angle/2``, ``e2 + angle/2``; ``s`` advances by the arc length.
    """
    check_method(method, "rbend")
    check_num_steps(num_steps, "rbend")
    check_fringe_type(fringe_type, "rbend")
    check_bend_geometry(length, angle, "rbend")
    c = particles.coords
    length = as_parameter(length, c, "length")
    angle = as_parameter(angle, c, "angle")
    e1 = as_parameter(e1, c, "e1")
    e2 = as_parameter(e2, c, "e2")
    arc, e1_s, e2_s = rbend_to_sbend(length, angle, e1, e2)
    return track_sbend(
        particles, length=arc, angle=angle, e1=e1_s, e2=e2_s, k1=k1, fint=fint, hgap=hgap,
        fint_exit=fint_exit, hgap_exit=hgap_exit, fringe_type=fringe_type, tilt=tilt,
        ref_tilt=ref_tilt, x_offset=x_offset, y_offset=y_offset, num_steps=num_steps,
        method=method,
    )
