"""Run the code on the documentation pages and compare it with the output shown.

Usage (from the repository root)::

    python docs/check_snippets.py              # every page under docs/ (not reference/)
    python docs/check_snippets.py docs/getting-started.md

Rules, per page:

- ``python`` blocks run in order, in one namespace per page (one process per page),
  in a fresh temporary working directory. A block whose first line starts with ``# requires`` (for
  example ``# requires a CUDA GPU``) is skipped.
- A block right after a ``python`` block whose info string has ``title="Output"``
  must equal what that python block printed (trailing spaces ignored).
- ``console`` blocks: every line starting with ``$ `` is run with the shell and must
  exit with status 0 (unless the block's first command is preceded by a
  ``# requires`` line). Their printed output is not compared (it depends on the
  installed backends). ``bash`` blocks (installation commands) are not run.

This file is excluded from the site (``exclude_docs`` in ``mkdocs.yml``).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import traceback
from dataclasses import dataclass
from pathlib import Path

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,})(?P<info>[^`]*)$")


@dataclass
class Block:
    """A fenced code block of a Markdown page."""

    lang: str
    info: str
    code: str
    line: int


def blocks(text: str) -> list[Block]:
    """Fenced code blocks of ``text`` in order (indented fences included)."""
    found = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = m["indent"], m["fence"], m["info"].strip()
        start = i + 1
        body = []
        i += 1
        while i < len(lines) and not (lines[i].strip() == fence and lines[i].startswith(indent)):
            body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i])
            i += 1
        lang = info.split()[0] if info else ""
        found.append(Block(lang, info, textwrap.dedent("\n".join(body)), start))
        i += 1
    return found


def normalise(text: str) -> str:
    """Text with trailing spaces and surrounding blank lines removed."""
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


def check_page(path: Path) -> int:
    """Run the blocks of one page; return the number of failures."""
    failures = 0
    page = blocks(path.read_text(encoding="utf-8"))
    namespace: dict[str, object] = {"__name__": "__main__"}
    printed: str | None = None
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            for block in page:
                where = f"{path}:{block.line}"
                if block.lang == "python":
                    printed = None
                    if block.code.lstrip().startswith("# requires"):
                        print(f"skip  {where} ({block.code.strip().splitlines()[0]})")
                        continue
                    out = io.StringIO()
                    try:
                        with contextlib.redirect_stdout(out):
                            exec(compile(block.code, where, "exec"), namespace)  # noqa: S102
                    except Exception:  # noqa: BLE001 - report every failing block
                        failures += 1
                        print(f"FAIL  {where}\n{traceback.format_exc()}")
                        continue
                    printed = out.getvalue()
                    print(f"ok    {where}")
                elif 'title="Output"' in block.info:
                    if printed is None:
                        failures += 1
                        print(f"FAIL  {where}: an Output block must follow a python block")
                    elif normalise(printed) != normalise(block.code):
                        failures += 1
                        print(
                            f"FAIL  {where}: output differs\n--- shown\n{block.code}\n"
                            f"--- printed\n{printed}"
                        )
                    else:
                        print(f"ok    {where} (output)")
                    printed = None
                elif block.lang == "console":
                    printed = None
                    if block.code.lstrip().startswith("# requires"):
                        print(f"skip  {where}")
                        continue
                    for line in block.code.splitlines():
                        if not line.startswith("$ "):
                            continue
                        run = subprocess.run(
                            line[2:], shell=True, capture_output=True, text=True, check=False
                        )
                        if run.returncode != 0:
                            failures += 1
                            print(
                                f"FAIL  {where}: `{line[2:]}` exited {run.returncode}\n"
                                f"{run.stdout}{run.stderr}"
                            )
                        else:
                            print(f"ok    {where} `{line[2:]}`")
                else:
                    printed = None
        finally:
            os.chdir(here)
    return failures


def main(argv: list[str]) -> int:
    """Check the given pages, or every top-level page of ``docs/``.

    Each page runs in its own Python process (pages set global state such as JAX's
    float64 flag).
    """
    docs = Path(__file__).resolve().parent
    pages = [Path(a).resolve() for a in argv] or sorted(docs.glob("*.md"))
    if len(pages) == 1:
        failures = check_page(pages[0])
        print(f"{pages[0].name}: {failures} failure(s)")
        return 1 if failures else 0
    failed = [
        p.name
        for p in pages
        if subprocess.run([sys.executable, __file__, str(p)], check=False).returncode
    ]
    print(f"{len(pages)} page(s); failed: {', '.join(failed) or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
