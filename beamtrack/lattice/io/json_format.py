"""beamtrack's JSON lattice format.

A file holds one beamline::

    {
      "format": "beamtrack-lattice",
      "version": 1,
      "reference": {"species": "electron", "mc2": 510998.95069, "charge": -1.0,
                    "p0c": 1e9},                         (optional: line.reference)
      "beam": {"sigma": [...]},                          (optional, used by the CLI)
      "beamline": {
        "kind": "Beamline", "name": "fodo", "method": "bmad",
        "elements": [
          {"kind": "Quadrupole", "name": "qf", "length": 0.2, "k1": 1.2, ...},
          {"kind": "Drift", "name": "d1", "length": 1.0},
          {"kind": "Beamline", "name": "cell2", "method": "linear", "elements": [...]}
        ]
      }
    }

Every parameter of every element is written, so a file is explicit. Numbers are
written with Python's shortest round-trip representation, so ``loads(dumps(line))``
reproduces every float exactly. Array parameters are written as
``{"array": [...], "dtype": "float64"}`` and read back as NumPy arrays (move them to
another backend with that backend's ``asarray``).

An element that occurs several times in the line is written in full at each place
(the file stays explicit); reading gives one definition again, since equal elements
under one name are one definition. Files of the first layout, with ``species`` and
``p0c`` in the ``beam`` section, still read: those give the reference.
"""

from __future__ import annotations

import json
import os
from typing import Any

import array_api_compat
import numpy as np

from beamtrack.backends import backend_of
from beamtrack.lattice.beamline import Beamline
from beamtrack.lattice.elements import ELEMENT_KINDS, Element
from beamtrack.lattice.errors import LatticeError, LatticeFileError
from beamtrack.tracking.errors import ParameterError
from beamtrack.tracking.reference import Reference
from beamtrack.tracking.species import SPECIES, Species

FORMAT = "beamtrack-lattice"
VERSION = 1


def _encode_value(value: Any) -> Any:
    if array_api_compat.is_array_api_obj(value):
        array = backend_of(value).to_numpy(value)
        return {"array": array.tolist(), "dtype": str(array.dtype)}
    if isinstance(value, tuple):  # multipole orders, fixed tuples
        return [_encode_value(v) for v in value]
    return value


def _decode_value(value: Any, where: str) -> Any:
    if isinstance(value, dict):
        if set(value) != {"array", "dtype"}:
            raise LatticeFileError(f"{where}: an array value needs exactly 'array' and 'dtype'")
        return np.asarray(value["array"], dtype=value["dtype"])
    if isinstance(value, list):
        return [_decode_value(v, where) for v in value]
    return value


def to_dict(item: Element | Beamline) -> dict[str, Any]:
    """The JSON-ready dictionary of an element or beamline.

    Every declared parameter of an element is written (arrays as
    ``{"array": ..., "dtype": ...}``); an element holding a Python function (a
    ``"callable"`` parameter) cannot be written.
    """
    if isinstance(item, Beamline):
        return {
            "kind": "Beamline",
            "name": item.name,
            "method": item.method,
            "elements": [to_dict(i) for i in item.items],
        }
    declaration = item.declaration()
    if any(spec.role == "callable" for spec in declaration.values()):
        raise LatticeFileError(
            f"{item.kind} {item.name!r}: holds a Python function, which a lattice file "
            "cannot store; rebuild this element in code after loading the rest")
    out: dict[str, Any] = {"kind": item.kind, "name": item.name}
    if item.method is not None:
        out["method"] = item.method
    out.update({key: _encode_value(getattr(item, key)) for key in declaration})
    return out


def from_dict(data: dict[str, Any], seen: dict[str, Element | Beamline] | None = None
              ) -> Element | Beamline:
    """Inverse of :func:`to_dict`.

    Parameters not declared by the element's kind raise
    :class:`~beamtrack.lattice.errors.UnknownParameterError`. ``seen`` maps names to
    items already read: an equal item under a seen name is that same object (one
    definition).
    """
    seen = {} if seen is None else seen
    item = _from_dict(data, seen)
    known = seen.get(item.name)
    if known is not None and type(known) is type(item) and known == item:
        return known
    seen.setdefault(item.name, item)
    return item


def _from_dict(data: dict[str, Any], seen: dict[str, Element | Beamline]) -> Element | Beamline:
    if not isinstance(data, dict):
        raise LatticeFileError(f"expected an element object, got {type(data).__name__}")
    data = dict(data)
    kind = data.pop("kind", None)
    name = data.get("name", "?")
    if kind == "Beamline":
        elements = data.get("elements")
        if not isinstance(elements, list):
            raise LatticeFileError(f"beamline {name!r}: 'elements' must be a list")
        return Beamline(
            [from_dict(e, seen) for e in elements], name=name,
            method=data.get("method", "bmad")
        )
    if kind not in ELEMENT_KINDS:
        raise LatticeFileError(
            f"element {name!r}: unknown kind {kind!r}; known kinds: "
            f"{', '.join(sorted(ELEMENT_KINDS))}, Beamline"
        )
    params = {k: _decode_value(v, f"{kind} {name!r}: parameter {k!r}") for k, v in data.items()}
    return ELEMENT_KINDS[kind](**params)


