"""Central finite differences: an explicit, backend-free cross-check of gradients.

NumPy has no automatic differentiation; this helper is for checking the gradients of
torch and JAX, never a silent substitute for them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np


def central_difference_gradient(
    loss: Callable[[dict[str, Any]], Any],
    params: Mapping[str, float],
    step: float = 1e-6,
    relative: bool = True,
) -> dict[str, float]:
    """Fourth-order central-difference gradient of a scalar ``loss(params)``.

    Parameters
    ----------
    loss
        Function of a mapping ``{"element.parameter": value}`` returning a scalar
        (a number or a 0-d array of any backend).
    params
        The point, as Python numbers.
    step
        Step size; relative to ``max(|value|, 1)`` when ``relative``.

    Returns
    -------
    dict
        ``{key: d loss / d key}`` as Python floats. Each entry costs four evaluations
        of ``loss`` (``4 * len(params)`` in all).
    """
    point = {k: float(v) for k, v in params.items()}

    def value(shifted: dict[str, float]) -> float:
        return float(np.asarray(_to_host(loss(shifted))))

    grad = {}
    for key, x in point.items():
        h = step * max(abs(x), 1.0) if relative else step
        f = [value({**point, key: x + m * h}) for m in (2, 1, -1, -2)]
        grad[key] = (-f[0] + 8 * f[1] - 8 * f[2] + f[3]) / (12 * h)
    return grad


def _to_host(value: Any) -> Any:
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return value
