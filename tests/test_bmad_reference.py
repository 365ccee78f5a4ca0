"""Drift and quadrupole against Bmad/Tao single-particle tracking, on every backend.

The reference numbers are Bmad's own (tests/data/bmad_tao_reference.json, copied from
the project's shared reference folder; source named in the file).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_particles, to_np

from beamtrack.tracking import track_drift, track_quadrupole

SPECIES = ("electron", "positron", "proton", "antiproton", "deuteron", "#12C+3")
TOLERANCE = 2e-14

#: The element definitions of the reference file, as beamtrack calls.
ELEMENTS = {
    "Drift": lambda p: track_drift(p, length=1.0),
    "Quadrupole": lambda p: track_quadrupole(p, length=0.5, k1=1.0),
}


def test_reference_file_describes_these_elements(bmad_reference):
    assert bmad_reference["elements"]["Drift"]["bmad"] == "e1: drift, L = 1.0"
    assert bmad_reference["elements"]["Quadrupole"]["bmad"] == "e1: quad, L = 0.5, K1 = 1.0"
    assert set(bmad_reference["species"]) == set(SPECIES)
    assert "Bmad" in bmad_reference["source"]


@pytest.mark.parametrize("element", sorted(ELEMENTS))
@pytest.mark.parametrize("species", SPECIES)
def test_matches_bmad(xp, bmad_reference, element, species):
    ref = bmad_reference
    incoming = np.array(ref["incoming"])[None, :]
    p = make_particles(xp.name, incoming, p0c=ref["p0c_eV"],
                       mc2=ref["species"][species]["mc2_eV"])
    out = ELEMENTS[element](p)
    got = to_np(out)[:, 0]
    expected = np.array(ref["outgoing"][element][species])
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE)
    assert bool(np.all(xp.to_numpy(out.alive)))
    # The incoming record is untouched.
    np.testing.assert_array_equal(to_np(p)[:, 0], np.array(ref["incoming"]))


@pytest.mark.parametrize("element", sorted(ELEMENTS))
def test_all_species_in_one_batch(bmad_reference, element):
    """mc2 of shape (batch,) tracks the six species at once, each as Bmad does."""
    ref = bmad_reference
    mc2 = np.array([ref["species"][s]["mc2_eV"] for s in SPECIES])
    incoming = np.broadcast_to(np.array(ref["incoming"]), (len(SPECIES), 1, 6))
    p = make_particles("numpy", incoming, p0c=ref["p0c_eV"], mc2=mc2)
    got = to_np(ELEMENTS[element](p))[..., 0]
    expected = np.array([ref["outgoing"][element][s] for s in SPECIES])
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE)
