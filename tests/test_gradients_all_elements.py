"""Gradients of every differentiable parameter of every element kind, every method.

torch and jax agree with each other to 1e-10 and with fourth-order central differences
(NumPy) to 1e-6 relative, at a generic point and at the singular one (k = 0, angle = 0,
zero offsets and tilt).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_particles, random_beam

import beamtrack as bt
from beamtrack.backends import central_difference_gradient

P0C = 50e6
BEAM = random_beam(4, seed=21, scale=1e-3)
WEIGHTS = np.random.default_rng(5).standard_normal((6, 4))

GENERIC = {
    "Drift": dict(length=0.7),
    "Collimator": dict(length=0.5, x_limit=0.05, y_limit=0.04, x_offset=1e-4, tilt=0.1),
    "Quadrupole": dict(length=0.3, k1=2.0, tilt=0.1, x_offset=1e-4, y_offset=-1e-4),
    "SBend": dict(length=0.5, angle=0.1, e1=0.02, e2=0.03, k1=0.3, fint=0.5, hgap=0.02,
                  ref_tilt=0.05, tilt=0.01, x_offset=1e-4, dg=0.02),
    "RBend": dict(length=0.5, angle=0.08, e1=0.01, k1=-0.2, dg=0.01),
    "DipoleEdge": dict(h=0.3, e1=0.1, fint=0.5, hgap=0.03, tilt=0.05, x_offset=1e-4),
    "Sextupole": dict(length=0.2, k2=15.0, tilt=0.05, x_offset=2e-4),
    "Octupole": dict(length=0.2, k3=200.0, y_offset=1e-4),
    "ThickMultipole": dict(length=0.2, knl=(0.0, 0.3, 5.0), ksl=(0.0, 0.1)),
    "Multipole": dict(knl=(1e-4, 0.3, 5.0), ksl=(0.0, 0.1), x_offset=1e-4, ref_length=0.4),
    "HKicker": dict(length=0.2, kick=1e-4, tilt=0.1),
    "VKicker": dict(length=0.2, kick=-1e-4),
    "Kicker": dict(length=0.2, hkick=1e-4, vkick=2e-4),
    "Solenoid": dict(length=0.4, ks=1.2, x_offset=1e-4),
    "RFCavity": dict(length=0.3, voltage=2e5, phi0=0.1, frequency=1.3e9),
    "LCavity": dict(length=0.4, voltage=3e6, phi0=0.05, frequency=1.3e9),
    "CrabCavity": dict(length=0.2, voltage=1e5, phi0=0.05, frequency=1.3e9),
}
SINGULAR = {
    "Quadrupole": dict(length=0.3, k1=0.0, tilt=0.0, x_offset=0.0, y_offset=0.0),
    "SBend": dict(length=0.5, angle=0.0, k1=0.0, e1=0.0, tilt=0.0, x_offset=0.0, dg=0.0),
    "DipoleEdge": dict(h=0.0, e1=0.0, fint=0.0, hgap=0.0, tilt=0.0),
    "Sextupole": dict(length=0.2, k2=0.0, tilt=0.0, x_offset=0.0),
    "Solenoid": dict(length=0.4, ks=0.0),
    "RFCavity": dict(length=0.3, voltage=0.0, phi0=0.0, frequency=1.3e9),
    "HKicker": dict(length=0.2, kick=0.0, tilt=0.0),
}
CASES = [(kind, "generic", p) for kind, p in GENERIC.items()] + [
    (kind, "singular", p) for kind, p in SINGULAR.items()]
#: Kinds with no differentiable tracking parameter to test here: markers and
#: diagnostics (nothing to differentiate), Aperture (a hard cut; its smooth survival
#: factor has its own gradient tests in test_aperture.py), LinearMap (the map is the
#: parameter: test_lattice.py), Custom (a user function: test_custom_element.py) and
#: SpaceCharge (a collective kick of a charged bunch: its gradients with respect to the
#: bunch charge, size and an upstream magnet are in test_space_charge.py).
WITHOUT_TABLE_ENTRY = {"Marker", "Monitor", "Screen", "Aperture", "LinearMap", "Custom",
                       "SpaceCharge"}


def test_the_table_covers_every_element_kind():
    assert set(GENERIC) == set(bt.lattice.ELEMENT_KINDS) - WITHOUT_TABLE_ENTRY
    assert set(SINGULAR) <= set(GENERIC)


def flat(params: dict) -> dict[str, float]:
    """Scalar parameters, with sequences expanded as 'knl.0', 'knl.1', ..."""
    out = {}
    for key, value in params.items():
        if isinstance(value, tuple):
            out.update({f"{key}.{i}": float(v) for i, v in enumerate(value)})
        else:
            out[key] = float(value)
    return out


def unflat(values: dict, template: dict) -> dict:
    params = {}
    for key, value in template.items():
        if isinstance(value, tuple):
            params[key] = tuple(values[f"{key}.{i}"] for i in range(len(value)))
        else:
            params[key] = values[key]
    return params


def loss_function(kind: str, template: dict, method: str, backend: str):
    particles = make_particles(backend, BEAM, p0c=P0C)
    weights = bt.backends.get(backend).asarray(WEIGHTS)

    def loss(values):
        element = getattr(bt, kind)("e", **unflat(values, template))
        out = element.track(particles, method)
        # p0c enters relative to its start value (LCavity changes it).
        return particles.xp.sum(out.coords * weights) + particles.xp.sum(out.p0c / P0C - 1.0)

    return loss


#: second_order costs several times a "bmad" gradient (it differentiates through
#: second-order jets), so it runs at the generic points only.
METHOD_CASES = [(method, *case) for case in CASES for method in ("bmad", "linear")] + [
    ("second_order", *case) for case in CASES if case[1] == "generic"]


@pytest.mark.parametrize(("method", "kind", "point", "template"), METHOD_CASES,
                         ids=[f"{k}-{p}-{m}" for m, k, p, _ in METHOD_CASES])
def test_gradients(kind, point, template, method):
    values = flat(template)
    expected = central_difference_gradient(loss_function(kind, template, method, "numpy"),
                                           values, step=1e-5)
    grads = {}
    for name in ("torch", "jax"):
        if name not in bt.backends.available():
            continue
        backend = bt.backends.get(name)
        point_values = {k: backend.asarray(v) for k, v in values.items()}
        _, grad = backend.value_and_grad(loss_function(kind, template, method, name))(
            point_values)
        grads[name] = {k: float(backend.to_numpy(v)) for k, v in grad.items()}
        for key, g in grads[name].items():
            assert np.isfinite(g), (name, key)
            scale = max(abs(expected[key]), 1e-6 * max(abs(v) for v in expected.values()))
            assert abs(g - expected[key]) <= 1e-6 * scale + 1e-9, (name, key, g, expected[key])
    if len(grads) == 2:
        for key in values:
            a, b = grads["torch"][key], grads["jax"][key]
            assert abs(a - b) <= 1e-10 * max(abs(a), abs(b), 1e-300) + 1e-14, (key, a, b)
