"""Bends: Bmad's "bmad_standard" sector bend (``sbend``, ``rbend``).

The ``"bmad"`` model is one :class:`~beamtrack.tracking.stepping.Body`: rotation by
``ref_tilt`` into the bend frame, the misalignment frame change (only when misaligned),
the entrance edge, ``num_steps`` body slices (exact for ``k1 = 0``, Bmad's paraxial
``sbend_body_with_k1_map`` otherwise), the exit edge, the exit frame change and the
rotation back. ``"linear"`` and ``"second_order"`` are its Taylor maps about the
laboratory reference orbit (:func:`~beamtrack.tracking.stepping.taylor_map`). An
``rbend`` is tracked as its equivalent ``sbend``. The field may bend with a curvature
``g + dg`` other than the reference one ``g`` (Bmad's ``dg``). ``track_dipole_edge`` is
a bend's linear edge kick as a thin element of its own (MAD-X ``dipedge``).

Physics (conventions, edge models, the exact and paraxial bodies, misalignments,
references): docs/physics/bends.md.
"""

from __future__ import annotations

import inspect
import numbers
from typing import TYPE_CHECKING, Any

import array_api_compat

from beamtrack.tracking import frames, jets
from beamtrack.tracking.errors import ParameterError
from beamtrack.tracking.frames import change_frame
from beamtrack.tracking.kinematics import beta_ratio_minus_one, low_energy_z_correction
from beamtrack.tracking.losses import report_overflow
from beamtrack.tracking.parameters import as_parameter
from beamtrack.tracking.particles import Particles
from beamtrack.tracking.quadrupole import quadrupole_plane
from beamtrack.tracking.special import (
    atanc,
    atanc_derivative,
    atanc_second_derivative,
    cos_sinc,
    cos_sinc_ratios,
    hyperbolic_in_range,
    one_minus_cos_ratio,
    sqrt1,
)
from beamtrack.tracking.stepping import (
    Body,
    Build,
    Six,
    Step,
    check_num_steps,
    physical,
    prepare,
    taylor_map,
    track_element,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from beamtrack.tracking.frames import Misalignment

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
            f"parameter 'fringe_type' must be one of {', '.join(FRINGE_TYPES)}, "
            f"got {fringe_type!r}", element=element)
    return fringe_type


def _is_zero(value: Any) -> bool:
    """True for a Python number equal to zero (a static fact, known without arrays)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and value == 0


def check_bend_geometry(length: Any, angle: Any, element: str = "sbend") -> None:
    """Check Python-number ``length`` and ``angle``: ``length >= 0``, and ``> 0`` when the
    angle is nonzero (arrays are not inspected: their values may be traced)."""
    if isinstance(length, numbers.Real) and not isinstance(length, bool):
        if length < 0:
            raise ParameterError(f"parameter 'length' must be >= 0, got {length!r}",
                                 element=element)
        if length == 0 and not _is_zero(angle):
            raise ParameterError(
                f"parameter 'length' must be > 0 for a bend with a nonzero angle (thin "
                f"bends are not supported), got length={length!r}, angle={angle!r}",
                element=element)


def _value(a: Any) -> Any:
    """The value of a jet, or ``a`` itself (for static masks of parameters)."""
    return a.v if isinstance(a, jets.Jet) else a


def _tan(x: Any) -> Any:
    """``tan`` on arrays and on jets."""
    xp = array_api_compat.array_namespace(_value(x))
    t = xp.tan(_value(x))
    if not isinstance(x, jets.Jet):
        return t
    sec2 = 1.0 + t * t
    return jets.elementary(x, t, sec2, 2.0 * t * sec2)


def _atanc(t: Any) -> Any:
    """:func:`~beamtrack.tracking.special.atanc` on arrays and on jets."""
    if not isinstance(t, jets.Jet):
        return atanc(t)
    second = None if t.h is None else atanc_second_derivative(t.v)
    return jets.elementary(t, atanc(t.v), atanc_derivative(t.v), second)


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
        out["hy"] = -g * _tan(e - 2.0 * f_h * g * (1.0 + sin_e * sin_e) / cos_e)
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
        on = _value(f1) != 0.0
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



def exact_sbend_body(six: Six, c: dict[str, Any], p0c: Any, mc2: Any) -> tuple[Six, Any]:
    """One slice of the exact sector-bend body (``k1 = 0``), see docs/physics/bends.md.

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


