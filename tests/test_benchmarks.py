"""Smoke test of the benchmark suite: one cheap row, run as the documented command.

No timing assertions: the numbers only have to exist and be finite.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_suite_writes_a_finite_row(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    out = tmp_path / "bench.json"
    subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--only",
                    "eager-linear", "--repeats", "1", "--json", str(out)],
                   cwd=ROOT, check=True, capture_output=True, text=True, timeout=120)
    data = json.loads(out.read_text())
    rows = [r for r in data["rows"] if r["id"] == "eager-linear"]
    assert len(rows) == 1
    assert math.isfinite(rows[0]["beamtrack"]) and rows[0]["beamtrack"] > 0
    if rows[0]["peer"] is not None:  # Cheetah installed
        assert math.isfinite(rows[0]["peer_value"]) and math.isfinite(rows[0]["ratio"])
    assert data["meta"]["python"] and data["meta"]["cpu_count"]
