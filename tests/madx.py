"""Transfer matrices from MAD-X (through cpymad), converted to Bmad coordinates.

MAD-X tracks ``(x, px, y, py, t, pt)`` with ``t = z / beta`` and
``pt = (E - E0) / (P0 c)``; to first order about the reference orbit
``t = z / beta0`` and ``pt = beta0 pz``, so a MAD-X matrix ``R_m`` is
``T R_b T^-1`` of the Bmad matrix ``R_b`` with ``T = diag(1, 1, 1, 1, 1/beta0, beta0)``.
"""

from __future__ import annotations

import numpy as np
import pytest


def madx_matrix(element: str, length: float, p0c: float, particle: str = "electron") -> np.ndarray:
    """The 6x6 RMATRIX of one MAD-X element definition, in Bmad coordinates.

    Parameters
    ----------
    element
        MAD-X definition of an element labelled ``e1`` (e.g.
        ``"e1: quadrupole, l=0.5, k1=1.0;"``).
    length
        Its length [m] (the sequence length).
    p0c
        Reference momentum [eV].
    particle
        MAD-X particle name.
    """
    cpymad_madx = pytest.importorskip("cpymad.madx", reason="cpymad (MAD-X) not installed")
    madx = cpymad_madx.Madx(stdout=False)
    try:
        madx.input(
            f"""
            beam, particle={particle}, pc={p0c / 1e9!r};
            {element}
            seq: sequence, l={max(length, 1e-9)!r}, refer=entry;
            e1, at=0;
            endsequence;
            use, sequence=seq;
            """
        )
        table = madx.twiss(betx=1, bety=1, rmatrix=True)
        r_madx = np.array(
            [[table[f"re{i}{j}"][-1] for j in range(1, 7)] for i in range(1, 7)]
        )
        beta0 = float(madx.sequence.seq.beam.beta)
    finally:
        madx.quit()
    t = np.diag([1.0, 1.0, 1.0, 1.0, 1.0 / beta0, beta0])
    return np.linalg.inv(t) @ r_madx @ t