def exact_sbend_body_with_field_offset(six: Six, c: dict[str, Any], p0c: Any,
                                       mc2: Any) -> tuple[Six, Any]:
    """One slice of the exact sector-bend body (``k1 = 0``) whose field curvature
    ``g + dg`` differs from the reference curvature ``g`` (Bmad's ``dg``), see
    docs/physics/bends.md.

    ``c`` holds what :func:`exact_sbend_body` needs plus ``dg`` [1/m] and the functions
    of the field angle ``g_tot step``: ``cos_tot`` and ``sinc_tot``. The particle moves
    on a circle of radius ``p_t / (g + dg)``; the solution below has no division by
    ``g`` and, for particles whose direction at the exit face is less than 90 degrees
    from the face normal of a field-free line (``Q > 0``), none by ``g + dg``, so it
    is smooth at ``angle = 0`` and at ``g + dg = 0``. Returns the coordinates and the
    mask of particles lost in the slice.
    """
    xp = array_api_compat.array_namespace(six[0])
    x, px, y, py, z, pz = six
    g, dg, ell = c["g"], c["dg"], c["step"]
    g_tot = g + dg
    cos_t, sin_t, sinc_t, cosc_t = c["cos"], c["sin"], c["sinc"], c["cosc"]
    rel_p = 1.0 + pz
    pt2 = rel_p * rel_p - py * py
    a = sqrt1(pz * (2.0 + pz) - px * px - py * py)  # ps - 1
    ps = 1.0 + a
    w = (1.0 + g * x) * ell * sinc_t  # (1 + g x) sin(theta) / g
    px2 = px * cos_t + (a - g * x) * sin_t - dg * w
    ps2_sq = pt2 - px2 * px2
    reaches = ps2_sq > 0.0
    ps2 = xp.sqrt(xp.where(reaches, ps2_sq, xp.ones_like(ps2_sq)))
    # x2 = x cos(theta) - g step^2 cosc(theta) + xi, xi = (ps2 - q) / g_tot, with
    # q = ps cos(theta) - px sin(theta): written as w (p + px2) / (ps2 + q) where q > 0
    # (no division by g_tot), as (ps2 - q) / g_tot elsewhere (Bmad's two forms).
    q = ps * cos_t - px * sin_t
    p = px * cos_t + ps * sin_t
    ahead = q > 0.0
    denominator = xp.where(ahead, ps2 + q, xp.ones_like(q))
    turning = ~ahead & (g_tot != 0.0)
    g_safe = xp.where(turning, g_tot, xp.ones_like(g_tot))
    xi = xp.where(ahead, w * (p + px2) / denominator,
                  xp.where(turning, (ps2 - q) / g_safe, xp.zeros_like(q)))
    x2 = x * cos_t - g * ell * ell * cosc_t + xi
    # Turning angle phi of the particle: sin(phi) / g_tot = p1 . chord / pt^2 (the
    # chord in the entrance frame), cos(phi) = p1 . p2 / pt^2; the path length is
    # pt phi / g_tot = pt (step + e) with e = psi / g_tot, psi = phi - g_tot step.
    chord_x = x2 * cos_t - x - g * ell * ell * cosc_t
    chord_s = x2 * sin_t + ell * sinc_t
    sin_phi_g = (px * chord_x + ps * chord_s) / pt2
    cos_phi = (cos_t * (px * px2 + ps * ps2) + sin_t * (ps * px2 - px * ps2)) / pt2
    cos_f, sinc_f = c["cos_tot"], c["sinc_tot"]
    sin_psi_g = sin_phi_g * cos_f - cos_phi * ell * sinc_f
    cos_psi = cos_phi * cos_f + g_tot * sin_phi_g * g_tot * ell * sinc_f
    forward = cos_psi > 0.0
    cos_safe = xp.where(forward, cos_psi, xp.ones_like(cos_psi))
    e = sin_psi_g / cos_safe * _atanc(g_tot * sin_psi_g / cos_safe)
    y2 = y + py * (ell + e)
    z2 = z + ell * beta_ratio_minus_one(pz, p0c, mc2) - pz * ell - rel_p * e
    lost = ~(reaches & forward & (ahead | turning))
    return (x2, px2, y2, py, z2, pz), lost


