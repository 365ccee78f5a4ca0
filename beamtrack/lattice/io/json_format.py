"""beamtrack's JSON lattice format.

A file holds one beamline::

    {
      "format": "beamtrack-lattice",
      "version": 1,
      "beam": {"species": "electron", "p0c": 1e9},        (optional, used by the CLI)
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
from beamtrack.lattice.errors import LatticeFileError

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


def from_dict(data: dict[str, Any]) -> Element | Beamline:
    """Inverse of :func:`to_dict`.

    Parameters not declared by the element's kind raise
    :class:`~beamtrack.lattice.errors.UnknownParameterError`.
    """
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
            [from_dict(e) for e in elements], name=name, method=data.get("method", "bmad")
        )
    if kind not in ELEMENT_KINDS:
        raise LatticeFileError(
            f"element {name!r}: unknown kind {kind!r}; known kinds: "
            f"{', '.join(sorted(ELEMENT_KINDS))}, Beamline"
        )
    params = {k: _decode_value(v, f"{kind} {name!r}: parameter {k!r}") for k, v in data.items()}
    return ELEMENT_KINDS[kind](**params)


def dumps(line: Beamline, beam: dict[str, Any] | None = None) -> str:
    """Serialise a beamline (and optionally a beam description) to JSON text."""
    document: dict[str, Any] = {"format": FORMAT, "version": VERSION}
    if beam is not None:
        document["beam"] = beam
    document["beamline"] = to_dict(line)
    return json.dumps(document, indent=2, allow_nan=False)


def _document(text: str, source: str) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LatticeFileError(f"{source}: not valid JSON ({exc})") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise LatticeFileError(f"{source}: not a beamtrack lattice (missing 'format': '{FORMAT}')")
    if document.get("version") != VERSION:
        raise LatticeFileError(
            f"{source}: unsupported format version {document.get('version')!r} "
            f"(this beamtrack reads version {VERSION})"
        )
    return document


def loads(text: str, source: str = "<string>") -> Beamline:
    """Read a beamline from JSON text."""
    line = from_dict(_document(text, source).get("beamline"))
    if not isinstance(line, Beamline):
        raise LatticeFileError(f"{source}: 'beamline' must be of kind Beamline")
    return line


def save(line: Beamline, path: str | os.PathLike[str], beam: dict[str, Any] | None = None) -> None:
    """Write a beamline to a JSON lattice file."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(dumps(line, beam) + "\n")


def load(path: str | os.PathLike[str]) -> Beamline:
    """Read a beamline from a JSON lattice file."""
    with open(path, encoding="utf-8") as handle:
        return loads(handle.read(), source=os.fspath(path))


def load_beam(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The optional ``beam`` section of a lattice file (``None`` if absent)."""
    with open(path, encoding="utf-8") as handle:
        return _document(handle.read(), os.fspath(path)).get("beam")
