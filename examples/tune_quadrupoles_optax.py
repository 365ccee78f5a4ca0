"""Gradient-based tuning: optax Adam (JAX) sets 10 quadrupoles for a round 0.5 mm beam.

The JAX counterpart of ``tune_quadrupoles.py``: the same matching section, beam and
target, but the quadrupole strengths are a plain mapping ``"q0.k1" -> array`` that
``jax.value_and_grad`` differentiates and ``optax.adam`` updates inside one
``jax.jit``-compiled step. Needs ``pip install jax optax``.

    python examples/tune_quadrupoles_optax.py [--steps 200] [--particles 2000]
"""

from __future__ import annotations

import argparse
from typing import Any

import beamtrack as bt

Params = dict[str, Any]


def build_line() -> bt.Beamline:
    """The matching section of ``tune_quadrupoles.py``: 10 quadrupoles, then a screen.

    Returns
    -------
    Beamline
        Ten 0.2 m quadrupoles with alternating ``k1 = +-1`` [1/m^2], each followed by a
        0.8 m drift, ending at a 64 x 64 screen of 50 um pixels.
    """
    items = []
    for i in range(10):
        items += [bt.Quadrupole(f"q{i}", length=0.2, k1=1.0 if i % 2 == 0 else -1.0),
                  bt.Drift(f"d{i}", length=0.8)]
    items.append(bt.Screen("screen", resolution=(64, 64), pixel_size=(5e-5, 5e-5)))
    return bt.Beamline(items, name="matching_section")


def build_beam(particles: int) -> bt.Particles:
    """The incoming 1 GeV electron beam of ``tune_quadrupoles.py``, as JAX float64 arrays.

    Parameters
    ----------
    particles
        Number of macro-particles.

    Returns
    -------
    Particles
        Gaussian beam with ``beta_x = 10 m``, ``alpha_x = 1``, ``beta_y = 5 m``,
        ``alpha_y = -0.5``, geometric emittances of 20 nm in both planes and a relative
        momentum spread of 1e-3 (seed 1, so the same particles as the torch example).
    """
    return bt.Particles.from_twiss(particles, beta_x=10.0, alpha_x=1.0, emittance_x=2e-8,
                                   beta_y=5.0, alpha_y=-0.5, emittance_y=2e-8,
                                   sigma_pz=1e-3, p0c=1e9, mc2=bt.electron.mc2,
                                   backend="jax", seed=1)


def main(steps: int = 200, particles: int = 2000, target: float = 5e-4,
         learning_rate: float = 0.02) -> dict[str, Any]:
    """Tune the ten quadrupole strengths with optax Adam and report the result.

    Parameters
    ----------
    steps
        Number of Adam steps.
    particles
        Number of macro-particles tracked per step.
    target
        Wanted RMS beam size at the screen in both planes [m].
    learning_rate
        Adam step size [1/m^2 per step, in quadrupole ``k1``].

    Returns
    -------
    dict
        ``loss_start`` and ``loss_end`` (dimensionless sum of squared relative size
        errors), ``sigma_x`` and ``sigma_y`` at the screen after tuning [m], and ``k1``,
        the tuned strengths ``{"q0.k1": value, ...}`` [1/m^2].
    """
    import jax
    import jax.numpy as jnp
    import optax

    bt.backends.get("jax").enable_float64()
    line = build_line()
    beam = build_beam(particles)
    params: Params = {key: jnp.asarray(value, dtype=jnp.float64)
                      for key, value in line.parameters("q*.k1").items()}

    def beam_sizes(params: Params, beam: bt.Particles) -> tuple[Any, Any]:
        stats = bt.beam_statistics(line.with_parameters(params).track(beam))
        return stats["sigma_x"], stats["sigma_y"]

    def loss(params: Params, beam: bt.Particles) -> Any:
        sx, sy = beam_sizes(params, beam)
        return ((sx - target) / target) ** 2 + ((sy - target) / target) ** 2

    optimiser = optax.adam(learning_rate)

    @jax.jit
    def step(params: Params, state: optax.OptState,
             beam: bt.Particles) -> tuple[Params, optax.OptState, Any]:
        value, grads = jax.value_and_grad(loss)(params, beam)
        updates, state = optimiser.update(grads, state, params)
        return optax.apply_updates(params, updates), state, value

    state = optimiser.init(params)
    first = float(jax.jit(loss)(params, beam))
    for _ in range(steps):
        params, state, _ = step(params, state, beam)
    sx, sy = jax.jit(beam_sizes)(params, beam)
    sx, sy = float(sx), float(sy)
    result = {"loss_start": first,
              "loss_end": ((sx - target) / target) ** 2 + ((sy - target) / target) ** 2,
              "sigma_x": sx, "sigma_y": sy,
              "k1": {key: float(value) for key, value in params.items()}}
    print(f"loss {result['loss_start']:.3g} -> {result['loss_end']:.3g}; "
          f"sigma_x = {1e3 * sx:.3f} mm, sigma_y = {1e3 * sy:.3f} mm "
          f"(target {1e3 * target:.3f} mm)")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="Adam steps (default 200)")
    parser.add_argument("--particles", type=int, default=2000,
                        help="macro-particles (default 2000)")
    parser.add_argument("--learning-rate", type=float, default=0.02,
                        help="Adam step size in k1 [1/m^2] (default 0.02)")
    args = parser.parse_args()
    main(args.steps, args.particles, learning_rate=args.learning_rate)
