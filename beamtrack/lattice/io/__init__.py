"""Lattice files in and out: one module per format behind one :func:`load`/:func:`save`.

=========  ==========================================  ==============================
format     extensions                                  module
=========  ==========================================  ==============================
json       ``.json``                                   :mod:`.json_format` (native)
madx       ``.madx .seq .mad``                         :mod:`.madx`
bmad       ``.bmad .lat``                              :mod:`.bmad`
elegant    ``.lte``                                    :mod:`.elegant` (read only)
pals       ``.pals.yaml .pals.json``                   :mod:`.pals`
=========  ==========================================  ==============================

Every format module provides ``loads(text, *, source, sequence, root)`` and
``load(path, *, sequence, root)``; writable ones ``dumps(line)`` and ``save(line, path)``.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any

from beamtrack.lattice.beamline import Beamline
from beamtrack.lattice.errors import LatticeFileError
from beamtrack.lattice.io.json_format import dumps, load_beam, loads
from beamtrack.lattice.io.openpmd import load_particles, save_particles

#: ``{format: (module, extensions, writable)}``; longer extensions are tried first.
FORMATS: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "json": ("json_format", (".json",), True),
    "madx": ("madx", (".madx", ".seq", ".mad"), True),
    "bmad": ("bmad", (".bmad", ".lat"), True),
    "elegant": ("elegant", (".lte",), False),
    "pals": ("pals", (".pals.yaml", ".pals.yml", ".pals.json"), True),
}


def format_of(path: str | os.PathLike[str], format: str | None = None) -> str:
    """The format name of ``path``: ``format`` if given, else from the extension.

    Raises
    ------
    LatticeFileError
        An unknown ``format`` or an extension that names none.
    """
    if format is not None:
        if format not in FORMATS:
            raise LatticeFileError(f"unknown lattice format {format!r}; known: "
                                   f"{', '.join(FORMATS)}", file=os.fspath(path))
        return format
    name = os.fspath(path).lower()
    matches = [(len(ext), fmt) for fmt, (_, exts, _) in FORMATS.items() for ext in exts
               if name.endswith(ext)]
    if not matches:
        known = ", ".join(ext for _, exts, _ in FORMATS.values() for ext in exts)
        raise LatticeFileError(f"cannot tell the lattice format from the file name; use one of "
                               f"the extensions {known} or give format=", file=os.fspath(path))
    return max(matches)[1]


def _module(format: str) -> ModuleType:
    return importlib.import_module(f"beamtrack.lattice.io.{FORMATS[format][0]}")


def load(
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    sequence: str | None = None,
    root: str | os.PathLike[str] | None = None,
) -> Beamline:
    """Read a beamline from a lattice file of any supported format.

    Parameters
    ----------
    path
        The file. Its extension chooses the format unless ``format`` is given.
    format
        One of ``"json"``, ``"madx"``, ``"bmad"``, ``"elegant"``, ``"pals"``.
    sequence
        Which sequence or line to expand (MAD-X ``use``, Bmad ``use``, an Elegant
        line); by default the one the file itself uses, else its last line.
    root
        Folder that included files (MAD-X ``call``, Bmad ``call``) must lie in; by
        default the folder of ``path``. Nothing outside it is read.

    Returns
    -------
    Beamline
        The line, with :attr:`~Beamline.reference` set where the file gives one.

    Raises
    ------
    LatticeFileError
        The file cannot be read; the message gives file, line and column.

    Examples
    --------
    >>> import beamtrack as bt
    >>> line = bt.load(bt.EXAMPLE_LATTICE)
    >>> line.name, line.reference.species.name
    ('fodo', 'electron')
    """
    chosen = format_of(path, format)
    module = _module(chosen)
    if chosen == "json":
        return module.load(path)
    return module.load(path, sequence=sequence, root=root)


def save(line: Beamline, path: str | os.PathLike[str], *, format: str | None = None,
         **options: Any) -> None:
    """Write a beamline to a lattice file of any writable format.

    Parameters
    ----------
    line
        The beamline; its :attr:`~Beamline.reference` is written where the format
        holds one.
    path
        The file. Its extension chooses the format unless ``format`` is given.
    format
        As in :func:`load`; ``"elegant"`` is read-only.
    **options
        Passed to the format's writer (e.g. ``beam=`` for JSON).
    """
    chosen = format_of(path, format)
    if not FORMATS[chosen][2]:
        raise LatticeFileError(f"the {chosen} format can be read but not written",
                               file=os.fspath(path))
    _module(chosen).save(line, path, **options)


__all__ = ["FORMATS", "dumps", "format_of", "load", "load_beam", "load_particles", "loads",
           "save", "save_particles"]