def paraxial_sbend_body(six: Six, c: dict[str, Any], p0c: Any, mc2: Any) -> Six:
    """One slice of Bmad's ``sbend_body_with_k1_map`` (combined-function body).

    ``c`` holds ``g`` [1/m], ``k1`` [1/m^2], the slice length ``step`` [m] and
    optionally the field offset ``dg`` [1/m] (the field curvature is ``g + dg``).
    Written with entire functions of ``u = (k1 + g (g + dg)) step^2 / (1+pz)``
    (:func:`~beamtrack.tracking.special.cos_sinc_ratios`), so it is finite and smooth for
    any ``k1``, ``g`` and ``dg``, including ``k1 + g (g + dg) = 0``.
    """
    x, px, y, py, z, pz = six
    g, k1, ell = c["g"], c["k1"], c["step"]
    dg = c.get("dg")
    rel_p = 1.0 + pz
    kx = k1 + g * g if dg is None else k1 + g * (g + dg)
    u = kx * ell * ell / rel_p
    cx, sx, d_x, f_x = cos_sinc_ratios(u)
    s_x = ell * sx
    ell2 = ell * ell
    r_sc = f_x + sx * d_x  # (1 - sin(2w)/(2w)) / u = (1 - S C / L) / u, w^2 = u
    one_minus_sc = u * r_sc
    # px' = b - kx x: the off-momentum orbit is b / kx, b = g pz - dg.
    b = g * pz if dg is None else g * pz - dg
    gp = b / rel_p
    x1 = cx * x + s_x * px / rel_p + gp * ell2 * d_x
    px1 = -kx * s_x * x + b * s_x + cx * px
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
    array ``k1`` (exact where it is zero, with the ``k1`` gradient of the paraxial map).
    Returns the coordinates and the mask of particles the slice loses (``None``: none)."""
    xp = array_api_compat.array_namespace(six[0])
    if body == "paraxial":
        return paraxial_sbend_body(six, c, p0c, mc2), None
    exact_body = exact_sbend_body if "dg" not in c else exact_sbend_body_with_field_offset
    exact, lost = exact_body(six, c, p0c, mc2)
    if body == "exact":
        return exact, lost
    par = paraxial_sbend_body(six, c, p0c, mc2)
    par0 = paraxial_sbend_body(six, {**c, "k1": 0.0 * c["k1"]}, p0c, mc2)
    is_zero = _value(c["k1"]) == 0.0
    out = tuple(xp.where(is_zero, e + (p - q), p) for e, p, q in zip(exact, par, par0))
    return out, lost & is_zero  # type: ignore[return-value]


def _body_kind(k1: Any) -> str:
    """``"exact"`` for a Python zero, ``"paraxial"`` for another number, ``"mixed"`` for
    an array (whose entries may be zero)."""
    if _is_zero(k1):
        return "exact"
    if isinstance(k1, numbers.Real) and not isinstance(k1, bool):
        return "paraxial"
    return "mixed"


# -- the model as steps ------------------------------------------------------------------


def _slice_constants(p: dict[str, Any], num_steps: int, offset: bool) -> dict[str, Any]:
    """Curvature ``g``, ``k1``, the slice length ``step`` and the functions of the slice
    angle ``theta = g step`` used by the body slices; with a field offset (``offset``:
    ``dg`` not a Python zero) also ``dg`` and the functions of ``(g + dg) step``."""
    xp = array_api_compat.array_namespace(p["length"])
    length, angle = p["length"], p["angle"]
    positive = length > 0.0
    g = xp.where(positive, angle / xp.where(positive, length, xp.ones_like(length)),
                 xp.zeros_like(angle + length))
    theta = angle / num_steps
    theta2 = theta * theta
    step = length / num_steps
    c = {"g": g, "k1": p["k1"], "step": step, "cos": xp.cos(theta), "sin": xp.sin(theta),
         "sinc": cos_sinc(theta2)[1], "cosc": one_minus_cos_ratio(theta2)}
    if offset:
        field_angle = (g + p["dg"]) * step
        c["dg"] = p["dg"]
        c["cos_tot"], c["sinc_tot"] = cos_sinc(field_angle * field_angle)
    return c


def _slice(c: dict[str, Any], kind: str, p0c: Any, mc2: Any) -> Step:
    """A body slice that loses the particles it cannot carry or leaves unphysical."""

    def step(six: Six) -> tuple[Six, Any]:
        new, lost = _body(six, c, kind, p0c, mc2)
        ok = physical(new)
        if kind != "exact":  # a k1 so strong that cosh overflows: lost (see cos_sinc)
            scale = c["step"] * c["step"] / (1.0 + six[5])
            dg = c.get("dg")
            kx = c["k1"] + c["g"] * (c["g"] if dg is None else c["g"] + dg)
            in_range = hyperbolic_in_range(kx * scale) & hyperbolic_in_range(c["k1"] * scale)
            report_overflow(in_range, six)
            ok = ok & in_range
        return new, ok if lost is None else ok & ~lost

    return step


def _edge_steps(fringe_type: str, c: dict[str, Any], entrance: bool) -> list[Step]:
    """An edge kick, then the loss check: as in Bmad, a particle the kick leaves
    unphysical is lost with its coordinates after the kick."""
    if fringe_type == "none":
        return []
    return [lambda six: (_edge(six, fringe_type, c, entrance), None),
            lambda six: (six, physical(six))]


def _frame_step(rotation: Any, origin: Any) -> Step:
    """:func:`~beamtrack.tracking.frames.change_frame` as a step."""

    def step(six: Six) -> tuple[Six, Any]:
        new, lost = change_frame(six, rotation, origin)
        return new, ~lost

    return step


def _bend_body(fringe_type: str, num_steps: int, kind: str, misaligned: bool,
               offset: bool) -> Build:
    """The "bmad" bend as a :class:`~beamtrack.tracking.stepping.Body`: the body's frame
    is rotated by ``ref_tilt``; the misalignment frame changes (in the frame at the
    middle of the arc, not plain offsets) are steps of their own. ``offset``: the field
    curvature differs from the reference one (``dg`` is not a Python zero)."""

    def build(p: dict[str, Any], p0c: Any, mc2: Any) -> Body:
        c = _slice_constants(p, num_steps, offset)
        k1 = p["k1"]
        g = c["g"] + p["dg"] if offset else c["g"]  # the edges see the field: g + dg
        entrance = _edge_coefficients(fringe_type, g, k1, p["e1"], p["fint"], p["hgap"], True)
        exit_ = _edge_coefficients(fringe_type, g, k1, p["e2"], p["fint_exit"], p["hgap_exit"],
                                   False)
        tilt, zero = p["ref_tilt"], 0.0 * p["ref_tilt"]
        frame_steps: list[list[Step]] = [[], []]
        if misaligned:
            f = _misalignment_frames(p["angle"], p["length"], tilt, p["tilt"], p["x_offset"],
                                     p["y_offset"])
            frame_steps = [[_frame_step(f["rot_in"], f["origin_in"])],
                           [_frame_step(f["rot_out"], f["origin_out"])]]
        return Body([
            *frame_steps[0],
            *_edge_steps(fringe_type, entrance, True),
            *[_slice(c, kind, p0c, mc2)] * num_steps,
            *_edge_steps(fringe_type, exit_, False),
            *frame_steps[1],
        ], offsets=(zero, zero, tilt))  # the ref_tilt rotation in and out

    return build


def _model(element: str, method: str, arguments: dict[str, Any]) -> tuple[Build, dict[str, Any]]:
    """Validate a bend's static parameters (``fringe_type``, ``num_steps``, Python-number
    geometry); give its model and its other parameters, exit defaults filled in.

    ``arguments`` are the keyword arguments of :func:`track_sbend` but ``method``, the
    misalignment keywords as the mapping ``misalignment`` (checked by
    :func:`~beamtrack.tracking.frames.misalignment`). The Taylor maps (``method`` other
    than ``"bmad"``) use one body slice: slices compose exactly and a map loses nobody,
    so more would only cost time.
    """
    values = dict(arguments)
    values.update(frames.misalignment(values.pop("misalignment"), element))
    num_steps = check_num_steps(values.pop("num_steps", 1), element)
    fringe_type = check_fringe_type(values.pop("fringe_type"), element)
    check_bend_geometry(values["length"], values["angle"], element)
    for key in ("fint", "hgap"):
        if values[f"{key}_exit"] is None:
            values[f"{key}_exit"] = values[key]
    misaligned = not all(_is_zero(values[k]) for k in ("tilt", "x_offset", "y_offset"))
    offset = not _is_zero(values["dg"])
    slices = num_steps if method == "bmad" else 1
    return (_bend_body(fringe_type, slices, _body_kind(values["k1"]), misaligned, offset),
            values)


def _track(element: str, particles: Particles, *, method: str, **arguments: Any) -> Particles:
    """Track through the ``sbend`` (or the ``rbend``, converted) of these arguments."""
    build, values = _model(element, method, arguments)
    p = prepare(particles, element, method, **values)
    if element == "rbend":
        p["length"], p["e1"], p["e2"] = rbend_to_sbend(p["length"], p["angle"], p["e1"],
                                                       p["e2"])
    return track_element(particles, build, p, length=p["length"], method=method)


# -- public functions ---------------------------------------------------------------------


def sbend_map(length: Any, angle: Any, p0c: Any, mc2: Any, **params: Any) -> tuple[Any, Any]:
    """First-order map ``(R, c)`` of the "bmad" sector bend about the reference orbit.

    ``R`` (shape ``(*batch, 6, 6)``) is the Jacobian of the "bmad" tracking map (edges,
    ``ref_tilt`` and misalignments included) at the laboratory reference orbit (all
    coordinates zero), ``c`` (shape ``(*batch, 6)``) the image of that orbit, so
    ``coords -> R @ coords + c`` is its exact first-order Taylor map. Both come from
    running the map on first-order jets (exact derivatives, no finite differences).
    For an aligned bend ``c = 0`` and the body block is the sector-bend matrix
    (``R11 = cos(angle)``, ``R16 = (1 - cos(angle))/g``,
    ``R56 = L/gamma0^2 - (angle - sin(angle))/g``, ...).

    Parameters
    ----------
    length, angle
        Arc length [m] (an array) and bending angle [rad], as in :func:`track_sbend`.
    p0c, mc2
        Reference momentum and rest energy [eV], shape ``()`` or ``(*batch)``.
    **params
        The other keyword parameters of :func:`track_sbend` (edges, ``k1``,
        ``ref_tilt``, misalignment), arrays of ``length``'s library or numbers; not
        ``num_steps`` or ``method``.
    """
    if {"num_steps", "method"} & set(params):
        raise TypeError("sbend_map: num_steps and method are not parameters of a map")
    arguments = _sbend_arguments("sbend_map", None, dict(length=length, angle=angle, **params))
    del arguments["particles"], arguments["method"]
    build, values = _model("sbend", "linear", arguments)
    p = {k: as_parameter(v, length, k, element="sbend") for k, v in values.items()}
    r, c, _, _ = taylor_map(build, p, as_parameter(p0c, length, "p0c", element="sbend"),
                            as_parameter(mc2, length, "mc2", element="sbend"), order=1)
    return r, c


def track_sbend(
    particles: Particles,
    *,
    length: Any,
    angle: Any,
    e1: Any = 0.0,
    e2: Any = 0.0,
    k1: Any = 0.0,
    dg: Any = 0.0,
    fint: Any = 0.0,
    hgap: Any = 0.0,
    fint_exit: Any = None,
    hgap_exit: Any = None,
    fringe_type: str = "linear_edge",
    ref_tilt: Any = 0.0,
    num_steps: int = 1,
    method: str = "bmad",
    **misalignment: Unpack[Misalignment],
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
    dg
        Field offset [1/m] (Bmad's ``dg``): the dipole field bends the reference
        particle with curvature ``g + dg`` while the reference orbit (the frame, the
        geometry, ``s``) keeps the curvature ``g``; a field error, or Xsuite's
        ``k0 - h``. Enters the body (exact for ``k1 = 0``, in Bmad's combined-function
        body otherwise) and the edge kicks, which see ``g + dg`` as in Bmad.
    fint, hgap
        Entrance fringe-field integral [1] and half gap [m]; only ``fint * hgap``
        matters. Default 0 (hard edge, Bmad's default).
    fint_exit, hgap_exit
        The same at the exit (Bmad ``fintx``, ``hgapx``); ``None`` uses ``fint``,
        ``hgap`` (MAD's convention, which Bmad follows).
    fringe_type
        Edge model: ``"none"``, ``"linear_edge"`` (default; MAD's linear edge
        focusing), ``"hard_edge"``, ``"soft_edge"``, ``"basic_bend"`` (Bmad's default),
        ``"sad_full"``; see docs/physics/bends.md. ``"full"`` raises
        ``NotImplementedError``.
    ref_tilt
        Rotation of the bend together with its reference orbit about the entrance
        ``s`` axis [rad] (Bmad's ``ref_tilt``, MAD's ``tilt`` of bends): ``pi/2`` with
        a positive angle bends downwards (towards ``-y``).
    num_steps
        Number of body slices (the slice maps are exact compositions, so slicing only
        matters for loss checks).
    method
        ``"bmad"`` (Bmad's "bmad_standard" model), ``"linear"`` (its first-order map
        about the reference orbit, :func:`sbend_map`) or ``"second_order"`` (its
        second-order Taylor map).
    **misalignment
        ``tilt`` [rad], ``x_offset``, ``y_offset`` [m] of the magnet
        (:class:`~beamtrack.tracking.frames.Misalignment`; 0 by default). ``tilt`` is
        the roll of the magnet about its chord, a misalignment that leaves the
        reference orbit in place (Bmad's ``roll``; Bmad bends have no ``tilt``); the
        offsets are in the frame at the middle of the arc (Bmad).

    Returns
    -------
    Particles
        Outgoing particles, ``s`` advanced by ``length``. Every parameter may have
        batch shape ``(*batch)``, broadcast against particles of shape ``(*batch, n)``.
    """
    return _track("sbend", **locals())


