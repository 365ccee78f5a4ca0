"""One declaration per element kind, and the public compile plan built on it.

Each kind's parameters are declared once (``beamtrack.lattice.parameters``): the record,
its validation, ``parameters()``, ``arrays()``, its pytree, its docstring and the JSON
files read that declaration. Compilers use ``Beamline.plan``, ``Element.signature``,
``Element.arrays``, ``Element.rebuild`` and ``Particles.from_fields``.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from conftest import make_particles, random_beam, to_np

import beamtrack as bt
from beamtrack.lattice import ELEMENT_KINDS, LENGTH, MISALIGNMENT, SLICING, Parameter
from beamtrack.tracking.stepping import METHODS

#: Units a parameter may declare ("" for dimensionless or non-numeric parameters).
UNITS = {"", "m", "rad", "rad/2pi", "1/m", "1/m^2", "1/m^3", "1/m^4", "m^-n", "eV", "Hz"}


@pytest.mark.parametrize("kind", sorted(ELEMENT_KINDS))
def test_every_parameter_has_a_unit_and_a_meaning(kind):
    cls = ELEMENT_KINDS[kind]
    declaration = cls.declaration()
    fields = [f.name for f in dataclasses.fields(cls) if f.name not in ("name", "method")]
    assert list(declaration) == fields  # every field is declared, in field order
    for key, spec in declaration.items():
        assert isinstance(spec, Parameter), (kind, key)
        assert spec.unit in UNITS, (kind, key, spec.unit)
        assert spec.meaning.strip().endswith("."), (kind, key)
        # The generated docstring carries the type, the meaning and the unit.
        entry = f"{key} : {spec.type_text}\n"
        assert entry in cls.__doc__, (kind, key)
        text = " ".join(cls.__doc__.split(entry, 1)[1].split())
        assert text.startswith(spec.meaning), (kind, key)
        assert spec.type_text.endswith(f", in {spec.unit}") == bool(spec.unit), (kind, key)
        if spec.role == "choice":  # NumPy convention: the default first
            assert spec.type_text.startswith("{" + repr(spec.default)), (kind, key)


@pytest.mark.parametrize("kind", sorted(ELEMENT_KINDS))
def test_misalignment_and_slicing_come_from_the_shared_blocks(kind):
    declaration = ELEMENT_KINDS[kind].declaration()
    for block in (MISALIGNMENT, SLICING):
        for key, spec in block.items():
            if key in declaration:
                assert declaration[key] is spec, (kind, key)
    if "length" in declaration and declaration["length"].meaning == LENGTH.meaning:
        assert declaration["length"] is LENGTH


def test_block_membership_of_kinds():
    misaligned = {k for k, c in ELEMENT_KINDS.items() if "tilt" in c.declaration()}
    sliced = {k for k, c in ELEMENT_KINDS.items() if "num_steps" in c.declaration()}
    assert misaligned >= {"Quadrupole", "SBend", "RBend", "Monitor", "Screen", "Aperture",
                          "Multipole", "HKicker", "RFCavity", "CrabCavity", "Solenoid"}
    assert sliced >= {"Quadrupole", "SBend", "Sextupole", "Kicker", "LCavity", "Solenoid"}
    assert "Drift" not in misaligned | sliced


def test_parameter_order_is_kept():
    assert list(bt.SBend.declaration())[-5:] == ["tilt", "ref_tilt", "x_offset", "y_offset",
                                                  "num_steps"]
    assert list(bt.Monitor.declaration()) == ["x_offset", "y_offset", "tilt", "resolution",
                                              "seed"]
    assert list(bt.LCavity.declaration()) == ["length", "voltage", "phi0", "frequency",
                                              "num_steps", "tilt", "x_offset", "y_offset",
                                              "cavity_type"]


def test_records_are_plain_dataclasses():
    import inspect

    for cls in ELEMENT_KINDS.values():
        assert "__init__" in vars(cls) and not hasattr(cls.__init__, "__wrapped__")
        assert "__signature__" not in vars(cls) and "__signature__" not in vars(cls.__init__)
    parameters = inspect.signature(bt.Quadrupole).parameters
    assert list(parameters)[:2] == ["name", "method"]
    assert parameters["k1"].kind is inspect.Parameter.KEYWORD_ONLY


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: bt.Sextupole("s1", k2=math.inf), "Sextupole 's1': parameter 'k2' must be finite"),
        (lambda: bt.Quadrupole("q", num_steps=0),
         "Quadrupole 'q': parameter 'num_steps' must be an integer >= 1"),
        (lambda: bt.Monitor("m", seed=-1), "Monitor 'm': parameter 'seed' must be an integer >= 0"),
        (lambda: bt.Aperture("a", x_limit=-1.0), "Aperture 'a': parameter 'x_limit' must be >= 0"),
        (lambda: bt.Screen("s", deposit="paint"), "Screen 's': parameter 'deposit' must be one of"),
        (lambda: bt.Screen("s", resolution=(10,)), "Screen 's': parameter 'resolution' must be 2"),
        (lambda: bt.Multipole("mp", knl=(0.0, "x")), "Multipole 'mp': parameter 'knl[1]'"),
        (lambda: bt.Multipole("mp", ref_length=-0.5),
         "Multipole 'mp': parameter 'ref_length' must be >= 0"),
        (lambda: bt.SBend("b", fint_exit=math.nan), "SBend 'b': parameter 'fint_exit' must be"),
        (lambda: bt.Drift("d", method="fast"), "Drift 'd': parameter 'method' must be one of"),
        (lambda: bt.Drift("d", lenght=1.0), "Drift 'd': unknown parameter(s) lenght"),
    ],
)
def test_a_bad_value_names_element_and_parameter_once(build, message):
    with pytest.raises(bt.ParameterError) as info:
        build()
    text = str(info.value)
    assert text.startswith(message), text
    label = message.split(":")[0]
    assert text.count(label) == 1 and text.count(label.split()[0].lower() + ":") == 0, text


def test_method_choices_follow_the_tracking_methods():
    for method in METHODS:
        assert bt.Drift("d", method=method).method == method
    assert "method : {None, " + ", ".join(map(repr, METHODS)) + "}\n" in bt.Drift.__doc__


def _with_foreign_array(kind):
    """An element of ``kind`` with one NumPy-array parameter, and that parameter's name."""
    cls = ELEMENT_KINDS[kind]
    if kind == "Custom":
        return cls("e", function=lambda p, g: p, values={"g": np.asarray(0.1)}), "g"
    if kind == "LinearMap":
        return cls("e", r=np.eye(6)), "r"
    numbers = [k for k, s in cls.declaration().items() if s.role == "number"]
    key = next((k for k in numbers if k != "length"), numbers[0] if numbers else None)
    if key is None:
        return None, None
    extra = {"length": 1.0} if kind in ("SBend", "RBend") else {}
    return cls("e", **{key: np.asarray(0.1)}, **extra), key


