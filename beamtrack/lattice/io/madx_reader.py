"""The MAD-X reader's statements: what each statement of a file defines or changes.

:class:`Reader` reads MAD-X text statement by statement and records variables,
element definitions and attribute changes, sequences (``sequence ... endsequence``
with ``at``/``from``), lines, ``beam``, ``use``, ``call`` (confined to a folder) and
``option, rbarc``. It skips the rest of the MAD-X command language (``twiss``,
``match``, macros, ``if``/``while`` blocks, ``seqedit``) with a warning and stops at
``stop``/``exit``/``quit``. Building a beamline from what it recorded is
:mod:`beamtrack.lattice.io.madx_sequences`.
"""

from __future__ import annotations

import os
import re

from beamtrack.lattice.io.madx_definitions import (
    MAX_NESTING,
    ElementDef,
    LineDef,
    SequenceDef,
    SequenceEntry,
    Value,
)
from beamtrack.lattice.io.madx_elements import ELEMENT_CLASSES
from beamtrack.lattice.io.madx_statements import (
    NAME,
    MadxStatement,
    split_statements,
    split_top_text,
)
from beamtrack.lattice.io.madx_values import MADX_CONSTANTS, Values

#: Statements skipped with a warning (the rest of the MAD-X command language).
#: Words that are neither these, nor known statements, nor element names are
#: skipped with a warning too.
_STOP_WORDS = ("stop", "exit", "quit")
_BLOCK_WORDS = ("if", "else", "elseif", "while", "macro")

_ASSIGN = re.compile(rf"\s*(?:(?:const|real|int|shared)\s+)*({NAME}(?:->[a-z_][a-z0-9_]*)?)"
                     r"\s*(:=|=)(.*)", re.S)
_LABEL = re.compile(rf"\s*({NAME})\s*:(?!=)(.*)", re.S)
_LINE = re.compile(r"\s*line\s*=\s*\((.*)\)\s*", re.S)
_WORD = re.compile(rf"\s*({NAME})\s*", re.S)

#: Attributes whose values are words, not expressions.
_WORD_ATTRIBUTES = ("apertype", "from", "type", "refpos", "slot_id", "assembly_id", "mech_sep",
                    "refer", "kind", "model", "method", "fringe", "polarity", "calib")


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


