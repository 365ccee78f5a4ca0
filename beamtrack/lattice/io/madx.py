"""MAD-X lattice files: a reader and a writer.

The reader understands the part of the MAD-X language that describes a machine:
variables (``=`` evaluated at once, ``:=`` deferred to the end of the file), element
definitions and inheritance (``qf1: qf, k1=...``), attribute changes (``qf, k1=...``,
``qf->k1 = ...``), ``line = (...)`` with repetition and reflection, ``sequence ...
endsequence`` with ``at``/``from``/``refer``, ``beam``, ``use``, ``call`` and
``option, rbarc``. Everything else (``twiss``, ``match``, macros, ...) is skipped
with a :class:`~beamtrack.lattice.errors.LatticeFileWarning`. Names are
case-insensitive: beamtrack names are the lower-case MAD-X names. See
``docs/formats/madx.md`` for the conventions converted.

The writer emits a ``beam``, one definition per element name and one ``sequence``
with ``refer=entry``.

The work is shared by small modules: :mod:`.madx_statements` (splitting the text
into statements), :mod:`.madx_values` (MAD-X's constants and functions, evaluating
values), :mod:`.madx_definitions` (what the reader records), :mod:`.madx_reader`
(what each statement does), :mod:`.madx_sequences` (expanding sequences and lines),
:mod:`.madx_elements` (MAD-X classes as beamtrack elements), :mod:`.madx_beam`
(``beam`` as a reference particle) and :mod:`.madx_writer`.
"""

from __future__ import annotations

import os

from beamtrack.lattice.beamline import Beamline
from beamtrack.lattice.errors import LatticeFileError
from beamtrack.lattice.io.madx_definitions import MAX_NESTING as MAX_NESTING
from beamtrack.lattice.io.madx_elements import ELEMENT_CLASSES as ELEMENT_CLASSES
from beamtrack.lattice.io.madx_reader import Reader
from beamtrack.lattice.io.madx_sequences import GAP_TOLERANCE as GAP_TOLERANCE
from beamtrack.lattice.io.madx_sequences import MAX_ELEMENTS as MAX_ELEMENTS
from beamtrack.lattice.io.madx_sequences import OVERLAP_TOLERANCE as OVERLAP_TOLERANCE
from beamtrack.lattice.io.madx_sequences import Builder
from beamtrack.lattice.io.madx_values import MADX_CONSTANTS, MADX_FUNCTIONS, NAME_PATTERN
from beamtrack.lattice.io.madx_writer import dumps, save


def loads(text: str, *, source: str = "<string>", sequence: str | None = None,
          root: str | os.PathLike[str] | None = None) -> Beamline:
    """Read a beamline from MAD-X text.

    Parameters
    ----------
    text
        MAD-X input.
    source
        File name for messages; the folder ``call`` statements are read relative to
        when it is a path.
    sequence
        The sequence or line to expand; default: the one ``use`` names, else the last
        one defined.
    root
        Folder that called files must lie in; default: the folder of ``source`` (no
        ``call`` is allowed for text without either).

    Returns
    -------
    Beamline
        Named after the sequence; ``reference`` from ``beam`` (``None`` without one).

    Raises
    ------
    LatticeFileError
        Anything malformed, with file, line and column.
    """
    if not isinstance(text, str):
        raise LatticeFileError(f"expected MAD-X text, got {type(text).__name__}", file=source)
    if root is None and os.path.isfile(source):
        root = os.path.dirname(os.path.abspath(source))
    reader = Reader(os.fspath(root) if root is not None else None)
    if os.path.isfile(source):
        reader.top_folder = os.path.dirname(os.path.abspath(source))
    reader.source = source
    try:
        reader.read(text, source)
        target = sequence.lower() if sequence is not None else None
        chosen = target or reader.used or (reader.order[-1] if reader.order else None)
        return Builder(reader, chosen).build(target)
    except RecursionError:
        raise LatticeFileError("input nested too deeply", file=source) from None


def load(path: str | os.PathLike[str], *, sequence: str | None = None,
         root: str | os.PathLike[str] | None = None) -> Beamline:
    """Read a beamline from a MAD-X file (see :func:`loads`); ``call`` statements are
    read relative to the calling file and must stay inside ``root`` (default: the
    folder of ``path``)."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError as exc:
        raise LatticeFileError(f"cannot read: {exc.strerror or exc}", file=path) from None
    if root is None:
        root = os.path.dirname(os.path.abspath(path))
    return loads(text, source=path, sequence=sequence, root=root)



__all__ = ["MADX_CONSTANTS", "MADX_FUNCTIONS", "NAME_PATTERN", "dumps", "load", "loads",
           "save"]