@pytest.mark.parametrize("kind", sorted(ELEMENT_KINDS))
def test_tracker_error_is_labelled_once(kind):
    """A NumPy parameter with torch particles: the tracking function refuses it, and the
    message names the element once (not also the tracking function's own label)."""
    pytest.importorskip("torch")
    element, key = _with_foreign_array(kind)
    if element is None:
        pytest.skip(f"{kind} has no numeric parameter")
    particles = make_particles("torch", random_beam(3, seed=0))
    with pytest.raises(bt.ParameterError) as info:
        for call in ("track", "observe", "survival_factor"):
            getattr(element, call)(particles)
    text = str(info.value)
    assert text.startswith(f"{kind} 'e': parameter {key!r}"), text
    assert text.count("'e'") == 1 and f"{kind.lower()}:" not in text.lower(), text
    assert info.value.element == f"{kind} 'e'"


def test_plan_is_the_tracking_order_with_methods():
    inner = bt.Beamline([bt.Quadrupole("q2", k1=1.0, length=0.1),
                         bt.Drift("d2", length=0.3, method="bmad")], name="in",
                        method="linear")
    line = bt.Beamline([bt.Drift("d1", length=0.5), inner], name="out")
    plan = line.plan()
    assert isinstance(plan, tuple)
    assert [(e.name, m) for e, m in plan] == [("d1", "bmad"), ("q2", "linear"), ("d2", "bmad")]
    assert [m for _, m in line.plan("linear")] == ["linear", "linear", "bmad"]
    with pytest.raises(bt.ParameterError, match="Beamline 'out': unknown tracking method"):
        line.plan("exact")
    particles = make_particles("numpy", random_beam(4, seed=3))
    tracked = particles
    for element, method in plan:
        tracked = element.track(tracked, method)
    np.testing.assert_array_equal(to_np(tracked), to_np(line.track(particles)))