class Reader(Values):
    """What a MAD-X input defines, read statement by statement (see :meth:`read`)."""

    def __init__(self, root: str | None):
        super().__init__()
        self.root = os.path.realpath(root) if root is not None else None
        self.lines: dict[str, LineDef] = {}
        self.order: list[str] = []          # sequences and lines in definition order
        self.used: str | None = None
        self.beams: dict[str | None, dict[str, Value]] = {}
        self.beam_location: dict[str | None, tuple[str, int, int]] = {}
        self.rbarc = True
        self.current: SequenceDef | None = None
        self.stopped = False
        self.call_depth = 0
        self.top_folder: str | None = None
        self.skipping_edit: MadxStatement | None = None
        # thick solenoids whose ks MAD-X froze at definition: name -> (deferred, value)
        self.frozen_ks: dict[str, tuple[Value, Value]] = {}

    def read(self, text: str, source: str) -> None:
        """Read the statements of MAD-X ``text`` from file ``source`` (``call`` reads the
        files it names the same way)."""
        previous = getattr(self, "source", source)
        self.source = source
        try:
            for statement in split_statements(text, source):
                if self.stopped:
                    return
                if self.statement(statement) == "return":
                    break
        finally:
            self.source = previous

    def statement(self, statement: MadxStatement) -> str | None:
        text = statement.text
        if not text.strip():
            return None
        if self.skipping_edit is not None:
            if re.fullmatch(r"\s*endedit\s*", text):
                self.skipping_edit = None
            return None
        head_word = _WORD.match(text)
        word = head_word.group(1) if head_word else ""
        if "{" in text and word in _BLOCK_WORDS or re.match(rf"\s*{NAME}\s*:\s*macro\b", text):
            statement.warn(f"{word or 'macro'} block skipped (beamtrack does not run "
                           "MAD-X programs)")
            return None
        if "{" in text and "}" in text and re.match(r"\s*(if|while|else)\b", text):
            statement.warn(f"{word} block skipped")
            return None
        assign = _ASSIGN.fullmatch(text)
        if assign and "," not in assign.group(1):
            self.assignment(statement, assign)
            return None
        label = _LABEL.fullmatch(text)
        if label:
            self.labelled(statement, label.group(1), label.group(2), label.start(2))
            return None
        pieces = split_top_text(text)
        head, head_offset = pieces[0]
        match = _WORD.fullmatch(head)
        if match is None:
            raise statement.error(f"cannot read statement {_short(text)!r}",
                                  len(text) - len(text.lstrip()))
        word = match.group(1)
        rest = pieces[1:]
        if word == "endsequence":
            if self.current is None:
                raise statement.error("endsequence without a sequence")
            self.current = None
            return None
        if self.current is not None:
            self.place(statement, word, rest, match.start(1))
            return None
        if word == "beam":
            args = self.arguments(statement, rest, words=("particle", "sequence"))
            sequence = args.pop("sequence", None)
            key = sequence.payload if sequence is not None else None
            self.beams.setdefault(key, {}).update(args)
            self.beam_location[key] = (statement.file, statement.line, statement.column)
            return None
        if word == "use":
            self.use(statement, rest)
            return None
        if word == "call":
            self.call(statement, rest)
            return None
        if word == "option":
            self.option(statement, rest)
            return None
        if word == "return":
            return "return"
        if word in _STOP_WORDS:
            self.stopped = True
            return "return"
        if word == "seqedit":
            statement.warn("seqedit ... endedit skipped (sequence editing is not supported)")
            self.skipping_edit = statement
            return None
        if word in self.elements and word not in ("title",):
            args = self.arguments(statement, rest, words=_WORD_ATTRIBUTES)
            self.elements[word].attrs.update(args)
            return None
        statement.warn(f"statement {word!r} skipped (not part of a lattice description)")
        return None

    def assignment(self, statement: MadxStatement, match: re.Match[str]) -> None:
        name, operator, text = match.groups()
        value = self.value_of(text, operator, statement, match.start(3))
        if value.kind in ("array", "word"):
            raise statement.error(f"{name!r} must be given a number", match.start(3))
        if "->" in name:
            element, attr = name.split("->", 1)
            if element not in self.elements:
                raise statement.error(f"no element {element!r} to set {attr!r} of",
                                      match.start(1))
            self.elements[element].attrs[attr] = value
            return
        if name in MADX_CONSTANTS:
            raise statement.error(f"{name!r} is a MAD-X constant and cannot be assigned",
                                  match.start(1))
        self.variables[name] = value

    def labelled(self, statement: MadxStatement, name: str, rest: str, offset: int) -> None:
        line_match = _LINE.fullmatch(rest)
        if line_match:
            if self.current is not None:
                raise statement.error("a line cannot be defined inside a sequence", offset)
            where = statement.at(offset + line_match.start(1))
            self.lines[name] = LineDef(name, line_match.group(1), (statement.file, *where))
            self._defined(name)
            return
        pieces = split_top_text(rest, 0)
        head, head_offset = pieces[0]
        match = _WORD.fullmatch(head)
        if match is None:
            raise statement.error(f"expected an element class after '{name}:', got "
                                  f"{head.strip()!r}", offset + head_offset)
        parent = match.group(1)
        pieces = [(p, offset + o) for p, o in pieces[1:]]
        if parent == "sequence":
            if self.current is not None:
                raise statement.error("sequence inside a sequence", offset)
            args = self.arguments(statement, pieces, words=("refer", "refpos"))
            self.current = SequenceDef(name, args, line=statement.line, column=statement.column,
                                     file=statement.file)
            self.sequences[name] = self.current
            self._defined(name)
            return
        if parent in ("macro", "line"):
            statement.warn(f"{parent} {name!r} skipped (not supported in this form)")
            return
        if parent not in ELEMENT_CLASSES and parent not in self.elements:
            raise statement.error(f"unknown element class or element {parent!r}",
                                  offset + head_offset + match.start(1))
        if parent == name:
            if self.current is not None and name in self.elements:
                self.place(statement, name, pieces, offset + head_offset)
                return
            raise statement.error(f"element {name!r} cannot inherit from itself",
                                  offset + head_offset)
        args = self.arguments(statement, pieces, words=_WORD_ATTRIBUTES)
        at = args.pop("at", None)
        origin = args.pop("from", None)
        line, column = statement.line, statement.column
        self.elements[name] = ElementDef(name, parent, args, line, column, statement.file)
        if self.base_class(name) == "solenoid":
            self._freeze_solenoid_ks(name)
        if self.current is not None:
            self.current.entries.append(SequenceEntry(
                name, at, origin.payload if origin is not None else None, line, column,
                statement.file))

    def _freeze_solenoid_ks(self, name: str) -> None:
        """MAD-X (5.09) evaluates the ``ks`` of a thick solenoid once, when the element
        definition is read, even when it was given with ``:=`` (an ``ks := expr`` in a
        later attribute change, ``sol, ks := expr;``, stays deferred). Checked with
        cpymad: ``s: solenoid, l=0.4, ks := k; k = 0.3;`` has ``ks = 0`` in MAD-X, and
        LEIR's compensation solenoids are off in MAD-X for this reason."""
        length_value = self.lookup_attr(name, "l")
        if length_value is None or self.number(length_value, f"{name}->l") == 0.0:
            return
        ks_value = self.lookup_attr(name, "ks")
        if ks_value is None or ks_value.kind != "deferred":
            return
        frozen = Value("number", self.number(ks_value, f"{name}->ks"), ks_value.line,
                        ks_value.column)
        self.elements[name].attrs["ks"] = frozen
        self.frozen_ks[name] = (ks_value, frozen)

    def _defined(self, name: str) -> None:
        if name in self.order:
            self.order.remove(name)
        self.order.append(name)

    def place(self, statement: MadxStatement, word: str, rest: list[tuple[str, int]],
              offset: int) -> None:
        if word not in self.elements and word not in self.sequences:
            raise statement.error(f"unknown element {word!r} in sequence "
                                  f"{self.current.name!r}", offset)
        args = self.arguments(statement, rest, words=_WORD_ATTRIBUTES)
        at = args.pop("at", None)
        origin = args.pop("from", None)
        if args and word in self.elements:
            self.elements[word].attrs.update(args)
        self.current.entries.append(SequenceEntry(
            word, at, origin.payload if origin is not None else None, statement.line,
            statement.column, statement.file))

    def use(self, statement: MadxStatement, rest: list[tuple[str, int]]) -> None:
        if len(rest) == 1 and _WORD.fullmatch(rest[0][0]) and "=" not in rest[0][0]:
            self.used = _WORD.fullmatch(rest[0][0]).group(1)
            return
        args = self.arguments(statement, rest, words=("sequence", "period", "range"))
        chosen = args.get("sequence") or args.get("period")
        if chosen is None:
            raise statement.error("use needs sequence= or period=")
        if chosen.kind != "word":
            raise statement.error("use: sequence= must name a sequence or line")
        self.used = chosen.payload.lower()

    def option(self, statement: MadxStatement, rest: list[tuple[str, int]]) -> None:
        args = self.arguments(statement, rest)
        if "rbarc" in args:
            self.rbarc = bool(self.number(args.pop("rbarc"), "rbarc"))
        ignored = set(args) - {"echo", "info", "warn", "verify", "debug", "verbose", "trace",
                               "echomacro"}
        if ignored:
            statement.warn(f"option {', '.join(sorted(ignored))} skipped")

    def call(self, statement: MadxStatement, rest: list[tuple[str, int]]) -> None:
        args = self.arguments(statement, rest, words=("file",))
        target = args.get("file")
        if target is None or target.kind != "word":
            raise statement.error("call needs file=\"...\"")
        if self.call_depth >= MAX_NESTING:
            raise statement.error(f"calls nested deeper than {MAX_NESTING}")
        name = target.payload
        if self.root is None:
            raise statement.error(f"call of {name!r}: no folder to read it from (give root= "
                                  "or load the file from a path)")
        folders = []
        if os.path.isfile(statement.file):
            folders.append(os.path.dirname(os.path.abspath(statement.file)))
        if self.top_folder is not None:
            folders.append(self.top_folder)
        path = None
        for folder in [*folders, self.root]:
            candidate = os.path.realpath(os.path.join(folder, name))
            if os.path.commonpath([candidate, self.root]) != self.root:
                raise statement.error(f"call of {name!r} refused: it lies outside the allowed "
                                      f"folder {self.root}")
            if os.path.isfile(candidate):
                path = candidate
                break
        if path is None:
            raise statement.error(f"call of {name!r}: no such file")
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                text = handle.read()
        except OSError as exc:
            raise statement.error(f"call of {name!r}: {exc.strerror or exc}") from None
        self.call_depth += 1
        try:
            self.read(text, path)
        finally:
            self.call_depth -= 1


__all__ = ["Reader"]
