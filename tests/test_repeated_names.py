"""A name means one definition: repeated elements and nested lines, their occurrences,
and the reference particle a line carries."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ELECTRON_MC2, P0C, make_particles, random_beam, to_np

import beamtrack as bt

QF = bt.Quadrupole("qf", length=0.3, k1=1.1)
QD = bt.Quadrupole("qd", length=0.3, k1=-1.0)
DRIFT = bt.Drift("d", length=1.2)
BPM = bt.Monitor("bpm")
CELL = bt.Beamline([QF, DRIFT, BPM, QD, DRIFT], name="cell")
RING = bt.Beamline([CELL, CELL, CELL, CELL], name="ring")


def unrolled(k1_qf: float = 1.1, k1_qd: float = -1.0, offsets: dict | None = None):
    """The ring with every element a distinct, uniquely named object (the reference)."""
    items = []
    for cell in range(4):
        for i, e in enumerate(CELL.items):
            params = {"k1": k1_qf} if e.name == "qf" else {"k1": k1_qd} if e.name == "qd" else {}
            position = cell * 5 + i
            params.update((offsets or {}).get(position, {}))
            e = e.replace(**params) if params else e
            items.append(e.replace(name=f"{e.name}_{position}") if hasattr(e, "replace") else e)
    return bt.Beamline(items, name="flat")


def test_structure_of_a_repeated_line():
    assert len(RING) == 20
    assert RING.occurrences("qf") == (0, 5, 10, 15)
    assert RING.occurrences("d") == (1, 4, 6, 9, 11, 14, 16, 19)
    assert RING.occurrences("cell") == (0, 5, 10, 15)
    assert RING["qf"] is QF
    assert "qf" in RING and "cell" in RING
    # one parameter per definition
    assert list(RING.parameters("q*.k1")) == ["qf.k1", "qd.k1"]


def test_tracking_equals_the_unrolled_line(xp):
    beam = make_particles(xp.name, random_beam(16, seed=3))
    for method in ("bmad", "linear"):
        np.testing.assert_array_equal(to_np(RING.track(beam, method)),
                                      to_np(unrolled().track(beam, method)))


def test_replace_changes_every_occurrence():
    changed = RING.with_parameters({"qf.k1": 1.3})
    assert [e.k1 for e in changed if e.name == "qf"] == [1.3] * 4
    assert changed["cell"] is changed.items[3]  # still one definition
    beam = make_particles("numpy", random_beam(8, seed=4))
    np.testing.assert_array_equal(to_np(changed.track(beam)),
                                  to_np(unrolled(k1_qf=1.3).track(beam)))
    assert RING.replace("qd", k1=-0.9)["qd"].k1 == -0.9


def test_replace_at_one_occurrence_misaligns_one_magnet():
    position = RING.occurrences("qf")[2]
    line = RING.replace_at(position, x_offset=2e-4)
    assert line.names()[position] == "qf#3"
    assert [item.name for item in line.items] == ["cell", "cell", "cell#3", "cell"]
    assert line["qf"].x_offset == 0.0 and line["qf#3"].x_offset == 2e-4
    beam = make_particles("numpy", random_beam(8, seed=5))
    np.testing.assert_array_equal(
        to_np(line.track(beam)), to_np(unrolled(offsets={10: {"x_offset": 2e-4}}).track(beam)))
    named = RING.replace_at(0, name="qf_shifted", y_offset=1e-4)
    assert named.names()[0] == "qf_shifted"
    with pytest.raises(IndexError, match="position 20"):
        RING.replace_at(20, x_offset=1.0)


def test_gradient_of_a_repeated_parameter_is_the_sum_over_occurrences(ad):
    """d loss / d k1(qf) with qf at four places equals the central difference of the
    loss, and the sum of the gradients of the four occurrences set separately."""
    beam = make_particles(ad.name, random_beam(12, seed=6))

    def loss(k1):
        out = RING.with_parameters({"qf.k1": k1}).track(beam)
        return bt.beam_statistics(out)["sigma_x"] * 1e3

    _, grad = ad.value_and_grad(loss)(ad.asarray(1.1))
    beam_np = make_particles("numpy", random_beam(12, seed=6))

    def loss_np(k1):
        out = unrolled(k1_qf=k1).track(beam_np)
        return float(bt.beam_statistics(out)["sigma_x"]) * 1e3

    h = 1e-6
    expected = (loss_np(1.1 + h) - loss_np(1.1 - h)) / (2 * h)
    assert float(ad.to_numpy(grad)) == pytest.approx(expected, rel=1e-6)


def test_observation_of_repeated_monitors_and_losses():
    beam = make_particles("numpy", random_beam(20, seed=7, scale=2e-3))
    line = bt.Beamline([CELL, bt.Aperture("ap", x_limit=2e-3), CELL,
                        bt.Aperture("ap", x_limit=2e-3)], name="two")
    obs = line.observe(beam)
    assert list(obs.readings) == ["bpm#1", "bpm#2"]
    lost_first = int(obs.lost_at.tolist().count(5))
    lost_second = int(obs.lost_at.tolist().count(11))
    assert lost_first > 0
    assert int(obs.lost_in("ap")) == lost_first + lost_second
    with pytest.raises(KeyError, match="occurs 2 times"):
        obs.index("ap")


def test_merged_repeated_line_tracks_like_the_original():
    beam = make_particles("numpy", random_beam(10, seed=8))
    fused = RING.merged(method="linear")
    maps = [e.name for e in fused if isinstance(e, bt.LinearMap)]
    assert maps == ["qf..d", "qd..d", "qd..d#2", "qd..d#3", "qd..d#4"]
    assert fused.occurrences("bpm") == (1, 3, 5, 7)
    np.testing.assert_allclose(to_np(fused.track(beam)), to_np(RING.track(beam, "linear")),
                               rtol=0, atol=1e-15)


def test_reference_is_used_where_no_p0c_is_given():
    ref = bt.Reference.from_energy("proton", kinetic_energy=160e6)
    cavity = bt.RFCavity("cav", length=0.5, voltage=1e6, frequency=352e6, phi0=0.1)
    line = bt.Beamline([QF, DRIFT, cavity, QD], reference=ref)
    r_default, _ = bt.transfer_map(line)
    r_given, _ = bt.transfer_map(line, p0c=ref.p0c, mc2=ref.mc2)
    np.testing.assert_array_equal(r_default, r_given)
    r_electron, _ = bt.transfer_map(line.with_reference(None))
    assert not np.allclose(r_default, r_electron)  # R56 and the cavity depend on it
    table = bt.twiss(bt.Beamline([CELL], reference=ref))
    assert float(table.tune_x) == pytest.approx(float(bt.twiss(CELL).tune_x), rel=1e-14)
    beam = bt.gaussian_particles(4, sigma=[1e-3] * 6, reference=line.reference)
    assert (beam.p0c, beam.mc2) == (ref.p0c, ref.mc2)


def test_reference_validation():
    assert bt.Reference("electron", 1e9).mc2 == ELECTRON_MC2
    assert bt.Reference.from_energy(bt.electron, gamma=2.0).p0c == pytest.approx(
        np.sqrt(3.0) * ELECTRON_MC2, rel=1e-15)
    for bad in (0.0, -1e9, float("nan"), float("inf")):
        with pytest.raises(bt.ParameterError, match="p0c"):
            bt.Reference("electron", bad)
    with pytest.raises(bt.ParameterError, match="rest energy"):
        bt.Reference.from_energy("proton", e_tot=1e8)
    with pytest.raises(bt.ParameterError, match="exactly one"):
        bt.Reference.from_energy("proton", e_tot=1e10, p0c=1e10)
    with pytest.raises(bt.LatticeError, match="Reference"):
        bt.Beamline([DRIFT], reference=(P0C, ELECTRON_MC2))


def test_json_round_trip_keeps_reference_and_one_definition(tmp_path):
    line = RING.with_reference(bt.Reference.from_energy("positron", p0c=3e9))
    path = tmp_path / "ring.json"
    bt.save(line, path)
    back = bt.load(path)
    assert back == line
    assert back.reference == line.reference
    assert back["cell"] is back.items[2]  # equal repeated definitions are one object again
    beam = make_particles("numpy", random_beam(6, seed=9))
    np.testing.assert_array_equal(to_np(back.track(beam)), to_np(line.track(beam)))


def test_load_chooses_the_format_from_the_extension(tmp_path):
    with pytest.raises(bt.LatticeFileError, match="extension"):
        bt.load(tmp_path / "ring.txt")
    with pytest.raises(bt.LatticeFileError, match="unknown lattice format 'xml'"):
        bt.load(tmp_path / "ring.json", format="xml")
    path = tmp_path / "ring.lattice"
    bt.save(RING, path, format="json")
    assert bt.load(path, format="json") == RING


def test_cli_convert_and_reference(tmp_path, capsys):
    from beamtrack.cli import main

    out = tmp_path / "fodo.json"
    assert main(["convert", str(bt.EXAMPLE_LATTICE), str(out), "--p0c", "2e9",
                 "--species", "proton"]) == 0
    assert "proton, p0c 2e+09 eV" in capsys.readouterr().out
    line = bt.load(out)
    assert line.reference == bt.Reference(bt.proton, 2e9)
    assert main(["optics", str(out)]) == 0
    assert "p0c 2e+09 eV" in capsys.readouterr().out
    assert main(["convert", str(out), str(tmp_path / "x.unknown")]) == 2
    assert "extension" in capsys.readouterr().err
