"""Statistics recorded along the line, plots, and the ``beamtrack optics`` command."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_particles, random_beam

import beamtrack as bt
from beamtrack.cli import main
from beamtrack.lattice.optics import twiss
from beamtrack.lattice.recording import track_along


def test_track_along_equals_stepwise_statistics(xp):
    line = bt.load(bt.EXAMPLE_LATTICE)
    p = make_particles(xp.name, random_beam(300, seed=3))
    record = track_along(line, p)
    assert record.names == ("(start)", *line.names())
    steps = [p] + [out for _, out in line.track_each(p)]
    for i, particles in enumerate(steps):
        expected = bt.beam_statistics(particles)
        for key in ("sigma_x", "mean_y", "emittance_x"):
            assert float(xp.to_numpy(record[key][..., i])) == pytest.approx(
                float(xp.to_numpy(expected[key])), rel=1e-14, abs=1e-20)
    np.testing.assert_array_equal(xp.to_numpy(record.particles.coords),
                                  xp.to_numpy(steps[-1].coords))
    assert float(xp.to_numpy(record.s[..., -1])) == pytest.approx(4.8)


def test_track_along_selected_points_and_errors():
    line = bt.load(bt.EXAMPLE_LATTICE)
    p = make_particles("numpy", random_beam(20, seed=3))
    record = track_along(line, p, at=["qd1", "end"])
    assert record.names == ("(start)", "qd1", "end")
    assert record["sigma_x"].shape == (3,)
    with pytest.raises(bt.ParameterError, match="nope"):
        track_along(line, p, at=["nope"])


def test_plots_write_images(tmp_path):
    pytest.importorskip("matplotlib")
    from beamtrack.lattice import plotting

    line = bt.load(bt.EXAMPLE_LATTICE)
    p = make_particles("numpy", random_beam(500, seed=1))
    axes = [
        plotting.plot_twiss(twiss(line), line),
        plotting.plot_beam_sizes(track_along(line, p), line),
        plotting.plot_phase_space(p, "x", "px"),
        plotting.plot_phase_space(p, "y", "py", bins=20),
        plotting.plot_screen(np.ones((4, 5)), extent=(-1e-3, 1e-3, -1e-3, 1e-3)),
    ]
    for i, ax in enumerate(axes):
        path = tmp_path / f"plot{i}.png"
        ax.figure.savefig(path)
        assert path.stat().st_size > 1000
    # The lattice drawing has one box per magnet (4 quadrupoles in the FODO).
    drawing = plotting.draw_lattice(line)
    assert len(drawing.patches) == 4


def test_cli_optics(tmp_path, capsys):
    out_png = tmp_path / "optics.png"
    args = ["optics", "--plot", str(out_png)] if _has_mpl() else ["optics"]
    assert main(args) == 0
    out = capsys.readouterr().out
    tune = float(out.split("Q_x = ")[1].split(",")[0])
    assert tune == pytest.approx(float(twiss(bt.load(bt.EXAMPLE_LATTICE)).tune_x), abs=1e-6)
    if _has_mpl():
        assert out_png.stat().st_size > 1000
    assert main(["optics", "--beta-x", "8", "--beta-y", "3"]) == 0
    assert "single pass" in capsys.readouterr().out
    assert main(["optics", "--beta-x", "8"]) == 2


def _has_mpl() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def test_cli_plot_without_matplotlib_is_a_clear_error(monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails as if not installed
    assert main(["optics", "--plot", "unused.png"]) == 2
    assert "pip install beamtrack[plot]" in capsys.readouterr().err


def test_plot_labels_say_their_units(tmp_path):
    pytest.importorskip("matplotlib")
    from beamtrack.lattice import plotting

    p = make_particles("numpy", random_beam(100, seed=1))
    ax = plotting.plot_phase_space(p, "x", "px")
    assert ax.get_xlabel() == "x [m]" and "P_x/P_0" in ax.get_ylabel()
    assert ax.figure.get_layout_engine() is not None  # saved figures keep their labels
    # Without an extent the axes count pixels; with the screen they are in metres.
    assert plotting.plot_screen(np.ones((4, 5))).get_xlabel() == "x [pixel]"
    screen = bt.Screen("scr", resolution=(5, 4), pixel_size=(1e-4, 2e-4))
    ax = plotting.plot_screen(np.ones((4, 5)), screen=screen)
    assert ax.get_xlabel() == "x [m]"
    assert ax.images[0].get_extent() == pytest.approx([-2.5e-4, 2.5e-4, -4e-4, 4e-4])
