"""The backends layer: registry, lazy imports, precision guard, random numbers,
scatter-add and autodiff adapters."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import backend_or_skip, make_particles

import beamtrack
from beamtrack import backends
from beamtrack.backends import (
    KNOWN,
    BackendError,
    BackendUnavailableError,
    NoAutodiffError,
    available,
    get,
)
from beamtrack.tracking import Particles

#: Directory that holds the beamtrack package (for subprocesses).
ROOT = str(Path(beamtrack.__file__).resolve().parent.parent)


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter that can import beamtrack."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    environ["PYTHONPATH"] = os.pathsep.join([ROOT, environ.get("PYTHONPATH", "")])
    environ.update(env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=environ, timeout=120)


def test_registry():
    assert "numpy" in available()
    assert set(available()) <= set(KNOWN)
    assert set(KNOWN) == {"numpy", "torch", "jax", "cupy", "array_api_strict"}
    assert get("numpy").name == "numpy"


def test_unknown_backend():
    with pytest.raises(BackendUnavailableError, match="nonexistent"):
        get("nonexistent")


def test_import_is_lazy():
    """Importing beamtrack (and tracking numpy particles) imports no torch, jax, cupy."""
    result = run_python("""
        import sys
        import numpy as np
        import beamtrack, beamtrack.tracking, beamtrack.backends
        from beamtrack.tracking import Particles, track_drift, track_quadrupole
        p = Particles.from_array(np.full((3, 6), 1e-3), p0c=1e9, mc2=511e3)
        p = track_quadrupole(track_drift(p, length=1.0), length=0.5, k1=1.0, tilt=0.1)
        beamtrack.backends.available()
        print(sorted(m for m in ("torch", "jax", "cupy") if m in sys.modules))
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_jax_float64_guard():
    """Without jax_enable_x64, asking JAX for float64 raises PrecisionError saying how
    to enable it, instead of computing in float32 silently; float32 on request works."""
    pytest.importorskip("jax")
    result = run_python("""
        import jax
        from beamtrack.backends import PrecisionError, get
        assert not jax.config.read("jax_enable_x64")
        jx = get("jax")
        try:
            jx.asarray([1.0])
        except PrecisionError as exc:
            print("raised:", exc)
        print(jx.asarray([1.0], dtype="float32").dtype)
    """)
    assert result.returncode == 0, result.stderr
    assert "raised:" in result.stdout
    assert "jax_enable_x64" in result.stdout
    assert result.stdout.strip().endswith("float32")


def test_asarray_default_float64(xp):
    a = xp.asarray([1.0, 2.0])
    assert xp.owns(a)
    assert a.dtype == xp.namespace().float64
    assert xp.asarray([1.0], dtype="float32").dtype == xp.namespace().float32
    np.testing.assert_array_equal(xp.to_numpy(a), [1.0, 2.0])


def test_normal_identical_on_every_backend(xp):
    """One seed gives the same numbers everywhere: NumPy's PCG64 standard normals."""
    expected = np.random.Generator(np.random.PCG64(42)).standard_normal((3, 5))
    got = xp.normal((3, 5), seed=42)
    assert xp.owns(got)
    assert got.dtype == xp.namespace().float64
    np.testing.assert_array_equal(xp.to_numpy(got), expected)
    np.testing.assert_array_equal(get("numpy").normal((3, 5), seed=42), expected)
    assert not np.array_equal(xp.to_numpy(xp.normal((3, 5), seed=43)), expected)


def test_scatter_add_repeated_indices(xp):
    target = xp.asarray(np.arange(5.0))
    indices = xp.asarray(np.array([0, 2, 2, 4, 0, 2]), dtype="int64")
    values = xp.asarray(np.array([1.0, 2.0, 3.0, 4.0, 5.0, 0.5]))
    out = xp.scatter_add(target, indices, values)
    np.testing.assert_array_equal(xp.to_numpy(out), [6.0, 1.0, 7.5, 3.0, 8.0])
    np.testing.assert_array_equal(xp.to_numpy(target), np.arange(5.0))  # not modified
    # Rows of a 2-d grid (deposition onto axis 0).
    grid = xp.asarray(np.zeros((3, 2)))
    rows = xp.asarray(np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
    out = xp.scatter_add(grid, xp.asarray(np.array([1, 1, 0]), dtype="int64"), rows)
    np.testing.assert_array_equal(xp.to_numpy(out), [[5.0, 6.0], [4.0, 6.0], [0.0, 0.0]])


def test_value_and_grad(ad):
    xp = ad.namespace()
    x = np.array([1.0, -2.0, 0.5])
    value, grad = ad.value_and_grad(lambda a: xp.sum(a**2))(ad.asarray(x))
    assert float(ad.to_numpy(value)) == 5.25
    np.testing.assert_array_equal(ad.to_numpy(grad), 2 * x)
    # argnums picks the argument.
    value, grad = ad.value_and_grad(lambda a, b: xp.sum(a * b**3), argnums=1)(
        ad.asarray(x), ad.asarray(np.array([1.0, 2.0, 3.0])))
    np.testing.assert_array_equal(ad.to_numpy(grad), 3 * x * np.array([1.0, 4.0, 9.0]))


@pytest.mark.parametrize("name", ["numpy", "array_api_strict", "cupy"])
def test_no_autodiff(name):
    backend = backend_or_skip(name)
    with pytest.raises(NoAutodiffError, match=r"(?s)torch.*jax"):
        backend.value_and_grad(lambda a: a)


def test_jit_compiles_jax_and_is_identity_without_compiler(xp):
    def f(a):
        return a * 2.0

    jitted = xp.jit(f)
    if xp.name in ("numpy", "array_api_strict", "cupy"):
        assert jitted is f
    np.testing.assert_array_equal(xp.to_numpy(jitted(xp.asarray([1.5]))), [3.0])


def test_backend_of_and_mixing(xp):
    a = xp.asarray([1.0])
    assert backends.backend_of(a).name == xp.name
    if xp.name != "numpy":
        with pytest.raises(BackendError, match="cannot be mixed"):
            backends.namespace_of(a, np.zeros(1))
    with pytest.raises(BackendError):
        backends.backend_of([1.0])


def test_to_backend_copies_read_only_memory():
    """Moving particles from JAX (immutable, read-only host buffers) to torch copies:
    an in-place torch operation must not change the JAX record."""
    jax = backend_or_skip("jax")
    backend_or_skip("torch")
    p = make_particles("jax", np.zeros((2, 6)))
    t = p.to_backend("torch")
    t.coords.add_(1.0)
    np.testing.assert_array_equal(jax.to_numpy(p.coords), 0.0)
    # The same for a read-only NumPy view.
    view = np.broadcast_to(np.zeros(6), (6, 6))
    tensor = get("torch").asarray(view)
    tensor.add_(1.0)
    np.testing.assert_array_equal(view, 0.0)


def test_particles_follow_their_backend(xp):
    p = Particles(coords=xp.asarray(np.zeros((6, 2))), p0c=1e9, mc2=511e3)
    assert p.backend == xp.name
    assert p.xp is not None
    assert xp.owns(p.alive)