def reference_to_dict(reference: Reference) -> dict[str, Any]:
    """The JSON-ready dictionary of a reference particle."""
    species = reference.species
    return {"species": species.name, "mc2": species.mc2, "charge": species.charge,
            "p0c": reference.p0c}


def reference_from_dict(data: Any, source: str) -> Reference:
    """Inverse of :func:`reference_to_dict` (``mc2`` and ``charge`` may be left out
    for a known species)."""
    if not isinstance(data, dict) or not isinstance(data.get("species"), str):
        raise LatticeFileError("'reference' must be an object with a 'species' name",
                               file=source)
    name = data["species"]
    try:
        if "mc2" in data or name not in SPECIES:
            species = Species(name, data.get("mc2"), data.get("charge"))
        else:
            species = SPECIES[name]
        return Reference(species, data.get("p0c"))
    except (ValueError, TypeError, OverflowError) as exc:
        raise LatticeFileError(f"bad reference: {exc}", file=source) from None


def dumps(line: Beamline, beam: dict[str, Any] | None = None) -> str:
    """Serialise a beamline (and optionally a beam description) to JSON text."""
    document: dict[str, Any] = {"format": FORMAT, "version": VERSION}
    if line.reference is not None:
        document["reference"] = reference_to_dict(line.reference)
    if beam is not None:
        document["beam"] = beam
    document["beamline"] = to_dict(line)
    return json.dumps(document, indent=2, allow_nan=False)


#: Largest JSON lattice file read [bytes] (a lattice of 1e5 elements is about 10 MB).
MAX_FILE_BYTES = 256 * 1024 * 1024


def _document(text: str, source: str) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LatticeFileError(f"not valid JSON ({exc.msg})", file=source, line=exc.lineno,
                               column=exc.colno) from None
    except RecursionError:
        raise LatticeFileError("nested too deeply to be a lattice", file=source) from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise LatticeFileError(f"not a beamtrack lattice (missing 'format': '{FORMAT}')",
                               file=source)
    if document.get("version") != VERSION:
        raise LatticeFileError(
            f"unsupported format version {document.get('version')!r} "
            f"(this beamtrack reads version {VERSION})", file=source
        )
    return document


def loads(text: str, source: str = "<string>") -> Beamline:
    """Read a beamline, with its reference if the file has one, from JSON text."""
    document = _document(text, source)
    try:
        line = from_dict(document.get("beamline"))
    except LatticeFileError as exc:
        if exc.file is None:
            raise LatticeFileError(exc.message, file=source) from None
        raise
    except (LatticeError, ParameterError, NotImplementedError) as exc:
        raise LatticeFileError(str(exc), file=source) from None
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        # a value of the wrong JSON type where an element expects another
        raise LatticeFileError(f"malformed beamline ({type(exc).__name__}: {exc})",
                               file=source) from None
    if not isinstance(line, Beamline):
        raise LatticeFileError("'beamline' must be of kind Beamline", file=source)
    reference = None
    if "reference" in document:
        reference = reference_from_dict(document["reference"], source)
    else:
        beam = document.get("beam")
        if isinstance(beam, dict) and "species" in beam and "p0c" in beam:
            reference = reference_from_dict({"species": beam["species"], "p0c": beam["p0c"]},
                                            source)
    return line.with_reference(reference) if reference is not None else line


def save(line: Beamline, path: str | os.PathLike[str], beam: dict[str, Any] | None = None) -> None:
    """Write a beamline to a JSON lattice file."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(dumps(line, beam) + "\n")


def load(path: str | os.PathLike[str], *, sequence: str | None = None,
         root: str | os.PathLike[str] | None = None) -> Beamline:
    """Read a beamline from a JSON lattice file (``sequence`` and ``root`` are accepted
    for the common reader interface and must be ``None``: a file holds one line)."""
    if sequence is not None:
        raise LatticeFileError("a JSON lattice file holds one beamline; sequence= does not apply",
                               file=os.fspath(path))
    return loads(read_text(path), source=os.fspath(path))


def load_beam(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The optional ``beam`` section of a lattice file (``None`` if absent)."""
    return _document(read_text(path), os.fspath(path)).get("beam")


def read_text(path: str | os.PathLike[str]) -> str:
    """The text of a lattice file (UTF-8).

    Raises
    ------
    LatticeFileError
        The file is not UTF-8 text (a binary file, say), or is larger than
        :data:`MAX_FILE_BYTES`.
    """
    with open(path, "rb") as handle:
        data = handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise LatticeFileError(f"larger than {MAX_FILE_BYTES} bytes, the limit of a "
                               "lattice file", file=os.fspath(path))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LatticeFileError(f"not UTF-8 text (byte {exc.start}: {data[exc.start]:#04x})",
                               file=os.fspath(path)) from None
