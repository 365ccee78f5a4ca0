"""The ``beamtrack`` command line."""

from __future__ import annotations

import subprocess
import sys

import pytest

import beamtrack as bt
from beamtrack.cli import main


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_track_default_lattice(capsys):
    code, out, _ = run(capsys, "track", "--particles", "500")
    assert code == 0
    assert "fodo" in out and "500 particles" in out and "backend numpy" in out
    lines = out.splitlines()
    assert lines[2].split()[:3] == ["element", "s", "[m]"]
    start, end = lines[3].split(), lines[4].split()
    assert start[0] == "(start)" and end[0] == "(end)"
    assert float(end[1]) == pytest.approx(4.8)
    assert int(end[2]) == 500


def test_track_each_prints_every_element(capsys):
    code, out, _ = run(capsys, "track", "--particles", "100", "--each", "--method", "linear")
    assert code == 0
    names = [line.split()[0] for line in out.splitlines()[4:]]
    assert names == bt.load(bt.EXAMPLE_LATTICE).names()


def test_track_same_statistics_on_every_backend(capsys):
    outputs = {}
    for name in bt.backends.available():
        code, out, _ = run(capsys, "track", "--particles", "200", "--backend", name, "--seed", "3")
        assert code == 0
        outputs[name] = out.splitlines()[-1]
    assert len(set(outputs.values())) == 1, outputs


def test_track_custom_lattice(tmp_path, capsys):
    path = tmp_path / "line.json"
    bt.save(bt.Beamline([bt.Drift("only", length=2.5)], name="mine"), path)
    code, out, _ = run(capsys, "track", str(path), "--particles", "50", "--p0c", "2e8",
                       "--species", "proton")
    assert code == 0 and "mine" in out
    assert float(out.splitlines()[-1].split()[1]) == pytest.approx(2.5)


def test_crosscheck_passes(capsys):
    code, out, _ = run(capsys, "crosscheck", "--particles", "300")
    assert code == 0
    rows = [line for line in out.splitlines()
            if line.startswith(("bmad", "linear", "second_order"))]
    others = [b for b in bt.backends.available() if b != "numpy"]
    assert len(rows) == 3 * max(len(others), 1)
    assert all(row.endswith("ok") for row in rows if others)


def test_crosscheck_fails_above_tolerance(capsys):
    if len(bt.backends.available()) < 2:
        pytest.skip("needs a second backend")
    code, out, _ = run(capsys, "crosscheck", "--particles", "300", "--tolerance", "-1")
    assert code == 1 and "FAIL" in out


def test_backends_lists_versions(capsys):
    code, out, _ = run(capsys, "backends")
    assert code == 0
    assert "numpy" in out and "cupy" in out
    import numpy as np

    assert np.__version__ in out


def test_errors_exit_nonzero(tmp_path, capsys):
    code, _, err = run(capsys, "track", str(tmp_path / "missing.json"))
    assert code == 2 and "missing.json" in err
    code, _, err = run(capsys, "track", "--particles", "0")
    assert code == 2 and "--particles" in err
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "beamtrack-lattice", "version": 1, "beamline": {"kind": '
                   '"Beamline", "name": "l", "elements": [{"kind": "Drift", "name": "d", '
                   '"length": -1e999}]}}')
    code, _, err = run(capsys, "track", str(bad))
    assert code == 2 and "'d'" in err and "length" in err
    code, _, err = run(capsys, "track", "--species", "muonium")
    assert code == 2 and "muonium" in err


def test_console_script_entry_point():
    result = subprocess.run([sys.executable, "-m", "beamtrack.cli", "track", "--particles", "20"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "(end)" in result.stdout


def test_track_each_keeps_long_names_whole(tmp_path, capsys):
    path = tmp_path / "line.json"
    bt.save(bt.Beamline([bt.Drift("drift_upstream_1", length=1.0),
                         bt.Drift("drift_upstream_2", length=0.5)], name="long"), path)
    code, out, _ = run(capsys, "track", str(path), "--each", "--particles", "20")
    assert code == 0
    rows = [line.split()[0] for line in out.splitlines()[-2:]]
    assert rows == ["drift_upstream_1", "drift_upstream_2"]
