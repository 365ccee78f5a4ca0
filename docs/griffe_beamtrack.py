"""Griffe extensions used by the API reference (mkdocstrings), not part of the package.

Loaded from ``mkdocs.yml`` (``extensions`` of the python handler); excluded from the
site by ``exclude_docs``.

``ElementRecords``
    The element records (``Drift``, ``Quadrupole``, ...) are frozen, keyword-only
    dataclasses made by the decorator ``beamtrack.lattice.elements.element_record``.
    Griffe's static analysis only recognises ``@dataclasses.dataclass``, so without
    help it would show these records with the constructor of their base class
    (``(name, *, method=None)``) and warn that their documented parameters are not in
    the signature. This extension gives each record the ``__init__`` signature that
    the decorator really creates: the fields of the base dataclasses followed by the
    record's own fields, all keyword-only except ``name``.

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

import re
from pathlib import Path
from typing import Any

import griffe

#: Name of the decorator that turns a class into an element record.
DECORATOR = "element_record"

#: A Sphinx cross-reference role, e.g. :class:`~beamtrack.Beamline`.
ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|mod|data|exc|obj|const):`(~?)([^`<>]+)`")

#: Pages whose ``::: identifier`` lines tell which modules the reference renders.
REFERENCE_PAGES = Path(__file__).resolve().parent / "reference"


# -- element records ---------------------------------------------------------------------
def _is_element_record(cls: griffe.Class) -> bool:
    for decorator in cls.decorators:
        value = decorator.value
        path = getattr(value, "canonical_path", str(value))
        if path == DECORATOR or path.endswith("." + DECORATOR):
            return True
    return False


def _own_fields(cls: griffe.Class) -> list[griffe.Parameter]:
    """Dataclass fields declared in the body of ``cls`` (annotated, not ClassVar)."""
    fields = []
    for member in cls.members.values():
        if member.is_alias or not member.is_attribute or member.annotation is None:
            continue
        if "instance-attribute" not in member.labels:  # ClassVar or property
            continue
        fields.append(
            griffe.Parameter(
                member.name,
                annotation=member.annotation,
                kind=griffe.ParameterKind.keyword_only,
                default=member.value,
                docstring=member.docstring,
            )
        )
    return fields


def _inherited_parameters(cls: griffe.Class) -> list[griffe.Parameter]:
    """Parameters of the nearest base class that has an ``__init__``."""
    try:
        parents = cls.mro()
    except ValueError:
        return []
    for parent in parents:
        init = parent.members.get("__init__")
        if init is not None and not init.is_alias and init.is_function:
            return [p for p in init.parameters if p.name != "self"]
    return []


def _set_init(cls: griffe.Class) -> None:
    parameters: dict[str, griffe.Parameter] = {}
    for param in _inherited_parameters(cls) + _own_fields(cls):
        parameters[param.name] = param  # a redeclared field replaces the inherited one
    ordered = sorted(parameters.values(), key=lambda p: p.kind is griffe.ParameterKind.keyword_only)
    init = griffe.Function(
        "__init__",
        lineno=cls.lineno,
        endlineno=cls.lineno,
        parent=cls,
        parameters=griffe.Parameters(
            griffe.Parameter("self", kind=griffe.ParameterKind.positional_or_keyword),
            *ordered,
        ),
        returns="None",
    )
    cls.set_member("__init__", init)
    cls.labels.add("dataclass")


def _classes(obj: griffe.Module | griffe.Class, seen: set[str]) -> list[griffe.Class]:
    """Every class defined (not imported) in ``obj`` and below, parents first."""
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


class ElementRecords(griffe.Extension):
    """Create the constructors of classes decorated with ``element_record``."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Hook called once a package is loaded."""
        # Give the base dataclasses (``Element``) their ``__init__`` first; griffe's
        # own dataclasses extension may run after this one and skips classes that
        # already have an ``__init__``, so running it twice is harmless.
        griffe.DataclassesExtension().on_package(pkg=pkg)
        for cls in _classes(pkg, set()):
            if _is_element_record(cls) and "__init__" not in cls.members:
                _set_init(cls)


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