def rbend_to_sbend(length: Any, angle: Any, e1: Any = 0.0, e2: Any = 0.0) -> tuple[Any, Any, Any]:
    """Bmad's rbend -> sbend conversion: ``(arc length, e1, e2)`` of the equivalent sbend.

    ``length`` is the rbend's chord [m]; the arc is ``length / sinc(angle/2)`` and
    ``angle/2`` is added to the face angles.
    """
    half = 0.5 * angle
    return length / cos_sinc(half * half)[1], e1 + half, e2 + half


def track_rbend(particles: Particles, **params: Any) -> Particles:
    """Track through a rectangular bend (Bmad ``rbend``), as its equivalent sbend.

    Parameters
    ----------
    particles
        Incoming particles (any backend).
    **params
        The keyword parameters of :func:`track_sbend` (``length`` and ``angle``
        required), except that ``length`` is the **chord** [m] (Bmad's and MAD's ``l``
        of an rbend) and ``e1``, ``e2`` are measured from the rectangular faces
        (``e1 = e2 = 0``: both faces perpendicular to the chord).

    Returns
    -------
    Particles
        Outgoing particles. The sbend tracked has the arc length
        ``length / sinc(angle/2)`` and face angles ``e1 + angle/2``, ``e2 + angle/2``;
        ``s`` advances by the arc length.
    """
    return _track("rbend", **_sbend_arguments("track_rbend", particles, params))