def test_signature_arrays_and_rebuild():
    quad = bt.Quadrupole("qf", length=0.2, k1=1.2, num_steps=3, tilt=0.01)
    other = bt.Quadrupole("qd", length=0.3, k1=-1.0, num_steps=3)
    assert quad.arrays() == {"length": 0.2, "k1": 1.2, "tilt": 0.01, "x_offset": 0.0,
                             "y_offset": 0.0}
    assert quad.numeric_parameters() == quad.arrays()
    assert hash(quad.signature("bmad")) == hash(other.signature("bmad"))
    assert quad.signature("bmad") == other.signature("bmad")
    assert quad.signature("bmad") != quad.signature("linear")
    assert quad.signature("bmad") != quad.replace(num_steps=2).signature("bmad")
    assert quad.replace(method="linear").signature("bmad")[1] == "linear"
    rebuilt = quad.rebuild({"k1": 2.5})
    assert type(rebuilt) is bt.Quadrupole and rebuilt.name == "qf"
    assert rebuilt.k1 == 2.5 and rebuilt.num_steps == 3 and quad.k1 == 1.2
    assert quad.rebuild(quad.arrays()) == quad
    with pytest.raises(bt.UnknownParameterError, match="Quadrupole 'qf'.*num_steps"):
        quad.rebuild({"num_steps": 4})
    bend = bt.SBend("b", length=1.0, angle=0.1)
    assert "fint_exit" not in bend.arrays()
    assert bend.rebuild({"fint_exit": 0.3}).fint_exit == 0.3
    # Unvalidated: values a constructor would refuse pass through (tracers, tensors).
    assert math.isnan(quad.rebuild({"k1": math.nan}).k1)


def test_rebuild_round_trips_custom_values_and_multipoles():
    def kick(particles, gain):
        return particles.replace(px=particles.px + gain)

    custom = bt.Custom("c", function=kick, length=0.1, values={"gain": 1e-3})
    assert custom.arrays() == {"length": 0.1, "gain": 1e-3}
    again = custom.rebuild({"gain": 2e-3})
    assert again.values == {"gain": 2e-3} and custom.values == {"gain": 1e-3}
    assert custom.rebuild(custom.arrays()) == custom
    multipole = bt.Multipole("mp", knl=[0.0, 0.5], ksl=(0.0,))
    assert multipole.knl == (0.0, 0.5)  # a list becomes a tuple
    assert multipole.rebuild({"knl": (0.0, 0.7)}).knl == (0.0, 0.7)


def test_rebuild_under_jax_jit():
    jax = pytest.importorskip("jax")
    quad = bt.Quadrupole("qf", length=0.2, k1=1.2)
    particles = make_particles("jax", random_beam(5, seed=4))

    @jax.jit
    def track(k1):
        return quad.rebuild({"k1": k1}).track(particles).coords

    np.testing.assert_allclose(np.asarray(track(1.5)),
                               to_np(quad.replace(k1=1.5).track(particles)),
                               rtol=1e-14, atol=1e-18)


def test_pytree_leaves_are_the_arrays():
    jax = pytest.importorskip("jax")
    bend = bt.SBend("b", length=1.0, angle=0.1, fringe_type="hard_edge")
    leaves, treedef = jax.tree_util.tree_flatten(bend)
    assert leaves == list(bend.arrays().values())
    assert jax.tree_util.tree_unflatten(treedef, leaves) == bend


def test_particles_from_fields_is_unvalidated_and_exact():
    particles = make_particles("numpy", random_beam(4, seed=5))
    again = bt.Particles.from_fields(particles.coords, particles.s, particles.p0c,
                                     particles.mc2, particles.alive)
    assert again.coords is particles.coords and again.alive is particles.alive
    np.testing.assert_array_equal(to_np(again), to_np(particles))


def test_json_reads_and_writes_the_declaration():
    line = bt.Beamline([bt.Multipole("mp", knl=(0.0, np.asarray([0.5, 0.6])))])
    text = bt.dumps(line)
    again = bt.loads(text)
    assert isinstance(again["mp"].knl, tuple)
    np.testing.assert_array_equal(again["mp"].knl[1], [0.5, 0.6])


def test_element_kind_refuses_undeclared_fields_and_bad_orders():
    from typing import Any

    from beamtrack.lattice import element_kind, param

    with pytest.raises(TypeError, match="declare gain"):
        @element_kind(register=False)
        class Plain(bt.Element):
            gain: Any = 1.0

    with pytest.raises(TypeError, match="order"):
        @element_kind(blocks=(MISALIGNMENT,), order=("gain", "tilt"), register=False)
        class Misordered(bt.Element):
            gain: Any = param(0.0, "", "Gain.")
