"""Lattice file readers and writers, one module per format."""

from beamtrack.lattice.io.json_format import dumps, load, load_beam, loads, save

__all__ = ["dumps", "load", "load_beam", "loads", "save"]