def _sbend_arguments(caller: str, particles: Any, params: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of :func:`track_sbend`, defaults filled in: its signature
    checks the named keywords; the others land in ``misalignment``, which
    :func:`_model` checks."""
    try:
        arguments = inspect.signature(track_sbend).bind(particles, **params)
    except TypeError as exc:
        raise TypeError(f"{caller}: {exc}") from None
    arguments.apply_defaults()
    return dict(arguments.arguments)


def _dipole_edge_body(misaligned: bool) -> Build:
    """The thin edge as a :class:`~beamtrack.tracking.stepping.Body`: the linear edge
    kick of a bend's entrance (:func:`_linear_edge`), then the loss check."""

    def build(p: dict[str, Any], p0c: Any, mc2: Any) -> Body:
        c = _edge_coefficients("linear_edge", p["h"], 0.0 * p["h"], p["e1"], p["fint"],
                               p["hgap"], True)
        offsets = (p["x_offset"], p["y_offset"], p["tilt"]) if misaligned else None
        return Body(_edge_steps("linear_edge", c, True), offsets=offsets)

    return build


def track_dipole_edge(
    particles: Particles,
    *,
    h: Any,
    e1: Any = 0.0,
    fint: Any = 0.0,
    hgap: Any = 0.0,
    method: str = "bmad",
    **misalignment: Unpack[Misalignment],
) -> Particles:
    """Track through a thin dipole edge (MAD-X ``dipedge``, Xsuite ``DipoleEdge``).

    The entrance-edge kick of a bend of curvature ``h`` and face angle ``e1``, the same
    kick as a bend's default ``fringe_type="linear_edge"`` (MAD's edge focusing):
    ``px += h tan(e1) x``, ``py -= h tan(e1 - psi) y`` with
    ``psi = 2 fint hgap h (1 + sin^2 e1) / cos e1``. A bend's exit edge is the same
    element with ``e1`` set to the bend's ``e2`` (as MAD-X's MAKETHIN writes it).

    Parameters
    ----------
    particles
        Incoming particles (any backend).
    h
        Curvature of the bend's field [1/m] (``angle / length``, plus ``dg``).
    e1
        Pole-face angle [rad] (Bmad/MAD sign).
    fint, hgap
        Fringe-field integral [1] and half gap [m]; only ``fint * hgap`` matters.
    method
        ``"bmad"``, ``"linear"`` or ``"second_order"`` (the map is linear, so all three
        agree).
    **misalignment
        ``tilt`` [rad] (MAD's ``tilt`` of the edge: a rotation about ``s``, as the
        ``ref_tilt`` of the bend it belongs to), ``x_offset``, ``y_offset`` [m]
        (:class:`~beamtrack.tracking.frames.Misalignment`; 0 by default).

    Returns
    -------
    Particles
        Outgoing particles; ``s`` is unchanged (the edge has no length). Every
        parameter may have batch shape ``(*batch)``.
    """
    element = "dipole_edge"
    values = frames.misalignment(misalignment, element)
    misaligned = not all(_is_zero(v) for v in values.values())
    p = prepare(particles, element, method, h=h, e1=e1, fint=fint, hgap=hgap, **values)
    return track_element(particles, _dipole_edge_body(misaligned), p, length=0.0,
                         method=method)
