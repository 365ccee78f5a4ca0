"""Griffe extensions used by the API reference (mkdocstrings), not part of the package.

Loaded from ``mkdocs.yml`` (``extensions`` of the python handler); excluded from the
site by ``exclude_docs``.

``ElementKinds``
    The element kinds (``Drift``, ``Quadrupole``, ...) are frozen, keyword-only
    dataclasses made by ``beamtrack.lattice.elements.element_kind``, which adds the
    shared parameter blocks (misalignment, slicing) and writes the docstring's
    Parameters section from the declarations (unit and meaning of each parameter).
    Static analysis sees neither, so this extension takes both from the imported class:
    its docstring and its dataclass constructor's signature.

``SphinxRoles``
    Some docstrings use Sphinx roles (``:class:`Beamline```,
    ``:func:`~beamtrack.tracking.stepping.safe```), which Markdown shows literally.
    This extension rewrites each role into a cross-reference when its target is an
    object the reference renders (so that a wrong target fails the strict build
    like any other broken link), and into inline code otherwise (private helpers,
    modules without a reference page). A trailing reStructuredText ``::`` becomes
    ``:``.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import griffe

#: Name of the decorator that makes an element kind.
DECORATOR = "element_kind"

#: A Sphinx cross-reference role, e.g. :class:`~beamtrack.Beamline`.
ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|mod|data|exc|obj|const):`(~?)([^`<>]+)`")

#: Pages whose ``::: identifier`` lines tell which modules the reference renders.
REFERENCE_PAGES = Path(__file__).resolve().parent / "reference"


# -- element kinds -----------------------------------------------------------------------
def _is_element_kind(cls: griffe.Class) -> bool:
    for decorator in cls.decorators:
        path = decorator.callable_path
        if path == DECORATOR or path.endswith("." + DECORATOR):
            return True
    return False


def _classes(obj: griffe.Module | griffe.Class, seen: set[str]) -> list[griffe.Class]:
    """Every class defined (not imported) in ``obj`` and below."""
    if obj.path in seen:
        return []
    seen.add(obj.path)
    found: list[griffe.Class] = []
    for member in list(obj.members.values()):
        if member.is_alias:
            continue
        if member.is_class:
            found.append(member)
            found += _classes(member, seen)
        elif member.is_module:
            found += _classes(member, seen)
    return found


def _init(cls: griffe.Class, runtime: type) -> griffe.Function:
    """The griffe ``__init__`` of ``cls`` from the signature of the runtime class."""
    kinds = {p.value: p for p in griffe.ParameterKind}
    parameters = [griffe.Parameter("self", kind=griffe.ParameterKind.positional_or_keyword)]
    for param in inspect.signature(runtime).parameters.values():
        default = None if param.default is param.empty else repr(param.default)
        annotation = None if param.annotation is param.empty else str(param.annotation)
        parameters.append(griffe.Parameter(param.name, annotation=annotation, default=default,
                                           kind=kinds[param.kind.description]))
    return griffe.Function("__init__", lineno=cls.lineno, endlineno=cls.lineno, parent=cls,
                           parameters=griffe.Parameters(*parameters), returns="None")


class ElementKinds(griffe.Extension):
    """Docstrings and constructors of classes decorated with ``element_kind``."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Hook called once a package is loaded."""
        for cls in _classes(pkg, set()):
            if not _is_element_kind(cls) or cls.name.startswith("_"):
                continue
            runtime = griffe.dynamic_import(cls.path)
            if cls.docstring is not None:
                cls.docstring.value = inspect.getdoc(runtime) or ""
            cls.set_member("__init__", _init(cls, runtime))
            cls.labels.add("dataclass")


# -- Sphinx roles ---------------------------------------------------------------------------
def _rendered_modules() -> set[str]:
    """Identifiers of the ``::: identifier`` lines of the reference pages."""
    found = set()
    for page in REFERENCE_PAGES.glob("*.md"):
        for line in page.read_text(encoding="utf-8").splitlines():
            if line.startswith("::: "):
                found.add(line[4:].strip())
    return found


def _objects(obj: griffe.Object, seen: set[str]) -> list[griffe.Object]:
    """``obj`` and every object defined (not imported) below it."""
    if obj.path in seen:
        return []
    seen.add(obj.path)
    found = [obj]
    for member in list(obj.members.values()):
        if not member.is_alias:
            found += _objects(member, seen)
    return found


def _target(obj: griffe.Object, name: str) -> griffe.Object | None:
    """The object that ``name`` refers to in the scope of ``obj``, if it is known."""
    head, _, rest = name.partition(".")
    candidates = [name]
    try:
        resolved = obj.resolve(head)
    except (griffe.NameResolutionError, ValueError, AttributeError):
        resolved = None
    if resolved:
        candidates.insert(0, f"{resolved}.{rest}" if rest else resolved)
    for path in candidates:
        try:
            target = obj.modules_collection[path]
        except (KeyError, ValueError, AttributeError, griffe.AliasResolutionError):
            continue
        try:
            return target.final_target if target.is_alias else target
        except griffe.AliasResolutionError:
            continue
    return None


def _is_rendered(target: griffe.Object, modules: set[str]) -> bool:
    """Whether the reference shows ``target`` (so that a link to it resolves)."""
    path = target.canonical_path
    if not any(path == m or path.startswith(m + ".") for m in modules):
        return False
    parts = path.split(".")
    if any(p.startswith("_") for p in parts):  # the "!^_" filter of mkdocs.yml
        return False
    return target.is_module or bool(target.docstring)


class SphinxRoles(griffe.Extension):
    """Turn Sphinx roles in docstrings into cross-references or inline code."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Hook called once a package is loaded."""
        modules = _rendered_modules()
        for obj in _objects(pkg, set()):
            docstring = obj.docstring
            if docstring is None:
                continue

            def replace(match: re.Match[str], obj: griffe.Object = obj) -> str:
                short, name = match.group(1), match.group(2).strip()
                text = name.rsplit(".", 1)[-1] if short else name
                target = _target(obj, name)
                if target is not None and _is_rendered(target, modules):
                    return f"[`{text}`][{target.canonical_path}]"
                return f"`{text}`"

            value = ROLE.sub(replace, docstring.value)
            value = re.sub(r"(?m)(\S)::$", r"\1:", value)
            value = re.sub(r"(?m)\s+::$", "", value)
            docstring.value = value
