"""The misalignment keywords ``tilt``, ``x_offset``, ``y_offset`` are declared once
(:class:`beamtrack.tracking.frames.Misalignment`) and taken as ``**misalignment`` by
every tracking function of a misalignable element: they act as the element record's
fields do, and a misspelled keyword raises ``TypeError`` naming the element instead of
being ignored."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import ELECTRON_MC2, P0C, make_particles, random_beam

import beamtrack.tracking
from beamtrack.lattice import ELEMENT_KINDS, MISALIGNMENT
from beamtrack.tracking import track_rbend
from beamtrack.tracking.frames import MISALIGNMENT_KEYS, Misalignment, misalignment

#: Public functions taking ``**misalignment`` (and ``track_rbend``, which takes the
#: keywords of ``track_sbend``), with the element label of their errors.
LABELS = {
    "track_quadrupole": "quadrupole",
    "track_sextupole": "sextupole",
    "track_octupole": "octupole",
    "track_thick_multipole": "thick_multipole",
    "track_multipole": "multipole",
    "track_hkicker": "hkicker",
    "track_vkicker": "vkicker",
    "track_kicker": "kicker",
    "track_solenoid": "solenoid",
    "track_rfcavity": "rfcavity",
    "track_crab_cavity": "crab_cavity",
    "track_lcavity": "lcavity",
    "track_sbend": "sbend",
    "track_dipole_edge": "dipole_edge",
    "track_rbend": "rbend",
    "sbend_map": "sbend",
    "track_aperture": "aperture",
    "inside_aperture": "aperture",
    "aperture_factor": "aperture",
    "monitor_reading": "monitor",
    "screen_image": "screen",
}

#: Diagnostics of moment beams (``tracking/moment_diagnostics.py``) with
#: ``**misalignment``.
MOMENT_FUNCTIONS = {"transverse_moments", "monitor_reading_moments", "screen_image_moments",
                    "gaussian_transmission"}

#: The other arguments each function needs.
ARGUMENTS = {
    "track_quadrupole": dict(length=0.3, k1=2.5, num_steps=3),
    "track_sextupole": dict(length=0.2, k2=30.0, num_steps=2),
    "track_octupole": dict(length=0.2, k3=300.0),
    "track_thick_multipole": dict(length=0.3, knl=(0.001, 0.5, 10.0), ksl=(0.0, 0.1)),
    "track_multipole": dict(knl=(0.01, 0.5, 10.0), ksl=(0.002, 0.1)),
    "track_hkicker": dict(length=0.1, kick=1e-3),
    "track_vkicker": dict(length=0.0, kick=-1e-3),
    "track_kicker": dict(length=0.2, hkick=1e-3, vkick=2e-3),
    "track_solenoid": dict(length=0.5, ks=1.3),
    "track_rfcavity": dict(length=0.4, voltage=1e6, phi0=0.1, frequency=1.3e9),
    "track_crab_cavity": dict(length=0.3, voltage=2e5, phi0=0.02, frequency=1.3e9),
    "track_lcavity": dict(length=0.5, voltage=5e6, phi0=0.05, frequency=1.3e9),
    "track_dipole_edge": dict(h=0.4, e1=0.12, fint=0.5, hgap=0.03),
    "track_sbend": dict(length=1.0, angle=0.1, e1=0.03, fringe_type="basic_bend",
                        ref_tilt=0.2),
    "track_rbend": dict(length=1.0, angle=0.1, fringe_type="hard_edge"),
    "track_aperture": dict(shape="elliptical", x_limit=1.5e-3, y_limit=1e-3),
    "inside_aperture": dict(shape="elliptical", x_limit=1.5e-3, y_limit=1e-3),
    "aperture_factor": dict(shape="elliptical", x_limit=1.5e-3, y_limit=1e-3, smooth=1e-4),
    "monitor_reading": dict(resolution=1e-5, seed=3),
    "screen_image": dict(resolution=(20, 10), pixel_size=(2e-4, 2e-4), deposit="cic"),
}

#: A misalignment that changes the result of every element where misalignments matter.
MISALIGNED = dict(tilt=0.1, x_offset=2e-4, y_offset=-1e-4)


def _public_functions():
    """Every public function defined in a module of ``beamtrack.tracking``, by name."""
    found = {}
    for info in pkgutil.iter_modules(beamtrack.tracking.__path__):
        module = importlib.import_module(f"beamtrack.tracking.{info.name}")
        for name, obj in vars(module).items():
            if (not name.startswith("_") and inspect.isfunction(obj)
                    and obj.__module__ == module.__name__):
                found[name] = obj
    return found


FUNCTIONS = _public_functions()


def _call(name, particles, **keywords):
    """``FUNCTIONS[name]`` on ``particles`` (``sbend_map``: on their reference)."""
    if name == "sbend_map":
        return FUNCTIONS[name](np.asarray(1.0), 0.1, particles.p0c, particles.mc2, **keywords)
    return FUNCTIONS[name](particles, **ARGUMENTS[name], **keywords)


def _beam():
    return make_particles("numpy", random_beam(50, seed=11))


def _arrays(result):
    """The arrays of a tracking or observation result, as NumPy arrays."""
    if isinstance(result, beamtrack.tracking.Particles):
        return [np.asarray(result.coords), np.asarray(result.alive), np.asarray(result.p0c)]
    if isinstance(result, tuple):
        return [np.asarray(r) for r in result]
    return [np.asarray(result)]


def test_one_declaration():
    """The tracking declaration and the lattice block name the same keywords, default 0."""
    assert MISALIGNMENT_KEYS == tuple(Misalignment.__annotations__) == tuple(MISALIGNMENT)
    assert all(MISALIGNMENT[key].default == 0.0 for key in MISALIGNMENT_KEYS)
    assert misalignment({}, "quadrupole") == dict.fromkeys(MISALIGNMENT_KEYS, 0.0)
    tilt = np.asarray([0.1, 0.2])
    assert misalignment({"tilt": tilt}, "quadrupole")["tilt"] is tilt  # passed as given


def test_every_misalignable_function_takes_the_keywords_once():
    """The functions with ``**misalignment`` are exactly those listed here (so the tests
    below cover all of them), and no public function repeats the three keywords."""
    takes = {name for name, fn in FUNCTIONS.items()
             if (p := inspect.signature(fn).parameters.get("misalignment")) is not None
             and p.kind is inspect.Parameter.VAR_KEYWORD}
    # track_rbend and sbend_map take track_sbend's keywords (**params, bound through its
    # signature), misalignment included. The moment-beam diagnostics take a
    # ParameterBeam, not particles: tests/test_moment_beams.py covers them.
    assert takes == (set(LABELS) - {"track_rbend", "sbend_map"}) | MOMENT_FUNCTIONS
    for name, fn in FUNCTIONS.items():
        for key in MISALIGNMENT_KEYS:
            p = inspect.signature(fn).parameters.get(key)
            assert p is None or p.kind is not inspect.Parameter.KEYWORD_ONLY, (name, key)


def _record_calls():
    """``(function name, record, how the record calls it)`` for every element kind
    whose tracker, observer or survival factor takes the misalignment keywords."""
    calls = []
    for cls in ELEMENT_KINDS.values():
        if "tilt" not in cls.declaration():
            continue
        for role, call in (("tracker", "track"), ("observer", "observe"),
                           ("survival", "survival_factor")):
            fn = getattr(cls, role)
            if fn is not None and fn.__name__ in ARGUMENTS:
                calls.append(pytest.param(fn.__name__, cls, call,
                                          id=f"{cls.__name__}.{call}"))
    return calls


@pytest.mark.parametrize(("name", "cls", "call"), _record_calls())
def test_keywords_act_as_the_record_fields(name, cls, call):
    """Calling the function with ``tilt, x_offset, y_offset`` gives the element record's
    result with the same values, bit for bit, under every method; and the keywords are
    not ignored (the result differs from the aligned one where misalignments matter)."""
    particles = _beam()
    record = cls("e", **ARGUMENTS[name], **MISALIGNED)
    methods = ("bmad", "linear", "second_order") if call == "track" else (None,)
    for method in methods:
        options = {} if method is None else {"method": method}
        direct = _call(name, particles, **MISALIGNED, **options)
        recorded = getattr(record, call)(particles, *([method] if method else []))
        for a, b in zip(_arrays(direct), _arrays(recorded), strict=True):
            np.testing.assert_array_equal(a, b)
        if name == "track_rfcavity":
            continue  # axially symmetric: the misalignment changes nothing but rounding
        aligned = _call(name, particles, **options)
        assert any(not np.array_equal(a, b) for a, b in
                   zip(_arrays(direct), _arrays(aligned), strict=True)), (name, method)


def test_inside_aperture_and_sbend_map_take_the_keywords():
    """The two functions without a record of their own agree with the ones that have."""
    particles = _beam()
    inside = _call("inside_aperture", particles, **MISALIGNED)
    cut = _call("track_aperture", particles, **MISALIGNED)
    np.testing.assert_array_equal(inside, np.asarray(cut.alive))
    r, c = FUNCTIONS["sbend_map"](np.asarray(1.0), 0.1, P0C, ELECTRON_MC2, **MISALIGNED)
    c0 = FUNCTIONS["sbend_map"](np.asarray(1.0), 0.1, P0C, ELECTRON_MC2)[1]
    assert np.abs(c).max() > 1e-6 and np.array_equal(c0, np.zeros(6))
    one = make_particles("numpy", np.full((1, 6), 1e-4))
    out = FUNCTIONS["track_sbend"](one, length=1.0, angle=0.1, method="linear", **MISALIGNED)
    np.testing.assert_allclose(np.asarray(out.coords)[:, 0], r @ np.full(6, 1e-4) + c,
                               rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", sorted(LABELS))
def test_misspelled_keyword_is_refused(name):
    """``x_ofset=1e-3`` is never silently ignored: a TypeError names the element."""
    particles = _beam()
    call = track_rbend if name == "track_rbend" else None
    with pytest.raises(TypeError, match=rf"^{LABELS[name]}: unexpected keyword "
                                        r"argument\(s\) 'x_ofset'.*'x_offset'") as info:
        if call is not None:
            call(particles, **ARGUMENTS[name], x_ofset=1e-3)
        else:
            _call(name, particles, x_ofset=1e-3, tilt=0.1)
    assert "tilt" in str(info.value)  # lists the valid keywords


def test_typing_extensions_is_not_needed_at_run_time():
    """``Unpack`` is imported for type checkers only: beamtrack tracks without
    ``typing_extensions``."""
    code = (
        "import sys; sys.modules['typing_extensions'] = None\n"
        "import numpy as np, beamtrack as bt\n"
        "from beamtrack.tracking import track_sbend, monitor_reading\n"
        "p = bt.Particles(coords=np.zeros((6, 2)), p0c=1e9, mc2=0.511e6)\n"
        "track_sbend(p, length=1.0, angle=0.1, tilt=0.1, x_offset=1e-3)\n"
        "print(monitor_reading(p, x_offset=1e-3)[0])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) == -1e-3
