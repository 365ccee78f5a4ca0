"""Plots of optics, beam sizes, phase space and screen images (needs matplotlib).

Install with ``pip install beamtrack[plot]``. Every function takes an optional
matplotlib ``Axes`` and returns the axes it drew on.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from beamtrack.backends import backend_of
from beamtrack.lattice.beamline import Beamline

#: Colours of the element kinds in lattice drawings.
KIND_COLOURS = {
    "Quadrupole": "tab:red", "SBend": "tab:blue", "RBend": "tab:blue",
    "Sextupole": "tab:green", "Octupole": "tab:olive", "Multipole": "tab:olive",
    "Solenoid": "tab:purple", "RFCavity": "tab:orange", "LCavity": "tab:orange",
    "CrabCavity": "tab:orange", "HKicker": "tab:cyan", "VKicker": "tab:cyan",
    "Kicker": "tab:cyan", "Monitor": "black", "Screen": "black", "Aperture": "gray",
}


def _pyplot() -> Any:
    try:
        import matplotlib

        if matplotlib.get_backend().lower() not in ("agg",) and not _has_display():
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - exercised without matplotlib only
        raise ImportError("plotting needs matplotlib: pip install beamtrack[plot]") from exc
    return plt


def _has_display() -> bool:
    import os

    return bool(os.environ.get("DISPLAY") or os.environ.get("MPLBACKEND"))


def _numpy(value: Any) -> np.ndarray:
    if isinstance(value, (int, float)):
        return np.asarray(value, dtype=float)
    return backend_of(value).to_numpy(value)


def draw_lattice(line: Beamline, ax: Any = None, height: float = 1.0) -> Any:
    """Draw the elements of ``line`` as boxes along s (quadrupoles up or down by sign)."""
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 1.2))
    s = 0.0
    for element in line:
        length = float(np.asarray(_numpy(element.path_length)).reshape(-1)[0])
        colour = KIND_COLOURS.get(element.kind)
        if colour is not None:
            params = element.parameters()
            sign = 1.0
            if element.kind == "Quadrupole":
                sign = 1.0 if float(np.asarray(_numpy(params["k1"])).reshape(-1)[0]) >= 0 else -1.0
            width = max(length, 0.01 * max(float(_numpy(line.length).reshape(-1)[0]), 1e-9))
            bottom = 0.0 if sign > 0 else -height
            ax.add_patch(plt.Rectangle((s, bottom), width, height, color=colour, alpha=0.8))
        s += length
    ax.axhline(0.0, color="black", linewidth=0.5)
    ax.set_xlim(0.0, max(s, 1e-9))
    ax.set_ylim(-1.2 * height, 1.2 * height)
    ax.set_yticks([])
    return ax


def _axes_along_s(line: Beamline | None, ax: Any) -> Any:
    """``ax``, or new axes for a plot along s (below a drawing of ``line`` if given)."""
    if ax is not None:
        return ax
    plt = _pyplot()
    if line is None:
        return plt.subplots(figsize=(10, 4))[1]
    _, (top, ax) = plt.subplots(2, 1, sharex=True, figsize=(10, 5),
                                gridspec_kw={"height_ratios": [1, 5]})
    draw_lattice(line, top)
    return ax


def plot_twiss(table: Any, line: Beamline | None = None, ax: Any = None) -> Any:
    """Beta functions and horizontal dispersion along s, with the lattice drawn above."""
    ax = _axes_along_s(line, ax)
    s = _numpy(table.s)
    ax.plot(s, _numpy(table.beta_x), label=r"$\beta_x$")
    ax.plot(s, _numpy(table.beta_y), label=r"$\beta_y$")
    ax.set_xlabel("s [m]")
    ax.set_ylabel(r"$\beta$ [m]")
    other = ax.twinx()
    other.plot(s, _numpy(table.dx), color="tab:green", linestyle="--", label=r"$D_x$")
    other.set_ylabel(r"$D_x$ [m]")
    ax.legend(loc="upper left")
    other.legend(loc="upper right")
    return ax


def plot_beam_sizes(record: Any, line: Beamline | None = None, ax: Any = None) -> Any:
    """RMS beam sizes along s from a :class:`~beamtrack.lattice.recording.Record`."""
    ax = _axes_along_s(line, ax)
    s = _numpy(record.s)
    ax.plot(s, 1e3 * _numpy(record["sigma_x"]), label=r"$\sigma_x$")
    ax.plot(s, 1e3 * _numpy(record["sigma_y"]), label=r"$\sigma_y$")
    ax.set_xlabel("s [m]")
    ax.set_ylabel("RMS size [mm]")
    ax.legend()
    return ax


#: Axis labels with units of the six coordinates (Bmad's momenta are P/P0).
COORDINATE_LABELS = {"x": "x [m]", "px": r"$p_x = P_x/P_0$ [1]", "y": "y [m]",
                     "py": r"$p_y = P_y/P_0$ [1]", "z": "z [m]",
                     "pz": r"$p_z = (P - P_0)/P_0$ [1]"}


def plot_phase_space(particles: Any, x: str = "x", y: str = "px", ax: Any = None,
                     bins: int | None = None) -> Any:
    """Scatter (or 2D density with ``bins``) of two coordinates of the alive particles.

    Axes are labelled with the coordinates' units (:data:`COORDINATE_LABELS`); a new
    figure uses a constrained layout, so a saved figure keeps its labels.
    """
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4), constrained_layout=True)
    alive = _numpy(particles.alive).astype(bool).reshape(-1)
    u = _numpy(getattr(particles, x)).reshape(-1)[alive]
    v = _numpy(getattr(particles, y)).reshape(-1)[alive]
    if bins:
        ax.hist2d(u, v, bins=bins)
    else:
        ax.scatter(u, v, s=1, alpha=0.5)
    ax.set_xlabel(COORDINATE_LABELS.get(x, x))
    ax.set_ylabel(COORDINATE_LABELS.get(y, y))
    return ax


def plot_screen(image: Any, extent: tuple[float, float, float, float] | None = None,
                ax: Any = None, screen: Any = None) -> Any:
    """Show a screen image (``(ny, nx)`` array).

    Without ``extent`` or ``screen`` the axes count pixels (and say so).

    Parameters
    ----------
    image
        The image, row ``j`` the j-th pixel row from the bottom.
    extent
        ``(x_min, x_max, y_min, y_max)`` [m] of the image.
    ax
        Axes to draw in (a new figure when ``None``).
    screen
        The :class:`~beamtrack.lattice.elements.Screen` that took the image: its pixel
        grid gives the extent when ``extent`` is not given.
    """
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4), constrained_layout=True)
    data = _numpy(image)
    if extent is None and screen is not None:
        from beamtrack.tracking.diagnostics import screen_grid

        x_edges, y_edges = screen_grid(screen.resolution, screen.pixel_size)
        extent = (x_edges[0], x_edges[-1], y_edges[0], y_edges[-1])
    ax.imshow(data, origin="lower", extent=extent, aspect="auto")
    unit = "pixel" if extent is None else "m"
    ax.set_xlabel(f"x [{unit}]")
    ax.set_ylabel(f"y [{unit}]")
    return ax
