"""The Particles record, coordinate conversions and species."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
from conftest import (
    ELECTRON_MC2,
    P0C,
    PROTON_MC2,
    alive_np,
    make_particles,
    random_beam,
    to_np,
)

from beamtrack.backends import available, get
from beamtrack.tracking import (
    COORDINATES,
    SPECIES,
    ParameterError,
    Particles,
    Species,
    antimuon,
    antiproton,
    centroid,
    deuteron,
    electron,
    from_cheetah,
    from_madx,
    from_xsuite,
    muon,
    positron,
    proton,
    species,
    to_cheetah,
    to_madx,
    to_xsuite,
    track_drift,
)

mpmath.mp.dps = 40


def _six(backend, array):
    """The six rows of an (6, n) NumPy array as arrays of ``backend``."""
    return [backend.asarray(row) for row in array]


# -- construction -----------------------------------------------------------------------------


def test_positional_keyword_coords_and_from_array_agree(xp):
    beam = random_beam(5, seed=1)  # (n, 6)
    rows = beam.T.copy()
    positional = Particles(*_six(xp, rows), p0c=P0C, mc2=ELECTRON_MC2)
    keyword = Particles(**dict(zip(COORDINATES, _six(xp, rows))), p0c=P0C, mc2=ELECTRON_MC2)
    direct = Particles(coords=xp.asarray(rows), p0c=P0C, mc2=ELECTRON_MC2)
    from_array = Particles.from_array(xp.asarray(beam), p0c=P0C, mc2=ELECTRON_MC2)
    for p in (positional, keyword, direct, from_array):
        assert p.backend == xp.name
        assert tuple(p.coords.shape) == (6, 5)
        assert p.n == 5 and p.batch_shape == ()
        np.testing.assert_array_equal(to_np(p), rows)
        for i, name in enumerate(COORDINATES):
            view = getattr(p, name)
            assert tuple(view.shape) == (5,)
            np.testing.assert_array_equal(xp.to_numpy(view), rows[i])
        np.testing.assert_array_equal(xp.to_numpy(p.to_array()), beam)
        assert float(xp.to_numpy(p.p0c)) == P0C
        assert float(xp.to_numpy(p.mc2)) == ELECTRON_MC2
        assert float(xp.to_numpy(p.s)) == 0.0


def test_batched_record_and_alive_default(xp):
    beam = random_beam(12, seed=2).reshape(3, 4, 6)
    p = make_particles(xp.name, beam)
    assert p.batch_shape == (3,) and p.n == 4
    assert tuple(p.coords.shape) == (3, 6, 4)
    assert tuple(p.x.shape) == (3, 4)
    np.testing.assert_array_equal(xp.to_numpy(p.pz), beam[..., 5])
    alive = alive_np(p)
    assert alive.shape == (3, 4) and alive.dtype == np.bool_ and alive.all()


def test_integers_become_float64_and_shapes_broadcast(xp):
    """Integer coordinates are stored as float64; a (1,) row broadcasts against (4,)."""
    zeros = xp.asarray(np.zeros(4), dtype="int64")
    one = xp.asarray(np.ones(1), dtype="int64")
    p = Particles(zeros, one, zeros, zeros, zeros, zeros, p0c=P0C, mc2=ELECTRON_MC2)
    assert p.dtype == xp.namespace().float64
    assert tuple(p.coords.shape) == (6, 4)
    np.testing.assert_array_equal(xp.to_numpy(p.px), np.ones(4))


def test_construction_errors():
    z = np.zeros(3)
    with pytest.raises(ParameterError, match="pz"):
        Particles(z, z, z, z, z, p0c=P0C, mc2=ELECTRON_MC2)
    with pytest.raises(ParameterError, match="coords"):
        Particles(z, z, z, z, z, z, coords=np.zeros((6, 3)), p0c=P0C, mc2=ELECTRON_MC2)
    with pytest.raises(ParameterError, match=r"\(\*batch, 6, n\)"):
        Particles(coords=np.zeros((5, 3)), p0c=P0C, mc2=ELECTRON_MC2)
    with pytest.raises(ParameterError, match=r"\(\*batch, n, 6\)"):
        Particles.from_array(np.zeros((3, 5)), p0c=P0C, mc2=ELECTRON_MC2)
    with pytest.raises(ParameterError, match="p0c"):
        Particles(coords=np.zeros((6, 3)), p0c="1e9", mc2=ELECTRON_MC2)


def test_reference_from_other_library_rejected(xp):
    other = get("numpy" if xp.name != "numpy" else "array_api_strict")
    with pytest.raises(ParameterError, match="mc2"):
        Particles(coords=xp.asarray(np.zeros((6, 2))), p0c=P0C, mc2=other.asarray(1.0))


# -- immutability and replace --------------------------------------------------------------


def test_immutable(xp):
    p = make_particles(xp.name, random_beam(3, seed=3))
    for name, value in (("x", 1.0), ("coords", None), ("p0c", 2.0), ("new_field", 0)):
        with pytest.raises(AttributeError):
            setattr(p, name, value)
    with pytest.raises(AttributeError):
        p._coords = None


def test_replace(xp):
    beam = random_beam(3, seed=4)
    p = make_particles(xp.name, beam, s=2.0)
    before = to_np(p).copy()
    q = p.replace(x=xp.asarray(np.array([1.0, 2.0, 3.0])), p0c=2e9)
    np.testing.assert_array_equal(to_np(p), before)  # original untouched
    assert float(xp.to_numpy(p.p0c)) == P0C
    np.testing.assert_array_equal(xp.to_numpy(q.x), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(to_np(q)[1:], before[1:])
    assert float(xp.to_numpy(q.p0c)) == 2e9
    assert float(xp.to_numpy(q.s)) == 2.0
    r = p.replace(coords=xp.asarray(np.zeros((6, 3))), alive=xp.asarray(np.array([1, 0, 1]),
                                                                        dtype="bool"))
    np.testing.assert_array_equal(to_np(r), 0.0)
    np.testing.assert_array_equal(alive_np(r), [True, False, True])
    with pytest.raises(ParameterError, match="unknown"):
        p.replace(zeta=1.0)


# -- backends -----------------------------------------------------------------------------


def test_to_backend_round_trip(xp):
    beam = random_beam(4, seed=5)
    alive = np.array([True, False, True, True])
    p = Particles.from_array(beam, p0c=P0C, mc2=ELECTRON_MC2, s=1.25, alive=alive)
    there = p.to_backend(xp.name)
    assert there.backend == xp.name
    assert xp.owns(there.coords) and xp.owns(there.alive) and xp.owns(there.p0c)
    back = there.to_backend("numpy")
    assert back.backend == "numpy"
    np.testing.assert_array_equal(to_np(back), beam.T)
    np.testing.assert_array_equal(alive_np(back), alive)
    assert back.dtype == np.float64
    for name in ("s", "p0c", "mc2"):
        assert float(getattr(back, name)) == float(getattr(p, name))
    # And from there to every other usable backend.
    for other in available():
        moved = there.to_backend(other)
        assert moved.backend == other
        np.testing.assert_array_equal(to_np(moved), beam.T)


def test_to_backend_float32(xp):
    beam = random_beam(4, seed=6)
    p = make_particles("numpy", beam).to_backend(xp.name, dtype="float32")
    assert p.dtype == xp.namespace().float32
    np.testing.assert_allclose(to_np(p), beam.T, rtol=1e-7)


# -- conversions --------------------------------------------------------------------------

CASES = {
    "electron 1 GeV": (P0C, ELECTRON_MC2),
    "proton 50 MeV/c": (5e7, PROTON_MC2),
}


def _conversion_beam():
    beam = random_beam(6, seed=7, scale=1e-3)
    beam[:, 5] = [-0.1, -1e-3, 0.0, 1e-6, 2e-3, 0.08]
    return beam


def _mp_reference(beam, p0c, mc2):
    """beta, beta0, (E - E0)/p0c and E0 per particle, in mpmath (no cancellation)."""
    p0c_m, mc2_m = mpmath.mpf(p0c), mpmath.mpf(mc2)
    e0 = mpmath.sqrt(p0c_m**2 + mc2_m**2)
    out = []
    for pz in beam[:, 5]:
        pc = (1 + mpmath.mpf(pz)) * p0c_m
        e = mpmath.sqrt(pc**2 + mc2_m**2)
        out.append((pc / e, p0c_m / e0, (e - e0) / p0c_m))
    beta, beta0, de = (np.array([float(v[i]) for v in out]) for i in range(3))
    return beta, beta0, de, float(e0)


@pytest.mark.parametrize("case", list(CASES))
def test_xsuite(xp, case):
    """zeta = z beta0/beta, delta = pz; and back."""
    p0c, mc2 = CASES[case]
    beam = _conversion_beam()
    p = make_particles(xp.name, beam, p0c=p0c, mc2=mc2)
    beta, beta0, _, _ = _mp_reference(beam, p0c, mc2)
    xs = {k: xp.to_numpy(v) for k, v in to_xsuite(p).items()}
    np.testing.assert_allclose(xs["zeta"], beam[:, 4] * beta0 / beta, rtol=2e-15)
    np.testing.assert_array_equal(xs["delta"], beam[:, 5])
    for name in ("x", "px", "y", "py"):
        np.testing.assert_array_equal(xs[name], beam[:, COORDINATES.index(name)])
    back = from_xsuite(*(xp.asarray(xs[k]) for k in ("x", "px", "y", "py", "zeta", "delta")),
                       p0c=p0c, mc2=mc2)
    np.testing.assert_allclose(to_np(back), beam.T, rtol=1e-15, atol=0)


@pytest.mark.parametrize("case", list(CASES))
def test_madx(xp, case):
    """t = z/beta (= -c dt), pt = (E - E0)/(p0 c); and back."""
    p0c, mc2 = CASES[case]
    beam = _conversion_beam()
    p = make_particles(xp.name, beam, p0c=p0c, mc2=mc2)
    beta, _, de, _ = _mp_reference(beam, p0c, mc2)
    mx = {k: xp.to_numpy(v) for k, v in to_madx(p).items()}
    np.testing.assert_allclose(mx["t"], beam[:, 4] / beta, rtol=2e-15)
    np.testing.assert_allclose(mx["pt"], de, rtol=2e-15, atol=0)
    # Direct float64 energies agree within their own cancellation error.
    e = np.sqrt(((1 + beam[:, 5]) * p0c) ** 2 + mc2**2)
    e0 = np.sqrt(p0c**2 + mc2**2)
    np.testing.assert_allclose(mx["pt"], (e - e0) / p0c, rtol=0, atol=4 * e0 / p0c * 2.3e-16)
    back = from_madx(*(xp.asarray(mx[k]) for k in ("x", "px", "y", "py", "t", "pt")),
                     p0c=p0c, mc2=mc2)
    np.testing.assert_allclose(to_np(back), beam.T, rtol=1e-15, atol=1e-21)


@pytest.mark.parametrize("case", list(CASES))
def test_cheetah(xp, case):
    """tau = -z/beta, delta = (E - E0)/(p0 c), energy = E0; and back."""
    p0c, mc2 = CASES[case]
    beam = _conversion_beam()
    p = make_particles(xp.name, beam, p0c=p0c, mc2=mc2)
    beta, _, de, e0 = _mp_reference(beam, p0c, mc2)
    ch = {k: xp.to_numpy(v) for k, v in to_cheetah(p).items()}
    np.testing.assert_allclose(ch["tau"], -beam[:, 4] / beta, rtol=2e-15)
    np.testing.assert_allclose(ch["delta"], de, rtol=2e-15, atol=0)
    assert float(ch["energy"]) == pytest.approx(e0, rel=1e-15)
    back = from_cheetah(*(xp.asarray(ch[k]) for k in ("x", "px", "y", "py", "tau", "delta")),
                        energy=float(ch["energy"]), mc2=mc2)
    # Cheetah's reference is the total energy: rounding E0 to float64 fixes p0c only to
    # eps (E0/p0c)^2 (d p0c / p0c = (E0/p0c)^2 dE0 / E0): 1 for 1 GeV electrons, 350
    # for 50 MeV/c protons. z, pz and p0c inherit that; x, px, y, py are untouched.
    conditioning = 2.3e-16 * (e0 / p0c) ** 2
    np.testing.assert_array_equal(to_np(back)[:4], beam.T[:4])
    np.testing.assert_allclose(to_np(back)[4:], beam.T[4:], rtol=max(1e-15, 2 * conditioning),
                               atol=1e-21)
    assert float(xp.to_numpy(back.p0c)) == pytest.approx(p0c, rel=max(1e-15, 2 * conditioning))


# -- species -------------------------------------------------------------------------------


def test_species_constants(bmad_reference):
    """CODATA 2022 rest energies, as in the Bmad reference file."""
    assert electron.mc2 == 510998.95069
    assert positron.mc2 == electron.mc2
    assert proton.mc2 == 938272089.43
    assert antiproton.mc2 == proton.mc2
    assert deuteron.mc2 == 1875612945.0
    assert (electron.charge, positron.charge, proton.charge, antiproton.charge,
            deuteron.charge) == (-1, 1, 1, -1, 1)
    ref = bmad_reference["species"]
    for s in (electron, positron, proton, antiproton, deuteron):
        assert s.mc2 == pytest.approx(ref[s.name]["mc2_eV"], rel=1e-15)
        assert s.charge == ref[s.name]["charge"]
        assert species(s.name) is s
    # muon: CODATA 2022 m_mu c^2 = 105.6583755 MeV
    assert muon.mc2 == antimuon.mc2 == 105658375.5
    assert (muon.charge, antimuon.charge) == (-1, 1)
    assert set(SPECIES) == {"electron", "positron", "proton", "antiproton", "deuteron",
                            "muon", "antimuon"}


def test_ion_matches_bmad(bmad_reference):
    carbon = Species.ion(12, 3)
    ref = bmad_reference["species"]["#12C+3"]
    assert carbon.mc2 == pytest.approx(ref["mc2_eV"], rel=1e-6)
    assert carbon.mc2 == pytest.approx(ref["mc2_eV"], rel=1e-13)  # the same formula
    assert carbon.charge == ref["charge"]


def test_species_errors():
    with pytest.raises(ValueError, match="unknown species"):
        species("pion")
    with pytest.raises(ValueError, match="mc2"):
        Species("ghost", -1.0, 0.0)
    with pytest.raises(ValueError, match="charge"):
        Species("nan", 1.0, float("nan"))


# -- statistics -----------------------------------------------------------------------------


def test_centroid_counts_alive_only(xp):
    beam = random_beam(5, seed=9)
    alive = np.array([True, False, True, True, False])
    p = make_particles(xp.name, beam, alive=alive)
    got = xp.to_numpy(centroid(p))
    np.testing.assert_allclose(got, beam[alive].mean(axis=0), rtol=1e-14)


# -- JAX pytree ------------------------------------------------------------------------------


def test_jax_pytree_and_jit():
    jax = pytest.importorskip("jax")
    p = make_particles("jax", random_beam(4, seed=10, scale=1e-2), s=0.5)
    leaves = jax.tree_util.tree_leaves(p)
    assert len(leaves) == 5
    assert all(isinstance(leaf, jax.Array) for leaf in leaves)
    assert sum(leaf.size for leaf in leaves) == 24 + 3 + 4
    rebuilt = jax.tree_util.tree_map(lambda a: a, p)
    assert isinstance(rebuilt, Particles)
    np.testing.assert_array_equal(to_np(rebuilt), to_np(p))

    eager = track_drift(p, length=1.0)
    jitted = jax.jit(lambda q: track_drift(q, length=1.0))(p)
    assert isinstance(jitted, Particles)
    np.testing.assert_allclose(to_np(jitted), to_np(eager), rtol=1e-15, atol=1e-19)
    np.testing.assert_array_equal(alive_np(jitted), alive_np(eager))
    assert float(jitted.s) == 1.5

    # Particles pass through jax transformations as arguments and results.
    def loss(coords, q):
        return jax.numpy.sum(track_drift(q.replace(coords=coords), length=2.0).x)

    g = np.asarray(jax.jit(jax.grad(loss))(p.coords, p))
    np.testing.assert_array_equal(g[0], 1.0)  # dx_out/dx_in
    # dx_out/dpx_in = L (1 + O(px^2)) / (1+pz)
    np.testing.assert_allclose(g[1], 2.0 / (1 + to_np(p)[5]), rtol=1e-3)
    np.testing.assert_array_equal(g[4], 0.0)
